"""The order in which the datapath streams a tensor (one definition, used by the stages, the
testbenches, the host and the golden comparisons)."""

from __future__ import annotations

import numpy as np


def stream_order(shape) -> np.ndarray:
    """Position ``j`` of a stream holds element ``order[j]`` of the C-order (golden) tensor:
    feature maps stream in HWC order (channels innermost), vectors in order."""
    if len(shape) == 3:
        channels, height, width = shape
        return np.arange(channels * height * width).reshape(channels, height, width).transpose(1, 2, 0).ravel()
    return np.arange(int(np.prod(shape)))
