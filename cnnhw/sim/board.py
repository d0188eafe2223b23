"""Board-level simulation (``cnnhw sim --board``): the whole board top, driven through its pins.

The exported Verilog is the board top without the platform wrapper (PLL and IO buffers):
UART receiver and transmitter, the framed protocol, the accelerator. On iCE40 it instantiates the
primitives the bitstream uses (SB_MAC16 for packed products, SB_SPRAM256KA), simulated with yosys'
models (:mod:`cnnhw.sim.primitives`). An ECP5 top instantiates none: yosys infers its MULT18X18Ds
and DP16KDs from this same Verilog (its ECP5 library has no simulation model of MULT18X18D to
check a netlist with), so the simulation runs exactly the source the bitstream is synthesized from.
The scenario is what a host does to a board, including the mistakes:

1. STATUS request -> STATUS READY;
2. each image as a CLASSIFY frame -> RESULT with every logit and the class == the golden model;
3. a frame with a bad checksum -> ERROR BAD_CHECKSUM, then that image again -> its RESULT;
4. half an image, then silence -> ERROR TIMEOUT; a CLASSIFY of the wrong length -> ERROR BAD_LENGTH;
5. with two image buffers (the plan's ``image_buffers``), two images back to back, the second sent
   while the first is computed (as ``cnnhw run`` keeps two in flight) -> both RESULTs, in order;
6. half an image, then the reset button -> no reply, and the next image is classified correctly.

When the plan keeps weights in SPRAM, the simulation starts at power-up with a model of the SPI
flash (``spi_flash.v``) holding a stand-in bitstream and the weight image at the profile's offset,
and the SPRAM blocks are yosys' models, initially empty: the loader must fill them. The scenario
then begins with a STATUS request and an image while the weights load (both answered
LOADING_WEIGHTS), waits for the load, and goes on as above (a reset reloads the weights). A second
run on the same build, with one payload byte of the image flipped, must answer BAD_WEIGHTS to
STATUS and to an image: never a class.

Replies are decoded with :mod:`cnnhw.protocol.frames`, the code ``cnnhw run`` uses.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..boards import Board
from ..errors import CnnhwError
from amaranth import Instance, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..gateware.board import BoardTop, uart_divisor
from ..gateware.loader import load_cycles
from ..hardware import HardwarePlan, Network, predict_cycles_per_inference
from ..quant.qgraph import QGraph
from ..protocol.frames import (Error, FrameDecoder, FrameType, Status, decode_result, encode, image_payload,
                               result_payload_bytes)
from ..protocol.weight_image import HEADER, WeightImage
from ..verify import expected_streams, first_mismatch
from .primitives import PrimitivesPlatform, primitive_models
from .runner import run_cocotb

#: The board top's module name, and the control file that makes its pins (only) visible to cocotb.
BOARD_TOP = "cnnhw_board"
PUBLIC_PINS = Path(__file__).with_name("board_public.vlt")

#: A short mid-frame timeout (in bytes on the wire) keeps the timeout step quick to simulate.
SIM_TIMEOUT_BYTES = 64


@dataclass
class Step:
    label: str
    send: bytes
    expect: list[tuple[int, bytes | int | None]]  # (frame type, payload, or image index for RESULT)
    reply_bytes: int = 0
    max_cycles: int = 0
    quiet_cycles: int = 0
    reset: bool = False
    after_reset_cycles: int = 0


@dataclass
class BoardSimResult:
    simulator: str
    clock_mhz: float
    divisor: int
    images: int
    classified: int  # RESULT frames equal to the golden model
    results: int  # RESULT frames the scenario asks for (an image may be sent twice)
    failures: list[str] = field(default_factory=list)  # first difference of each failing step
    checks: list[tuple[str, bool]] = field(default_factory=list)
    build_seconds: float = 0.0
    run_seconds: float = 0.0
    weight_image_bytes: int = 0  # loaded from the flash model at power-up (0: no SPRAM weights)

    @property
    def passed(self) -> bool:
        return not self.failures


def loading_steps(image_bytes: int, byte_cycles: int, payload: bytes, wait_cycles: int,
                  final: Status) -> list[Step]:
    """From power-up: STATUS and an image while loading, then STATUS once loaded (``final``)."""
    short = len(encode(FrameType.ERROR, bytes(1)))
    loading = bytes([Status.LOADING_WEIGHTS])
    return [Step("status while the weights load", encode(FrameType.STATUS_REQUEST),
                 [(FrameType.STATUS, loading)], short, 200 * byte_cycles),
            Step("an image while the weights load", encode(FrameType.CLASSIFY, payload),
                 [(FrameType.STATUS, loading)], short, 200 * byte_cycles),
            Step(f"waiting for the {image_bytes:,}-byte weight image", b"", [], quiet_cycles=wait_cycles),
            Step("status once loaded", encode(FrameType.STATUS_REQUEST), [(FrameType.STATUS, bytes([final]))],
                 short, 200 * byte_cycles)]


def scenario(qgraph: QGraph, plan: HardwarePlan, inputs: list[int], images: int, logit_bytes: int,
             timeout_cycles: int, divisor: int, weights: WeightImage | None = None,
             reload: int = 0) -> list[Step]:
    """The steps (see the module docstring); with ``weights``, from power-up, ``reload`` cycles
    allowed for each load of them."""
    first = qgraph.layers[0].in_format
    per_image = len(inputs) // images
    payloads = [image_payload(inputs[k * per_image:(k + 1) * per_image], first.signed, first.bits)
                for k in range(images)]
    classes = math.prod(qgraph.layers[-1].out_shape)
    byte_cycles = 10 * divisor
    result_bytes = len(encode(FrameType.RESULT, bytes(result_payload_bytes(classes, logit_bytes))))
    short = len(encode(FrameType.ERROR, bytes(1)))
    compute = 4 * predict_cycles_per_inference(qgraph, plan) + 100_000

    def classify(k, label):
        return Step(label, encode(FrameType.CLASSIFY, payloads[k]), [(FrameType.RESULT, k)], result_bytes,
                    compute + result_bytes * byte_cycles)

    half = encode(FrameType.CLASSIFY, payloads[0])[:len(payloads[0]) // 2]
    bad_checksum = bytearray(encode(FrameType.CLASSIFY, payloads[min(1, images - 1)]))
    bad_checksum[-1] ^= 0x5A
    steps = [] if weights is None else loading_steps(len(weights.to_bytes()), byte_cycles, payloads[0], reload,
                                                     Status.READY)
    steps += [Step("status request", encode(FrameType.STATUS_REQUEST), [(FrameType.STATUS, bytes([Status.READY]))],
                   short, 200 * byte_cycles),
              classify(0, "image 0")]
    steps.append(Step("bad checksum", bytes(bad_checksum), [(FrameType.ERROR, bytes([Error.BAD_CHECKSUM]))], short,
                      200 * byte_cycles))
    steps.append(classify(min(1, images - 1), f"image {min(1, images - 1)} after a bad checksum"))
    steps.append(Step("half a frame, then silence", half, [(FrameType.ERROR, bytes([Error.TIMEOUT]))], short,
                      2 * timeout_cycles + 200 * byte_cycles))
    steps.append(Step("wrong length", encode(FrameType.CLASSIFY, payloads[0][:3]),
                      [(FrameType.ERROR, bytes([Error.BAD_LENGTH]))], short, 200 * byte_cycles))
    second = min(1, images - 1)
    if plan.image_buffers == 2:
        steps.append(Step("two images back to back", encode(FrameType.CLASSIFY, payloads[0]) +
                          encode(FrameType.CLASSIFY, payloads[second]),
                          [(FrameType.RESULT, 0), (FrameType.RESULT, second)],
                          2 * result_bytes, 2 * (compute + result_bytes * byte_cycles)))
    steps.append(Step("half a frame, then reset" + (" (the weights reload)" if weights is not None else ""), half, [],
                      quiet_cycles=20 * byte_cycles, reset=True, after_reset_cycles=reload))
    for k in range(2, images):
        steps.append(classify(k, f"image {k}" + (" after a reset" if k == 2 else "")))
    if images > 2:
        return steps
    return steps + [classify(images - 1, f"image {images - 1} after a reset")]


def check_replies(steps: list[Step], replies: list[bytes], expected_logits: list[list[int]],
                  expected_classes: list[int], logit_bytes: int,
                  signed: bool = True) -> tuple[int, list[str], list[tuple[str, bool]]]:
    """Compare every step's reply bytes with what it expects; (RESULTs equal to golden, failures, checks)."""
    classified, failures, checks = 0, [], []
    for step, reply in zip(steps, replies):
        decoder = FrameDecoder(max_length=1 << 16)
        frames = decoder.feed(reply)
        problem = None
        if len(frames) != len(step.expect) or decoder.rejected:
            problem = (f"expected {len(step.expect)} reply frame(s), got {len(frames)} "
                       f"({decoder.rejected} malformed; bytes {reply.hex() or 'none'})")
        for frame, (kind, want) in zip(frames, step.expect):
            if problem:
                break
            if frame.type != kind:
                problem = f"expected a frame of type 0x{kind:02X}, got 0x{frame.type:02X} ({frame.payload.hex()})"
            elif kind == FrameType.RESULT:
                try:
                    result = decode_result(frame, len(expected_logits[want]), logit_bytes, signed)
                except ValueError as error:
                    problem = str(error)
                    break
                mismatch = first_mismatch(f"logits of image {want}", expected_logits[want], result.logits)
                if mismatch is not None:
                    problem = str(mismatch)
                elif result.cls != expected_classes[want]:
                    problem = f"image {want}: expected class {expected_classes[want]}, got {result.cls}"
                else:
                    classified += 1
            elif frame.payload != want:
                problem = f"expected payload {want.hex()}, got {frame.payload.hex()}"
        checks.append((step.label, problem is None))
        if problem:
            failures.append(f"{step.label}: {problem}")
    if len(replies) != len(steps):
        failures.append(f"the simulation ended after {len(replies)} of {len(steps)} steps")
    return classified, failures, checks


