"""TiledMaxPool against NumPy max pooling, on random shapes (one channel, non-square tiles,
rows and columns left over), several images back to back, random gaps and stalls."""

import random

import numpy as np
import pytest
from amaranth import signed, unsigned

from cnnhw.gateware.tiled_pool import TileGeometry, TiledMaxPool
from tests.gateware.streams import get_n, put_all, run


def numpy_tiled_max(images: np.ndarray, kh: int, kw: int) -> list[int]:
    """Floor-mode max pooling of (N, H, W, C) images, in HWC stream order."""
    n, h, w, c = images.shape
    oh, ow = h // kh, w // kw
    tiles = images[:, :oh * kh, :ow * kw, :].reshape(n, oh, kh, ow, kw, c)
    return [int(v) for v in tiles.max(axis=(2, 4)).reshape(-1)]


@pytest.mark.parametrize("shape, kernel, signed_elements, seed", [
    ((5, 7, 1), (2, 2), False, 1),  # one channel: a partial is read back the cycle after it is written
    ((6, 6, 3), (3, 2), True, 2),  # a non-square tile
    ((7, 9, 2), (2, 3), True, 3),  # a row and columns left over
    ((4, 4, 6), (4, 4), False, 4),  # one tile covers the image
    ((3, 5, 2), (1, 1), True, 5),  # 1x1 tiles: every element is its own maximum
])
def test_tiled_max_pool_matches_numpy(shape, kernel, signed_elements, seed):
    h, w, c = shape
    rng = random.Random(seed)
    element = signed(8) if signed_elements else unsigned(8)
    lo, hi = (-128, 127) if signed_elements else (0, 255)
    images = np.random.default_rng(seed).integers(lo, hi + 1, size=(3, h, w, c))
    dut = TiledMaxPool(TileGeometry(h, w, c, kernel), element)
    expected = numpy_tiled_max(images, *kernel)
    got = []

    async def source(ctx):
        await put_all(ctx, dut.i, [int(v) for v in images.reshape(-1)], rng, gap=0.3)

    async def sink(ctx):
        await get_n(ctx, dut.o, len(expected), random.Random(seed + 100), stall=0.3, out=got)

    run(dut, source, sink)
    mismatch = next((k for k, (a, b) in enumerate(zip(expected, got)) if a != b), None)
    assert mismatch is None, f"element {mismatch}: expected {expected[mismatch]}, got {got[mismatch]}"
    assert got == expected
