"""Robustness of outputs (-o/--output, --json): never onto an input, never over a file cnnhw did
not write, never onto something that is not a regular file, one clear line where nothing can be
written, the umask obeyed, and a failed run leaves nothing behind."""

from __future__ import annotations

import json
import os
import socket
import stat

import numpy as np
import pytest

from robust import (anyof, VERSION, Case, fake_build, lenet, lenet_data, params, run_case, run_cnnhw, save_npz,
                    write_json)

pytestmark = pytest.mark.filterwarnings("ignore")
NAME_255 = "a" * 250 + ".json"
NAME_256 = "a" * 251 + ".json"
NPZ_255 = "p" * 251 + ".npz"
NPZ_256 = "p" * 252 + ".npz"


# ---------------------------------------------------------------- setups


def inspect(*extra, model_folder="."):
    def setup(tmp):
        model = lenet(tmp, model_folder)
        return ["inspect", "--model", model, *extra]
    return setup


def predict(*extra, golden=False):
    def setup(tmp):
        model = lenet(tmp)
        data = lenet_data(tmp)
        return ["predict", "--model", model, "--inputs", data, *extra] + (["--golden", "int"] if golden else [])
    return setup


def quantize(*extra, calib=None, eval_=None):
    def setup(tmp):
        model = lenet(tmp)
        args = ["quantize", "--model", model]
        if calib:
            lenet_data(tmp, calib, n=16)
            args += ["--calib", calib]
        if eval_:
            lenet_data(tmp, eval_, n=8)
            args += ["--eval", eval_]
        return args + list(extra)
    return setup


def sim(*extra, plan=None):
    def setup(tmp):
        model = lenet(tmp)
        data = lenet_data(tmp)
        args = ["sim", "--model", model, "--inputs", data]
        if plan:
            write_json(tmp / plan, {"layers": []})
            args += ["--plan", plan]
        return args + list(extra)
    return setup


def build(*extra, plan=None, calib=None):
    def setup(tmp):
        model = lenet(tmp)
        args = ["build", "--model", model, "--board", "icebreaker"]
        if plan:
            write_json(tmp / plan, {"layers": []})
            args += ["--plan", plan]
        if calib:
            lenet_data(tmp, calib, n=16)
            args += ["--calib", calib]
        return args + list(extra)
    return setup


def boards(*extra):
    return lambda tmp: ["boards", *extra]


def also(setup, prepare):
    """``setup``, then ``prepare(tmp)`` makes more files; setup's argv."""
    def combined(tmp):
        argv = setup(tmp)
        prepare(tmp)
        return argv
    return combined


def mkdir(*names):
    def prepare(tmp):
        for name in names:
            (tmp / name).mkdir(parents=True, exist_ok=True)
    return prepare


def symlink(name, target):
    def prepare(tmp):
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, tmp / name)
    return prepare


def hardlink(name, target):
    return lambda tmp: os.link(tmp / target, tmp / name)


def text(name, content="my notes\n"):
    def prepare(tmp):
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(content)
    return prepare


def fifo(name):
    return lambda tmp: os.mkfifo(tmp / name)


def char_device(name, minor=3):
    """A character device node inside tmp_path (a private /dev/null-like node: root only)."""
    def prepare(tmp):
        try:
            os.mknod(tmp / name, stat.S_IFCHR | 0o666, os.makedev(1, minor))
        except PermissionError:
            pytest.skip("making a device node needs root")
    return prepare


def unix_socket(name):
    def prepare(tmp):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.getcwd()
        os.chdir(tmp)  # AF_UNIX paths are limited to ~108 bytes: bind the short relative name
        try:
            sock.bind(name)
        finally:
            os.chdir(old)
            sock.close()
    return prepare


def user_folder(name):
    def prepare(tmp):
        (tmp / name).mkdir()
        (tmp / name / "thesis.tex").write_text("\\documentclass{article}\n")
        (tmp / name / "data").mkdir()
        (tmp / name / "data" / "keep.csv").write_text("a,b\n1,2\n")
    return prepare


def cnnhw_folder(name, kind):
    def prepare(tmp):
        if kind == "build":
            fake_build(tmp / name)
        else:
            (tmp / name).mkdir()
            (tmp / name / "accelerator.v").write_text("module top; endmodule\n")
            write_json(tmp / name / ".cnnhw", {"written_by": VERSION, "kind": kind})
    return prepare


