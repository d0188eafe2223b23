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


class StreamMonitor:
    """Checks the ``amaranth.lib.stream`` rule on streams while a simulation runs: once ``valid``
    is high it stays high, and the payload stays the same, until the transfer (``ready``).
    ``watch(name, port)`` adds a stream; ``bench`` is the testbench to add (it runs until
    ``stop`` is set); ``violations`` lists what broke the rule (stream, cycle)."""

    def __init__(self):
        self.streams: list[tuple[str, object]] = []
        self.violations: list[str] = []
        self.stop = False
        self.transfers: dict[str, int] = {}

    def watch(self, name: str, port) -> None:
        self.streams.append((name, port))
        self.transfers[name] = 0

    async def bench(self, ctx):
        signals = [s for _, port in self.streams for s in (port.valid, port.ready, port.payload)]
        waiting: dict[str, object] = {}  # stream -> payload offered and not taken
        cycle = 0
        while not self.stop:
            sampled = (await ctx.tick().sample(*signals))[2:]
            cycle += 1
            for k, (name, _) in enumerate(self.streams):
                valid, ready, payload = sampled[3 * k:3 * k + 3]
                payload = payload.as_value() if hasattr(payload, "as_value") else payload
                if name in waiting:
                    if not valid:
                        self.violations.append(f"{name}: valid fell before the transfer (cycle {cycle})")
                    elif repr(payload) != waiting[name]:
                        self.violations.append(f"{name}: the payload changed before the transfer (cycle {cycle})")
                    del waiting[name]
                if valid and ready:
                    self.transfers[name] += 1
                elif valid:
                    waiting[name] = repr(payload)

    def check(self) -> None:
        assert not self.violations, "; ".join(self.violations[:5])
        assert all(self.transfers.values()), f"a watched stream never moved: {self.transfers}"


def run_monitored(dut, ports, benches) -> None:
    """Simulate ``dut`` with ``benches`` (producers and consumers) and the stream rule checked on
    ``ports`` ((name, port) pairs) until every bench has finished."""
    monitor = StreamMonitor()
    for name, port in ports:
        monitor.watch(name, port)
    remaining = [len(benches)]
    wrapped = []
    for bench in benches:
        async def done_then_stop(ctx, bench=bench):
            await bench(ctx)
            remaining[0] -= 1
            if not remaining[0]:
                monitor.stop = True
        wrapped.append(done_then_stop)
    run(dut, *wrapped, monitor.bench)
    monitor.check()
