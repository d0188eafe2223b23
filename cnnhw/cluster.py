"""Where cnnhw runs independent work at once: a Dask cluster (``distributed``).

Three kinds of work are independent and long: the builds of ``cnnhw zoo``, the timing search's
place-and-route attempts at different clocks, and the logic-model calibration's syntheses. Each
goes through a :class:`Workers`: an executor (``concurrent.futures.Executor``) and how many tasks
it runs at once. :func:`open_cluster` starts a local cluster (one single-threaded worker process per
core) or connects to a running one (``--scheduler ADDRESS``); :func:`from_worker` gives a task that
runs on a worker the same cluster, for the tasks it starts itself (a zoo build's attempts).

Contract for a task: its inputs and result pickle; it writes only inside folders it was given, on a
file system every worker shares with the caller; it may run more than once (the scheduler runs a
killed worker's tasks again on another worker, up to ``distributed.scheduler.allowed-failures``
times), so it starts from a clean folder and writes its outputs atomically.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .errors import CnnhwError

#: How long connecting to ``--scheduler`` may take before the run gives up.
CONNECT_TIMEOUT_S = 20


@dataclass(frozen=True)
class Workers:
    """Somewhere to run tasks: ``executor.submit(fn, *args)``, ``count`` of them at once."""

    executor: concurrent.futures.Executor
    count: int


def local_worker_count() -> int:
    """The cores this process may use (the default number of local workers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@contextmanager
def open_cluster(workers: int | None = None, scheduler: str | None = None) -> Iterator:
    """A Dask ``Client``: of a local cluster of ``workers`` single-threaded worker processes (default
    :func:`local_worker_count`), or of the running cluster at ``scheduler`` (``tcp://host:8786``).
    Closed (a local cluster stopped) when the block ends. CnnhwError when the scheduler cannot be
    reached."""
    from distributed import Client, LocalCluster

    # cnnhw's log is at INFO; Dask's own INFO lines (workers joining, closing) are not for the user.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
        except (OSError, TimeoutError, ValueError) as error:
            raise CnnhwError(f"--scheduler {scheduler}: cannot reach a Dask scheduler there ({error}); start one "
                             f"(dask scheduler; dask worker ADDRESS on each machine) or leave --scheduler out "
                             f"for a local cluster") from None
        with client:
            yield client
        return
    # Its HTTP server on a free port (two clusters at once do not collide); no memory limit:
    # nextpnr on a large ECP5 uses gigabytes in the worker's child process, which the nanny must not
    # take for a leak.
    cluster = LocalCluster(n_workers=workers or local_worker_count(), threads_per_worker=1, processes=True,
                           dashboard_address=":0", memory_limit=0, silence_logs=logging.ERROR)
    with cluster, Client(cluster) as client:
        yield client


def workers_of(client) -> Workers:
    """The cluster of ``client`` as :class:`Workers` (``count``: its worker threads)."""
    threads = sum(info["nthreads"] for info in client.scheduler_info()["workers"].values())
    return Workers(client.get_executor(pure=False), max(1, threads))


@contextmanager
def from_worker() -> Iterator[Workers | None]:
    """Inside a task on a Dask worker: the cluster, for tasks this one waits on (the task leaves
    its worker's thread pool meanwhile, so the tasks it started can run there). Elsewhere: None."""
    try:
        from distributed import get_worker, worker_client

        get_worker()
    except (ImportError, ValueError):
        yield None
        return
    with worker_client() as client:
        yield workers_of(client)
