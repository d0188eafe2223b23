"""One pipeline stage per quantized layer, each a Component from element stream to element stream.

* :class:`ConvStage`: SlidingWindow -> MatrixVectorUnit -> RequantUnit
* :class:`DenseStage`: (Packer) -> MatrixVectorUnit -> RequantUnit
* :class:`PoolStage`: TiledMaxPool, or SlidingWindow -> PoolReducer (max, or average with its Rescaler)
* :class:`ClampStage`: a stand-alone ReLU/Clip

Streams carry one element per transfer, feature maps in HWC order (channels innermost).
"""

from __future__ import annotations

import numpy as np
from amaranth import Module, Shape, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..quant.arith import IntFormat
from ..quant.qgraph import QClamp, QConv, QDense, QGlobalPool, QPool
from .mvu import MatrixShape, MatrixVectorUnit
from .pool import PoolReducer
from .requant import RequantUnit
from .small import Clamp, Packer
from .memories import MemoryShape
from .spram import LoadSignature, drive_load
from .tiled_pool import TiledMaxPool
from .window import SlidingWindow, WindowGeometry


def element_shape(fmt: IntFormat) -> Shape:
    return signed(fmt.bits) if fmt.signed else unsigned(fmt.bits)


def _link(m, source, sink, payload) -> None:
    m.d.comb += [sink.valid.eq(source.valid), sink.payload.eq(payload), source.ready.eq(sink.ready)]


def _chain(m, stage, parts) -> None:
    """Add ``parts`` as submodules and connect stage.i -> parts[0] -> ... -> parts[-1] -> stage.o."""
    previous = wiring.flipped(stage.i)
    for index, part in enumerate(parts):
        m.submodules[f"part{index}_{type(part).__name__.lower()}"] = part
        wiring.connect(m, previous, part.i)
        previous = part.o
    wiring.connect(m, previous, wiring.flipped(stage.o))


class _Stage(wiring.Component):
    def __init__(self, layer, spram: bool = False):
        """``spram``: the stage's weights are in SPRAM and it has a ``load`` port for the loader."""
        self.layer = layer
        members = {"i": In(stream.Signature(element_shape(layer.in_format))),
                   "o": Out(stream.Signature(element_shape(layer.out_format)))}
        if spram:
            members["load"] = In(LoadSignature())
        super().__init__(members)

    def _connect_load(self, m) -> None:
        if self.mvu.spram is not None:
            drive_load(m, self.mvu.load, self.load)


class ConvStage(_Stage):
    def __init__(self, layer: QConv, pe: int = 1, simd: int = 1, digit_bits: int = 4, overlap: bool = True,
                 packed: bool = False, weights_home: str = "rom", first_block: int = 0, logic_products: bool = False):
        super().__init__(layer, spram=weights_home == "spram")
        in_c, in_h, in_w = layer.in_shape
        out_c, out_h, out_w = layer.out_shape
        groups = layer.groups
        self.geometry = WindowGeometry(in_h, in_w, in_c, layer.kernel, layer.stride, layer.dilation, layer.pads,
                                       (out_h, out_w), groups, simd, overlap)
        per_group = out_c // groups
        # (out, in/groups, kh, kw) -> (groups, out/groups, kh * kw * in/groups) in window order (ky, kx, ci).
        weights = layer.weight.transpose(0, 2, 3, 1).reshape(groups, per_group, -1)
        self.window = SlidingWindow(self.geometry, element_shape(layer.in_format))
        self.mvu = MatrixVectorUnit(MatrixShape(weights, layer.bias, pe, simd), element_shape(layer.in_format),
                                    layer.weight_format.bits, layer.acc_format.bits, packed, weights_home,
                                    first_block, logic_products)
        self.requant = RequantUnit(layer.requant, layer.acc_format.bits, pe, element_shape(layer.out_format),
                                   digit_bits)

    def memories(self) -> list[MemoryShape]:
        return self.window.memories() + self.mvu.memories() + self.requant.memories()

    def elaborate(self, platform):
        m = Module()
        m.submodules.window, m.submodules.mvu, m.submodules.requant = self.window, self.mvu, self.requant
        wiring.connect(m, wiring.flipped(self.i), self.window.i)
        _link(m, self.window.o, self.mvu.i, self.window.o.payload.data)
        wiring.connect(m, self.mvu.o, self.requant.i)
        wiring.connect(m, self.requant.o, wiring.flipped(self.o))
        self._connect_load(m)
        return m


