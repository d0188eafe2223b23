"""``cnnhw zoo``: the zoo file's checks, and two models x two boards built on a Dask cluster of two
workers (one killed in the middle of a build) giving exactly the results of the same zoo built
sequentially in one process, bitstreams included."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from cnnhw.outputs import folder_kind
from cnnhw.cli import build_parser
from cnnhw.zoo import VERIFIED, comparable, read_zoo
from models import tiny_cnn

ZOO = """
[[model]]
name = "tiny A"
file = "tiny_a.onnx"
boards = ["icebreaker", "ulx3s-12f"]
eval = "tiny_a.eval.npz"
options = { calib = "tiny_a.calib.npz", verify-images = 2 }
board_options = { icebreaker = { clock = 24 }, ulx3s-12f = { clock = 30 } }

[[model]]
name = "tiny B"
file = "tiny_b.onnx"
boards = ["icebreaker", "ulx3s-12f"]
options = { calib = "tiny_b.calib.npz", verify-images = 2 }
board_options = { icebreaker = { clock = 21 }, ulx3s-12f = { clock = 45 } }
"""


@pytest.fixture
def zoo_file(tmp_path):
    """A zoo of two tiny CNNs (differently sized, so their plans differ) on an iCE40 and an ECP5 board."""
    for name, seed, channels in (("tiny_a", 1, 2), ("tiny_b", 2, 3)):
        onnx.save(tiny_cnn(np.random.default_rng(seed), channels), tmp_path / f"{name}.onnx")
        rng = np.random.default_rng(seed)
        np.savez(tmp_path / f"{name}.calib.npz", x=rng.normal(size=(8, 1, 6, 6)).astype(np.float32))
    np.savez(tmp_path / "tiny_a.eval.npz", x=rng.normal(size=(20, 1, 6, 6)).astype(np.float32),
             y=rng.integers(0, 3, size=20))
    path = tmp_path / "zoo.toml"
    path.write_text(ZOO)
    return path


def test_a_zoo_file_lists_every_model_on_every_board_with_its_options(zoo_file):
    entries = read_zoo(zoo_file, build_parser().parse_args)
    assert [(e.name, e.board) for e in entries] == [("tiny A", "icebreaker"), ("tiny A", "ulx3s-12f"),
                                                    ("tiny B", "icebreaker"), ("tiny B", "ulx3s-12f")]
    first = entries[0]
    assert first.model == zoo_file.parent / "tiny_a.onnx" and first.eval == zoo_file.parent / "tiny_a.eval.npz"
    # Paths relative to the zoo file; the board's options after the model's.
    assert first.options == ("--calib", str(zoo_file.parent / "tiny_a.calib.npz"), "--verify-images", "2",
                             "--clock", "24")
    assert entries[3].options[-2:] == ("--clock", "45")
    assert [e.key for e in entries] == ["tiny_A-icebreaker", "tiny_A-ulx3s-12f", "tiny_B-icebreaker",
                                        "tiny_B-ulx3s-12f"]


@pytest.mark.parametrize("change, message", [
    (lambda t: t.replace('[[model]]', '[[modle]]', 1), "expected [[model]] tables only (found modle)"),
    (lambda t: t.replace('name = "tiny B"', 'name = "tiny A"'), "'tiny A' on icebreaker is listed twice"),
    (lambda t: t.replace('"tiny_a.onnx"', '"missing.onnx"'), "file "),
    (lambda t: t.replace('verify-images = 2 }', 'verify-images = 2, seed = "x" }', 1), "--seed: invalid int value"),
    (lambda t: t.replace('verify-images = 2 }', 'verify-images = 2, output = "x" }', 1), "the zoo sets --output"),
    (lambda t: t.replace('verify-images = 2 }', 'verify-images = 2, frobnicate = 1 }', 1), "unrecognized arguments"),
    (lambda t: t.replace('verify-images = 2 }', 'no-verify = true }', 1), "a zoo verifies every build"),
    (lambda t: t.replace('clock = 30', 'clock = 24'), "no PLL setting for 24 MHz"),
    (lambda t: t + '[[model]]\nname = "C"\nfile = "tiny_a.onnx"\nboards = ["nosuchboard"]\n', "nosuchboard"),
    (lambda t: t.replace('board_options = { icebreaker', 'board_options = { orangecrab-25f', 1),
     "'orangecrab-25f' is not one of them"),
    (lambda t: t.replace('eval = "tiny_a.eval.npz"', 'colour = "blue"'), "unknown key 'colour'"),
    (lambda t: t + "\n[[model\n", "is not valid TOML"),
])
def test_a_bad_zoo_file_is_one_line_naming_the_model_before_any_build(cli, tmp_path, zoo_file, change, message):
    zoo_file.write_text(change(zoo_file.read_text()))
    result = cli("zoo", zoo_file, "-o", "out", "--sequential")
    assert result.returncode == 2 and message in result.error_line, result.stderr
    assert "zoo file" in result.error_line
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_a_zoo_never_writes_over_a_folder_cnnhw_did_not_write(cli, tmp_path, zoo_file):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    result = cli("zoo", zoo_file, "-o", "out", "--sequential")
    assert result.returncode == 2 and "was not written by cnnhw as a zoo folder" in result.error_line
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def _staging_folders(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if p.is_dir() and p.name.startswith(".") and folder_kind(p) == "build"]


def _kill_a_worker_mid_build(client, out: Path, zoo: subprocess.Popen, timeout: float = 300) -> str:
    """Once a build has begun place and route (its staging folder has an attempt), SIGKILL the
    worker process running it; the name of the build's folder."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and zoo.poll() is None:
        building = [p for p in (_staging_folders(out) if out.is_dir() else []) if (p / "attempts").is_dir()]
        processing = {key: worker for worker, keys in client.processing().items() for key in keys}
        for staging in building:
            build = staging.name[1:].rsplit(".", 1)[0]  # .<name>.<random> beside <name>
            key = next((key for key in processing if key.rsplit("-", 1)[0] == f"zoo-{build}"), None)
            if key is not None:
                worker = processing[key]
                pid = client.run(os.getpid, workers=[worker])[worker]
                os.kill(pid, signal.SIGKILL)
                return build
        time.sleep(0.2)
    raise AssertionError(f"no build reached place and route in {timeout} s (zoo exit status {zoo.poll()})")


