"""Key performance indicators of a run, and their canonical ``kpis.json``.

:func:`compute_kpis` turns the long-form time series and the jobs table (see
:mod:`twin.recorder`) into a nested dict of plain ints, floats, strings and ``None``.
Values are rounded to a fixed resolution (USD to cents, MWh to kWh, fractions to 1e-6,
seconds to ms) and every total is the sum of its rounded parts, so the file reads
consistently (``net_usd == revenue_usd.total - cost_usd.total`` exactly) and two identical
runs write byte-identical files apart from ``wall_s``.

Missing values (NaN) in a time-series column are skipped in sums; a statistic with no
data at all (e.g. the wait percentile of a type that never started) is ``null``.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from twin.recorder import (
    COST_COLUMNS,
    JOB_STATUSES,
    JOBS_SCHEMA,
    REVENUE_COLUMNS,
    TIMESERIES_COLUMNS,
    atomic_output,
)
from twin.scenario import WORKLOAD_TYPES

USD_DIGITS = 2
ENERGY_DIGITS = 3
FRACTION_DIGITS = 6
SECONDS_DIGITS = 3
HOURS_DIGITS = 4
PRICE_DIGITS = 2

BUSY_GPU_COLUMNS: tuple[str, ...] = ("gpus_inference", "gpus_batch", "gpus_training", "gpus_spot")


class KpiError(ValueError):
    """The inputs to :func:`compute_kpis` are not usable (names the column or row)."""


def compute_kpis(
    timeseries: pl.DataFrame,
    jobs: pl.DataFrame,
    *,
    sim_days: float,
    wall_s: float,
    interval_s: float,
) -> dict[str, Any]:
    """KPIs of one run.

    Args:
        timeseries: long form from :meth:`twin.recorder.Recorder.timeseries` (or read back
            from ``timeseries.parquet``).
        jobs: one row per job with the columns of :data:`twin.recorder.JOBS_SCHEMA`.
        sim_days: simulated duration [days].
        wall_s: wall-clock duration of the run [s].
        interval_s: dispatch interval [s]; converts per-interval MW means to MWh and
            interval counts to hours.

    Returns a dict with keys ``net_usd``, ``revenue_usd`` (``total`` + one per revenue
    stream), ``cost_usd`` (``total`` + one per cost stream), ``energy_mwh``,
    ``utilization`` (``gpu``, ``asic``, ``power``), ``sla`` (per workload type:
    ``met_fraction``, ``wait_p50_s``, ``wait_p99_s``, ``count``), ``workloads``,
    ``scheduling`` (``preemptions``, ``lost_work_gpu_h``, ``rejected_by_reason``),
    ``fairness`` (``jain``, ``customers``, ``saturated``), ``curtailment`` (``mwh``, ``hours``),
    ``per_facility``, ``sim_days``, ``wall_s``.
    Definitions are in the docstrings of the helpers below.

    Raises:
        KpiError: a required column is missing, ``interval_s`` is not positive, or a job has
            an unknown ``type`` or ``status``.
    """
    if not interval_s > 0:
        raise KpiError(f"interval_s: must be > 0, got {interval_s}")
    _require_columns(timeseries, ("t_s", "facility_id", *TIMESERIES_COLUMNS), "timeseries")
    _require_columns(jobs, tuple(JOBS_SCHEMA), "jobs")
    # categorical (Enum) columns compare as plain text; null times count as "not yet"
    jobs = jobs.with_columns(pl.col("type", "status").cast(pl.String))
    _check_categories(jobs, "type", WORKLOAD_TYPES)
    _check_categories(jobs, "status", JOB_STATUSES)
    interval_h = interval_s / 3600.0

    revenue = _stream_totals(timeseries, REVENUE_COLUMNS)
    cost = _stream_totals(timeseries, COST_COLUMNS)
    return {
        "net_usd": _usd(revenue["total"] - cost["total"]),
        "revenue_usd": revenue,
        "cost_usd": cost,
        "energy_mwh": _round(_nansum(timeseries, "energy_mwh"), ENERGY_DIGITS),
        "utilization": _utilization(timeseries),
        "sla": _sla(jobs),
        "workloads": _workloads(jobs),
        "scheduling": _scheduling(jobs),
        "fairness": fairness(jobs),
        "curtailment": _curtailment(timeseries, interval_h),
        "per_facility": _per_facility(timeseries),
        "sim_days": _round(sim_days, FRACTION_DIGITS),
        "wall_s": _round(wall_s, SECONDS_DIGITS),
    }


def kpis_without_wall(kpis: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``kpis`` without ``wall_s``: the part that must repeat exactly."""
    return {key: copy.deepcopy(value) for key, value in kpis.items() if key != "wall_s"}


