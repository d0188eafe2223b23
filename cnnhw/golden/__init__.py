"""Reference models: the float meaning of a graph (and, with quantization, the integer one)."""

from .float_ref import run_float

__all__ = ["run_float"]
