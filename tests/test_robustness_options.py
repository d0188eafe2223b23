"""Robustness of options and plan files: every argument error is ONE ``cnnhw: error:`` line with
exit status 2 (never argparse's usage text), and a bad ``--plan`` is refused before any Verilog
is generated (by sim and by build)."""

from __future__ import annotations

import os

import pytest

from robust import (anyof, Case, fake_build, lenet, lenet_data, nested_lists, params, run_case, write_json)


def with_model(command, *extra, data=False, build_folder=False):
    """``cnnhw COMMAND --model lenet.onnx [--inputs d.npz] *extra`` (lenet copied into tmp)."""
    def setup(tmp):
        model = lenet(tmp)
        args = [command, "--model", model]
        if data:
            args += ["--inputs", lenet_data(tmp)]
        return args + list(extra)
    return setup


def bare(*args, build=False, data=False):
    def setup(tmp):
        if build:
            fake_build(tmp / "out")
        if data:
            lenet_data(tmp, "data.npz")
        return list(args)
    return setup


def quantize(*extra):
    return with_model("quantize", *extra)


def predict(*extra):
    return with_model("predict", *extra, data=True)


def sim(*extra):
    return with_model("sim", *extra, data=True)


def build(*extra):
    return with_model("build", "--board", "icebreaker", *extra)


def e(id_, setup, fragment, **kw):
    return Case(id_, setup, "error", fragment, timeout=kw.pop("timeout", 60), **kw)


ARGUMENTS = [
    e("weight-bits-not-a-number", quantize("--weight-bits", "abc"), "--weight-bits"),
    e("weight-bits-99", quantize("--weight-bits", "99"), "weight bits"),
    e("weight-bits-1", quantize("--weight-bits", "1"), "weight bits"),
    e("weight-bits-0", quantize("--weight-bits", "0"), "weight bits"),
    e("weight-bits-negative", quantize("--weight-bits", "-3"), "weight bits"),
    e("weight-bits-fractional", quantize("--weight-bits", "8.0"), "--weight-bits"),
    e("weight-bits-empty", quantize("--weight-bits", ""), "--weight-bits"),
    e("weight-bits-without-value", quantize("--weight-bits"), "--weight-bits"),
    e("act-bits-1", quantize("--act-bits", "1"), "act"),
    e("act-bits-99", quantize("--act-bits", "99"), "act"),
    e("act-bits-not-a-number", quantize("--act-bits", "x"), "--act-bits"),
    e("predict-weight-bits-99", predict("--golden", "int", "--weight-bits", "99"), "weight bits"),
    e("rounding-up", quantize("--rounding", "up"), "--rounding"),
    e("calib-method-magic", quantize("--calib-method", "magic"), "--calib-method"),
    e("golden-double", predict("--golden", "double"), "--golden"),
    e("simulator-iverilog", sim("--simulator", "iverilog"), "--simulator"),
    e("tools-magic", build("--tools", "magic"), "--tools"),
    e("predict-without-inputs", with_model("predict"), "--inputs"),
    e("sim-without-inputs", with_model("sim"), "--inputs"),
    e("build-without-board", with_model("build"), "--board"),
    e("run-without-port", bare("run", "--build", "out", "data.npz", build=True, data=True), "--port"),
    e("run-without-build", bare("run", "--port", "loop://", "data.npz", data=True), "--build"),
    e("flash-without-folder", bare("flash"), "DIR"),
    e("unknown-command", bare("frobnicate"), "frobnicate"),
    e("unknown-option", with_model("inspect", "--frobnicate"), "--frobnicate"),
    e("sim-clock-without-board", sim("--clock", "24"), "--board"),
    e("unknown-global-option", bare("--frobnicate", "inspect"), "--frobnicate"),
    e("unknown-option-with-value", with_model("inspect", "--frobnicate=3"), "--frobnicate"),
    e("json-without-value", with_model("inspect", "--json"), "--json"),
    e("no-command", bare(), anyof("command", "COMMAND")),
    e("only-quiet", bare("-q"), anyof("command", "COMMAND")),
    e("gap-2", sim("--gap", "2"), "--gap"),
    e("gap-negative", sim("--gap", "-0.1"), "--gap"),
    e("gap-nan", sim("--gap", "nan"), "--gap"),
    e("gap-1", sim("--gap", "1"), "--gap"),
    e("gap-not-a-number", sim("--gap", "abc"), "--gap"),
    e("stall-nan", sim("--stall", "nan"), "--stall"),
    e("stall-1-5", sim("--stall", "1.5"), "--stall"),
    e("stall-1", sim("--stall", "1"), "--stall"),
    e("stall-infinite", sim("--stall", "inf"), "--stall"),
    e("timing-images-0", sim("--timing-images", "0"), "--timing-images"),
    e("timing-images-negative", sim("--timing-images", "-1"), "--timing-images"),
    e("timing-images-not-a-number", sim("--timing-images", "abc"), "--timing-images"),
    e("build-clock-0", build("--clock", "0"), "--clock"),
    e("build-clock-negative", build("--clock", "-5"), "--clock"),
    e("build-clock-not-a-number", build("--clock", "abc"), "--clock"),
    e("build-clock-nan", build("--clock", "nan"), "--clock"),
    e("build-clock-infinite", build("--clock", "inf"), "--clock"),
    e("sim-board-clock-0", sim("--board", "icebreaker", "--clock", "0"), "--clock"),
    e("sim-seed-not-a-number", sim("--seed", "abc"), "--seed"),
    e("build-seed-not-a-number", build("--seed", "abc"), "--seed"),
    e("percentile-150", quantize("--calib-method", "percentile", "--percentile", "150"), "--percentile"),
    e("percentile-negative", quantize("--calib-method", "percentile", "--percentile", "-1"), "--percentile"),
    e("percentile-nan", quantize("--calib-method", "percentile", "--percentile", "nan"), "--percentile"),
    e("percentile-without-method", quantize("--percentile", "99"), "--percentile"),
    e("input-range-reversed", quantize("--input-range", "1", "0"), "--input-range"),
    e("input-range-empty", quantize("--input-range", "0", "0"), "--input-range"),
    e("input-range-1e300", quantize("--input-range", "0", "1e300"), "--input-range"),
    e("input-range-nan", quantize("--input-range", "nan", "1"), "--input-range"),
    e("input-range-infinite", quantize("--input-range", "0", "inf"), "--input-range"),
    e("input-range-minus-infinite", quantize("--input-range", "-inf", "0"), "--input-range"),
    e("input-range-not-numbers", quantize("--input-range", "a", "b"), "--input-range"),
    e("input-range-one-value", quantize("--input-range", "1"), "--input-range"),
    e("build-board-nosuch", build("--board", "nosuch"), "unknown board"),
    e("sim-board-nosuch", sim("--board", "nosuch"), "unknown board"),
    e("run-baud-0", bare("run", "--port", "loop://", "--build", "out", "--baud", "0", "data.npz", build=True,
                         data=True), "--baud"),
    e("run-baud-not-a-number", bare("run", "--port", "loop://", "--build", "out", "--baud", "abc", "data.npz",
                                    build=True, data=True), "--baud"),
    e("run-baud-negative", bare("run", "--port", "loop://", "--build", "out", "--baud", "-9600", "data.npz",
                                build=True, data=True), "--baud"),
    e("flash-programmer-nosuch", bare("flash", "out", "--dry-run", "--programmer", "nosuch", build=True), "nosuch"),
    Case("help", bare("--help"), "ok", "inspect"),
    Case("inspect-help", bare("inspect", "--help"), "ok", "--json"),
    Case("build-help", bare("build", "--help"), "ok", "--board"),
    Case("sim-help", bare("sim", "--help"), "ok", "--plan"),
    Case("version", bare("--version"), "ok", "cnnhw"),
    Case("quiet-after-command", with_model("inspect", "-q"), "ok"),
]


