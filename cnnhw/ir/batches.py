"""Running the reference models on many images within a bounded amount of memory.

The models work on whole batches (NumPy vectorises over images), but a batch's intermediate
arrays grow with its size. :func:`batches` splits a run so that no step holds more than
:data:`MAX_WORKING_VALUES` values, and refuses, before allocating anything, runs that cannot fit:
one image that alone needs more, or an ``every_layer`` run whose kept outputs would.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import DataError
from .graph import Graph

#: Values (float64 or int64) one step of a reference model may hold: 2**27, 1 GiB.
MAX_WORKING_VALUES = 1 << 27
#: Values an ``every_layer`` run may keep for all its images: 2**28, 2 GiB.
MAX_KEPT_VALUES = 1 << 28


def batches(graph: Graph, images: int, every_layer: bool = False) -> list[slice]:
    """Slices of ``range(images)`` to run ``graph`` on one after the other."""
    per_image = graph.working_values
    if per_image > MAX_WORKING_VALUES:
        raise DataError(f"model '{graph.name}' is too big to run in software: one image needs {per_image:,} values "
                        f"of working memory (at most {MAX_WORKING_VALUES:,})")
    if every_layer and images * graph.output_values > MAX_KEPT_VALUES:
        raise DataError(f"too big: keeping every layer's output of {images:,} images of model '{graph.name}' needs "
                        f"{images * graph.output_values:,} values (at most {MAX_KEPT_VALUES:,}); give fewer images")
    step = max(1, MAX_WORKING_VALUES // per_image)
    return [slice(start, min(start + step, images)) for start in range(0, images, step)]


def run_in_batches(graph: Graph, x: np.ndarray, run: Callable[[np.ndarray], list[np.ndarray]], every_layer: bool):
    """``run(batch)`` (the outputs of a model's steps on ``batch``, the last one the result) on all of
    ``x``, in :func:`batches`: every step's outputs over all images with ``every_layer``, else the
    results (a batch's other outputs are dropped as soon as it is done)."""
    runs = [run(x[part]) if every_layer else run(x[part])[-1:] for part in batches(graph, len(x), every_layer)]
    outputs = [np.concatenate(values) for values in zip(*runs)]
    return outputs if every_layer else outputs[-1]