class DenseStage(_Stage):
    """``order[j]`` is the golden (C-order) index of the ``j``-th element of the input stream."""

    def __init__(self, layer: QDense, order: np.ndarray, pe: int = 1, simd: int = 1, digit_bits: int = 4,
                 packed: bool = False, weights_home: str = "rom", first_block: int = 0, logic_products: bool = False):
        super().__init__(layer, spram=weights_home == "spram")
        weights = layer.weight[:, order][None]  # columns in stream order
        element = element_shape(layer.in_format)
        self.packer = Packer(element, simd)
        self.mvu = MatrixVectorUnit(MatrixShape(weights, layer.bias, pe, simd), element, layer.weight_format.bits,
                                    layer.acc_format.bits, packed, weights_home, first_block, logic_products)
        self.requant = RequantUnit(layer.requant, layer.acc_format.bits, pe, element_shape(layer.out_format),
                                   digit_bits)

    def memories(self) -> list[MemoryShape]:
        return self.mvu.memories() + self.requant.memories()

    def elaborate(self, platform):
        m = Module()
        _chain(m, self, [self.packer, self.mvu, self.requant])
        self._connect_load(m)
        return m


class PoolStage(_Stage):
    """Tiled max pooling (``QPool.tiled``) is a :class:`TiledMaxPool`; any other pooling a
    SlidingWindow and a PoolReducer."""

    def __init__(self, layer: QPool | QGlobalPool, digit_bits: int = 4, overlap: bool = True):
        super().__init__(layer)
        channels, in_h, in_w = layer.in_shape
        if isinstance(layer, QPool) and layer.tiled:
            self.parts = [TiledMaxPool(in_h, in_w, channels, layer.kernel, element_shape(layer.in_format))]
            return
        _, out_h, out_w = layer.out_shape
        if isinstance(layer, QGlobalPool):
            kernel, stride, dilation, pads, count_pads = (in_h, in_w), (1, 1), (1, 1), (0, 0, 0, 0), False
        else:
            kernel, stride, dilation, pads, count_pads = (layer.kernel, layer.stride, layer.dilation, layer.pads,
                                                          layer.count_include_pad)
        self.geometry = WindowGeometry(in_h, in_w, channels, kernel, stride, dilation, pads, (out_h, out_w),
                                       groups=channels, simd=1, overlap=overlap)
        element = element_shape(layer.in_format)
        self.window = SlidingWindow(self.geometry, element)
        sum_bits = layer.sum_format.bits + 1 if layer.sum_format is not None else 32
        self.reducer = PoolReducer(layer.kind, kernel[0] * kernel[1], element, count_pads, layer.divider, sum_bits,
                                   digit_bits)
        self.parts = [self.window, self.reducer]

    def memories(self) -> list[MemoryShape]:
        return [shape for part in self.parts for shape in part.memories()]

    def elaborate(self, platform):
        m = Module()
        _chain(m, self, self.parts)
        return m


class ClampStage(_Stage):
    def __init__(self, layer: QClamp):
        super().__init__(layer)
        self.clamp = Clamp(element_shape(layer.in_format), layer.lo, layer.hi)

    def memories(self) -> list[MemoryShape]:
        return []

    def elaborate(self, platform):
        m = Module()
        _chain(m, self, [self.clamp])
        return m
