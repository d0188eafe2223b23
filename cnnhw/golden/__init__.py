"""The reference models: the bit-exact integer model of a quantized graph (:mod:`.int_ref`), the
float meaning of the graph it came from (``cnnhw.ir.reference``, re-exported here), and how far
apart they are (:mod:`.evaluate`)."""

from ..ir.reference import run_float

__all__ = ["run_float"]
