"""Calibrate the logic-cell model (``cnnhw/plan/logic.py``) of an FPGA family on whole designs.

Run:  .venv/bin/pip install -e '.[bench]'                  (SciPy, for the fit)
      .venv/bin/python bench/logic_calibration.py            (iCE40, about 20 minutes on 2 cores)
      .venv/bin/python bench/logic_calibration.py --board ulx3s-85f   (ECP5)
      .venv/bin/python bench/logic_calibration.py --fit-only (refit on the stored samples)
      ... --workers N, or --scheduler ADDRESS: the syntheses run on a Dask cluster (default: a local
      one, a worker per core)

For each calibration design (LeNet-5, mnist-8 and the tiny CNN with the planner's plans at several
DSP budgets and with products moved into logic, the plans the planner picks with the model fitted so
far, and random networks of ``tests/netgen.py`` with random foldings), the board top is elaborated
at the board's first clock, synthesised (the family's yosys script, as ``cnnhw build`` runs it) and
packed (nextpnr ``--pack-only``, which counts the logic cells placement uses). Each sample (the
design's plan, the model's terms per owner and the packed count) is kept in
``bench/logic_samples.json`` (``logic_samples_<family>.json`` for other families); a rerun
synthesises only designs whose plan is new and computes the terms of the others again, so the
model's terms can be refined without synthesising anything again.

The coefficients are a non-negative least-squares fit of the packed counts on the summed terms,
written to the family's model file (``logic.model_file``) with the fit's error, measured leaving
each design out of the fit that predicts it (so the error is what a new design can expect), and
printed as a table.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tiny CNN and the random networks

from cnnhw.boards import load_board  # noqa: E402
from cnnhw.cluster import open_cluster, workers_of  # noqa: E402
from cnnhw.errors import DoesNotFitError  # noqa: E402
from cnnhw.flow.build import synthesize  # noqa: E402
from cnnhw.flow.tools import find_toolchain  # noqa: E402
from cnnhw.frontend import load_model  # noqa: E402
from cnnhw.plan import HardwarePlan, LayerPlan  # noqa: E402
from cnnhw.hardware import with_folding  # noqa: E402
from cnnhw.plan.budget import _fit_memories, plan_for_board  # noqa: E402
from cnnhw.plan.costs import logic_terms, needs, plan_costs  # noqa: E402
from cnnhw.plan import logic  # noqa: E402
from cnnhw.quant import QuantOptions, quantize_graph  # noqa: E402
from cnnhw.quant.qgraph import QConv, QDense  # noqa: E402

COMMAND = ".venv/bin/python bench/logic_calibration.py"
#: DSP budgets the planner's plans are made at, per family (the board's own first on ECP5).
DSP_SWEEP = {"ice40": (8, 7, 6, 5, 4, 3, 2, 1), "ecp5": (156, 96, 48, 24, 8, 6, 5, 4, 3, 1)}


def samples_file(family: str) -> Path:
    """Where a family's samples are kept (``logic_samples.json`` for iCE40)."""
    return ROOT / "bench" / ("logic_samples.json" if family == "ice40" else f"logic_samples_{family}.json")


def _models(work: Path):
    """(name, qgraph) of the bench models."""
    from models import small_cnn
    import onnx

    lenet = load_model(ROOT / "examples" / "lenet.onnx")
    yield "lenet", quantize_graph(lenet, QuantOptions(), np.load(ROOT / "examples" / "lenet.calib.npz")["x"])
    mnist = load_model(ROOT / "tests" / "data" / "mnist8" / "mnist-8.onnx")
    yield "mnist8", quantize_graph(mnist, QuantOptions(), input_range=(0, 255))
    model, _ = small_cnn(np.random.default_rng(5))
    onnx.save(model, work / "tiny.onnx")
    yield "tiny", quantize_graph(load_model(work / "tiny.onnx"), QuantOptions(),
                                 np.random.default_rng(1).normal(size=(64, 2, 12, 10)))


def _in_logic(qgraph, plan: HardwarePlan, names) -> HardwarePlan:
    for name in names:
        plan = with_folding(plan, name, packed=False, logic_products=True)
    return plan


