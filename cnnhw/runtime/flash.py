"""``cnnhw flash DIR``: write a finished build's bitstream into the board's configuration flash.

The command lines come from the board profile (``programmers``); cnnhw uses the first of them
that is installed (or the one asked for). Neither tool is on PyPI: install iceprog (project
IceStorm, OSS CAD Suite) or openFPGALoader (most distributions package it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..boards import Board, load_board
from ..errors import CnnhwError


@dataclass(frozen=True)
class FinishedBuild:
    folder: Path
    board: Board
    bitstream: Path
    facts: dict


def open_build(folder) -> FinishedBuild:
    """A build folder ``cnnhw build`` completed (it writes build.json last, then renames the folder)."""
    folder = Path(folder)
    facts_path = folder / "build.json"
    if not facts_path.is_file():
        hint = f" ({folder}.failed holds a failed build's logs)" if Path(f"{folder}.failed").exists() else ""
        raise CnnhwError(f"{folder} is not a finished cnnhw build (no build.json){hint}; run cnnhw build first")
    try:
        facts = json.loads(facts_path.read_text())
        board = load_board(facts["board"])
        bitstream = folder / Path(facts["bitstream"]).name
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise CnnhwError(f"{facts_path} is damaged ({type(error).__name__}: {error}); rebuild with cnnhw build") from None
    if not bitstream.is_file():
        raise CnnhwError(f"the bitstream {bitstream} named by {facts_path} is missing; rebuild with cnnhw build")
    return FinishedBuild(folder, board, bitstream, facts)


def flash_command(build: FinishedBuild, programmer: str | None = None, require_installed: bool = True) -> list[str]:
    programmers = build.board.programmers
    if programmer is not None and programmer not in programmers:
        raise CnnhwError(f"board {build.board.name} has no programmer '{programmer}'; choose from "
                         f"{', '.join(programmers)}")
    names = [programmer] if programmer else list(programmers)
    installed = [name for name in names if shutil.which(programmers[name][0])]
    if not installed and require_installed:
        raise CnnhwError(f"no flash programmer found ({' or '.join(programmers[n][0] for n in names)} not on PATH); "
                         f"install iceprog (OSS CAD Suite) or openFPGALoader (e.g. apt install openfpgaloader)")
    chosen = (installed or names)[0]
    return [part.replace("{bitstream}", str(build.bitstream)) for part in programmers[chosen]]


def flash(build: FinishedBuild, programmer: str | None = None) -> None:
    command = flash_command(build, programmer)
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        output = (completed.stderr or completed.stdout).strip().splitlines()
        last = output[-1] if output else "no output"
        raise CnnhwError(f"{command[0]} failed (exit {completed.returncode}): {last}; is the {build.board.name} "
                         f"plugged in (USB), and may you use it (udev rules)?")