# ---------------------------------------------------------------- plan files

def plan_value(value):
    return lambda path: write_json(path, value)


def plan_bytes(data: bytes):
    return lambda path: path.write_bytes(data)


def layers(*entries):
    return plan_value({"layers": list(entries)})


def with_plan(command, make, name="plan.json", extra=()):
    """``sim``/``build``/``sim-board`` of lenet with ``--plan plan.json`` made by ``make(path)``."""
    def setup(tmp):
        model = lenet(tmp)
        if make is not None:
            make(tmp / name)
        if command == "sim":
            args = ["sim", "--model", model, "--inputs", lenet_data(tmp)]
        elif command == "sim-board":
            args = ["sim", "--model", model, "--inputs", lenet_data(tmp), "--board", "icebreaker"]
        else:
            args = ["build", "--model", model, "--board", "icebreaker"]
        return args + ["--plan", name, *extra]
    return setup


def fifo(path):
    os.mkfifo(path)


def folder(path):
    path.mkdir()


C1 = "/conv1/Conv"
PLANS = {
    # id: (maker, fragment, forbidden)
    "name-a-list": (layers({"name": [C1], "pe": 2}), "'name'", ()),
    "name-missing": (layers({"pe": 2}), "'name'", ()),
    "name-a-number": (layers({"name": 5}), "'name'", ()),
    "pe-a-string": (layers({"name": C1, "pe": "2"}), "'pe'", ("divide",)),
    "pe-0": (layers({"name": C1, "pe": 0}), "'pe'", ()),
    "pe-float": (layers({"name": C1, "pe": 2.0}), "'pe'", ()),
    "pe-true": (layers({"name": C1, "pe": True}), "'pe'", ()),
    "pe-null": (layers({"name": C1, "pe": None}), "'pe'", ()),
    "pe-negative": (layers({"name": C1, "pe": -2}), "'pe'", ()),
    "pe-not-dividing": (layers({"name": C1, "pe": 4}), "pe", ()),
    "pe-huge": (layers({"name": C1, "pe": 10 ** 300}), "'pe'", ()),
    "pe-nan": (plan_bytes(b'{"layers": [{"name": "/conv1/Conv", "pe": NaN}]}'), "'pe'", ()),
    "simd-negative": (layers({"name": C1, "simd": -1}), "'simd'", ()),
    "simd-a-string": (layers({"name": C1, "simd": "1"}), "'simd'", ()),
    "digit-bits-huge": (layers({"name": C1, "digit_bits": 1_000_000}), "digit_bits", ()),
    "digit-bits-0": (layers({"name": C1, "digit_bits": 0}), "digit_bits", ()),
    "digit-bits-a-string": (layers({"name": C1, "digit_bits": "4"}), "digit_bits", ()),
    "digit-bits-true": (layers({"name": C1, "digit_bits": True}), "digit_bits", ()),
    "overlap-a-string": (layers({"name": C1, "overlap": "yes"}), "overlap", ()),
    "overlap-an-int": (layers({"name": C1, "overlap": 1}), "overlap", ()),
    "packed-a-string": (layers({"name": C1, "packed": "no"}), "packed", ()),
    "logic-products-a-string": (layers({"name": C1, "logic_products": "x"}), "logic_products", ()),
    "weights-flash": (layers({"name": C1, "weights": "flash"}), "weights", ()),
    "weights-a-number": (layers({"name": C1, "weights": 5}), "weights", ()),
    "unknown-key": (layers({"name": C1, "pee": 2}), "unknown key", ()),
    "layer-twice": (layers({"name": C1, "pe": 2}, {"name": C1, "pe": 3}), "twice", ()),
    "unknown-layer": (layers({"name": "/conv9/Conv", "pe": 2}), "no layer named", ()),
    "empty-layer-name": (layers({"name": "", "pe": 2}), anyof("no layer named", "'name'"), ()),
    "pool-layer-pe": (layers({"name": "/MaxPool", "pe": 2}), "/MaxPool", ()),
    "layers-an-object": (plan_value({"layers": {C1: {"pe": 2}}}), "layers", ()),
    "layers-a-string": (plan_value({"layers": "x"}), "layers", ()),
    "layers-null": (plan_value({"layers": None}), "layers", ()),
    "layers-missing": (plan_value({}), "layers", ()),
    "layer-a-string": (layers(C1), "plan", ()),
    "top-a-list": (plan_value([{"name": C1}]), "plan", ()),
    "top-a-string": (plan_value("layers"), "plan", ()),
    "top-a-number": (plan_value(5), "plan", ()),
    "top-unknown-key": (plan_value({"layers": [], "layerz": []}), "layerz", ()),
    "not-utf8": (plan_bytes(b'{"layers": [{"name": "\xff\xfe"}]}'), "UTF-8", ()),
    "not-json": (plan_bytes(b"{layers: [}"), "not valid JSON", ()),
    "nested-lists": (plan_bytes(nested_lists(100_000).encode()), "plan", ()),
    "nested-objects": (plan_bytes(b'{"a":' * 100_000 + b"1" + b"}" * 100_000), "plan", ()),
    "empty-file": (plan_bytes(b""), "plan", ()),
    "a-folder": (folder, "folder", ()),
    "missing": (None, "not found", ()),
    "a-fifo": (fifo, "not a regular file", ()),
}

BUILD_PLANS = ["pe-a-string", "pe-0", "digit-bits-huge", "unknown-key", "layer-twice", "unknown-layer",
               "top-a-list", "not-utf8", "not-json", "nested-lists", "a-folder", "missing", "a-fifo", "weights-flash"]
BOARD_SIM_PLANS = ["pe-a-string", "unknown-key", "not-json", "a-fifo"]

PLAN_CASES = (
    [Case(f"sim-plan-{key}", with_plan("sim", make), "error", fragment, forbidden=forbidden, timeout=60)
     for key, (make, fragment, forbidden) in PLANS.items()]
    + [Case(f"build-plan-{key}", with_plan("build", PLANS[key][0]), "error", PLANS[key][1], forbidden=PLANS[key][2],
            timeout=60) for key in BUILD_PLANS]
    + [Case(f"sim-board-plan-{key}", with_plan("sim-board", PLANS[key][0]), "error", PLANS[key][1],
            forbidden=PLANS[key][2], timeout=60) for key in BOARD_SIM_PLANS]
)

CASES = ARGUMENTS + PLAN_CASES


@pytest.mark.parametrize("case", params(CASES))
def test_options(case, tmp_path):
    run_case(case, tmp_path)