def designs(work: Path, board):
    """(name, qgraph, plan) of every calibration design that fits the board's DSPs and memories."""
    from netgen import random_network, random_plan
    import onnx

    for model, qgraph in _models(work):
        weighted = [layer.name for layer in qgraph.layers if isinstance(layer, (QConv, QDense))]
        # The planner's starting point: one product per layer, memories fitted (SPRAM where needed).
        smallest = HardwarePlan(tuple(LayerPlan(name) for name in weighted), family=board.family.name)
        yield f"{model}-smallest", qgraph, _fit_memories(qgraph, smallest, board, set())[0]
        for dsp in (d for d in DSP_SWEEP[board.family.name] if d <= board.budget["dsp"]):
            try:
                plan = plan_for_board(qgraph, board, max_dsp=dsp)
            except DoesNotFitError:
                continue
            yield f"{model}-dsp{dsp}", qgraph, plan
            if dsp in (8, 5):  # and with the last weighted layer's products in logic
                yield f"{model}-dsp{dsp}-logic-last", qgraph, _in_logic(qgraph, plan, weighted[-1:])
            if dsp in (6, 3):
                yield f"{model}-dsp{dsp}-logic-first", qgraph, _in_logic(qgraph, plan, weighted[:1])
            if dsp == 4:
                yield f"{model}-dsp{dsp}-logic-all", qgraph, _in_logic(qgraph, plan, weighted)
        if logic.model_file(board.family.name).exists():  # what the planner picks with the model fitted so far
            budget = board.budget["logic_cells"]
            for cells in (budget, round(0.85 * budget)):
                with logic_model(_FITTED):
                    plan = plan_for_board(qgraph, board, max_logic_cells=cells)
                digest = hashlib.sha1(plan.dumps().encode()).hexdigest()[:6]  # a new model may plan anew
                yield f"{model}-planned{cells}-{digest}", qgraph, plan
    for seed in range(30):
        spec = random_network(seed)
        onnx.save(spec.model, work / f"net{seed}.onnx")
        qgraph = quantize_graph(load_model(work / f"net{seed}.onnx"), QuantOptions(), spec.calibration())
        # A random folding, products on DSPs (a random plan may put dozens of products in logic, which
        # no plan for a board does); when that needs too many DSPs, the planner's plan with the model
        # fitted so far for a random share of them.
        packs = board.family.dsp.packs_two_8x8
        plan = HardwarePlan(tuple(replace(layer, logic_products=False, packed=layer.packed and packs)
                                  for layer in random_plan(qgraph, seed).layers), family=board.family.name)
        if needs(plan_costs(qgraph, plan, board))["dsp"] > board.budget["dsp"]:
            if not logic.model_file(board.family.name).exists():
                continue
            try:
                with logic_model(_FITTED):
                    plan = plan_for_board(qgraph, board, max_dsp=1 + seed % board.budget["dsp"])
            except DoesNotFitError:
                continue
        if seed % 3 == 0:
            weighted = [layer.name for layer in qgraph.layers if isinstance(layer, (QConv, QDense))]
            plan = _in_logic(qgraph, plan, weighted[seed % len(weighted):][:1])
        yield f"net{seed}", qgraph, plan


def measure(name, qgraph, plan, board, tools, work: Path) -> dict:
    folder = work / name
    folder.mkdir()
    counted = synthesize(qgraph, plan, board, board.first_try_mhz, tools, folder, timed=None)
    return {"name": name, "logic_cells": counted["logic_cells"], "terms": logic_terms(qgraph, plan, board),
            "plan": plan.to_json()}


def collect(board, workers: int | None = None, scheduler: str | None = None) -> list[dict]:
    """Synthesise the designs whose plan is new (on a Dask cluster: ``cnnhw/cluster.py``) and keep
    every sample in the family's samples file."""
    path = samples_file(board.family.name)
    samples = {s["name"]: s for s in json.loads(path.read_text())} if path.exists() else {}
    tools = find_toolchain(family=board.family)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        todo = []
        for name, qgraph, plan in designs(work, board):
            costs = needs(plan_costs(qgraph, plan, board))
            if costs["dsp"] > board.budget["dsp"] or costs["ebr"] > board.budget["ebr"]:
                print(f"skip {name}: {costs}")
                continue
            if name in samples and samples[name]["plan"] == plan.to_json():
                samples[name]["terms"] = logic_terms(qgraph, plan, board)  # the model's terms may have changed
                continue
            todo.append((name, qgraph, plan))
        with open_cluster(workers, scheduler) as client:
            pool = workers_of(client).executor
            futures = {pool.submit(measure, name, qgraph, plan, board, tools, work): name
                       for name, qgraph, plan in todo}
            for future in concurrent.futures.as_completed(futures):
                sample = future.result()
                samples[sample["name"]] = sample
                print(f"{sample['name']}: {sample['logic_cells']:,} logic cells", flush=True)
                path.write_text(json.dumps(sorted(samples.values(), key=lambda s: s["name"]), indent=1) + "\n")
    path.write_text(json.dumps(sorted(samples.values(), key=lambda s: s["name"]), indent=1) + "\n")
    return sorted(samples.values(), key=lambda s: s["name"])


_FITTED = logic.coefficients


def _dsp_only(family: str = "ice40") -> dict[str, float]:
    """Coefficients under which the planner plans as without a logic-cell model: every term free but
    products in logic, which no plan can afford (so it spends DSPs only, as the budget says)."""
    return {"logic_product_bits": 1e9}


