"""Model import: the only package that knows file formats."""

from pathlib import Path

from ..errors import ModelError
from ..ir import Graph


def load_model(path) -> Graph:
    """Load an ONNX (``.onnx``), NumPy (``.npz``) or TFLite int8 (``.tflite``) model into a
    simplified Graph (a TFLite model's with its own integer model, ``Graph.integer_model``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from .onnx import load_onnx

        return load_onnx(path)
    if suffix == ".npz":
        from .npz import load_npz

        return load_npz(path)
    if suffix == ".tflite":
        from .tflite import load_tflite

        return load_tflite(path)
    raise ModelError(f"model {path}: unknown model format '{suffix or 'no extension'}'; give an .onnx, .npz or "
                     f".tflite file")


__all__ = ["load_model"]
