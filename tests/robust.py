"""The robustness harness: run ``cnnhw`` in a fresh, bounded process and check what it did.

A :class:`Case` builds its files in ``tmp_path`` and returns the argv; :func:`run_case` snapshots
``tmp_path`` (the process's cwd), runs the command with bounded memory and time, snapshots again
and :func:`check`\\ s the result against the expected outcome:

* ``"error"``: exit status 2, exactly one ``cnnhw: error:`` line on stderr holding every fragment,
  no traceback, no argparse usage text, and NOTHING changed under tmp_path (no output, no empty
  folder, no temp file, no ``.failed`` folder);
* ``"ok"``: exit 0, no traceback, no error line, only the ``allowed`` paths (and paths below them)
  changed; fragments (if any) appear in stdout + stderr;
* ``"warn"``: like ok, plus a ``cnnhw: warning:`` line holding every fragment;
* ``"clean"``: exit 0 or 2, no traceback, at most one error line; on exit 2 nothing changed.

A fragment is a string, or a tuple of strings of which any one will do.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import stat
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnhw.outputs import WRITTEN_BY as VERSION  # the marker value cnnhw writes

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

#: Set by the session fixture in the test modules (a folder shared by the whole session for
#: expensive files, e.g. the 1 GB-uncompressed DATA file).
CACHE_DIR: Path | None = None



# --------------------------------------------------------------------------------------------
# Running cnnhw


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    cwd: Path

    def describe(self) -> str:
        return (f"command: cnnhw {' '.join(map(repr, self.args))}\n(cwd {self.cwd})\nexit status: {self.returncode}\n"
                f"--- stderr ---\n{self.stderr}\n--- stdout (last 3000 chars) ---\n{self.stdout[-3000:]}")

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("cnnhw: error:")]

    @property
    def warning_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("cnnhw: warning:")]


class Hang(AssertionError):
    pass


def run_cnnhw(args, cwd, timeout: float = 60, memory_mb: int = 3072, env: dict | None = None,
              umask: int | None = None) -> Result:
    """``python -m cnnhw *args`` in a fresh process (own session, stdin from /dev/null), its
    address space limited to ``memory_mb`` MiB; fails the test saying "hang" after ``timeout`` s."""
    args = [str(a) for a in args]
    limit = int(memory_mb) * 1024 * 1024

    def limits():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        if umask is not None:
            os.umask(umask)

    process = subprocess.Popen([sys.executable, "-m", "cnnhw", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                               preexec_fn=limits, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        stdout, stderr = process.communicate()
        raise Hang(f"hang: cnnhw {' '.join(map(repr, args))} still running after {timeout:g} s (killed)\n"
                   f"--- stderr ---\n{stderr}") from None
    return Result(args, process.returncode, stdout, stderr, Path(cwd))


# --------------------------------------------------------------------------------------------
# Snapshots


def _entry(path: Path):
    st = os.lstat(path)
    mode = st.st_mode
    kind = stat.S_IFMT(mode)
    digest = target = None
    if stat.S_ISREG(mode):
        h = hashlib.sha256()
        with open(path, "rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                h.update(chunk)
        digest = h.hexdigest()
    elif stat.S_ISLNK(mode):
        target = os.readlink(path)
    return (kind, stat.S_IMODE(mode), st.st_size if not stat.S_ISDIR(mode) else None, st.st_mtime_ns, digest, target,
            st.st_rdev if (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)) else None)


def snapshot(root) -> dict[str, tuple]:
    """Every path under ``root`` (itself as "."), hidden ones too, symlinks not followed:
    relative path -> (file type, permission bits, size, mtime_ns, sha256 of a regular file's
    bytes, symlink target, device number)."""
    root = Path(root)
    result = {".": _entry(root)}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = Path(folder) / name
            result[str(path.relative_to(root))] = _entry(path)
    return result


def snapshot_paths(paths: Iterable) -> dict[str, tuple | None]:
    """Outside paths (e.g. /dev/full): path -> (st_mode, st_rdev, st_size) or None if absent."""
    result = {}
    for path in paths:
        try:
            st = os.lstat(path)
            result[str(path)] = (st.st_mode, st.st_rdev, st.st_size if stat.S_ISREG(st.st_mode) else None)
        except FileNotFoundError:
            result[str(path)] = None
    return result


def _below(path: str, allowed: Iterable[str]) -> bool:
    return any(path == a or path.startswith(a.rstrip("/") + "/") for a in allowed)


def _ancestors(allowed: Iterable[str]) -> set[str]:
    out = {"."}
    for a in allowed:
        parts = Path(a).parts
        for k in range(1, len(parts)):
            out.add(str(Path(*parts[:k])))
    return out


def differences(before: dict, after: dict, allowed: Iterable[str] = ()) -> list[str]:
    """Paths that differ between two snapshots, except ``allowed`` ones (and paths below them).
    A folder holding an allowed path may change its mtime (an entry was added to it)."""
    allowed = [str(a) for a in allowed]
    parents = _ancestors(allowed) if allowed else set()
    changed = []
    for path in sorted(set(before) | set(after)):
        if _below(path, allowed):
            continue
        old, new = before.get(path), after.get(path)
        if old == new:
            continue
        if path in parents and old is not None and new is not None and old[:3] == new[:3] and old[4:] == new[4:]:
            continue  # only the mtime of a folder that gained an allowed entry
        if old is not None and new is not None and old[0] == new[0] == stat.S_IFDIR and old[:3] == new[:3] \
                and old[4:] == new[4:]:
            changed.append(f"folder {path!r}: mtime changed with the same entries (something was created in it "
                           f"and removed again during the run, e.g. a temp or probe file)")
            continue
        what = "created" if old is None else "removed" if new is None else "changed"
        changed.append(f"{path} {what} ({old} -> {new})")
    return changed


# --------------------------------------------------------------------------------------------
# Checking


class AnyOf(tuple):
    """A fragment satisfied by any one of its strings."""


def anyof(*alternatives: str) -> AnyOf:
    return AnyOf(alternatives)


def _has(text: str, fragment) -> bool:
    if isinstance(fragment, AnyOf):
        return any(f in text for f in fragment)
    return fragment in text


def check(result: Result, outcome: str, fragments=(), before: dict | None = None, after: dict | None = None,
          allowed=(), forbidden=()) -> None:
    """Assert ``result`` is the expected ``outcome`` (see the module docstring). ``forbidden``:
    strings that must not appear in stdout or stderr."""
    fail = lambda why: AssertionError(f"{why}\n{result.describe()}")  # noqa: E731
    if "Traceback" in result.stderr or "Traceback" in result.stdout:
        raise fail("traceback")
    errors = result.error_lines
    usage = [line for line in result.stderr.splitlines() if line.startswith("usage:")]
    for text in forbidden:
        if text in result.stderr or text in result.stdout:
            raise fail(f"output contains forbidden text {text!r}")
    changed = differences(before, after, allowed) if before is not None and after is not None else []
    nothing_changed = differences(before, after) if before is not None and after is not None else []
    if outcome == "clean":
        if result.returncode not in (0, 2):
            raise fail(f"exit status {result.returncode}, expected 0 or 2")
        if len(errors) > 1:
            raise fail(f"{len(errors)} error lines")
        if usage:
            raise fail("argparse usage text on stderr")
        if result.returncode == 2:
            if len(errors) != 1:
                raise fail("exit 2 without exactly one 'cnnhw: error:' line")
            if nothing_changed:
                raise fail("a failed run changed files: " + "; ".join(nothing_changed))
        elif changed:
            raise fail("unexpected files changed: " + "; ".join(changed))
        return
    if outcome == "error":
        if result.returncode != 2:
            raise fail(f"exit {result.returncode}, expected 2 (an error)")
        if len(errors) != 1:
            raise fail(f"{len(errors)} 'cnnhw: error:' lines, expected exactly one")
        if usage:
            raise fail("argparse usage text on stderr (not one line)")
        line = errors[0]
        for fragment in fragments:
            if not _has(line, fragment):
                raise fail(f"message lacks fragment {fragment!r}: got {line!r}")
        if nothing_changed:
            raise fail("a failed run changed files: " + "; ".join(nothing_changed))
        return
    if outcome in ("ok", "warn"):
        if result.returncode != 0:
            raise fail(f"exit {result.returncode}, expected 0" + (f": {errors[0]!r}" if errors else ""))
        if errors:
            raise fail(f"error line on a successful run: {errors[0]!r}")
        if changed:
            raise fail("paths changed that should not have: " + "; ".join(changed))
        if outcome == "ok":
            text = result.stdout + result.stderr
            for fragment in fragments:
                if not _has(text, fragment):
                    raise fail(f"output lacks fragment {fragment!r}")
        else:
            warnings = result.warning_lines
            if not any(all(_has(w, f) for f in fragments) for w in warnings):
                raise fail(f"no 'cnnhw: warning:' line with {list(fragments)!r}; warnings: {warnings!r}")
        return
    raise ValueError(f"unknown outcome {outcome!r}")


# --------------------------------------------------------------------------------------------
# Cases


@dataclass
class Case:
    id: str
    setup: Callable[[Path], list]
    outcome: str
    fragments: tuple = ()
    allowed: tuple = ()
    timeout: float = 60
    memory_mb: int = 3072
    umask: int | None = None
    forbidden: tuple = ()
    outside: tuple = ()  # outside paths whose (mode, rdev, size) must not change
    env: Callable[[Path], dict] | None = None
    after: Callable[[Path, Result], None] | None = None  # extra assertions once check passed

    def __post_init__(self):
        if isinstance(self.fragments, (str, AnyOf)):
            self.fragments = (self.fragments,)
        if isinstance(self.allowed, str):
            self.allowed = (self.allowed,)


def params(cases: list[Case]):
    """pytest.param per case, with its id (ids must be unique)."""
    import pytest

    ids = [c.id for c in cases]
    duplicates = {i for i in ids if ids.count(i) > 1}
    assert not duplicates, duplicates
    return [pytest.param(c, id=c.id) for c in cases]


DEVICES = {"/dev/null": (1, 3), "/dev/full": (1, 7), "/dev/zero": (1, 5)}


def _restore_devices(before: dict) -> list[str]:
    """If a run replaced /dev/null or /dev/full by something else, put the device back (the
    machine needs it) and say so."""
    broken = []
    for path, (major, minor) in DEVICES.items():
        if path not in before or before[path] is None:
            continue
        try:
            st = os.lstat(path)
            fine = stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(major, minor)
        except FileNotFoundError:
            fine = False
        if fine:
            continue
        broken.append(path)
        try:
            if os.path.lexists(path):
                if os.path.isdir(path) and not os.path.islink(path):
                    import shutil

                    shutil.rmtree(path)
                else:
                    os.unlink(path)
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(major, minor))
            os.chmod(path, 0o666)
        except OSError:
            pass
    return broken


def _dev_entries() -> set[str]:
    try:
        return set(os.listdir("/dev"))
    except OSError:
        return set()


def run_case(case: Case, tmp_path: Path) -> Result:
    argv = case.setup(tmp_path)
    env = case.env(tmp_path) if case.env else None
    outside = tuple(case.outside)
    outside_before = snapshot_paths(outside)
    dev_before = _dev_entries() if any(str(p).startswith("/dev/") for p in outside) else None
    before = snapshot(tmp_path)
    try:
        result = run_cnnhw(argv, tmp_path, timeout=case.timeout, memory_mb=case.memory_mb, env=env, umask=case.umask)
    finally:
        broken = _restore_devices(outside_before)
        leftovers = []
        if dev_before is not None:
            for name in sorted(_dev_entries() - dev_before):  # temp files a run left in /dev
                leftovers.append(name)
                path = Path("/dev") / name
                try:
                    if path.is_file() and not path.is_symlink():
                        path.unlink()
                    elif path.is_dir() and not path.is_symlink():
                        import shutil

                        shutil.rmtree(path)
                except OSError:
                    pass
    after = snapshot(tmp_path)
    if broken:
        raise AssertionError(f"the run replaced {broken} (restored as character devices)\n{result.describe()}")
    if leftovers:
        raise AssertionError(f"the run left {leftovers} in /dev (removed)\n{result.describe()}")
    outside_after = snapshot_paths(outside)
    if outside_after != outside_before:
        raise AssertionError(f"outside paths changed: {outside_before} -> {outside_after}\n{result.describe()}")
    check(result, case.outcome, case.fragments, before, after, case.allowed, case.forbidden)
    if case.after is not None:
        try:
            case.after(tmp_path, result)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{result.describe()}") from None
    return result


# --------------------------------------------------------------------------------------------
# Building inputs


def copy_file(source: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(Path(source).read_bytes())
    return dest


def lenet(tmp: Path, folder: str = ".", calib: bool = True) -> str:
    """lenet.onnx (and lenet.calib.npz beside it) copied into tmp/folder; the model's path."""
    where = tmp / folder
    copy_file(EXAMPLES / "lenet.onnx", where / "lenet.onnx")
    if calib:
        copy_file(EXAMPLES / "lenet.calib.npz", where / "lenet.calib.npz")
    return str(Path(folder) / "lenet.onnx") if folder != "." else "lenet.onnx"


