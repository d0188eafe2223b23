"""cocotb test of a :class:`cnnhw.sim.harness.CheckingHarness` (run by :mod:`cnnhw.sim.runner`,
not imported by users).

The harness does all per-cycle work in the simulated hardware, so this only starts the clock
(cocotb's GPI clock, driven without Python), holds reset for three cycles, lets the simulator run
in steps of ``step`` cycles until ``done`` rises or ``max_cycles`` pass, and writes every result
port (``CNNHW_SIM_SETTINGS`` lists them), and the seconds the run took, to ``CNNHW_SIM_RESULTS``
as JSON.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
from cocotb.triggers import Timer

PERIOD_NS = 10


@cocotb.test()
async def harness_runs_to_done(dut):
    settings = json.loads(os.environ["CNNHW_SIM_SETTINGS"])
    harness = dut.check
    started = time.perf_counter()
    ran = 0
    while ran < settings["max_cycles"] and not harness.done.value:
        await Timer(settings["step"] * PERIOD_NS, unit="ns")
        ran += settings["step"]
    read = {name: int(getattr(harness, name).value) for name in settings["results"]}
    read["seconds"] = time.perf_counter() - started
    with open(os.environ["CNNHW_SIM_RESULTS"], "w") as results:
        json.dump(read, results)
