"""Robustness of DATA files (``predict --inputs``, ``quantize --calib/--eval``, ``sim --inputs``):
wrong file kinds, archives whose headers lie about their size, data too big for memory, labels
out of range, odd dtypes, and inputs the integer model would silently clip."""

from __future__ import annotations

import os
import stat
import zipfile

import numpy as np
import pytest

import robust
from robust import (anyof, Case, fake_npz, lenet, lenet_data, lenet_test, link_cached, make_million_images,
                    npy_header, params, run_case, save_npz)


@pytest.fixture(autouse=True, scope="module")
def cache(tmp_path_factory):
    robust.CACHE_DIR = tmp_path_factory.mktemp("robust-cache")
    yield
    robust.CACHE_DIR = None


NR = "not a regular file"


# ---------------------------------------------------------------- DATA makers: (tmp) -> file name

def npz(name="d.npz", **arrays):
    def make(tmp):
        save_npz(tmp / name, **arrays)
        return name
    return make


def raw(name, data: bytes):
    def make(tmp):
        (tmp / name).write_bytes(data)
        return name
    return make


def fifo(name="d.npz"):
    def make(tmp):
        os.mkfifo(tmp / name)
        return name
    return make


def folder(name="d.npz"):
    def make(tmp):
        (tmp / name).mkdir()
        return name
    return make


def npy_file(name="d.npy"):
    def make(tmp):
        with open(tmp / name, "wb") as stream:
            np.save(stream, np.zeros((2, 1, 32, 32), np.float32))
        return name
    return make


def lying_member(shape, descr="<f4", payload=b"\0" * 64, name="d.npz", member="x.npy"):
    """An archive whose x.npy header claims ``shape`` but holds ``payload``."""
    def make(tmp):
        fake_npz(tmp / name, {member: npy_header(shape, descr) + payload})
        return name
    return make


def million(name="d.npz"):
    def make(tmp):
        link_cached("million-uint8-images.npz", make_million_images, tmp / name)
        return name
    return make


def labels(y, name="d.npz"):
    def make(tmp):
        x, _ = lenet_test(len(y))
        save_npz(tmp / name, x=x, y=np.asarray(y))
        return name
    return make


def images(transform, name="d.npz", n=4, **extra):
    def make(tmp):
        x, y = lenet_test(n)
        save_npz(tmp / name, x=transform(x), y=y, **extra)
        return name
    return make


def edited_archive(edit, name="d.npz"):
    def make(tmp):
        lenet_data(tmp, name)
        path = tmp / name
        path.write_bytes(edit(path.read_bytes()))
        return name
    return make


def corrupt_member_data(data: bytes) -> bytes:
    """Flip a byte inside the first member's data (the CRC-32 no longer matches)."""
    offset = 30 + int.from_bytes(data[26:28], "little") + int.from_bytes(data[28:30], "little") + 200
    return data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1:]


def duplicate_members(name="d.npz"):
    def make(tmp):
        x, _ = lenet_test(2)
        import io

        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, x)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fake_npz(tmp / name, {"x.npy": buffer.getvalue()})
            with zipfile.ZipFile(tmp / name, "a") as archive:
                archive.writestr("x.npy", buffer.getvalue())
        return name
    return make


def many_members(name="d.npz", count=3000):
    def make(tmp):
        x, _ = lenet_test(2)
        arrays = {f"extra{k}": np.zeros(1, np.uint8) for k in range(count)}
        save_npz(tmp / name, x=x, **arrays)
        return name
    return make


def dev_zero_link(name="d.npz"):
    def make(tmp):
        os.symlink("/dev/zero", tmp / name)
        return name
    return make


def char_device(name="d.npz"):
    def make(tmp):
        try:
            os.mknod(tmp / name, stat.S_IFCHR | 0o666, os.makedev(1, 5))
        except PermissionError:
            pytest.skip("making a device node needs root")
        return name
    return make


# ---------------------------------------------------------------- commands

def predict(data, *extra):
    def setup(tmp):
        model = lenet(tmp)
        return ["predict", "--model", model, "--inputs", data(tmp), *extra]
    return setup


def quantize_calib(data, *extra):
    def setup(tmp):
        model = lenet(tmp, calib=False)
        return ["quantize", "--model", model, "--calib", data(tmp), *extra]
    return setup


def quantize_eval(data):
    def setup(tmp):
        model = lenet(tmp)
        return ["quantize", "--model", model, "--eval", data(tmp)]
    return setup


def sim(data):
    def setup(tmp):
        model = lenet(tmp)
        return ["sim", "--model", model, "--inputs", data(tmp)]
    return setup


