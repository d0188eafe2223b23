"""Writing results atomically: a failed run never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np


def write_atomically(path, write) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def write_json(path, facts: dict) -> None:
    text = json.dumps(facts, indent=2, sort_keys=False) + "\n"
    write_atomically(path, lambda stream: stream.write(text.encode()))


def write_npz(path, **arrays: np.ndarray) -> None:
    write_atomically(path, lambda stream: np.savez(stream, **arrays))


def replace_folder(staging: Path, folder: Path) -> None:
    """Move the finished ``staging`` folder to ``folder`` (a sibling), replacing any old one whole."""
    if folder.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
        os.replace(folder, retired / folder.name)
        os.replace(staging, folder)
        shutil.rmtree(retired)
    else:
        os.replace(staging, folder)
