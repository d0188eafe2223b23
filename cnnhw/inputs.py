"""Reading the user's input files: only regular files, and never more than they can hold.

Every file cnnhw reads on a user's behalf (models, DATA files, plans) comes through
:func:`regular_file`, so a FIFO never blocks a run and a folder or device gets a clear line.
``.npz`` archives come through :func:`read_npz`, which reads each member's header before its data:
sizes are checked against a limit and against the bytes the archive really holds before anything
is allocated, and arrays of Python objects (which would need unpickling) are refused.
"""

from __future__ import annotations

import math
import stat
import zipfile
from pathlib import Path

import numpy as np

from .errors import CnnhwError

#: The most values one ``.npz`` may hold (all its arrays together): 2**27, 1 GiB as float64.
MAX_NPZ_VALUES = 1 << 27
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"


def regular_file(path, what: str, error: type[CnnhwError] = CnnhwError) -> Path:
    """``path`` if it is a regular file (links followed); else ``error`` saying what it is."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise error(f"{what} {path} not found") from None
    except OSError as problem:
        raise error(f"{what} {path} cannot be read ({problem.strerror})") from None
    if stat.S_ISDIR(mode):
        raise error(f"{what} {path} is a folder; give a file")
    if not stat.S_ISREG(mode):
        raise error(f"{what} {path} is not a regular file (a device, FIFO or socket); give a file")
    return path


def read_bytes(path, what: str, error: type[CnnhwError] = CnnhwError, limit: int | None = None) -> bytes:
    """The content of the regular file ``path`` (at most ``limit`` bytes, else ``error``)."""
    path = regular_file(path, what, error)
    if limit is not None and path.stat().st_size > limit:
        raise error(f"{what} {path} is too big ({path.stat().st_size:,} bytes; at most {limit:,})")
    try:
        return path.read_bytes()
    except OSError as problem:
        raise error(f"{what} {path} cannot be read ({problem.strerror})") from None


def read_text(path, what: str, written_as: str, limit: int | None = None) -> str:
    """The UTF-8 text of the regular file ``path`` (at most ``limit`` bytes); ``written_as`` names
    the format in the message of a file that is not UTF-8 ("JSON", "TOML")."""
    data = read_bytes(path, what, limit=limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CnnhwError(f"{what} {path} is not UTF-8 text (byte {error.start}); write it as {written_as}") from None


def read_npz(path, what: str, error: type[CnnhwError] = CnnhwError,
             max_values: int = MAX_NPZ_VALUES) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` at ``path``, each member's size checked before it is read."""
    path = regular_file(path, what, error)
    where = f"{what} {path}"
    with open(path, "rb") as stream:
        start = stream.read(8)
    if start.startswith(_NPY_MAGIC):
        raise error(f"{where} is a .npy array, not a .npz archive; save it with numpy.savez(path, x=images)")
    if not start:
        raise error(f"{where} is empty")
    if not start.startswith(_ZIP_MAGIC):
        raise error(f"{where} is not a .npz archive (numpy.savez writes one)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if info.filename.endswith(".npy")]
            total = 0
            for info in members:
                total += _member_values(archive, info, where, error)
                if total > max_values:
                    raise error(f"{where} is too big: its arrays hold more than {max_values:,} values "
                                f"(member {info.filename}); split it into smaller files")
        with np.load(path, allow_pickle=False) as loaded:
            return {key: loaded[key] for key in loaded.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as problem:
        raise error(f"{where} is not a readable .npz archive ({type(problem).__name__}); save it again with "
                    f"numpy.savez") from None


def _member_values(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, error) -> int:
    """How many values the member ``info`` holds, from its header; refuses a member whose header
    claims more bytes than the member holds, or Python objects."""
    with archive.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        header_bytes = stream.tell()
    name = info.filename.removesuffix(".npy")
    if dtype.hasobject:
        raise error(f"{where}: array '{name}' holds Python objects; cnnhw reads arrays of numbers only")
    values = math.prod(shape)
    if values > MAX_NPZ_VALUES:
        raise error(f"{where}: array '{name}' is too big: shape {shape} is {values:,} values "
                    f"(at most {MAX_NPZ_VALUES:,}); split it into smaller files")
    if values * dtype.itemsize > info.file_size - header_bytes:
        raise error(f"{where}: array '{name}' is truncated: its header claims shape {shape} of {dtype}, "
                    f"{values * dtype.itemsize:,} bytes, but it holds {info.file_size - header_bytes:,}")
    return values
