"""Writing results: atomically, only where the user asked, and never over what cnnhw did not write.

The rules every command follows (``docs/security.md``):

* Output paths are checked before any work (:func:`check_output`): an output never lands on an
  input of the same run (the model, DATA files, a plan), never on a folder, device, FIFO or link,
  and never replaces an existing file or folder unless cnnhw wrote it, as an output of the same
  kind. cnnhw recognises its own outputs by a marker: the ``written_by`` key of a JSON file, the
  ``written_by`` array of an ``.npz``, the :data:`MARKER` file of a folder.
* Files are written to a temporary sibling and renamed into place; folders are assembled in a
  temporary sibling (:func:`staging_folder`) and renamed into place whole (:func:`replace_folder`),
  so a failed run leaves no half-written output. Temporary names are short (within any file
  system's name limit) and hidden.
* Permissions follow the umask, as any file the user creates would.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import __version__
from .errors import CnnhwError

#: The value of every output's marker.
WRITTEN_BY = f"cnnhw {__version__}"
#: The marker file of an output folder: JSON ``{"written_by": ..., "kind": ...}``.
MARKER = ".cnnhw"
#: Output kinds: files ("json", "npz") and folders ("rtl": ``cnnhw sim``'s Verilog, "board-sim":
#: ``cnnhw sim --board``'s work folder, "build" and "failed-build": ``cnnhw build``'s, "zoo":
#: ``cnnhw zoo``'s, which holds builds, "kit": ``cnnhw export``'s study kit).
FILE_KINDS = ("json", "npz")
FOLDER_KINDS = ("rtl", "board-sim", "build", "failed-build", "zoo", "kit")
#: Larger files are not opened to look for a marker (cnnhw's JSON outputs are far smaller).
_MARKER_READ_LIMIT = 64 << 20


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temporary_prefix(name: str) -> str:
    # Hidden, and short enough that `.prefix.XXXXXXXX.tmp` fits any name limit whatever `name` is.
    return f".{name[:40]}."


def write_atomically(path, write) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it into place.
    The file gets the permissions the umask gives a new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path.name), suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def write_json(path, facts: dict) -> None:
    """``facts`` as JSON, with the ``written_by`` marker first."""
    text = json.dumps({"written_by": WRITTEN_BY, **facts}, indent=2, sort_keys=False) + "\n"
    write_atomically(path, lambda stream: stream.write(text.encode()))


def write_npz(path, **arrays: np.ndarray) -> None:
    """``arrays`` as an ``.npz``, with the ``written_by`` marker array."""
    write_atomically(path, lambda stream: np.savez(stream, written_by=np.array(WRITTEN_BY), **arrays))


def staging_folder(folder: Path, kind: str) -> Path:
    """A new, empty, marked folder beside ``folder`` to assemble an output in; hand it to
    :func:`replace_folder` when complete (or remove it on failure)."""
    assert kind in FOLDER_KINDS, kind
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_temporary_prefix(folder.name), dir=folder.parent))
    os.chmod(staging, 0o777 & ~_umask())
    mark_folder(staging, kind)
    return staging


def mark_folder(folder: Path, kind: str) -> None:
    (folder / MARKER).write_text(json.dumps({"written_by": WRITTEN_BY, "kind": kind}) + "\n")


def replace_folder(staging: Path, folder: Path) -> None:
    """Move the finished ``staging`` folder to ``folder`` (a sibling), replacing any old one whole."""
    if folder.exists():
        retired = Path(tempfile.mkdtemp(prefix=_temporary_prefix(folder.name), dir=folder.parent))
        os.replace(folder, retired / "old")
        os.replace(staging, folder)
        shutil.rmtree(retired)
    else:
        os.replace(staging, folder)


def fresh_folder(folder: Path, kind: str) -> None:
    """Empty ``folder`` (which :func:`check_output` accepted) and mark it: for work folders that
    are filled in place (simulation builds), not assembled and renamed."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    mark_folder(folder, kind)