def first_run(*args):
    """Run cnnhw once in setup (e.g. to have cnnhw's own output in place)."""
    def prepare(tmp):
        result = run_cnnhw(args, tmp, timeout=60)
        assert result.returncode == 0, "setup: the first run failed\n" + result.describe()
    return prepare


# ---------------------------------------------------------------- after-checks


def json_written_by_cnnhw(name):
    def after(tmp, result):
        facts = json.loads((tmp / name).read_text())
        assert isinstance(facts, dict) and str(facts.get("written_by", "")).startswith("cnnhw"), \
            f"{name} has no top-level written_by starting with 'cnnhw': {str(facts)[:200]}"
    return after


def npz_written_by_cnnhw(name):
    def after(tmp, result):
        with np.load(tmp / name, allow_pickle=False) as archive:
            assert "written_by" in archive.files, f"{name} holds no written_by array ({archive.files})"
            assert "logits" in archive.files and "classes" in archive.files
    return after


def mode_is(name, mode, folders=()):
    def after(tmp, result):
        got = stat.S_IMODE(os.stat(tmp / name).st_mode)
        assert got == mode, f"{name} has mode {oct(got)}, expected {oct(mode)} (umask)"
        for folder, folder_mode in folders:
            got = stat.S_IMODE(os.stat(tmp / folder).st_mode)
            assert got == folder_mode, f"folder {folder} has mode {oct(got)}, expected {oct(folder_mode)}"
    return after


def unchanged_text(name, content):
    def after(tmp, result):
        assert (tmp / name).read_text() == content
    return after


def both(*afters):
    def after(tmp, result):
        for a in afters:
            a(tmp, result)
    return after


# ---------------------------------------------------------------- cases

W = "would overwrite"
N = "not written by cnnhw"

OVERWRITE_INPUT = [
    Case("inspect-json-onto-model", inspect("--json", "lenet.onnx"), "error", W),
    Case("inspect-json-onto-model-dot-slash", inspect("--json", "./lenet.onnx"), "error", W),
    Case("inspect-json-onto-model-via-parent", also(inspect("--json", "sub/../lenet.onnx"), mkdir("sub")), "error", W),
    Case("inspect-json-onto-model-absolute", lambda tmp: inspect("--json", str(tmp / "lenet.onnx"))(tmp), "error", W),
    Case("inspect-json-onto-symlink-to-model", also(inspect("--json", "link.onnx"), symlink("link.onnx", "lenet.onnx")),
         "error", W),
    Case("inspect-model-via-symlink-json-onto-real", lambda tmp: (lenet(tmp, "real"), os.symlink("real/lenet.onnx", tmp / "m.onnx"),
                                                                  ["inspect", "--model", "m.onnx", "--json", "real/lenet.onnx"])[-1],
         "error", W),
    Case("inspect-model-via-parent-json-plain", lambda tmp: (lenet(tmp), (tmp / "sub").mkdir(),
                                                             ["inspect", "--model", "sub/../lenet.onnx", "--json",
                                                              "lenet.onnx"])[-1], "error", W),
    Case("inspect-json-onto-hardlink-of-model", also(inspect("--json", "hard.onnx"), hardlink("hard.onnx", "lenet.onnx")),
         "error", "hard.onnx"),
    Case("predict-o-onto-model", predict("-o", "lenet.onnx"), "error", W),
    Case("predict-o-onto-own-inputs", predict("-o", "d.npz"), "error", W),
    Case("predict-o-onto-own-inputs-dot-slash", predict("-o", "./d.npz"), "error", W),
    Case("predict-o-onto-own-inputs-via-parent", also(predict("-o", "sub/../d.npz"), mkdir("sub")), "error", W),
    Case("predict-o-onto-symlink-to-inputs", also(predict("-o", "out.npz"), symlink("out.npz", "d.npz")), "error", W),
    Case("predict-json-onto-inputs", predict("--json", "d.npz"), "error", W),
    Case("predict-json-onto-model", predict("--json", "lenet.onnx"), "error", W),
    Case("predict-json-same-as-o", predict("-o", "out.npz", "--json", "out.npz"), "error", W),
    Case("predict-json-same-as-o-spelled-differently", predict("-o", "out.npz", "--json", "./out.npz"), "error", W),
    Case("predict-int-o-onto-model", predict("-o", "lenet.onnx", golden=True), "error", W),
    Case("predict-o-onto-implicit-calib", predict("-o", "lenet.calib.npz", golden=True), "error", "lenet.calib.npz"),
    Case("quantize-json-onto-model", quantize("--json", "lenet.onnx"), "error", W),
    Case("quantize-json-onto-calib", quantize("--json", "c.npz", calib="c.npz"), "error", W),
    Case("quantize-json-onto-eval", quantize("--json", "e.npz", eval_="e.npz"), "error", W),
    Case("quantize-json-onto-implicit-calib", quantize("--json", "lenet.calib.npz"), "error", "lenet.calib.npz"),
    Case("sim-o-onto-model", sim("-o", "lenet.onnx"), "error", W),
    Case("sim-o-onto-inputs", sim("-o", "d.npz"), "error", W),
    Case("sim-json-onto-model", sim("--json", "lenet.onnx"), "error", W),
    Case("sim-json-onto-plan", sim("--json", "p.json", plan="p.json"), "error", W),
    Case("sim-o-onto-plan", sim("-o", "p.json", plan="p.json"), "error", W),
    Case("sim-json-same-as-o", sim("-o", "out", "--json", "out"), "error", W),
    Case("build-o-onto-model", build("-o", "lenet.onnx"), "error", W),
    Case("build-json-onto-model", build("--json", "lenet.onnx"), "error", W),
    Case("build-json-onto-plan", build("--json", "p.json", plan="p.json"), "error", W),
    Case("build-o-onto-calib", build("-o", "c.npz", calib="c.npz"), "error", W),
    Case("build-json-same-as-o", build("-o", "out", "--json", "out"), "error", W),
]

