"""Sliding-window helpers shared by the float and the integer reference models."""

from __future__ import annotations

import numpy as np


def pad(x: np.ndarray, pads, value, extra=(0, 0)) -> np.ndarray:
    """Pad an ``(N, C, H, W)`` batch by ``pads`` (top, left, bottom, right) plus ``extra`` (bottom, right)."""
    top, left, bottom, right = pads
    return np.pad(x, ((0, 0), (0, 0), (top, bottom + extra[0]), (left, right + extra[1])), constant_values=value)


def window_stack(x: np.ndarray, kernel, stride, dilation, out_hw) -> np.ndarray:
    """All windows of an already padded ``(N, C, H, W)`` batch: ``(N, C, kh*kw, out_h, out_w)``.

    Entry ``[n, c, i*kw + j, r, s]`` is ``x[n, c, r*stride_h + i*dilation_h, s*stride_w + j*dilation_w]``.
    """
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    views = [
        x[:, :, i * dh: i * dh + (oh - 1) * sh + 1: sh, j * dw: j * dw + (ow - 1) * sw + 1: sw]
        for i in range(kh) for j in range(kw)
    ]
    return np.stack(views, axis=2)


def ceil_overhang(in_hw, out_hw, kernel, stride, dilation, pads) -> tuple[int, int]:
    """How far (rows, cols) ceil-mode windows reach past the padded input."""
    overhang = []
    for axis in (0, 1):
        span = (out_hw[axis] - 1) * stride[axis] + (kernel[axis] - 1) * dilation[axis] + 1
        padded = in_hw[axis] + pads[axis] + pads[axis + 2]
        overhang.append(max(0, span - padded))
    return tuple(overhang)


def pool_windows(x: np.ndarray, pool, out_hw, pad_value) -> np.ndarray:
    """The windows of a pooling op (``Pool2d`` or ``QPool``); past-the-padding positions hold ``pad_value``."""
    extra = ceil_overhang(x.shape[2:], out_hw, pool.kernel, pool.stride, pool.dilation, pool.pads)
    return window_stack(pad(x, pool.pads, pad_value, extra), pool.kernel, pool.stride, pool.dilation, out_hw)


def window_counts(pool, in_hw, out_hw) -> np.ndarray:
    """Elements each average-pooling window counts: input positions, plus padding with
    ``count_include_pad``, never positions past the padding. Shape ``(1, 1, out_h, out_w)``, int64."""
    inside = np.ones((1, 1) + tuple(in_hw), dtype=np.int64)
    counted = pad(inside, pool.pads, 1 if pool.count_include_pad else 0)
    extra = ceil_overhang(in_hw, out_hw, pool.kernel, pool.stride, pool.dilation, pool.pads)
    counted = pad(counted, (0, 0, 0, 0), 0, extra)
    return window_stack(counted, pool.kernel, pool.stride, pool.dilation, out_hw).sum(axis=2)
