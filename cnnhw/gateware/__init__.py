"""Amaranth components, one per hardware block: window unit, matrix-vector unit, rescaler,
pooling, small stream stages, memories (block RAM, SPRAM and the loader that fills it), the
UART and the serial front end, the accelerator chain and the board top.

Each block with costs has a pure parameter object beside it (``WindowGeometry``,
``MatrixParameters``, ``RescalerParameters``, ``ReducerParameters``, ``TileGeometry``) that
answers what the block costs (cycles, latency, memories, DSPs, logic-cell terms) without
building it; the block itself is made from that object. Nothing here knows a quantized graph
or a plan: :mod:`cnnhw.hardware` turns layers into these blocks.
"""