FOREIGN = [
    Case("inspect-json-onto-notes-txt", also(inspect("--json", "notes.txt"), text("notes.txt")), "error", N,
         after=unchanged_text("notes.txt", "my notes\n")),
    Case("inspect-json-onto-user-json", also(inspect("--json", "existing.json"), text("existing.json", '{"a": 1}')),
         "error", N),
    Case("inspect-json-onto-json-written-by-other", also(inspect("--json", "existing.json"),
                                                         text("existing.json", '{"written_by": "othertool 1.0"}')),
         "error", N),
    Case("inspect-json-onto-json-written-by-number", also(inspect("--json", "existing.json"),
                                                          text("existing.json", '{"written_by": 5}')), "error", N),
    Case("inspect-json-onto-json-nested-written-by", also(inspect("--json", "existing.json"),
                                                          text("existing.json", '{"x": {"written_by": "cnnhw 0.1.0"}}')),
         "error", N),
    Case("inspect-json-onto-json-list", also(inspect("--json", "existing.json"), text("existing.json", '["cnnhw"]')),
         "error", N),
    Case("inspect-json-onto-empty-file", also(inspect("--json", "existing.json"), text("existing.json", "")), "error", N),
    Case("inspect-json-onto-binary-file", also(inspect("--json", "blob.json"),
                                               lambda tmp: (tmp / "blob.json").write_bytes(b"\xff\xfe\x00garbage")),
         "error", N),
    Case("quantize-json-onto-notes-txt", also(quantize("--json", "notes.txt"), text("notes.txt")), "error", N),
    Case("boards-json-onto-notes-txt", also(boards("--json", "notes.txt"), text("notes.txt")), "error", N),
    Case("boards-json-onto-user-json", also(boards("--json", "existing.json"), text("existing.json", '{"a": 1}')),
         "error", N),
    Case("predict-json-onto-user-json", also(predict("--json", "existing.json"), text("existing.json", '{"a": 1}')),
         "error", N),
    Case("predict-o-onto-user-npz", also(predict("-o", "existing.npz"),
                                         lambda tmp: save_npz(tmp / "existing.npz", logits=np.ones(3))), "error", N),
    Case("predict-o-onto-text-npz", also(predict("-o", "existing.npz"), text("existing.npz")), "error", N),
    Case("predict-o-onto-user-npz-named-json", also(predict("-o", "existing.json"),
                                                         lambda tmp: save_npz(tmp / "existing.json", a=np.ones(1))),
         "error", N),
    Case("sim-o-onto-user-folder", also(sim("-o", "mydir"), user_folder("mydir")), "error", N, timeout=60),
    Case("sim-o-onto-build-folder", also(sim("-o", "mydir"), cnnhw_folder("mydir", "build")), "error", "mydir",
         timeout=60),
    Case("sim-o-onto-folder-marked-by-other", also(sim("-o", "mydir"), lambda tmp: (
        user_folder("mydir")(tmp), write_json(tmp / "mydir" / ".cnnhw", {"written_by": "othertool", "kind": "rtl"}))),
         "error", "mydir", timeout=60),
    Case("sim-o-onto-folder-bad-marker", also(sim("-o", "mydir"), lambda tmp: (
        user_folder("mydir")(tmp), (tmp / "mydir" / ".cnnhw").write_text("not json"))), "error", "mydir", timeout=60),
    Case("sim-o-onto-regular-file", also(sim("-o", "notes.txt"), text("notes.txt")), "error", "notes.txt", timeout=60),
    Case("build-o-onto-user-folder", also(build("-o", "mydir"), user_folder("mydir")), "error", N, timeout=60),
    Case("build-o-onto-rtl-folder", also(build("-o", "mydir"), cnnhw_folder("mydir", "rtl")), "error", "mydir",
         timeout=60),
    Case("build-o-onto-regular-file", also(build("-o", "notes.txt"), text("notes.txt")), "error", "notes.txt",
         timeout=60),
]

