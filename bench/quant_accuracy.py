"""Accuracy of the example LeNet-5 in float and at 8, 6, 4 and 3 bits (weights and activations).

Run:  .venv/bin/python bench/quant_accuracy.py
Prints a Markdown table (quoted in README) and writes bench/quant_accuracy.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from cnnhw.frontend import load_model
from cnnhw.quant import QuantOptions, quantize_graph
from cnnhw.golden.evaluate import accuracy

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ".venv/bin/python bench/quant_accuracy.py"


def main() -> int:
    graph = load_model(ROOT / "examples" / "lenet.onnx")
    calib = np.load(ROOT / "examples" / "lenet.calib.npz")["x"]
    test = np.load(ROOT / "examples" / "lenet.test.npz")
    rows = []
    for bits in (8, 6, 4, 3):
        for power_of_two in (False, True):
            options = QuantOptions(weight_bits=bits, activation_bits=bits, power_of_two=power_of_two)
            result = accuracy(quantize_graph(graph, options, calib), test["x"], test["y"])
            rows.append({"bits": bits, "power_of_two": power_of_two, "accuracy_float": result.float_accuracy,
                         "accuracy_int": result.int_accuracy, "agreement": result.agreement})
    (ROOT / "bench" / "quant_accuracy.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"LeNet-5 on its {len(test['y'])} test digits (`{COMMAND}`):\n")
    print("| weights/activations | scales | integer accuracy | float accuracy | top-1 agreement |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['bits']}/{row['bits']} bits | {'power of two' if row['power_of_two'] else 'per-channel'} "
              f"| {row['accuracy_int']:.2%} | {row['accuracy_float']:.2%} | {row['agreement']:.2%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
