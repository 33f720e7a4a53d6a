"""Per-interval results of a run: cheap in-memory recording, then atomic result files.

The controller records one row per facility per dispatch interval into preallocated numpy
columns (no allocation, no polars, no dict building inside the loop). At the end of a run
:meth:`Recorder.write` writes the run folder::

    results/<run>/metadata.yaml       run_metadata(): seed, resolved scenario, git, versions
    results/<run>/timeseries.parquet  Recorder.timeseries(): long form, facility x interval
    results/<run>/jobs.parquet        one row per job (JOBS_SCHEMA)
    results/<run>/<name>.parquet      Recorder.tables: faults, alerts, telemetry_summary,
                                      telemetry (sampled devices), see twin.health
    results/<run>/kpis.json           twin.kpis.compute_kpis() via twin.kpis.dump_kpis()
    results/<run>/report.html         twin.report.write_report()

Every file is written to a temporary name in the same folder and renamed into place, so a
crash leaves either the previous file or the complete new one, never half a file.

Column conventions (units are in the names; each value belongs to one facility and one
interval ``[t_s, t_s + interval_s)``):

- prices, ambient, PUE, caps, BTC economics, counts: interval means (counts of devices in a
  state may be fractional because they are time averages);
- ``power_*_mw`` and ``curtailed_mw``: interval means; ``power_total_mw`` is the facility
  draw including overhead, the quantity the cap applies to;
- ``revenue_*_usd``, ``cost_*_usd`` and ``energy_mwh``: totals accrued in the interval;
- ``four_cp`` is 1.0 in a 4CP system-peak interval else 0.0; ``grid_event_fraction`` is the
  share of the interval covered by a grid event [0-1];
- ``queued_jobs`` is the length of the single global queue at interval end and is repeated
  on every facility row of that interval (take one value per interval, never a sum);
  ``running_jobs`` counts jobs running at that facility at interval end.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
import polars as pl
import yaml

from twin.scenario import PROJECT_ROOT, Scenario

REVENUE_STREAMS: tuple[str, ...] = (
    "mining",
    "ai_inference",
    "training",
    "spot",
    "ancillary",
    "resale",
    "demand_response",
)
"""Revenue streams; stream ``s`` accrues in column ``revenue_<s>_usd`` (REVENUE_COLUMNS)."""

COST_STREAMS: tuple[str, ...] = ("energy", "transmission_4cp", "penalties", "data_transfer")
"""Cost streams; stream ``s`` accrues in column ``cost_<s>_usd`` (COST_COLUMNS)."""

REVENUE_COLUMNS: Mapping[str, str] = {s: f"revenue_{s}_usd" for s in REVENUE_STREAMS}
COST_COLUMNS: Mapping[str, str] = {s: f"cost_{s}_usd" for s in COST_STREAMS}

POWER_USE_COLUMNS: tuple[str, ...] = (
    "power_mining_mw",
    "power_inference_mw",
    "power_batch_mw",
    "power_training_mw",
    "power_spot_mw",
    "power_gpu_idle_mw",
    "power_overhead_mw",
)
"""The parts of ``power_total_mw`` by use: IT power per use plus PUE overhead [MW]."""

GPU_STATE_COLUMNS: tuple[str, ...] = (
    "gpus_inference",
    "gpus_batch",
    "gpus_training",
    "gpus_spot",
    "gpus_idle",
    "gpus_failed",
)
"""Mean GPU counts per state; every GPU of a facility is in exactly one state."""

TIMESERIES_COLUMNS: tuple[str, ...] = (
    "price_usd_per_mwh",
    "ambient_c",
    "pue_mining",
    "pue_ai",
    "power_cap_mw",
    *POWER_USE_COLUMNS,
    "power_total_mw",
    "curtailed_mw",
    "hashrate_ths",
    "asics_active",
    "asics_sleeping",
    "asics_failed",
    *GPU_STATE_COLUMNS,
    "btc_price_usd",
    "hashprice_usd_per_ths_day",
    "difficulty",
    *REVENUE_COLUMNS.values(),
    *COST_COLUMNS.values(),
    "energy_mwh",
    "ancillary_offer_mw",
    "four_cp",
    "grid_event_fraction",
    "queued_jobs",
    "running_jobs",
)
"""Value columns of ``timeseries.parquet``, all float64 (see the module docstring)."""

KEY_COLUMNS: tuple[str, ...] = ("t_s", "time", "facility_id")
"""Columns before TIMESERIES_COLUMNS: interval start [s since scenario start], the same
instant as a UTC datetime, and the facility."""

JOBS_SCHEMA: Mapping[str, pl.DataType] = {
    "job_id": pl.Int64(),
    "type": pl.String(),
    "customer": pl.String(),
    "submit_s": pl.Float64(),
    "work_s": pl.Float64(),
    "start_s": pl.Float64(),
    "end_s": pl.Float64(),
    "wait_s": pl.Float64(),
    "facility_id": pl.String(),
    "gpu_type": pl.String(),
    "gpus": pl.Int64(),
    "hashrate_ths": pl.Float64(),
    "status": pl.String(),
    "sla_met": pl.Boolean(),
    "preemptions": pl.Int64(),
    "lost_work_s": pl.Float64(),
    "served_s": pl.Float64(),
    "revenue_usd": pl.Float64(),
    "reject_reason": pl.String(),
}
"""Columns of ``jobs.parquet``. Times in s since scenario start; ``start_s``/``wait_s`` are
NaN when never started, ``end_s`` NaN when not finished; ``status`` is one of JOB_STATUSES;
``sla_met`` is null while undecided; ``lost_work_s`` is work redone after preemptions
and ``served_s`` the useful work done by the end of the run [s]; ``reject_reason`` is
null unless rejected."""

JOB_STATUSES: tuple[str, ...] = ("completed", "rejected", "queued", "running")

PACKAGES: tuple[str, ...] = (
    "numpy",
    "pandas",
    "polars",
    "simpy",
    "scipy",
    "pydantic",
    "plotly",
    "pyarrow",
)
"""Packages whose installed versions go into metadata.yaml (with Python's)."""

METADATA_FILE = "metadata.yaml"
TIMESERIES_FILE = "timeseries.parquet"
JOBS_FILE = "jobs.parquet"
KPIS_FILE = "kpis.json"
REPORT_FILE = "report.html"

_COLUMN_INDEX: Mapping[str, int] = {name: i for i, name in enumerate(TIMESERIES_COLUMNS)}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RecorderError(ValueError):
    """Bad arguments to the recorder or results that cannot be written (names the field)."""


class Recorder:
    """Preallocated per-facility, per-interval value columns of one run.

    Storage is one float64 block ``[n_intervals, n_facilities, n_columns]`` filled with NaN,
    so one facility row is contiguous (cheap :meth:`record`) and each column is a strided
    ``[n_intervals, n_facilities]`` view (cheap :meth:`record_many`). Memory is
    ``8 B x n_intervals x n_facilities x len(TIMESERIES_COLUMNS)`` (a year of 5-min
    intervals at 5 facilities: about 200 MB).
    """

    def __init__(
        self,
        facility_ids: list[str],
        n_intervals: int,
        interval_s: float,
        start: datetime,
    ) -> None:
        """Args:
        facility_ids: facility ids in scenario order (row order within an interval).
        n_intervals: planned number of dispatch intervals of the run.
        interval_s: dispatch interval length [s].
        start: scenario start, timezone-aware; stored as UTC.
        """
        ids = list(facility_ids)
        if not ids:
            raise RecorderError("facility_ids: must name at least one facility")
        if len(set(ids)) != len(ids):
            raise RecorderError(f"facility_ids: duplicate ids in {ids}")
        if n_intervals < 0:
            raise RecorderError(f"n_intervals: must be >= 0, got {n_intervals}")
        if not interval_s > 0:
            raise RecorderError(f"interval_s: must be > 0, got {interval_s}")
        if start.tzinfo is None or start.utcoffset() is None:
            raise RecorderError("start: needs a time zone (e.g. 2024-06-01T00:00:00+00:00)")
        self.facility_ids: tuple[str, ...] = tuple(ids)
        self.n_intervals = int(n_intervals)
        self.interval_s = float(interval_s)
        self.start = start.astimezone(UTC)
        self._data = np.full(
            (self.n_intervals, len(ids), len(TIMESERIES_COLUMNS)), np.nan, dtype=np.float64
        )
        self._recorded = np.zeros(self.n_intervals, dtype=bool)
        self.tables: dict[str, pl.DataFrame] = {}
        """Further tables of the run (faults, alerts, telemetry), written as
        ``<name>.parquet`` next to the time series."""
        self._positions: dict[tuple[str, ...], np.ndarray] = {}
        """Column positions of each set of names :meth:`record` has seen (a loop records
        the same names every interval)."""

    # ------------------------------------------------------------------ recording

    def record(self, interval_index: int, facility_index: int, values: Mapping[str, float]) -> None:
        """Store some or all columns of one facility row; names not given stay as they are.

        Raises:
            KeyError: a name that is not in TIMESERIES_COLUMNS (the message names it).
            IndexError: ``interval_index`` or ``facility_index`` out of range.
        """
        self._check_interval(interval_index)
        if not 0 <= facility_index < len(self.facility_ids):
            raise IndexError(
                f"facility_index {facility_index} out of range 0..{len(self.facility_ids) - 1}"
            )
        names = tuple(values)
        positions = self._positions.get(names)
        if positions is None:
            try:
                positions = np.array([_COLUMN_INDEX[name] for name in names], dtype=np.intp)
            except KeyError as error:
                raise KeyError(f"unknown timeseries column {error.args[0]!r}") from None
            self._positions[names] = positions
        self._data[interval_index, facility_index, positions] = list(values.values())
        self._recorded[interval_index] = True

    def record_many(self, interval_index: int, column: str, values_by_facility: Any) -> None:
        """Store one column for all facilities of one interval (array in facility order).

        Raises:
            KeyError: ``column`` is not in TIMESERIES_COLUMNS.
            IndexError: ``interval_index`` out of range.
            RecorderError: ``values_by_facility`` does not have one value per facility.
        """
        self._check_interval(interval_index)
        position = _COLUMN_INDEX.get(column)
        if position is None:
            raise KeyError(f"unknown timeseries column {column!r}")
        values = np.asarray(values_by_facility, dtype=np.float64)
        if values.shape != (len(self.facility_ids),):
            raise RecorderError(
                f"record_many({column!r}): expected {len(self.facility_ids)} values "
                f"(one per facility), got shape {values.shape}"
            )
        self._data[interval_index, :, position] = values
        self._recorded[interval_index] = True

    def column(self, name: str) -> np.ndarray:
        """Read-only view of one column, shape ``[n_intervals, n_facilities]`` (NaN = unset)."""
        position = _COLUMN_INDEX.get(name)
        if position is None:
            raise KeyError(f"unknown timeseries column {name!r}")
        view = self._data[:, :, position]
        view.flags.writeable = False
        return view

    @property
    def recorded_intervals(self) -> int:
        """Number of intervals with at least one recorded value."""
        return int(self._recorded.sum())

    def _check_interval(self, interval_index: int) -> None:
        if not 0 <= interval_index < self.n_intervals:
            raise IndexError(
                f"interval_index {interval_index} out of range 0..{self.n_intervals - 1}"
            )

    # ------------------------------------------------------------------ output

    def timeseries(self) -> pl.DataFrame:
        """Long-form table: one row per facility per recorded interval, in time order.

        Columns: ``t_s`` (interval start [s since scenario start], float64), ``time`` (the
        same instant, UTC datetime[us]), ``facility_id`` (string), then TIMESERIES_COLUMNS.
        Intervals never recorded (a run that stopped early) are left out.
        """
        intervals = np.flatnonzero(self._recorded)
        n_facilities = len(self.facility_ids)
        t_s = np.repeat(intervals.astype(np.float64) * self.interval_s, n_facilities)
        start_us = (self.start - _EPOCH) // timedelta(microseconds=1)
        time_us = start_us + np.rint(t_s * 1e6).astype(np.int64)
        rows = self._data[intervals].reshape(-1, len(TIMESERIES_COLUMNS))
        columns: dict[str, Any] = {
            "t_s": pl.Series("t_s", t_s, dtype=pl.Float64),
            "time": pl.Series("time", time_us, dtype=pl.Int64)
            .cast(pl.Datetime("us"))
            .dt.replace_time_zone("UTC"),
            "facility_id": pl.Series(
                "facility_id", list(self.facility_ids) * len(intervals), dtype=pl.String
            ),
        }
        for position, name in enumerate(TIMESERIES_COLUMNS):
            columns[name] = pl.Series(name, np.ascontiguousarray(rows[:, position]))
        return pl.DataFrame(columns)

    def write(
        self,
        out_dir: Path,
        *,
        metadata: Mapping[str, Any],
        jobs: pl.DataFrame,
        kpis: Mapping[str, Any],
    ) -> Path:
        """Write the run folder (see the module docstring), each file atomically; returns it.

        Order: timeseries, jobs, kpis, metadata, then the report (which reads the others).

        Raises:
            RecorderError: ``metadata`` holds a value YAML cannot represent plainly, or
                ``jobs`` lacks a column of JOBS_SCHEMA.
        """
        # Imported here because both modules import this one's column constants.
        from twin.kpis import dump_kpis
        from twin.report import write_report

        missing = [name for name in JOBS_SCHEMA if name not in jobs.columns]
        if missing:
            raise RecorderError(f"jobs: missing column(s) {missing}")
        metadata_text = _metadata_yaml(metadata)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        timeseries = self.timeseries()
        with atomic_output(out_dir / TIMESERIES_FILE, binary=True) as handle:
            timeseries.write_parquet(handle)
        with atomic_output(out_dir / JOBS_FILE, binary=True) as handle:
            jobs.write_parquet(handle)
        for name, table in self.tables.items():
            with atomic_output(out_dir / f"{name}.parquet", binary=True) as handle:
                table.write_parquet(handle)
        dump_kpis(kpis, out_dir / KPIS_FILE)
        with atomic_output(out_dir / METADATA_FILE) as handle:
            handle.write(metadata_text)
        write_report(out_dir)
        return out_dir


def _metadata_yaml(metadata: Mapping[str, Any]) -> str:
    try:
        return yaml.safe_dump(dict(metadata), sort_keys=False, allow_unicode=True)
    except yaml.representer.RepresenterError as error:
        bad = error.args[1] if len(error.args) > 1 else error
        raise RecorderError(
            f"metadata: {type(bad).__name__} value {bad!r} is not plain YAML "
            "(use str, int, float, bool, None, lists and dicts)"
        ) from None


def _default_file_mode() -> int:
    """0666 less the process umask: what a plain ``open(path, "w")`` would give."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_file_mode()


@contextlib.contextmanager
def atomic_output(path: Path, *, binary: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on success fsync and rename it to ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    descriptor, temp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    temp_path = Path(temp_name)
    try:
        mode = "wb" if binary else "w"
        encoding = None if binary else "utf-8"
        with os.fdopen(descriptor, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_path, _FILE_MODE)  # mkstemp makes 0600; results are for sharing
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------- metadata


def run_metadata(
    scenario: Scenario,
    seed: int,
    runtime_s: float,
    started_at: datetime | str,
) -> dict[str, Any]:
    """Everything needed to reproduce and identify a run, as plain YAML-able values.

    Args:
        scenario: the resolved scenario that ran.
        seed: the seed actually used (may differ from ``scenario.seed`` by override).
        runtime_s: wall-clock duration of the run [s].
        started_at: wall-clock start of the run (datetime -> ISO 8601 text).
    """
    revision, dirty = git_revision()
    return {
        "name": scenario.name,
        "seed": int(seed),
        "started_at": started_at.isoformat() if isinstance(started_at, datetime) else started_at,
        "runtime_s": round(float(runtime_s), 3),
        "git": {"revision": revision, "dirty": dirty},
        "versions": package_versions(),
        "platform": platform.platform(),
        "scenario": scenario.model_dump(mode="json"),
    }


def git_revision(repo_dir: Path = PROJECT_ROOT) -> tuple[str, bool | None]:
    """``(commit hash, dirty)`` of the repository holding the code; ``("unknown", None)``
    when it is not a git checkout, has no commit yet, or git is not installed."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=repo_dir,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if head.returncode != 0:
            return "unknown", None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo_dir,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown", None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return head.stdout.strip(), dirty


def package_versions() -> dict[str, str]:
    """Installed versions of Python and of PACKAGES (``"not installed"`` when absent)."""
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
