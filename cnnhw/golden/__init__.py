"""The reference models: the bit-exact integer model of a quantized graph (:mod:`.int_ref`), the
float meaning of the graph it came from (``cnnhw.ir.reference``, re-exported here), and how far
apart they are (:mod:`.evaluate`)."""

from ..ir.reference import run_float
from .classes import classes_of

__all__ = ["classes_of", "run_float"]