OWN_AGAIN = [
    Case("inspect-json-new", inspect("--json", "out.json"), "ok", allowed="out.json",
         after=json_written_by_cnnhw("out.json")),
    Case("inspect-json-twice", also(inspect("--json", "out.json"),
                                    first_run("inspect", "--model", "lenet.onnx", "--json", "out.json")),
         "ok", allowed="out.json", after=json_written_by_cnnhw("out.json")),
    Case("quantize-json-over-inspect-json", also(quantize("--json", "out.json"),
                                                 first_run("inspect", "--model", "lenet.onnx", "--json", "out.json")),
         "ok", allowed="out.json", after=json_written_by_cnnhw("out.json")),
    Case("quantize-json-twice", also(quantize("--json", "out.json"),
                                     first_run("quantize", "--model", "lenet.onnx", "--json", "out.json")),
         "ok", allowed="out.json"),
    Case("boards-json-twice", also(boards("--json", "out.json"), first_run("boards", "--json", "out.json")),
         "ok", allowed="out.json", after=json_written_by_cnnhw("out.json")),
    Case("predict-o-new", predict("-o", "out.npz"), "ok", allowed="out.npz", after=npz_written_by_cnnhw("out.npz")),
    Case("predict-o-twice", also(predict("-o", "out.npz"),
                                 first_run("predict", "--model", "lenet.onnx", "--inputs", "d.npz", "-o", "out.npz")),
         "ok", allowed="out.npz", after=npz_written_by_cnnhw("out.npz")),
    Case("predict-o-and-json-twice", also(predict("-o", "out.npz", "--json", "out.json"),
                                          first_run("predict", "--model", "lenet.onnx", "--inputs", "d.npz", "-o",
                                                    "out.npz", "--json", "out.json")),
         "ok", allowed=("out.npz", "out.json")),
    Case("inspect-json-new-subfolders", inspect("--json", "a/b/out.json"), "ok", allowed="a",
         after=json_written_by_cnnhw("a/b/out.json")),
    Case("predict-o-new-subfolders", predict("-o", "a/b/out.npz"), "ok", allowed="a"),
    Case("inspect-json-name-with-spaces-and-unicode", inspect("--json", "my résumé [1].json"), "ok",
         allowed="my résumé [1].json"),
    Case("inspect-json-name-255", inspect("--json", NAME_255), "ok", allowed=NAME_255),
    Case("predict-o-name-255", predict("-o", NPZ_255), "ok", allowed=NPZ_255),
    Case("inspect-json-absolute-new", lambda tmp: inspect("--json", str(tmp / "abs.json"))(tmp), "ok",
         allowed="abs.json"),
]

