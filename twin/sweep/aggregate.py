"""Sweep results as tables: one row per run, and P10/P50/P90 per grid point.

``sweep.parquet`` (:func:`results_frame`) has, in order: ``point`` (grid point index),
``label`` (``path=value, ...``), one ``param:<path>`` column per grid axis, ``seed``,
``run_key``, ``status`` (``ok`` or ``failed``), ``error`` (null when ok), then every KPI of
``kpis.json`` flattened to dotted keys (``revenue_usd.total``, ``sla.model_training.count``,
``per_facility.west-mine.net_usd``), null for failed runs. ``wall_s`` is left out so the
same sweep writes the same table (it stays in each run record). Rows are sorted by grid
point, then seed.

A grid axis whose values are all numbers is a Float64 (or Int64) column, all text a String
column; any other axis (mappings, lists, mixed) holds each value as YAML flow text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from twin.sweep.grid import GridAxis, value_label
from twin.sweep.plan import SweepPlan

PARAM_PREFIX = "param:"
STATUS_OK = "ok"
STATUS_FAILED = "failed"
SUMMARY_KPIS: tuple[str, ...] = (
    "net_usd",
    "revenue_usd.total",
    "cost_usd.total",
    "energy_mwh",
    "utilization.gpu",
    "utilization.asic",
    "curtailment.mwh",
)
"""KPIs shown in the percentile table and the plots, in that order."""
PERCENTILES: tuple[int, ...] = (10, 50, 90)
SKIPPED_KPIS = frozenset({"wall_s"})


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys (empty mappings vanish)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def results_frame(
    plan: SweepPlan,
    kpis_by_key: Mapping[str, Mapping[str, Any]],
    errors_by_key: Mapping[str, str],
) -> pl.DataFrame:
    """One row per run of ``plan`` (see the module docstring).

    Args:
        plan: the sweep's runs, already ordered by grid point then seed.
        kpis_by_key: KPIs (``kpis.json`` content) of each finished run by run key.
        errors_by_key: the error of each failed run; a run in neither mapping is reported
            as failed with "did not finish".
    """
    labels = plan.labels
    flat_kpis: list[dict[str, Any]] = []
    kpi_names: dict[str, None] = {}  # insertion-ordered set
    for spec in plan.runs:
        kpis = kpis_by_key.get(spec.run_key)
        flat = {} if kpis is None else flatten(kpis)
        for name in SKIPPED_KPIS:
            flat.pop(name, None)
        flat_kpis.append(flat)
        kpi_names.update(dict.fromkeys(flat))

    columns: dict[str, pl.Series] = {
        "point": pl.Series([spec.point for spec in plan.runs], dtype=pl.Int64),
        "label": pl.Series([labels[spec.point] for spec in plan.runs], dtype=pl.String),
    }
    for axis in plan.axes:
        values = [plan.points[spec.point][axis.path] for spec in plan.runs]
        columns[PARAM_PREFIX + axis.path] = _param_series(axis, values)
    ok = [spec.run_key in kpis_by_key for spec in plan.runs]
    columns["seed"] = pl.Series([spec.seed for spec in plan.runs], dtype=pl.Int64)
    columns["run_key"] = pl.Series([spec.run_key for spec in plan.runs], dtype=pl.String)
    columns["status"] = pl.Series(
        [STATUS_OK if done else STATUS_FAILED for done in ok], dtype=pl.String
    )
    columns["error"] = pl.Series(
        [
            None if done else errors_by_key.get(spec.run_key, "did not finish")
            for spec, done in zip(plan.runs, ok, strict=True)
        ],
        dtype=pl.String,
    )
    for name in kpi_names:
        columns[name] = _value_series([flat.get(name) for flat in flat_kpis])
    return pl.DataFrame(columns)


def _param_series(axis: GridAxis, values: Sequence[Any]) -> pl.Series:
    if all(_is_number(value) for value in axis.values):
        dtype = pl.Int64 if all(isinstance(v, int) for v in axis.values) else pl.Float64
        return pl.Series(values, dtype=dtype)
    if all(isinstance(value, str) for value in axis.values):
        return pl.Series(values, dtype=pl.String)
    return pl.Series([value_label(value) for value in values], dtype=pl.String)


def _value_series(values: Sequence[Any]) -> pl.Series:
    present = [value for value in values if value is not None]
    if all(isinstance(value, int) and not isinstance(value, bool) for value in present):
        return pl.Series(values, dtype=pl.Int64)
    if all(_is_number(value) for value in present):
        return pl.Series([None if v is None else float(v) for v in values], dtype=pl.Float64)
    if all(isinstance(value, bool) for value in present):
        return pl.Series(values, dtype=pl.Boolean)
    return pl.Series([None if v is None else str(v) for v in values], dtype=pl.String)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def percentile_table(
    frame: pl.DataFrame,
    kpis: Sequence[str] = SUMMARY_KPIS,
    percentiles: Sequence[int] = PERCENTILES,
) -> pl.DataFrame:
    """Percentiles of each KPI per grid point over the runs that finished.

    Columns: ``point``, ``label``, ``kpi``, ``runs`` (finished runs with a value), then
    ``p10``, ``p50``, ``p90`` (one per entry of ``percentiles``; numpy's linear
    interpolation; null when no run has a value). A KPI missing from ``frame`` is skipped.
    """
    ok = frame.filter(pl.col("status") == STATUS_OK)
    points = frame.select("point", "label").unique(maintain_order=True).sort("point")
    rows: list[dict[str, Any]] = []
    for point, label in points.iter_rows():
        group = ok.filter(pl.col("point") == point)
        for kpi in kpis:
            if kpi not in frame.columns or not frame.schema[kpi].is_numeric():
                continue
            values = group[kpi].drop_nulls().cast(pl.Float64).to_numpy()
            stats = (
                np.percentile(values, percentiles)
                if values.size
                else np.full(len(percentiles), np.nan)
            )
            row: dict[str, Any] = {"point": point, "label": label, "kpi": kpi}
            row["runs"] = int(values.size)
            for percentile, stat in zip(percentiles, stats, strict=True):
                row[f"p{percentile}"] = None if np.isnan(stat) else float(stat)
            rows.append(row)
    schema: dict[str, Any] = {
        "point": pl.Int64,
        "label": pl.String,
        "kpi": pl.String,
        "runs": pl.Int64,
        **{f"p{percentile}": pl.Float64 for percentile in percentiles},
    }
    return pl.DataFrame(rows, schema=schema)


def markdown_table(table: pl.DataFrame) -> str:
    """The percentile table as a Markdown table (numbers with thousands separators)."""
    value_columns = [name for name in table.columns if name not in ("point", "label")]
    head = ["point", "grid point", *value_columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table.iter_rows(named=True):
        cells = [str(row["point"]), row["label"].replace("|", "\\|")]
        cells += [_format_cell(row[name]) for name in value_columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _format_cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4g}"
    return str(value)
