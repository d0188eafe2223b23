"""NumPy weights import: a network as plain arrays plus a JSON architecture.

The file format (also documented in docs/commands.md, "Models as .npz"):

* ``architecture``: a string array holding JSON::

      {"format": "cnnhw-npz", "version": 1, "input": [1, 32, 32],
       "layers": [{"type": "conv", "name": "conv1", "stride": 1, "pads": 0},
                  {"type": "relu"},
                  {"type": "maxpool", "kernel": 2},
                  {"type": "flatten"},
                  {"type": "dense", "name": "fc1"}]}

* one array per parameter, named ``<layer name>.<role>``: ``conv1.weight``
  ``(out, in/groups, kh, kw)``, ``conv1.bias`` ``(out,)`` (optional), ``fc1.weight``
  ``(out, in)``, ``fc1.bias``; a ``batchnorm`` layer has ``.scale``, ``.bias``, ``.mean``,
  ``.var``.

Layer types and their keys (ints may be given once for both axes):

======================  ==============================================================
``conv``                stride=1, pads=0 (or [top, left, bottom, right]), dilation=1, groups=1
``maxpool``/``avgpool`` kernel (required), stride=kernel, pads=0, dilation=1,
                        ceil_mode=false, count_include_pad=false (avgpool only)
``globalavgpool``,      (none)
``globalmaxpool``
``dense``               (none; sizes come from the arrays)
``batchnorm``           epsilon=1e-5
``relu``, ``relu6``     (none)
``clip``                min, max (null for unbounded)
``leakyrelu``           alpha=0.01
``sigmoid``, ``tanh``,  (none)
``hardswish``
``hardsigmoid``         alpha=0.2, beta=0.5
``elu``                 alpha=1
``selu``                alpha=1.67326..., gamma=1.05070... (the self-normalising constants)
``flatten``             (none)
``softmax``             (none; the last layer only)
======================  ==============================================================

Every layer may have a ``name`` (required for layers with arrays). Unknown keys, missing or
unused arrays, and wrong shapes are errors: a typo never silently changes the network.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..inputs import read_npz
from ..ir.ops import is_int
from ..ir import (Affine, Clip, Conv2d, Dense, Elu, GlobalPool, Graph, HardSigmoid, HardSwish, LeakyRelu, Pool2d, Relu,
                  Reshape, Selu, Sigmoid, Softmax, Tanh, simplify)

FORMAT, VERSION = "cnnhw-npz", 1

_LOOKUP_ACTIVATIONS = {"sigmoid": Sigmoid, "tanh": Tanh, "hardswish": HardSwish, "hardsigmoid": HardSigmoid,
                       "elu": Elu, "selu": Selu}

_LAYER_KEYS = {
    "conv": {"stride", "pads", "dilation", "groups"},
    "maxpool": {"kernel", "stride", "pads", "dilation", "ceil_mode"},
    "avgpool": {"kernel", "stride", "pads", "dilation", "ceil_mode", "count_include_pad"},
    "globalavgpool": set(),
    "globalmaxpool": set(),
    "dense": set(),
    "batchnorm": {"epsilon"},
    "relu": set(),
    "relu6": set(),
    "clip": {"min", "max"},
    "leakyrelu": {"alpha"},
    "sigmoid": set(),
    "tanh": set(),
    "hardswish": set(),
    "hardsigmoid": {"alpha", "beta"},
    "elu": {"alpha"},
    "selu": {"alpha", "gamma"},
    "flatten": set(),
    "softmax": set(),
}
_ARRAYS = {
    "conv": (("weight",), ("bias",)),
    "dense": (("weight",), ("bias",)),
    "batchnorm": (("scale", "bias", "mean", "var"), ()),
}


def load_npz(path) -> Graph:
    """Read a ``.npz`` model (format above) into a simplified Graph."""
    path = Path(path)
    return simplify(_build(path, read_npz(path, "model file", ModelError)))


def _build(path: Path, arrays: dict) -> Graph:
    where = f"model {path}"
    if "architecture" not in arrays:
        raise ModelError(f"{where} has no 'architecture' array; see cnnhw's docs/commands.md, 'Models as .npz', "
                         f"for the format")
    text = arrays.pop("architecture")
    if text.ndim != 0 or text.dtype.kind not in "US":
        raise ModelError(f"{where}: 'architecture' must be one JSON string (numpy.savez(..., architecture=json.dumps(...))), "
                         f"not a {text.dtype} array of shape {text.shape}")
    try:
        arch = json.loads(str(text.item() if text.dtype.kind == "U" else text.item().decode("utf-8")))
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ModelError(f"{where}: 'architecture' is not valid JSON ({type(error).__name__})") from None
    if not isinstance(arch, dict) or arch.get("format") != FORMAT or arch.get("version") != VERSION:
        raise ModelError(f"{where}: 'architecture' must be a JSON object with format '{FORMAT}' and version {VERSION}")
    unknown = set(arch) - {"format", "version", "input", "layers", "name"}
    if unknown:
        raise ModelError(f"{where}: unknown architecture keys {sorted(unknown)}")
    input_shape = arch.get("input")
    if not isinstance(input_shape, list) or not input_shape or not all(is_int(d) and d > 0 for d in input_shape):
        raise ModelError(f"{where}: 'input' must be the per-image shape as a list of positive ints, e.g. [1, 28, 28]")
    layers = arch.get("layers")
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise ModelError(f"{where}: 'layers' must be a list of objects")

    used: set[str] = set()
    ops = []
    shape = tuple(input_shape)
    for index, spec in enumerate(layers):
        op = _layer(where, index, spec, arrays, used, shape)
        shape = op.output_shape(shape)
        ops.append(op)
    unused = sorted(set(arrays) - used)
    if unused:
        raise ModelError(f"{where}: arrays {unused} are not used by any layer (a misspelt layer name?)")
    name = arch.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise ModelError(f"{where}: 'name' must be a non-empty string, not {name!r}")
    return Graph(name, tuple(input_shape), tuple(ops), source=f"{FORMAT} v{VERSION}")


def _layer(where: str, index: int, spec: dict, arrays: dict, used: set, shape):
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in _LAYER_KEYS:
        raise ModelError(f"{where}: layer {index} has 'type' {kind!r}; known types: {', '.join(_LAYER_KEYS)}")
    unknown = set(spec) - _LAYER_KEYS[kind] - {"type", "name"}
    if unknown:
        raise ModelError(f"{where}: layer {index} ({kind}) has unknown keys {sorted(unknown)}")
    name = spec.get("name", f"{kind}{index}")
    if not isinstance(name, str) or not name:
        raise ModelError(f"{where}: layer {index} ({kind}) has 'name' {name!r}; a name is a non-empty string")
    where = f"{where}: layer '{name}' ({kind})"

    def array(role: str, required: bool = True):
        key = f"{name}.{role}"
        if key not in arrays:
            if required:
                raise ModelError(f"{where} needs array '{key}'")
            return None
        used.add(key)
        value = arrays[key]
        if value.dtype.kind not in "fiu":
            raise ModelError(f"{where}: array '{key}' has dtype {value.dtype}; expected numbers")
        return value.astype(np.float64)

    def ints(key: str, count: int, default, low: int = 1):
        given = spec.get(key, default)
        value = [given] * count if is_int(given) else given
        if not isinstance(value, list) or len(value) != count or not all(is_int(v) and v >= low for v in value):
            raise ModelError(f"{where}: '{key}' must be an int >= {low} or a list of {count} such ints, not {given!r}")
        return tuple(value)

    def flag(key: str) -> bool:
        value = spec.get(key, False)
        if not isinstance(value, bool):
            raise ModelError(f"{where}: '{key}' must be true or false, not {value!r}")
        return value

    def number(key: str, default, low: float = -math.inf):
        value = spec.get(key, default)
        if value is None and default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < math.inf:
            raise ModelError(f"{where}: '{key}' must be a finite number{f' >= {low:g}' if low > -math.inf else ''}, "
                             f"not {value!r}")
        return float(value)

    if kind == "conv":
        weight = array("weight")
        if weight.ndim != 4:
            raise ModelError(f"{where}: '{name}.weight' must be (out, in/groups, kh, kw), got shape {weight.shape}")
        bias = array("bias", required=False)
        bias = np.zeros(weight.shape[0]) if bias is None else bias
        groups = ints("groups", 1, 1)[0]
        if weight.shape[0] % groups:
            raise ModelError(f"{where}: 'groups' {groups} does not divide the {weight.shape[0]} output channels")
        return Conv2d(name, weight, bias, ints("stride", 2, 1), ints("pads", 4, 0, low=0), ints("dilation", 2, 1),
                      groups)
    if kind in ("maxpool", "avgpool"):
        if "kernel" not in spec:
            raise ModelError(f"{where} needs 'kernel'")
        kernel = ints("kernel", 2, None)
        return Pool2d(name, kind[:3], kernel, ints("stride", 2, list(kernel)), ints("pads", 4, 0, low=0),
                      ints("dilation", 2, 1), flag("ceil_mode"), flag("count_include_pad"))
    if kind in ("globalavgpool", "globalmaxpool"):
        return GlobalPool(name, kind[6:9])
    if kind == "dense":
        weight = array("weight")
        if weight.ndim != 2:
            raise ModelError(f"{where}: '{name}.weight' must be (out, in), got shape {weight.shape}")
        bias = array("bias", required=False)
        return Dense(name, weight, np.zeros(weight.shape[0]) if bias is None else bias)
    if kind == "batchnorm":
        scale, shift, mean, var = (array(role) for role in ("scale", "bias", "mean", "var"))
        channels = shape[0]
        if any(a.shape != (channels,) for a in (scale, shift, mean, var)):
            raise ModelError(f"{where}: scale, bias, mean and var must each have shape ({channels},)")
        return Affine.from_batchnorm(name, scale, shift, mean, var, number("epsilon", 1e-5, low=0.0), len(shape))
    if kind == "relu":
        return Relu(name)
    if kind == "relu6":
        return Clip(name, 0.0, 6.0)
    if kind == "clip":
        low, high = number("min", None), number("max", None)
        if low is not None and high is not None and low > high:
            raise ModelError(f"{where}: 'min' {low:g} is above 'max' {high:g}")
        return Clip(name, low, high)
    if kind == "leakyrelu":
        return LeakyRelu(name, number("alpha", 0.01))
    if kind in _LOOKUP_ACTIVATIONS:
        activation = _LOOKUP_ACTIVATIONS[kind]
        defaults = {key: getattr(activation, key) for key in _LAYER_KEYS[kind]}
        return activation(name, **{key: number(key, value) for key, value in sorted(defaults.items())})
    if kind == "flatten":
        return Reshape(name, (math.prod(shape),))
    return Softmax(name, tuple(range(len(shape))))
