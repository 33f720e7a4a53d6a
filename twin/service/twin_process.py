"""The service's twin in its own process, so the API never shares a core (or Python's GIL)
with the simulation or the live loop.

:class:`TwinProcess` offers what the API needs of a twin (``submit``, ``on_update``,
``snapshot``, ``scenario``) and runs it in a child process started with ``spawn``, in one of
two modes:

- **sim**: a :class:`service.twin_bridge.TwinBridge` ticking on the wall clock, ``speed``
  simulated seconds per wall second (the sandbox);
- **live**: :func:`twin.live.run_live` with a :class:`service.live_bridge.LiveBridgeController`
  ticking every ``tick_s`` wall seconds against emulated or real miners. The child owns the
  emulated miner farms it starts; they stop with it (and die with it if it is killed).

Both hand the API's workloads to the scheduler through a
:class:`service.workload_exchange.WorkloadExchange`. Messages over one pipe:

- parent -> child: ``("jobs", [BridgeJob, ...])`` (submitted workloads) and ``("stop",)``;
- child -> parent: ``("ready", TwinSnapshot)`` once the twin runs (live mode: after its
  first tick), then after every tick ``("tick", [JobUpdate, ...], TwinSnapshot)``; or
  ``("failed", reason)`` if it could not start. With a ``status_feed`` the child sends
  each tick's status changes to the service's writer process instead
  (:class:`service.status_sync.StatusFeed`) and an empty list here: the API process then
  spends nothing on them.

A reader thread in the parent hands each tick's updates to ``on_update`` and keeps the
latest snapshot. The child exits when the parent does (end of the pipe, and on Linux a
parent-death signal), so a SIGKILLed service leaves no twin behind. If the child dies the
service reports it on ``/healthz``; workloads it held are still queued or running in the
database and are handed to the next twin at restart.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from twin.scenario import Scenario
from twin.service.child_process import die_with_parent, start_child
from twin.service.status_sync import StatusFeed
from twin.service.twin_bridge import TwinBridge
from twin.service.twin_snapshot import TwinSnapshot
from twin.service.workload_exchange import BridgeJob, JobUpdate, WorkloadExchange

if TYPE_CHECKING:
    from twin.live import LiveOptions

LOG = logging.getLogger("hcp.service.twin")


class TwinProcessError(RuntimeError):
    """The twin process did not start or stopped answering."""


class TwinProcess:
    """The service's twin, sim or live, running in a child process (see the module
    docstring).

    Args:
        scenario: the twin's scenario.
        speed: sim mode: simulated seconds per wall second [-] (live mode: unused, the
            clock is the wall's and ``live.speed`` replays the price signal).
        background_demand: keep the scenario's synthetic demand running.
        start_timeout_s: how long :meth:`start` waits for the twin to run [s].
        live: run live mode with these options (None: sim mode).
        status_feed: have the twin's process send its status changes down this pipe to
            the writer process (None: send them to ``on_update`` in this process).
    """

    def __init__(
        self,
        scenario: Scenario,
        speed: float = 60.0,
        background_demand: bool = True,
        start_timeout_s: float = 180.0,
        live: LiveOptions | None = None,
        status_feed: StatusFeed | None = None,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed: must be > 0, got {speed}")
        self.scenario = scenario
        self.speed = speed
        self.background_demand = background_demand
        self.start_timeout_s = start_timeout_s
        self.live = live
        self.status_feed = status_feed
        self.on_update: Callable[[list[JobUpdate]], None] | None = None
        self._snapshot: TwinSnapshot | None = None
        self._early: list[BridgeJob] = []
        self._send_lock = threading.Lock()
        self._connection: Connection | None = None
        self._process: Any = None
        self._reader: threading.Thread | None = None
        self._alive = False

    # ------------------------------------------------------------------ the API's side

    @property
    def alive(self) -> bool:
        """Whether the twin process is running and answering."""
        return self._alive

    def snapshot(self) -> TwinSnapshot:
        """The twin as of its last tick."""
        if self._snapshot is None:
            raise TwinProcessError("the twin process has not started")
        return self._snapshot

    @property
    def sim_time_s(self) -> float:
        """Simulated time reached [s since the scenario start]."""
        return self.snapshot().sim_time_s

    def submit(self, job: BridgeJob) -> None:
        """Hand a workload to the twin for its next tick (thread-safe; kept until start)."""
        with self._send_lock:
            if self._connection is None:
                self._early.append(job)
                return
            try:
                self._connection.send(("jobs", [job]))
            except OSError as error:  # the twin died; the database still holds the job
                LOG.error("twin process unreachable; %s stays queued: %s", job.workload_id, error)

    def start(self) -> None:
        """Start the child, wait until its twin is built, then start the reader thread.

        Raises:
            TwinProcessError: the twin did not come up within ``start_timeout_s``.
        """
        self._process, parent_end, detail = start_child(
            _run_child,
            (
                self.scenario,
                self.speed,
                self.background_demand,
                self.live,
                self.status_feed,
            ),
            name="hcp-twin",
            what="the twin",
            timeout_s=self.start_timeout_s,
            error=TwinProcessError,
        )
        self._snapshot = detail
        with self._send_lock:
            self._connection = parent_end
            early, self._early = self._early, []
            if early:
                parent_end.send(("jobs", early))
        self._alive = True
        self._reader = threading.Thread(
            target=self._read, args=(parent_end,), name="twin-reader", daemon=True
        )
        self._reader.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Ask the twin to stop after its current tick; kill it if it does not."""
        with self._send_lock:
            if self._connection is not None:
                with contextlib.suppress(OSError):  # already gone
                    self._connection.send(("stop",))
        if self._process is not None:
            self._process.join(timeout_s)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(5.0)
        if self._reader is not None:
            self._reader.join(5.0)
        self._alive = False

    def _read(self, connection: Connection) -> None:
        """Deliver each tick's updates and keep its snapshot, until the pipe closes."""
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):
                break
            if message[0] != "tick":
                continue
            _, updates, snapshot = message
            self._snapshot = snapshot
            callback = self.on_update
            if updates and callback is not None:
                try:
                    callback(updates)
                except Exception:  # a failed write must not stop the next ticks' updates
                    LOG.exception("applying %d status changes of the twin failed", len(updates))
        self._alive = False
        LOG.warning("the twin process has stopped")