def implicit_calib(prepare):
    """quantize without --calib, ``prepare`` making lenet.calib.npz (the file beside the model)."""
    def setup(tmp):
        lenet(tmp, calib=False)
        prepare(tmp)
        return ["quantize", "--model", "lenet.onnx"]
    return setup


# ---------------------------------------------------------------- cases

NOT_DATA = [
    Case("predict-npy-file", predict(npy_file()), "error", ".npy"),
    Case("predict-npy-bytes-named-npz", predict(lambda tmp: (npy_file("d.npz")(tmp))), "error", "d.npz"),
    Case("predict-text-named-npz", predict(raw("d.npz", b"not numpy at all\n")), "error", "d.npz",
         forbidden=("pickle",)),
    Case("predict-numpy-magic-garbage", predict(raw("d.npz", b"\x93NUMPY\x01\x00garbage")), "error", "d.npz",
         forbidden=("pickle",)),
    Case("predict-pickle-bytes", predict(raw("d.npz", b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.")), "error",
         "d.npz"),
    Case("predict-empty-file", predict(raw("d.npz", b"")), "error", "d.npz"),
    Case("predict-fifo", predict(fifo()), "error", NR, timeout=30),
    Case("predict-folder", predict(folder()), "error", "is a folder"),
    Case("predict-symlink-to-dev-zero", predict(dev_zero_link()), "error", anyof(NR, "d.npz"), timeout=30),
    Case("predict-dev-zero", predict(lambda tmp: "/dev/zero"), "error", "/dev/zero", timeout=30),
    Case("predict-char-device", predict(char_device()), "error", NR, timeout=30),
    Case("predict-corrupt-member-crc", predict(edited_archive(corrupt_member_data)), "error", "d.npz"),
    Case("predict-truncated-archive", predict(edited_archive(lambda b: b[: len(b) // 2])), "error", "d.npz"),
    Case("predict-missing-file", predict(lambda tmp: "none.npz"), "error", "none.npz"),
    Case("sim-fifo", sim(fifo()), "error", NR, timeout=30),
    Case("sim-text-named-npz", sim(raw("d.npz", b"hello")), "error", "d.npz", forbidden=("pickle",), timeout=60),
    Case("sim-folder", sim(folder()), "error", "is a folder", timeout=60),
]

LYING = [
    Case("predict-header-claims-1e12-elements", predict(lying_member((10 ** 12,))), "error", "too big"),
    Case("predict-header-claims-1e12-images", predict(lying_member((10 ** 12, 1, 32, 32), "|u1")), "error", "too big"),
    Case("predict-header-claims-1e6-float64-images", predict(lying_member((10 ** 6, 1, 32, 32), "<f8")), "error", "x"),
    Case("predict-header-claims-more-than-held", predict(lying_member((100, 1, 32, 32), "<f4")), "error", "x"),
    Case("predict-header-negative-shape", predict(lying_member((-1, 1, 32, 32))), "error", "d.npz"),
    Case("predict-header-object-dtype", predict(lying_member((2, 1, 32, 32), "|O")), "error", "x"),
    Case("predict-header-bad-dtype", predict(lambda tmp: (fake_npz(tmp / "d.npz", {
        "x.npy": b"\x93NUMPY\x01\x00" + (76).to_bytes(2, "little") +
        b"{'descr': '<q9', 'fortran_order': False, 'shape': (2, 1, 32, 32), }".ljust(75) + b"\n"}), "d.npz")[-1]),
         "error", "d.npz"),
    Case("predict-header-not-a-dict", predict(lambda tmp: (fake_npz(tmp / "d.npz", {
        "x.npy": b"\x93NUMPY\x01\x00" + (16).to_bytes(2, "little") + b"__import__('os')"}), "d.npz")[-1]),
         "error", "d.npz", forbidden=("pickle",)),
    Case("predict-member-without-npy-suffix", predict(lambda tmp: (fake_npz(tmp / "d.npz", {"x": b"\0" * 4096}),
                                                                   "d.npz")[-1]), "error", "x"),
    Case("predict-million-images", predict(million()), "error", "too big", timeout=60, memory_mb=3072),
    Case("quantize-calib-million-images", quantize_calib(million("c.npz")), "error", "too big", timeout=60,
         memory_mb=3072),
    Case("quantize-eval-million-images", quantize_eval(million("e.npz")), "error", "too big", timeout=60,
         memory_mb=3072),
    Case("sim-million-images", sim(million()), "error", "too big", timeout=60, memory_mb=3072),
    Case("quantize-calib-header-claims-1e12-elements", quantize_calib(lying_member((10 ** 12,), name="c.npz")),
         "error", "too big"),
]

CONTENT = [
    Case("predict-label-10", predict(labels([0, 1, 10, 3])), "error", "label"),
    Case("predict-label-minus-1", predict(labels([0, -1, 2, 3])), "error", "label"),
    Case("predict-label-huge", predict(labels([0, 1, 2, 2 ** 40])), "error", "label"),
    Case("predict-labels-uint8", predict(labels(np.array([0, 1, 2, 3], np.uint8))), "ok"),
    Case("quantize-eval-label-10", quantize_eval(labels([0, 1, 10, 3], name="e.npz")), "error", "label"),
    Case("predict-x-complex", predict(images(lambda x: x.astype(np.complex64))), "error", "x"),
    Case("predict-x-strings", predict(npz(x=np.full((2, 1, 32, 32), "a"))), "error", "x"),
    Case("predict-x-structured", predict(npz(x=np.zeros((2, 1, 32, 32), dtype=[("a", "<f4"), ("b", "<i4")]))),
         "error", "x"),
    Case("predict-x-datetime", predict(npz(x=np.zeros((2, 1, 32, 32), "datetime64[s]"))), "error", "x"),
    Case("predict-x-scalar", predict(npz(x=np.float32(1))), "error", "x"),
    Case("predict-x-bool", predict(images(lambda x: x > 0.5)), "clean"),
    Case("predict-x-float16", predict(images(lambda x: x.astype(np.float16))), "clean"),
    Case("predict-x-int64", predict(images(lambda x: (x > 0.5).astype(np.int64))), "clean"),
    Case("predict-x-fortran-order", predict(images(lambda x: np.asfortranarray(x))), "clean"),
    Case("predict-x-float64", predict(images(lambda x: x.astype(np.float64), n=100)), "clean"),
    Case("predict-duplicate-members", predict(duplicate_members()), "clean"),
    Case("predict-3000-members", predict(many_members()), "clean", timeout=60),
]

CALIB = [
    Case("quantize-calib-npy", quantize_calib(npy_file("c.npy")), "error", ".npy"),
    Case("quantize-calib-fifo", quantize_calib(fifo("c.npz")), "error", NR, timeout=30),
    Case("quantize-calib-folder", quantize_calib(folder("c.npz")), "error", "is a folder"),
    Case("quantize-calib-text", quantize_calib(raw("c.npz", b"text")), "error", "c.npz", forbidden=("pickle",)),
    Case("quantize-calib-all-zero", quantize_calib(npz("c.npz", x=np.zeros((16, 1, 32, 32), np.float32))), "error",
         "calibration"),
    Case("quantize-calib-constant", quantize_calib(npz("c.npz", x=np.full((16, 1, 32, 32), 0.5, np.float32))),
         "error", "calibration"),
    Case("quantize-calib-one-zero-image", quantize_calib(npz("c.npz", x=np.zeros((1, 1, 32, 32), np.float32))),
         "error", "calibration"),
    Case("quantize-calib-nan", quantize_calib(npz("c.npz", x=np.full((4, 1, 32, 32), np.nan, np.float32))), "error",
         "NaN"),
    Case("quantize-calib-wrong-shape", quantize_calib(npz("c.npz", x=np.zeros((4, 1, 28, 28), np.float32))),
         "error", "x has shape"),
    Case("quantize-eval-fifo", quantize_eval(fifo("e.npz")), "error", NR, timeout=30),
    Case("quantize-eval-text", quantize_eval(raw("e.npz", b"text")), "error", "e.npz", forbidden=("pickle",)),
    Case("quantize-implicit-calib-fifo", implicit_calib(lambda tmp: os.mkfifo(tmp / "lenet.calib.npz")), "clean",
         timeout=30),
    Case("quantize-implicit-calib-folder", implicit_calib(lambda tmp: (tmp / "lenet.calib.npz").mkdir()), "clean"),
    Case("quantize-implicit-calib-all-zero", implicit_calib(npz("lenet.calib.npz",
                                                                x=np.zeros((8, 1, 32, 32), np.float32))),
         "error", "calibration"),
]

CLIPPED = [
    Case("predict-int-images-0-to-255", predict(images(lambda x: x * 255), "--golden", "int"), "warn", "clipped"),
    Case("predict-int-images-times-1e6", predict(images(lambda x: x * 1e6), "--golden", "int"), "warn", "clipped"),
    Case("predict-int-images-negated", predict(images(lambda x: -x), "--golden", "int"), "warn", "clipped"),
    Case("predict-int-images-in-range", predict(images(lambda x: x), "--golden", "int"), "ok",
         after=lambda tmp, r: None if not r.warning_lines else pytest.fail(f"warned: {r.warning_lines}")),
]

CASES = NOT_DATA + LYING + CONTENT + CALIB + CLIPPED


@pytest.mark.parametrize("case", params(CASES))
def test_data(case, tmp_path):
    run_case(case, tmp_path)
