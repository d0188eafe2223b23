"""Stream drivers for Amaranth simulations: random input gaps and output stalls everywhere."""

from __future__ import annotations

import random

from amaranth.sim import Simulator


async def put_all(ctx, port, payloads, rng: random.Random, gap: float):
    """Send ``payloads`` on ``port``, idling a random number of cycles (probability ``gap``) between them."""
    for payload in payloads:
        while rng.random() < gap:
            ctx.set(port.valid, 0)
            await ctx.tick()
        ctx.set(port.valid, 1)
        ctx.set(port.payload, payload)
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def get_n(ctx, port, count: int, rng: random.Random, stall: float, out: list, max_cycles: int = 500_000):
    """Receive ``count`` payloads from ``port`` into ``out``, refusing randomly (probability ``stall``).

    Fails (instead of hanging) if they do not all arrive within ``max_cycles``: a deadlock."""
    for _ in range(max_cycles):
        if len(out) >= count:
            break
        ready = rng.random() >= stall
        ctx.set(port.ready, ready)
        _, _, payload, valid = await ctx.tick().sample(port.payload, port.valid)
        if ready and valid:
            out.append(payload)
    ctx.set(port.ready, 0)
    assert len(out) == count, f"deadlock: only {len(out)} of {count} outputs after {max_cycles} cycles"


def run(dut, *benches):
    """Simulate ``dut`` until every testbench has finished."""
    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    for bench in benches:
        simulator.add_testbench(bench)
    simulator.run()
