"""``cnnhw flash DIR``: write a finished build's bitstream into the board's configuration flash,
and its weight image (weights kept in SPRAM) at the profile's ``flash.weights_offset``.

The command lines come from the board profile (``programmers``, ``programmers_at_offset``); cnnhw
uses the first programmer that is installed (or the one asked for). The weight image is checked
(header, CRC-32, size recorded by the build) before anything is written. Neither tool is on PyPI: install iceprog (project
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
from .weight_image import check_image_file


@dataclass(frozen=True)
class FinishedBuild:
    folder: Path
    board: Board
    bitstream: Path
    facts: dict
    weight_image: Path | None = None  # with its flash offset in facts["weight_image"]


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
    weights = None
    if facts.get("weight_image"):
        try:
            weights = folder / Path(facts["weight_image"]["file"]).name
            int(facts["weight_image"]["offset"]), int(facts["weight_image"]["bytes"])
        except (KeyError, TypeError, ValueError) as error:
            raise CnnhwError(f"{facts_path} is damaged (weight_image: {error}); rebuild with cnnhw build") from None
    return FinishedBuild(folder, board, bitstream, facts, weights)


def flash_commands(build: FinishedBuild, programmer: str | None = None,
                   require_installed: bool = True) -> list[list[str]]:
    """The command lines that write the build: the bitstream, then the weight image if any."""
    programmers = build.board.programmers
    if programmer is not None and programmer not in programmers:
        raise CnnhwError(f"board {build.board.name} has no programmer '{programmer}'; choose from "
                         f"{', '.join(programmers)}")
    names = [programmer] if programmer else list(programmers)
    if build.weight_image is not None:  # only programmers that can also write at an offset
        names = [name for name in names if name in build.board.programmers_at_offset]
        if not names:
            raise CnnhwError(f"board {build.board.name}'s profile says no programmer can write the weight image at "
                             f"an offset (programmers_at_offset); add one to its profile")
    installed = [name for name in names if shutil.which(programmers[name][0])]
    if not installed and require_installed:
        raise CnnhwError(f"no flash programmer found ({' or '.join(programmers[n][0] for n in names)} not on PATH); "
                         f"install iceprog (OSS CAD Suite) or openFPGALoader (e.g. apt install openfpgaloader)")
    chosen = (installed or names)[0]
    commands = [[part.replace("{bitstream}", str(build.bitstream)) for part in programmers[chosen]]]
    if build.weight_image is not None:
        offset = str(int(build.facts["weight_image"]["offset"]))
        commands.append([part.replace("{file}", str(build.weight_image)).replace("{offset}", offset)
                         for part in build.board.programmers_at_offset[chosen]])
    return commands


def flash(build: FinishedBuild, programmer: str | None = None) -> None:
    commands = flash_commands(build, programmer)
    if build.weight_image is not None:
        check_image_file(build.weight_image, int(build.facts["weight_image"]["bytes"]))
    for command in commands:
        completed = subprocess.run(command, capture_output=True, text=True)
        if completed.returncode != 0:
            output = (completed.stderr or completed.stdout).strip().splitlines()
            last = output[-1] if output else "no output"
            raise CnnhwError(f"{command[0]} failed (exit {completed.returncode}): {last}; is the {build.board.name} "
                             f"plugged in (USB), and may you use it (udev rules)?")
