"""The planner: a plan for a board (:mod:`.budget`), priced layer by layer (:mod:`.costs`, with
the logic-cell model of :mod:`.logic`). The plan itself and the hardware ops it prices live in
:mod:`cnnhw.hardware`; the names below are re-exported for convenience."""

from ..hardware import (HardwarePlan, LayerPlan, check_plan, default_plan, predict_cycles, predict_cycles_per_inference,
                        predict_latency)

__all__ = ["HardwarePlan", "LayerPlan", "check_plan", "default_plan", "predict_cycles", "predict_cycles_per_inference",
           "predict_latency"]
