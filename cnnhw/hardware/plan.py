"""HardwarePlan: per layer, PE (output channels in parallel), SIMD (products per output per
cycle), the rescaler's multiplier digit width and where the weights and products go. A plain,
diffable, JSON-serialisable value: the hardware is a function of (QGraph, HardwarePlan), and
each layer's hardware op (:mod:`cnnhw.hardware`) checks the part of the plan that is its own.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, replace

from ..errors import CnnhwError
from ..families import FAMILIES
from ..gateware.mvu import WeightHome
from ..ir.ops import is_int

#: Where a layer's weights can live (``LayerPlan.weights``), as the plan's JSON spells them.
WEIGHT_HOMES = tuple(home.value for home in WeightHome)


@dataclass(frozen=True)
class LayerPlan:
    """One layer's folding. ``overlap`` (conv and pooling layers): line buffers with room for the
    next image's first window, so stages overlap across images (the cycle model assumes it);
    without, fewer block RAMs and a wait at every image boundary. ``packed`` (conv and dense
    layers with operands of at most 8 bits): two products per DSP (SB_MAC16 in 8x8 mode).
    ``weights`` (conv and dense layers): where the weights live, "rom" (initialized by the
    bitstream: block RAM or LUTs, as yosys decides), "logic" (the same ROM, always in LUTs) or
    "spram" (loaded from flash at boot), a
    :class:`WeightHome` (a ``str`` enum, so the JSON keeps the words).
    ``logic_products`` (conv and dense layers): the products are made of logic cells (LUT
    multipliers, ``gateware/lut_mul.py``) and take no DSP: what a plan uses when the DSPs run out.
    ``biases_in_logic`` (conv and dense layers): the bias table is a multiplexer of constants
    however long it is (a long one is otherwise a ROM that yosys may put in block RAM): what a
    plan uses when block RAM runs out."""

    name: str
    pe: int = 1
    simd: int = 1
    digit_bits: int = 4
    overlap: bool = True
    packed: bool = False
    weights: WeightHome = WeightHome.ROM
    logic_products: bool = False
    biases_in_logic: bool = False

    def __post_init__(self):
        if self.weights in WEIGHT_HOMES and not isinstance(self.weights, WeightHome):
            object.__setattr__(self, "weights", WeightHome(self.weights))


@dataclass(frozen=True)
class HardwarePlan:
    """Every layer's folding, for one FPGA family (``family``, :mod:`cnnhw.families`: how many
    DSPs a product takes and whether two can share one depend on it), and the serial front end's
    ``image_buffers`` (two: an image received while the one before is computed; one saves their
    block RAM)."""

    layers: tuple[LayerPlan, ...]
    family: str = "ice40"
    image_buffers: int = 2

    def for_layer(self, name: str) -> LayerPlan:
        for layer in self.layers:
            if layer.name == name:
                return layer
        return LayerPlan(name)

    def to_json(self) -> dict:
        return {"family": self.family, "image_buffers": self.image_buffers,
                "layers": [{**asdict(layer), "weights": WeightHome(layer.weights).value} for layer in self.layers]}

    @staticmethod
    def from_json(facts) -> "HardwarePlan":
        """The plan a JSON value describes, checked key by key (types, ranges, unknown keys, layers
        listed twice); whether it suits a model is :func:`check_plan`'s question."""
        expected = "expected {\"layers\": [{\"name\": ..., \"pe\": ..., \"simd\": ...}, ...]}"
        if not isinstance(facts, dict) or not isinstance(facts.get("layers"), list):
            raise CnnhwError(f"plan: not a cnnhw plan; {expected}")
        unknown = set(facts) - {"layers", "family", "image_buffers", "written_by"}
        if unknown:
            raise CnnhwError(f"plan: unknown key {sorted(unknown)[0]!r} at the top level; {expected}")
        plan_family = facts.get("family", "ice40")
        if plan_family not in FAMILIES:
            raise CnnhwError(f"plan: 'family' must be one of {', '.join(FAMILIES)}, not {plan_family!r:.40}")
        buffers = facts.get("image_buffers", 2)
        if not is_int(buffers) or buffers not in (1, 2):
            raise CnnhwError(f"plan: 'image_buffers' must be 1 or 2, not {buffers!r:.40}")
        layers, seen = [], set()
        for index, layer in enumerate(facts["layers"]):
            layers.append(_layer_plan(layer, index))
            if layers[-1].name in seen:
                raise CnnhwError(f"plan: layer '{layers[-1].name}' is listed twice; give each layer once")
            seen.add(layers[-1].name)
        return HardwarePlan(tuple(layers), plan_family, buffers)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)


#: The largest PE or SIMD a plan may ask for (far beyond any FPGA's multipliers).
MAX_FOLDING = 1 << 16
#: The widest rescaler digit: a whole 32-bit multiplier per cycle.
MAX_DIGIT_BITS = 32


def _layer_plan(layer, index: int) -> LayerPlan:
    if not isinstance(layer, dict):
        raise CnnhwError(f"plan: layer entry {index} must be an object with 'name', 'pe', 'simd', ..., not {layer!r:.40}")
    name = layer.get("name")
    if not isinstance(name, str) or not name:
        raise CnnhwError(f"plan: layer entry {index} needs a 'name' (a string), not {name!r:.40}")
    fields = {f.name: f for f in dataclasses.fields(LayerPlan)}
    unknown = set(layer) - set(fields)
    if unknown:
        raise CnnhwError(f"plan: layer '{name}' has unknown key {sorted(unknown)[0]!r} (keys: {', '.join(fields)})")
    for key, value in layer.items():
        if key in ("pe", "simd", "digit_bits"):
            top = MAX_DIGIT_BITS if key == "digit_bits" else MAX_FOLDING
            if not is_int(value) or not 1 <= value <= top:
                raise CnnhwError(f"plan: '{key}' of layer '{name}' must be an integer from 1 to {top}, not {value!r:.40}")
        elif key in ("overlap", "packed", "logic_products", "biases_in_logic") and not isinstance(value, bool):
            raise CnnhwError(f"plan: '{key}' of layer '{name}' must be true or false, not {value!r:.40}")
        elif key == "weights" and value not in WEIGHT_HOMES:
            raise CnnhwError(f"plan: 'weights' of layer '{name}' must be one of {', '.join(WEIGHT_HOMES)}, "
                             f"not {value!r:.40}")
    return LayerPlan(**layer)


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def with_folding(plan: HardwarePlan, name: str, **changes) -> HardwarePlan:
    """A copy of ``plan`` with one layer's folding changed."""
    layers = [replace(layer, **changes) if layer.name == name else layer for layer in plan.layers]
    if all(layer.name != name for layer in plan.layers):
        layers.append(replace(LayerPlan(name), **changes))
    return replace(plan, layers=tuple(layers))
