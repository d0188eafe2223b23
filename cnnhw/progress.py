"""Progress for long work, on stderr.

``with stage("synthesis"):`` logs the start and, when the block ends, the duration; meanwhile, when
stderr is a terminal, a spinner with the time elapsed (rich). ``with counter("builds", 4) as done:``
is the same for work made of counted items: a bar with ``n/total`` and the time elapsed, and
``done(line)`` when an item ends (the line is printed above the bar). ``-q`` silences both, and a
script (stderr not a terminal) gets the lines only. Work that runs inside another display (a zoo's
builds) runs under :func:`lines_only`: one live display at a time.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger("cnnhw")
_live = {"allowed": True}


def _displays() -> bool:
    return _live["allowed"] and sys.stderr.isatty() and log.isEnabledFor(logging.INFO)


@contextmanager
def lines_only() -> Iterator[None]:
    """No spinner or bar inside this block (progress lines still go to the log)."""
    allowed, _live["allowed"] = _live["allowed"], False
    try:
        yield
    finally:
        _live["allowed"] = allowed


def _progress(*columns):
    from rich.console import Console
    from rich.progress import Progress, TextColumn, TimeElapsedColumn

    return Progress(*columns, TextColumn("{task.description}", markup=False), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True)


@contextmanager
def stage(label: str):
    log.info("%s ...", label)
    started = time.perf_counter()
    if _displays():
        from rich.progress import SpinnerColumn

        with _progress(SpinnerColumn()) as progress, lines_only():
            progress.add_task(label, total=None)
            yield
    else:
        yield
    log.info("%s: done in %.1f s", label, time.perf_counter() - started)


@contextmanager
def counter(label: str, total: int) -> Iterator[Callable[[str], None]]:
    """Progress over ``total`` items: yields ``done(line)``, to call as each item ends."""
    log.info("%s: %d ...", label, total)
    started = time.perf_counter()
    if not _displays():
        yield lambda line: log.info("%s", line)
    else:
        from rich.progress import BarColumn, MofNCompleteColumn

        with _progress(BarColumn(), MofNCompleteColumn()) as progress, lines_only():
            task = progress.add_task(label, total=total)

            def done(line: str) -> None:
                progress.console.print(line, markup=False, highlight=False)
                progress.advance(task)

            yield done
    log.info("%s: done in %.1f s", label, time.perf_counter() - started)
