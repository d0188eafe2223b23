"""How fast the whole-network RTL simulation runs: each bench model's iCEBreaker plan in Verilator.

Run:  .venv/bin/python bench/simulation.py            (about two minutes on 2 cores)
Prints a Markdown table (quoted in docs/benchmarks.md) with the command. Each model is simulated
on its first ten test images (the first three back to back, the rest with random input gaps and
output stalls of 20 %), every layer compared with the golden model in the harness
(``cnnhw/sim/harness.py``). *cycles/s* is the simulator's speed from reset to the last class;
*run s* adds the simulator's start-up; *build s* is compiling it (Verilator's runtime cached in
``.cache/``, as the test suite does: a first build takes about 15 s more).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from planning import models  # noqa: E402

from cnnhw.boards import load_board  # noqa: E402
from cnnhw.flow.verilog import export_verilog  # noqa: E402
from cnnhw.plan.budget import plan_for_board  # noqa: E402
from cnnhw.sim.runner import simulate_export  # noqa: E402
from cnnhw.verify import expected_streams  # noqa: E402

COMMAND = ".venv/bin/python bench/simulation.py"
IMAGES = 10


def main() -> None:
    os.environ.setdefault("CNNHW_CACHE_DIR", str(ROOT / ".cache"))
    board = load_board("icebreaker")
    print(f"Measured with `{COMMAND}` ({IMAGES} images each, gaps and stalls after the first three):\n")
    print("| model | cycles simulated | bit-exact | cycles/s | run s | build s |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        for index, (name, qgraph, images) in enumerate(models()):
            plan = plan_for_board(qgraph, board)
            export = export_verilog(qgraph, plan, Path(work) / f"rtl{index}")
            x = qgraph.graph.check_batch(images[:IMAGES], name)
            result = simulate_export(export, expected_streams(qgraph, x), Path(work) / f"sim{index}")
            print(f"| {name} | {result.cycles:,} | {'yes' if result.bit_exact else 'NO'} | "
                  f"{result.cycles_per_second:,.0f} | {result.run_seconds:.1f} | {result.build_seconds:.1f} |")


if __name__ == "__main__":
    main()
