"""Job scheduler: admission, placement on pools, preemption, per-interval accounting.

Pure: no SimPy, no IO, no clock. The controller calls :meth:`Scheduler.run_interval` once per
dispatch interval with the limits its plan allows; inside the interval the scheduler plays
the events in time order (completions from a heap, arrivals from the job table, which is
sorted by submission time) and places work the moment room appears.

Rules (the scenario's ``scheduling`` block sets the numbers):

* **Admission.** A job that could never run is rejected on arrival with the reason: its GPU
  type is in no pool, its gang needs more GPUs than any matching pool has installed (a gang
  runs in one pool, all GPUs or none), it asks for more TH/s than any facility's ASICs
  provide, or no site meets its customer's data residency or its realtime latency budget.
* **Routing.** Each job may use the pools ``optimizer.routing`` lists for its type, GPU
  type and customer (region, residency), in preference order: realtime by latency, other
  work by energy cost at the site plus data transfer. It goes to the first with room. Work
  placed outside the customer's region first moves its data (``transfer_s`` added to its
  run).
* **Order of waiting jobs.** By priority number, lowered by one level per ``aging_s``
  waited (not past 2: only realtime inference has level 1), adjusted for quotas and
  reserved capacity, then by fair-share start tag (``optimizer.fair_share``: weighted fair
  sharing between customers). A job that does not fit lets smaller jobs past it (backfill),
  except that once a queue head has waited ``starvation_s`` its pools stop taking smaller
  work of lower rank until it fits (no starvation of large gangs). A job that fits on
  arrival starts at its submission instant, so realtime inference waits 0 s whenever there
  is room.
* **Deferral.** On a pool flagged as expensive this interval, batch inference and training
  do not start unless waiting longer would miss their deadline.
* **Preemption.** A realtime job that finds no room stops the cheapest interruptible GPU jobs
  of a candidate pool (lowest priority, then least work since the last checkpoint, in
  GPU-seconds; see ``optimizer.running_set``), sparing jobs (re)started less than
  ``min_runtime_s`` ago. When a limit falls below the busy count at an interval start,
  interruptible jobs are stopped the same way (recently started ones last) until the pool is
  within the limit; non-interruptible work keeps running and the excess is reported as
  overshoot. Stopped jobs lose the work since their last checkpoint, wait again in their
  place, and on resuming (at any candidate site) spend ``restore_s`` restoring it.

Every submitted job is always exactly one of queued, running, completed or rejected.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import numpy as np

from models.customers import Customer
from models.job_table import (
    COMPLETED,
    GANG_TOO_LARGE,
    GPU_TYPE_ABSENT,
    HASHRATE_TOO_LARGE,
    QUEUED,
    REJECTED,
    RUNNING,
    JobTable,
)
from models.workload_types import MINING, PRIORITY_BY_CODE, TYPE_COUNT, WORKLOAD_SPECS
from optimizer.fair_share import FairShare
from optimizer.interval_result import IntervalResult
from optimizer.job_queues import QueueClass, WaitingQueues
from optimizer.pools import Pool
from optimizer.reservation import Reservation, reserve
from optimizer.routing import RouteTable, routing_inputs
from optimizer.running_set import RunningSet, VictimKey
from twin.scenario import Workloads
from twin.scenario_scheduling import Scheduling

_EPS = 1e-9
"""Slack for comparing sums of TH/s [units]."""

_INTERRUPTIBLE = [spec.interruptible for spec in WORKLOAD_SPECS]
_PRIORITY = [spec.priority for spec in WORKLOAD_SPECS]
_PREEMPTS = [spec.priority == 1 and not spec.interruptible for spec in WORKLOAD_SPECS]
"""Types that may stop lower-priority work to start (realtime inference)."""
_HAS_DEADLINE = [spec.has_deadline and spec.interruptible for spec in WORKLOAD_SPECS]
"""Interruptible types with a completion deadline (batch inference, training)."""
_URGENT_PROMOTION = 1e18
"""Subtracted from the queue key of a job that must start now to meet its deadline."""
_AGED_FLOOR = 2
"""Aging never lifts a job above this priority number (1 is realtime inference's)."""


class SchedulerError(ValueError):
    """The scheduler was called with inconsistent input (times, limits, job order)."""


class SchedulerInvariantError(RuntimeError):
    """An internal consistency check failed (only raised with ``check_invariants``)."""


class Scheduler:
    """Places the jobs of a :class:`JobTable` on pools, one dispatch interval at a time.

    Args:
        pools: the pools, indexed by position (``IntervalResult`` arrays follow this order).
        jobs: the job table; the caller appends each interval's arrivals before running it.
        customers: tenants (fair-share weights, region and residency for routing); jobs of
            customers not listed share weight 1 and the first route group.
        check_invariants: verify the state after every interval and the limit after every
            placement (slow; for tests).
        rules: the scenario's ``scheduling`` block.
        workloads: the scenario's ``workloads`` block (data size and typical GPU-hours per
            type, for routing); None: no data to move.
    """

    def __init__(
        self,
        pools: Sequence[Pool],
        jobs: JobTable,
        customers: Sequence[Customer] = (),
        check_invariants: bool = False,
        rules: Scheduling | None = None,
        workloads: Workloads | None = None,
    ) -> None:
        if not pools:
            raise SchedulerError("scheduler: need at least one pool")
        self.pools = list(pools)
        self.jobs = jobs
        self.customers = list(customers)
        self.check_invariants = check_invariants
        self.rules = rules if rules is not None else Scheduling()
        n = len(self.pools)
        self._pool_facility = np.array([p.facility for p in self.pools], dtype=np.int16)
        self._pool_facility_list = [p.facility for p in self.pools]
        self._pool_is_gpu = [p.is_gpu for p in self.pools]
        self._limit = [float(p.capacity) for p in self.pools]
        self._busy = [0.0] * n
        self._busy_by = [0.0] * (n * TYPE_COUNT)
        """Units in use per (pool, type), flat index ``pool * TYPE_COUNT + type``."""
        self._rate_by = [0.0] * (n * TYPE_COUNT)
        """Revenue rate of the running jobs per (pool, type) [USD/s]."""
        self._running: dict[int, int] = {}
        """Row of each running job -> sequence number of its current placement."""
        self._completions: list[tuple[float, int, int, int, int, float, float]] = []
        """Heap of ``(end_s, seq, row, pool, type, units, usd_per_s)``; stale entries (a
        preempted placement) are skipped when their seq no longer matches ``_running``."""
        self._seq = 0
        self._victims = [RunningSet(loses_work=p.is_gpu) for p in self.pools]
        self._queues = WaitingQueues(TYPE_COUNT)
        self._cursor = 0
        """First job row not yet seen by the scheduler."""
        self._now_s: float | None = None
        """End of the last interval run [s]."""
        self._fair = FairShare(self.customers, self.rules.fair_share)
        self._tags: dict[int, float] = {}
        """Fair-share start tag of each interruptible job waiting or running."""
        data_gb, gpu_hours = routing_inputs(workloads)
        self._routes = RouteTable(
            self.pools, self.customers, self.rules.routing, data_gb, gpu_hours
        )
        self._group_of_customer = list(self._routes.group_of_customer) or [0]
        self._deferred = [False] * n
        """Per pool: deferrable work waits this interval (expensive power)."""
        deferrable = set(self.rules.deferral.workload_types)
        self._deferrable = [
            _HAS_DEADLINE[spec.code] and spec.name in deferrable for spec in WORKLOAD_SPECS
        ]
        """Per type: may wait for cheaper power (deadline work named in the rules)."""
        self._reservation: list[Reservation | None] = [None] * n
        """Per pool: room promised to a starving queue head (EASY backfilling)."""
        self._interval_s = 0.0
        self._installed_seen: tuple[float, ...] | None = None
        self._largest_tables: tuple[np.ndarray, float] = (np.zeros(2), 0.0)
        self._reset_interval_state(0.0)

    # ------------------------------------------------------------------ public API

    @property
    def now_s(self) -> float | None:
        """End of the last interval run [s] (None before the first)."""
        return self._now_s

    @property
    def busy(self) -> np.ndarray:
        """Capacity in use per pool now [GPUs or TH/s]."""
        return np.array(self._busy)

    @property
    def queued_jobs(self) -> int:
        """Jobs waiting now [-]."""
        return self._queues.total

    @property
    def running_jobs(self) -> int:
        """Jobs running now [-]."""
        return len(self._running)

    def pools_for(self, type_code: int, gpu_type: int, customer: int = 0) -> tuple[int, ...]:
        """Pools a job of this type, GPU type and customer may run on, most preferred
        first (the order holds for the current interval)."""
        return self._routes.candidates(type_code, gpu_type, self._group(customer))

    def _owner(self, customer: int) -> int:
        """Queue-class owner of a customer's jobs: the customer when quotas or guarantees
        rank its jobs apart from others', else -1 (classes shared by all customers)."""
        return customer if self._fair.tracks_holdings else -1

    def _group(self, customer: int) -> int:
        groups = self._group_of_customer
        return groups[customer] if 0 <= customer < len(groups) else 0

    def run_interval(
        self,
        t0_s: float,
        t1_s: float,
        limits: Sequence[float] | np.ndarray | None = None,
        energy_usd_per_gpu_hour: Sequence[float] | np.ndarray | None = None,
        deferred: Sequence[bool] | np.ndarray | None = None,
    ) -> IntervalResult:
        """Play ``[t0_s, t1_s)`` [s]: apply ``limits``, admit arrivals, place, preempt.

        Args:
            t0_s: interval start; must equal the previous interval's end.
            t1_s: interval end, > ``t0_s``.
            limits: per pool, the capacity that may be busy [GPUs or TH/s], clipped to
                ``pool.capacity``; None keeps each pool at its capacity.
            energy_usd_per_gpu_hour: per pool, the energy cost of one GPU-hour there this
                interval (routing order) [USD/GPU-h]; None: equal everywhere.
            deferred: per pool, whether deferrable work should wait this interval (power is
                expensive there); None: nowhere.

        Raises:
            SchedulerError: times out of order, wrong number of limits, costs or flags, or
                job rows appended out of submission order or before ``t0_s``.
        """
        self._check_times(t0_s, t1_s)
        self._bind_columns()
        self._reset_interval_state(t0_s)
        self._set_limits(limits)
        self._set_conditions(energy_usd_per_gpu_hour, deferred)
        self._interval_s = t1_s - t0_s
        self._reservation = [None] * len(self.pools)  # limits changed: promise afresh
        self._complete_until(t0_s)
        self._enforce_limits(t0_s)
        self._promote_urgent(t0_s, t1_s)
        self._drain(t0_s, None)
        self._retry_waiting_realtime(t0_s)
        self._play_arrivals(t0_s, t1_s)
        self._complete_until(t1_s, before=True)
        self._flush()
        result = self._result(t0_s, t1_s)
        self._now_s = t1_s
        if self.check_invariants:
            self.audit()
        return result

    def _promote_urgent(self, t0_s: float, t1_s: float) -> None:
        """Move waiting deadline work that must start by the end of the next interval to the
        front of its class (earliest deadline first among them), so that neither fair-share
        order nor deferral makes it miss its deadline."""
        horizon_s = t1_s + 2.0 * (t1_s - t0_s) + self.rules.restore_s
        jobs = self.jobs
        for queue in self._queues.nonempty():
            if not _HAS_DEADLINE[queue.type_code]:
                continue
            rows = np.fromiter((row for _tag, row in queue.heap), np.int64, len(queue.heap))
            latest_start = jobs.deadline_s[rows] - self._remaining[rows]
            urgent = rows[latest_start <= horizon_s]
            if urgent.size:
                self._queues.promote(queue, set(urgent.tolist()), _URGENT_PROMOTION)

    def _retry_waiting_realtime(self, t_s: float) -> None:
        """Give realtime jobs that had to wait (every victim was too young to stop) another
        chance to preempt now."""
        queues = self._queues
        for queue in queues.nonempty():
            if not _PREEMPTS[queue.type_code]:
                continue
            candidates = self._routes.candidates(queue.type_code, queue.gpu_type, queue.group)
            while queue.heap:
                if self._victims_for(t_s, queue.type_code, queue.units, candidates) is None:
                    break
                tag, row = queue.heap[0]
                queues.pop(queue)
                self._preempt_for(row, t_s, queue.type_code, queue.units, candidates, tag)

    def _set_conditions(
        self,
        energy_usd_per_gpu_hour: Sequence[float] | np.ndarray | None,
        deferred: Sequence[bool] | np.ndarray | None,
    ) -> None:
        """This interval's routing costs and deferral flags."""
        n = len(self.pools)
        costs = None
        if energy_usd_per_gpu_hour is not None:
            costs = [float(x) for x in np.asarray(energy_usd_per_gpu_hour, dtype=float).ravel()]
            if len(costs) != n or not all(math.isfinite(x) for x in costs):
                raise SchedulerError(
                    f"run_interval: energy_usd_per_gpu_hour needs {n} finite values"
                )
        self._routes.set_energy_costs(costs)
        if deferred is None:
            self._deferred = [False] * n
        else:
            flags = [bool(x) for x in np.asarray(deferred).ravel()]
            if len(flags) != n:
                raise SchedulerError(f"run_interval: {len(flags)} deferral flags for {n} pools")
            self._deferred = flags

    def release_finished(self) -> JobTable:
        """Move completed and rejected jobs out of the job table; returns them as a table.

        Call between intervals to keep memory flat over long runs: the caller records the
        returned jobs (``to_polars``) and drops them. Job ids are kept; rows are renumbered.
        """
        self._flush()
        jobs = self.jobs
        status = jobs.status
        drop = np.zeros(len(jobs), dtype=bool)
        seen = status[: self._cursor]
        drop[: self._cursor] = (seen == COMPLETED) | (seen == REJECTED)
        removed, new_row = jobs.remove_rows(drop)
        self._cursor -= len(removed)
        running = self._running
        self._completions = [
            (end_s, seq, int(new_row[row]), pool, code, units, usd)
            for end_s, seq, row, pool, code, units, usd in self._completions
            if running.get(row) == seq
        ]
        heapq.heapify(self._completions)
        self._running = {int(new_row[row]): seq for row, seq in running.items()}
        for victims in self._victims:
            victims.remap(new_row)
        self._queues.remap(new_row)
        self._tags = {int(new_row[row]): tag for row, tag in self._tags.items()}
        return removed

    def audit(self) -> dict[str, int]:
        """Check that every seen job is in exactly one state and pool counts add up.

        Returns the number of jobs per state. Raises :class:`SchedulerInvariantError`.
        """
        self._flush()
        jobs = self.jobs
        seen = slice(0, self._cursor)
        status = jobs.status[seen]
        queued_rows = np.array(self._queues.rows(), dtype=np.int64)
        running_rows = np.fromiter(self._running, dtype=np.int64, count=len(self._running))
        if np.unique(queued_rows).size != queued_rows.size:
            raise SchedulerInvariantError("a job waits twice")
        expected = np.full(status.shape, -1, dtype=np.int8)
        expected[queued_rows] = QUEUED
        expected[running_rows] = RUNNING
        finished = (status == COMPLETED) | (status == REJECTED)
        expected[finished & (expected == -1)] = status[finished & (expected == -1)]
        mismatch = np.flatnonzero(expected != status)
        if mismatch.size:
            row = int(mismatch[0])
            raise SchedulerInvariantError(
                f"job {row}: status {int(status[row])} but scheduler holds it as "
                f"{int(expected[row])} (-1: nowhere)"
            )
        units = np.where(jobs.type == MINING, jobs.hashrate_ths, jobs.gpus.astype(float))
        busy = np.bincount(
            jobs.pool[running_rows], weights=units[running_rows], minlength=len(self.pools)
        )
        if not np.allclose(busy, self._busy, atol=1e-6):
            raise SchedulerInvariantError(f"busy {self._busy} != running jobs' units {busy}")
        for index, victims in enumerate(self._victims):
            rows = victims.rows
            if np.any(jobs.pool[rows] != index) or np.any(status[rows] != RUNNING):
                raise SchedulerInvariantError(f"pool {index}: victim set holds a stray job")
        counts = np.bincount(status, minlength=4)
        return {
            "queued": int(counts[QUEUED]),
            "running": int(counts[RUNNING]),
            "completed": int(counts[COMPLETED]),
            "rejected": int(counts[REJECTED]),
        }

    # ------------------------------------------------------------------ interval steps

    def _bind_columns(self) -> None:
        """Hold the job columns the event loop writes one row at a time.

        Views are taken once per interval (the table only grows between intervals), which
        keeps single-row writes cheap.
        """
        jobs = self.jobs
        self._status = jobs.status
        self._start_col = jobs.start_s
        self._segment_start = jobs.segment_start_s
        self._pool_col = jobs.pool
        self._facility_col = jobs.facility
        self._remaining = jobs.remaining_s
        self._customer_col = jobs.customer

    def _check_times(self, t0_s: float, t1_s: float) -> None:
        if not (math.isfinite(t0_s) and math.isfinite(t1_s) and t1_s > t0_s):
            raise SchedulerError(f"run_interval: need finite t0_s < t1_s, got [{t0_s}, {t1_s})")
        if self._now_s is not None and t0_s != self._now_s:
            raise SchedulerError(
                f"run_interval: t0_s={t0_s} must equal the previous interval end {self._now_s}"
            )

    def _reset_interval_state(self, t0_s: float) -> None:
        n = len(self.pools)
        cells = n * TYPE_COUNT
        self._area = [0.0] * cells
        self._money = [0.0] * cells
        self._last_t = [t0_s] * cells
        self._started = [0] * cells
        self._completed = [0] * cells
        self._preempted = [0] * cells
        self._lost_gpu_s = [0.0] * n
        self._transfer_gb = [0.0] * n
        self._overshoot = [0.0] * n
        self._peak = [math.nan] * n
        self._submitted = [0] * TYPE_COUNT
        self._rejected = [0] * TYPE_COUNT
        # starts of non-interruptible jobs and completions, buffered as (row, time [s]) and
        # pool columns until _flush writes them into the job table in one go
        self._pending_start_row: list[int] = []
        self._pending_start_s: list[float] = []
        self._pending_start_pool: list[int] = []
        self._pending_done_row: list[int] = []
        self._pending_done_s: list[float] = []

    def _set_limits(self, limits: Sequence[float] | np.ndarray | None) -> None:
        """Set this interval's limits, clipped to each pool's capacity."""
        if limits is None:
            values = [p.capacity for p in self.pools]
        else:
            values = [float(x) for x in np.asarray(limits, dtype=float).ravel()]
            if len(values) != len(self.pools):
                raise SchedulerError(
                    f"run_interval: {len(values)} limits for {len(self.pools)} pools"
                )
            bad = [i for i, x in enumerate(values) if not x >= 0]
            if bad:
                raise SchedulerError(f"run_interval: limits[{bad[0]}]={values[bad[0]]} < 0")
        for index, pool in enumerate(self.pools):
            self._limit[index] = min(values[index], float(pool.capacity))

    def _enforce_limits(self, t0_s: float) -> None:
        """Stop interruptible work above each limit; record what is left above it."""
        for index, limit in enumerate(self._limit):
            excess = self._busy[index] - limit
            if excess > _EPS and len(self._victims[index]):
                rows, units = self._victims[index].ranked_victims(
                    t0_s, 0, t0_s - self.rules.min_runtime_s, spare_young=False
                )
                count = int(np.searchsorted(np.cumsum(units), excess - _EPS)) + 1
                for row in rows[:count].tolist():
                    self._preempt(row, t0_s, index)
            self._overshoot[index] = max(0.0, self._busy[index] - limit)

    def _play_arrivals(self, t0_s: float, t1_s: float) -> None:
        """Admit the jobs submitted in ``[t0_s, t1_s)`` and play them with completions."""
        jobs = self.jobs
        lo = self._cursor
        hi = lo + int(np.searchsorted(jobs.submit_s[lo:], t1_s, side="left"))
        self._cursor = hi
        if hi == lo:
            return
        submit = jobs.submit_s[lo:hi]
        if submit[0] < t0_s or (submit[1:] < submit[:-1]).any():
            raise SchedulerError(
                f"jobs {lo}..{hi - 1}: rows must be appended in submission order, at or after "
                f"the interval start t0_s={t0_s}"
            )
        if hi < len(jobs) and (jobs.submit_s[hi:] < t1_s).any():
            raise SchedulerError(f"jobs after row {hi}: rows are not in submission order")
        types = jobs.type[lo:hi]
        self._submitted = np.bincount(types, minlength=TYPE_COUNT).tolist()
        customers = jobs.customer[lo:hi]
        self._fair.ensure_customers(int(customers.max()) + 1)
        groups = self._routes.groups_of(customers)
        reason = self._admission(lo, hi, groups)
        rejected = reason != 0
        if rejected.any():
            rows = np.flatnonzero(rejected) + lo
            jobs.status[rows] = REJECTED
            jobs.reject_reason[rows] = reason[rejected]
            self._rejected = np.bincount(types[rejected], minlength=TYPE_COUNT).tolist()
        accepted = np.flatnonzero(~rejected)
        rows_list = (accepted + lo).tolist()
        units = np.where(types == MINING, jobs.hashrate_ths[lo:hi], jobs.gpus[lo:hi])
        usd_per_s = jobs.gpus[lo:hi] * jobs.price_usd_per_gpu_hour[lo:hi] / 3600.0
        self._arrival_loop(
            rows_list,
            submit[accepted].tolist(),
            types[accepted].tolist(),
            jobs.gpu_type[lo:hi][accepted].tolist(),
            units[accepted].tolist(),
            jobs.work_s[lo:hi][accepted].tolist(),
            usd_per_s[accepted].tolist(),
            jobs.checkpoint_interval_s[lo:hi][accepted].tolist(),
            customers[accepted].tolist(),
            groups[accepted].tolist(),
            jobs.deadline_s[lo:hi][accepted].tolist(),
        )

    def _admission(self, lo: int, hi: int, groups: np.ndarray) -> np.ndarray:
        """Reject code per new job (0: admitted), judged against installed capacity and
        the routes open to its customer."""
        jobs = self.jobs
        types = jobs.type[lo:hi]
        gpu_type = jobs.gpu_type[lo:hi].astype(np.int64)
        largest, largest_asic = self._largest_installed(int(gpu_type.max()))
        on_gpu = types != MINING
        room = largest[gpu_type + 1]
        gpus = jobs.gpus[lo:hi]
        too_big_ths = ~on_gpu & (jobs.hashrate_ths[lo:hi] > largest_asic + _EPS)
        reason = np.zeros(hi - lo, dtype=np.int8)
        reason[on_gpu & (room <= 0)] = GPU_TYPE_ABSENT
        reason[on_gpu & (room > 0) & (gpus > room)] = GANG_TOO_LARGE
        reason[too_big_ths] = HASHRATE_TOO_LARGE
        keys = (types.astype(np.int64) * 65536 + (gpu_type + 1)) * 1024 + groups
        unique_keys, first = np.unique(keys, return_index=True)
        route_reason = np.zeros(unique_keys.size, dtype=np.int8)
        route_room = np.zeros(unique_keys.size)
        for k, index in enumerate(first.tolist()):
            key = (int(types[index]), int(gpu_type[index]), int(groups[index]))
            route_reason[k] = self._routes.reject_reason(*key)
            route_room[k] = max(
                (self.pools[i].installed for i in self._routes.eligible(key)), default=0.0
            )
        by_key = np.searchsorted(unique_keys, keys)
        units = np.where(on_gpu, gpus, jobs.hashrate_ths[lo:hi])
        reason = np.where(reason == 0, route_reason[by_key], reason)
        too_big_here = (reason == 0) & (units > route_room[by_key] + _EPS)
        reason[too_big_here] = np.where(on_gpu[too_big_here], GANG_TOO_LARGE, HASHRATE_TOO_LARGE)
        return reason

    def _largest_installed(self, top_gpu_type: int) -> tuple[np.ndarray, float]:
        """Largest installed GPU pool per GPU type code + 1 (slot 0: any type), with a slot
        up to ``top_gpu_type``, and the largest installed ASIC pool [GPUs, TH/s]. Recomputed
        only when a pool's installed capacity changed."""
        installed = tuple(p.installed for p in self.pools)
        if installed != self._installed_seen:
            top_code = max((p.gpu_type for p in self.pools), default=0)
            largest = np.zeros(top_code + 2)
            for pool in self.pools:
                if pool.is_gpu:
                    largest[pool.gpu_type + 1] = max(largest[pool.gpu_type + 1], pool.installed)
                    largest[0] = max(largest[0], pool.installed)
            largest_asic = max((p.installed for p in self.pools if not p.is_gpu), default=0.0)
            self._installed_seen = installed
            self._largest_tables = (largest, float(largest_asic))
        largest, largest_asic = self._largest_tables
        if top_gpu_type + 2 > largest.size:
            largest = np.concatenate([largest, np.zeros(top_gpu_type + 2 - largest.size)])
        return largest, largest_asic

    def _arrival_loop(
        self,
        rows: list[int],
        submit: list[float],
        types: list[int],
        gpu_types: list[int],
        units: list[float],
        work: list[float],
        usd_per_s: list[float],
        checkpoint: list[float],
        customers: list[int],
        groups: list[int],
        deadlines: list[float],
    ) -> None:
        """The hot loop: one pass over admitted arrivals, interleaved with completions."""
        heap = self._completions
        limit = self._limit
        busy = self._busy
        queues = self._queues
        candidates_of = self._routes.candidates
        tag_of = self._fair.tag
        tags = self._tags
        start = self._start
        blocked = self._blocked
        owner = self._owner
        for row, t, type_code, gpu_type, need, work_s, usd, checkpoint_s, c, g, deadline in zip(
            rows,
            submit,
            types,
            gpu_types,
            units,
            work,
            usd_per_s,
            checkpoint,
            customers,
            groups,
            deadlines,
            strict=True,
        ):
            if heap and heap[0][0] <= t:
                self._complete_until(t)
            priority = _PRIORITY[type_code]
            tag = tag_of(priority, c, need, work_s)
            if _INTERRUPTIBLE[type_code]:
                tags[row] = tag
            candidates = candidates_of(type_code, gpu_type, g)
            placed = False
            for pool in candidates:
                if limit[pool] - busy[pool] >= need - _EPS and not blocked(
                    pool, type_code, t, work_s, deadline, need
                ):
                    start(row, t, pool, type_code, need, work_s, usd, checkpoint_s, c, tag)
                    placed = True
                    break
            if not placed and _PREEMPTS[type_code]:  # realtime: a reserved pool as last resort
                for pool in candidates:
                    if limit[pool] - busy[pool] >= need - _EPS:
                        start(row, t, pool, type_code, need, work_s, usd, checkpoint_s, c, tag)
                        placed = True
                        break
            if placed:
                continue
            if _PREEMPTS[type_code] and self._preempt_for(row, t, type_code, need, candidates, tag):
                continue
            queues.push(row, tag, type_code, gpu_type, need, priority, candidates, g, owner(c))

    def _blocked(
        self,
        pool: int,
        type_code: int,
        t_s: float,
        remaining_s: float,
        deadline_s: float,
        units: float,
    ) -> bool:
        """Whether a job should not start on ``pool`` now though it fits: it would delay
        the start promised to a starving queue head (realtime inference then tries the
        other pools first, and takes the reserved room only as a last resort), or
        deferrable work waits for cheaper power (unless waiting one more interval would
        miss its deadline)."""
        reservation = self._reservation[pool]
        if _PREEMPTS[type_code]:  # realtime goes elsewhere first if it would break a promise
            return reservation is not None and not reservation.fits(t_s + remaining_s, units)
        if reservation is not None and not reservation.admit(t_s + remaining_s, units):
            return True
        return self._waits_for_cheap_power(pool, type_code, t_s, remaining_s, deadline_s)

    def _waits_for_cheap_power(
        self, pool: int, type_code: int, t_s: float, remaining_s: float, deadline_s: float
    ) -> bool:
        """Deferrable work on a deferred pool waits unless waiting one more interval (and
        restoring its checkpoint) would miss its deadline."""
        if not (self._deferred[pool] and self._deferrable[type_code]):
            return False
        slack_s = deadline_s - t_s - remaining_s - self.rules.restore_s
        return slack_s > 2.0 * self._interval_s

    def _reserve(self, pool: int, row: int, units: float) -> Reservation:
        """Promise ``units`` on ``pool`` to job ``row`` (see optimizer.reservation)."""
        running = self._running
        ends = (
            (end_s, held)
            for end_s, seq, job, where, _type, held, _usd in self._completions
            if where == pool and running.get(job) == seq
        )
        return reserve(row, units, self._limit[pool] - self._busy[pool], ends)

    # ------------------------------------------------------------------ events

    def _integrate(self, cell: int, t_s: float) -> None:
        """Accrue busy unit-seconds and revenue of one (pool, type) cell up to ``t_s``."""
        dt = t_s - self._last_t[cell]
        if dt > 0.0:
            self._area[cell] += self._busy_by[cell] * dt
            self._money[cell] += self._rate_by[cell] * dt
            self._last_t[cell] = t_s

    def _start(
        self,
        row: int,
        t_s: float,
        pool: int,
        type_code: int,
        units: float,
        remaining_s: float,
        usd_per_s: float,
        checkpoint_s: float,
        customer: int,
        tag: float,
    ) -> None:
        cell = pool * TYPE_COUNT + type_code
        dt = t_s - self._last_t[cell]
        if dt > 0.0:  # _integrate(cell, t_s), inlined: this is the hottest path
            self._area[cell] += self._busy_by[cell] * dt
            self._money[cell] += self._rate_by[cell] * dt
            self._last_t[cell] = t_s
        self._busy_by[cell] += units
        self._rate_by[cell] += usd_per_s
        busy = self._busy[pool] + units
        self._busy[pool] = busy
        if not busy <= self._peak[pool]:
            self._peak[pool] = busy
        if self.check_invariants and busy > self._limit[pool] + _EPS:
            raise SchedulerInvariantError(
                f"pool {pool}: placing job {row} makes busy {busy} > limit {self._limit[pool]}"
            )
        fair = self._fair
        fair.started(_PRIORITY[type_code], tag)
        if fair.tracks_holdings and self._pool_is_gpu[pool]:
            fair.held_gpus[customer] += units
        seq = self._seq = self._seq + 1
        self._running[row] = seq
        self._started[cell] += 1
        if _INTERRUPTIBLE[type_code]:
            # Written at once (not buffered) so that a preemption finds them current.
            remaining_s += self._moving_s(row, pool, type_code, customer)
            self._status[row] = RUNNING
            self._segment_start[row] = t_s
            self._pool_col[row] = pool
            self._facility_col[row] = self._pool_facility_list[pool]
            first_start = self._start_col[row]
            if first_start != first_start:  # NaN: first start
                self._start_col[row] = t_s
            elif self._pool_is_gpu[pool]:  # a resumed GPU job first restores its checkpoint
                remaining_s += self.rules.restore_s
                self._remaining[row] = remaining_s
            self._victims[pool].add(row, t_s, checkpoint_s, units, _PRIORITY[type_code])
        else:
            self._pending_start_row.append(row)
            self._pending_start_s.append(t_s)
            self._pending_start_pool.append(pool)
        heapq.heappush(
            self._completions, (t_s + remaining_s, seq, row, pool, type_code, units, usd_per_s)
        )

    def _moving_s(self, row: int, pool: int, type_code: int, customer: int) -> float:
        """Time to move a job's data to ``pool`` before it runs [s]: when the pool is
        outside the customer's region and the data is not already at that facility."""
        group = self._group(customer)
        moving_s = self._routes.transfer_s(type_code, group, pool)
        if moving_s <= 0.0 or self._facility_col[row] == self._pool_facility_list[pool]:
            return 0.0
        self._transfer_gb[pool] += self._routes.transfer_gb(type_code, group, pool)
        self._remaining[row] = self._remaining[row] + moving_s
        return moving_s

    def _complete_until(self, t_s: float, before: bool = False) -> None:
        """Finish every job ending at or before ``t_s`` (strictly before if ``before``)."""
        heap = self._completions
        running = self._running
        busy, busy_by, rate_by, last_t = self._busy, self._busy_by, self._rate_by, self._last_t
        area, money, completed = self._area, self._money, self._completed
        done_rows, done_s = self._pending_done_row, self._pending_done_s
        queues, limit, victims = self._queues, self._limit, self._victims
        while heap and (heap[0][0] < t_s or (not before and heap[0][0] == t_s)):
            end_s, seq, row, pool, type_code, units, usd_per_s = heapq.heappop(heap)
            if running.get(row) != seq:
                continue
            del running[row]
            cell = pool * TYPE_COUNT + type_code
            dt = end_s - last_t[cell]
            if dt > 0.0:  # _integrate(cell, end_s), inlined
                area[cell] += busy_by[cell] * dt
                money[cell] += rate_by[cell] * dt
                last_t[cell] = end_s
            busy_by[cell] -= units
            rate_by[cell] -= usd_per_s
            busy[pool] -= units
            completed[cell] += 1
            done_rows.append(row)
            done_s.append(end_s)
            if _INTERRUPTIBLE[type_code]:
                victims[pool].remove(row)
                del self._tags[row]
            if self._fair.tracks_holdings and self._pool_is_gpu[pool]:
                self._fair.held_gpus[int(self._customer_col[row])] -= units
            if queues.total and limit[pool] - busy[pool] >= queues.min_units(pool) - _EPS:
                self._drain_pool(end_s, pool)

    def _drain(self, t_s: float, only_pool: int | None) -> None:
        """Start waiting jobs while any fits (all pools, cheapest first, or only
        ``only_pool``); then note which pools are held for a starving queue head."""
        pools = [only_pool] if only_pool is not None else self._pools_by_cost()
        for pool in pools:
            self._drain_pool(t_s, pool)

    def _pools_by_cost(self) -> list[int]:
        """Pool indices by this interval's energy cost, cheapest first (ties: index)."""
        energy = self._routes.energy_costs
        return sorted(range(len(self.pools)), key=lambda i: (energy[i], i))

    def _rank(
        self, queue: QueueClass, tag: float, row: int, t_s: float
    ) -> tuple[float, float, int]:
        """Order of a waiting job, smaller first: aged priority (with quota / guarantee
        adjustment), fair-share tag, row."""
        priority = float(queue.priority)
        if queue.priority > _AGED_FLOOR:
            levels = (t_s - float(self.jobs.submit_s[row])) // self.rules.aging_s
            priority = max(float(_AGED_FLOOR), priority - levels)
        priority += self._fair.rank_adjustment(int(self._customer_col[row]))
        return (priority, tag, row)

    def _drain_pool(self, t_s: float, pool: int) -> None:
        """Start waiting jobs that may run on ``pool`` while one fits there.

        The best-ranked head that fits starts. When a better-ranked head that does not fit
        has waited ``starvation_s`` and this is the pool with the most room among its
        candidates, the pool reserves room for it (EASY backfilling): other work starts
        only if it ends before the reserved start or uses room the reservation leaves
        spare. Deferrable work on a deferred pool starts only when its deadline requires.
        """
        queues = self._queues
        classes = queues.classes_for_pool(pool)
        starving_s = self.rules.starvation_s
        submit = self.jobs.submit_s
        deadline = self.jobs.deadline_s
        remaining = self._remaining
        while queues.total:
            free = self._limit[pool] - self._busy[pool]
            reservation = self._reservation[pool]
            chosen = None
            chosen_key: tuple[float, float, int] | None = None
            blocker: tuple[tuple[float, float, int], QueueClass] | None = None
            for queue in classes:
                if not queue.heap:
                    continue
                tag, row = queue.heap[0]
                key = self._rank(queue, tag, row, t_s)
                if free < queue.units - _EPS:
                    if t_s - float(submit[row]) >= starving_s and (
                        blocker is None or key < blocker[0]
                    ):
                        blocker = (key, queue)
                    continue
                if chosen_key is not None and key >= chosen_key:
                    continue
                preempts = _PREEMPTS[queue.type_code]
                if (
                    reservation is not None
                    and not preempts
                    and reservation.row != row
                    and not reservation.fits(t_s + float(remaining[row]), queue.units)
                ):
                    continue
                if self._waits_for_cheap_power(
                    pool, queue.type_code, t_s, float(remaining[row]), float(deadline[row])
                ):
                    continue
                chosen, chosen_key = queue, key
            if blocker is None or (chosen_key is not None and chosen_key < blocker[0]):
                if reservation is not None:  # stale, or outranked: choose again without it
                    self._reservation[pool] = None
                    continue
            else:
                blocker_row = blocker[1].heap[0][1]
                wanted = reservation is None or reservation.row != blocker_row
                if wanted and self._most_room(blocker[1].pools) == pool:
                    self._reservation[pool] = self._reserve(pool, blocker_row, blocker[1].units)
                    continue  # choose again under the new reservation
            if chosen is None:
                return
            tag, row = chosen.heap[0]
            if reservation is not None and not _PREEMPTS[chosen.type_code]:
                reservation.admit(t_s + float(remaining[row]), chosen.units)
            queues.pop(chosen)
            self._start_waiting(row, t_s, pool, chosen.type_code, chosen.units, tag)

    def _most_room(self, pools: tuple[int, ...]) -> int:
        """The pool with the most free room now (ties: the first)."""
        best, best_room = -1, -math.inf
        for pool in pools:
            room = self._limit[pool] - self._busy[pool]
            if room > best_room:
                best, best_room = pool, room
        return best

    def _start_waiting(
        self, row: int, t_s: float, pool: int, type_code: int, units: float, tag: float
    ) -> None:
        jobs = self.jobs
        usd_per_s = float(jobs.gpus[row]) * float(jobs.price_usd_per_gpu_hour[row]) / 3600.0
        self._start(
            row,
            t_s,
            pool,
            type_code,
            units,
            float(self._remaining[row]),
            usd_per_s,
            float(jobs.checkpoint_interval_s[row]),
            int(self._customer_col[row]),
            tag,
        )

    def _preempt_for(
        self,
        row: int,
        t_s: float,
        type_code: int,
        units: float,
        candidates: tuple[int, ...],
        tag: float,
    ) -> bool:
        """Make room for a realtime job by stopping cheaper work and start it; False if
        impossible (see :meth:`_victims_for`)."""
        found = self._victims_for(t_s, type_code, units, candidates)
        if found is None:
            return False
        pool, chosen = found
        for victim in chosen:
            self._preempt(victim, t_s, pool)
        self._start_waiting(row, t_s, pool, type_code, units, tag)
        if self._queues.total:
            self._drain(t_s, pool)
        return True

    def _victims_for(
        self, t_s: float, type_code: int, units: float, candidates: tuple[int, ...]
    ) -> tuple[int, list[int]] | None:
        """The pool and the jobs to stop there so that ``units`` fit, or None.

        The pool is the one holding the cheapest single victim that frees enough room; if no
        single job frees enough anywhere, the first pool (in candidate order) whose cheapest
        victims together do. Runs younger than ``min_runtime_s`` are spared.
        """
        priority = _PRIORITY[type_code]
        started_before_s = t_s - self.rules.min_runtime_s
        best: tuple[VictimKey, int, list[int]] | None = None
        for pool in candidates:
            victims = self._victims[pool]
            if not len(victims):
                continue
            need = units - (self._limit[pool] - self._busy[pool])
            found = victims.best_victim(t_s, priority, need - _EPS, started_before_s)
            if found is not None and (best is None or found[0] < best[0]):
                best = (found[0], pool, [found[1]])
        if best is None:
            for pool in candidates:
                victims = self._victims[pool]
                if not len(victims):
                    continue
                need = units - (self._limit[pool] - self._busy[pool])
                rows, sizes = victims.ranked_victims(t_s, priority, started_before_s)
                count = int(np.searchsorted(np.cumsum(sizes), need - _EPS)) + 1
                if count <= rows.size:
                    best = ((0, 0.0, 0), pool, rows[:count].tolist())
                    break
        if best is None:
            return None
        return best[1], best[2]

    def _preempt(self, row: int, t_s: float, pool: int) -> None:
        """Stop a running interruptible job at ``t_s`` and put it back in line."""
        jobs = self.jobs
        type_code = int(jobs.type[row])
        gpus = float(jobs.gpus[row])
        units = float(jobs.hashrate_ths[row]) if type_code == MINING else gpus
        victims = self._victims[pool]
        lost_s = victims.lost_s(row, t_s)
        victims.remove(row)
        elapsed_s = t_s - float(self._segment_start[row])
        usd_per_s = gpus * float(jobs.price_usd_per_gpu_hour[row]) / 3600.0
        self._remaining[row] = float(self._remaining[row]) - elapsed_s + lost_s
        self._status[row] = QUEUED
        self._segment_start[row] = np.nan
        jobs.preemptions[row] += 1
        jobs.lost_work_s[row] += lost_s
        jobs.revenue_usd[row] += usd_per_s * (elapsed_s - lost_s)
        del self._running[row]
        cell = pool * TYPE_COUNT + type_code
        self._integrate(cell, t_s)
        self._busy_by[cell] -= units
        self._rate_by[cell] -= usd_per_s
        self._busy[pool] -= units
        self._money[cell] -= usd_per_s * lost_s
        self._lost_gpu_s[pool] += lost_s * gpus
        self._preempted[cell] += 1
        customer = int(self._customer_col[row])
        if self._fair.tracks_holdings and self._pool_is_gpu[pool]:
            self._fair.held_gpus[customer] -= units
        gpu_type = int(jobs.gpu_type[row])
        group = self._group(customer)
        self._queues.push(
            row,
            self._tags[row],
            type_code,
            gpu_type,
            units,
            int(PRIORITY_BY_CODE[type_code]),
            self._routes.candidates(type_code, gpu_type, group),
            group,
            self._owner(customer),
        )

    def _flush(self) -> None:
        """Write the starts and completions buffered by the hot loop into the job table."""
        jobs = self.jobs
        if self._pending_start_row:
            rows = np.array(self._pending_start_row, dtype=np.int64)
            t_s = np.array(self._pending_start_s, dtype=np.float64)
            pools = np.array(self._pending_start_pool, dtype=np.int64)
            self._pending_start_row, self._pending_start_s, self._pending_start_pool = [], [], []
            jobs.status[rows] = RUNNING
            jobs.segment_start_s[rows] = t_s
            jobs.pool[rows] = pools
            jobs.facility[rows] = self._pool_facility[pools]
            jobs.start_s[rows] = np.where(np.isnan(jobs.start_s[rows]), t_s, jobs.start_s[rows])
        if self._pending_done_row:
            rows = np.array(self._pending_done_row, dtype=np.int64)
            end_s = np.array(self._pending_done_s, dtype=np.float64)
            self._pending_done_row, self._pending_done_s = [], []
            elapsed_s = end_s - jobs.segment_start_s[rows]
            jobs.revenue_usd[rows] += (
                jobs.gpus[rows] * jobs.price_usd_per_gpu_hour[rows] * elapsed_s / 3600.0
            )
            jobs.status[rows] = COMPLETED
            jobs.end_s[rows] = end_s
            jobs.remaining_s[rows] = 0.0
            jobs.segment_start_s[rows] = np.nan

    def _result(self, t0_s: float, t1_s: float) -> IntervalResult:
        n = len(self.pools)
        for cell in range(n * TYPE_COUNT):
            self._integrate(cell, t1_s)
        shape = (n, TYPE_COUNT)
        queues = self._queues
        return IntervalResult(
            t0_s=t0_s,
            t1_s=t1_s,
            busy_unit_s=np.array(self._area).reshape(shape),
            revenue_usd=np.array(self._money).reshape(shape),
            started=np.array(self._started, dtype=np.int64).reshape(shape),
            completed=np.array(self._completed, dtype=np.int64).reshape(shape),
            preempted=np.array(self._preempted, dtype=np.int64).reshape(shape),
            lost_work_gpu_s=np.array(self._lost_gpu_s),
            transfer_gb=np.array(self._transfer_gb),
            limit=np.array(self._limit),
            overshoot_start=np.array(self._overshoot),
            placed_peak_busy=np.array(self._peak),
            busy_end=np.array(self._busy),
            submitted_by_type=np.array(self._submitted, dtype=np.int64),
            rejected_by_type=np.array(self._rejected, dtype=np.int64),
            queued_jobs_by_type=np.array(queues.jobs_by_type, dtype=np.int64),
            queued_units_by_type=np.array(queues.units_by_type),
        )
