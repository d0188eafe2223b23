"""Quantization: the fixed-point arithmetic (``arith``, its one definition), calibration,
and the quantized graph."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from ..ir import Conv2d, Dense, Graph
from .arith import IntFormat, Requantizer, round_shift
from .calibrate import calibrate, interval_bounds
from .qgraph import QGraph, QuantOptions
from .quantize import lower_for_integers, quantize

log = logging.getLogger("cnnhw")

#: The input range assumed without calibration data (images scaled to 0..1).
DEFAULT_INPUT_RANGE = (0.0, 1.0)


def quantize_graph(graph: Graph, options: QuantOptions = QuantOptions(), calib: np.ndarray | None = None,
                   input_range: tuple[float, float] | None = None, calib_label: str = "",
                   quiet: bool = False) -> QGraph:
    """Lower, find ranges (from ``calib`` images, else data-free from ``input_range``), quantize
    (``quiet``: without warnings about the model, for a trial). A pre-quantized model
    (``Graph.integer_model``) is its own integer model: no ranges, no options."""
    if graph.integer_model is not None:
        return graph.integer_model
    options.check()
    lowered, dropped = lower_for_integers(graph)
    for op in graph.ops:
        if not quiet and isinstance(op, (Conv2d, Dense)) and not np.any(op.weight):
            log.warning("%s '%s' has all-zero weights: its output is its bias alone, whatever the input "
                        "(a dead layer; is the model trained?)", op.label, op.name)
    if calib is not None:
        ranges = calibrate(lowered, calib, options.calibration, options.percentile)
        label = calib_label or f"{len(calib)} calibration images"
        label += f" ({options.calibration}{f' {options.percentile:g}' if options.calibration == 'percentile' else ''})"
    else:
        lo, hi = input_range or DEFAULT_INPUT_RANGE
        ranges = interval_bounds(lowered, lo, hi)
        label = f"data-free bounds from input range [{lo:g}, {hi:g}]"
    return replace(quantize(lowered, ranges, options, label), dropped=dropped)


__all__ = ["IntFormat", "Requantizer", "round_shift", "QGraph", "QuantOptions", "quantize_graph",
           "calibrate", "interval_bounds", "DEFAULT_INPUT_RANGE"]
