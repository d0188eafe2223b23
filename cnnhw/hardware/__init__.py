"""The hardware op layer: one object per quantized layer, made from the layer and its
``LayerPlan``, that knows everything about its hardware (cycles, latency, memories, DSPs,
logic-cell terms, weight bandwidth, stream order) and creates it (:mod:`.op`); a
:class:`Network` is a graph's ops under a plan, which the planner prices and the generator
builds (:mod:`.network`). The plan itself is a plain value (:mod:`.plan`)."""

from .network import (Network, check_plan, default_plan, hardware_op, hardware_refusal, predict_cycles,
                      predict_cycles_per_inference, predict_latency)
from .op import HardwareOp
from .plan import HardwarePlan, LayerPlan, WeightHome, with_folding

__all__ = ["HardwareOp", "HardwarePlan", "LayerPlan", "Network", "WeightHome", "check_plan", "default_plan",
           "hardware_op", "hardware_refusal", "predict_cycles", "predict_cycles_per_inference", "predict_latency",
           "with_folding"]
