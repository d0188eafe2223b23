"""A compiler wrapper that keeps Verilator's runtime objects between builds (make's ``OBJCACHE``).

Every Verilator build compiles the same runtime (``verilated.cpp``, ``verilated_vpi.cpp``, ...:
on 2 cores about 15 s of a 25 s build) next to the design. With ``CNNHW_CACHE_DIR`` set,
:mod:`cnnhw.sim.runner` puts this module in front of the compiler. A compile of a source from
Verilator's own include folder is then looked up by a digest of everything that decides its
object: the command line (the output name left out), the compiler binary, and the contents of the
source and of every header beside it. A hit is copied into place; a miss is compiled and then
stored (written to a temporary name and renamed, so that parallel builds never see half a file).
Every other compile (the design's own C++, cocotb's main, which includes the design's header)
runs unchanged.

Usage (by make): ``python -m cnnhw.sim.objcache CXX ARGS...``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CACHE_VARIABLE = "CNNHW_CACHE_DIR"
SUBFOLDER = "verilator-runtime"


def _source_and_output(args: list[str]) -> tuple[Path | None, Path | None]:
    """The source compiled by ``args`` (a compiler command line) and the object it writes."""
    output = Path(args[args.index("-o") + 1]) if "-o" in args[:-1] else None
    sources = [Path(a) for a in args[1:] if a.endswith(".cpp")]
    if len(sources) != 1 or "-c" not in args:
        return None, None
    source = sources[0]
    return source, output or Path(source.with_suffix(".o").name)


def _digest(args: list[str], source: Path) -> str:
    digest = hashlib.sha256()
    at = args.index("-o") if "-o" in args else -2
    skip = {at, at + 1}  # the object's name: where it goes does not change what it is
    for index, arg in enumerate(args):
        if index not in skip:
            digest.update(arg.encode() + b"\0")
    compiler = shutil.which(args[0]) or args[0]
    stat = Path(compiler).resolve().stat()
    digest.update(f"{Path(compiler).resolve()}:{stat.st_size}:{stat.st_mtime_ns}\0".encode())
    for path in [source, *sorted(source.parent.glob("*.h"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def cached(args: list[str], cache: Path, runtime: Path) -> int:
    """Run the compile ``args``, through ``cache`` when its source is in ``runtime``."""
    source, output = _source_and_output(args)
    if source is None or source.resolve().parent != runtime.resolve():
        return subprocess.call(args)
    stored = cache / SUBFOLDER / f"{_digest(args, source)}.o"
    if stored.is_file():
        shutil.copyfile(stored, output)
        return 0
    status = subprocess.call(args)
    if status == 0:
        stored.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=stored.parent, suffix=".tmp")
        os.close(handle)
        shutil.copyfile(output, temporary)
        os.replace(temporary, stored)
    return status


def main() -> int:
    args = sys.argv[1:]
    cache, root = os.environ.get(CACHE_VARIABLE), os.environ.get("VERILATOR_ROOT")
    if not args:
        print("usage: python -m cnnhw.sim.objcache CXX ARGS...", file=sys.stderr)
        return 2
    if not cache or not root:
        return subprocess.call(args)
    return cached(args, Path(cache), Path(root) / "include")


if __name__ == "__main__":
    sys.exit(main())