# ---------------------------------------------------------------------- recognising cnnhw's outputs
def folder_kind(folder: Path) -> str | None:
    """The kind of cnnhw output ``folder`` is (its marker's), or None if cnnhw did not write it."""
    marker = folder / MARKER
    try:
        if marker.is_symlink() or not marker.is_file() or marker.stat().st_size > 4096:
            return None
        facts = json.loads(marker.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(facts, dict) or not str(facts.get("written_by", "")).startswith("cnnhw"):
        return None
    kind = facts.get("kind")
    return kind if kind in FOLDER_KINDS else None


def _written_by_cnnhw(path: Path, kind: str) -> bool:
    if path.stat().st_size > _MARKER_READ_LIMIT:
        return False
    try:
        if kind == "json":
            facts = json.loads(path.read_bytes())
            return isinstance(facts, dict) and str(facts.get("written_by", "")).startswith("cnnhw")
        with zipfile.ZipFile(path) as archive:
            return "written_by.npy" in archive.namelist()
    except (OSError, ValueError, zipfile.BadZipFile, RecursionError):
        return False


# ---------------------------------------------------------------------- the check before any work
def _same_or_inside(path: Path, other: Path) -> bool:
    """Whether ``path`` (resolved) is ``other`` (resolved) or lies inside it."""
    try:
        a, b = Path(os.path.realpath(path)), Path(os.path.realpath(other))
    except (OSError, ValueError):
        return False
    if a == b or a.is_relative_to(b):
        return True
    try:
        return os.path.samefile(path, other)  # hard links
    except (OSError, ValueError):
        return False


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def check_output(path, kind: str, option: str, inputs: dict[str, object] | None = None,
                 outputs: dict[str, object] | None = None) -> Path:
    """Refuse, with one clear line, an output path cnnhw must not write; return it as a Path.

    ``kind`` is one of :data:`FILE_KINDS` or :data:`FOLDER_KINDS`; ``option`` names the option in
    messages (``--json``); ``inputs`` maps a role ("the model") to each input path of the run, which
    the output must neither be nor (for a folder) contain; ``outputs`` maps the run's other
    outputs to their paths, which must be distinct from this one. Nothing is created or touched:
    whether the nearest existing folder can take the output is judged from its permissions, its
    file system's read-only flag and type (no outputs in ``/proc``, ``/sys``, ``/dev``).
    """
    path = Path(path)
    where = f"{option} {path}"
    if path.name in ("", ".", ".."):
        raise CnnhwError(f"{where}: give a {'folder' if kind in FOLDER_KINDS else 'file'} name, not '{path}'")
    is_folder = kind in FOLDER_KINDS
    for role, given in (inputs or {}).items():
        if given is not None and (_same_or_inside(Path(given), path) if is_folder else _same_or_inside(path, Path(given))):
            raise CnnhwError(f"{where} would overwrite {role} ({given}); choose another output path")
    for role, given in (outputs or {}).items():
        if given is not None and (_same_or_inside(path, Path(given)) or _same_or_inside(Path(given), path)):
            raise CnnhwError(f"{where} would overwrite the {role} output ({given}); give each output its own path")
    try:
        info = path.lstat()
    except (FileNotFoundError, NotADirectoryError):  # the latter: a parent is a file (said below)
        info = None
    except OSError as error:
        raise CnnhwError(f"{where}: cannot write here ({error.strerror})") from None
    if info is not None:
        if stat.S_ISLNK(info.st_mode):
            raise CnnhwError(f"{where} is a symbolic link; cnnhw writes outputs only as files it creates: "
                             f"choose another path")
        if stat.S_ISDIR(info.st_mode):
            if not is_folder:
                raise CnnhwError(f"{where} is a folder; give a file name")
            if any(path.iterdir()) and folder_kind(path) != kind:
                raise CnnhwError(f"{where} exists and was not written by cnnhw as a {kind} folder; cnnhw replaces "
                                 f"only its own outputs: remove it or choose another path")
        elif not stat.S_ISREG(info.st_mode):
            raise CnnhwError(f"{where} is not a regular file (a device, FIFO or socket); choose another path")
        elif is_folder:
            raise CnnhwError(f"{where} is a file, not a folder; choose another path")
        elif not _written_by_cnnhw(path, kind):
            raise CnnhwError(f"{where} exists and was not written by cnnhw; cnnhw replaces only its own outputs: "
                             f"remove it or choose another path")
    _check_writable(path, where)
    return path


def _check_writable(path: Path, where: str) -> None:
    ancestor = _nearest_existing(path.parent)
    if not ancestor.is_dir():
        raise CnnhwError(f"{where}: {ancestor} is not a folder")
    try:
        name_max = os.pathconf(ancestor, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    missing = [path.name, *(p.name for p in path.parents if not os.path.lexists(p) and p.name)]
    longest = max(missing, key=lambda n: len(os.fsencode(n)))
    if len(os.fsencode(longest)) > name_max:
        raise CnnhwError(f"{where}: the name '{longest[:40]}...' is too long ({len(os.fsencode(longest))} bytes; "
                         f"this file system allows {name_max})")
    filesystem = _filesystem_type(ancestor)
    if filesystem in _PSEUDO_FILESYSTEMS:
        raise CnnhwError(f"{where}: cannot write in {ancestor} (a {filesystem} file system of the kernel, not "
                         f"storage); choose another path")
    try:
        read_only = bool(os.statvfs(ancestor).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only or not os.access(ancestor, os.W_OK | os.X_OK):
        raise CnnhwError(f"{where}: cannot write in {ancestor} ({'read-only file system' if read_only else 'permission denied'}); "
                         f"choose another path")


#: Kernel file systems whose files are interfaces, not storage: an output never belongs there.
_PSEUDO_FILESYSTEMS = {"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs",
                       "securityfs", "configfs", "pstore", "bpf", "efivarfs", "fusectl", "mqueue", "hugetlbfs",
                       "binfmt_misc", "autofs", "rpc_pipefs", "nsfs"}


def _filesystem_type(folder: Path) -> str | None:
    """The type of the file system ``folder`` is on (the longest mount point holding it), from
    ``/proc/self/mounts``; None where that cannot be read (not Linux)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
        where = os.path.realpath(folder)
    except OSError:
        return None
    best, kind = "", None
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = where == point or where.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind
