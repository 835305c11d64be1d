"""Where sweep chunks run: in this process, in local worker processes, or on a Dask distributed cluster.

The sweep job (strategy class, grid, candles, rules) is serialised once with cloudpickle (a strategy loaded
from a file is pickled by value, so workers need not see the file) and shipped once per worker: local
workers receive it when they start, Dask workers get it scattered with ``broadcast=True``. Tasks then carry
only a chunk's bounds and window. Results come back as small arrays, placed by combination index.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

import cloudpickle

from systrade.errors import UserError
from systrade.optimize.sweep import ChunkResult, SweepJob, Window, evaluate

_JOBS: dict[str, SweepJob] = {}  # per worker process: unpickled jobs by token


def serialise(job: SweepJob) -> bytes:
    """cloudpickle the job; a strategy module that is not importable by name elsewhere goes by value."""
    module = sys.modules.get(job.strategy_cls.__module__)
    if module is not None and module.__name__.startswith("systrade_user_strategy_"):
        cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(job)
    finally:
        if module is not None and module.__name__.startswith("systrade_user_strategy_"):
            cloudpickle.unregister_pickle_by_value(module)


def _job(token: str, payload: bytes | None) -> SweepJob:
    job = _JOBS.get(token)
    if job is None:
        if payload is None:
            raise RuntimeError("sweep job was not shipped to this worker")
        _JOBS.clear()
        job = _JOBS[token] = cloudpickle.loads(payload)
    return job


def _init_local(token: str, payload: bytes) -> None:
    _job(token, payload)


def _run_local(token: str, k0: int, k1: int, window: Window, combos: list | None = None) -> ChunkResult:
    return evaluate(_job(token, None), k0, k1, window, combos)


def _run_dask(token: str, payload: bytes, k0: int, k1: int, window: Window, combos: list | None = None) -> ChunkResult:
    return evaluate(_job(token, payload), k0, k1, window, combos)


def _part(combos: list | None, k0: int, k1: int) -> list | None:
    """The explicit parameter sets of combinations ``k0 .. k1-1`` (None: the job's grid gives them)."""
    return None if combos is None else combos[k0:k1]


class InProcess:
    """Evaluate chunks one after another in this process."""

    kind = "in-process"

    def __init__(self, job: SweepJob) -> None:
        self.job = job
        self.workers = 1

    def run(self, tasks: list[tuple[int, int]], window: Window, combos: list | None = None) -> Iterator[ChunkResult]:
        for k0, k1 in tasks:
            yield evaluate(self.job, k0, k1, window, _part(combos, k0, k1))

    def close(self) -> None:
        pass


class LocalProcesses:
    """A pool of worker processes on this machine (forked where the OS allows: no re-import, data shared)."""

    kind = "local processes"

    def __init__(self, job: SweepJob, workers: int, token: str) -> None:
        self.workers = workers
        self.token = token
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method),
                                        initializer=_init_local, initargs=(token, serialise(job)))
        # Start every worker now, before any thread (progress display) exists in this process.
        self.pool.submit(int, 0).result()

    def run(self, tasks: list[tuple[int, int]], window: Window, combos: list | None = None) -> Iterator[ChunkResult]:
        yield from _bounded(lambda k0, k1: self.pool.submit(_run_local, self.token, k0, k1, window,
                                                            _part(combos, k0, k1)), tasks, 2 * self.workers)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class DaskCluster:
    """Chunks as tasks on a Dask distributed scheduler; the job is scattered to every worker once."""

    kind = "dask cluster"

    def __init__(self, job: SweepJob, address: str, token: str) -> None:
        try:
            import logging

            from distributed import Client

            logging.getLogger("distributed.client").setLevel(logging.WARNING)
        except ImportError:  # pragma: no cover - dask is a dependency
            raise UserError("--cluster needs dask[distributed]: pip install 'dask[distributed]'") from None
        try:
            self.client = Client(address, timeout=10, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise UserError(f"cannot reach the Dask scheduler at {address} ({exc}); start one with "
                            "`dask scheduler` and workers with `dask worker ADDRESS`, or drop --cluster") from None
        info = self.client.scheduler_info()
        self.workers = max(1, len(info.get("workers", {})))
        if not info.get("workers"):
            self.client.wait_for_workers(1, timeout=30)
            self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        self.token = token
        self.payload = self.client.scatter(serialise(job), broadcast=True, hash=False)

    def run(self, tasks: list[tuple[int, int]], window: Window, combos: list | None = None) -> Iterator[ChunkResult]:
        from distributed import as_completed

        futures = [self.client.submit(_run_dask, self.token, self.payload, k0, k1, window, _part(combos, k0, k1),
                                      pure=False) for k0, k1 in tasks]
        try:
            for future in as_completed(futures, loop=self.client.loop):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        self.client.close()


def _bounded(submit: Any, tasks: list[tuple[int, int]], in_flight: int) -> Iterator[ChunkResult]:
    """Submit at most ``in_flight`` tasks at a time (results wait in memory only that long)."""
    pending: set[Future] = set()
    queue = iter(tasks)
    try:
        for k0, k1 in queue:
            pending.add(submit(k0, k1))
            if len(pending) >= in_flight:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    finally:
        for future in pending:
            future.cancel()


def make_runner(job: SweepJob, workers: int, cluster: str | None, token: str):
    """The executor for a sweep: Dask when ``cluster`` is given, else local processes (or in-process for 1)."""
    if cluster:
        return DaskCluster(job, cluster, token)
    if workers > 1:
        return LocalProcesses(job, workers, token)
    return InProcess(job)
