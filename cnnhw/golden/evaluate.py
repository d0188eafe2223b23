"""How much quantization costs: per-layer error against the float reference, and accuracy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import CnnhwError
from ..ir.batches import batches
from ..ir.reference import run_float
from .classes import classes_of
from .int_ref import run_int
from ..quant.qgraph import QGraph


@dataclass(frozen=True)
class LayerError:
    name: str
    sqnr_db: float  # 10 log10(signal power / error power) of the dequantized output
    max_error_lsb: float  # largest |float - dequantized int| in output steps


def layer_errors(qgraph: QGraph, x: np.ndarray) -> list[LayerError]:
    """Compare every integer layer's dequantized output with the float output it stands for
    (a batch at a time, so that only one batch's layers are held)."""
    names = [layer.op.name for layer in qgraph.graph.layers]
    power = np.zeros(len(qgraph.layers))
    noise = np.zeros(len(qgraph.layers))
    largest = np.zeros(len(qgraph.layers))
    for part in batches(qgraph.graph, len(x)):
        floats = dict(zip(names, run_float(qgraph.graph, x[part], every_layer=True)))
        ints = run_int(qgraph, x[part], every_layer=True)[1:]
        for k, (layer, value) in enumerate(zip(qgraph.layers, ints)):
            reference = floats[layer.source]
            error = reference - layer.dequantize(value)
            power[k] += float(np.sum(reference ** 2))
            noise[k] += float(np.sum(error ** 2))
            largest[k] = max(largest[k], float(np.max(np.abs(error))) if error.size else 0.0)
    errors = []
    for k, layer in enumerate(qgraph.layers):
        sqnr = float("inf") if noise[k] == 0 else (10 * np.log10(power[k] / noise[k]) if power[k] > 0 else float("-inf"))
        errors.append(LayerError(layer.name, sqnr, largest[k] / layer.out_scale))
    return errors


@dataclass(frozen=True)
class Accuracy:
    images: int
    float_accuracy: float | None  # None without labels
    int_accuracy: float | None
    agreement: float  # fraction of images where float and integer models pick the same class


def accuracy(qgraph: QGraph, x: np.ndarray, y: np.ndarray | None) -> Accuracy:
    float_classes = classes_of(run_float(qgraph.graph, x))
    int_classes = classes_of(run_int(qgraph, x))
    return Accuracy(
        len(x),
        None if y is None else float(np.mean(float_classes == y)),
        None if y is None else float(np.mean(int_classes == y)),
        float(np.mean(float_classes == int_classes)),
    )


#: A data-free quantization whose output is further from the float model's than this, on images
#: spread over the input range, is refused: its error is nearly as large as the output itself.
DATA_FREE_SQNR_FLOOR_DB = 1.0

#: Images drawn over the input range to probe a data-free quantization (fixed: the verdict is
#: deterministic).
PROBE_IMAGES = 16


def check_data_free(qgraph: QGraph, input_range: tuple[float, float]) -> None:
    """Refuse (CnnhwError) a degenerate data-free quantization: one in which a layer gives 0 for
    every probe image where the float model does not, or whose output's SQNR is below
    ``DATA_FREE_SQNR_FLOOR_DB``. The probes are uniform over ``input_range``, inside the bounds
    the ranges were derived from, so only their looseness can make the integers degenerate.
    They run one at a time: a probe holds no more memory than one image does."""
    lo, hi = input_range
    probes = np.random.default_rng(0).uniform(lo, hi, size=(PROBE_IMAGES, *qgraph.graph.input_shape))
    advice = ("the ranges derived from the input range alone are too loose for this model: pass --calib DATA "
              "with real images")
    names = [layer.op.name for layer in qgraph.graph.layers]
    nonzero_int = np.zeros(len(qgraph.layers), dtype=bool)
    nonzero_float = np.zeros(len(qgraph.layers), dtype=bool)
    power = noise = 0.0
    for probe in probes:
        floats = dict(zip(names, run_float(qgraph.graph, probe[None], every_layer=True)))
        for k, (layer, value) in enumerate(zip(qgraph.layers, run_int(qgraph, probe[None], every_layer=True)[1:])):
            nonzero_int[k] |= bool(np.any(value))
            nonzero_float[k] |= bool(np.any(floats[layer.source]))
        reference = floats[qgraph.layers[-1].source]
        power += float(np.sum(reference ** 2))
        noise += float(np.sum((reference - qgraph.layers[-1].dequantize(value)) ** 2))
    for layer, int_any, float_any in zip(qgraph.layers, nonzero_int, nonzero_float):
        if float_any and not int_any:
            raise CnnhwError(f"data-free quantization: layer '{layer.name}' gives 0 for every one of "
                             f"{PROBE_IMAGES} probe images in [{lo:g}, {hi:g}]; {advice}")
    sqnr = float("inf") if noise == 0 else (10 * np.log10(power / noise) if power > 0 else float("-inf"))
    if sqnr < DATA_FREE_SQNR_FLOOR_DB:
        raise CnnhwError(f"data-free quantization: the output's SQNR is {sqnr:.1f} dB on {PROBE_IMAGES} "
                         f"probe images in [{lo:g}, {hi:g}], below the floor of {DATA_FREE_SQNR_FLOOR_DB:g} dB; "
                         f"{advice}")
