"""Job scheduler: admission, placement on pools, preemption, per-interval accounting.

Pure: no SimPy, no IO, no clock. The controller calls :meth:`Scheduler.run_interval` once per
dispatch interval with the limits its plan allows; inside the interval the scheduler plays
the events in time order (completions from a heap, arrivals from the job table, which is
sorted by submission time) and places work the moment room appears.

Rules (first version):

* **Admission.** A job that could never run is rejected on arrival: its GPU type is in no
  pool, its gang needs more GPUs than any matching pool has installed (a gang runs in one
  pool), or it asks for more TH/s than any facility's ASICs provide.
* **Placement.** Waiting jobs go by priority, then submission time; a job that does not fit
  lets later, smaller jobs past it (backfill, no reservation). A job goes to the matching pool
  with the most free room (ties: lowest pool index). A job that fits on arrival starts at
  its submission instant, so realtime inference waits 0 s whenever there is room.
* **Preemption.** A realtime job that finds no room stops the cheapest interruptible GPU jobs
  of a matching pool (lowest priority, then least work since the last checkpoint, in
  GPU-seconds; see ``optimizer.running_set``). When a limit falls below the busy count at an
  interval start, interruptible jobs are stopped the same way until the pool is within the
  limit; non-interruptible work keeps running and the excess is reported as overshoot.
  Stopped jobs lose the work since their last checkpoint and wait again in their place.

Every submitted job is always exactly one of queued, running, completed or rejected.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import numpy as np

from models.customers import Customer
from models.job_table import (
    ANY_GPU_TYPE,
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
from optimizer.interval_result import IntervalResult
from optimizer.job_queues import WaitingQueues
from optimizer.pools import Pool
from optimizer.running_set import RunningSet, VictimKey

_EPS = 1e-9
"""Slack for comparing sums of TH/s [units]."""

_INTERRUPTIBLE = [spec.interruptible for spec in WORKLOAD_SPECS]
_PRIORITY = [spec.priority for spec in WORKLOAD_SPECS]
_PREEMPTS = [spec.priority == 1 and not spec.interruptible for spec in WORKLOAD_SPECS]
"""Types that may stop lower-priority work to start (realtime inference)."""


class SchedulerError(ValueError):
    """The scheduler was called with inconsistent input (times, limits, job order)."""


class SchedulerInvariantError(RuntimeError):
    """An internal consistency check failed (only raised with ``check_invariants``)."""


class Scheduler:
    """Places the jobs of a :class:`JobTable` on pools, one dispatch interval at a time.

    Args:
        pools: the pools, indexed by position (``IntervalResult`` arrays follow this order).
        jobs: the job table; the caller appends each interval's arrivals before running it.
        customers: tenants (kept for fair-share and latency routing; unused so far).
        check_invariants: verify the state after every interval and the limit after every
            placement (slow; for tests).
    """

    def __init__(
        self,
        pools: Sequence[Pool],
        jobs: JobTable,
        customers: Sequence[Customer] = (),
        check_invariants: bool = False,
    ) -> None:
        if not pools:
            raise SchedulerError("scheduler: need at least one pool")
        self.pools = list(pools)
        self.jobs = jobs
        self.customers = list(customers)
        self.check_invariants = check_invariants
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
        self._gpu_pools_by_type: dict[int, tuple[int, ...]] = {}
        for index, pool in enumerate(self.pools):
            if pool.is_gpu:
                self._gpu_pools_by_type.setdefault(pool.gpu_type, ())
                self._gpu_pools_by_type[pool.gpu_type] += (index,)
        self._all_gpu_pools = tuple(i for i, p in enumerate(self.pools) if p.is_gpu)
        self._asic_pools = tuple(i for i, p in enumerate(self.pools) if not p.is_gpu)
        self._installed_seen: tuple[float, ...] | None = None
        self._largest_tables: tuple[np.ndarray, float] = (np.zeros(2), 0.0)
        self._candidates: dict[tuple[int, int], tuple[int, ...]] = {}
        """``pools_for`` by (type code, GPU type), filled as pairs are first seen."""
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

    def pools_for(self, type_code: int, gpu_type: int) -> tuple[int, ...]:
        """Indices of the pools a job of this type and GPU type may run on."""
        if type_code == MINING:
            return self._asic_pools
        if gpu_type == ANY_GPU_TYPE:
            return self._all_gpu_pools
        return self._gpu_pools_by_type.get(gpu_type, ())

    def run_interval(
        self, t0_s: float, t1_s: float, limits: Sequence[float] | np.ndarray | None = None
    ) -> IntervalResult:
        """Play ``[t0_s, t1_s)`` [s]: apply ``limits``, admit arrivals, place, preempt.

        Args:
            t0_s: interval start; must equal the previous interval's end.
            t1_s: interval end, > ``t0_s``.
            limits: per pool, the capacity that may be busy [GPUs or TH/s], clipped to
                ``pool.capacity``; None keeps each pool at its capacity.

        Raises:
            SchedulerError: times out of order, wrong number of limits, or job rows appended
                out of submission order or before ``t0_s``.
        """
        self._check_times(t0_s, t1_s)
        self._bind_columns()
        self._reset_interval_state(t0_s)
        self._set_limits(limits)
        self._complete_until(t0_s)
        self._enforce_limits(t0_s)
        self._drain(t0_s, None)
        self._play_arrivals(t0_s, t1_s)
        self._complete_until(t1_s, before=True)
        self._flush()
        result = self._result(t0_s, t1_s)
        self._now_s = t1_s
        if self.check_invariants:
            self.audit()
        return result

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
                rows, units = self._victims[index].ranked_victims(t0_s, below_priority=0)
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
        reason = self._admission(lo, hi)
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
        )

    def _admission(self, lo: int, hi: int) -> np.ndarray:
        """Reject code per new job (0: admitted), judged against installed capacity."""
        jobs = self.jobs
        types = jobs.type[lo:hi]
        gpu_type = jobs.gpu_type[lo:hi].astype(np.int64)
        largest, largest_asic = self._largest_installed(int(gpu_type.max()))
        on_gpu = types != MINING
        room = largest[gpu_type + 1]
        gpus = jobs.gpus[lo:hi]
        too_big_ths = ~on_gpu & (jobs.hashrate_ths[lo:hi] > largest_asic + _EPS)
        reason = np.zeros(hi - lo, dtype=np.int8)
        if not ((on_gpu & ((room <= 0) | (gpus > room))) | too_big_ths).any():
            return reason  # the usual case: every job fits somewhere
        reason[on_gpu & (room <= 0)] = GPU_TYPE_ABSENT
        reason[on_gpu & (room > 0) & (gpus > room)] = GANG_TOO_LARGE
        reason[too_big_ths] = HASHRATE_TOO_LARGE
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
    ) -> None:
        """The hot loop: one pass over admitted arrivals, interleaved with completions."""
        heap = self._completions
        limit = self._limit
        busy = self._busy
        queues = self._queues
        known = self._candidates
        start = self._start
        for row, t, type_code, gpu_type, need, work_s, usd, checkpoint_s in zip(
            rows, submit, types, gpu_types, units, work, usd_per_s, checkpoint, strict=True
        ):
            if heap and heap[0][0] <= t:
                self._complete_until(t)
            candidates = known.get((type_code, gpu_type))
            if candidates is None:
                candidates = known[(type_code, gpu_type)] = self.pools_for(type_code, gpu_type)
            best = -1
            best_free = -math.inf
            for pool in candidates:
                free = limit[pool] - busy[pool]
                if free > best_free:
                    best, best_free = pool, free
            if best >= 0 and best_free >= need - _EPS:
                start(row, t, best, type_code, need, work_s, usd, checkpoint_s)
            elif _PREEMPTS[type_code] and self._preempt_for(row, t, type_code, need, candidates):
                continue
            else:
                queues.push(row, t, type_code, gpu_type, need, _PRIORITY[type_code], candidates)

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
        seq = self._seq = self._seq + 1
        self._running[row] = seq
        heapq.heappush(
            self._completions, (t_s + remaining_s, seq, row, pool, type_code, units, usd_per_s)
        )
        self._started[cell] += 1
        if _INTERRUPTIBLE[type_code]:
            # Written at once (not buffered) so that a preemption finds them current.
            self._status[row] = RUNNING
            self._segment_start[row] = t_s
            self._pool_col[row] = pool
            self._facility_col[row] = self._pool_facility_list[pool]
            first_start = self._start_col[row]
            if first_start != first_start:  # NaN: first start
                self._start_col[row] = t_s
            self._victims[pool].add(row, t_s, checkpoint_s, units, _PRIORITY[type_code])
        else:
            self._pending_start_row.append(row)
            self._pending_start_s.append(t_s)
            self._pending_start_pool.append(pool)

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
            if queues.total and limit[pool] - busy[pool] >= queues.min_units(pool) - _EPS:
                self._drain_pool(end_s, pool)

    def _drain(self, t_s: float, only_pool: int | None) -> None:
        """Start waiting jobs while any fits (all pools, or only ``only_pool``)."""
        if only_pool is not None:
            self._drain_pool(t_s, only_pool)
            return
        queues = self._queues
        limit = self._limit
        busy = self._busy
        while queues.total:
            chosen = None
            chosen_pool = -1
            chosen_key: tuple[int, float, int] | None = None
            for queue in queues.nonempty():
                pool, free = -1, -math.inf
                for candidate in queue.pools:
                    room = limit[candidate] - busy[candidate]
                    if room > free:
                        pool, free = candidate, room
                if pool < 0 or free < queue.units - _EPS:
                    continue
                submit_s, row = queue.head()
                key = (queue.priority, submit_s, row)
                if chosen_key is None or key < chosen_key:
                    chosen, chosen_pool, chosen_key = queue, pool, key
            if chosen is None:
                return
            row = queues.pop(chosen)
            self._start_waiting(row, t_s, chosen_pool, chosen.type_code, chosen.units)

    def _drain_pool(self, t_s: float, pool: int) -> None:
        """Start waiting jobs that may run on ``pool`` while one fits there (after room
        appeared on that pool only)."""
        queues = self._queues
        classes = queues.classes_for_pool(pool)
        while queues.total:
            free = self._limit[pool] - self._busy[pool]
            chosen = None
            chosen_key: tuple[int, float, int] | None = None
            for queue in classes:
                if not queue.heap or free < queue.units - _EPS:
                    continue
                submit_s, row = queue.heap[0]
                key = (queue.priority, submit_s, row)
                if chosen_key is None or key < chosen_key:
                    chosen, chosen_key = queue, key
            if chosen is None:
                return
            row = queues.pop(chosen)
            self._start_waiting(row, t_s, pool, chosen.type_code, chosen.units)

    def _start_waiting(self, row: int, t_s: float, pool: int, type_code: int, units: float) -> None:
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
        )

    def _preempt_for(
        self, row: int, t_s: float, type_code: int, units: float, candidates: tuple[int, ...]
    ) -> bool:
        """Make room for a realtime job by stopping cheaper work; False if impossible.

        The pool is the one holding the cheapest single victim that frees enough room; if no
        single job frees enough anywhere, the first pool (in candidate order) whose cheapest
        victims together do.
        """
        priority = _PRIORITY[type_code]
        best: tuple[VictimKey, int, list[int]] | None = None
        for pool in candidates:
            victims = self._victims[pool]
            if not len(victims):
                continue
            need = units - (self._limit[pool] - self._busy[pool])
            found = victims.best_victim(t_s, priority, need - _EPS)
            if found is not None and (best is None or found[0] < best[0]):
                best = (found[0], pool, [found[1]])
        if best is None:
            for pool in candidates:
                victims = self._victims[pool]
                if not len(victims):
                    continue
                need = units - (self._limit[pool] - self._busy[pool])
                rows, sizes = victims.ranked_victims(t_s, priority)
                count = int(np.searchsorted(np.cumsum(sizes), need - _EPS)) + 1
                if count <= rows.size:
                    best = ((0, 0.0, 0), pool, rows[:count].tolist())
                    break
        if best is None:
            return False
        _key, pool, chosen = best
        for victim in chosen:
            self._preempt(victim, t_s, pool)
        jobs = self.jobs
        usd_per_s = float(jobs.gpus[row]) * float(jobs.price_usd_per_gpu_hour[row]) / 3600.0
        self._start(row, t_s, pool, type_code, units, float(jobs.work_s[row]), usd_per_s, math.inf)
        if self._queues.total:
            self._drain(t_s, pool)
        return True

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
        gpu_type = int(jobs.gpu_type[row])
        self._queues.push(
            row,
            float(jobs.submit_s[row]),
            type_code,
            gpu_type,
            units,
            int(PRIORITY_BY_CODE[type_code]),
            self.pools_for(type_code, gpu_type),
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
            limit=np.array(self._limit),
            overshoot_start=np.array(self._overshoot),
            placed_peak_busy=np.array(self._peak),
            busy_end=np.array(self._busy),
            submitted_by_type=np.array(self._submitted, dtype=np.int64),
            rejected_by_type=np.array(self._rejected, dtype=np.int64),
            queued_jobs_by_type=np.array(queues.jobs_by_type, dtype=np.int64),
            queued_units_by_type=np.array(queues.units_by_type),
        )
