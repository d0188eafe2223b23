"""DATA files: batches of images (and optional labels) that users feed to cnnhw.

A DATA file is a ``.npz`` holding ``x`` with shape ``(N, C, H, W)`` (or ``(N, H, W)`` for
one-channel images, ``(N, K)`` for vector inputs) in the model's input units, and
optionally ``y``: N integer class labels.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError
from .ir import Graph
from .ir.graph import check_batch


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray  # (N, *graph.input_shape)
    y: np.ndarray | None  # (N,) int64 labels, or None


@dataclass(frozen=True)
class InputSpec:
    """A model's input as far as DATA files are concerned, when only a build folder is at hand."""

    name: str
    input_shape: tuple[int, ...]

    def check_batch(self, x: np.ndarray, what: str = "inputs") -> np.ndarray:
        return check_batch(x, self.input_shape, self.name, what)


def load_data(path, graph: Graph | InputSpec, what: str = "inputs") -> Dataset:
    """Read a DATA file and check it against ``graph``'s input shape (never reshaping silently)."""
    path = Path(path)
    where = f"{what} {path}"
    if not path.is_file():
        raise DataError(f"{where}: file not found" if not path.exists() else f"{where}: not a file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise DataError(f"{where}: not a readable .npz file ({error}); save it with numpy.savez(x=..., y=...)") from None
    if "x" not in arrays:
        raise DataError(f"{where}: no array 'x' (found {sorted(arrays) or 'none'}); store the images as x")
    x = graph.check_batch(arrays["x"], where)
    y = arrays.get("y")
    if y is not None:
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise DataError(f"{where}: y has shape {y.shape}; expected ({x.shape[0]},), one label per image")
        if y.dtype.kind not in "iu":
            raise DataError(f"{where}: y has dtype {y.dtype}; labels must be integers")
        y = y.astype(np.int64)
    return Dataset(x, y)
