"""The self-checking simulation harness (cnnhw/sim/harness.py) and the Verilator runtime cache
(cnnhw/sim/objcache.py): the harness finds every kind of difference and names the first one,
injects gaps and stalls, and one compiled simulator serves other data and settings."""

from __future__ import annotations

import dataclasses
import stat
import sys

import onnx
import pytest

from cnnhw.errors import CnnhwError
from cnnhw.flow.verilog import export_verilog
from cnnhw.frontend import load_model
from cnnhw.plan import default_plan
from cnnhw.quant import QuantOptions, quantize_graph
from cnnhw.sim import objcache
from cnnhw.sim.harness import Settings, hex_words
from cnnhw.sim.runner import CLOCK_TOP, simulate_export
from cnnhw.verify import ExpectedStreams, Mismatch, expected_streams
from netgen import random_network


@pytest.fixture(scope="module")
def small_network(tmp_path_factory):
    """A small random network's export and the expected streams of three images."""
    folder = tmp_path_factory.mktemp("harness")
    spec = random_network(1)
    onnx.save(spec.model, folder / "net.onnx")
    qgraph = quantize_graph(load_model(folder / "net.onnx"),
                            QuantOptions(weight_bits=spec.bits, activation_bits=spec.bits), spec.calibration())
    export = export_verilog(qgraph, default_plan(qgraph), folder / "rtl")
    return export, expected_streams(qgraph, spec.calibration(3)), folder


def _with_stage(expected: ExpectedStreams, index: int, words: list[int]) -> ExpectedStreams:
    stages = list(expected.stages)
    stages[index] = (stages[index][0], words)
    return dataclasses.replace(expected, stages=stages)


def test_a_wrong_value_is_named_and_the_simulator_is_reused(small_network):
    export, expected, folder = small_network
    right = simulate_export(export, expected, folder / "sim")
    assert right.bit_exact
    # Each stage's first image ends after the stage before it (its last output needs its last
    # input), and the last stage's before the class.
    assert [layer for layer, _ in right.stage_latencies] == [layer for layer, _ in expected.stages]
    ends = [cycles for _, cycles in right.stage_latencies]
    assert all(a < b for a, b in zip(ends, ends[1:])) and 0 < ends[0] and ends[-1] < right.latency_cycles
    simulator = folder / "sim" / CLOCK_TOP
    built = simulator.stat().st_mtime_ns
    layer, words = expected.stages[1]
    wrong = _with_stage(expected, 1, words[:4] + [words[4] + 1] + words[5:])
    wrong = dataclasses.replace(wrong, classes=[(expected.classes[0] + 1) % 2] + expected.classes[1:])
    result = simulate_export(export, wrong, folder / "sim")
    assert simulator.stat().st_mtime_ns == built  # the same stream lengths: the same simulator
    assert result.mismatches == [Mismatch(layer, 4, words[4] + 1, words[4])]
    assert result.class_mismatches == 1
    assert result.cycles == right.cycles  # the expected streams do not change what the hardware does


def test_too_many_and_too_few_elements_are_named(small_network):
    export, expected, folder = small_network
    first_layer, first_words = expected.stages[0]
    last_layer, last_words = expected.stages[-1]
    changed = _with_stage(expected, 0, first_words + [7])  # the hardware stops one element short
    changed = _with_stage(changed, len(expected.stages) - 1, last_words[:-1])  # and one element over
    result = simulate_export(export, changed, folder / "sim_lengths", max_cycles=200_000)
    assert Mismatch(first_layer, len(first_words), 7, None) in result.mismatches
    assert Mismatch(last_layer, len(last_words) - 1, None, last_words[-1]) in result.mismatches
    assert not result.bit_exact


def test_gaps_and_stalls_slow_the_run_and_keep_it_exact(small_network):
    export, expected, folder = small_network
    steady = simulate_export(export, expected, folder / "sim", timing_images=1, gap=0, stall=0)
    choppy = simulate_export(export, expected, folder / "sim", timing_images=1, gap=0.9, stall=0.9)
    other_seed = simulate_export(export, expected, folder / "sim", timing_images=1, gap=0.9, stall=0.9, seed=7)
    assert steady.bit_exact and choppy.bit_exact and other_seed.bit_exact
    assert choppy.cycles > steady.cycles
    assert other_seed.cycles != choppy.cycles


def test_a_folder_with_a_space_is_refused_before_verilator_runs(small_network):
    """GNU make cannot build in such a folder: one clear line, and nothing built."""
    export, expected, folder = small_network
    with pytest.raises(CnnhwError, match="path has a space.*choose an output folder without spaces"):
        simulate_export(export, expected, folder / "my builds")
    assert not (folder / "my builds" / f"V{CLOCK_TOP}").exists()


def test_hex_words_are_twos_complement_of_the_width():
    assert hex_words([-1, 0, 5, -128, 127], 8) == "ff\n00\n05\n80\n7f\n"
    assert hex_words([3], 1) == "1\n"
    assert hex_words([1 << 9], 10) == "200\n"


def test_settings_fields_pack_in_order():
    settings = Settings(gap_below=51, stall_below=52, gap_seed=1, stall_seed=2, timed_inputs=900, timed_classes=3)
    word = settings.word()
    fields = [(word >> (32 * index)) & 0xFFFF_FFFF for index in range(len(Settings.names()))]
    assert fields == [51, 52, 1, 2, 900, 3]


def test_the_runtime_cache_compiles_a_runtime_source_once(tmp_path):
    runtime = tmp_path / "include"
    runtime.mkdir()
    (runtime / "verilated.cpp").write_text("int x;\n")
    (runtime / "verilated.h").write_text("// header\n")
    compiler = tmp_path / "fake-c++"
    calls = tmp_path / "calls"
    compiler.write_text(f"#!{sys.executable}\nimport sys\nopen({str(calls)!r}, 'a').write('x')\n"
                        "open(sys.argv[sys.argv.index('-o') + 1], 'w').write('object of ' + sys.argv[-1])\n")
    compiler.chmod(compiler.stat().st_mode | stat.S_IEXEC)
    cache = tmp_path / "cache"
    for build in ("a", "b"):
        (tmp_path / build).mkdir()
        output = tmp_path / build / "verilated.o"
        command = [str(compiler), "-O2", "-c", "-o", str(output), str(runtime / "verilated.cpp")]
        assert objcache.cached(command, cache, runtime) == 0
        assert output.read_text() == f"object of {runtime / 'verilated.cpp'}"
    assert calls.read_text() == "x"  # the second build took the stored object
    (runtime / "verilated.h").write_text("// a changed header\n")
    assert objcache.cached(command, cache, runtime) == 0
    assert calls.read_text() == "xx"  # a changed header is another object
    design = tmp_path / "a" / "Vtop.cpp"
    design.write_text("int y;\n")
    for _ in range(2):
        objcache.cached([str(compiler), "-c", "-o", str(tmp_path / "a" / "Vtop.o"), str(design)], cache, runtime)
    assert calls.read_text() == "xxxx"  # the design's own code is never cached

