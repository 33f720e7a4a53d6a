"""A twin the service drives: workloads posted to the API enter the same scheduler that the
simulation and live mode use.

In ``sim`` mode the twin runs on the wall clock, ``speed`` simulated seconds per wall
second, as a sandbox where customers test integrations. Each tick the controller's step runs
as in a simulation, except that the jobs submitted through the API since the last tick join
the scheduler's arrivals (with the scenario's own synthetic demand, unless
``background_demand`` is off). After the tick the bridge reports the status of every API
job that changed (queued, running, completed, rejected) to a callback, which the service
writes to its database and passes on to ``callback_url`` subscribers.

Every tick the bridge also meters each API job's run time and the energy it is attributed
(:class:`EnergyRates`): per (GPU pool, use) the twin's GPU fleet draws a known IT energy in
the interval; each job gets the share its busy GPU-seconds are of that cell's, times the
facility's AI-hall PUE, priced at what the facility paid per kWh in the interval. So the
energy of all jobs adds up to the twin's GPU work energy (inference, batch, training uses;
spot and idle GPUs are no tenant's), and the cost to their share of the facility's bill.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.fleet import N_GPU_USES, GpuUse
from models.job_table import COMPLETED, QUEUED, REJECT_REASONS, REJECTED, RUNNING, JobBatch
from models.workload_types import (
    BATCH,
    REALTIME,
    TRAINING,
    TYPE_COUNT,
    TYPE_NAMES,
    WORKLOAD_SPECS,
    type_code,
)
from optimizer.interval_result import IntervalResult
from twin.controller import Controller, World
from twin.engine import build
from twin.recorder import Recorder
from twin.scenario import Scenario
from twin.service.twin_snapshot import TwinSnapshot, take_snapshot

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
    energy_kwh: float = 0.0
    """Facility energy attributed to it so far: its share of its GPUs' draw times the AI
    hall's PUE [kWh]."""
    energy_cost_usd: float = 0.0
    """That energy at what the facility paid per kWh in each interval [USD]."""
    run_wall_s: float = 0.0
    """Simulated time from its first start to its end (to now while unfinished) [s]."""


class BridgeController(Controller):
    """The controller whose arrivals include the API's workloads."""

    def __init__(self, *args: Any, bridge: TwinBridge, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bridge = bridge

    @property
    def last_interval(self) -> IntervalResult | None:
        """What the scheduler did in the last interval stepped (None before the first)."""
        return self._last_result

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
        self._tracked = _TrackedJobs()
        self._energy_rates = EnergyRates(self.world)
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

    @property
    def alive(self) -> bool:
        """Always true: an in-process twin runs as long as the service does."""
        return True

    def snapshot(self) -> TwinSnapshot:
        """What the API shows of the twin now (call between ticks)."""
        return take_snapshot(self)

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
        self._meter(self._index, self.sim_time_s + controller.interval_s)
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
        positions = np.flatnonzero(order < submitted)
        self._tracked.add(
            first_row + positions, [self._taken[s].workload_id for s in order[positions].tolist()]
        )

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

    def _meter(self, index: int, t1_s: float) -> None:
        """Add the run time each API job had in interval ``index`` (ending at ``t1_s``), and
        the energy and energy cost that time is attributed (see :class:`EnergyRates`)."""
        tracked = self._tracked
        result = self.controller.last_interval
        if len(tracked) == 0 or result is None:
            return
        jobs = self.world.jobs
        rows = tracked.rows
        status = jobs.status[rows]
        run_s = jobs.work_s[rows] - jobs.remaining_s[rows] + jobs.lost_work_s[rows]
        running = status == RUNNING
        run_s[running] += t1_s - jobs.segment_start_s[rows[running]]
        gpu_s = jobs.gpus[rows] * (run_s - tracked.run_s)
        tracked.run_s = run_s
        pool = jobs.pool[rows]
        placed = pool >= 0
        kwh_per_gpu_s, usd_per_kwh = self._energy_rates.interval(
            result, index, self.controller.recorder
        )
        kwh = np.zeros(len(tracked))
        kwh[placed] = gpu_s[placed] * kwh_per_gpu_s[pool[placed], jobs.type[rows[placed]]]
        tracked.energy_kwh += kwh
        facility = jobs.facility[rows[placed]]
        tracked.energy_cost_usd[placed] += kwh[placed] * usd_per_kwh[facility]

    def _updates(self) -> list[JobUpdate]:
        """Status changes of API workloads since the last tick (finished ones are then no
        longer tracked)."""
        tracked = self._tracked
        if len(tracked) == 0:
            return []
        jobs = self.world.jobs
        rows = tracked.rows
        status = jobs.status[rows]
        changed = np.flatnonzero(status != tracked.last_status)
        tracked.last_status[changed] = status[changed]
        now_s = self.sim_time_s
        first_start_s = jobs.start_s[rows]
        end_s = np.where(status == COMPLETED, jobs.end_s[rows], now_s)
        run_wall_s = np.where(np.isnan(first_start_s), 0.0, end_s - first_start_s)
        gpu_seconds = jobs.gpus[rows] * tracked.run_s
        facility_ids = self.world.facility_ids
        pools = self.world.pools
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
                    self.world.gpu_type_ids[pools[pool].gpu_type]
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

    def _run(self) -> None:
        tick_wall_s = self.controller.interval_s / self.speed
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.step()
            next_at += tick_wall_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))


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


