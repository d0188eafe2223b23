"""``cnnhw build``: from a quantized model and a plan to a bitstream, with the timing search.

Before any attempt the build verifies what it builds (``verify``): the accelerator's Verilog for
exactly this plan is compiled with Verilator and fed a few images, and every layer's output is
compared with the golden model with ``==``; a difference fails the build, naming the first one.

One *attempt* builds the board top at one PLL frequency with the tools of the board's family
(:mod:`cnnhw.families`): elaborate (Amaranth platform files), synthesise (yosys ``synth_ice40
-dsp`` or ``synth_ecp5``), check the netlist against the board budget, place and route (nextpnr
``--report``), and, if timing is met, pack (icepack or ecppack). The design depends on the clock
(UART divisor, timeouts, PLL dividers), so each frequency is its own attempt.

Timing search (no ``clock_mhz`` given): start at the profile's ``first_try_mhz``; after each
attempt move to the fastest untried PLL frequency at or below the achieved Fmax (faster after a
pass, slower after a miss); when none is left, retry once, with the next placement seed, a missed
frequency that a slower attempt's Fmax reached; stop after ``MAX_ATTEMPTS`` rounds. With several
workers (``cnnhw/cluster.py``) a round tries as many clocks at once: the first try and the settings
below it, then the fastest untried settings under the Fmax reached. The result is the
attempt that met timing with the most images per second end to end (the slower of sending an image
at the link rate that clock makes and computing it), the fastest clock among equals. With
``clock_mhz`` the build uses that frequency or fails.

Output folder (written atomically: assembled in a hidden sibling folder and renamed into place;
a failed build is left as ``<DIR>.failed/`` with its logs, never as ``DIR``)::

    <top>.bin/.bit       the bitstream (iCE40/ECP5)
    weights.bin          the weight image, when weights are in SPRAM (``protocol/weight_image.py``;
                         ``cnnhw flash`` writes it at the profile's ``flash.weights_offset``)
    build.json           the facts (DESIGN.md: build JSON keys; ``files``: the SHA-256 of each file
                         flash and run may read, checked before they use it)
    report.html          the model card (``cnnhw/card.py``), made from build.json alone
    .cnnhw               the marker of a cnnhw output folder (``cnnhw/outputs.py``)
    plan.json            the hardware plan
    rtl/                 the accelerator's Verilog and manifest (as ``cnnhw sim`` writes them), the
                         design the verification simulated
    attempts/<f>MHz/     per attempt: RTLIL, constraints (PCF/LPF), yosys/nextpnr logs and reports
                         (``<f>MHz-seed<n>/`` for a retry with another placement seed)
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..boards import Board
from ..card import CARD_FILE, write_card
from ..cluster import Workers
from ..errors import BuildError, DoesNotFitError
from ..outputs import mark_folder, replace_folder, staging_folder, write_json
from ..hardware import HardwarePlan, Network, predict_cycles_per_inference
from ..hardware.network import network_of
from ..plan.budget import budget_table, check_fits
from ..plan.costs import needs, plan_costs, plan_facts
from ..progress import stage
from ..quant.qgraph import QGraph
from ..sim.runner import simulate_export
from ..verify import expected_streams
from ..runtime.flash import file_digest
from ..protocol.frames import FrameType, encode, logit_bytes, result_payload_bytes
from ..families import Toolchain
from .tools import PlaceRouteReport, find_toolchain, run_tool, synthesis_cells
from .verilog import Export, export_verilog, identifier

log = logging.getLogger("cnnhw")
MAX_ATTEMPTS = 4
#: Plans tried again within fewer logic cells when a design is over them (``build_fitting``).
MAX_REFITS = 3
#: How nextpnr says that the cells do not fit the device.
PLACEMENT_FULL = ("Unable to place", "no BELs remaining", "too many", "Failed to expand region")
#: The weight image's file in the build folder (when the plan keeps weights in SPRAM).
WEIGHT_IMAGE_FILE = "weights.bin"


@dataclass
class Attempt:
    clock_mhz: float
    folder: Path
    fmax_mhz: float = 0.0
    timing_met: bool = False
    resources: dict[str, tuple[int, int]] = field(default_factory=dict)
    synthesis: dict[str, int] = field(default_factory=dict)  # what the netlist needs (logic cells as packed)
    seconds: dict[str, float] = field(default_factory=dict)
    bitstream: Path | None = None
    seed: int = 1  # nextpnr's placement seed

    def facts(self) -> dict:
        return {"clock_mhz": self.clock_mhz, "seed": self.seed, "fmax_mhz": round(self.fmax_mhz, 2),
                "timing_met": self.timing_met,
                "seconds": {k: round(v, 1) for k, v in self.seconds.items()}}


@dataclass(frozen=True)
class VerifyInputs:
    """The images the build simulates (in the model's input units), and where they came from."""

    x: np.ndarray
    source: str


def verify_export(qgraph: QGraph, export: Export, inputs: VerifyInputs, folder: Path) -> dict:
    """Simulate ``export`` (Verilator) on ``inputs`` and compare every layer with the golden model;
    BuildError naming the first difference if any. Returns build.json's ``verified``."""
    x = inputs.x if len(inputs.x) >= 2 else np.concatenate([inputs.x, inputs.x])  # two to time one
    expected = expected_streams(qgraph, x)
    result = simulate_export(export, expected, folder, timing_images=min(3, len(x)))
    if not result.bit_exact:
        first = (str(result.mismatches[0]) if result.mismatches else
                 f"{result.class_mismatches} of {len(x)} classes differ")
        raise BuildError(f"verification failed: the Verilog does not compute what the golden model does ({first}); "
                         f"see {folder}")
    return {"images": len(x), "inputs": inputs.source, "bit_exact": True, "simulator": result.simulator,
            "cycles_per_inference": result.cycles_per_inference, "latency_cycles": result.latency_cycles,
            "seconds": round(result.build_seconds + result.run_seconds, 1)}


@dataclass(frozen=True)
class BuildResult:
    folder: Path
    facts: dict
    attempts: list[Attempt]


def failed_folder(folder: Path) -> Path:
    """Where a failed build of ``folder`` keeps its logs (the CLI checks it is cnnhw's before the build)."""
    return folder.parent / f"{folder.name}.failed"


def frame_bytes(qgraph: QGraph) -> int:
    """Bytes on the wire for one CLASSIFY frame (one byte per input element plus framing)."""
    return len(encode(FrameType.CLASSIFY, bytes(math.prod(qgraph.graph.input_shape))))


def result_frame_bytes(qgraph: QGraph) -> int:
    """Bytes on the wire for one RESULT frame (every output value, the class, framing)."""
    last = qgraph.layers[-1]
    payload = result_payload_bytes(math.prod(last.out_shape), logit_bytes(last.out_format.bits))
    return len(encode(FrameType.RESULT, bytes(payload)))


def wire_seconds(frame: int, baud: int) -> float:
    """How long ``frame`` bytes take on the UART at ``baud`` (8N1: ten bit times a byte)."""
    return frame * 10 / baud


def images_per_second(qgraph: QGraph, plan: HardwarePlan, board: Board, mhz: float) -> float:
    """End to end at ``mhz``, sending an image at ``Board.link_baud`` (8N1: ten bit times a byte).
    With two image buffers the board receives an image while it computes the one before: the slower
    of the two sets the rate. With one, each image waits for the one before: sending it, its latency
    and its RESULT in turn."""
    baud, hz = board.link_baud(mhz * 1e6), mhz * 1e6
    send_s = wire_seconds(frame_bytes(qgraph), baud)
    if plan.image_buffers == 2:
        return 1 / max(send_s, predict_cycles_per_inference(qgraph, plan) / hz)
    return 1 / (send_s + network_of(qgraph, plan).latency() / hz + wire_seconds(result_frame_bytes(qgraph), baud))


def best_attempt(qgraph: QGraph, plan: HardwarePlan, board: Board, passed: list[Attempt]) -> Attempt:
    """Of the attempts that met timing, the one with the most images per second end to end; the
    fastest clock among equals (at 27 MHz the iCEBreaker's link makes 3 Mbaud, at 24 MHz 6 Mbaud)."""
    return max(passed, key=lambda a: (images_per_second(qgraph, plan, board, a.clock_mhz), a.clock_mhz))


def board_platform(board: Board):
    module, name = board.platform.split(":")
    return getattr(importlib.import_module(module), name)()


def _top_name(qgraph: QGraph) -> str:
    return f"cnnhw_{identifier(qgraph.graph.name)}_top"


def _board_files(qgraph: QGraph, plan: HardwarePlan, board: Board, mhz: float, top: str) -> dict[str, str | bytes]:
    from .platform_top import PlatformTop

    pll = board.pll_for(mhz)
    design = PlatformTop(Network(qgraph, plan).board_top(pll.mhz * 1e6, board.link_baud(pll.mhz * 1e6),
                                                         weights_offset=board.flash.get("weights_offset")), board, pll)
    return board_platform(board).prepare(design, name=top).files


@contextmanager
def _timed(seconds: dict[str, float], key: str, label: str):
    """A progress stage whose duration is also kept in ``seconds[key]``."""
    started = time.perf_counter()
    with stage(label):
        yield
    seconds[key] = time.perf_counter() - started


def synthesize(qgraph: QGraph, plan: HardwarePlan, board: Board, mhz: float, tools: Toolchain, folder: Path,
               timed: Callable | None = None) -> dict[str, int]:
    """Elaborate the board top for ``plan`` at ``mhz`` into ``folder``, synthesise it (yosys) and
    pack it (nextpnr ``--pack-only``, a second): what it needs in budget units, logic cells as
    nextpnr packs them (placement uses the same count). ``timed(key, label)``: a progress stage."""
    top = _top_name(qgraph)
    family = board.family
    timed = timed or (lambda key, label: stage(label))
    with timed("elaborate", f"{mhz:g} MHz: elaborating the board top"):
        files = _board_files(qgraph, plan, board, mhz, top)
        for suffix in (".il", family.constraints_suffix):
            content = files[f"{top}{suffix}"]
            (folder / f"{top}{suffix}").write_bytes(content if isinstance(content, bytes) else content.encode())
        (folder / "synth.ys").write_text(family.synthesis_script(top))
    with timed("synthesis", f"{mhz:g} MHz: synthesis (yosys)"):
        run_tool("yosys", [tools.yosys, "-q", "-l", "yosys.log", "synth.ys"], folder, folder / "yosys.console.log")
    needs = family.synthesis_needs(synthesis_cells(folder / "synth_stat.json"))
    with timed("count", f"{mhz:g} MHz: counting logic cells (nextpnr --pack-only)"):
        run_tool("nextpnr", [tools.nextpnr, "--quiet", "--log", "pack.log", *_nextpnr_design(board, top),
                             "--pack-only", "--report", "pack_report.json"], folder, folder / "nextpnr.console.log")
    packed = PlaceRouteReport.read_utilization(folder / "pack_report.json", family)
    return {**needs, "logic_cells": packed["logic_cells"][0]}


def _nextpnr_design(board: Board, top: str) -> list[str]:
    """nextpnr's device options and input files (the netlist, the pin constraints)."""
    family = board.family
    constraints = f"{top}{family.constraints_suffix}"
    return [*family.nextpnr_device(board), "--json", f"{top}.json", f"--{family.constraints_suffix[1:]}", constraints]


def run_attempt(qgraph: QGraph, plan: HardwarePlan, board: Board, mhz: float, tools: Toolchain, folder: Path,
                seed: int) -> Attempt:
    """Build at ``mhz``; the bitstream is packed only when timing is met."""
    attempt = Attempt(mhz, folder, seed=seed)
    folder.mkdir(parents=True)
    top = _top_name(qgraph)

    def timed(key, label):
        return _timed(attempt.seconds, key, label)

    needs = attempt.synthesis = synthesize(qgraph, plan, board, mhz, tools, folder, timed)
    check_fits(needs, board, "after synthesis, logic cells as packed")
    routed_option, routed = board.family.routed_output(top)
    with timed("place_and_route", f"{mhz:g} MHz: place and route (nextpnr)"):
        try:
            run_tool("nextpnr", [tools.nextpnr, "--quiet", "--log", "nextpnr.log", *_nextpnr_design(board, top),
                                 *routed_option, "--router", tools.router,
                                 "--report", "nextpnr_report.json", "--freq", f"{mhz:g}",
                                 "--seed", str(seed), "--timing-allow-fail"], folder, folder / "nextpnr.console.log")
        except BuildError as error:
            if any(sign in str(error) for sign in PLACEMENT_FULL):
                cells = re.search(r"of (\d+) (?:ICESTORM_LCs|TRELLIS_COMBs)", str(error))
                if cells:  # nextpnr's own count of the logic cells it needed
                    needs = {**needs, "logic_cells": int(cells.group(1))}
                raise DoesNotFitError(f"the design does not fit the {board.name}: {error}",
                                      details=budget_table(needs, board, "after synthesis"),
                                      over=[key for key, value in needs.items()
                                            if value > board.budget.get(key, value)], needs=needs) from None
            raise
    report = PlaceRouteReport.read(folder / "nextpnr_report.json", board.family)
    attempt.resources, attempt.fmax_mhz = report.resources, report.fmax_mhz
    attempt.timing_met = report.fmax_mhz >= mhz
    if attempt.timing_met:
        bitstream = f"{top}{board.family.bitstream_suffix}"
        packer = Path(tools.pack).name
        with timed("pack", f"{mhz:g} MHz: packing the bitstream ({packer.removeprefix('yowasp-')})"):
            run_tool("pack", board.family.pack_command(tools, routed, bitstream), folder, folder / "pack.log")
        attempt.bitstream = folder / bitstream
        (folder / routed).unlink()  # megabytes of text the bitstream already holds
    return attempt


def first_clocks(board: Board, count: int = 1) -> list[float]:
    """The timing search's first round: the profile's first try and, with ``count`` attempts at once,
    the settings just below it (a design that misses the first try needs one of them next)."""
    below = sorted((f for f in board.clocks_mhz if f < board.first_try_mhz), reverse=True)
    return [board.first_try_mhz, *below[:count - 1]]


def next_clocks(board: Board, rounds: list[list[Attempt]], count: int = 1) -> list[float]:
    """The timing search's next round (see the module docstring): up to ``count`` frequencies
    tried at once, fastest first, or [] to stop. The untried settings above the fastest that met
    timing and at or below the fastest Fmax the last round reached; when none is left, a missed
    setting at or below the Fmax a met attempt reached, once more with another placement seed
    (nextpnr's Fmax varies by a few percent with it). At most ``MAX_ATTEMPTS`` rounds."""
    attempts = [a for round_ in rounds for a in round_]
    if len(rounds) >= MAX_ATTEMPTS:
        return []
    tried = {a.clock_mhz for a in attempts}
    best_met = max((a.clock_mhz for a in attempts if a.timing_met), default=0.0)
    reached_last = max(a.fmax_mhz for a in rounds[-1])
    untried = sorted((f for f in board.clocks_mhz if f not in tried and best_met < f <= reached_last), reverse=True)
    if untried:
        return untried[:count]
    reached = max((a.fmax_mhz for a in attempts if a.timing_met), default=0.0)
    retry = sorted({a.clock_mhz for a in attempts if not a.timing_met and best_met < a.clock_mhz <= reached
                    and sum(b.clock_mhz == a.clock_mhz for b in attempts) < 2}, reverse=True)
    return retry[:count]


def attempt_task(qgraph: QGraph, plan: HardwarePlan, board: Board, mhz: float, tools: Toolchain, folder: Path,
                 seed: int) -> Attempt:
    """:func:`run_attempt` as a task on a worker (``cnnhw/cluster.py``): a task may run again after
    its worker was killed, so it starts from an empty ``folder``."""
    shutil.rmtree(folder, ignore_errors=True)
    return run_attempt(qgraph, plan, board, mhz, tools, folder, seed)


def run_round(qgraph: QGraph, plan: HardwarePlan, board: Board, tools: Toolchain, jobs: list[tuple[float, Path, int]],
              workers: Workers | None) -> list[Attempt]:
    """The attempts ``jobs`` (clock, folder, seed): one after another, or all at once on ``workers``."""
    if workers is None or len(jobs) == 1:
        return [run_attempt(qgraph, plan, board, mhz, tools, folder, seed) for mhz, folder, seed in jobs]
    with stage(f"place and route at {', '.join(f'{mhz:g}' for mhz, _, _ in jobs)} MHz at once "
               f"({min(len(jobs), workers.count)} workers)"):
        futures = [workers.executor.submit(attempt_task, qgraph, plan, board, mhz, tools, folder, seed)
                   for mhz, folder, seed in jobs]
        try:
            return [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()


def build(qgraph: QGraph, plan: HardwarePlan, board: Board, folder: Path, clock_mhz: float | None = None,
          toolchain: str = "yowasp", seed: int = 1, refits: list[dict] | None = None,
          verify: VerifyInputs | None = None, model_facts: dict | None = None,
          workers: Workers | None = None, router: str | None = None) -> BuildResult:
    """Build ``folder`` (see the module docstring), verifying the Verilog on ``verify`` first (None:
    not verified, and build.json says so); ``model_facts`` (the model's layers and quantization,
    build.json ``graph`` and ``quantization``) go into build.json and the model card. The timing
    search tries ``workers.count`` clocks at once on ``workers`` (None: one at a time); nextpnr routes
    with ``router`` (None: the family's default). Raises
    BuildError (verification, timing, tools) or DoesNotFitError; the partial build is then kept as
    ``<folder>.failed`` for its logs."""
    started = time.perf_counter()
    tools = find_toolchain(toolchain, board.family, router)
    if clock_mhz is not None:
        board.pll_for(clock_mhz)
    folder = Path(folder)
    staging = staging_folder(folder, "build")
    try:
        with stage(f"generating the accelerator's Verilog into {folder / 'rtl'}"):
            export = export_verilog(qgraph, plan, staging / "rtl")
        verified = None
        if verify is not None:
            with stage(f"verifying the Verilog: {max(2, len(verify.x))} images ({verify.source}) in Verilator, "
                       f"every layer compared with the golden model"):
                verified = verify_export(qgraph, export, verify, staging / "verify")
            shutil.rmtree(staging / "verify")  # the compiled simulator: tens of MB, and rebuilt in seconds
        (staging / "plan.json").write_text(plan.dumps() + "\n")
        image = export.accelerator.weight_image()  # the verified accelerator's
        if image is not None:
            (staging / WEIGHT_IMAGE_FILE).write_bytes(image.to_bytes())
        rounds: list[list[Attempt]] = []
        width = workers.count if workers is not None and clock_mhz is None else 1
        clocks = [clock_mhz] if clock_mhz is not None else first_clocks(board, width)
        while clocks:
            jobs = []
            for clock in clocks:
                again = sum(a.clock_mhz == clock for round_ in rounds for a in round_)  # a retry: the next seed
                name = f"{clock:g}MHz" + (f"-seed{seed + again}" if again else "")
                jobs.append((clock, staging / "attempts" / name, seed + again))
            rounds.append(run_round(qgraph, plan, board, tools, jobs, workers))
            for attempt in rounds[-1]:
                log.info("%g MHz%s: Fmax %.1f MHz, timing %s", attempt.clock_mhz,
                         f" (seed {attempt.seed})" if attempt.seed != seed else "", attempt.fmax_mhz,
                         "met" if attempt.timing_met else "NOT met")
            clocks = [] if clock_mhz is not None else next_clocks(board, rounds, width)
        attempts = [a for round_ in rounds for a in round_]
        passed = [a for a in attempts if a.timing_met]
        if not passed:
            last = attempts[-1]
            hint = ("choose a slower --clock or leave --clock out to search" if clock_mhz is not None else
                    f"even the slowest PLL setting tried ({last.clock_mhz:g} MHz) is too fast")
            raise BuildError(f"timing not met: Fmax {last.fmax_mhz:.1f} MHz < {last.clock_mhz:g} MHz; {hint} "
                             f"(a smaller plan shortens paths too); see {folder}.failed/attempts")
        chosen = best_attempt(qgraph, plan, board, passed)
        facts = build_facts(qgraph, plan, board, chosen, attempts, time.perf_counter() - started)
        shutil.copy2(chosen.bitstream, staging / chosen.bitstream.name)
        facts["bitstream"] = str(folder / chosen.bitstream.name)
        facts["refits"] = refits or []  # plans that were over the logic cells (build_fitting)
        facts["router"] = tools.router
        facts["verified"] = verified
        if image is not None:
            facts["weight_image"] = {"file": str(folder / WEIGHT_IMAGE_FILE), "offset": board.flash["weights_offset"],
                                     "bytes": len(image.to_bytes()), "crc32": image.crc32}
        # What flash and run may read from the folder, with the digest they check it against.
        facts["files"] = {name: file_digest(staging / name) for name in
                          (chosen.bitstream.name, "plan.json", *([WEIGHT_IMAGE_FILE] if image is not None else []))}
        facts.update(model_facts or {})
        facts["report"] = str(folder / CARD_FILE)
        write_card(staging, facts)
        write_json(staging / "build.json", facts)
        replace_folder(staging, folder)
        # The logs of an earlier failed build (or of a plan that did not fit) are superseded.
        shutil.rmtree(failed_folder(folder), ignore_errors=True)
        return BuildResult(folder, facts, attempts)
    except BuildError as error:
        failed = failed_folder(folder)
        mark_folder(staging, "failed-build")
        shutil.rmtree(failed, ignore_errors=True)
        os.replace(staging, failed)
        # Paths in the message pointed into the staging folder, which is now `failed`.
        error.args = (str(error).replace(str(staging), str(failed)),)
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def build_fitting(qgraph: QGraph, board: Board, folder: Path, plan_with: Callable[[int | None], HardwarePlan],
                  clock_mhz: float | None = None, toolchain: str = "yowasp", seed: int = 1,
                  verify: VerifyInputs | None = None, model_facts: dict | None = None,
                  workers: Workers | None = None, router: str | None = None) -> BuildResult:
    """:func:`build` the plan ``plan_with(None)``. The planner keeps within the board's logic cells
    by an estimate (:mod:`cnnhw.plan.logic`, a few percent off); when the packed design turns out
    over them anyway, plan again with ``plan_with(cap)``: ``cap`` is the estimate of the plan that did
    not fit minus what it was over by, so the next plan's estimate leaves room for the same error.
    At most ``MAX_REFITS`` times; the facts record each plan that did not fit."""
    cap, refits = None, []
    while True:
        plan = plan_with(cap)
        try:
            return build(qgraph, plan, board, folder, clock_mhz, toolchain, seed, refits, verify, model_facts, workers,
                         router)
        except DoesNotFitError as error:
            if error.over != ["logic_cells"] or len(refits) == MAX_REFITS:
                raise
            planned = needs(plan_costs(qgraph, plan, board))
            cells, available = error.needs.get("logic_cells", 0), board.budget["logic_cells"]
            refits.append({"dsp": planned["dsp"], "cycles_per_inference": predict_cycles_per_inference(qgraph, plan),
                           "logic_cells": cells, "estimated_logic_cells": planned["logic_cells"]})
            cap = planned["logic_cells"] - (cells - available)
            log.info("%s logic cells needed (%s estimated, %s available): planning again within an estimate of %s",
                     f"{cells:,}", f"{planned['logic_cells']:,}", f"{available:,}", f"{cap:,}")


def host_facts(qgraph: QGraph, baud: int, image_buffers: int) -> dict:
    """What ``cnnhw run`` needs to talk to the board without the model: the input quantizer, the
    RESULT layout, the link speed and how many images the board holds (``image_buffers``)."""
    last = qgraph.layers[-1]
    return {"input_shape": list(qgraph.graph.input_shape), "input_scale": qgraph.input.scale,
            "input_bits": qgraph.input.format.bits, "input_signed": qgraph.input.format.signed,
            "rounding": qgraph.input.rounding, "classes": math.prod(last.out_shape),
            "logit_bytes": logit_bytes(last.out_format.bits), "output_scale": last.out_scale, "baud": baud,
            "has_classes": qgraph.has_classes, "output_signed": last.out_format.signed,
            "image_buffers": image_buffers}


def build_facts(qgraph: QGraph, plan: HardwarePlan, board: Board, chosen: Attempt, attempts: list[Attempt],
                seconds: float) -> dict:
    """What ``cnnhw build --json`` writes (DESIGN.md names the keys others rely on)."""
    planned = plan_facts(qgraph, plan, board)
    link_bytes = frame_bytes(qgraph)
    baud = board.link_baud(chosen.clock_mhz * 1e6)  # the rate the board top was built for
    link_us = wire_seconds(link_bytes, baud) * 1e6
    # The board's own budget where it is below the die's (nextpnr places a 12F on the 25F's die).
    resources = {key: {"used": used, "total": min(total, board.budget.get(key, total))}
                 for key, (used, total) in chosen.resources.items()}
    return {
        "model": qgraph.graph.name,
        "board": board.name,
        "family": board.family.name,
        "device": f"{board.device}-{board.package}",
        "resources": resources,
        # What the plan's cost model predicted (`predicted`, `layer_costs`), beside `resources`
        # (what placement used).
        "clock_mhz": chosen.clock_mhz,
        "fmax_mhz": round(chosen.fmax_mhz, 2),
        "timing_met": chosen.timing_met,
        "microseconds_per_inference": round(planned["cycles_per_inference"] / chosen.clock_mhz, 1),
        "inferences_per_second": round(chosen.clock_mhz * 1e6 / planned["cycles_per_inference"], 1),
        "images_per_second": round(images_per_second(qgraph, plan, board, chosen.clock_mhz), 1),
        **planned,
        "link_baud": baud,
        "link_bytes_per_image": link_bytes,
        "link_microseconds_per_image": round(link_us, 1),
        "host": host_facts(qgraph, baud, plan.image_buffers),
        "attempts": [a.facts() for a in attempts],
        "build_seconds": round(seconds, 1),
    }
