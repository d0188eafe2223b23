"""A self-checking testbench top around an exported accelerator, so that simulation runs at the
simulator's own speed.

The harness instantiates the accelerator's Verilog module unchanged and does in hardware what a
testbench would otherwise do from Python on every cycle:

* it feeds the input stream from a ROM. The first ``timing_images`` images go in back to back;
  after them the source pauses at random (probability ``gap`` per element). Valid, once raised,
  stays raised with a stable payload until the transfer, as the stream rule requires;
* it accepts the output and class streams, always until ``timing_images`` classes are out, then
  refusing at random (probability ``stall`` per cycle);
* it compares every transfer of every stage's probe, of the output stream and of the class stream
  with the expected word in that stream's ROM (``==`` on the raw bits) and keeps, per stream, the
  transfer count, the number of differences and the first difference (index, the word received,
  and whether it came after the last expected word);
* it counts cycles and stamps the first input transfer, the first class and the
  ``timing_images``-th class.

``done`` rises when every stream has all its expected words; the counters stop there. A simulator
only has to run the clock and read :meth:`CheckingHarness.result_ports` at the end
(:mod:`cnnhw.sim.cocotb_harness`); :meth:`CheckingHarness.outcome` turns what it read into
mismatches and cycle counts.

The ROMs are :file:`hex_rom.v` modules that read their words from hex files (relative to the
simulator's working folder) when simulation starts; the settings (gap and stall probabilities, the
random seed, how many images are timed) are one such word too. So the harness Verilog depends on
the streams' lengths and widths only, and one compiled simulator serves any data and settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from amaranth import Cat, ClockSignal, Elaboratable, Instance, Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.utils import bits_for

from ..gateware.accelerator import Accelerator
from ..verify import ExpectedStreams, Mismatch

#: :file:`hex_rom.v`, the ROM the harness instantiates, and its module name.
ROM_SOURCE = Path(__file__).with_name("hex_rom.v")
ROM_MODULE = "cnnhw_hex_rom"
COUNTER_BITS = 40
RANDOM_BITS = 8  # a gap or a stall is decided by one random byte: probabilities in steps of 1/256


def hex_words(values, width: int) -> str:
    """``values`` (signed or not) as ``width``-bit two's-complement words, one hex word per line."""
    mask = (1 << width) - 1
    digits = max(1, (width + 3) // 4)
    return "".join(f"{int(v) & mask:0{digits}x}\n" for v in values)


def below(probability: float) -> int:
    """The random byte value below which an event of ``probability`` happens."""
    return min(1 << RANDOM_BITS, max(0, round(probability * (1 << RANDOM_BITS))))


class HexRom(Elaboratable):
    """An instance of :file:`hex_rom.v`: ``data`` is word ``addr`` of ``file`` (combinational)."""

    def __init__(self, width: int, depth: int, file: str):
        self.width, self.depth, self.file = width, max(1, depth), file
        self.addr = Signal(bits_for(self.depth))
        self.data = Signal(width)

    def elaborate(self, platform):
        m = Module()
        m.submodules.rom = Instance(ROM_MODULE, p_WIDTH=self.width, p_DEPTH=self.depth, p_FILE=self.file,
                                    i_addr=self.addr, o_data=self.data)
        return m


def xorshift_seed(seed: int) -> int:
    """A non-zero 32-bit start state for :class:`Xorshift32` from any integer ``seed``."""
    return (seed * 2654435761) & 0xFFFF_FFFF or 1


class Xorshift32(Elaboratable):
    """Marsaglia's xorshift32 generator, one step per cycle; ``value`` starts (in reset) at
    ``seed``, which must not be zero."""

    def __init__(self):
        self.seed = Signal(32)
        self.value = Signal(32, reset_less=True)

    def elaborate(self, platform):
        m = Module()
        a = self.value ^ (self.value << 13)[:32]
        b = a ^ (a >> 17)
        m.d.sync += self.value.eq(Mux(ResetSignal(), self.seed, b ^ (b << 5)[:32]))
        return m


@dataclass(frozen=True)
class Settings:
    """The run's settings, read by the harness from ``settings.hex`` (one word of 32-bit fields)."""

    gap_below: int  # a random byte below this: the source pauses
    stall_below: int  # a random byte below this: the sinks refuse
    gap_seed: int
    stall_seed: int
    timed_inputs: int  # input elements sent back to back
    timed_classes: int  # classes accepted without stalls

    FIELD_BITS = 32

    @classmethod
    def names(cls) -> list[str]:
        return [field.name for field in dataclasses.fields(cls)]

    @classmethod
    def bits(cls) -> int:
        return cls.FIELD_BITS * len(cls.names())

    def word(self) -> int:
        """The fields as one word, the first in the lowest bits."""
        return sum(getattr(self, name) << (index * self.FIELD_BITS) for index, name in enumerate(self.names()))

    @classmethod
    def unpack(cls, word) -> dict:
        """The fields of ``word`` (an Amaranth value) by name."""
        return {name: word[index * cls.FIELD_BITS:][:cls.FIELD_BITS] for index, name in enumerate(cls.names())}


@dataclass(frozen=True)
class CheckedStream:
    """A stream the harness checks: ``key`` prefixes its result ports, ``layer`` names it in
    mismatches; ``expected`` are its words and ``width`` their bits."""

    key: str
    layer: str
    expected: list[int]
    width: int
    signed: bool

    @property
    def file(self) -> str:
        return f"{self.key}.hex"

    def value(self, word: int) -> int:
        """A raw word of this stream as the integer it stands for."""
        return word - (1 << self.width) if self.signed and word >> (self.width - 1) else word


class StreamChecker(Elaboratable):
    """Compares the transfers of one stream with its expected words, in order.

    ``fire`` marks a transfer of ``data`` this cycle. ``count`` counts transfers and ``errors``
    those that differ from their expected word or come after the last one. The first of those is
    kept in ``first_index``, ``first_got`` and ``first_extra`` (it came after the last expected
    word). ``complete``: every expected word has come. ``image_cycle``: the value of ``cycles``
    when the first image's last word (word ``image_words - 1``) came."""

    FIELDS = ("count", "errors", "first_index", "first_got", "first_extra", "image_cycle")

    def __init__(self, stream: CheckedStream, image_words: int, cycles: Signal):
        self.length, self.image_words, self.cycles = len(stream.expected), image_words, cycles
        self.rom = HexRom(stream.width, self.length, stream.file)
        self.fire = Signal()
        self.data = Signal(stream.width)
        self.count = Signal(COUNTER_BITS)
        self.errors = Signal(COUNTER_BITS)
        self.first_index = Signal(COUNTER_BITS)
        self.first_got = Signal(stream.width)
        self.first_extra = Signal()
        self.image_cycle = Signal(COUNTER_BITS)
        self.complete = Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.rom = self.rom
        extra = self.count >= self.length
        m.d.comb += [self.rom.addr.eq(self.count), self.complete.eq(extra)]
        with m.If(self.fire):
            m.d.sync += self.count.eq(self.count + 1)
            with m.If(self.count == self.image_words - 1):
                m.d.sync += self.image_cycle.eq(self.cycles)
            with m.If(extra | (self.data != self.rom.data)):
                m.d.sync += self.errors.eq(self.errors + 1)
                with m.If(self.errors == 0):
                    m.d.sync += [self.first_index.eq(self.count), self.first_got.eq(self.data),
                                 self.first_extra.eq(extra)]
        return m


@dataclass(frozen=True)
class Outcome:
    """What a harness run found: one mismatch per stream that differs (classes apart)."""

    mismatches: list[Mismatch]
    class_mismatches: int  # classes that differ, are missing or are extra
    stage_cycles: list[tuple[str, int]]  # (layer, cycle of its first image's last element), stage by stage
    cycles: int
    first_input_cycle: int
    first_class_cycle: int
    timed_class_cycle: int


class CheckingHarness(Elaboratable):
    """The harness top (see the module docstring) around ``accelerator``, whose Verilog module is
    ``top``, checking it on ``expected``."""

    def __init__(self, accelerator: Accelerator, top: str, expected: ExpectedStreams, timing_images: int,
                 gap: float, stall: float, seed: int):
        self.top = top
        self.ports = {}  # the accelerator's port name -> (flow, a signal of its shape)
        for path, member, value in accelerator.signature.flatten(accelerator):
            name = "__".join(map(str, path))
            self.ports[name] = (member.flow, Signal(value.shape(), name=f"dut_{name}"))
        self.inputs = expected.inputs
        self.images = len(expected.classes)
        self.timing_images = max(1, min(timing_images, self.images))
        self.settings = Settings(below(gap), below(stall), xorshift_seed(seed), xorshift_seed(seed + 1),
                                 self.timing_images * (len(self.inputs) // self.images), self.timing_images)
        self.streams = [self._stream(f"stage{k}", name, words, f"probe{k}_data")
                        for k, (name, words) in enumerate(expected.stages)]
        self.streams.append(self._stream("output", "output", expected.outputs, "o__payload"))
        self.streams.append(self._stream("classes", "class", expected.classes, "cls__payload"))
        self.done = Signal()
        self.cycles = Signal(COUNTER_BITS)
        self.checkers = [StreamChecker(stream, len(stream.expected) // self.images, self.cycles)
                         for stream in self.streams]
        self.first_input_cycle = Signal(COUNTER_BITS)
        self.first_class_cycle = Signal(COUNTER_BITS)
        self.timed_class_cycle = Signal(COUNTER_BITS)

    def _stream(self, key: str, layer: str, words: list[int], port: str) -> CheckedStream:
        shape = self.ports[port][1].shape()
        return CheckedStream(key, layer, words, shape.width, shape.signed)

    @property
    def input_width(self) -> int:
        return self.ports["i__payload"][1].shape().width

    def files(self) -> dict[str, str]:
        """The ROM files the simulation reads: file name -> text."""
        texts = {"inputs.hex": hex_words(self.inputs, self.input_width),
                 "settings.hex": hex_words([self.settings.word()], Settings.bits())}
        texts.update((stream.file, hex_words(stream.expected, stream.width)) for stream in self.streams)
        return texts

    def result_ports(self) -> dict[str, Signal]:
        """The ports a testbench reads at the end, by name."""
        results = {"done": self.done, "cycles": self.cycles, "first_input_cycle": self.first_input_cycle,
                   "first_class_cycle": self.first_class_cycle, "timed_class_cycle": self.timed_class_cycle}
        for stream, checker in zip(self.streams, self.checkers):
            results.update((f"{stream.key}_{field}", getattr(checker, field)) for field in StreamChecker.FIELDS)
        return results

    def outcome(self, read: dict[str, int]) -> Outcome:
        """The mismatches and cycle stamps in ``read`` (the value of every result port)."""
        mismatches, class_mismatches = [], 0
        for stream in self.streams:
            count, errors = read[f"{stream.key}_count"], read[f"{stream.key}_errors"]
            missing = max(0, len(stream.expected) - count)
            if stream.key == "classes":
                class_mismatches = errors + missing
            elif errors:
                index = read[f"{stream.key}_first_index"]
                got = stream.value(read[f"{stream.key}_first_got"])
                want = None if read[f"{stream.key}_first_extra"] else stream.expected[index]
                mismatches.append(Mismatch(stream.layer, index, want, got))
            elif missing:
                mismatches.append(Mismatch(stream.layer, count, stream.expected[count], None))
        stage_cycles = [(stream.layer, read[f"{stream.key}_image_cycle"]) for stream in self.streams[:-2]]
        return Outcome(mismatches, class_mismatches, stage_cycles, read["cycles"], read["first_input_cycle"],
                       read["first_class_cycle"], read["timed_class_cycle"])

    def elaborate(self, platform):
        m = Module()
        port = {name: signal for name, (_, signal) in self.ports.items()}
        m.submodules.dut = Instance(self.top, i_clk=ClockSignal(), i_rst=ResetSignal(),
                                    **{("i_" if flow == wiring.In else "o_") + name: signal
                                       for name, (flow, signal) in self.ports.items()})
        for name, (flow, signal) in self.ports.items():
            if flow == wiring.In and name.startswith("load__"):
                m.d.comb += signal.eq(0)  # SPRAM weights start filled in simulation: nothing loads them
        m.submodules.settings = settings_rom = HexRom(Settings.bits(), 1, "settings.hex")
        settings = Settings.unpack(settings_rom.data)
        m.submodules.gaps = gaps = Xorshift32()
        m.submodules.stalls = stalls = Xorshift32()
        m.d.comb += [gaps.seed.eq(settings["gap_seed"]), stalls.seed.eq(settings["stall_seed"])]
        with m.If(~self.done):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        # The source: the input ROM, back to back for the timed images, then with gaps.
        total = len(self.inputs)
        m.submodules.inputs = inputs = HexRom(self.input_width, total, "inputs.hex")
        sent, valid = Signal(bits_for(total)), Signal()
        transfer = valid & port["i__ready"]
        after = Signal.like(sent)  # elements sent once this cycle's transfer (if any) is done
        m.d.comb += [after.eq(sent + transfer), inputs.addr.eq(sent),
                     port["i__valid"].eq(valid), port["i__payload"].eq(inputs.data)]
        with m.If(transfer):
            m.d.sync += sent.eq(after)
            with m.If(sent == 0):
                m.d.sync += self.first_input_cycle.eq(self.cycles)
        with m.If(~valid | transfer):  # the slot for the next element: present it, or pause
            pause = gaps.value[:RANDOM_BITS] < settings["gap_below"]
            m.d.sync += valid.eq((after < total) & ((after < settings["timed_inputs"]) | ~pause))

        # The sinks, and a checker on every stream.
        classes = self.checkers[-1]
        accept = (classes.count < settings["timed_classes"]) | (stalls.value[:RANDOM_BITS] >= settings["stall_below"])
        m.d.comb += [port["o__ready"].eq(accept), port["cls__ready"].eq(accept)]
        transfers = [(port[f"probe{k}_fire"], port[f"probe{k}_data"]) for k in range(len(self.streams) - 2)]
        transfers.append((port["o__valid"] & accept, port["o__payload"]))
        transfers.append((port["cls__valid"] & accept, port["cls__payload"]))
        for stream, checker, (fire, data) in zip(self.streams, self.checkers, transfers):
            m.submodules[f"check_{stream.key}"] = checker
            m.d.comb += [checker.fire.eq(fire), checker.data.eq(data.as_unsigned())]
        with m.If(transfers[-1][0]):
            with m.If(classes.count == 0):
                m.d.sync += self.first_class_cycle.eq(self.cycles)
            with m.If(classes.count == settings["timed_classes"] - 1):
                m.d.sync += self.timed_class_cycle.eq(self.cycles)
        m.d.comb += self.done.eq(Cat(checker.complete for checker in self.checkers).all())
        return m