NOT_REGULAR = [
    Case("inspect-json-onto-folder", also(inspect("--json", "outdir"), mkdir("outdir")), "error", "is a folder"),
    Case("inspect-json-onto-folder-trailing-slash", also(inspect("--json", "outdir/"), mkdir("outdir")), "error",
         "is a folder"),
    Case("inspect-json-onto-fifo", also(inspect("--json", "pipe.json"), fifo("pipe.json")), "error",
         "not a regular file", timeout=30),
    Case("inspect-json-onto-dev-null", inspect("--json", "/dev/null"), "error", "not a regular file",
         outside=("/dev/null",)),
    Case("inspect-json-onto-dev-full", inspect("--json", "/dev/full"), "error", "not a regular file",
         outside=("/dev/full",)),
    Case("inspect-json-onto-own-char-device", also(inspect("--json", "nul.json"), char_device("nul.json")), "error",
         "not a regular file"),
    Case("inspect-json-onto-socket", also(inspect("--json", "s.json"), unix_socket("s.json")), "error",
         "not a regular file"),
    Case("inspect-json-onto-symlink-to-dev-null", also(inspect("--json", "dn.json"), symlink("dn.json", "/dev/null")),
         "error", anyof("dn.json", "/dev/null"), outside=("/dev/null",)),
    Case("quantize-json-onto-dev-full", quantize("--json", "/dev/full"), "error", "not a regular file",
         outside=("/dev/full",)),
    Case("boards-json-onto-fifo", also(boards("--json", "pipe.json"), fifo("pipe.json")), "error",
         "not a regular file", timeout=30),
    Case("predict-o-onto-folder", also(predict("-o", "outdir"), mkdir("outdir")), "error", "is a folder"),
    Case("predict-o-onto-fifo", also(predict("-o", "pipe.npz"), fifo("pipe.npz")), "error", "not a regular file",
         timeout=30),
    Case("predict-o-onto-dev-null", predict("-o", "/dev/null"), "error", "not a regular file",
         outside=("/dev/null",)),
    Case("predict-o-onto-dev-full", predict("-o", "/dev/full"), "error", "not a regular file",
         outside=("/dev/full",)),
    Case("predict-json-onto-fifo", also(predict("--json", "pipe.json"), fifo("pipe.json")), "error",
         "not a regular file", timeout=30),
    Case("sim-o-onto-fifo", also(sim("-o", "pipe"), fifo("pipe")), "error", "pipe", timeout=60),
    Case("sim-o-onto-own-char-device", also(sim("-o", "nul"), char_device("nul")), "error", "nul", timeout=60),
    Case("sim-json-onto-folder", also(sim("--json", "outdir"), mkdir("outdir")), "error", "is a folder", timeout=60),
    Case("build-o-onto-fifo", also(build("-o", "pipe"), fifo("pipe")), "error", "pipe", timeout=60),
    Case("build-json-onto-fifo", also(build("--json", "pipe.json"), fifo("pipe.json")), "error", "not a regular file",
         timeout=60),
]

UNWRITABLE = [
    Case("inspect-json-into-proc", inspect("--json", "/proc/cnnhw-test.json"), "error", "cannot write",
         outside=("/proc/cnnhw-test.json",)),
    Case("inspect-json-into-sys", inspect("--json", "/sys/cnnhw-test.json"), "error", "cannot write",
         outside=("/sys/cnnhw-test.json",)),
    Case("inspect-json-into-proc-subfolder", inspect("--json", "/proc/cnnhw/test.json"), "error", "cannot write",
         outside=("/proc/cnnhw",)),
    Case("quantize-json-into-proc", quantize("--json", "/proc/cnnhw-test.json"), "error", "cannot write"),
    Case("boards-json-into-sys", boards("--json", "/sys/cnnhw-test.json"), "error", "cannot write"),
    Case("predict-o-into-proc", predict("-o", "/proc/x.npz"), "error", "cannot write", outside=("/proc/x.npz",)),
    Case("predict-json-into-sys", predict("--json", "/sys/x.json"), "error", "cannot write"),
    Case("sim-o-into-proc", sim("-o", "/proc/cnnhw-rtl"), "error", "/proc/cnnhw-rtl", timeout=60),
    Case("build-o-into-sys", build("-o", "/sys/cnnhw-build"), "error", "/sys/cnnhw-build", timeout=60),
    Case("inspect-json-below-regular-file", also(inspect("--json", "file.txt/out.json"), text("file.txt")), "error",
         "not a folder"),
    Case("inspect-json-two-below-regular-file", also(inspect("--json", "file.txt/sub/out.json"), text("file.txt")),
         "error", "not a folder"),
    Case("predict-o-below-regular-file", also(predict("-o", "file.txt/out.npz"), text("file.txt")), "error",
         "not a folder"),
    Case("predict-o-below-model-file", predict("-o", "lenet.onnx/out.npz"), "error",
         anyof("not a folder", W)),
    Case("sim-o-below-regular-file", also(sim("-o", "file.txt/rtl"), text("file.txt")), "error", "not a folder",
         timeout=60),
    Case("build-o-below-regular-file", also(build("-o", "file.txt/b"), text("file.txt")), "error", "not a folder",
         timeout=60),
    Case("inspect-json-name-256", inspect("--json", NAME_256), "error", "too long"),
    Case("inspect-json-folder-name-256", inspect("--json", "d" * 256 + "/out.json"), "error", "too long"),
    Case("predict-o-name-256", predict("-o", NPZ_256), "error", "too long"),
    Case("quantize-json-name-256", quantize("--json", NAME_256), "error", "too long"),
]

