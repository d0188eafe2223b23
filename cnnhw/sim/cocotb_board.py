"""cocotb testbench of the exported board top (run by :mod:`cnnhw.sim.board`, not imported by users).

The board is driven only through its pins, as the host does through the FT2232H: a host UART
writes bytes onto ``rx`` (8N1, ``divisor`` clock cycles per bit), another samples ``tx`` in the
middle of each bit, and ``rst`` is the reset button. The testbench knows no protocol: it plays
the *steps* it is given (``CNNHW_SIM_DATA``, JSON) and records the bytes that come back during
each step (``CNNHW_SIM_RESULTS``); :mod:`cnnhw.sim.board` decodes them with the protocol code
``cnnhw run`` uses and compares them with the golden model.

A step: ``send`` (hex bytes), then wait until ``reply_bytes`` bytes have arrived (or
``max_cycles``), or for ``quiet_cycles`` of silence; ``reset`` pulses the reset afterwards, then
``after_reset_cycles`` pass (the weights reload).
Waits use timers and pin edges, not per-cycle callbacks, so the simulator runs at full speed.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, First, RisingEdge, Timer
from cocotb.utils import get_sim_time

PERIOD_NS = 10


class HostReceiver:
    """Samples ``tx`` like a UART: after a start bit's falling edge, in the middle of each bit."""

    def __init__(self, dut, divisor: int):
        self.dut, self.bit_ns = dut, divisor * PERIOD_NS
        self.received = bytearray()

    async def run(self):
        while True:
            await FallingEdge(self.dut.tx)
            await Timer(self.bit_ns * 3 // 2, unit="ns")
            byte = 0
            for bit in range(8):
                byte |= int(self.dut.tx.value) << bit
                await Timer(self.bit_ns, unit="ns")
            self.received.append(byte)  # now in the middle of the stop bit


async def send_bytes(dut, data: bytes, bit_ns: int) -> None:
    for byte in data:
        for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
            dut.rx.value = bit
            await Timer(bit_ns, unit="ns")


@cocotb.test()
async def board_over_uart(dut):
    with open(os.environ["CNNHW_SIM_DATA"]) as stream:
        settings = json.load(stream)
    divisor = settings["divisor"]
    bit_ns = divisor * PERIOD_NS
    Clock(dut.clk, PERIOD_NS, unit="ns", impl="gpi").start()  # toggled by the simulator, not by Python
    dut.rx.value = 1
    dut.rst.value = 1
    for _ in range(4):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    receiver = HostReceiver(dut, divisor)
    cocotb.start_soon(receiver.run())
    await FallingEdge(dut.clk)  # drive the pin between clock edges

    replies = []
    for step in settings["steps"]:
        start = len(receiver.received)
        await send_bytes(dut, bytes.fromhex(step["send"]), bit_ns)
        if step.get("reply_bytes"):
            # The budget is simulated time: a falling edge of tx comes at every start bit and at
            # every 1 -> 0 inside a byte, so counting wake-ups would spend it several times over.
            deadline = get_sim_time(unit="ns") + step["max_cycles"] * PERIOD_NS
            while len(receiver.received) - start < step["reply_bytes"] and get_sim_time(unit="ns") < deadline:
                await First(Timer(10 * bit_ns, unit="ns"), FallingEdge(dut.tx))
            await Timer(bit_ns, unit="ns")  # let the last stop bit end
        if step.get("quiet_cycles"):
            await Timer(step["quiet_cycles"] * PERIOD_NS, unit="ns")
        if step.get("reset"):
            await FallingEdge(dut.clk)
            dut.rst.value = 1
            await Timer(4 * PERIOD_NS, unit="ns")
            dut.rst.value = 0
            if step.get("after_reset_cycles"):
                await Timer(step["after_reset_cycles"] * PERIOD_NS, unit="ns")
        replies.append(bytes(receiver.received[start:]).hex())

    with open(os.environ["CNNHW_SIM_RESULTS"], "w") as results:
        json.dump({"replies": replies}, results)
