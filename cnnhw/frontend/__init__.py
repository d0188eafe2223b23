"""Model import: the only package that knows file formats."""

from pathlib import Path

from ..errors import ModelError
from ..ir import Graph


def load_model(path) -> Graph:
    """Load an ONNX (``.onnx``) or NumPy (``.npz``) model into a simplified Graph."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from .onnx import load_onnx

        return load_onnx(path)
    if suffix == ".npz":
        from .npz import load_npz

        return load_npz(path)
    raise ModelError(f"model {path}: unknown model format '{suffix or 'no extension'}'; give an .onnx or .npz file")


__all__ = ["load_model"]