# ---------------------------------------------------------------------- child process


def _run_child(
    connection: Connection,
    scenario: Scenario,
    speed: float,
    background: bool,
    live: LiveOptions | None,
    status_feed: StatusFeed | None,
) -> None:
    """The child's main function: run the sim or live twin until ``stop`` or until the
    parent goes away."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    deliver = _deliverer(connection, status_feed)
    if live is None:
        _run_sim(connection, scenario, speed, background, deliver)
    else:
        _run_live(connection, scenario, live, WorkloadExchange(background), deliver)


Deliver = Callable[[list[JobUpdate], TwinSnapshot], None]
"""Sends one tick's outcome to the parent (raises OSError once the parent is gone)."""


def _deliverer(connection: Connection, status_feed: StatusFeed | None) -> Deliver:
    """After each tick: the status changes go down the status feed (if any) or to the
    parent with the snapshot."""
    apply = status_feed.open() if status_feed is not None else None

    def deliver(updates: list[JobUpdate], snapshot: TwinSnapshot) -> None:
        if apply is not None:
            apply(updates)
            updates = []
        connection.send(("tick", updates, snapshot))

    return deliver


def _run_sim(
    connection: Connection, scenario: Scenario, speed: float, background: bool, deliver: Deliver
) -> None:
    """Build the sandbox twin, then tick on the wall clock, taking jobs from the pipe
    between ticks."""
    bridge = TwinBridge(scenario, speed=speed, background_demand=background)
    connection.send(("ready", bridge.snapshot()))
    tick_wall_s = bridge.controller.interval_s / speed
    next_tick_at = time.monotonic() + tick_wall_s
    while True:
        wait_s = max(0.0, next_tick_at - time.monotonic())
        try:
            if connection.poll(wait_s):
                message = connection.recv()
                if message[0] == "stop":
                    return
                for job in message[1]:
                    bridge.submit(job)
                continue
            deliver(bridge.step(), bridge.snapshot())
        except (EOFError, OSError):
            return  # the parent is gone
        next_tick_at += tick_wall_s


def _run_live(
    connection: Connection,
    scenario: Scenario,
    options: LiveOptions,
    exchange: WorkloadExchange,
    deliver: Deliver,
) -> None:
    """Run the live loop with the API's workloads until ``stop``; a thread takes jobs from
    the pipe meanwhile. The loop reports ``ready`` after its first tick (devices found,
    prices polled), then every tick."""
    from twin.live import LiveError, run_live  # pyasic and the emulators: live mode only
    from twin.service.live_bridge import LiveBridgeController

    stop = threading.Event()
    threading.Thread(
        target=_take_messages, args=(connection, exchange, stop), name="twin-inbox", daemon=True
    ).start()
    ready: list[bool] = []

    def report(updates: list[JobUpdate], snapshot: TwinSnapshot) -> None:
        try:
            if not ready:
                connection.send(("ready", snapshot))
                ready.append(True)
            deliver(updates, snapshot)
        except OSError:
            stop.set()  # the parent is gone

    factory = functools.partial(LiveBridgeController, exchange=exchange, on_report=report)
    try:
        run_live(scenario, options, stop=stop, controller_factory=factory)
    except LiveError as error:
        with contextlib.suppress(OSError):
            connection.send(("failed", str(error)))


def _take_messages(
    connection: Connection, exchange: WorkloadExchange, stop: threading.Event
) -> None:
    """Hand the parent's jobs to ``exchange`` until it says ``stop`` or goes away."""
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            break
        if message[0] == "stop":
            break
        for job in message[1]:
            exchange.submit(job)
    stop.set()
