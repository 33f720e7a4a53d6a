"""The hand-off between the service and a controller's scheduler: the API's workloads go in
as job rows, their status changes come back.

One :class:`WorkloadExchange` serves both the sandbox (:mod:`service.twin_bridge`, sim mode)
and live mode (:mod:`service.live_bridge`); the controller is the same in both except for its
clock and devices, so a workload is scheduled by the same code either way:

- the service calls :meth:`WorkloadExchange.submit` (any thread);
- the controller's ``arrivals()`` calls :meth:`WorkloadExchange.arrivals`, which turns the
  workloads submitted since the last tick into a :class:`models.job_table.JobBatch`
  submitted at the interval's start, merges it in time order with the scenario's own
  demand (unless ``background_demand`` is off) and notes which job rows are the API's;
- after each tick :meth:`WorkloadExchange.report` meters the run time and attributed energy
  of every API job (see the energy rate sources of each mode) and returns a
  :class:`JobUpdate` per workload whose status changed.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from models.job_table import COMPLETED, QUEUED, REJECT_REASONS, REJECTED, RUNNING, JobBatch
from models.workload_types import WORKLOAD_SPECS, type_code
from optimizer.interval_result import IntervalResult

if TYPE_CHECKING:
    from twin.controller import World

STATUS_TEXT = {QUEUED: "queued", RUNNING: "running", COMPLETED: "completed", REJECTED: "rejected"}

DEFAULT_CHECKPOINT_INTERVAL_S = 1800.0
"""Checkpoint period of a checkpointing workload that names none [s]."""

EnergyRateSource = Callable[[IntervalResult, int], tuple[np.ndarray, np.ndarray]]
"""The energy rates of the interval just stepped, given its scheduler result and index:
``[scheduler pools, TYPE_COUNT]`` facility energy per busy GPU-second [kWh/GPU-s] and
``[facilities]`` energy price [USD/kWh]."""


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
    energy_kwh: float = 0.0
    """Facility energy attributed to it so far: its share of its GPUs' draw times the AI
    hall's PUE [kWh]."""
    energy_cost_usd: float = 0.0
    """That energy at what the facility paid per kWh in each interval [USD]."""
    run_wall_s: float = 0.0
    """Twin time from its first start to its end (to now while unfinished) [s]."""


