"""The benchmark: for each bench model, what a board's build and the RTL simulation measure.

Run:  .venv/bin/python bench/bench.py            (the iCEBreaker; about 10 minutes on 2 cores)
      .venv/bin/python bench/bench.py --board ulx3s-12f --models lenet   (another board, some models)
Writes bench/results.json (results_<board>.json for another board; the rows of the models measured
replace their earlier rows, the other models' rows are kept) and prints a Markdown table of the
models measured (quoted in README) with the command.

Per model: MACs; the bound (MACs / the board's DSPs: cycles if every DSP multiplied every cycle);
the planner's plan and its predicted cycles per inference; simulated cycles per inference
(Verilator, images back to back) and the prediction's error; the latency (first input to class)
simulated and predicted; bit-exactness of every layer; for a built model, the board top at the
clock the build met, over its UART pins (``cnnhw sim --board``: every result against the golden model); the
build (clock, Fmax, logic cells, DSP, EBR, SPRAM, build time); microseconds per inference
(simulated cycles / clock); simulation speed; float and integer accuracy on the model's labelled
images. The plan simulated is the one the build ended with (``cnnhw build`` plans again
within fewer estimated logic cells when a design is over them). A model the board cannot hold is still
planned (with unlimited memory) and simulated; its build columns say why it was not built.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tiny CNN is the tests' small CNN

from cnnhw.boards import load_board  # noqa: E402
from cnnhw.errors import DoesNotFitError  # noqa: E402
from cnnhw.flow.build import build_fitting  # noqa: E402
from cnnhw.flow.verilog import export_verilog  # noqa: E402
from cnnhw.frontend import load_model  # noqa: E402
from cnnhw.plan import HardwarePlan, predict_cycles_per_inference, predict_latency  # noqa: E402
from cnnhw.plan.budget import plan_for_board  # noqa: E402
from cnnhw.quant import QuantOptions, quantize_graph  # noqa: E402
from cnnhw.golden.evaluate import accuracy  # noqa: E402
from cnnhw.sim.board import simulate_board  # noqa: E402
from cnnhw.sim.runner import simulate_export  # noqa: E402
from cnnhw.verify import expected_streams  # noqa: E402

COMMAND = ".venv/bin/python bench/bench.py"
MLPERF_TINY = ROOT / "tests" / "data" / "mlperf_tiny"
TFLITE_FILES = {"kws": "kws_ref_model.tflite", "resnet8": "pretrainedResnet_quant.tflite"}
SIM_IMAGES = 5
BOARD_SIM_IMAGES = 3  # the board scenario sends one twice and cuts two off: 5 image frames


def models(work: Path):
    """(key, name, graph, qgraph, labelled images (x, y) or None, images to simulate)."""
    from models import small_cnn
    from tinyml_nets import dense_autoencoder, mobilenet
    import onnx

    lenet = load_model(ROOT / "examples" / "lenet.onnx")
    test = np.load(ROOT / "examples" / "lenet.test.npz")
    yield ("lenet", "LeNet-5 (examples/lenet.onnx)", lenet,
           quantize_graph(lenet, QuantOptions(), np.load(ROOT / "examples" / "lenet.calib.npz")["x"]),
           (test["x"], test["y"]), test["x"][:SIM_IMAGES])
    mnist = load_model(ROOT / "tests" / "data" / "mnist8" / "mnist-8.onnx")
    digits = np.load(ROOT / "tests" / "data" / "mnist8" / "mnist_digits_10.npz")
    yield ("mnist8", "mnist-8 (ONNX model zoo)", mnist, quantize_graph(mnist, QuantOptions(), input_range=(0, 255)),
           (digits["x"], digits["y"]), digits["x"][:SIM_IMAGES])
    model, _ = small_cnn(np.random.default_rng(5))
    onnx.save(model, work / "tiny.onnx")
    tiny = load_model(work / "tiny.onnx")
    rng = np.random.default_rng(1)
    yield ("tiny", "tiny CNN (tests/models.py small_cnn, random weights)", tiny,
           quantize_graph(tiny, QuantOptions(), rng.normal(size=(64, 2, 12, 10))), None,
           rng.normal(size=(SIM_IMAGES, 2, 12, 10)))
    for key, make, name in (("mobilenet", mobilenet, "MobileNet-style, 96x96x3 (tests/tinyml_nets.py, random weights)"),
                            ("autoencoder", dense_autoencoder, "dense autoencoder 640-128x4-8-128x4-640 "
                                                               "(tests/tinyml_nets.py, random weights)")):
        onnx.save(make(), work / f"{key}.onnx")
        graph = load_model(work / f"{key}.onnx")
        calibration = rng.normal(size=(16, *graph.input_shape))
        yield (key, name, graph, quantize_graph(graph, QuantOptions(), calibration), None,
               rng.normal(size=(SIM_IMAGES, *graph.input_shape)))
    for key, name in (("kws", "KWS DS-CNN (MLPerf Tiny)"), ("resnet8", "ResNet-8 (MLPerf Tiny)")):
        graph = load_model(MLPERF_TINY / TFLITE_FILES[key])
        qgraph = quantize_graph(graph, QuantOptions())
        # Random int8 inputs over the whole range, as real values (the input quantizer gives them back).
        q = rng.integers(-128, 128, size=(SIM_IMAGES, *graph.input_shape))
        yield key, name, graph, qgraph, None, (q - qgraph.input.zero_point) * qgraph.input.scale


def tflite_reference_matches(model_path: Path, qgraph, images) -> bool:
    """Whether TFLite's reference kernels (ai-edge-litert, BUILTIN_REF) give the integer model's
    output on ``images``: the RTL simulation compares every layer with that model."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from cnnhw.golden.int_ref import run_int

    interpreter = Interpreter(model_path=str(model_path),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    # The integer model's output is the last layer's, before the Softmax cnnhw leaves to the host.
    last = [d for d in interpreter.get_tensor_details() if d["shape"].tolist() == [1, qgraph.layers[-1].out_shape[0]]]
    ours = run_int(qgraph, images)
    for image, want in zip(images, ours):
        q = np.rint(image / qgraph.input.scale + qgraph.input.zero_point).astype(np.int8)
        interpreter.set_tensor(source["index"], np.transpose(q, (1, 2, 0))[None] if q.ndim == 3 else q[None])
        interpreter.invoke()
        if not any(np.array_equal(interpreter.get_tensor(d["index"])[0], want.ravel()) for d in last):
            return False
    return True


def measure(name, graph, qgraph, labelled, images, board, work: Path, clock_mhz: float | None = None) -> dict:
    """Build first (the plan that fits, after any refits; at ``clock_mhz``, or the timing search's
    clock), then simulate exactly that plan."""
    row = {"model": name, "macs": graph.macs, "bound_cycles": math.ceil(graph.macs / board.budget["dsp"])}
    images = graph.check_batch(images, name)
    started = time.perf_counter()
    try:
        facts = build_fitting(qgraph, board, work / f"build_{len(name)}",
                              lambda cap: plan_for_board(qgraph, board, max_logic_cells=cap), clock_mhz=clock_mhz).facts
        plan = HardwarePlan.from_json(facts["plan"])
        row.update(clock_mhz=facts["clock_mhz"], fmax_mhz=facts["fmax_mhz"], timing_met=facts["timing_met"],
                   resources={k: v["used"] for k, v in facts["resources"].items()},
                   predicted_resources=facts["predicted"], build_seconds=time.perf_counter() - started,
                   refits=facts["refits"], weight_image_bytes=facts.get("weight_image", {}).get("bytes", 0))
    except DoesNotFitError as error:
        row["build"] = f"not built: {error}"
        unlimited = {"ebr": 10**6, "spram": 10**6 if board.budget["spram"] else 0}  # no SPRAM on ECP5
        plan = plan_for_board(qgraph, replace(board, budget={**board.budget, **unlimited}))
    row["plan"] = plan.to_json()
    row["predicted_cycles"] = predict_cycles_per_inference(qgraph, plan)
    row["predicted_latency"] = predict_latency(qgraph, plan)
    folder = work / f"rtl_{len(name)}"
    export = export_verilog(qgraph, plan, folder)
    expected = expected_streams(qgraph, images)
    sim = simulate_export(export, expected, folder / "sim_build", timing_images=3)
    row.update(bit_exact=sim.bit_exact, sim_cycles=sim.cycles_per_inference,
               prediction_error=abs(sim.cycles_per_inference - row["predicted_cycles"]) / sim.cycles_per_inference,
               sim_cycles_per_second=sim.cycles_per_second, sim_latency=sim.latency_cycles,
               latency_error=abs(sim.latency_cycles - row["predicted_latency"]) / sim.latency_cycles)
    row["bound_ratio"] = sim.cycles_per_inference / row["bound_cycles"]
    if "clock_mhz" in row:
        row["microseconds_per_inference"] = sim.cycles_per_inference / row["clock_mhz"]
        # The board top at the clock the build met, over its UART pins (`cnnhw sim --board`).
        board_sim = simulate_board(qgraph, plan, board, images[:BOARD_SIM_IMAGES], work / f"board_{len(name)}",
                                   row["clock_mhz"])
        row.update(board_bit_exact=board_sim.passed, board_sim_results=board_sim.classified,
                   board_sim_seconds=board_sim.build_seconds + board_sim.run_seconds)
    if labelled is not None:
        result = accuracy(qgraph, graph.check_batch(labelled[0], name), labelled[1])
        row.update(accuracy_float=result.float_accuracy, accuracy_int=result.int_accuracy, images=result.images)
    return row


def _board_sim_text(row) -> str:
    if "board_bit_exact" not in row:
        return ""
    return f"; board top {'yes' if row['board_bit_exact'] else 'NO'} ({row['board_sim_results']} results)"


def table(rows, command: str, board) -> str:
    lines = [f"Measured with `{command}` on the 2-core machine ({board.name}, {board.device}):", "",
             f"| model | MACs | bound (MACs/{board.budget['dsp']} DSP) | simulated cycles | x bound | predicted (error) | "
             "latency simulated / predicted (error) | bit-exact | "
             "clock / Fmax MHz | LC (estimated, error) | DSP | EBR | SPRAM | us/inference | build s | refits | sim cycles/s | "
             "float / int acc. |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        built = "clock_mhz" in r
        res = r.get("resources", {})
        accuracy_text = (f"{r['accuracy_float']:.2%} / {r['accuracy_int']:.2%} ({r['images']})"
                         if "accuracy_int" in r else "n/a (no labels)")
        cells, estimated = res.get("logic_cells", 0), r.get("predicted_resources", {}).get("logic_cells", 0)
        cells_text = f"{cells:,} ({estimated:,}, {(estimated - cells) / cells:+.1%})" if cells else ""
        lines.append(
            f"| {r['model']} | {r['macs']:,} | {r['bound_cycles']:,} | {r['sim_cycles']:,.0f} | {r['bound_ratio']:.2f} "
            f"| {r['predicted_cycles']:,} ({r['prediction_error']:.1%}) "
            f"| {r['sim_latency']:,} / {r['predicted_latency']:,} ({r['latency_error']:.1%}) "
            f"| {'yes' if r['bit_exact'] else 'NO'}{_board_sim_text(r)} | "
            + (f"{r['clock_mhz']:g} / {r['fmax_mhz']:.1f} | {cells_text} | {res['dsp']} | {res['ebr']} | "
               f"{res.get('spram', 0)} | {r['microseconds_per_inference']:,.0f} | {r['build_seconds']:.0f} | "
               f"{len(r['refits'])} | "
               if built else "not built: does not fit the board | | | | | | | | ")
            + f"{r['sim_cycles_per_second']:,.0f} | {accuracy_text} |")
    return "\n".join(lines)


def write_results(path: Path, rows: list[dict]) -> None:
    """Write ``rows`` into the results file, replacing the rows of the same models and keeping the
    others (a big board's models are measured one or two per run: their builds take an hour)."""
    measured = {row["model"] for row in rows}
    kept = [row for row in json.loads(path.read_text()) if row["model"] not in measured] if path.is_file() else []
    path.write_text(json.dumps(kept + rows, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", default="icebreaker")
    parser.add_argument("--models", nargs="+", choices=("lenet", "mnist8", "tiny", "mobilenet", "autoencoder", "kws", "resnet8"),
                        help="only these (default: lenet, mnist8 and tiny; the MLPerf Tiny shapes when asked)")
    parser.add_argument("--clock", type=float, metavar="MHZ",
                        help="build at this clock (default: the timing search, as cnnhw build)")
    args = parser.parse_args()
    board = load_board(args.board)
    command = COMMAND + (f" --board {board.name}" if args.board != "icebreaker" else "") + \
        (f" --models {' '.join(args.models)}" if args.models else "") + (f" --clock {args.clock:g}" if args.clock else "")
    rows = []
    with tempfile.TemporaryDirectory(prefix="cnnhw-bench-") as scratch:
        for key, name, graph, qgraph, labelled, images in models(Path(scratch)):
            if key not in (args.models or ("lenet", "mnist8", "tiny")):
                continue
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            row = measure(name, graph, qgraph, labelled, images, board, Path(scratch), args.clock)
            if key in ("kws", "resnet8"):
                row["tflite_reference_equal"] = tflite_reference_matches(MLPERF_TINY / TFLITE_FILES[key], qgraph,
                                                                         graph.check_batch(images, name))
            rows.append(row)
    results = ROOT / "bench" / ("results.json" if args.board == "icebreaker" else f"results_{board.name}.json")
    write_results(results, rows)
    print(table(rows, command, board))
    return 0 if all(r["bit_exact"] and r.get("board_bit_exact", True) and r.get("tflite_reference_equal", True)
                    for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
