"""The ``cnnhw`` command line.

Every user error is one line on stderr (``cnnhw: error: ...``) and exit status 2; a
traceback means a bug in cnnhw.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__
from .errors import CnnhwError, one_line
from .progress import stage

log = logging.getLogger("cnnhw")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is the one-line ``cnnhw: error:`` every other mistake is."""

    def error(self, message):
        raise CnnhwError(f"{message} (see {self.prog} --help)")


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: '{text}'") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
    return value


def _probability(text: str) -> float:
    value = _finite(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a probability from 0 to below 1, not {text}")
    return value


def _positive(text: str) -> float:
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _count(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: '{text}'") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
        return value
    return parse


#: A plan lists a few fields per layer; a larger file is not one.
MAX_PLAN_BYTES = 1 << 20
#: Input ranges beyond this magnitude are no image or feature scale; they only overflow later.
MAX_INPUT_MAGNITUDE = 1e9


def _add_model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_positional", nargs="?", metavar="MODEL", help=argparse.SUPPRESS)
    parser.add_argument("--model", "-m", metavar="MODEL", help="the model: .onnx, or .npz weights + architecture")


def _model_path(args) -> Path:
    given = [m for m in (args.model, args.model_positional) if m]
    if not given:
        raise CnnhwError("no model given; pass --model MODEL (an .onnx or .npz file)")
    if len(given) == 2 and given[0] != given[1]:
        raise CnnhwError(f"two models given ({given[0]} and {given[1]}); pass one --model")
    return Path(given[0])


def _load(args):
    from .frontend import load_model

    started = time.perf_counter()
    graph = load_model(_model_path(args))
    log.info("loaded %s: %d layers in %.2f s", graph.name, len(graph.layers), time.perf_counter() - started)
    return graph


def _add_quant_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("quantization")
    group.add_argument("--calib", metavar="DATA", help="calibration images (default: MODEL.calib.npz beside the model, "
                       "else data-free bounds)")
    group.add_argument("--weight-bits", type=int, default=8, metavar="N", help="weight bits, 2..8 (default 8)")
    group.add_argument("--act-bits", type=int, default=8, metavar="N", help="activation bits, 2..8 (default 8)")
    group.add_argument("--per-tensor", action="store_true", help="one weight scale per layer, not per output channel")
    group.add_argument("--pow2", action="store_true", help="power-of-two scales only (requantization is a shift)")
    group.add_argument("--rounding", choices=("half_up", "half_even"), default="half_up",
                       help="rounding of every division (default half_up)")
    group.add_argument("--calib-method", choices=("minmax", "percentile"), default="minmax",
                       help="how calibration turns observed values into ranges (default minmax)")
    group.add_argument("--percentile", type=_finite, help="with --calib-method percentile (default 99.99)")
    group.add_argument("--input-range", type=_finite, nargs=2, metavar=("LO", "HI"),
                       help="input value range for data-free bounds (default 0 1)")


def _calib_path(args) -> Path:
    """``--calib``, else ``MODEL.calib.npz`` beside the model (which may not exist)."""
    return Path(args.calib) if args.calib else _model_path(args).with_suffix(".calib.npz")


def _inputs(args) -> dict[str, object]:
    """Every file this run reads, by role: no output may land on one of them."""
    calib = _calib_path(args) if hasattr(args, "calib") and (args.calib or _calib_path(args).is_file()) else None
    roles = {"the model": _model_path(args) if hasattr(args, "model") else None, "the calibration data": calib}
    for role, option in (("the inputs file", "inputs"), ("the evaluation data", "eval"), ("the plan file", "plan"),
                         ("the build folder", "build")):
        roles[role] = getattr(args, option, None)
    board = getattr(args, "board", None)
    roles["the board profile"] = board if board and board.endswith(".json") else None
    return roles


def _check_outputs(args, output: tuple[str, Path, str] | None = None) -> None:
    """Check every output path of the run before any work (``cnnhw/outputs.py`` has the rules):
    ``--json`` and the command's ``output`` (option, path, kind: ``predict -o``, a folder)."""
    from .outputs import check_output

    inputs = _inputs(args)
    outputs = {}
    if output is not None:
        option, path, kind = output
        check_output(path, kind, option, inputs)
        if kind == "build":
            from .flow.build import failed_folder

            check_output(failed_folder(path), "failed-build", f"{option} (failed builds' logs)", inputs)
        outputs[option] = path
    if getattr(args, "json", None):
        check_output(args.json, "json", "--json", inputs, outputs)


def _quantize(args, graph, return_calibration: bool = False):
    """Quantize ``graph`` as the options say, finding calibration data as DESIGN.md specifies
    (``--calib``, else ``MODEL.calib.npz`` beside the model, else data-free bounds with a warning).
    With ``return_calibration``, also return the calibration Dataset (or None)."""
    from .datafiles import load_data
    from .golden.evaluate import check_data_free
    from .quant import DEFAULT_INPUT_RANGE, QuantOptions, quantize_graph

    if graph.integer_model is not None:  # pre-quantized: its own integers, nothing to calibrate
        qgraph = quantize_graph(graph)
        if getattr(args, "calib", None):
            log.warning("--calib %s is ignored: %s is already quantized (%s)", args.calib, graph.name,
                        qgraph.calibration)
        return (qgraph, None) if return_calibration else qgraph
    if args.percentile is not None and args.calib_method != "percentile":
        raise CnnhwError(f"--percentile {args.percentile:g} needs --calib-method percentile (the calibration method "
                         f"is {args.calib_method}); add it or drop --percentile")
    if args.input_range:
        low, high = args.input_range
        if not low < high or max(abs(low), abs(high)) > MAX_INPUT_MAGNITUDE:
            raise CnnhwError(f"--input-range {low:g} {high:g}: LO must be below HI, both within "
                             f"+-{MAX_INPUT_MAGNITUDE:g} (the model's input units, e.g. 0 1 for images scaled to 0..1)")
    try:
        options = QuantOptions(weight_bits=args.weight_bits, activation_bits=args.act_bits,
                               per_channel=not args.per_tensor, power_of_two=args.pow2, rounding=args.rounding,
                               calibration=args.calib_method,
                               percentile=99.99 if args.percentile is None else args.percentile).check()
    except CnnhwError as error:  # name the option that set the value
        option = next((o for o, field in (("--weight-bits", "weight bits"), ("--act-bits", "activation bits"),
                                          ("--percentile", "percentile")) if str(error).startswith(field)), None)
        raise (CnnhwError(f"{option}: {error}") if option else error) from None
    calib_path = _calib_path(args)
    started = time.perf_counter()
    calib = None
    if args.calib or calib_path.is_file():
        calib = load_data(calib_path, graph, "calibration data", use_labels=False)
        if args.input_range:
            log.warning("--input-range is ignored: calibration data %s gives the ranges", calib_path)
        qgraph = quantize_graph(graph, options, calib.x, calib_label=f"{calib_path.name}, {len(calib.x)} images")
    else:
        input_range = tuple(args.input_range) if args.input_range else DEFAULT_INPUT_RANGE
        log.warning("no calibration data (%s not found, no --calib): quantizing from data-free bounds of input "
                    "range %s; accuracy may suffer", calib_path.name, input_range)
        qgraph = quantize_graph(graph, options, input_range=input_range)
        check_data_free(qgraph, input_range)
    log.info("quantized %s (%s) in %.2f s", graph.name, qgraph.calibration, time.perf_counter() - started)
    return (qgraph, calib) if return_calibration else qgraph


def _warn_unbuildable(graph) -> None:
    """Say once, on commands that work without hardware, when sim and build will refuse the model."""
    from .hardware import hardware_refusal

    refusal = hardware_refusal(graph)
    if refusal is not None:
        log.warning("the hardware cannot take this model (sim and build will refuse it): %s", refusal)


def _warn_clipped(quantizer, x, what: str) -> None:
    """Say once how many input values the input ``quantizer`` saturates: images scaled otherwise
    than the calibration data (0..255 for a 0..1 model) would otherwise be clipped without a word."""
    clipped = quantizer.clipped(x)
    if clipped:
        lo, hi = quantizer.real_range()
        log.warning("%s: %s of %s input values (%.1f%%) lie outside the input range [%.4g, %.4g] and are clipped; "
                    "are the images scaled like the calibration data?", what, f"{clipped:,}", f"{x.size:,}",
                    100 * clipped / x.size, lo, hi)


def cmd_quantize(args) -> None:
    from .datafiles import load_data
    from .outputs import write_json
    from .golden.evaluate import accuracy, layer_errors
    from .report import console, quant_facts, quant_table

    _check_outputs(args)
    graph = _load(args)
    _warn_unbuildable(graph)
    qgraph, calib = _quantize(args, graph, return_calibration=True)
    evaluation = load_data(args.eval, graph, "evaluation data") if args.eval else None
    if evaluation is not None:
        _warn_clipped(qgraph.input, evaluation.x, f"evaluation data {args.eval}")
    errors = None
    measured_on = None
    if evaluation is not None:
        errors, measured_on = layer_errors(qgraph, evaluation.x), Path(args.eval).name
    elif calib is not None:
        errors, measured_on = layer_errors(qgraph, calib.x), "the calibration images"
    out = console()
    out.print(quant_table(qgraph, errors, measured_on))
    facts = {"model": str(_model_path(args)), **quant_facts(qgraph, errors)}
    if evaluation is not None and not qgraph.has_classes:
        last = errors[-1]
        facts.update(images=len(evaluation.x), output_sqnr_db=last.sqnr_db)
        out.print(f"the model gives values, not classes: integer output vs float on {len(evaluation.x)} images of "
                  f"{Path(args.eval).name}: SQNR {last.sqnr_db:.1f} dB, largest error {last.max_error_lsb:.2f} LSB")
    elif evaluation is not None:
        result = accuracy(qgraph, evaluation.x, evaluation.y)
        facts.update(images=result.images, accuracy_float=result.float_accuracy, accuracy_int=result.int_accuracy,
                     agreement=result.agreement)
        if result.float_accuracy is not None:
            out.print(f"accuracy on {result.images} images of {Path(args.eval).name}: float {result.float_accuracy:.2%}, "
                      f"integer {result.int_accuracy:.2%}; top-1 agreement {result.agreement:.2%}")
        else:
            out.print(f"top-1 agreement of float and integer models on {result.images} images: {result.agreement:.2%}")
    if args.json:
        write_json(args.json, facts)


def _plan_file(args):
    """The plan of ``--plan FILE`` (None without the option)."""
    import json

    from .inputs import read_text
    from .plan import HardwarePlan

    if not args.plan:
        return None
    text = read_text(args.plan, "plan file", "JSON", limit=MAX_PLAN_BYTES)
    try:
        facts = json.loads(text)
    except json.JSONDecodeError as error:
        raise CnnhwError(f"plan file {args.plan} is not valid JSON ({error})") from None
    except RecursionError:
        raise CnnhwError(f"plan file {args.plan} nests deeper than any plan; write it as cnnhw plans are written") from None
    return HardwarePlan.from_json(facts)


def _board_plan(args, qgraph, board, max_logic_cells: int | None = None):
    """A plan for ``board``: the planner's, keeping every layer ``--plan FILE`` lists as given
    (within ``max_logic_cells`` estimated logic cells, when the build asks for fewer)."""
    from .hardware.network import network_of
    from .plan.budget import plan_for_board
    from .plan.costs import plan_costs
    from .report import console, plan_table

    started = time.perf_counter()
    plan = plan_for_board(qgraph, board, fixed=_plan_file(args), max_logic_cells=max_logic_cells)
    seconds = time.perf_counter() - started
    network = network_of(qgraph, plan)
    network.check_serial_link()
    log.info("plan: %d products per cycle, %s cycles per inference predicted (planned in %.2f s)",
             network.multipliers, f"{network.cycles_per_inference:,}", seconds)
    console().print(plan_table(f"the plan for the {board.name} (cost model)", plan, plan_costs(qgraph, network, board),
                               board.budget, network.cycles_per_inference, network.coupled()))
    return plan


def cmd_sim(args) -> None:
    from .boards import load_board
    from .datafiles import load_data
    from .flow.verilog import export_verilog, identifier
    from .outputs import write_json
    from .hardware.network import network_of
    from .plan import check_plan, default_plan
    from .report import console, sim_table
    from .sim.runner import simulate_export
    from .verify import expected_streams

    if args.clock is not None and not args.board:
        raise CnnhwError(f"--clock {args.clock:g} sets the board top's clock; it needs --board (the accelerator "
                         f"alone is simulated in cycles)")
    if args.build and args.plan:
        raise CnnhwError(f"--build {args.build} simulates that build's own plan, and --plan {args.plan} gives "
                         f"another; drop one of them")
    _check_outputs(args)
    finished = None
    if args.build:
        from .runtime.flash import open_build

        finished = open_build(args.build)
        if args.board and args.board != finished.board.name:
            raise CnnhwError(f"--build {args.build} was built for the {finished.board.name}, not --board "
                             f"{args.board}; drop --board or give {finished.board.name}")
    graph = _load(args)
    board = load_board(args.board) if args.board else None
    folder = Path(args.output) if args.output else Path("rtl_out") / (
        identifier(graph.name) + (f"-{board.name}" if board else ""))
    _check_outputs(args, ("-o" if args.output else "the output folder", folder, "board-sim" if board else "rtl"))
    plan_file = _plan_file(args)
    if finished is not None:
        from .runtime.flash import build_plan

        plan_file = build_plan(finished)
    data = load_data(args.inputs, graph)
    qgraph = _quantize(args, graph)
    _warn_clipped(qgraph.input, data.x, f"inputs {args.inputs}")
    if board is not None:
        return _sim_board(args, graph, data, qgraph, board, folder, plan_file)
    if plan_file is None:
        plan = default_plan(qgraph)
        log.info("plan: cnnhw's default folding (up to 8 products per layer, weights in ROM), not a board's; "
                 "to verify what a build builds, give --build DIR or --plan FILE")
    else:
        plan = check_plan(plan_file, qgraph)
        log.info("plan: %s", f"the build's own ({args.build}/plan.json)" if finished else f"from {args.plan}")
    network = network_of(qgraph, plan)
    predicted = network.cycles_per_inference
    with stage(f"generating Verilog into {folder}"):
        export = export_verilog(qgraph, plan, folder)
    expected = expected_streams(qgraph, data.x)
    with stage(f"building and simulating {len(data.x)} images with {args.simulator}"):
        result = simulate_export(export, expected, folder / "sim_build", args.simulator,
                                 timing_images=args.timing_images, gap=args.gap, stall=args.stall, seed=args.seed)
    predicted_latency = network.latency()
    console().print(sim_table(graph.name, result, predicted, predicted_latency, qgraph.has_classes))
    for mismatch in result.mismatches:
        print(f"cnnhw: mismatch: {mismatch}", file=sys.stderr)
    if args.json:
        write_json(args.json, {**_output_facts(qgraph, expected, data.x, result.bit_exact),
            "model": str(_model_path(args)), "images": result.images, "simulator": result.simulator,
            "bit_exact": result.bit_exact,
            "mismatches": [{"layer": m.layer, "index": m.index, "expected": m.expected, "got": m.got}
                           for m in result.mismatches],
            "class_mismatches": result.class_mismatches,
            "cycles_per_inference": result.cycles_per_inference, "predicted_cycles_per_inference": predicted,
            "latency_cycles": result.latency_cycles, "predicted_latency_cycles": predicted_latency,
            "stage_latency_cycles": dict(result.stage_latencies),
            "predicted_stage_latency_cycles": dict(network.stage_latencies()),
            "cycles": result.cycles,
            "cycles_per_second": result.cycles_per_second, "build_seconds": result.build_seconds,
            "run_seconds": result.run_seconds, "verilog": str(export.verilog), "plan": plan.to_json(),
        })
    if not result.bit_exact:
        raise SystemExit(1)


def _output_facts(qgraph, expected, x, bit_exact: bool) -> dict:
    """The simulated outputs for ``sim --json``: the RTL's, which are the golden model's integers
    when it is bit-exact (every element compared), with their scale; and the classes, for a model
    that has them."""
    from .golden.int_ref import run_int

    facts = {"output_scale": qgraph.output_scale}
    if bit_exact:
        facts["outputs"] = run_int(qgraph, x).tolist()
        if qgraph.has_classes:
            facts["classes"] = expected.classes
    return facts


def _sim_board(args, graph, data, qgraph, board, folder: Path, built_plan=None) -> None:
    """The board top, with ``built_plan`` (a build's own, ``--build``) or the plan ``build`` would make."""
    from .hardware import check_plan
    from .outputs import fresh_folder, write_json
    from .report import board_sim_table, console
    from .sim.board import simulate_board

    if built_plan is not None and args.build:
        plan = check_plan(built_plan, qgraph)
        log.info("plan: the build's own (%s/plan.json)", args.build)
    else:
        plan = _board_plan(args, qgraph, board)
    fresh_folder(folder, "board-sim")
    with stage(f"simulating the {board.name} board top with {args.simulator} ({len(data.x)} images over the UART)"):
        result = simulate_board(qgraph, plan, board, data.x, folder / "sim_build", args.clock, args.simulator)
    console().print(board_sim_table(graph.name, board.name, result))
    for failure in result.failures:
        print(f"cnnhw: mismatch: {failure}", file=sys.stderr)
    if args.json:
        write_json(args.json, {
            "model": str(_model_path(args)), "board": board.name, "images": result.images,
            "simulator": result.simulator, "bit_exact": result.passed, "classified": result.classified, "results": result.results,
            "clock_mhz": result.clock_mhz, "uart_divisor": result.divisor,
            "uart_baud": round(result.clock_mhz * 1e6 / result.divisor),
            "checks": [{"step": label, "passed": ok} for label, ok in result.checks], "mismatches": result.failures,
            "weight_image_bytes": result.weight_image_bytes,
            "build_seconds": result.build_seconds, "run_seconds": result.run_seconds, "plan": plan.to_json()})
    if not result.passed:
        raise SystemExit(1)


def cmd_plan(args) -> None:
    from .boards import load_board
    from .outputs import write_json
    from .plan.costs import plan_facts

    _check_outputs(args, ("-o", Path(args.output), "json") if args.output else None)
    board = load_board(args.board)
    graph = _load(args)
    _plan_file(args)  # a bad plan file is refused before quantizing
    qgraph = _quantize(args, graph)
    started = time.perf_counter()
    plan = _board_plan(args, qgraph, board)
    seconds = time.perf_counter() - started
    if args.output:
        write_json(args.output, plan.to_json())
        log.info("wrote the plan to %s (build it with: cnnhw build --plan %s)", args.output, args.output)
    if args.json:
        write_json(args.json, {"model": graph.name, "model_file": str(_model_path(args)), "board": board.name,
                               **plan_facts(qgraph, plan, board), "planning_seconds": round(seconds, 3)})


def _images(args, graph, qgraph, calib, count: int) -> tuple[np.ndarray, str]:
    """(the first ``count`` images of ``--inputs``, else of the calibration data, else random
    images over the input quantizer's range; where they came from): what ``build`` verifies its
    Verilog on and what ``export`` writes every layer of."""
    from .datafiles import load_data

    if args.inputs:
        data = load_data(args.inputs, graph)
        _warn_clipped(qgraph.input, data.x[:count], f"inputs {args.inputs}")
        return data.x[:count], f"{Path(args.inputs).name}"
    if calib is not None:
        return calib.x[:count], f"calibration data {_calib_path(args).name}"
    low, high = qgraph.input.real_range()
    x = np.random.default_rng(0).uniform(low, high, size=(count, *graph.input_shape))
    return x, "random images: no --inputs or calibration data"


def build_from_args(args, workers=None):
    """What ``cnnhw build`` does with its parsed options ``args``, without printing the results:
    (the BuildResult, the quantized graph, the calibration Dataset or None). ``workers``
    (``cnnhw/cluster.py``): where the timing search tries several clocks at once."""
    from .boards import load_board
    from .flow.build import build_fitting
    from .flow.verilog import identifier
    from .report import model_facts

    _check_outputs(args)
    board = load_board(args.board)
    graph = _load(args)
    folder = Path(args.output) if args.output else Path("build") / f"{identifier(graph.name)}-{board.name}"
    _check_outputs(args, ("-o" if args.output else "the build folder", folder, "build"))
    _plan_file(args)  # a bad plan file is refused before quantizing
    if args.no_verify and args.inputs:
        raise CnnhwError(f"--inputs {args.inputs} gives the images to verify on, and --no-verify skips the "
                         f"verification; drop one of them")
    qgraph, calib = _quantize(args, graph, return_calibration=True)
    from .flow.build import VerifyInputs

    verify = None if args.no_verify else VerifyInputs(*_images(args, graph, qgraph, calib, args.verify_images))
    result = build_fitting(qgraph, board, folder, lambda cap: _board_plan(args, qgraph, board, cap),
                           clock_mhz=args.clock, toolchain=args.tools, seed=args.seed, verify=verify,
                           model_facts=model_facts(qgraph, None if calib is None else calib.x), workers=workers,
                           router=args.router)
    return result, qgraph, calib


def build_command(argv: list[str], workers=None) -> tuple[dict, object]:
    """The build of the ``cnnhw build`` command line ``argv`` (a zoo's task): (build.json's facts,
    the quantized graph)."""
    result, qgraph, _ = build_from_args(build_parser().parse_args(argv), workers)
    return result.facts, qgraph


def cmd_build(args) -> None:
    from contextlib import nullcontext

    from .cluster import open_cluster, workers_of
    from .outputs import write_json
    from .report import build_table, console

    parallel = args.scheduler is not None or args.workers > 1
    with open_cluster(args.workers, args.scheduler) if parallel else nullcontext() as client:
        result, _, _ = build_from_args(args, workers_of(client) if parallel else None)
    folder = result.folder
    console().print(build_table(result.facts))
    console().print(f"bitstream: {result.facts['bitstream']}  (flash it with: cnnhw flash {folder})")
    console().print(f"model card: {result.facts['report']}")
    if args.json:
        write_json(args.json, {"model_file": str(_model_path(args)), **result.facts})


def cmd_zoo(args) -> None:
    from contextlib import nullcontext

    from .cluster import local_worker_count, open_cluster, workers_of
    from .outputs import check_output, folder_kind, mark_folder
    from .report import console
    from .zoo import describe, failed, read_zoo, results_table, run_zoo, write_results

    if args.sequential and (args.workers or args.scheduler):
        raise CnnhwError("--sequential builds in this process; drop --workers/--scheduler, or --sequential")
    if args.workers and args.scheduler:
        raise CnnhwError(f"--scheduler {args.scheduler} has its own workers; drop --workers {args.workers}")
    entries = read_zoo(args.zoo, build_parser().parse_args)
    out = Path(args.output)
    inputs = {"the zoo file": args.zoo, **{f"the model {e.name}": e.model for e in entries},
              **{f"the evaluation data of {e.name}": e.eval for e in entries}}
    check_output(out, "zoo", "-o", inputs)
    out.mkdir(parents=True, exist_ok=True)
    if folder_kind(out) is None:
        mark_folder(out, "zoo")
    command = f"cnnhw zoo {args.zoo}" + (f" -o {args.output}" if args.output != "zoo" else "")
    if args.sequential:
        command += " --sequential"
        cluster = nullcontext()
    elif args.scheduler:
        command += f" --scheduler {args.scheduler}"
        cluster = open_cluster(scheduler=args.scheduler)
    else:
        command += f" --workers {args.workers}" if args.workers else ""
        cluster = open_cluster(args.workers)
    machine = f"{local_worker_count()}-core machine"
    with cluster as client:
        if client is None:
            where = f"sequential, one process, {machine}"
        elif args.scheduler:
            where = f"{workers_of(client).count} Dask workers at {args.scheduler}"
        else:
            where = f"a local Dask cluster of {workers_of(client).count} workers, {machine}"
        rows = run_zoo(entries, out.resolve(), build_command, client)
    write_results(out, rows, command, where)
    console().print(results_table(rows, f"cnnhw zoo: {len(rows)} builds ({where})"))
    for row in rows:
        if row["status"] != "verified":
            console().print(describe(row), markup=False, highlight=False)
    console().print(f"results: {out / 'results.md'}, {out / 'results.json'}; model cards: {out / 'index.html'}")
    names = [f"{row['model']} on {row['board']}" for row in failed(rows)]
    if names:
        raise CnnhwError(f"{len(names)} of {len(rows)} builds failed ({', '.join(names)}); their errors are in "
                         f"{out / 'results.md'} and their logs in {out / 'logs'}")


def cmd_export(args) -> None:
    from .boards import load_board
    from .hardware.network import default_plan
    from .kit import export_kit
    from .outputs import check_output, folder_kind

    out = Path(args.output)
    check_output(out, "kit", "-o", _inputs(args))
    if out.exists() and any(out.iterdir()) and not args.force:
        kind = "a study kit" if folder_kind(out) == "kit" else "not empty"
        raise CnnhwError(f"-o {out} is {kind}; pass --force to replace it, or choose another folder")
    if args.board and args.plan:
        raise CnnhwError("--plan FILE gives the hardware words' plan, and --board plans for a board; drop one")
    graph = _load(args)
    fixed = _plan_file(args)  # a bad plan file is refused before quantizing
    qgraph, calib = _quantize(args, graph, return_calibration=True)
    x, source = _images(args, graph, qgraph, calib, args.images)
    plan = _board_plan(args, qgraph, load_board(args.board)) if args.board else fixed or default_plan(qgraph)
    manifest = export_kit(qgraph, x, source, out, plan, str(_model_path(args)))
    files = sum(1 for _ in out.rglob("*") if _.is_file())
    print(f"wrote the study kit of {graph.name} to {out}: {len(manifest['layers'])} layers, {len(x)} images, "
          f"{files} files; check it with: cd {out} && python3 reference.py")


def cmd_report(args) -> None:
    from .card import write_card
    from .runtime.flash import open_build

    build = open_build(args.folder)
    path = write_card(build.folder, build.facts)
    print(f"wrote the model card {path}")


def cmd_flash(args) -> None:
    from .runtime.flash import flash, flash_commands, open_build

    build = open_build(args.folder)
    if args.dry_run:
        for command in flash_commands(build, args.programmer, require_installed=False):
            print(" ".join(command))
        return
    what = build.bitstream.name + (f" and {build.weight_image.name}" if build.weight_image is not None else "")
    with stage(f"writing {what} to the {build.board.name}'s flash"):
        flash(build, args.programmer)


def cmd_run(args) -> None:
    import statistics

    from .datafiles import InputSpec, load_data
    from .report import console
    from .runtime.flash import open_build
    from .runtime.host import BoardLink, LinkFacts

    build = open_build(args.build)
    facts = LinkFacts.from_build(build.facts)
    data = load_data(args.data, InputSpec(str(build.facts.get("model", build.folder.name)), facts.input_shape,
                                          facts.classes, facts.has_classes))
    _warn_clipped(facts.quantizer, data.x, args.data)
    try:
        import serial

        port = serial.serial_for_url(args.port, baudrate=args.baud or facts.baud, timeout=0.05)
    except (ImportError, ValueError, OSError) as error:  # serial.SerialException is an OSError
        raise CnnhwError(f"cannot open serial port {args.port} ({error}); the iCEBreaker's UART is the second "
                         f"FTDI channel, usually /dev/ttyUSB1") from None
    link = BoardLink(port, facts)
    link.wait_until_ready()
    out = console()
    classes, latencies = [], []
    started = time.perf_counter()
    try:
        for index, (result, seconds) in enumerate(link.classify_all(data.x)):
            latencies.append(seconds * 1e3)
            classes.append(result.cls)
            label = f"  label {data.y[index]}" if data.y is not None else ""
            if not args.quiet and facts.has_classes:
                out.print(f"image {index}: class {result.cls}{label}  ({latencies[-1]:.1f} ms)")
            elif not args.quiet:
                values = " ".join(f"{v * facts.output_scale:.4g}" for v in result.logits[:8])
                out.print(f"image {index}: outputs {values}{' ...' if len(result.logits) > 8 else ''}  "
                          f"({latencies[-1]:.1f} ms)")
    finally:
        port.close()
    elapsed = time.perf_counter() - started
    summary = (f"{len(classes)} images in {elapsed:.2f} s ({len(classes) / elapsed:,.0f} images/s, "
               f"{facts.image_buffers} in flight), "
               f"median {statistics.median(latencies):.1f} ms from sending an image to its result")
    if data.y is not None:
        correct = int(np.sum(np.array(classes) == data.y))
        summary += f"; accuracy {correct / len(classes):.2%} ({correct} correct)"
    out.print(summary)


def cmd_boards(args) -> None:
    from .boards import board_names, load_board
    from .outputs import write_json
    from .report import boards_table, console

    _check_outputs(args)
    boards = [load_board(name) for name in board_names()]
    console().print(boards_table(boards))
    if args.json:
        write_json(args.json, {"boards": [
            {"name": b.name, "description": b.description, "device": b.device, "package": b.package,
             "budget": b.budget, "input_mhz": b.input_mhz, "clocks_mhz": b.clocks_mhz, "uart_bauds": list(b.uart_bauds)}
            for b in boards]})


def cmd_inspect(args) -> None:
    from .hardware import hardware_refusal
    from .outputs import write_json
    from .report import console, graph_facts, graph_table

    _check_outputs(args)
    graph = _load(args)
    refusal = hardware_refusal(graph)
    out = console()
    out.print(graph_table(graph))
    own = None
    if graph.integer_model is not None:  # pre-quantized: say what its integers are
        qgraph = graph.integer_model
        own = {"by": qgraph.calibration, "input_format": str(qgraph.input.format), "input_scale": qgraph.input.scale,
               "input_zero_point": qgraph.input.zero_point, "layers": len(qgraph.layers)}
        out.print(f"integers: {qgraph.calibration}; input {qgraph.input.format}, scale {qgraph.input.scale:.6g}, "
                  f"zero point {qgraph.input.zero_point}; quantize shows every layer's formats and rescaling")
    if refusal is None:
        out.print("hardware: every layer has a stage (plan --board says whether it fits)")
    else:
        out.print(f"hardware: cnnhw cannot build it: {refusal}")
    if args.json:
        write_json(args.json, {"model": str(_model_path(args)), **graph_facts(graph),
                               "hardware": {"supported": refusal is None, "reason": refusal},
                               **({"own_integers": own} if own else {})})


def layer_arrays(qgraph, x) -> dict[str, np.ndarray]:
    """``predict --layers``: every integer layer's output (``layer_NN_int``; ``layer_00_int`` the
    quantized input) and the float model's output it stands for (``layer_NN_float``), with each
    layer's name, scale and zero point (``layer_names``, ``layer_scales``, ``layer_zero_points``:
    real value = scale * (int - zero point))."""
    from .golden import run_float
    from .golden.int_ref import run_int

    ints = run_int(qgraph, x, every_layer=True)
    floats = dict(zip([layer.op.name for layer in qgraph.graph.layers], run_float(qgraph.graph, x, every_layer=True)))
    arrays = {"layer_names": np.array(["input", *(layer.name for layer in qgraph.layers)]),
              "layer_scales": np.array([qgraph.input.scale, *(layer.out_scale for layer in qgraph.layers)]),
              "layer_zero_points": np.array([qgraph.input.zero_point,
                                             *(layer.out_zero_point for layer in qgraph.layers)]),
              "layer_00_int": ints[0].astype(np.int64),
              "layer_00_float": np.asarray(x, dtype=np.float32)}
    for index, (layer, values) in enumerate(zip(qgraph.layers, ints[1:]), start=1):
        arrays[f"layer_{index:02d}_int"] = values.astype(np.int64)
        arrays[f"layer_{index:02d}_float"] = floats[layer.source].astype(np.float32)
    return arrays


def cmd_predict(args) -> None:
    from .datafiles import load_data
    from .golden import classes_of, run_float
    from .golden.int_ref import run_int
    from .outputs import write_json, write_npz
    from .report import console

    _check_outputs(args, ("-o", Path(args.output), "npz") if args.output else None)
    if args.layers and not args.output:
        raise CnnhwError("--layers adds every layer's tensors to the -o OUT.npz; give -o")
    graph = _load(args)
    data = load_data(args.inputs, graph)
    qgraph = _quantize(args, graph) if args.golden == "int" or args.layers else None
    if qgraph is not None:
        _warn_unbuildable(graph)
        _warn_clipped(qgraph.input, data.x, f"inputs {args.inputs}")
    started = time.perf_counter()
    if args.golden == "float":
        outputs = run_float(graph, data.x).astype(np.float32)
    else:
        outputs = run_int(qgraph, data.x).astype(np.int64)
    log.info("ran the %s model on %d images in %.2f s", args.golden, len(data.x), time.perf_counter() - started)
    facts = {"model": str(_model_path(args)), "golden": args.golden, "images": int(len(outputs)),
             "output_shape": list(outputs.shape[1:]), "outputs": outputs.tolist()}
    if args.golden == "int":
        facts["output_scale"] = qgraph.output_scale
    out = console()
    arrays = {"outputs": outputs, **(layer_arrays(qgraph, data.x) if args.layers else {})}
    if graph.has_classes:
        # The integer model's output is logits even where the float model ends in a Sigmoid.
        classes = classes_of(outputs, graph.class_threshold if args.golden == "float" else 0.0)
        facts["classes"] = classes.tolist()
        arrays.update(logits=outputs.reshape(len(outputs), -1), classes=classes)
        if data.y is not None:
            accuracy = float(np.mean(classes == data.y))
            facts["accuracy"] = accuracy
            out.print(f"{args.golden} model: {accuracy:.2%} top-1 accuracy on {len(classes)} images "
                      f"({int(np.sum(classes == data.y))} correct)")
        else:
            shown = " ".join(map(str, classes[:20])) + (" ..." if len(classes) > 20 else "")
            out.print(f"{args.golden} model: classes of {len(classes)} images: {shown}")
    else:
        first = outputs[0].ravel()
        integers = args.golden == "int"
        shown = " ".join(str(v) if integers else f"{v:.4g}" for v in first[:8]) + (" ..." if first.size > 8 else "")
        unit = f" (integers; times {qgraph.output_scale:.4g} in the model's units)" if integers else ""
        out.print(f"{args.golden} model: outputs of {len(outputs)} images, "
                  f"{'x'.join(map(str, outputs.shape[1:]))} values each{unit}; image 0: {shown}")
    if args.output:
        write_npz(args.output, **arrays)
    if args.json:
        write_json(args.json, facts)


def build_parser() -> argparse.ArgumentParser:
    from .flow.tools import ROUTERS

    parser = _Parser(prog="cnnhw", description="Turn a trained CNN into verified FPGA hardware.")
    parser.add_argument("--version", action="version", version=f"cnnhw {__version__}")
    common = _Parser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="print results only, no progress lines")
    parser.add_argument("-q", "--quiet", action="store_true", help="print results only, no progress lines")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    inspect = commands.add_parser("inspect", parents=[common], help="layers, shapes, parameters and MACs of a model")
    _add_model(inspect)
    inspect.add_argument("--json", metavar="FILE", help="also write the facts as JSON")
    inspect.set_defaults(run=cmd_inspect)

    predict = commands.add_parser("predict", parents=[common], help="run the model in software on a DATA file")
    _add_model(predict)
    predict.add_argument("--inputs", "-i", required=True, metavar="DATA", help=".npz with x (N, C, H, W) and optional y")
    predict.add_argument("--golden", choices=("float", "int"), default="float",
                         help="float: the float reference; int: the bit-exact integer model the hardware computes")
    predict.add_argument("-o", "--output", metavar="OUT.npz",
                         help="write outputs (N, *output shape), and for a classifier logits (N, classes) and "
                              "classes (N,)")
    predict.add_argument("--layers", action="store_true", help="with -o: also every layer's integer output and the "
                         "float output it stands for (layer_NN_int, layer_NN_float, layer_names, layer_scales)")
    predict.add_argument("--json", metavar="FILE", help="also write the facts as JSON")
    _add_quant_options(predict)
    predict.set_defaults(run=cmd_predict)

    quantize = commands.add_parser("quantize", parents=[common], help="quantize to fixed point; per-layer formats and errors")
    _add_model(quantize)
    quantize.add_argument("--eval", metavar="DATA", help="measure float and integer accuracy on DATA")
    quantize.add_argument("--json", metavar="FILE", help="also write the facts as JSON")
    _add_quant_options(quantize)
    quantize.set_defaults(run=cmd_quantize)

    boards = commands.add_parser("boards", parents=[common], help="the boards cnnhw knows, with their budgets")
    boards.add_argument("--json", metavar="FILE", help="also write the facts as JSON")
    boards.set_defaults(run=cmd_boards)

    sim = commands.add_parser("sim", parents=[common], help="simulate the generated Verilog against the golden "
                              "model, bit for bit; cycles per inference")
    _add_model(sim)
    sim.add_argument("--inputs", "-i", required=True, metavar="DATA", help="images to simulate (.npz with x)")
    sim.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator")
    sim.add_argument("--board", "-b", metavar="NAME", help="simulate the whole board top: frames in on the UART pin, "
                     "replies out, bad frames and a reset (default: the accelerator alone)")
    sim.add_argument("--clock", type=_positive, metavar="MHZ", help="with --board: the fabric clock (sets the UART "
                     "divisor; default the profile's first try)")
    sim.add_argument("--plan", metavar="FILE", help="a JSON hardware plan (default: cnnhw's default folding; with "
                     "--board, the plan build would make)")
    sim.add_argument("--build", metavar="DIR", help="simulate exactly what this cnnhw build folder built (its plan; "
                     "give the model and quantization options the build was given)")
    sim.add_argument("-o", "--output", metavar="DIR", help="where the Verilog goes (default rtl_out/<model>)")
    sim.add_argument("--json", metavar="FILE", help="also write the facts as JSON")
    sim.add_argument("--gap", type=_probability, default=0.2, help="probability of an idle input cycle (default 0.2)")
    sim.add_argument("--stall", type=_probability, default=0.2, help="probability of refusing an output (default 0.2)")
    sim.add_argument("--timing-images", type=_count(1), default=3,
                     help="images sent back to back, without gaps, to measure cycles (default 3)")
    sim.add_argument("--seed", type=_count(0), default=1, help="seed of the random gaps and stalls")
    _add_quant_options(sim)
    sim.set_defaults(run=cmd_sim)

    plan = commands.add_parser("plan", parents=[common], help="the plan the build would use for a board, with its "
                               "cost model layer by layer (nothing is built)")
    _add_model(plan)
    plan.add_argument("--board", "-b", required=True, metavar="NAME", help="a board name (cnnhw boards) or profile .json")
    plan.add_argument("--plan", metavar="FILE", help="a JSON plan; the layers it lists keep their folding, the planner "
                      "fits the rest to the board")
    plan.add_argument("-o", "--output", metavar="PLAN.json", help="write the plan (a file --plan takes)")
    plan.add_argument("--json", metavar="FILE", help="also write the plan and its costs as JSON")
    _add_quant_options(plan)
    plan.set_defaults(run=cmd_plan)

    build = commands.add_parser("build", parents=[common], help="quantize, plan, generate, synthesize, place and "
                                "route: a bitstream for the board, with a resource and timing report")
    _add_model(build)
    build.add_argument("--board", "-b", required=True, metavar="NAME", help="a board name (cnnhw boards) or profile .json")
    build.add_argument("-o", "--output", metavar="DIR", help="the build folder (default build/<model>-<board>)")
    build.add_argument("--plan", metavar="FILE", help="a JSON plan; the layers it lists keep their folding, the planner fits the rest to the board")
    build.add_argument("--clock", type=_positive, metavar="MHZ", help="build at this PLL frequency or fail (default: the "
                       "fastest of the board's PLL settings that meets timing)")
    build.add_argument("--tools", choices=("yowasp", "system"), default="yowasp",
                       help="yowasp: the yosys/nextpnr/icepack cnnhw installs (default); system: the ones on PATH")
    build.add_argument("--seed", type=_count(1), default=1, help="nextpnr placement seed (default 1)")
    build.add_argument("--router", choices=ROUTERS, help="nextpnr's router (default: router1 on "
                       "iCE40, router2 on ECP5, which routes large designs router1 does not)")
    build.add_argument("--inputs", "-i", metavar="DATA", help="images to verify the Verilog on before synthesis "
                       "(default: the calibration images)")
    build.add_argument("--verify-images", type=_count(1), default=4, metavar="N",
                       help="how many images the verification simulates (default 4)")
    build.add_argument("--no-verify", action="store_true", help="skip the verification (the report says so)")
    build.add_argument("--workers", type=_count(1), default=1, metavar="N",
                       help="try N clocks at once in the timing search, on a local Dask cluster (default 1)")
    build.add_argument("--scheduler", metavar="ADDRESS", help="try clocks at once on the Dask cluster at ADDRESS "
                       "(workers sharing this file system and installation)")
    build.add_argument("--json", metavar="FILE", help="also write the facts as JSON")
    _add_quant_options(build)
    build.set_defaults(run=cmd_build)

    flash = commands.add_parser("flash", parents=[common], help="write a build's bitstream to the board's flash")
    flash.add_argument("folder", metavar="DIR", help="a folder written by cnnhw build")
    flash.add_argument("--programmer", metavar="TOOL",
                       help="one of the programmers the board profile names (iceprog, openFPGALoader, fujprog, "
                            "dfu-util; default: the first installed)")
    flash.add_argument("--dry-run", action="store_true", help="print the command, do not run it")
    flash.set_defaults(run=cmd_flash)

    export = commands.add_parser("export", parents=[common], help="the study kit: every weight, bias, constant and "
                                 "layer output as .npy and .hex, with NumPy and C references")
    _add_model(export)
    export.add_argument("-o", "--output", required=True, metavar="DIR", help="the kit's folder")
    export.add_argument("--inputs", "-i", metavar="DATA", help="images whose every layer the kit holds (default: "
                        "the calibration images, else random images over the input range)")
    export.add_argument("--images", type=_count(1), default=4, metavar="N", help="how many of them (default 4)")
    export.add_argument("--board", "-b", metavar="NAME", help="the hardware words in the order the plan for this "
                        "board reads them (default: cnnhw's default folding)")
    export.add_argument("--plan", metavar="FILE", help="the hardware words of this plan")
    export.add_argument("--force", action="store_true", help="replace the study kit already in DIR")
    _add_quant_options(export)
    export.set_defaults(run=cmd_export)

    report = commands.add_parser("report", parents=[common], help="make a build's model card (DIR/report.html) again")
    report.add_argument("folder", metavar="DIR", help="a folder written by cnnhw build")
    report.set_defaults(run=cmd_report)

    zoo = commands.add_parser("zoo", parents=[common], help="build and verify models x boards from a zoo file, on "
                              "a Dask cluster: a results table and an index of the model cards")
    zoo.add_argument("zoo", metavar="ZOO.toml", help="the models and boards ([[model]] tables: name, file, boards, "
                     "and optional eval and options; see docs/commands.md)")
    zoo.add_argument("-o", "--output", default="zoo", metavar="DIR", help="where the builds and results go "
                     "(default zoo/)")
    zoo.add_argument("--workers", type=_count(1), metavar="N", help="workers of the local Dask cluster "
                     "(default: one per core)")
    zoo.add_argument("--scheduler", metavar="ADDRESS", help="run the builds on the Dask cluster at ADDRESS "
                     "(tcp://host:8786; workers that share this file system and installation)")
    zoo.add_argument("--sequential", action="store_true", help="build one after another in this process, no Dask")
    zoo.set_defaults(run=cmd_zoo)

    run = commands.add_parser("run", parents=[common], help="classify DATA on the board over the serial link")
    run.add_argument("data", metavar="DATA", help="images (.npz with x and optional labels y)")
    run.add_argument("--port", "-p", required=True, help="the board's serial port (iCEBreaker: usually /dev/ttyUSB1)")
    run.add_argument("--build", required=True, metavar="DIR", help="the cnnhw build folder the board was flashed from")
    run.add_argument("--baud", type=_count(1), help="override the build's baud rate")
    run.set_defaults(run=cmd_run)
    return parser


class _LogFormat(logging.Formatter):
    """Progress lines plain, warnings as ``cnnhw: warning: ...``; each record one line (names from a
    model may hold newlines)."""

    def format(self, record):
        text = one_line(record.getMessage())
        return f"cnnhw: warning: {text}" if record.levelno >= logging.WARNING else text


def main(argv: list[str] | None = None) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogFormat())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    try:
        args = build_parser().parse_args(argv)
        if args.quiet:
            logging.getLogger().setLevel(logging.WARNING)
        args.run(args)
    except CnnhwError as error:
        if error.details is not None:
            from rich.console import Console

            Console(stderr=True, highlight=False, markup=False, width=120).print(error.details)
        print(f"cnnhw: error: {one_line(str(error))}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("cnnhw: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
