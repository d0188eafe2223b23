import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
EXAMPLES = ROOT / "examples"
MNIST8 = DATA / "mnist8"

# The suite builds about a hundred Verilator simulators; they share one compiled Verilator runtime
# (cnnhw/sim/objcache.py), kept in the clone's .cache/ (git ignores it).
os.environ.setdefault("CNNHW_CACHE_DIR", str(ROOT / ".cache"))


def pytest_collection_modifyitems(items):
    """The tests marked ``long`` first: pytest-xdist hands tests out in this order, so the longest
    start at once on every worker instead of leaving one worker busy after the others are done."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


class CliResult:
    def __init__(self, completed: subprocess.CompletedProcess):
        self.returncode = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr

    @property
    def error_line(self) -> str:
        """The single error line; fails the test if stderr holds anything else (e.g. a traceback)."""
        lines = [line for line in self.stderr.splitlines() if line.startswith("cnnhw: error:")]
        assert len(lines) == 1, f"expected one error line, stderr was:\n{self.stderr}"
        assert "Traceback" not in self.stderr, self.stderr
        return lines[0]


@pytest.fixture
def cli(tmp_path):
    """Run the real ``cnnhw`` command (a fresh process, as a user would) inside tmp_path."""

    def run(*args, env: dict | None = None, timeout: int = 600) -> CliResult:
        completed = subprocess.run([sys.executable, "-m", "cnnhw", *map(str, args)], capture_output=True,
                                   text=True, cwd=tmp_path, timeout=timeout, env=env)
        return CliResult(completed)

    return run
