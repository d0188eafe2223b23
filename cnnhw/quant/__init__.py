"""Quantization: the fixed-point arithmetic (``arith``, its one definition), calibration,
and the quantized graph."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..ir import Graph
from .arith import IntFormat, Requantizer, round_shift
from .calibrate import calibrate, interval_bounds
from .qgraph import QGraph, QuantOptions
from .quantize import lower_for_integers, quantize

#: The input range assumed without calibration data (images scaled to 0..1).
DEFAULT_INPUT_RANGE = (0.0, 1.0)


def quantize_graph(graph: Graph, options: QuantOptions = QuantOptions(), calib: np.ndarray | None = None,
                   input_range: tuple[float, float] | None = None, calib_label: str = "") -> QGraph:
    """Lower, find ranges (from ``calib`` images, else data-free from ``input_range``), quantize."""
    options.check()
    lowered, dropped = lower_for_integers(graph)
    if calib is not None:
        ranges = calibrate(lowered, calib, options.calibration, options.percentile)
        label = calib_label or f"{len(calib)} calibration images"
        label += f" ({options.calibration}{f' {options.percentile:g}' if options.calibration == 'percentile' else ''})"
    else:
        lo, hi = input_range or DEFAULT_INPUT_RANGE
        ranges = interval_bounds(lowered, lo, hi)
        label = f"data-free bounds from input range [{lo:g}, {hi:g}]"
    return replace(quantize(lowered, ranges, options, label), dropped_softmax=dropped)


__all__ = ["IntFormat", "Requantizer", "round_shift", "QGraph", "QuantOptions", "quantize_graph",
           "calibrate", "interval_bounds", "DEFAULT_INPUT_RANGE"]