class FlashedBoard(wiring.Component):
    """The board top with a model of its SPI flash on the ``spi`` pins (simulation only)."""

    def __init__(self, top: BoardTop, flash_size: int):
        self.top, self.flash_size = top, flash_size
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1),
                          "last_class": Out(top.last_class.shape())})

    def elaborate(self, platform):
        m = Module()
        m.submodules.board = top = self.top
        m.d.comb += [top.rx.eq(self.rx), self.tx.eq(top.tx), self.busy.eq(top.busy),
                     self.last_class.eq(top.last_class)]
        m.submodules.flash = Instance("spi_flash", p_SIZE=self.flash_size, i_cs_n=top.spi.cs_n, i_sck=top.spi.sck,
                                      i_mosi=top.spi.copi, o_miso=top.spi.cipo)
        return m


def write_flash_hex(path: Path, image: bytes, offset: int, bitstream_bytes: int) -> None:
    """``$readmemh`` contents of the flash: a stand-in bitstream (iCE40 preamble, then fixed
    pseudo-random bytes) at 0 and ``image`` at ``offset``; the model erases the rest to 0xFF."""
    stand_in = bytes([0xFF, 0x00, 0x00, 0xFF, 0x7E, 0xAA, 0x99, 0x7E])
    stand_in += np.random.default_rng(5).integers(0, 256, bitstream_bytes - len(stand_in), dtype=np.uint8).tobytes()
    lines = ["@0", *(f"{b:02x}" for b in stand_in), f"@{offset:x}", *(f"{b:02x}" for b in image)]
    path.write_text("\n".join(lines) + "\n")


