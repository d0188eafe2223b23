"""``cnnhw flash DIR``: write a finished build's bitstream into the board's configuration flash,
and its weight image (weights kept in SPRAM) at the profile's ``flash.weights_offset``.

The command lines come from the installed board profile that build.json names (``programmers``,
``programmers_at_offset``), never from the folder; cnnhw uses the first programmer that is installed
(or the one asked for). Every file is checked against the SHA-256 the build recorded, and the weight
image also by its header and CRC-32, before anything is written. Neither tool is on PyPI: install iceprog (project
IceStorm, OSS CAD Suite) or openFPGALoader (most distributions package it).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..boards import Board, board_names, load_board
from ..errors import CnnhwError
from ..outputs import folder_kind
from ..protocol.weight_image import check_image_file

#: build.json is a few kilobytes; anything far larger is not cnnhw's.
MAX_FACTS_BYTES = 16 << 20


def file_digest(path: Path) -> str:
    """The SHA-256 of a file, as build.json ``files`` records it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class FinishedBuild:
    folder: Path
    board: Board
    bitstream: Path
    facts: dict
    weight_image: Path | None = None  # with its flash offset in facts["weight_image"]


def open_build(folder) -> FinishedBuild:
    """A build folder ``cnnhw build`` completed (it writes build.json last, then renames the folder).

    The folder is data, never code: the board is an installed profile named by build.json (never a
    profile file, so a downloaded folder cannot choose the commands ``flash`` runs), and every file
    used is a regular file of the folder (no links) whose SHA-256 matches what the build recorded
    in build.json ``files``.
    """
    folder = Path(folder)
    facts_path = folder / "build.json"
    if not folder.is_dir() or folder_kind(folder) != "build" or not facts_path.is_file():
        hint = f" ({folder}.failed holds a failed build's logs)" if Path(f"{folder}.failed").exists() else ""
        raise CnnhwError(f"{folder} is not a finished cnnhw build (no build.json or marker){hint}; run cnnhw build first")
    facts = _read_facts(facts_path)
    board_name = facts.get("board")
    if not isinstance(board_name, str) or board_name not in board_names():
        raise CnnhwError(f"{facts_path} names board {board_name!r}, which is not an installed board "
                         f"({', '.join(board_names())}); cnnhw flashes only with its own board profiles")
    board = load_board(board_name)
    bitstream = _recorded_file(folder, facts, "bitstream", facts.get("bitstream"))
    weights = None
    if facts.get("weight_image"):
        image = facts["weight_image"]
        if not isinstance(image, dict) or not all(isinstance(image.get(k), int) for k in ("offset", "bytes")):
            raise CnnhwError(f"{facts_path} is damaged (weight_image needs file, offset and bytes); rebuild with cnnhw build")
        weights = _recorded_file(folder, facts, "weight image", image.get("file"))
        if image["offset"] != board.flash["weights_offset"] or image["bytes"] != weights.stat().st_size or \
                image["offset"] + image["bytes"] > board.flash["size_bytes"]:
            raise CnnhwError(f"{facts_path} is damaged (weight_image at offset {image['offset']}, {image['bytes']} "
                             f"bytes: the {board.name}'s bitstream reads its weights at offset "
                             f"{board.flash['weights_offset']}, within {board.flash['size_bytes']:,} bytes of flash); "
                             f"rebuild with cnnhw build")
    return FinishedBuild(folder, board, bitstream, facts, weights)


def build_plan(build: FinishedBuild):
    """The hardware plan the build built (its plan.json, checked against the recorded digest)."""
    from ..hardware import HardwarePlan
    from ..inputs import read_bytes

    path = _recorded_file(build.folder, build.facts, "plan", "plan.json")
    try:
        return HardwarePlan.from_json(json.loads(read_bytes(path, "plan", limit=MAX_FACTS_BYTES).decode("utf-8")))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CnnhwError(f"{path} is damaged (not a JSON plan); rebuild with cnnhw build") from None


def _read_facts(path: Path) -> dict:
    if path.is_symlink() or path.stat().st_size > MAX_FACTS_BYTES:
        raise CnnhwError(f"{path} is a link or too big to be cnnhw's; rebuild with cnnhw build")
    try:
        facts = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise CnnhwError(f"{path} is damaged ({type(error).__name__}); rebuild with cnnhw build") from None
    if not isinstance(facts, dict) or not isinstance(facts.get("files"), dict):
        raise CnnhwError(f"{path} is damaged (no 'files' digests); rebuild with cnnhw build")
    return facts


def _recorded_file(folder: Path, facts: dict, what: str, recorded) -> Path:
    """The build's file ``recorded`` (a path whose name is in the folder), checked against its digest."""
    if not isinstance(recorded, str) or not recorded:
        raise CnnhwError(f"{folder / 'build.json'} is damaged (no {what} file); rebuild with cnnhw build")
    name = Path(recorded).name
    path = folder / name
    if path.is_symlink():
        raise CnnhwError(f"the {what} {path} is a link; a cnnhw build holds its own files: rebuild with cnnhw build")
    if not path.is_file():
        raise CnnhwError(f"the {what} {path} named by {folder / 'build.json'} is missing; rebuild with cnnhw build")
    digest = facts["files"].get(name)
    if not isinstance(digest, str) or file_digest(path) != digest:
        raise CnnhwError(f"the {what} {path} does not match the digest in {folder / 'build.json'} (changed or "
                         f"damaged since the build); rebuild with cnnhw build")
    return path


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
