"""How long the planner takes: `cnnhw plan` for each bench model on the iCEBreaker, and for the
MLPerf Tiny models (KWS DS-CNN, ResNet-8) on the ULX3S-85F (156 DSPs).

Run:  .venv/bin/python bench/planning.py            (about two minutes)
Prints a Markdown table (quoted in docs/benchmarks.md) with the command. Each model is planned
five times; the table gives the fastest and the slowest, the plan's cycles per inference and
products per cycle. Planning creates no hardware: every figure comes from the hardware ops.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from cnnhw.boards import load_board  # noqa: E402
from cnnhw.frontend import load_model  # noqa: E402
from cnnhw.hardware import Network  # noqa: E402
from cnnhw.hardware.network import network_of  # noqa: E402
from cnnhw.plan.budget import plan_for_board  # noqa: E402
from cnnhw.quant import QuantOptions, quantize_graph  # noqa: E402

COMMAND = ".venv/bin/python bench/planning.py"
REPEATS = 5


def models():
    """(name, quantized graph, its real test images or None, board) of each bench model."""
    lenet = load_model(ROOT / "examples" / "lenet.onnx")
    yield ("LeNet-5 (examples/lenet.onnx)",
           quantize_graph(lenet, QuantOptions(), np.load(ROOT / "examples" / "lenet.calib.npz")["x"]),
           np.load(ROOT / "examples" / "lenet.test.npz")["x"], "icebreaker")
    mnist = load_model(ROOT / "tests" / "data" / "mnist8" / "mnist-8.onnx")
    yield ("mnist-8 (ONNX model zoo)", quantize_graph(mnist, QuantOptions(), input_range=(0, 255)),
           np.load(ROOT / "tests" / "data" / "mnist8" / "mnist_digits_10.npz")["x"], "icebreaker")
    tiny = ROOT / "tests" / "data" / "mlperf_tiny"
    for name, file in (("KWS DS-CNN (MLPerf Tiny)", "kws_ref_model.tflite"),
                       ("ResNet-8 (MLPerf Tiny)", "pretrainedResnet_quant.tflite")):
        yield name, quantize_graph(load_model(tiny / file), QuantOptions()), None, "ulx3s-85f"


def main() -> None:
    print(f"Measured with `{COMMAND}` ({REPEATS} runs each):\n")
    print("| model | board | planning, s (fastest / slowest) | cycles per inference | x DSP bound | products per cycle |")
    print("|---|---|---|---|---|---|")
    for name, qgraph, _, board_name in models():
        board = load_board(board_name)
        seconds = []
        for _ in range(REPEATS):
            network_of.cache_clear()  # each run plans from nothing
            started = time.perf_counter()
            plan = plan_for_board(qgraph, board)
            seconds.append(time.perf_counter() - started)
        network = Network(qgraph, plan)
        bound = qgraph.graph.macs / board.budget["dsp"]
        print(f"| {name} | {board.name} | {min(seconds):.2f} / {max(seconds):.2f} | {network.cycles_per_inference:,} | "
              f"{network.cycles_per_inference / bound:.2f} | {network.multipliers} |")


if __name__ == "__main__":
    main()
