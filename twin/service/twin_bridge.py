"""A twin the service drives: workloads posted to the API enter the same scheduler that the
simulation and live mode use.

In ``sim`` mode the twin runs on the wall clock, ``speed`` simulated seconds per wall
second, as a sandbox where customers test integrations. Each tick the controller's step runs
as in a simulation, except that the jobs submitted through the API since the last tick join
the scheduler's arrivals (with the scenario's own synthetic demand, unless
``background_demand`` is off). After the tick the bridge reports the status of every API
job that changed (queued, running, completed, rejected) to a callback, which the service
writes to its database and passes on to ``callback_url`` subscribers.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.job_table import COMPLETED, QUEUED, REJECT_REASONS, REJECTED, RUNNING, JobBatch
from models.workload_types import TYPE_NAMES, WORKLOAD_SPECS, type_code
from twin.controller import Controller
from twin.engine import build
from twin.scenario import Scenario

STATUS_TEXT = {QUEUED: "queued", RUNNING: "running", COMPLETED: "completed", REJECTED: "rejected"}


@dataclass(frozen=True, slots=True)
class BridgeJob:
    """A workload handed to the twin.

    Attributes:
        workload_id: the API's id.
        customer: the API customer id (mapped to a scheduler customer index).
        workload_type: PRD type name.
        gpus: gang size (0 for mining).
        gpu_type: catalog GPU type or None (any).
        hashrate_ths: mining hashrate [TH/s].
        work_s: run time at full speed [s].
        deadline_s: seconds after submission to complete by (None: the type's default).
        checkpoint_interval_s: checkpoint period [s] (None: the type's default).
        price_usd_per_gpu_hour: what the customer pays per GPU-hour.
    """

    workload_id: str
    customer: str
    workload_type: str
    gpus: int
    gpu_type: str | None
    hashrate_ths: float
    work_s: float
    deadline_s: float | None
    checkpoint_interval_s: float | None
    price_usd_per_gpu_hour: float


@dataclass(frozen=True, slots=True)
class JobUpdate:
    """A status change of an API workload in the twin."""

    workload_id: str
    status: str
    facility_id: str | None
    sim_time_s: float
    revenue_usd: float
    reason: str = ""
    gpu_seconds: float = 0.0
    """GPU time the workload used so far, lost work redone included [GPU-s]."""
    gpu_type: str | None = None
    """GPU type it ran on (None: not placed)."""


class BridgeController(Controller):
    """The controller whose arrivals include the API's workloads."""

    def __init__(self, *args: Any, bridge: TwinBridge, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bridge = bridge

    def arrivals(self, t0_s: float, t1_s: float) -> JobBatch:
        """The API's submissions since the last tick, merged in time order with the
        scenario's demand (unless the bridge runs without it); notes which rows they get."""
        bridge = self.bridge
        generated = super().arrivals(t0_s, t1_s) if bridge.background_demand else None
        submitted = bridge.take_submissions(t0_s)
        merged = JobBatch.concat([submitted] + ([generated] if generated is not None else []))
        order = np.argsort(merged.submit_s, kind="stable")
        bridge.note_rows(len(self.world.jobs), order, len(submitted))
        return merged.take(order)


class TwinBridge:
    """Runs a twin on the wall clock and exchanges workloads with the service.

    Args:
        scenario: the sandbox scenario.
        speed: simulated seconds per wall second [-].
        on_update: called with each batch of status changes of API workloads.
        background_demand: keep the scenario's synthetic demand running beside the API's.
    """

    def __init__(
        self,
        scenario: Scenario,
        speed: float = 60.0,
        on_update: Callable[[list[JobUpdate]], None] | None = None,
        background_demand: bool = True,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed: must be > 0, got {speed}")
        self.scenario = scenario
        self.speed = speed
        self.on_update = on_update
        self.background_demand = background_demand
        twin = build(scenario)
        self.world = twin.world
        base = twin.controller
        self.controller = BridgeController(
            base.world, base.policy, base.asic_driver, base.gpu_driver, base.recorder, bridge=self
        )
        self._lock = threading.Lock()
        self._pending: list[BridgeJob] = []
        self._customers: dict[str, int] = {}
        self._rows: dict[int, str] = {}
        """Job row -> API workload id."""
        self._last_status: dict[str, int] = {}
        self._index = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ service side

    @property
    def sim_time_s(self) -> float:
        """Simulated time reached [s since the scenario start]."""
        return self._index * self.controller.interval_s

    def submit(self, job: BridgeJob) -> None:
        """Queue a workload for the next tick (thread-safe)."""
        with self._lock:
            self._pending.append(job)

    def start(self) -> None:
        """Run ticks on a background thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name="twin-bridge", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current tick."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30.0)

    def step(self) -> list[JobUpdate]:
        """Run one tick now (the thread calls this; tests may too)."""
        controller = self.controller
        if self._index >= controller.n_intervals:
            return []
        t0_s = self.sim_time_s
        controller.step(self._index, t0_s)
        self._index += 1
        updates = self._updates()
        if updates and self.on_update is not None:
            self.on_update(updates)
        return updates

    # ------------------------------------------------------------------ controller side

    def take_submissions(self, t0_s: float) -> JobBatch:
        """The API's submissions since the last tick as a job batch submitted at ``t0_s``."""
        with self._lock:
            jobs, self._pending = self._pending, []
        self._taken = jobs
        if not jobs:
            return JobBatch.empty()
        gpu_names = self.world.generator.gpu_type_names
        codes = [type_code(j.workload_type) for j in jobs]
        n = len(jobs)
        deadlines = []
        for job, code in zip(jobs, codes, strict=True):
            if job.deadline_s is not None:
                deadlines.append(t0_s + job.deadline_s)
            elif WORKLOAD_SPECS[code].has_deadline:
                deadlines.append(t0_s + 4.0 * job.work_s)
            else:
                deadlines.append(math.inf)
        return JobBatch.from_columns(
            type=codes,
            customer=[self._customer_index(j.customer) for j in jobs],
            submit_s=np.full(n, t0_s),
            work_s=[j.work_s for j in jobs],
            gpus=[j.gpus for j in jobs],
            gpu_type=[
                -1 if j.gpu_type is None else self._gpu_index(gpu_names, j.gpu_type) for j in jobs
            ],
            hashrate_ths=[j.hashrate_ths for j in jobs],
            deadline_s=deadlines,
            checkpoint_interval_s=[
                (j.checkpoint_interval_s or 1800.0) if WORKLOAD_SPECS[c].checkpoints else math.inf
                for j, c in zip(jobs, codes, strict=True)
            ],
            price_usd_per_gpu_hour=[j.price_usd_per_gpu_hour for j in jobs],
        )

    def note_rows(self, first_row: int, order: np.ndarray, submitted: int) -> None:
        """Remember which job rows hold API workloads (``order`` sorted the merged batch;
        positions below ``submitted`` were the API's)."""
        for position, source in enumerate(order.tolist()):
            if source < submitted:
                self._rows[first_row + position] = self._taken[source].workload_id

    # ------------------------------------------------------------------ internals

    def _customer_index(self, customer: str) -> int:
        index = self._customers.get(customer)
        if index is None:
            index = len(self.world.customers) + len(self._customers)
            self._customers[customer] = index
        return index

    @staticmethod
    def _gpu_index(names: list[str], gpu_type: str) -> int:
        if gpu_type not in names:
            names.append(gpu_type)  # the scheduler rejects it: no pool has this type
        return names.index(gpu_type)

    def _updates(self) -> list[JobUpdate]:
        """Status changes of API workloads since the last tick."""
        jobs = self.world.jobs
        updates = []
        facility_ids = self.world.facility_ids
        for row, workload_id in list(self._rows.items()):
            status = int(jobs.status[row])
            if self._last_status.get(workload_id) == status:
                continue
            self._last_status[workload_id] = status
            facility = int(jobs.facility[row])
            reason = REJECT_REASONS[int(jobs.reject_reason[row])] if status == REJECTED else ""
            pool = int(jobs.pool[row])
            gpu_type = (
                self.world.gpu_type_ids[self.world.pools[pool].gpu_type]
                if pool >= 0 and self.world.pools[pool].is_gpu
                else None
            )
            used_s = float(jobs.work_s[row] + jobs.lost_work_s[row]) if status == COMPLETED else 0.0
            updates.append(
                JobUpdate(
                    workload_id,
                    STATUS_TEXT[status],
                    facility_ids[facility] if facility >= 0 else None,
                    self.sim_time_s,
                    float(jobs.revenue_usd[row]),
                    reason,
                    float(jobs.gpus[row]) * used_s,
                    gpu_type,
                )
            )
            if status in (COMPLETED, REJECTED):
                del self._rows[row]
        return updates

    def _run(self) -> None:
        tick_wall_s = self.controller.interval_s / self.speed
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.step()
            next_at += tick_wall_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))


__all__ = ["TYPE_NAMES", "BridgeJob", "JobUpdate", "TwinBridge"]
