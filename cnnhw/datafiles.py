"""DATA files: batches of images (and optional labels) that users feed to cnnhw.

A DATA file is a ``.npz`` holding ``x`` with shape ``(N, C, H, W)`` (or ``(N, H, W)`` for
one-channel images, ``(N, K)`` for vector inputs) in the model's input units, and
optionally ``y``: N integer class labels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError
from .inputs import read_npz
from .ir import Graph
from .ir.graph import check_batch, label_count

log = logging.getLogger("cnnhw")


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray  # (N, *graph.input_shape)
    y: np.ndarray | None  # (N,) int64 labels, or None


@dataclass(frozen=True)
class InputSpec:
    """A model's input as far as DATA files are concerned, when only a build folder is at hand."""

    name: str
    input_shape: tuple[int, ...]
    classes: int
    has_classes: bool = True

    @property
    def labels(self) -> int:
        return label_count(self.classes)

    def check_batch(self, x: np.ndarray, what: str = "inputs") -> np.ndarray:
        return check_batch(x, self.input_shape, self.name, what)


def load_data(path, graph: Graph | InputSpec, what: str = "inputs", use_labels: bool = True) -> Dataset:
    """Read a DATA file and check it against ``graph``'s input shape (never reshaping silently).
    Labels are checked against its classes; a model without classes ignores them, and says so
    when the command would use them (``use_labels``)."""
    path = Path(path)
    where = f"{what} {path}"
    arrays = read_npz(path, what, DataError)
    if "x" not in arrays:
        raise DataError(f"{where}: no array 'x' (found {sorted(arrays) or 'none'}); store the images as x")
    x = graph.check_batch(arrays["x"], where)
    y = arrays.get("y")
    if y is not None and not graph.has_classes:
        if use_labels:
            log.warning("%s: the labels y are not used: model '%s' gives values, not classes", where,
                        graph.name)
        y = None
    if y is not None:
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise DataError(f"{where}: y has shape {y.shape}; expected ({x.shape[0]},), one label per image")
        if y.dtype.kind not in "iu":
            raise DataError(f"{where}: y has dtype {y.dtype}; labels must be integers")
        y = y.astype(np.int64)
        classes = graph.labels
        outside = (y < 0) | (y >= classes)
        if np.any(outside):
            first = int(np.argmax(outside))
            raise DataError(f"{where}: label {int(y[first])} of image {first} is not a class of model "
                            f"'{graph.name}' (0 to {classes - 1}); {int(outside.sum())} labels are outside")
    return Dataset(x, y)
