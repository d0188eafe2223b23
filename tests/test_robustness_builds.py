"""Robustness of build folders (``cnnhw flash DIR``, ``flash --dry-run``, ``run --build DIR``):
fake build folders made by hand (no real build). A build.json may not name a board by a path
(its profile's programmers would run anything), the files must match the digests build.json
records, links and foreign folders are refused, a damaged build.json is one clear line."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from robust import (anyof, BITSTREAM, VERSION, Case, fake_build, hostile_profile, lenet_data,
                    nested_lists, params, run_case, save_npz, weight_image_bytes, write_json)


def env_with_tools(tmp: Path) -> dict:
    """PATH with tmp/bin first: a fake iceprog there logs its arguments to tmp/calls.log."""
    return {**os.environ, "PATH": f"{tmp / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"}


def fake_tools(tmp: Path) -> None:
    tools = tmp / "bin"
    tools.mkdir(exist_ok=True)
    for name in ("iceprog", "openFPGALoader"):
        (tools / name).write_text(f'#!/bin/sh\necho "{name} $@" >> "{tmp / "calls.log"}"\n')
        (tools / name).chmod(0o755)


COMMANDS = {
    "flash": lambda d: ["flash", d],
    "flash-dry-run": lambda d: ["flash", d, "--dry-run"],
    "flash-dry-run-iceprog": lambda d: ["flash", d, "--dry-run", "--programmer", "iceprog"],
    "run": lambda d: ["run", "--port", "loop://", "--build", d, "data.npz"],
}


def build_case(id_, prepare, outcome, fragments=(), command="flash-dry-run", folder="out", **kw):
    """A case: fake tools and data in tmp, ``prepare(tmp)`` makes the folder, then ``command``."""
    def setup(tmp):
        fake_tools(tmp)
        lenet_data(tmp, "data.npz")
        prepare(tmp)
        return COMMANDS[command](folder)
    return Case(f"{command}-{id_}", setup, outcome, fragments, env=env_with_tools, **kw)


def good(**changes):
    return lambda tmp: fake_build(tmp / "out", **changes)


def then(*steps):
    def prepare(tmp):
        for step in steps:
            step(tmp)
    return prepare


def edit_file(name, edit):
    def step(tmp):
        path = tmp / "out" / name
        path.write_bytes(edit(path.read_bytes()))
    return step


def replace_with_link(name, target):
    def step(tmp):
        path = tmp / "out" / name
        path.unlink()
        os.symlink(target, path)
    return step


def edit_facts(change):
    def step(tmp):
        path = tmp / "out" / "build.json"
        facts = json.loads(path.read_text())
        change(facts)
        path.write_text(json.dumps(facts, indent=2))
    return step


def raw_build_json(data: bytes):
    def step(tmp):
        (tmp / "out" / "build.json").write_bytes(data)
    return step


def flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def hostname_digest() -> str:
    return hashlib.sha256(Path("/etc/hostname").read_bytes()).hexdigest() if Path("/etc/hostname").exists() else "0" * 64


# ---------------------------------------------------------------- valid fake builds

def stdout_lines(expected):
    def after(tmp, result):
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        assert lines == expected, f"stdout lines {lines!r}, expected {expected!r}"
    return after


def calls(expected):
    def after(tmp, result):
        assert (tmp / "calls.log").read_text().splitlines() == expected
    return after


VALID = [
    build_case("valid", good(), "ok", "iceprog", command="flash-dry-run-iceprog",
               after=stdout_lines(["iceprog out/top.bin", "iceprog -o 1048576 out/weights.bin"])),
    Case("flash-dry-run-openfpgaloader-valid",
         lambda tmp: (fake_tools(tmp), fake_build(tmp / "out"), ["flash", "out", "--dry-run", "--programmer",
                                                                  "openFPGALoader"])[-1],
         "ok", "openFPGALoader", env=env_with_tools,
         after=stdout_lines(["openFPGALoader --board ice40_generic --write-flash out/top.bin",
                             "openFPGALoader --board ice40_generic --write-flash --offset 1048576 out/weights.bin"])),
    build_case("valid-default-programmer", good(), "ok", "out/top.bin", command="flash-dry-run"),
    build_case("valid-without-weights", good(weights=False), "ok", "iceprog", command="flash-dry-run-iceprog",
               after=stdout_lines(["iceprog out/top.bin"])),
    build_case("valid-trailing-slash", good(), "ok", "iceprog", command="flash-dry-run-iceprog", folder="out/"),
    build_case("valid-fake-programmer", good(), "ok", command="flash", allowed="calls.log",
               after=calls(["iceprog out/top.bin", "iceprog -o 1048576 out/weights.bin"])),
]


# ---------------------------------------------------------------- boards named by a path

def hostile(board):
    """A valid fake build whose build.json names ``board``; hostile profiles (programmers run
    ``touch PWNED``) lie wherever that name could lead: in the cwd and in the build folder."""
    def prepare(tmp):
        profile = hostile_profile(tmp / "PWNED")
        board_value = board(tmp) if callable(board) else board
        fake_build(tmp / "out", board=board_value)
        for where in (tmp, tmp / "out"):
            for name in ("evil.json", "icebreaker.json"):
                write_json(where / name, profile, indent=1)
        (tmp / "out" / "sub").mkdir()
        write_json(tmp / "out" / "sub" / "evil.json", profile)
    return prepare


HOSTILE_BOARDS = {
    "relative-json": "evil.json",
    "absolute-json": lambda tmp: str(tmp / "out" / "evil.json"),
    "parent-dir": "../evil",
    "installed-name-as-file": "icebreaker.json",
    "subfolder-json": "sub/evil.json",
    "dot-slash-name": "./icebreaker",
}

HOSTILE = [
    build_case(f"board-{label}", hostile(board), "error", "not an installed board", command=command,
               forbidden=("PWNED",),
               after=lambda tmp, result: None if not (tmp / "PWNED").exists() else pytest.fail("PWNED was created"))
    for label, board in HOSTILE_BOARDS.items()
    for command in (("flash", "flash-dry-run", "flash-dry-run-iceprog", "run") if label in (
        "relative-json", "absolute-json", "parent-dir") else ("flash", "flash-dry-run"))
] + [
    build_case("board-not-installed-name", hostile("evil"), "error", "not an installed board", forbidden=("PWNED",)),
    build_case("board-a-number", good(board=5), "error", "build.json"),
    build_case("board-empty", good(board=""), "error", anyof("build.json", "not an installed board")),
    build_case("board-a-list", good(board=["icebreaker"]), "error", "build.json"),
]


# ---------------------------------------------------------------- integrity

def never_flashes_outside(tmp, result):
    if result.returncode == 0:
        first = result.stdout.strip().splitlines()[0]
        assert first == "iceprog out/top.bin", f"flashes {first!r}"


D = "digest"
INTEGRITY = [
    build_case("bitstream-one-byte-changed", then(good(), edit_file("top.bin", flip_last)), "error", D),
    build_case("bitstream-one-byte-changed", then(good(), edit_file("top.bin", flip_last)), "error", D, command="flash"),
    build_case("bitstream-bytes-appended", then(good(), edit_file("top.bin", lambda b: b + b"\0")), "error", D),
    build_case("bitstream-emptied", then(good(), edit_file("top.bin", lambda b: b"")), "error", D),
    build_case("weights-truncated", then(good(), edit_file("weights.bin", lambda b: b[:-2])), "error", D),
    build_case("weights-truncated", then(good(), edit_file("weights.bin", lambda b: b[:-2])), "error", D,
               command="flash"),
    build_case("weights-one-byte-changed", then(good(), edit_file("weights.bin", flip_last)), "error", D),
    build_case("files-missing", good(files=None), "error", "build.json"),
    build_case("files-missing", good(files=None), "error", "build.json", command="flash"),
    build_case("files-without-bitstream", then(good(), edit_facts(lambda f: f["files"].pop("top.bin"))), "error",
               anyof("build.json", D)),
    build_case("files-without-weights", then(good(), edit_facts(lambda f: f["files"].pop("weights.bin"))), "error",
               anyof("build.json", D)),
    build_case("files-a-list", good(files=["top.bin"]), "error", "build.json"),
    build_case("files-digest-not-hex", then(good(), edit_facts(lambda f: f["files"].update({"top.bin": "xyz"}))),
               "error", anyof("build.json", D)),
    build_case("files-digest-a-number", then(good(), edit_facts(lambda f: f["files"].update({"top.bin": 5}))),
               "error", anyof("build.json", D)),
    build_case("bitstream-symlink-outside",
               then(good(), replace_with_link("top.bin", "/etc/hostname"),
                    edit_facts(lambda f: f["files"].update({"top.bin": hostname_digest()}))), "error", "link"),
    build_case("bitstream-symlink-outside", then(good(), replace_with_link("top.bin", "/etc/hostname"),
                                                 edit_facts(lambda f: f["files"].update({"top.bin": hostname_digest()}))),
               "error", "link", command="flash"),
    build_case("bitstream-symlink-inside", then(good(), lambda tmp: (tmp / "out" / "real.bin").write_bytes(BITSTREAM),
                                                replace_with_link("top.bin", "real.bin")), "error", "link"),
    build_case("weights-symlink-outside", then(good(), lambda tmp: (tmp / "w.bin").write_bytes(weight_image_bytes()),
                                               replace_with_link("weights.bin", "../w.bin")), "error", "link"),
    build_case("bitstream-a-fifo", then(good(), lambda tmp: ((tmp / "out" / "top.bin").unlink(),
                                                             os.mkfifo(tmp / "out" / "top.bin"))),
               "error", anyof("not a regular file", "top.bin"), timeout=30),
    build_case("bitstream-a-folder", then(good(), lambda tmp: ((tmp / "out" / "top.bin").unlink(),
                                                               (tmp / "out" / "top.bin").mkdir())), "error", "top.bin"),
    build_case("bitstream-missing", then(good(), lambda tmp: (tmp / "out" / "top.bin").unlink()), "error", "top.bin"),
    # The bitstream is always the file of that name inside DIR: refusing or flashing DIR's own
    # file are both fine, flashing a file outside DIR is not.
    build_case("bitstream-names-etc-hostname",
               then(good(bitstream="/etc/hostname"),
                    edit_facts(lambda f: f["files"].update({"hostname": hostname_digest()}))),
               "clean", command="flash-dry-run-iceprog", after=never_flashes_outside),
    build_case("bitstream-names-parent-file", then(good(bitstream="../top.bin"),
                                                   lambda tmp: (tmp / "top.bin").write_bytes(BITSTREAM)),
               "clean", command="flash-dry-run-iceprog", after=never_flashes_outside),
    build_case("build-json-symlink-outside", then(good(), lambda tmp: (
        (tmp / "elsewhere.json").write_text((tmp / "out" / "build.json").read_text()),
        (tmp / "out" / "build.json").unlink(), os.symlink("../elsewhere.json", tmp / "out" / "build.json"))),
               "error", anyof("build.json", "link")),
]


# ---------------------------------------------------------------- the marker

F = "not a finished cnnhw build"
MARKER = [
    build_case("no-marker", good(marker=False), "error", F),
    build_case("no-marker", good(marker=False), "error", F, command="flash"),
    build_case("no-marker", good(marker=False), "error", F, command="run"),
    build_case("marker-kind-rtl", then(good(), lambda tmp: write_json(tmp / "out" / ".cnnhw",
                                                                       {"written_by": VERSION, "kind": "rtl"})),
               "error", anyof(F, "kind")),
    build_case("marker-not-json", then(good(), lambda tmp: (tmp / "out" / ".cnnhw").write_text("cnnhw")), "error",
               anyof(F, ".cnnhw")),
    build_case("marker-written-by-other", then(good(), lambda tmp: write_json(tmp / "out" / ".cnnhw",
                                                                               {"written_by": "evil", "kind": "build"})),
               "error", anyof(F, ".cnnhw")),
    build_case("marker-a-folder", then(good(), lambda tmp: ((tmp / "out" / ".cnnhw").unlink(),
                                                            (tmp / "out" / ".cnnhw").mkdir())), "error", anyof(F, ".cnnhw")),
    build_case("folder-missing", lambda tmp: None, "error", "nosuch", folder="nosuch"),
    build_case("folder-missing", lambda tmp: None, "error", "nosuch", folder="nosuch", command="run"),
    build_case("folder-missing-but-failed-exists", lambda tmp: fake_build(tmp / "out.failed"), "error", "out"),
    build_case("folder-a-regular-file", lambda tmp: (tmp / "out").write_text("x"), "error", "out"),
    build_case("folder-a-fifo", lambda tmp: os.mkfifo(tmp / "out"), "error", "out", timeout=30),
]


# ---------------------------------------------------------------- damaged build.json

B = "build.json"
DAMAGED = [
    build_case("build-json-not-json", then(good(), raw_build_json(b"{not json")), "error", B),
    build_case("build-json-not-json", then(good(), raw_build_json(b"{not json")), "error", B, command="run"),
    build_case("build-json-not-utf8", then(good(), raw_build_json(b'{"board": "\xff\xfe"}')), "error", B),
    build_case("build-json-a-list", then(good(), raw_build_json(b'["icebreaker", "top.bin"]')), "error", B),
    build_case("build-json-a-list", then(good(), raw_build_json(b'["icebreaker", "top.bin"]')), "error", B,
               command="run"),
    build_case("build-json-empty", then(good(), raw_build_json(b"")), "error", B),
    build_case("build-json-nested-lists", then(good(), raw_build_json(nested_lists(100_000).encode())), "error", B),
    build_case("build-json-a-folder", then(good(), lambda tmp: ((tmp / "out" / B).unlink(), (tmp / "out" / B).mkdir())),
               "error", B),
    build_case("build-json-a-fifo", then(good(), lambda tmp: ((tmp / "out" / B).unlink(), os.mkfifo(tmp / "out" / B))),
               "error", B, timeout=30),
    build_case("bitstream-a-number", good(bitstream=5), "error", B),
    build_case("bitstream-a-list", good(bitstream=["top.bin"]), "error", B),
    build_case("bitstream-missing-key", good(bitstream=None), "error", B),
    build_case("board-missing-key", good(board=None), "error", B),
    build_case("weight-image-a-string", good(weight_image="weights.bin"), "error", B),
    build_case("weight-image-offset-not-a-number", then(good(), edit_facts(
        lambda f: f["weight_image"].update(offset="abc"))), "error", B),
    build_case("weight-image-negative-bytes", then(good(), edit_facts(
        lambda f: f["weight_image"].update(bytes=-1))), "error", anyof(B, D)),
    build_case("weight-image-no-file", then(good(), edit_facts(lambda f: f["weight_image"].pop("file"))), "error", B),
    build_case("weight-image-offset-beyond-flash", then(good(), edit_facts(
        lambda f: f["weight_image"].update(offset=1 << 40))), "error", anyof("offset", B)),
    build_case("host-empty", good(host={}), "error", B, command="run"),
    build_case("host-missing", good(host=None), "error", B, command="run"),
    build_case("host-input-shape-a-string", then(good(), edit_facts(lambda f: f["host"].update(input_shape="1x32x32"))),
               "error", B, command="run"),
]


# ---------------------------------------------------------------- run's other inputs

def run_with(data_setup, port="loop://"):
    def setup(tmp):
        fake_build(tmp / "out")
        name = data_setup(tmp)
        return ["run", "--port", port, "--build", "out", name]
    return setup


RUN = [
    Case("run-data-wrong-shape", run_with(lambda tmp: (save_npz(tmp / "d.npz", x=np.zeros((2, 1, 28, 28), np.float32)),
                                                       "d.npz")[-1]), "error", "x has shape"),
    Case("run-data-npy", run_with(lambda tmp: (np.save(tmp / "d.npy", np.zeros((2, 1, 32, 32), np.float32)),
                                               "d.npy")[-1]), "error", ".npy"),
    Case("run-data-fifo", run_with(lambda tmp: (os.mkfifo(tmp / "d.npz"), "d.npz")[-1]), "error",
         "not a regular file", timeout=30),
    Case("run-data-missing", run_with(lambda tmp: "none.npz"), "error", "none.npz"),
    Case("run-port-missing", run_with(lambda tmp: lenet_data(tmp, "d.npz"), port="/dev/ttyNOPE-cnnhw"), "error",
         "/dev/ttyNOPE-cnnhw", timeout=30),
]

CASES = VALID + HOSTILE + INTEGRITY + MARKER + DAMAGED + RUN


@pytest.mark.parametrize("case", params(CASES))
def test_build_folders(case, tmp_path):
    run_case(case, tmp_path)