def kpis_json(kpis: Mapping[str, Any]) -> str:
    """Canonical JSON text: key order as built, indent 2, NaN/inf as null, final newline."""
    return json.dumps(_plain(kpis), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def dump_kpis(kpis: Mapping[str, Any], path: Path) -> Path:
    """Write :func:`kpis_json` of ``kpis`` to ``path`` atomically; returns ``path``."""
    text = kpis_json(kpis)
    with atomic_output(Path(path)) as handle:
        handle.write(text)
    return Path(path)


# ---------------------------------------------------------------------- money and energy


def _stream_totals(timeseries: pl.DataFrame, columns: Mapping[str, str]) -> dict[str, float]:
    """``{"total": ..., stream: ...}`` [USD]; the total is the sum of the rounded streams."""
    by_stream = {stream: _usd(_nansum(timeseries, column)) for stream, column in columns.items()}
    return {"total": _usd(sum(by_stream.values())), **by_stream}


def _per_facility(timeseries: pl.DataFrame) -> dict[str, dict[str, float | None]]:
    """Per facility (in order of first appearance): ``net_usd``, ``energy_mwh``,
    ``revenue_usd``, ``cost_usd`` (totals over streams) and ``mean_price_usd_per_mwh``
    (time mean of the settlement point price over recorded intervals)."""
    facility_ids = timeseries["facility_id"].cast(pl.String).unique(maintain_order=True)
    result: dict[str, dict[str, float | None]] = {}
    for facility_id in facility_ids.to_list():
        rows = timeseries.filter(pl.col("facility_id").cast(pl.String) == facility_id)
        revenue = _stream_totals(rows, REVENUE_COLUMNS)["total"]
        cost = _stream_totals(rows, COST_COLUMNS)["total"]
        prices = _finite(rows, "price_usd_per_mwh")
        result[str(facility_id)] = {
            "net_usd": _usd(revenue - cost),
            "energy_mwh": _round(_nansum(rows, "energy_mwh"), ENERGY_DIGITS),
            "revenue_usd": revenue,
            "cost_usd": cost,
            "mean_price_usd_per_mwh": (
                _round(float(prices.mean()), PRICE_DIGITS) if prices.size else None
            ),
        }
    return result


# ---------------------------------------------------------------------- utilization


def _utilization(timeseries: pl.DataFrame) -> dict[str, float | None]:
    """Fleet-wide utilization fractions over all facility-intervals.

    - ``gpu``: busy GPU-hours (inference + batch + training + spot) over available
      GPU-hours (busy + idle, i.e. all GPUs minus failed ones);
    - ``asic``: active ASIC-hours over all ASIC-hours (active + sleeping + failed);
    - ``power``: energy drawn over the energy the caps allow, i.e.
      ``sum(power_total_mw) / sum(power_cap_mw)`` over facility-intervals — the mean of
      ``power_total_mw / power_cap_mw`` weighted by each facility's cap.

    All intervals are equally long, so hours cancel; ``None`` when a denominator is 0.
    """
    busy = sum(_nansum(timeseries, column) for column in BUSY_GPU_COLUMNS)
    idle = _nansum(timeseries, "gpus_idle")
    active = _nansum(timeseries, "asics_active")
    all_asics = active + _nansum(timeseries, "asics_sleeping") + _nansum(timeseries, "asics_failed")
    both = timeseries.select("power_total_mw", "power_cap_mw").filter(
        pl.col("power_total_mw").is_not_nan() & pl.col("power_cap_mw").is_not_nan()
    )
    drawn = float(both["power_total_mw"].sum())
    allowed = float(both["power_cap_mw"].sum())
    return {
        "gpu": _ratio(busy, busy + idle),
        "asic": _ratio(active, all_asics),
        "power": _ratio(drawn, allowed),
    }


def _curtailment(timeseries: pl.DataFrame, interval_h: float) -> dict[str, float | None]:
    """``mwh``: mining energy shed, sum of ``curtailed_mw x interval_h``; ``hours``: time
    during which the fleet as a whole shed anything (intervals whose summed
    ``curtailed_mw`` over facilities is > 0, times ``interval_h``)."""
    fleet = (
        timeseries.select("t_s", pl.col("curtailed_mw").fill_nan(None))
        .group_by("t_s")
        .agg(pl.col("curtailed_mw").sum())
    )
    curtailed_intervals = int((fleet["curtailed_mw"] > 0).sum())
    return {
        "mwh": _round(_nansum(timeseries, "curtailed_mw") * interval_h, ENERGY_DIGITS),
        "hours": _round(curtailed_intervals * interval_h, HOURS_DIGITS),
    }


# ---------------------------------------------------------------------- jobs


def _sla(jobs: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """Per workload type: ``count`` (jobs submitted), ``met_fraction`` (share with
    ``sla_met`` true among jobs whose SLA is decided, i.e. not null), ``wait_p50_s`` and
    ``wait_p99_s`` (linear-interpolated percentiles of ``wait_s`` over started jobs);
    ``None`` where there is nothing to measure."""
    result: dict[str, dict[str, Any]] = {}
    for workload_type in WORKLOAD_TYPES:
        rows = jobs.filter(pl.col("type") == workload_type)
        decided = rows["sla_met"].drop_nulls().to_numpy().astype(np.float64)
        waits = rows.filter(pl.col("start_s").is_not_nan())["wait_s"].to_numpy()
        waits = waits[np.isfinite(waits)]
        p50, p99 = np.percentile(waits, [50, 99]) if waits.size else (math.nan, math.nan)
        result[workload_type] = {
            "met_fraction": (
                _round(float(decided.mean()), FRACTION_DIGITS) if decided.size else None
            ),
            "wait_p50_s": _round(float(p50), SECONDS_DIGITS),
            "wait_p99_s": _round(float(p99), SECONDS_DIGITS),
            "count": rows.height,
        }
    return result


def _workloads(jobs: pl.DataFrame) -> dict[str, int]:
    """Job counts: all submitted, by final status, and those preempted at least once."""
    status = jobs["status"]
    return {
        "submitted": jobs.height,
        "completed": int((status == "completed").sum()),
        "preempted": int((jobs["preemptions"] > 0).sum()),
        "rejected": int((status == "rejected").sum()),
        "queued_at_end": int((status == "queued").sum()),
        "running_at_end": int((status == "running").sum()),
    }


def _scheduling(jobs: pl.DataFrame) -> dict[str, Any]:
    """``preemptions`` (all stops of running jobs), ``lost_work_gpu_h`` (GPU work redone
    after preemptions [GPU-h]) and ``rejected_by_reason`` (job counts by reason text)."""
    lost_gpu_s = (jobs["gpus"].cast(pl.Float64) * jobs["lost_work_s"]).sum()
    reasons = jobs.filter(pl.col("reject_reason").is_not_null())["reject_reason"].value_counts(
        sort=True
    )
    return {
        "preemptions": int(jobs["preemptions"].sum()),
        "lost_work_gpu_h": _round(float(lost_gpu_s) / 3600.0, ENERGY_DIGITS),
        "rejected_by_reason": {
            str(row["reject_reason"]): int(row["count"]) for row in reasons.iter_rows(named=True)
        },
    }


FAIR_SHARE_TYPES: tuple[str, ...] = ("ai_inference_batch", "model_training")
"""Queued GPU work shared between customers by fair queuing (realtime never waits)."""


def fairness(jobs: pl.DataFrame) -> dict[str, Any]:
    """Jain's index of the GPU work customers received against their max-min fair share.

    Over batch inference and training, per customer: demand ``d`` (GPU-seconds of work
    submitted and not rejected) and service ``x`` (GPU-seconds of useful work done). The
    fair share of the work done, ``S = sum(x)``, is the max-min (water-filling) allocation
    ``a = min(d, L)`` with the level ``L`` such that ``sum(a) = S``: customers who asked for
    less than ``L`` are owed what they asked, the others (*saturated*) ``L`` each. ``jain``
    is Jain's index of ``x / a`` over customers with demand — 1 when every customer got its
    fair share, ``1/n`` when one got everything — and ``saturated`` counts the customers
    capped at ``L``. Null with fewer than two customers.
    """
    rows = jobs.filter(
        pl.col("type").is_in(list(FAIR_SHARE_TYPES)) & (pl.col("status") != "rejected")
    )
    per_customer = rows.group_by("customer").agg(
        served=(pl.col("gpus").cast(pl.Float64) * pl.col("served_s")).sum(),
        demand=(pl.col("gpus").cast(pl.Float64) * pl.col("work_s")).sum(),
    )
    per_customer = per_customer.filter(pl.col("demand") > 0)
    if per_customer.height < 2:
        return {"jain": None, "customers": per_customer.height, "saturated": 0}
    served = per_customer["served"].to_numpy()
    demand = per_customer["demand"].to_numpy()
    share = max_min_shares(demand, float(served.sum()))
    ratio = np.divide(served, share, out=np.ones_like(served), where=share > 0)
    jain = float(ratio.sum() ** 2 / (ratio.size * np.sum(ratio**2)))
    saturated = int(np.sum(share < demand * (1.0 - 1e-9)))
    return {
        "jain": _round(jain, FRACTION_DIGITS),
        "customers": int(ratio.size),
        "saturated": saturated,
    }


def max_min_shares(demand: np.ndarray, total: float) -> np.ndarray:
    """Max-min fair split of ``total`` among ``demand`` (water-filling): ``min(d, L)`` with
    ``sum = min(total, sum(demand))`` [same unit as the inputs]."""
    order = np.sort(demand)
    remaining = min(total, float(order.sum()))
    count = order.size
    level = 0.0
    for index, value in enumerate(order):
        if value * (count - index) >= remaining:
            level = remaining / (count - index)
            break
        remaining -= value
    else:
        level = float(order[-1])
    return np.minimum(demand, level)


# ---------------------------------------------------------------------- helpers


def _require_columns(frame: pl.DataFrame, names: tuple[str, ...], what: str) -> None:
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise KpiError(f"{what}: missing column(s) {missing}")


def _check_categories(jobs: pl.DataFrame, column: str, allowed: tuple[str, ...]) -> None:
    bad = jobs.filter(~pl.col(column).is_in(list(allowed)) | pl.col(column).is_null())
    if bad.height:
        row = bad.row(0, named=True)
        raise KpiError(
            f"jobs: job_id {row['job_id']} has {column} {row[column]!r}; "
            f"expected one of {list(allowed)}"
        )


def _finite(frame: pl.DataFrame, column: str) -> np.ndarray:
    values = frame[column].to_numpy()
    return values[np.isfinite(values)]


def _nansum(frame: pl.DataFrame, column: str) -> float:
    return float(np.nansum(frame[column].to_numpy()))


def _ratio(numerator: float, denominator: float) -> float | None:
    if not denominator > 0:
        return None
    return _round(numerator / denominator, FRACTION_DIGITS)


def _usd(value: float) -> float:
    result = _round(value, USD_DIGITS)
    return 0.0 if result is None else result


def _round(value: float, digits: int) -> float | None:
    """``value`` rounded to ``digits`` decimals as a plain float; ``None`` if not finite;
    ``-0.0`` becomes ``0.0`` so the JSON text never depends on the sign of zero."""
    value = float(value)
    if not math.isfinite(value):
        return None
    return round(value, digits) + 0.0


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy scalars to Python, non-finite floats to ``None``."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number + 0.0 if math.isfinite(number) else None
    return value
