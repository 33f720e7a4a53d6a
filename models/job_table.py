"""Jobs as a growable struct of numpy arrays: one row per submitted workload.

At PRD scale (1M jobs per simulated day) no per-job Python object may live beyond a tight
loop, so the twin keeps every job as one row of :class:`JobTable`: request columns (what
the customer asked for, written once by :meth:`JobTable.append`) and state columns (what
the scheduler did, updated in place). ``job_id`` numbers jobs in submission order; it equals
the row index until finished rows are moved out with :meth:`JobTable.remove_rows` (which is
how a long run keeps memory flat). Columns are read as attributes (``jobs.submit_s``) and
are views of the filled rows: write through them, but fetch them again after an append or
a removal because both move data.

Time columns are simulation seconds since scenario start [s]; money in USD.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import polars as pl

from models.workload_types import MINING, TYPE_COUNT, TYPE_NAMES, WORKLOAD_SPECS


class JobTableError(ValueError):
    """A batch of jobs is malformed; the message names the column and the first bad row."""


QUEUED, RUNNING, COMPLETED, REJECTED = range(4)
"""Job status codes. A preempted job goes back to QUEUED (``preemptions`` counts it)."""
STATUS_NAMES: tuple[str, ...] = ("queued", "running", "completed", "rejected")

(
    NOT_REJECTED,
    GPU_TYPE_ABSENT,
    GANG_TOO_LARGE,
    HASHRATE_TOO_LARGE,
    RESIDENCY_UNMET,
    LATENCY_UNMET,
) = range(6)
"""Codes of the ``reject_reason`` column; :data:`REJECT_REASONS` gives their text."""
REJECT_REASONS: tuple[str, ...] = (
    "",
    "no GPU pool of the requested type",
    "gang asks for more GPUs than any matching pool holds",
    "asks for more TH/s than any facility's ASICs provide",
    "data residency: no site of the requested type in the customer's region",
    "no site of the requested type within the realtime network latency budget",
)

ANY_GPU_TYPE = -1
"""``gpu_type`` of a job that runs on any GPU type (and of mining jobs)."""


@dataclass(frozen=True, slots=True)
class JobBatch:
    """Request columns of new jobs, one entry per job, in submission order.

    Attributes:
        type: workload type code (int8, see ``models.workload_types``).
        customer: customer index (int32).
        submit_s: submission time [s].
        work_s: run time at full speed, without preemption [s].
        gpus: gang size [GPUs] (int16; 0 for mining).
        gpu_type: index into the twin's GPU type names (int16; -1: any type).
        hashrate_ths: hashrate asked for by a mining job [TH/s] (0 for GPU jobs).
        deadline_s: latest completion that meets the SLA [s] (inf: no deadline).
        checkpoint_interval_s: work between checkpoints [s] (inf: none).
        price_usd_per_gpu_hour: what the customer pays per GPU-hour of useful work [USD].
    """

    type: np.ndarray
    customer: np.ndarray
    submit_s: np.ndarray
    work_s: np.ndarray
    gpus: np.ndarray
    gpu_type: np.ndarray
    hashrate_ths: np.ndarray
    deadline_s: np.ndarray
    checkpoint_interval_s: np.ndarray
    price_usd_per_gpu_hour: np.ndarray

    DTYPES: ClassVar[dict[str, Any]] = {
        "type": np.int8,
        "customer": np.int32,
        "submit_s": np.float64,
        "work_s": np.float64,
        "gpus": np.int16,
        "gpu_type": np.int16,
        "hashrate_ths": np.float64,
        "deadline_s": np.float64,
        "checkpoint_interval_s": np.float64,
        "price_usd_per_gpu_hour": np.float64,
    }

    @classmethod
    def from_columns(cls, **columns: Any) -> JobBatch:
        """A batch from array-likes, cast to the column dtypes; all must have one length."""
        missing = sorted(set(cls.DTYPES) - set(columns))
        extra = sorted(set(columns) - set(cls.DTYPES))
        if missing or extra:
            raise JobTableError(f"job batch: missing columns {missing}, unknown columns {extra}")
        arrays = {name: np.asarray(columns[name], dtype=cls.DTYPES[name]) for name in cls.DTYPES}
        lengths = {name: a.shape for name, a in arrays.items()}
        if len({shape for shape in lengths.values()}) != 1 or arrays["type"].ndim != 1:
            raise JobTableError(f"job batch: columns must be 1-D of one length, got {lengths}")
        return cls(**arrays)

    @classmethod
    def empty(cls) -> JobBatch:
        """A batch of no jobs."""
        return cls.from_columns(**{name: [] for name in cls.DTYPES})

    @classmethod
    def concat(cls, batches: Sequence[JobBatch]) -> JobBatch:
        """All jobs of ``batches`` in order."""
        if not batches:
            return cls.empty()
        return cls(
            **{f.name: np.concatenate([getattr(b, f.name) for b in batches]) for f in fields(cls)}
        )

    def __len__(self) -> int:
        return int(self.type.shape[0])

    def take(self, order: np.ndarray) -> JobBatch:
        """The jobs at positions ``order`` (e.g. a sort permutation)."""
        return JobBatch(**{f.name: getattr(self, f.name)[order] for f in fields(self)})

    def rows(self, start: int, stop: int) -> JobBatch:
        """A copy of the jobs at positions ``start:stop``."""
        return JobBatch(**{name: getattr(self, name)[start:stop].copy() for name in self.DTYPES})

    def validate(self, first_job_id: int = 0) -> None:
        """Raise :class:`JobTableError` naming the column and job of the first bad value."""
        n = len(self)
        if n == 0 or self._plainly_valid():
            return
        gpu_job = self.type != MINING
        checks = (
            ("type", (self.type < 0) | (self.type >= TYPE_COUNT), f"must be 0..{TYPE_COUNT - 1}"),
            ("customer", self.customer < 0, "must be >= 0"),
            ("submit_s", ~np.isfinite(self.submit_s), "must be finite"),
            ("work_s", ~(np.isfinite(self.work_s) & (self.work_s > 0)), "must be finite, > 0"),
            ("gpus", gpu_job & (self.gpus < 1), "must be >= 1 for GPU jobs"),
            ("gpus", ~gpu_job & (self.gpus != 0), "must be 0 for mining jobs"),
            ("gpu_type", self.gpu_type < ANY_GPU_TYPE, "must be >= -1"),
            ("hashrate_ths", ~gpu_job & ~(self.hashrate_ths > 0), "must be > 0 for mining"),
            ("hashrate_ths", gpu_job & (self.hashrate_ths != 0), "must be 0 for GPU jobs"),
            ("deadline_s", np.isnan(self.deadline_s), "must not be NaN"),
            ("checkpoint_interval_s", ~(self.checkpoint_interval_s > 0), "must be > 0"),
            ("price_usd_per_gpu_hour", ~(self.price_usd_per_gpu_hour >= 0), "must be >= 0"),
        )
        for column, bad, reason in checks:
            if n and bad.any():
                row = int(np.flatnonzero(bad)[0])
                value = getattr(self, column)[row]
                raise JobTableError(f"job {first_job_id + row}: {column}={value} {reason}")

    def _plainly_valid(self) -> bool:
        """A quick pass over :meth:`validate`'s rules with one reduction per column: True
        means every row passes them all; False means look row by row (NaN fails here too).
        """
        if not (self.type.min() >= 0 and self.type.max() < TYPE_COUNT):
            return False
        mining = self.type == MINING
        gpus_ok = np.where(mining, self.gpus == 0, self.gpus >= 1).all()
        hashrate_ok = np.where(mining, self.hashrate_ths > 0, self.hashrate_ths == 0).all()
        return bool(
            gpus_ok
            and hashrate_ok
            and self.customer.min() >= 0
            and -np.inf < self.submit_s.min()
            and self.submit_s.max() < np.inf
            and self.work_s.min() > 0
            and self.work_s.max() < np.inf
            and self.gpu_type.min() >= ANY_GPU_TYPE
            and not np.isnan(self.deadline_s.min())
            and self.checkpoint_interval_s.min() > 0
            and self.price_usd_per_gpu_hour.min() >= 0
        )


class _Column:
    """Descriptor: a table column as a view of its filled rows."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, table: JobTable, owner: type | None = None) -> np.ndarray:
        return table._data[self.name][: table._size]


