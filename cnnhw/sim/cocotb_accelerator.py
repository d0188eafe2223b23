"""cocotb testbench of an exported accelerator (run by :mod:`cnnhw.sim.runner`, not imported by users).

It reads the expected streams (``CNNHW_SIM_DATA``, an .npz written by the runner), then per
cycle: drives the input stream, reads the output and class streams, and records every
stage's probe. The first ``timing_images`` images go in back to back with every output
accepted, to measure cycles per inference; the rest go in with random gaps and stalls.
Inputs are driven at the falling edge and handshakes sampled once combinational logic has
settled (``ReadOnly``), so a transfer is recorded exactly when the next rising edge takes it.
Results (per-stage streams, class cycle stamps) go to ``CNNHW_SIM_RESULTS`` as JSON; the
runner compares them with ``==``.
"""

from __future__ import annotations

import json
import os
import random

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge


def _value(handle, signed: bool) -> int:
    value = handle.value
    if not hasattr(value, "to_unsigned"):  # a one-bit signal reads as a single Logic
        return int(value)
    return value.to_signed() if signed else value.to_unsigned()


@cocotb.test()
async def accelerator_matches_golden(dut):
    data = np.load(os.environ["CNNHW_SIM_DATA"])
    settings = json.loads(str(data["settings"]))
    inputs = [int(v) for v in data["inputs"]]
    per_image = settings["input_elements_per_image"]
    timing_images = settings["timing_images"]
    expected_counts = settings["stage_counts"]
    signedness = settings["stage_signed"]
    output_signed = settings["output_signed"]
    classes_expected = settings["images"]
    rng = random.Random(settings["seed"])
    gap, stall = settings["gap"], settings["stall"]
    max_cycles = settings["max_cycles"]

    probes = [(getattr(dut, f"probe{k}_fire"), getattr(dut, f"probe{k}_data")) for k in range(len(expected_counts))]
    streams = [[] for _ in probes]
    outputs, classes, class_cycles = [], [], []
    first_input_cycle = None

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    dut.cls__ready.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0

    sent = 0
    cycle = 0
    while cycle < max_cycles:
        await FallingEdge(dut.clk)
        cycle += 1
        timing = sent < timing_images * per_image
        drive = sent < len(inputs) and (timing or rng.random() >= gap)
        dut.i__valid.value = int(drive)
        if drive:
            dut.i__payload.value = inputs[sent]
        accept = len(classes) < timing_images or rng.random() >= stall
        dut.o__ready.value = int(accept)
        dut.cls__ready.value = int(accept)
        await ReadOnly()
        if drive and dut.i__ready.value:
            if first_input_cycle is None:
                first_input_cycle = cycle
            sent += 1
        if accept and dut.o__valid.value:
            outputs.append(_value(dut.o__payload, output_signed))
        if accept and dut.cls__valid.value:
            classes.append(_value(dut.cls__payload, False))
            class_cycles.append(cycle)
        for k, (fire, payload) in enumerate(probes):
            if fire.value:
                streams[k].append(_value(payload, signedness[k]))
        if len(classes) == classes_expected and all(len(s) >= n for s, n in zip(streams, expected_counts)):
            break

    with open(os.environ["CNNHW_SIM_RESULTS"], "w") as results:
        json.dump({"stages": streams, "outputs": outputs, "classes": classes, "class_cycles": class_cycles,
                   "first_input_cycle": first_input_cycle, "cycles": cycle}, results)