UMASK = [
    Case("inspect-json-umask-022", inspect("--json", "out.json"), "ok", allowed="out.json", umask=0o022,
         after=mode_is("out.json", 0o644)),
    Case("inspect-json-umask-077", inspect("--json", "out.json"), "ok", allowed="out.json", umask=0o077,
         after=mode_is("out.json", 0o600)),
    Case("inspect-json-umask-027", inspect("--json", "out.json"), "ok", allowed="out.json", umask=0o027,
         after=mode_is("out.json", 0o640)),
    Case("inspect-json-umask-022-new-folders", inspect("--json", "a/b/out.json"), "ok", allowed="a", umask=0o022,
         after=mode_is("a/b/out.json", 0o644, folders=[("a", 0o755), ("a/b", 0o755)])),
    Case("quantize-json-umask-022", quantize("--json", "out.json"), "ok", allowed="out.json", umask=0o022,
         after=mode_is("out.json", 0o644)),
    Case("predict-o-umask-022", predict("-o", "out.npz"), "ok", allowed="out.npz", umask=0o022,
         after=mode_is("out.npz", 0o644)),
    Case("predict-o-umask-077", predict("-o", "out.npz"), "ok", allowed="out.npz", umask=0o077,
         after=mode_is("out.npz", 0o600)),
    Case("predict-json-umask-002", predict("--json", "out.json"), "ok", allowed="out.json", umask=0o002,
         after=mode_is("out.json", 0o664)),
]


def bad_data(name="d.npz"):
    return lambda tmp: save_npz(tmp / name, x=np.zeros((2, 1, 30, 30), np.float32))


FAILED_RUN = [
    Case("predict-bad-data-writes-neither-output", also(lambda tmp: ["predict", "--model", lenet(tmp), "--inputs", "d.npz",
                                                                     "-o", "out.npz", "--json", "out.json"], bad_data()),
         "error", "x has shape"),
    Case("predict-bad-data-creates-no-folders", also(lambda tmp: ["predict", "--model", lenet(tmp), "--inputs", "d.npz",
                                                                  "-o", "a/b/out.npz"], bad_data()), "error", "x has shape"),
    Case("inspect-broken-model-creates-no-folders", lambda tmp: ((tmp / "m.onnx").write_bytes(b"\x08\x07garbage"),
                                                                 ["inspect", "--model", "m.onnx", "--json", "a/out.json"])[-1],
         "error", "m.onnx"),
    Case("sim-bad-data-creates-no-rtl-folder", also(lambda tmp: ["sim", "--model", lenet(tmp), "--inputs", "d.npz", "-o",
                                                                 "newdir"], bad_data()), "error", "x has shape", timeout=60),
    Case("sim-bad-data-creates-no-default-rtl-folder", also(lambda tmp: ["sim", "--model", lenet(tmp), "--inputs", "d.npz"],
                                                            bad_data()), "error", "x has shape", timeout=60),
    Case("build-bad-clock-creates-no-folder", lambda tmp: ["build", "--model", lenet(tmp), "--board", "icebreaker",
                                                           "--clock", "7", "-o", "newdir"], "error", "7", timeout=60),
    Case("quantize-bad-eval-writes-no-json", also(lambda tmp: ["quantize", "--model", lenet(tmp), "--eval", "d.npz",
                                                               "--json", "out.json"], bad_data()), "error", "x has shape"),
    Case("predict-failed-run-keeps-old-own-output", also(
        also(lambda tmp: ["predict", "--model", "lenet.onnx", "--inputs", "bad.npz", "-o", "out.npz"], bad_data("bad.npz")),
        lambda tmp: (lenet(tmp), lenet_data(tmp), first_run("predict", "--model", "lenet.onnx", "--inputs", "d.npz",
                                                            "-o", "out.npz")(tmp))),
         "error", "x has shape"),
]

CASES = OVERWRITE_INPUT + FOREIGN + OWN_AGAIN + NOT_REGULAR + UNWRITABLE + UMASK + FAILED_RUN


@pytest.mark.parametrize("case", params(CASES))
def test_outputs(case, tmp_path):
    run_case(case, tmp_path)