_GPU_USES = {REALTIME: GpuUse.INFERENCE, BATCH: GpuUse.BATCH, TRAINING: GpuUse.TRAINING}
_USE_OF_TYPE = np.array([_GPU_USES.get(code, -1) for code in range(TYPE_COUNT)], dtype=np.int64)
"""GPU fleet use of each workload type code (-1: mining, no GPU use)."""


class EnergyRates:
    """Energy per busy GPU-second and energy price per facility in the last interval.

    Per GPU fleet cell ``c`` = (pool, use) of a work use, the interval's IT energy is the
    fleet's draw summed over the cell's GPUs, ``E_c = sum(power_w) * dt_s / 3.6e6`` [kWh]
    (labelled GPUs not busy draw idle power and are counted: they were held for the work).
    With ``B_c`` the busy GPU-seconds the scheduler ran in the cell and ``PUE_f`` the AI
    hall's PUE of its facility, a job with ``g`` GPU-seconds there is attributed
    ``g * E_c * PUE_f / B_c`` [kWh], so the jobs of a cell share its energy exactly. The
    price is the facility's energy cost over its energy in the interval, as the twin settled
    them (contract adder and fixed block included) [USD/kWh].

    Args:
        world: the twin's world (its GPU fleet and scheduler pools).
    """

    def __init__(self, world: World) -> None:
        fleet = world.gpu_fleet
        self._fleet = fleet
        self._device_cell = (
            np.repeat(np.arange(fleet.n_pools, dtype=np.int64), np.diff(fleet.pool_start))
            * N_GPU_USES
        )
        fleet_pool = np.array(
            [
                fleet.pool_index(pool.facility, world.gpu_type_ids[pool.gpu_type])
                if pool.is_gpu
                else -1
                for pool in world.pools
            ],
            dtype=np.int64,
        ).reshape(-1, 1)
        self._valid = (fleet_pool >= 0) & (_USE_OF_TYPE >= 0)
        """Which (scheduler pool, type) cells draw GPU power, ``[pools, TYPE_COUNT]``."""
        self._cell = (fleet_pool * N_GPU_USES + _USE_OF_TYPE)[self._valid]
        """Fleet cell of each valid (scheduler pool, type), in ``_valid`` order."""
        self._cell_pue_facility = np.repeat(fleet.pool_facility.astype(np.int64), N_GPU_USES)
        self._shape = self._valid.shape

    def interval(
        self, result: IntervalResult, index: int, recorder: Recorder
    ) -> tuple[np.ndarray, np.ndarray]:
        """The rates of interval ``index`` just stepped.

        Returns:
            ``[scheduler pools, TYPE_COUNT]`` facility energy per busy GPU-second [kWh/GPU-s]
            and ``[facilities]`` energy price [USD/kWh].
        """
        fleet = self._fleet
        n_cells = fleet.n_pools * N_GPU_USES
        it_kwh = np.bincount(
            self._device_cell + fleet.use, weights=fleet.power_w, minlength=n_cells
        ) * (result.duration_s / 3.6e6)
        busy_gpu_s = np.bincount(
            self._cell, weights=result.busy_unit_s[self._valid], minlength=n_cells
        )
        pue_ai = recorder.column("pue_ai")[index]
        facility_kwh = it_kwh * pue_ai[self._cell_pue_facility]
        per_gpu_s = np.divide(facility_kwh, busy_gpu_s, out=np.zeros(n_cells), where=busy_gpu_s > 0)
        kwh_per_gpu_s = np.zeros(self._shape)
        kwh_per_gpu_s[self._valid] = per_gpu_s[self._cell]
        energy_kwh = recorder.column("energy_mwh")[index] * 1000.0
        cost_usd = recorder.column("cost_energy_usd")[index]
        usd_per_kwh = np.divide(
            cost_usd, energy_kwh, out=np.zeros(energy_kwh.shape), where=energy_kwh > 0
        )
        return kwh_per_gpu_s, usd_per_kwh


__all__ = ["TYPE_NAMES", "BridgeJob", "EnergyRates", "JobUpdate", "TwinBridge"]