def _rows(out: Path) -> list[dict]:
    facts = json.loads((out / "results.json").read_text())
    return facts["rows"]


@pytest.mark.long
def test_a_zoo_on_two_dask_workers_survives_a_killed_worker_and_equals_the_sequential_zoo(cli, tmp_path, zoo_file):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      memory_limit=0) as cluster, Client(cluster) as client:
        zoo = subprocess.Popen([sys.executable, "-m", "cnnhw", "zoo", str(zoo_file), "-o", "parallel",
                                "--scheduler", cluster.scheduler_address], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        killed = _kill_a_worker_mid_build(client, tmp_path / "parallel", zoo)
        stdout, stderr = zoo.communicate(timeout=900)
    assert zoo.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    parallel = _rows(tmp_path / "parallel")
    assert [row["status"] for row in parallel] == [VERIFIED] * 4, [row.get("error") for row in parallel]
    assert killed in {row["folder"] for row in parallel}
    # Every build folder whole (the killed attempt's staging folder removed), every card linked.
    out = tmp_path / "parallel"
    assert _staging_folders(out) == []
    index = (out / "index.html").read_text()
    for row in parallel:
        assert folder_kind(out / row["folder"]) == "build"
        facts = json.loads((out / row["folder"] / "build.json").read_text())
        assert facts["verified"]["bit_exact"] and facts["timing_met"]
        assert (out / row["report"]).is_file() and f'href="{row["report"]}"' in index
    assert "| tiny A | icebreaker | iCE40UP5K-SG48 | yes (2 images) |" in (out / "results.md").read_text()

    result = cli("zoo", zoo_file, "-o", "sequential", "--sequential", timeout=900)
    assert result.returncode == 0, result.stderr
    sequential = _rows(tmp_path / "sequential")
    # The same builds: every figure, every resource count and every bitstream's SHA-256.
    assert [comparable(row) for row in parallel] == [comparable(row) for row in sequential]
    assert parallel[0]["accuracy"]["images"] == 20


@pytest.mark.long
def test_a_build_with_two_workers_tries_two_clocks_at_once_and_keeps_what_one_worker_keeps(cli, tmp_path, zoo_file):
    common = ("build", "--model", "tiny_a.onnx", "--board", "icebreaker", "--calib", "tiny_a.calib.npz",
              "--verify-images", "2")
    parallel = cli(*common, "-o", "parallel", "--workers", "2", "--json", "parallel.json")
    assert parallel.returncode == 0, parallel.stderr
    assert "place and route at 24, 21 MHz at once (2 workers)" in parallel.stderr
    sequential = cli(*common, "-o", "sequential", "--json", "sequential.json")
    assert sequential.returncode == 0, sequential.stderr
    facts = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in ("parallel", "sequential")}
    assert [a["clock_mhz"] for a in facts["parallel"]["attempts"][:2]] == [24, 21]
    assert [a["clock_mhz"] for a in facts["sequential"]["attempts"]][0] == 24
    # This design meets 24 MHz and nothing faster: both keep the 24 MHz bitstream, byte for byte.
    assert facts["parallel"]["clock_mhz"] == facts["sequential"]["clock_mhz"] == 24
    assert facts["parallel"]["files"] == facts["sequential"]["files"]
