"""NumPy weights import: a network as plain arrays plus a JSON architecture.

The file format (also documented in README.md, "Models as .npz"):

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
``flatten``             (none)
``softmax``             (none; the last layer only)
======================  ==============================================================

Every layer may have a ``name`` (required for layers with arrays). Unknown keys, missing or
unused arrays, and wrong shapes are errors: a typo never silently changes the network.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..ir import (Affine, Clip, Conv2d, Dense, GlobalPool, Graph, LeakyRelu, Pool2d, Relu, Reshape,
                  Softmax, simplify)

FORMAT, VERSION = "cnnhw-npz", 1

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
    if not path.exists():
        raise ModelError(f"model file {path} not found")
    if path.is_dir() or path.stat().st_size == 0:
        raise ModelError(f"model file {path} is {'a folder' if path.is_dir() else 'empty'}; give a .npz file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise ModelError(f"model file {path} is not a readable .npz archive ({error}); save it again with numpy.savez") from None
    return simplify(_build(path, arrays))


def _build(path: Path, arrays: dict) -> Graph:
    where = f"model {path}"
    if "architecture" not in arrays:
        raise ModelError(f"{where} has no 'architecture' array; see README 'Models as .npz' for the format")
    try:
        arch = json.loads(str(arrays.pop("architecture")))
    except json.JSONDecodeError as error:
        raise ModelError(f"{where}: 'architecture' is not valid JSON ({error})") from None
    if not isinstance(arch, dict) or arch.get("format") != FORMAT or arch.get("version") != VERSION:
        raise ModelError(f"{where}: 'architecture' must be a JSON object with format '{FORMAT}' and version {VERSION}")
    unknown = set(arch) - {"format", "version", "input", "layers", "name"}
    if unknown:
        raise ModelError(f"{where}: unknown architecture keys {sorted(unknown)}")
    input_shape = arch.get("input")
    if not isinstance(input_shape, list) or not input_shape or not all(isinstance(d, int) and d > 0 for d in input_shape):
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
    return Graph(str(arch.get("name", path.stem)), tuple(input_shape), tuple(ops), source=f"{FORMAT} v{VERSION}")


def _layer(where: str, index: int, spec: dict, arrays: dict, used: set, shape):
    kind = spec.get("type")
    if kind not in _LAYER_KEYS:
        raise ModelError(f"{where}: layer {index} has type {kind!r}; known types: {', '.join(_LAYER_KEYS)}")
    unknown = set(spec) - _LAYER_KEYS[kind] - {"type", "name"}
    if unknown:
        raise ModelError(f"{where}: layer {index} ({kind}) has unknown keys {sorted(unknown)}")
    name = str(spec.get("name", f"{kind}{index}"))
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

    def ints(key: str, count: int, default):
        value = spec.get(key, default)
        value = [value] * count if isinstance(value, int) else value
        if not isinstance(value, list) or len(value) != count or not all(isinstance(v, int) for v in value):
            raise ModelError(f"{where}: '{key}' must be an int or a list of {count} ints, not {value!r}")
        return tuple(value)

    if kind == "conv":
        weight = array("weight")
        if weight.ndim != 4:
            raise ModelError(f"{where}: '{name}.weight' must be (out, in/groups, kh, kw), got shape {weight.shape}")
        bias = array("bias", required=False)
        bias = np.zeros(weight.shape[0]) if bias is None else bias
        return Conv2d(name, weight, bias, ints("stride", 2, 1), ints("pads", 4, 0), ints("dilation", 2, 1),
                      spec.get("groups", 1))
    if kind in ("maxpool", "avgpool"):
        if "kernel" not in spec:
            raise ModelError(f"{where} needs 'kernel'")
        kernel = ints("kernel", 2, None)
        return Pool2d(name, kind[:3], kernel, ints("stride", 2, list(kernel)), ints("pads", 4, 0),
                      ints("dilation", 2, 1), bool(spec.get("ceil_mode", False)),
                      bool(spec.get("count_include_pad", False)))
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
        if np.any(var < 0):
            raise ModelError(f"{where}: '{name}.var' has negative variances")
        factor = scale / np.sqrt(var + float(spec.get("epsilon", 1e-5)))
        per_channel = (-1,) + (1,) * (len(shape) - 1)
        return Affine(name, factor.reshape(per_channel), (shift - mean * factor).reshape(per_channel))
    if kind == "relu":
        return Relu(name)
    if kind == "relu6":
        return Clip(name, 0.0, 6.0)
    if kind == "clip":
        bounds = [spec.get(k) for k in ("min", "max")]
        if any(b is not None and not isinstance(b, (int, float)) for b in bounds):
            raise ModelError(f"{where}: 'min' and 'max' must be numbers or null")
        return Clip(name, *[None if b is None else float(b) for b in bounds])
    if kind == "leakyrelu":
        return LeakyRelu(name, float(spec.get("alpha", 0.01)))
    if kind == "flatten":
        return Reshape(name, (math.prod(shape),))
    return Softmax(name, tuple(range(len(shape))))