def corrupted(image: bytes) -> bytes:
    """``image`` with one bit of its payload flipped (the header still matches: only the CRC can tell)."""
    damaged = bytearray(image)
    damaged[HEADER.size + (len(image) - HEADER.size) // 2] ^= 0x10
    return bytes(damaged)


def simulate_board(qgraph: QGraph, plan: HardwarePlan, board: Board, x: np.ndarray, build_dir: Path,
                   clock_mhz: float | None = None, simulator: str = "verilator") -> BoardSimResult:
    """Export the board top at ``clock_mhz`` (default: the profile's first try), run the scenario
    on the images ``x`` (at least two), and check every reply. With SPRAM weights, also the
    corrupted-image run (its checks are listed after the first run's)."""
    from amaranth.back import verilog

    if len(x) < 2:
        raise CnnhwError("the board simulation needs at least two images (it repeats one after a bad frame)")
    clock_mhz = clock_mhz or board.first_try_mhz
    board.pll_for(clock_mhz)
    baud = board.link_baud(clock_mhz * 1e6)  # as the build makes the board top at this clock
    divisor = uart_divisor(clock_mhz * 1e6, baud)
    timeout_cycles = SIM_TIMEOUT_BYTES * 10 * divisor
    offset = board.flash.get("weights_offset")  # a board without SPRAM (ECP5) has no weight image
    top = Network(qgraph, plan).board_top(clock_mhz * 1e6, baud,
                                          timeout_s=timeout_cycles / (clock_mhz * 1e6), weights_offset=offset)
    weights = top.accelerator.weight_image()
    expected = expected_streams(qgraph, x)
    classes = top.accelerator.classes
    logits = [expected.outputs[k * classes:(k + 1) * classes] for k in range(len(x))]
    reload = load_cycles(weights, clock_mhz * 1e6) if weights is not None else 0
    steps = scenario(qgraph, plan, expected.inputs, len(x), top.front.logit_bytes, timeout_cycles, divisor, weights,
                     reload)

    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    name = BOARD_TOP
    source = build_dir / f"{name}.v"
    models = [primitive_models(build_dir)]
    # With the primitives the bitstream uses (SB_MAC16, SB_SPRAM256KA), simulated by yosys' models.
    design = top
    if weights is not None:
        image = weights.to_bytes()
        flash_size = 1 << (offset + len(image) - 1).bit_length()
        design = FlashedBoard(top, flash_size)
        models.append(Path(__file__).with_name("spi_flash.v"))
    source.write_text(verilog.convert(design, name=name, emit_src=False, platform=PrimitivesPlatform()))

    def run(steps: list[Step], tag: str, plusargs: list[str]) -> tuple[list[bytes], float, float]:
        data_path, results_path = build_dir / f"board_steps{tag}.json", build_dir / f"board_results{tag}.json"
        data_path.write_text(json.dumps({"divisor": divisor, "steps": [
            {"send": s.send.hex(), "reply_bytes": s.reply_bytes, "max_cycles": s.max_cycles,
             "quiet_cycles": s.quiet_cycles, "reset": s.reset, "after_reset_cycles": s.after_reset_cycles}
            for s in steps]}))
        results_path.unlink(missing_ok=True)
        seconds = run_cocotb([PUBLIC_PINS, source, *models], name, "cnnhw.sim.cocotb_board", build_dir, simulator,
                             {"CNNHW_SIM_DATA": str(data_path), "CNNHW_SIM_RESULTS": str(results_path)}, plusargs,
                             every_signal_public=False)
        if not results_path.is_file():
            raise CnnhwError(f"the board simulation wrote no results; see {build_dir / 'sim.log'}")
        return [bytes.fromhex(r) for r in json.loads(results_path.read_text())["replies"]], *seconds

    plusargs = []
    if weights is not None:
        write_flash_hex(build_dir / "flash.hex", image, offset, board.flash["bitstream_bytes"])
        plusargs = [f"+FLASH_HEX={build_dir / 'flash.hex'}"]
    replies, build_seconds, run_seconds = run(steps, "", plusargs)
    classified, failures, checks = check_replies(steps, replies, logits, expected.classes, top.front.logit_bytes,
                                                 top.front.logit.signed)
    if weights is not None:
        write_flash_hex(build_dir / "flash_corrupted.hex", corrupted(image), offset, board.flash["bitstream_bytes"])
        byte_cycles = 10 * divisor
        first = qgraph.layers[0].in_format
        payload = image_payload(expected.inputs[:len(expected.inputs) // len(x)], first.signed, first.bits)
        bad_steps = loading_steps(len(image), byte_cycles, payload, reload, Status.BAD_WEIGHTS)
        bad_steps.append(Step("an image with bad weights", encode(FrameType.CLASSIFY, payload),
                              [(FrameType.STATUS, bytes([Status.BAD_WEIGHTS]))],
                              len(encode(FrameType.ERROR, bytes(1))), 200 * byte_cycles))
        for step in bad_steps:
            step.label = f"corrupted weight image: {step.label}"
        bad_replies, more_build, more_run = run(bad_steps, "_corrupted", [f"+FLASH_HEX={build_dir / 'flash_corrupted.hex'}"])
        _, bad_failures, bad_checks = check_replies(bad_steps, bad_replies, logits, expected.classes,
                                                    top.front.logit_bytes, top.front.logit.signed)
        failures += bad_failures
        checks += bad_checks
        build_seconds += more_build
        run_seconds += more_run
    results = sum(kind == FrameType.RESULT for step in steps for kind, _ in step.expect)
    return BoardSimResult(simulator, clock_mhz, divisor, len(x), classified, results, failures, checks,
                          build_seconds, run_seconds, len(image) if weights is not None else 0)
