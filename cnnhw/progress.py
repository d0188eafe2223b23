"""Progress lines for long work: ``with stage("synthesis"):`` logs the start and, when the block
ends, the duration; meanwhile, when stderr is a terminal, a spinner with the time elapsed (rich).
``-q`` silences them, and a script (stderr not a terminal) gets the lines only."""

from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager

log = logging.getLogger("cnnhw")


@contextmanager
def stage(label: str):
    log.info("%s ...", label)
    started = time.perf_counter()
    if sys.stderr.isatty() and log.isEnabledFor(logging.INFO):
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), TimeElapsedColumn(),
                      console=Console(stderr=True), transient=True) as progress:
            progress.add_task(label, total=None)
            yield
    else:
        yield
    log.info("%s: done in %.1f s", label, time.perf_counter() - started)
