"""One integer tensor of the study kit as two files: ``NAME.npy`` and ``NAME.hex``.

The ``.npy`` holds the values in the narrowest NumPy integer type of their format (int8 for s8,
uint8 for u8, up to int64). The ``.hex`` is ``$readmemh``-ready: one value per line, in the
array's row-major order, as the two's complement of its format's width in ``ceil(bits / 4)`` hex
digits (``-3`` in s8 is ``fd``). A hardware word packs several values (the weights a
MatrixVectorUnit reads in one cycle): :func:`write_words` writes such words, one per line.

:func:`tensor_entry` is what the manifest says of each: the two files, the shape, the format and
the order of the axes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..quant.arith import IntFormat

#: NumPy types by (signed, bits at most), narrowest first.
_TYPES = ((True, 8, np.int8), (True, 16, np.int16), (True, 32, np.int32), (True, 64, np.int64),
          (False, 8, np.uint8), (False, 16, np.uint16), (False, 32, np.uint32), (False, 64, np.uint64))


def numpy_type(fmt: IntFormat):
    """The narrowest NumPy integer type that holds ``fmt``."""
    return next(kind for signed, bits, kind in _TYPES if signed == fmt.signed and fmt.bits <= bits)


def format_of(values: np.ndarray) -> IntFormat:
    """The narrowest format holding ``values`` (for tables that have no format of their own)."""
    values = np.asarray(values, dtype=np.int64)
    return IntFormat.holding(int(values.min()), int(values.max())) if values.size else IntFormat(1, False)


def hex_lines(values, bits: int) -> str:
    """``values`` (integers) as ``$readmemh`` lines of ``bits``-wide two's complement."""
    digits = max(1, -(-bits // 4))
    mask = (1 << bits) - 1
    return "".join(f"{int(v) & mask:0{digits}x}\n" for v in values)


def format_facts(fmt: IntFormat) -> dict:
    return {"name": str(fmt), "bits": fmt.bits, "signed": fmt.signed}


def write_tensor(folder: Path, name: str, values, fmt: IntFormat, order: str) -> dict:
    """``folder/name.npy`` and ``folder/name.hex`` of ``values`` in ``fmt`` (checked to hold them);
    the manifest's entry (paths relative to the kit, ``folder`` being one of its subfolders)."""
    values = np.asarray(values, dtype=np.int64)
    if values.size and (values.min() < fmt.lo or values.max() > fmt.hi):
        raise ValueError(f"{name}: values [{values.min()}, {values.max()}] do not fit {fmt}")
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{name}.npy", values.astype(numpy_type(fmt)), allow_pickle=False)
    (folder / f"{name}.hex").write_text(hex_lines(values.ravel(), fmt.bits))
    return tensor_entry(folder, name, values.shape, fmt, order)


def tensor_entry(folder: Path, name: str, shape, fmt: IntFormat, order: str) -> dict:
    where = folder.name
    return {"npy": f"{where}/{name}.npy", "hex": f"{where}/{name}.hex", "shape": [int(n) for n in shape],
            "format": format_facts(fmt), "order": order}


def write_words(folder: Path, name: str, words: list[int], word_bits: int, order: str) -> dict:
    """``folder/name.hex``: ``words`` (non-negative, ``word_bits`` wide) one per line, and a
    ``.npy`` of them (uint64 while they fit, else one row of 64-bit limbs per word, low limb first)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.hex").write_text(hex_lines(words, word_bits))
    limbs = max(1, -(-word_bits // 64))
    table = np.array([[(w >> (64 * k)) & (2**64 - 1) for k in range(limbs)] for w in words], dtype=np.uint64)
    np.save(folder / f"{name}.npy", table[:, 0] if limbs == 1 else table, allow_pickle=False)
    where = folder.name
    return {"npy": f"{where}/{name}.npy", "hex": f"{where}/{name}.hex", "words": len(words), "word_bits": word_bits,
            "order": order}
