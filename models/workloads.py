"""Workload demand: the four PRD workload types, customers, and job arrival generation.

:class:`WorkloadGenerator` turns the scenario's ``workloads`` block into jobs. Per type,
arrivals are a non-homogeneous Poisson process with mean ``per_day`` and a daily sinusoid
peaking at ``peak_hour_local`` (local time of the sites, America/Chicago):

``rate(t) = per_day / 86400 * (1 + daily_amplitude * cos(2π (hour_local(t) - peak) / 24))``
[jobs/s].

Time is cut into fixed bins of ``bin_s`` seconds from the scenario start, and bins into
blocks of :data:`BINS_PER_BLOCK`. Each (type, block) draws from its own random substream (a
``SeedSequence`` child keyed by type code and block index), all the block's bins at once,
so the jobs do not depend on how the caller slices time, and changing one type's demand
leaves every other type's jobs unchanged. Within a bin the count is Poisson with the
integrated rate and times are uniform. A block is drawn on first use and kept while the
caller moves through it, so a call per dispatch interval costs a slice, not a draw.

Re-exports the job table, customer and workload-type names so callers import one module.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from models.customers import REGIONS, Customer, customer_weights, make_customers
from models.job_table import (
    ANY_GPU_TYPE,
    COMPLETED,
    QUEUED,
    REJECT_REASONS,
    REJECTED,
    RUNNING,
    STATUS_NAMES,
    JobBatch,
    JobTable,
    JobTableError,
)
from models.workload_types import (
    BATCH,
    MINING,
    REALTIME,
    TRAINING,
    TYPE_NAMES,
    WORKLOAD_SPECS,
    WorkloadTypeSpec,
    type_code,
)
from twin.scenario import SizeChoice, WorkloadDemand, Workloads

__all__ = [
    "ANY_GPU_TYPE",
    "BATCH",
    "COMPLETED",
    "MINING",
    "QUEUED",
    "REALTIME",
    "REGIONS",
    "REJECTED",
    "REJECT_REASONS",
    "RUNNING",
    "STATUS_NAMES",
    "TRAINING",
    "TYPE_NAMES",
    "WORKLOAD_SPECS",
    "Customer",
    "JobBatch",
    "JobTable",
    "JobTableError",
    "WorkloadGenerator",
    "WorkloadTypeSpec",
    "make_customers",
]

LOCAL_TIME_ZONE = ZoneInfo("America/Chicago")
"""Time zone of the daily demand cycle (the sites are in ERCOT)."""

_SECONDS_PER_DAY = 86400.0
_OMEGA_PER_S = 2.0 * np.pi / _SECONDS_PER_DAY
_CUSTOMER_STREAM = 1000
"""Substream key for drawing customers (type codes use 0..3)."""

BINS_PER_BLOCK = 72
"""Arrival bins drawn together from one substream per type (6 h at 300 s bins) [-]. Larger
blocks cost fewer draws per simulated day; smaller ones hold fewer jobs in memory."""
_BLOCKS_KEPT = 2
"""Drawn blocks kept for later calls (the current one and the one before)."""


class WorkloadGenerator:
    """Jobs arriving over time for the demand of a scenario.

    Args:
        cfg: the scenario's ``workloads`` block.
        gpu_type_ids: GPU type ids present in the scenario, in the order the twin indexes
            them (the ``gpu_type`` column). Types a demand asks for that are not present
            are appended to :attr:`gpu_type_names`; the scheduler rejects those jobs.
        start: the scenario start (tz-aware); only used to find the local hour of day.
        rng: source of all randomness (a few numbers are drawn at construction).
        customers: tenants to draw from by weight; made with :func:`make_customers` from
            ``cfg.customers`` and a substream of ``rng`` when not given.
        bin_s: arrival bin length [s], 60..3600.

    Raises:
        ValueError: a GPU size is not a whole number, ``start`` is naive, or ``bin_s`` is out
            of range.
    """

    def __init__(
        self,
        cfg: Workloads,
        gpu_type_ids: Sequence[str],
        start: datetime,
        rng: np.random.Generator,
        customers: Sequence[Customer] | None = None,
        bin_s: float = 300.0,
    ) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("workload generator: start needs a UTC offset")
        if not 60.0 <= bin_s <= 3600.0:
            raise ValueError(f"workload generator: bin_s must be in [60, 3600] s, got {bin_s}")
        self.start = start
        self.bin_s = float(bin_s)
        self._root_entropy = [int(x) for x in rng.integers(0, 2**63 - 1, size=4)]
        self.gpu_type_names: list[str] = list(gpu_type_ids)
        self._demand: dict[int, WorkloadDemand] = {}
        self._gpu_types: dict[int, np.ndarray] = {}
        self._gpu_sizes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._hashrate_sizes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for name, demand in cfg.demand.items():
            code = type_code(name)
            self._demand[code] = demand
            where = f"workloads.demand.{name}"
            self._gpu_types[code] = self._type_indices(demand.gpu_types)
            self._gpu_sizes[code] = _size_table(demand.gpus, f"{where}.gpus", integer=True)
            self._hashrate_sizes[code] = _size_table(
                demand.hashrate_ths, f"{where}.hashrate_ths", integer=False
            )
        if customers is None:
            customers = make_customers(cfg.customers, self._stream(_CUSTOMER_STREAM, 0))
        self.customers: list[Customer] = list(customers)
        self._customer_p = customer_weights(self.customers)
        self._blocks: dict[int, JobBatch] = {}
        """Drawn blocks by block index, all types merged and sorted by submission time."""

    def _type_indices(self, requested: list[str]) -> np.ndarray:
        """Indices of requested GPU types, adding names the scenario does not have."""
        for type_id in requested:
            if type_id not in self.gpu_type_names:
                self.gpu_type_names.append(type_id)
        return np.array([self.gpu_type_names.index(t) for t in requested], dtype=np.int16)

    def _stream(self, key: int, bin_index: int) -> np.random.Generator:
        seq = np.random.SeedSequence(self._root_entropy, spawn_key=(key, bin_index))
        return np.random.Generator(np.random.PCG64(seq))

    def rate_per_s(self, type_name: str, t_s: np.ndarray | float) -> np.ndarray:
        """Arrival rate of one type at times ``t_s`` [jobs/s] (for checks and plots)."""
        demand = self._demand.get(type_code(type_name))
        times = np.atleast_1d(np.asarray(t_s, dtype=float))
        if demand is None:
            return np.zeros_like(times)
        hours = np.array([self._local_hour(float(t)) for t in times])
        phase = 2.0 * np.pi * (hours - demand.peak_hour_local) / 24.0
        return demand.per_day / _SECONDS_PER_DAY * (1.0 + demand.daily_amplitude * np.cos(phase))

    def _local_hour(self, t_s: float) -> float:
        local = (self.start + timedelta(seconds=t_s)).astimezone(LOCAL_TIME_ZONE)
        return local.hour + local.minute / 60.0 + (local.second + local.microsecond / 1e6) / 3600

    def arrivals(self, t0_s: float, t1_s: float) -> JobBatch:
        """All jobs submitted in ``[t0_s, t1_s)`` [s], sorted by submission time.

        Ties keep type-code order, so the result is fully determined by the seed.
        """
        if not t1_s >= t0_s:
            raise ValueError(f"arrivals: need t1_s >= t0_s, got [{t0_s}, {t1_s})")
        if t1_s == t0_s:
            return JobBatch.empty()
        block_s = self.bin_s * BINS_PER_BLOCK
        first_block = int(np.floor(t0_s / block_s))
        last_block = int(np.ceil(t1_s / block_s))
        parts = []
        for block_index in range(first_block, last_block):
            block = self._block(block_index)
            lo, hi = np.searchsorted(block.submit_s, [t0_s, t1_s], side="left")
            parts.append(block.rows(int(lo), int(hi)))
        return parts[0] if len(parts) == 1 else JobBatch.concat(parts)

    def _block(self, block_index: int) -> JobBatch:
        """The jobs of one block of bins, every type, sorted by submission time (cached)."""
        block = self._blocks.get(block_index)
        if block is not None:
            return block
        first_bin = block_index * BINS_PER_BLOCK
        bin_t0 = (first_bin + np.arange(BINS_PER_BLOCK)) * self.bin_s
        local_hour_mid = np.array([self._local_hour(t + self.bin_s / 2.0) for t in bin_t0])
        batches = [
            self._block_jobs(code, block_index, bin_t0, local_hour_mid)
            for code in sorted(self._demand)
        ]
        merged = JobBatch.concat(batches)
        block = merged.take(np.argsort(merged.submit_s, kind="stable"))
        self._blocks[block_index] = block
        while len(self._blocks) > _BLOCKS_KEPT:
            del self._blocks[next(iter(self._blocks))]
        return block

    def _expected_counts(self, demand: WorkloadDemand, local_hour_mid: np.ndarray) -> np.ndarray:
        """Integral of the rate over each bin [jobs], exact for the sinusoid."""
        theta = 2.0 * np.pi * (local_hour_mid - demand.peak_hour_local) / 24.0
        half = self.bin_s / 2.0
        swing = (np.sin(_OMEGA_PER_S * half + theta) - np.sin(-_OMEGA_PER_S * half + theta)) / (
            _OMEGA_PER_S
        )
        return demand.per_day / _SECONDS_PER_DAY * (self.bin_s + demand.daily_amplitude * swing)

    def _block_jobs(
        self, code: int, block_index: int, bin_t0: np.ndarray, local_hour_mid: np.ndarray
    ) -> JobBatch:
        """One type's jobs in one block: a Poisson count per bin, then every job's columns,
        all from the (type, block) substream."""
        demand = self._demand[code]
        expected = np.maximum(self._expected_counts(demand, local_hour_mid), 0.0)
        if not np.any(expected > 0.0):
            return JobBatch.empty()
        rng = self._stream(code, block_index)
        counts = rng.poisson(expected)
        n = int(counts.sum())
        submit_s = np.sort(np.repeat(bin_t0, counts) + self.bin_s * rng.random(n))
        work_s = demand.duration_median_s * np.exp(demand.duration_sigma * rng.standard_normal(n))
        customer = rng.choice(len(self._customer_p), size=n, p=self._customer_p)
        spec = WORKLOAD_SPECS[code]
        if spec.on_asic:
            values, p = self._hashrate_sizes[code]
            hashrate_ths = values[rng.choice(values.size, size=n, p=p)]
            gpus = np.zeros(n)
            gpu_type = np.full(n, ANY_GPU_TYPE)
        else:
            values, p = self._gpu_sizes[code]
            gpus = values[rng.choice(values.size, size=n, p=p)]
            hashrate_ths = np.zeros(n)
            allowed = self._gpu_types[code]
            if allowed.size:
                gpu_type = allowed[rng.integers(0, allowed.size, size=n)]
            else:
                gpu_type = np.full(n, ANY_GPU_TYPE)
        if spec.has_deadline:
            deadline_s = submit_s + demand.deadline_factor * work_s
        else:
            deadline_s = np.full(n, np.inf)
        checkpoint_s = demand.checkpoint_interval_s if spec.checkpoints else np.inf
        return JobBatch.from_columns(
            type=np.full(n, code),
            customer=customer,
            submit_s=submit_s,
            work_s=work_s,
            gpus=gpus,
            gpu_type=gpu_type,
            hashrate_ths=hashrate_ths,
            deadline_s=deadline_s,
            checkpoint_interval_s=np.full(n, checkpoint_s),
            price_usd_per_gpu_hour=np.full(n, demand.price_usd_per_gpu_hour),
        )


def _size_table(choice: SizeChoice, where: str, integer: bool) -> tuple[np.ndarray, np.ndarray]:
    """Values and probabilities of a size distribution; GPU counts must be whole numbers."""
    values = np.array(choice.values, dtype=float)
    if integer and np.any(values != np.round(values)):
        bad = float(values[values != np.round(values)][0])
        raise ValueError(f"{where}.values: GPU counts must be whole numbers, got {bad}")
    weights = np.ones_like(values) if choice.weights is None else np.array(choice.weights)
    return values, weights / weights.sum()
