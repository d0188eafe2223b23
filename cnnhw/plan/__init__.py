"""Hardware plans: how each layer is folded onto the hardware, as a plain JSON-able value."""

from .plan import HardwarePlan, LayerPlan, check_plan, default_plan, predict_cycles, predict_latency

__all__ = ["HardwarePlan", "LayerPlan", "check_plan", "default_plan", "predict_cycles", "predict_latency"]
