"""Running the runs of a sweep: in this process, or on Dask distributed.

:func:`simulate_run` is the unit of work: it simulates one run and returns only its KPIs
(no time series travel back). It never raises for a run that fails: the failure comes back
as a :class:`RunOutcome` with the error, so one bad run does not stop the others.

Executors (:class:`SerialExecutor`, :class:`DaskExecutor`) call ``on_done`` in this process
as each run finishes, in completion order; the caller stores and orders the results, so
they do not depend on the executor or the number of workers.

:class:`DaskExecutor` starts a ``LocalCluster`` of ``workers`` processes with one thread
each (the simulation is CPU-bound Python, so threads would share one GIL), or connects to
an existing scheduler (``tcp://host:8786``) whose workers have this project installed.
Pending runs are cancelled and the client and the cluster closed, in that order, on every
exit, Ctrl-C included.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import signal
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from twin.sweep.grid import SweepInputError
from twin.sweep.plan import RunSpec, spec_scenario

CONNECT_TIMEOUT_S = 10.0
SCHEDULER_ADDRESS = re.compile(r"((tcp|tls|ws|wss|ucx)://)?[A-Za-z0-9.\-\[\]:]+:\d{1,5}/?")
"""``[scheme://]host:port`` of a Dask scheduler."""
"""How long to wait for a ``--scheduler`` to answer [s]."""


@dataclass(frozen=True)
class RunOutcome:
    """What a run sends back: its KPIs (``kpis.json`` content), or the error it failed
    with (``ErrorType: message``) and where (the innermost project frame)."""

    run_key: str
    kpis: dict[str, Any] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the run finished."""
        return self.error is None


OnDone = Callable[[RunOutcome], None]


def simulate_run(spec: RunSpec, keep_dir: str | None = None) -> RunOutcome:
    """Simulate one run and return its KPIs; with ``keep_dir``, also write its full results
    folder there (a path the worker can write). A run that raises is returned as a failure.
    """
    from twin.engine import build  # on a worker: imported once per process

    try:
        twin = build(spec_scenario(spec))
        result = twin.run()
        if keep_dir is not None:
            result.write(Path(keep_dir))
    except Exception as error:  # reported to the user with the run's parameters
        return RunOutcome(spec.run_key, error=describe_error(error))
    return RunOutcome(spec.run_key, kpis=result.kpis)


def describe_error(error: BaseException) -> str:
    """``ErrorType: message (file:line)`` with the innermost frame of the traceback."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


class SweepExecutor(Protocol):
    """Runs specs and reports each outcome as it arrives."""

    def run(self, specs: Sequence[RunSpec], keep_dirs: Mapping[str, str], on_done: OnDone) -> None:
        """Run every spec; ``keep_dirs`` maps a run key to its results folder (only runs
        whose folder is kept)."""


class SerialExecutor:
    """Runs every spec in this process, one after another (no Dask)."""

    def run(self, specs: Sequence[RunSpec], keep_dirs: Mapping[str, str], on_done: OnDone) -> None:
        """See :class:`SweepExecutor`."""
        for spec in specs:
            on_done(simulate_run(spec, keep_dirs.get(spec.run_key)))


class DaskExecutor:
    """Runs specs on Dask distributed: a local cluster or an existing scheduler."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None) -> None:
        """``workers``: worker processes of the local cluster (default: the CPUs this
        process may use, at most one per run); ``scheduler``: the address of a running
        scheduler instead (then ``workers`` must be None).

        Raises:
            SweepInputError: Dask distributed is not installed, both given, fewer than one
                worker, or an address that is not ``[scheme://]host:port``.
        """
        if importlib.util.find_spec("distributed") is None:
            raise SweepInputError(
                "the sweep runs on Dask: pip install -e '.[cluster]' (or use --workers 0 to "
                "run in this process)"
            )
        if workers is not None and scheduler is not None:
            raise SweepInputError("--workers and --scheduler: give one or the other")
        if workers is not None and workers < 1:
            raise SweepInputError(f"--workers {workers}: must be at least 1")
        if scheduler is not None and not SCHEDULER_ADDRESS.fullmatch(scheduler):
            raise SweepInputError(
                f"--scheduler {scheduler}: expected [tcp://]host:port, e.g. tcp://10.0.0.5:8786"
            )
        self.workers = workers
        self.scheduler = scheduler

    def run(self, specs: Sequence[RunSpec], keep_dirs: Mapping[str, str], on_done: OnDone) -> None:
        """See :class:`SweepExecutor`.

        Raises:
            SweepInputError: the scheduler cannot be reached.
        """
        if not specs:
            return
        if self.scheduler is not None:
            self._run_on_scheduler(specs, keep_dirs, on_done)
            return
        from distributed import Client, LocalCluster

        workers = self.workers or min(available_cpus(), len(specs))
        with _sigint_ignored():  # the worker processes inherit it; see _sigint_ignored
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                # no dashboard; the scheduler's small HTTP server (health, metrics) on a
                # free local port, as the default 8787 may be taken by another cluster
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.ERROR,
            )
        with cluster, Client(cluster, set_as_default=False) as client:
            _submit_and_collect(client, specs, keep_dirs, on_done)

    def _run_on_scheduler(
        self, specs: Sequence[RunSpec], keep_dirs: Mapping[str, str], on_done: OnDone
    ) -> None:
        from distributed import Client

        try:
            client = Client(self.scheduler, set_as_default=False, timeout=CONNECT_TIMEOUT_S)
        except OSError as error:  # distributed raises OSError subclasses on connect
            raise SweepInputError(f"--scheduler {self.scheduler}: {error}") from None
        with client:
            _submit_and_collect(client, specs, keep_dirs, on_done)


def _submit_and_collect(
    client: Any, specs: Sequence[RunSpec], keep_dirs: Mapping[str, str], on_done: OnDone
) -> None:
    """Submit one task per spec and hand each outcome to ``on_done`` as it completes;
    whatever is still pending on the way out (an error, Ctrl-C) is cancelled."""
    from distributed import as_completed

    futures = client.map(
        simulate_run,
        list(specs),
        [keep_dirs.get(spec.run_key) for spec in specs],
        key=[f"sweep-run-{spec.run_key}" for spec in specs],
        pure=False,
    )
    key_of = {future.key: spec.run_key for future, spec in zip(futures, specs, strict=True)}
    try:
        for future in as_completed(futures, loop=client.loop):
            on_done(_outcome(future, key_of[future.key]))
    finally:
        client.cancel(futures)


def _outcome(future: Any, run_key: str) -> RunOutcome:
    """A future's outcome; a task lost to Dask itself (a killed worker, say) is a failure
    of that run."""
    if future.status == "finished":
        result = future.result()
        if isinstance(result, RunOutcome):
            return result
        return RunOutcome(run_key, error=f"unexpected result type {type(result).__name__}")
    if future.status == "cancelled":
        return RunOutcome(run_key, error="cancelled by the scheduler")
    error = future.exception()
    return RunOutcome(run_key, error=describe_error(error))


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while a local cluster starts its worker processes.

    Ctrl-C in a terminal interrupts the whole process group. Worker processes started
    while SIGINT is ignored keep ignoring it (the disposition survives exec, and Python
    then installs no KeyboardInterrupt handler), so they do not die mid-run with
    tracebacks: this process alone gets the KeyboardInterrupt and closes the cluster,
    which stops them. A Ctrl-C during the start itself is lost (the start takes seconds).
    Only the main thread can change signal handlers; elsewhere nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def available_cpus() -> int:
    """CPUs this process may run on (at least 1)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
