"""The synthesis, place-and-route and packing tools, and what their reports say.

``yowasp`` (the default) runs the YoWASP builds of yosys, nextpnr and the bitstream packer of the
board's family (:mod:`cnnhw.families`) that cnnhw installs from PyPI; ``system`` runs the ones on
PATH (e.g. from OSS CAD Suite). Every tool writes a
log into the build folder; a failing tool becomes a :class:`BuildError` naming the tool, the first
error line of its log, and the log. (YoWASP yosys 0.70 under wasmtime >= 37 loses its console output
after the first ABC9 call, see TOOLCHAIN.md: cnnhw never reads it from the console, only from ``-l``.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from ..errors import BuildError
from ..families import ICE40, Family, Toolchain

TOOLCHAINS = ("yowasp", "system")


#: nextpnr's routers.
ROUTERS = ("router1", "router2")


def find_toolchain(kind: str = "yowasp", family: Family = ICE40, router: str | None = None) -> Toolchain:
    """The executables of ``family``'s flow (BuildError naming a missing one and what to do), with
    nextpnr's ``router`` (default: the family's)."""
    if kind not in TOOLCHAINS:
        raise BuildError(f"unknown toolchain '{kind}'; choose from {', '.join(TOOLCHAINS)}")
    if router is not None and router not in ROUTERS:
        raise BuildError(f"unknown router '{router}'; choose from {', '.join(ROUTERS)}")
    scripts = Path(sysconfig.get_path("scripts"))
    found = {}
    for role, name in family.tool_names[kind].items():
        beside = scripts / name
        path = str(beside) if kind == "yowasp" and beside.is_file() else shutil.which(name)
        if path is None:
            advice = ("reinstall cnnhw (pip install cnnhw) or use --tools system" if kind == "yowasp" else
                      "install it (e.g. OSS CAD Suite) and put it on PATH, or use --tools yowasp")
            raise BuildError(f"{role} ('{name}') is not installed; {advice}")
        found[role] = path
    return Toolchain(kind, **found, router=router or family.default_router)


def run_tool(role: str, command: list[str], cwd: Path, log: Path) -> None:
    """Run one tool with its console output appended to ``log``; a non-zero exit is a BuildError."""
    with open(log, "ab") as stream:
        completed = subprocess.run(command, cwd=cwd, stdout=stream, stderr=subprocess.STDOUT)
    if completed.returncode != 0:
        raise BuildError(f"{role} failed (exit {completed.returncode}): {first_error(log)}; see {log}")


def first_error(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    for line in lines:
        if line.startswith("ERROR") or " ERROR:" in line:
            return line.strip()
    return lines[-1].strip() if lines else "no output"


def synthesis_cells(stat_json: Path) -> dict[str, int]:
    """Cell counts by type from yosys ``stat -json`` (the design totals)."""
    facts = json.loads(stat_json.read_text())
    design = facts.get("design") or next(iter(facts["modules"].values()))
    return {name.lstrip("\\"): int(count) for name, count in design.get("num_cells_by_type", {}).items()}


@dataclass(frozen=True)
class PlaceRouteReport:
    resources: dict[str, tuple[int, int]]  # budget key -> (used, available)
    fmax_mhz: float  # the slowest clock domain's achieved frequency

    @staticmethod
    def read_utilization(path: Path, family: Family = ICE40) -> dict[str, tuple[int, int]]:
        """Budget key -> (used, available) from nextpnr's ``--report`` JSON (also written by
        ``--pack-only``, before placement), the cells named as ``family`` names them."""
        facts = json.loads(path.read_text())
        return {key: (int(facts["utilization"][cell]["used"]), int(facts["utilization"][cell]["available"]))
                for cell, key in family.pnr_resources.items() if cell in facts["utilization"]}

    @staticmethod
    def read(path: Path, family: Family = ICE40) -> "PlaceRouteReport":
        """Parse nextpnr's ``--report`` JSON (``utilization`` and ``fmax``)."""
        facts = json.loads(path.read_text())
        resources = PlaceRouteReport.read_utilization(path, family)
        # Only constrained clock nets count; nextpnr also lists constant nets it promoted to a global buffer.
        achieved = [float(entry["achieved"]) for net, entry in facts.get("fmax", {}).items()
                    if not net.startswith("$PACKER")]
        if not achieved:
            raise BuildError(f"nextpnr's report {path} names no clock: the design has no clocked logic?")
        return PlaceRouteReport(resources, min(achieved))