class WorkloadExchange:
    """Workloads in from the service, status changes out (see the module docstring).

    Args:
        background_demand: keep the scenario's synthetic demand running beside the API's.
    """

    def __init__(self, background_demand: bool = True) -> None:
        self.background_demand = background_demand
        self._lock = threading.Lock()
        self._pending: list[BridgeJob] = []
        self._customers: dict[str, int] = {}
        self._tracked = _TrackedJobs()

    def submit(self, job: BridgeJob) -> None:
        """Queue a workload for the next tick (thread-safe)."""
        with self._lock:
            self._pending.append(job)

    # ------------------------------------------------------------------ controller side

    def arrivals(
        self,
        world: World,
        generate: Callable[[float, float], JobBatch],
        t0_s: float,
        t1_s: float,
    ) -> JobBatch:
        """The jobs arriving in ``[t0_s, t1_s)`` [s]: the API's submissions since the last
        tick (submitted at ``t0_s``) merged in time order with ``generate``'s (the
        scenario's demand, skipped without background demand). Call it from the
        controller's ``arrivals()``, right before the batch is appended to ``world.jobs``."""
        generated = generate(t0_s, t1_s) if self.background_demand else None
        with self._lock:
            jobs, self._pending = self._pending, []
        submitted = self._batch(world, jobs, t0_s)
        merged = JobBatch.concat([submitted] + ([generated] if generated is not None else []))
        order = np.argsort(merged.submit_s, kind="stable")
        positions = np.flatnonzero(order < len(submitted))
        self._tracked.add(
            len(world.jobs) + positions,
            [jobs[s].workload_id for s in order[positions].tolist()],
        )
        return merged.take(order)

    def report(
        self,
        world: World,
        index: int,
        result: IntervalResult | None,
        t1_s: float,
        energy_rates: EnergyRateSource,
    ) -> list[JobUpdate]:
        """After the tick ``index`` that ended at ``t1_s`` [s]: meter each API job's run time
        and attributed energy, then return the status changes since the last report
        (finished jobs are then no longer tracked)."""
        self._meter(world, index, result, t1_s, energy_rates)
        return self._updates(world, t1_s)

    # ------------------------------------------------------------------ internals

    def _batch(self, world: World, jobs: list[BridgeJob], t0_s: float) -> JobBatch:
        """``jobs`` as a job batch submitted at ``t0_s`` [s]."""
        if not jobs:
            return JobBatch.empty()
        gpu_names = world.generator.gpu_type_names
        codes = [type_code(j.workload_type) for j in jobs]
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
            customer=[self._customer_index(world, j.customer) for j in jobs],
            submit_s=np.full(len(jobs), t0_s),
            work_s=[j.work_s for j in jobs],
            gpus=[j.gpus for j in jobs],
            gpu_type=[
                -1 if j.gpu_type is None else _gpu_index(gpu_names, j.gpu_type) for j in jobs
            ],
            hashrate_ths=[j.hashrate_ths for j in jobs],
            deadline_s=deadlines,
            checkpoint_interval_s=[
                (j.checkpoint_interval_s or DEFAULT_CHECKPOINT_INTERVAL_S)
                if WORKLOAD_SPECS[c].checkpoints
                else math.inf
                for j, c in zip(jobs, codes, strict=True)
            ],
            price_usd_per_gpu_hour=[j.price_usd_per_gpu_hour for j in jobs],
        )

    def _customer_index(self, world: World, customer: str) -> int:
        """The scheduler's index of an API customer: after the scenario's own customers."""
        index = self._customers.get(customer)
        if index is None:
            index = len(world.customers) + len(self._customers)
            self._customers[customer] = index
        return index

    def _meter(
        self,
        world: World,
        index: int,
        result: IntervalResult | None,
        t1_s: float,
        energy_rates: EnergyRateSource,
    ) -> None:
        """Add the run time each API job had in interval ``index`` (ending at ``t1_s``), and
        the energy and energy cost that time is attributed at ``energy_rates``."""
        tracked = self._tracked
        if len(tracked) == 0 or result is None:
            return
        jobs = world.jobs
        rows = tracked.rows
        status = jobs.status[rows]
        run_s = jobs.work_s[rows] - jobs.remaining_s[rows] + jobs.lost_work_s[rows]
        running = status == RUNNING
        run_s[running] += t1_s - jobs.segment_start_s[rows[running]]
        gpu_s = jobs.gpus[rows] * (run_s - tracked.run_s)
        tracked.run_s = run_s
        pool = jobs.pool[rows]
        placed = pool >= 0
        kwh_per_gpu_s, usd_per_kwh = energy_rates(result, index)
        kwh = np.zeros(len(tracked))
        kwh[placed] = gpu_s[placed] * kwh_per_gpu_s[pool[placed], jobs.type[rows[placed]]]
        tracked.energy_kwh += kwh
        facility = jobs.facility[rows[placed]]
        tracked.energy_cost_usd[placed] += kwh[placed] * usd_per_kwh[facility]

    def _updates(self, world: World, now_s: float) -> list[JobUpdate]:
        """Status changes of API workloads since the last report, as of ``now_s`` [s]."""
        tracked = self._tracked
        if len(tracked) == 0:
            return []
        jobs = world.jobs
        rows = tracked.rows
        status = jobs.status[rows]
        changed = np.flatnonzero(status != tracked.last_status)
        tracked.last_status[changed] = status[changed]
        first_start_s = jobs.start_s[rows]
        end_s = np.where(status == COMPLETED, jobs.end_s[rows], now_s)
        run_wall_s = np.where(np.isnan(first_start_s), 0.0, end_s - first_start_s)
        gpu_seconds = jobs.gpus[rows] * tracked.run_s
        facility_ids = world.facility_ids
        pools = world.pools
        updates = []
        for i in changed.tolist():
            row = int(rows[i])
            code = int(status[i])
            facility = int(jobs.facility[row])
            pool = int(jobs.pool[row])
            updates.append(
                JobUpdate(
                    str(tracked.ids[i]),
                    STATUS_TEXT[code],
                    facility_ids[facility] if facility >= 0 else None,
                    now_s,
                    float(jobs.revenue_usd[row]),
                    REJECT_REASONS[int(jobs.reject_reason[row])] if code == REJECTED else "",
                    float(gpu_seconds[i]),
                    world.gpu_type_ids[pools[pool].gpu_type]
                    if pool >= 0 and pools[pool].is_gpu
                    else None,
                    float(tracked.energy_kwh[i]),
                    float(tracked.energy_cost_usd[i]),
                    float(run_wall_s[i]),
                )
            )
        finished = (status == COMPLETED) | (status == REJECTED)
        if finished.any():
            tracked.keep(~finished)
        return updates


def _gpu_index(names: list[str], gpu_type: str) -> int:
    """The scheduler's index of a GPU type name; an unknown one is added, and the scheduler
    rejects its jobs (no pool has that type)."""
    if gpu_type not in names:
        names.append(gpu_type)
    return names.index(gpu_type)


class _TrackedJobs:
    """The API's workloads in the twin's job table, one entry per workload in each column.

    Attributes:
        rows: job table row.
        ids: API workload id (object array of str).
        last_status: job status last reported (-1: none yet).
        run_s: run time metered so far, work later lost included [s].
        energy_kwh: facility energy attributed so far [kWh].
        energy_cost_usd: its cost at the facility's price [USD].
    """

    def __init__(self) -> None:
        self.rows = np.zeros(0, dtype=np.int64)
        self.ids = np.zeros(0, dtype=object)
        self.last_status = np.zeros(0, dtype=np.int8)
        self.run_s = np.zeros(0)
        self.energy_kwh = np.zeros(0)
        self.energy_cost_usd = np.zeros(0)

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def add(self, rows: np.ndarray, ids: list[str]) -> None:
        """Track new jobs at ``rows`` for workloads ``ids``, nothing metered yet."""
        n = len(ids)
        if n == 0:
            return
        self.rows = np.concatenate([self.rows, np.asarray(rows, dtype=np.int64)])
        self.ids = np.concatenate([self.ids, np.array(ids, dtype=object)])
        self.last_status = np.concatenate([self.last_status, np.full(n, -1, dtype=np.int8)])
        self.run_s = np.concatenate([self.run_s, np.zeros(n)])
        self.energy_kwh = np.concatenate([self.energy_kwh, np.zeros(n)])
        self.energy_cost_usd = np.concatenate([self.energy_cost_usd, np.zeros(n)])

    def keep(self, mask: np.ndarray) -> None:
        """Keep only the jobs where ``mask`` is True."""
        self.rows = self.rows[mask]
        self.ids = self.ids[mask]
        self.last_status = self.last_status[mask]
        self.run_s = self.run_s[mask]
        self.energy_kwh = self.energy_kwh[mask]
        self.energy_cost_usd = self.energy_cost_usd[mask]