_STATE_COLUMNS: dict[str, tuple[Any, float]] = {
    "status": (np.int8, QUEUED),
    "start_s": (np.float64, np.nan),
    "end_s": (np.float64, np.nan),
    "facility": (np.int16, -1),
    "pool": (np.int32, -1),
    "remaining_s": (np.float64, np.nan),
    "segment_start_s": (np.float64, np.nan),
    "preemptions": (np.int16, 0),
    "lost_work_s": (np.float64, 0.0),
    "revenue_usd": (np.float64, 0.0),
    "reject_reason": (np.int8, NOT_REJECTED),
}
"""State columns with their dtype and the value a new job starts with."""


class JobTable:
    """Every job of a run as columns; rows are appended in batches, never removed.

    Request columns are those of :class:`JobBatch` plus ``job_id``. State columns:
    ``status`` (see :data:`STATUS_NAMES`), ``start_s`` (first start) and ``end_s``
    (completion) [s], ``facility`` and ``pool`` (where it runs or last ran; -1 none),
    ``remaining_s`` (work left at the start of the current run, lost work included) [s],
    ``segment_start_s`` (start of the current run) [s], ``preemptions``, ``lost_work_s``
    (work redone after preemptions) [s], ``revenue_usd`` (billed for useful work so far),
    ``reject_reason`` (see :data:`REJECT_REASONS`).
    """

    job_id = _Column()
    type = _Column()
    customer = _Column()
    submit_s = _Column()
    work_s = _Column()
    gpus = _Column()
    gpu_type = _Column()
    hashrate_ths = _Column()
    deadline_s = _Column()
    checkpoint_interval_s = _Column()
    price_usd_per_gpu_hour = _Column()
    status = _Column()
    start_s = _Column()
    end_s = _Column()
    facility = _Column()
    pool = _Column()
    remaining_s = _Column()
    segment_start_s = _Column()
    preemptions = _Column()
    lost_work_s = _Column()
    revenue_usd = _Column()
    reject_reason = _Column()

    def __init__(self, initial_capacity: int = 1024) -> None:
        self._size = 0
        self._next_id = 0
        self._data: dict[str, np.ndarray] = {}
        capacity = max(int(initial_capacity), 1)
        self._data["job_id"] = np.empty(capacity, dtype=np.int64)
        for name, dtype in JobBatch.DTYPES.items():
            self._data[name] = np.empty(capacity, dtype=dtype)
        for name, (dtype, _fill) in _STATE_COLUMNS.items():
            self._data[name] = np.empty(capacity, dtype=dtype)

    def __len__(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        """Rows allocated [-]; grows by doubling."""
        return int(self._data["job_id"].shape[0])

    @property
    def nbytes(self) -> int:
        """Memory held by the column arrays [bytes]."""
        return sum(a.nbytes for a in self._data.values())

    def append(self, batch: JobBatch) -> range:
        """Add ``batch`` as new queued jobs; returns their rows.

        Raises:
            JobTableError: a value is out of range (see :meth:`JobBatch.validate`).
        """
        batch.validate(first_job_id=self._size)
        n = len(batch)
        start, stop = self._size, self._size + n
        self._reserve(stop)
        self._data["job_id"][start:stop] = np.arange(self._next_id, self._next_id + n)
        self._next_id += n
        for name in JobBatch.DTYPES:
            self._data[name][start:stop] = getattr(batch, name)
        for name, (_dtype, fill) in _STATE_COLUMNS.items():
            self._data[name][start:stop] = fill
        self._data["remaining_s"][start:stop] = batch.work_s
        self._size = stop
        return range(start, stop)

    def remove_rows(self, drop: np.ndarray) -> tuple[JobTable, np.ndarray]:
        """Move the rows where ``drop`` is True into a new table, keeping the order of both.

        Returns ``(removed, new_row)``: the removed jobs as their own table (job ids kept),
        and for every old row its new row index (-1 for a removed row).
        """
        drop = np.asarray(drop, dtype=bool)
        if drop.shape != (self._size,):
            raise JobTableError(f"remove_rows: need {self._size} flags, got shape {drop.shape}")
        keep = ~drop
        kept = int(keep.sum())
        removed = JobTable(initial_capacity=max(self._size - kept, 1))
        removed._size = self._size - kept
        removed._next_id = self._next_id
        for name, column in self._data.items():
            filled = column[: self._size]
            removed._data[name][: removed._size] = filled[drop]
            column[:kept] = filled[keep]
        self._size = kept
        new_row = np.full(drop.shape, -1, dtype=np.int64)
        new_row[keep] = np.arange(kept)
        return removed, new_row

    def _reserve(self, rows: int) -> None:
        capacity = self.capacity
        if rows <= capacity:
            return
        while capacity < rows:
            capacity *= 2
        for name, old in self._data.items():
            grown = np.empty(capacity, dtype=old.dtype)
            grown[: self._size] = old[: self._size]
            self._data[name] = grown

    def status_counts(self, submitted_before_s: float = np.inf) -> dict[str, int]:
        """Jobs per status among those submitted before ``submitted_before_s`` [s]."""
        mask = self.submit_s < submitted_before_s
        counts = np.bincount(self.status[mask], minlength=len(STATUS_NAMES))
        return {name: int(counts[i]) for i, name in enumerate(STATUS_NAMES)}

    def sla_met(self, now_s: float) -> np.ndarray:
        """Per job: 1.0 SLA met, 0.0 missed, NaN not yet known at ``now_s`` [s].

        Latency types (realtime inference, mining) meet it iff they start within
        ``max_latency_s`` of submission; deadline types (batch inference, training) iff they
        complete by ``deadline_s``. A rejected job misses it; an unfinished job misses it once
        its latency or deadline has passed at ``now_s``.
        """
        types = self.type
        submit, start, end = self.submit_s, self.start_s, self.end_s
        latency_limit = np.array([s.max_latency_s for s in WORKLOAD_SPECS])[types]
        has_deadline = np.array([s.has_deadline for s in WORKLOAD_SPECS])[types]
        wait = start - submit
        latency_met = np.where(
            np.isnan(start),
            np.where(now_s - submit > latency_limit, 0.0, np.nan),
            (wait <= latency_limit).astype(float),
        )
        deadline_met = np.where(
            np.isnan(end),
            np.where(now_s > self.deadline_s, 0.0, np.nan),
            (end <= self.deadline_s).astype(float),
        )
        result = np.where(has_deadline, deadline_met, latency_met)
        result[self.status == REJECTED] = 0.0
        return result

    def to_columns(self, now_s: float) -> dict[str, np.ndarray]:
        """Per-job record columns as arrays of codes (for the recorder), at ``now_s`` [s].

        Keys: job_id, type (code), customer (index), submit_s, work_s, start_s, end_s,
        wait_s (NaN if never started), facility (index, -1 none), gpu_type (index, -1 any),
        gpus, hashrate_ths, status (code), sla_met (1/0/NaN), preemptions, lost_work_s,
        served_s (useful work done by ``now_s`` [s]), revenue_usd, reject_reason (code).
        """
        remaining = np.where(self.status == COMPLETED, 0.0, self.remaining_s)
        running = self.status == RUNNING
        remaining[running] -= now_s - self.segment_start_s[running]
        served = np.where(self.status == REJECTED, 0.0, self.work_s - remaining)
        return {
            "job_id": self.job_id.copy(),
            "type": self.type.copy(),
            "customer": self.customer.copy(),
            "submit_s": self.submit_s.copy(),
            "work_s": self.work_s.copy(),
            "start_s": self.start_s.copy(),
            "end_s": self.end_s.copy(),
            "wait_s": self.start_s - self.submit_s,
            "facility": self.facility.copy(),
            "gpu_type": self.gpu_type.copy(),
            "gpus": self.gpus.copy(),
            "hashrate_ths": self.hashrate_ths.copy(),
            "status": self.status.copy(),
            "sla_met": self.sla_met(now_s),
            "preemptions": self.preemptions.copy(),
            "lost_work_s": self.lost_work_s.copy(),
            "served_s": np.clip(served, 0.0, self.work_s),
            "revenue_usd": self.revenue_usd.copy(),
            "reject_reason": self.reject_reason.copy(),
        }

    def to_polars(
        self,
        now_s: float,
        customer_names: Sequence[str],
        facility_ids: Sequence[str],
        gpu_type_names: Sequence[str],
    ) -> pl.DataFrame:
        """The job record as a polars frame with names instead of codes.

        Columns: job_id, type, customer, submit_s, work_s, start_s, end_s, wait_s,
        facility_id, gpu_type, gpus, hashrate_ths, status, sla_met (null: not yet known),
        preemptions, lost_work_s, served_s, revenue_usd, reject_reason (null: not
        rejected). Names are strings (null facility_id: never placed; null gpu_type: any
        type); times [s] are NaN for "not yet"; counts are Int64.
        """
        cols = self.to_columns(now_s)
        return pl.DataFrame(
            {
                "job_id": cols["job_id"],
                "type": _names("type", cols["type"], TYPE_NAMES),
                "customer": _names("customer", cols["customer"], customer_names),
                "submit_s": cols["submit_s"],
                "work_s": cols["work_s"],
                "start_s": cols["start_s"],
                "end_s": cols["end_s"],
                "wait_s": cols["wait_s"],
                "facility_id": _names("facility_id", cols["facility"], facility_ids),
                "gpu_type": _names("gpu_type", cols["gpu_type"], gpu_type_names),
                "gpus": cols["gpus"].astype(np.int64),
                "hashrate_ths": cols["hashrate_ths"],
                "status": _names("status", cols["status"], STATUS_NAMES),
                "sla_met": pl.Series(cols["sla_met"], nan_to_null=True).cast(pl.Boolean),
                "preemptions": cols["preemptions"].astype(np.int64),
                "lost_work_s": cols["lost_work_s"],
                "served_s": cols["served_s"],
                "revenue_usd": cols["revenue_usd"],
                "reject_reason": _names(
                    "reject_reason",
                    np.where(cols["reject_reason"] > 0, cols["reject_reason"], -1),
                    REJECT_REASONS,
                ),
            }
        )


def _names(column: str, codes: np.ndarray, names: Sequence[str]) -> pl.Series:
    """Codes mapped to their names as a string series; code -1 becomes null."""
    codes = codes.astype(np.int64)
    if codes.size and int(codes.max()) >= len(names):
        raise JobTableError(
            f"{column}: code {int(codes.max())} has no name (only {len(names)} names given)"
        )
    lookup = pl.Series(column, [*names, None], dtype=pl.String)
    return lookup.gather(np.where(codes >= 0, codes, len(names)))
