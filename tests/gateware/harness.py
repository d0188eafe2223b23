"""Run a whole Accelerator in Amaranth's simulator and collect every stage's output stream."""

from __future__ import annotations

import random

from amaranth.sim import Simulator

from cnnhw.gateware.accelerator import Accelerator
from cnnhw.verify import ExpectedStreams, first_mismatch
from tests.gateware.streams import StreamMonitor, get_n, put_all


def simulate(accelerator: Accelerator, expected: ExpectedStreams, seed: int, gap: float = 0.25,
             stall: float = 0.25, max_cycles: int = 400_000):
    """Feed the inputs with random gaps, read outputs and classes with random stalls, and check the
    stream rule on every stage's output and the accelerator's ports (``StreamMonitor``); returns
    (per-stage streams, outputs, classes, cycles)."""
    rng = random.Random(seed)
    probes = [[] for _ in accelerator.stages]
    outputs, classes = [], []
    done = []
    cycles = [0]

    async def producer(ctx):
        await put_all(ctx, accelerator.i, expected.inputs, rng, gap)

    async def consumer(ctx):
        await get_n(ctx, accelerator.o, len(expected.outputs), rng, stall, outputs, max_cycles)
        done.append(True)

    async def class_reader(ctx):
        await get_n(ctx, accelerator.cls, len(expected.classes), rng, stall, classes, max_cycles)

    async def monitor(ctx):
        # Until every stage has streamed all it should: a stage may finish after the last output
        # (rows no later window needs), and must still produce exactly what the golden model does.
        signals = [(getattr(accelerator, f"probe{k}_fire"), getattr(accelerator, f"probe{k}_data"))
                   for k in range(len(accelerator.stages))]
        flat = [s for pair in signals for s in pair]
        lengths = [len(stream) for _, stream in expected.stages]
        while cycles[0] < max_cycles and not (done and all(len(p) >= n for p, n in zip(probes, lengths))):
            sampled = await ctx.tick().sample(*flat)
            values = sampled[2:]
            cycles[0] += 1
            for k in range(len(signals)):
                if values[2 * k]:
                    probes[k].append(int(values[2 * k + 1]))

    protocol = StreamMonitor()
    protocol.watch("input", accelerator.i)
    for name, stage in accelerator.stages:
        protocol.watch(f"layer '{name}' output", stage.o)
    protocol.watch("class", accelerator.cls)

    async def probes_then_stop(ctx):
        await monitor(ctx)
        protocol.stop = True

    simulator = Simulator(accelerator)
    simulator.add_clock(1e-8)
    for bench in (producer, consumer, class_reader, protocol.bench):
        simulator.add_testbench(bench)
    simulator.add_testbench(probes_then_stop)
    simulator.run()
    protocol.check()
    return probes, [int(v) for v in outputs], [int(c) for c in classes], cycles[0]


def assert_bit_exact(accelerator: Accelerator, expected: ExpectedStreams, probes, outputs, classes) -> None:
    """Every stage's stream, then the outputs and classes, compared with ``==``; the first
    difference names the layer, the element, and both values."""
    for (name, want), got in zip(expected.stages, probes):
        mismatch = first_mismatch(name, want, got)
        assert mismatch is None, str(mismatch)
    mismatch = first_mismatch("output", expected.outputs, outputs)
    assert mismatch is None, str(mismatch)
    assert classes == expected.classes, f"classes: expected {expected.classes}, got {classes}"