_TEST_CACHE: dict = {}


def lenet_test(n: int = 4):
    """The first n images and labels of examples/lenet.test.npz."""
    if "test" not in _TEST_CACHE:
        with np.load(EXAMPLES / "lenet.test.npz") as archive:
            _TEST_CACHE["test"] = (archive["x"].copy(), archive["y"].copy())
    x, y = _TEST_CACHE["test"]
    return x[:n].copy(), y[:n].copy()


def lenet_data(tmp: Path, name: str = "d.npz", n: int = 4, labels: bool = True, scale: float = 1.0) -> str:
    x, y = lenet_test(n)
    arrays = {"x": (x * scale).astype(np.float32)}
    if labels:
        arrays["y"] = y
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as stream:  # np.savez would append .npz to other names
        np.savez(stream, **arrays)
    return name


def save_npz(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as stream:
        np.savez(stream, **arrays)


def npy_header(shape, descr: str = "<f4", fortran_order: bool = False) -> bytes:
    """A .npy version 1.0 header for an array of ``shape`` (whatever data follows)."""
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": fortran_order,
                                                  "shape": tuple(shape)})
    return buffer.getvalue()


def fake_npz(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> None:
    """A zip written by hand: member name -> bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def cached(name: str, make: Callable[[Path], None]) -> Path:
    """A file made once per session (in CACHE_DIR) by ``make(path)``."""
    assert CACHE_DIR is not None, "the session fixture sets robust.CACHE_DIR"
    path = CACHE_DIR / name
    if not path.exists():
        partial = CACHE_DIR / f".{name}.partial"
        make(partial)
        os.replace(partial, path)
    return path


def link_cached(name: str, make: Callable[[Path], None], dest: Path) -> None:
    """Hard-link (else copy) the cached file ``name`` to ``dest``."""
    source = cached(name, make)
    try:
        os.link(source, dest)
    except OSError:
        copy_file(source, dest)


def make_million_images(path: Path, images: int = 1_000_000) -> None:
    """A real compressed .npz: x = ``images`` uint8 images of 1x32x32 (1 GB uncompressed),
    written streaming so this process never holds it."""
    chunk = bytes(1024 * 1024)
    total = images * 32 * 32
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            member.write(npy_header((images, 1, 32, 32), "|u1"))
            written = 0
            while written < total:
                part = min(len(chunk), total - written)
                member.write(chunk[:part])
                written += part


def write_json(path: Path, value, **dumps) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, **dumps))


def nested_lists(depth: int) -> str:
    return "[" * depth + "]" * depth


# --------------------------------------------------------------------------------------------
# Fake build folders (no real build: what ``cnnhw build`` leaves behind, made by hand)


LENET_HOST = {"input_shape": [1, 32, 32], "input_scale": 1 / 255, "input_bits": 8, "input_signed": False,
              "rounding": "half_up", "classes": 10, "logit_bytes": 2, "output_scale": 0.000876071227736323,
              "baud": 3000000}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def weight_image_bytes(words=(1, 2, 3, 0xBEEF)) -> bytes:
    """A weight image as protocol/weight_image.py defines it (one block)."""
    payload = struct.pack(f"<{len(words)}H", *words)
    return struct.pack("<4sHHII", b"CNNW", 1, 1, len(payload), zlib.crc32(payload)) + payload


BITSTREAM = b"\xff\x00\x00\xff" + bytes(range(256)) * 4


def fake_build(folder: Path, weights: bool = True, marker: bool = True, **changes) -> dict:
    """A finished-looking build of lenet for the icebreaker in ``folder``: top.bin, weights.bin
    (if ``weights``), build.json (with ``files`` digests) and the ``.cnnhw`` marker. ``changes``
    replace top-level keys of build.json (value None: the key is left out). Returns the facts."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "top.bin").write_bytes(BITSTREAM)
    files = {"top.bin": sha256(BITSTREAM)}
    facts = {"written_by": VERSION, "model": "lenet", "board": "icebreaker", "device": "iCE40UP5K-SG48",
             "clock_mhz": 24.0, "fmax_mhz": 30.1, "timing_met": True, "cycles_per_inference": 117600,
             "link_baud": 3000000, "host": dict(LENET_HOST), "bitstream": str(folder / "top.bin")}
    if weights:
        image = weight_image_bytes()
        (folder / "weights.bin").write_bytes(image)
        files["weights.bin"] = sha256(image)
        facts["weight_image"] = {"file": str(folder / "weights.bin"), "offset": 1048576, "bytes": len(image),
                                 "crc32": zlib.crc32(image[16:])}
    facts["files"] = files
    for key, value in changes.items():
        if value is None:
            facts.pop(key, None)
        else:
            facts[key] = value
    write_json(folder / "build.json", facts, indent=2)
    if marker:
        write_json(folder / ".cnnhw", {"written_by": VERSION, "kind": "build"})
    return facts


def icebreaker_profile() -> dict:
    return json.loads((ROOT / "cnnhw" / "boards" / "icebreaker.json").read_text())


def hostile_profile(marker: Path) -> dict:
    """The icebreaker's profile, except that every programmer runs ``touch MARKER``."""
    profile = icebreaker_profile()
    profile["name"] = "evil"
    profile["programmers"] = {"iceprog": ["touch", str(marker), "{bitstream}"],
                              "openFPGALoader": ["touch", str(marker), "{bitstream}"]}
    profile["programmers_at_offset"] = {"iceprog": ["touch", str(marker), "{offset}", "{file}"],
                                        "openFPGALoader": ["touch", str(marker), "{offset}", "{file}"]}
    return profile
