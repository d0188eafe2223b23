"""Progress lines for long work: ``with stage("synthesis"):`` logs the start and, when the block
ends, the duration (a spinner meanwhile when stderr is a terminal). ``-q`` silences them."""

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

        from rich.text import Text

        with Console(stderr=True).status(Text(label), spinner="dots"):
            yield
    else:
        yield
    log.info("%s: done in %.1f s", label, time.perf_counter() - started)