@contextlib.contextmanager
def logic_model(coefficients=_dsp_only):
    """The cost model with other logic-cell coefficients; by default :func:`_dsp_only`, for the
    designs made by budget (the planner's plans at so many DSPs), which must not depend on the model
    being fitted."""
    saved = logic.coefficients, logic.typical_error
    logic.coefficients = coefficients
    if coefficients is _dsp_only:  # no margin over the budget either (there may be no model yet)
        logic.typical_error = lambda family="ice40": 0.0
    try:
        yield
    finally:
        logic.coefficients, logic.typical_error = saved


def _matrix(samples: list[dict], names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    rows = []
    for sample in samples:
        total: dict[str, float] = {}
        for terms in sample["terms"].values():
            for name, amount in terms.items():
                total[name] = total.get(name, 0) + amount
        rows.append([total.get(name, 0) for name in names])
    return np.array(rows, dtype=float), np.array([s["logic_cells"] for s in samples], dtype=float)


def distinct(samples: list[dict]) -> list[dict]:
    """The samples without repeats: the planner gives some budgets the same plan (the first name kept)."""
    seen, kept = set(), []
    for sample in samples:
        key = (sample["name"].split("-")[0], json.dumps(sample["plan"], sort_keys=True))
        if key not in seen:
            seen.add(key)
            kept.append(sample)
    return kept


#: Designs larger than this share of the device are left out of the fit: the model is for plans
#: that fit, and a linear fit would otherwise bend toward designs no board can hold.
FIT_RANGE = 1.25


def fit(samples: list[dict], board) -> dict:
    from scipy.optimize import nnls

    budget = board.budget["logic_cells"]
    samples = [sample for sample in distinct(samples) if sample["logic_cells"] <= FIT_RANGE * budget]
    names = sorted({name for s in samples for terms in s["terms"].values() for name in terms})
    x, y = _matrix(samples, names)
    coefficients, _ = nnls(x, y)
    held_out = []
    for index in range(len(samples)):
        keep = np.arange(len(samples)) != index
        partial, _ = nnls(x[keep], y[keep])
        held_out.append(float(x[index] @ partial))
    errors = [(p - a) / a for p, a in zip(held_out, y)]
    return {
        "command": COMMAND if board.family.name == "ice40" else f"{COMMAND} --board {board.name}",
        "about": "logic cells per unit of each term of cnnhw/plan/logic.py; fitted (non-negative least squares) "
                 f"on the packed logic cells ({board.family.name}: yosys synthesis, nextpnr --pack-only) of the "
                 f"distinct designs in bench/{samples_file(board.family.name).name} up to {FIT_RANGE:.0%} of the "
                 f"{board.name}'s; errors: each design predicted by the fit without it",
        "designs": len(samples),
        "fitted_up_to_logic_cells": int(FIT_RANGE * budget),
        "coefficients": {name: round(float(c), 4) for name, c in zip(names, coefficients)},
        "error": {"mean_abs_percent": round(100 * float(np.mean(np.abs(errors))), 1),
                  "max_abs_percent": round(100 * float(np.max(np.abs(errors))), 1),
                  "worst": samples[int(np.argmax(np.abs(errors)))]["name"]},
        "held_out": {s["name"]: {"packed": int(a), "predicted": round(p)} for s, p, a in zip(samples, held_out, y)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit-only", action="store_true", help="refit on the stored samples")
    parser.add_argument("--board", default="icebreaker",
                        help="the board whose family is calibrated (icebreaker: iCE40; ulx3s-85f: ECP5)")
    parser.add_argument("--workers", type=int, help="workers of the local Dask cluster (default: one per core)")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="synthesise on the Dask cluster at ADDRESS")
    args = parser.parse_args()
    board = load_board(args.board)
    if args.fit_only:
        samples = json.loads(samples_file(board.family.name).read_text())
    else:
        with logic_model():
            samples = collect(board, args.workers, args.scheduler)
    model = fit(samples, board)
    logic.model_file(board.family.name).write_text(json.dumps(model, indent=1) + "\n")
    print(f"\n`{model['command']}` ({model['designs']} designs; each predicted by the fit on the others):\n")
    print("| design | packed LCs | predicted | error |\n|---|---|---|---|")
    for name, row in model["held_out"].items():
        print(f"| {name} | {row['packed']:,} | {row['predicted']:,} | "
              f"{100 * (row['predicted'] - row['packed']) / row['packed']:+.1f} % |")
    error = model["error"]
    print(f"\nmean |error| {error['mean_abs_percent']} %, max {error['max_abs_percent']} % ({error['worst']})")
    print("coefficients:", json.dumps(model["coefficients"]))


if __name__ == "__main__":
    main()
