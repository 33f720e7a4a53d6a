"""What the scheduler did in one dispatch interval, per pool and workload type.

Units: a GPU pool counts GPUs, an ASIC pool TH/s, so ``busy_unit_s`` is GPU-seconds on GPU
pools and TH/s-seconds on ASIC pools; dividing by the interval length gives the mean GPUs
(or TH/s) in use, which is what the controller turns into power.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class IntervalResult:
    """Per-pool outcome of ``Scheduler.run_interval(t0_s, t1_s, limits)``.

    Arrays of shape ``(pools, types)`` are indexed by pool index and workload type code.

    Attributes:
        t0_s: interval start [s].
        t1_s: interval end [s].
        busy_unit_s: busy capacity integrated over the interval [GPU-s or TH/s-s].
        revenue_usd: billed useful work, GPU-seconds x price / 3600, accrued as work is
            done; work lost to a preemption is taken back when it happens [USD].
        started: placements (first starts and restarts after preemption) [-].
        completed: jobs finished [-].
        preempted: jobs stopped and requeued [-].
        lost_work_gpu_s: work thrown away by preemptions per pool [GPU-s].
        transfer_gb: job data moved to each pool from outside its site's region [GB].
        limit: the limit in force, clipped to capacity, per pool [GPUs or TH/s].
        overshoot_start: busy minus limit after preempting at the interval start, per pool:
            non-interruptible work above a reduced limit [GPUs or TH/s].
        placed_peak_busy: the largest busy count right after a placement, per pool; NaN if
            nothing was placed. Placements never exceed the limit [GPUs or TH/s].
        busy_end: busy at ``t1_s`` per pool [GPUs or TH/s].
        submitted_by_type: jobs that arrived in the interval [-].
        rejected_by_type: arrivals rejected at admission [-].
        queued_jobs_by_type: jobs waiting at ``t1_s`` [-].
        queued_units_by_type: room those waiting jobs ask for [GPUs or TH/s].
    """

    t0_s: float
    t1_s: float
    busy_unit_s: np.ndarray
    revenue_usd: np.ndarray
    started: np.ndarray
    completed: np.ndarray
    preempted: np.ndarray
    lost_work_gpu_s: np.ndarray
    transfer_gb: np.ndarray
    limit: np.ndarray
    overshoot_start: np.ndarray
    placed_peak_busy: np.ndarray
    busy_end: np.ndarray
    submitted_by_type: np.ndarray
    rejected_by_type: np.ndarray
    queued_jobs_by_type: np.ndarray
    queued_units_by_type: np.ndarray

    @property
    def duration_s(self) -> float:
        """Interval length [s]."""
        return self.t1_s - self.t0_s

    @property
    def queued_jobs(self) -> int:
        """Jobs waiting at ``t1_s`` [-]."""
        return int(self.queued_jobs_by_type.sum())

    def mean_busy(self) -> np.ndarray:
        """Mean capacity in use per pool and type over the interval [GPUs or TH/s]."""
        return self.busy_unit_s / self.duration_s
