"""Read saved results for the dashboards: run folders, backtest folders, KPI tables.

A run folder is what ``python run.py simulate`` writes (twin.recorder): ``kpis.json``,
``metadata.yaml``, ``timeseries.parquet`` (one row per facility per dispatch interval) and
``jobs.parquet``. A backtest folder is what ``python run.py backtest`` writes
(twin.backtest): ``backtest.json`` and one run folder per policy. Everything here reads
files and reshapes them into pandas frames for tables and charts; no model logic.
Problems are :class:`ResultsError` naming the file and the reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import polars as pl
import yaml

from twin.backtest import BACKTEST_JSON
from twin.recorder import (
    COST_COLUMNS,
    JOBS_FILE,
    KEY_COLUMNS,
    KPIS_FILE,
    METADATA_FILE,
    POWER_USE_COLUMNS,
    REVENUE_COLUMNS,
    TIMESERIES_COLUMNS,
    TIMESERIES_FILE,
)

NET_COLUMN = "net_usd"
"""Derived per-interval column: all revenue minus all cost of the row [USD]."""

SERIES_COLUMNS: tuple[str, ...] = (NET_COLUMN, *TIMESERIES_COLUMNS)
"""Columns a time-series chart can show."""

MEAN_OVER_FACILITIES: frozenset[str] = frozenset(
    {
        "price_usd_per_mwh",
        "ambient_c",
        "pue_mining",
        "pue_ai",
        "btc_price_usd",
        "hashprice_usd_per_ths_day",
        "difficulty",
        "four_cp",
        "grid_event_fraction",
        "queued_jobs",  # the one global queue, repeated on every facility row
    }
)
"""Columns combined over facilities by their mean; every other column is a sum (power,
energy, money, device and job counts)."""

ALL_FACILITIES = "all facilities"
MAX_SEARCH_DEPTH = 4
"""How deep below the results folder run and backtest folders are looked for."""


class ResultsError(ValueError):
    """A results file is missing or unreadable (names the file and the reason)."""


@dataclass(frozen=True)
class ResultFolder:
    """A run or backtest folder under the results root.

    Attributes:
        name: its path relative to the root (``dash_demo``, ``backtest-real/aug2023-dam``).
        path: the folder.
        modified_s: modification time of its summary file [s since the Unix epoch].
    """

    name: str
    path: Path
    modified_s: float


def list_runs(root: Path) -> list[ResultFolder]:
    """Run folders (holding ``kpis.json``) under ``root``, newest first; the policy
    folders of a backtest are runs too. An empty list when ``root`` does not exist."""
    return _folders_with(root, KPIS_FILE)


def list_backtests(root: Path) -> list[ResultFolder]:
    """Backtest folders (holding ``backtest.json``) under ``root``, newest first."""
    return _folders_with(root, BACKTEST_JSON)


def _folders_with(root: Path, file_name: str) -> list[ResultFolder]:
    found = [
        ResultFolder(folder.relative_to(root).as_posix(), folder, stamp)
        for folder, stamp in _walk_for(root, file_name, MAX_SEARCH_DEPTH)
    ]
    return sorted(found, key=lambda f: (-f.modified_s, f.name))


def _walk_for(folder: Path, file_name: str, depth: int) -> Iterator[tuple[Path, float]]:
    if not folder.is_dir() or depth < 0:
        return
    marker = folder / file_name
    if marker.is_file():
        yield folder, marker.stat().st_mtime
    for child in sorted(folder.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            yield from _walk_for(child, file_name, depth - 1)


def read_kpis(run_dir: Path) -> dict[str, Any]:
    """The KPIs of a run (``kpis.json``, see twin.kpis.compute_kpis)."""
    return _read_json_mapping(run_dir / KPIS_FILE)


def read_backtest_summary(folder: Path) -> dict[str, Any]:
    """``backtest.json`` of a backtest folder (see twin.backtest.backtest_summary)."""
    summary = _read_json_mapping(folder / BACKTEST_JSON)
    if not isinstance(summary.get("policies"), dict):
        raise ResultsError(f"{folder / BACKTEST_JSON}: expected a 'policies' mapping")
    return summary


def read_metadata(run_dir: Path) -> dict[str, Any]:
    """``metadata.yaml`` of a run (seed, resolved scenario, versions, runtime)."""
    path = run_dir / METADATA_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: file not found") from None
    except (OSError, yaml.YAMLError) as error:
        raise ResultsError(f"{path}: cannot read ({error})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a mapping")
    return data


def _read_json_mapping(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: file not found") from None
    except (OSError, ValueError) as error:
        raise ResultsError(f"{path}: cannot read ({error})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a JSON object")
    return data


def read_timeseries(run_dir: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """``timeseries.parquet`` of a run as pandas: the key columns (``t_s``, ``time`` in
    UTC, ``facility_id``), the value ``columns`` asked for (all by default) and
    ``net_usd`` when asked for (computed from the revenue and cost columns, NaN as 0)."""
    path = run_dir / TIMESERIES_FILE
    wanted = list(SERIES_COLUMNS if columns is None else columns)
    unknown = [c for c in wanted if c not in SERIES_COLUMNS]
    if unknown:
        raise ResultsError(f"{path}: no column {unknown[0]!r}")
    read = [c for c in wanted if c != NET_COLUMN]
    if NET_COLUMN in wanted:
        read += [c for c in (*REVENUE_COLUMNS.values(), *COST_COLUMNS.values()) if c not in read]
    try:
        frame = pl.read_parquet(path, columns=[*KEY_COLUMNS, *read])
    except FileNotFoundError:
        raise ResultsError(f"{path}: file not found") from None
    except (OSError, pl.exceptions.PolarsError) as error:
        raise ResultsError(f"{path}: cannot read ({error})") from None
    if NET_COLUMN in wanted:
        revenue = pl.sum_horizontal([pl.col(c).fill_nan(0.0) for c in REVENUE_COLUMNS.values()])
        cost = pl.sum_horizontal([pl.col(c).fill_nan(0.0) for c in COST_COLUMNS.values()])
        frame = frame.with_columns((revenue - cost).alias(NET_COLUMN))
    return frame.select([*KEY_COLUMNS, *wanted]).to_pandas()


# ---------------------------------------------------------------------- KPI tables


def flatten_kpis(kpis: Mapping[str, Any], prefix: str = "") -> dict[str, float | None]:
    """The numeric leaves of a KPI mapping by dotted name (``revenue_usd.mining``,
    ``sla.model_training.met_fraction``); ``None`` stays (a KPI with no value)."""
    flat: dict[str, float | None] = {}
    for key, value in kpis.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat |= flatten_kpis(value, name)
        elif value is None:
            flat[name] = None
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def kpi_comparison(kpis_by_run: Mapping[str, Mapping[str, Any]], reference: str) -> pd.DataFrame:
    """KPIs side by side: one row per KPI (dotted name), one column per run, then a
    ``Δ <run>`` column per other run (its value minus ``reference``'s; NaN where either is
    missing). Rows follow the reference's KPI order, then KPIs only other runs have."""
    if reference not in kpis_by_run:
        raise ResultsError(f"reference run {reference!r} is not among the runs compared")
    flat = {name: flatten_kpis(kpis) for name, kpis in kpis_by_run.items()}
    order = list(flat[reference])
    for values in flat.values():
        order += [k for k in values if k not in order]
    table = pd.DataFrame(
        {name: [_number(values.get(k)) for k in order] for name, values in flat.items()},
        index=pd.Index(order, name="KPI"),
    )
    for name in flat:
        if name != reference:
            table[f"Δ {name}"] = table[name] - table[reference]
    return table


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def stream_frame(kpis_by_run: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Revenue and cost by stream per run, long form: ``run``, ``kind`` (``revenue`` or
    ``cost``), ``stream``, ``usd`` (totals left out)."""
    rows = [
        (run, kind, stream, float(value))
        for run, kpis in kpis_by_run.items()
        for kind, key in (("revenue", "revenue_usd"), ("cost", "cost_usd"))
        for stream, value in kpis.get(key, {}).items()
        if stream != "total" and value is not None
    ]
    return pd.DataFrame(rows, columns=["run", "kind", "stream", "usd"])


# ---------------------------------------------------------------------- time series


def fleet_series(frame: pd.DataFrame, column: str, facility: str = ALL_FACILITIES) -> pd.DataFrame:
    """One value per interval of ``column`` (columns ``t_s``, ``time``, ``value``): the
    rows of one ``facility``, or all facilities combined (mean for prices, temperatures,
    PUE, market values and the global queue; sum for everything else)."""
    if column not in frame.columns:
        raise ResultsError(f"no column {column!r} in the time series")
    if facility != ALL_FACILITIES:
        rows = frame[frame["facility_id"] == facility]
        if rows.empty:
            known = ", ".join(sorted(frame["facility_id"].unique()))
            raise ResultsError(f"no facility {facility!r} in the time series; it has {known}")
        series = rows[["t_s", "time", column]].sort_values("t_s")
        return series.rename(columns={column: "value"}).reset_index(drop=True)
    how: Literal["mean", "sum"] = "mean" if column in MEAN_OVER_FACILITIES else "sum"
    grouped = frame.groupby("t_s", sort=True).agg(time=("time", "first"), value=(column, how))
    return grouped.reset_index()


def facility_ids(frame: pd.DataFrame) -> list[str]:
    """Facilities of a time series in the order they first appear."""
    return [str(f) for f in pd.unique(frame["facility_id"])]


# ---------------------------------------------------------------------- backtests

BACKTEST_SERIES: tuple[str, ...] = (
    "price_usd_per_mwh",
    "power_mining_mw",
    "curtailed_mw",
    NET_COLUMN,
)


def backtest_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """One row per policy of ``backtest.json``: net, delta vs the best policy, capture vs
    the oracle, regret, revenue, cost, energy, curtailment, SLA met per workload type and
    wall time."""
    rows = {}
    for policy, values in summary["policies"].items():
        row: dict[str, float | None] = {
            "net_usd": values.get("net_usd"),
            "delta_vs_best_usd": values.get("delta_vs_best_usd"),
            "capture_vs_oracle": values.get("capture_vs_oracle"),
            "regret_usd": values.get("regret_usd"),
            "revenue_usd": values.get("revenue_usd", {}).get("total"),
            "cost_usd": values.get("cost_usd", {}).get("total"),
            "energy_mwh": values.get("energy_mwh"),
            "curtailment_mwh": values.get("curtailment", {}).get("mwh"),
            "curtailment_h": values.get("curtailment", {}).get("hours"),
        }
        for workload, met in values.get("sla_met_fraction", {}).items():
            row[f"sla_met.{workload}"] = met
        row["wall_s"] = values.get("wall_s")
        rows[policy] = {k: _number(v) for k, v in row.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("policy")


def read_backtest_series(folder: Path, summary: Mapping[str, Any]) -> pd.DataFrame:
    """Every policy's time series of a backtest, long form: ``policy``, ``t_s``, ``time``,
    ``facility_id``, price, mining power, curtailed power and net per interval."""
    frames = []
    for policy, values in summary["policies"].items():
        run_dir = folder / str(values.get("results_dir", policy))
        frame = read_timeseries(run_dir, BACKTEST_SERIES)
        frame.insert(0, "policy", policy)
        frames.append(frame)
    if not frames:
        raise ResultsError(f"{folder / BACKTEST_JSON}: no policies")
    return pd.concat(frames, ignore_index=True)


def policy_fleet(series: pd.DataFrame) -> pd.DataFrame:
    """Fleet totals per policy and interval (``policy``, ``t_s``, ``time``, mean price,
    summed mining and curtailed power, summed net) with ``cumulative_net_usd``."""
    fleet = (
        series.groupby(["policy", "t_s"], sort=False)
        .agg(
            time=("time", "first"),
            price_usd_per_mwh=("price_usd_per_mwh", "mean"),
            power_mining_mw=("power_mining_mw", "sum"),
            curtailed_mw=("curtailed_mw", "sum"),
            net_usd=(NET_COLUMN, "sum"),
        )
        .reset_index()
    )
    order = {policy: i for i, policy in enumerate(pd.unique(series["policy"]))}
    fleet = fleet.sort_values(["policy", "t_s"], key=_policy_order(order), kind="stable")
    fleet["cumulative_net_usd"] = fleet.groupby("policy", sort=False)["net_usd"].cumsum()
    return fleet.reset_index(drop=True)


def _policy_order(order: Mapping[str, int]) -> Any:
    """A sort key that puts policies in run order and leaves other columns as they are."""

    def key(column: pd.Series) -> pd.Series:
        return column.map(order) if column.name == "policy" else column

    return key


def local_days(fleet: pd.DataFrame, time_zone: str) -> list[str]:
    """The local calendar days (``YYYY-MM-DD`` in ``time_zone``) the intervals start on."""
    local = pd.to_datetime(fleet["time"], utc=True).dt.tz_convert(time_zone)
    return sorted(local.dt.strftime("%Y-%m-%d").unique().tolist())


def day_rows(fleet: pd.DataFrame, day: str, time_zone: str) -> pd.DataFrame:
    """The rows of ``fleet`` on local day ``day`` (``YYYY-MM-DD`` in ``time_zone``), with
    ``time`` in local time and ``day_net_usd``, the net accrued since that day began."""
    local = pd.to_datetime(fleet["time"], utc=True).dt.tz_convert(time_zone)
    rows = fleet[local.dt.strftime("%Y-%m-%d") == day].copy()
    rows["time"] = local[rows.index]
    rows["day_net_usd"] = rows.groupby("policy", sort=False)["net_usd"].cumsum()
    return rows.reset_index(drop=True)


def largest_spread_day(fleet: pd.DataFrame, time_zone: str) -> str | None:
    """The local day on which the policies' daily nets differ most (the day where the
    choice of policy mattered most); None without rows."""
    if fleet.empty:
        return None
    local = pd.to_datetime(fleet["time"], utc=True).dt.tz_convert(time_zone)
    daily = fleet.assign(day=local.dt.strftime("%Y-%m-%d")).pivot_table(
        index="day", columns="policy", values="net_usd", aggfunc="sum"
    )
    spread = daily.max(axis=1) - daily.min(axis=1)
    return str(spread.idxmax())


# ------------------------------------------------------ executive, customers, energy

CUSTOMER_COLUMNS: tuple[str, ...] = (
    "customer",
    "type",
    "status",
    "gpus",
    "served_s",
    "wait_s",
    "sla_met",
    "revenue_usd",
)
"""Columns of ``jobs.parquet`` the customer view reads."""

ENERGY_COLUMNS: tuple[str, ...] = (
    "price_usd_per_mwh",
    "pue_mining",
    "pue_ai",
    "power_total_mw",
    *POWER_USE_COLUMNS,
    "curtailed_mw",
    "energy_mwh",
    "four_cp",
    "cost_energy_usd",
    "cost_transmission_4cp_usd",
)
"""Time-series columns the energy view reads."""


def read_jobs(run_dir: Path, columns: Sequence[str] = CUSTOMER_COLUMNS) -> pd.DataFrame:
    """``jobs.parquet`` of a run (one row per workload, twin.recorder.JOBS_SCHEMA) as
    pandas with ``columns``; categorical columns come back as text."""
    path = run_dir / JOBS_FILE
    try:
        frame = pl.read_parquet(path, columns=list(columns))
    except FileNotFoundError:
        raise ResultsError(f"{path}: file not found") from None
    except (OSError, pl.exceptions.PolarsError) as error:
        raise ResultsError(f"{path}: cannot read ({error})") from None
    text = [c for c in ("customer", "type", "status") if c in frame.columns]
    return frame.with_columns(pl.col(text).cast(pl.String)).to_pandas()


def executive_kpis(kpis: Mapping[str, Any]) -> dict[str, float | None]:
    """Headline figures of a run from its ``kpis.json``: ``revenue_usd``, ``cost_usd``,
    ``net_usd``, ``margin_fraction`` (net / revenue), ``energy_mwh``,
    ``revenue_per_mwh_usd`` and ``net_per_mwh_usd`` (efficiency: what each MWh bought
    earned), ``net_per_day_usd``, and the GPU, ASIC and power utilization fractions.
    None where the run has no value or a ratio has a zero denominator."""
    revenue = _optional(kpis.get("revenue_usd", {}).get("total"))
    cost = _optional(kpis.get("cost_usd", {}).get("total"))
    net = _optional(kpis.get("net_usd"))
    energy_mwh = _optional(kpis.get("energy_mwh"))
    days = _optional(kpis.get("sim_days"))
    utilization = kpis.get("utilization", {})
    return {
        "revenue_usd": revenue,
        "cost_usd": cost,
        "net_usd": net,
        "margin_fraction": _ratio(net, revenue),
        "energy_mwh": energy_mwh,
        "revenue_per_mwh_usd": _ratio(revenue, energy_mwh),
        "net_per_mwh_usd": _ratio(net, energy_mwh),
        "net_per_day_usd": _ratio(net, days),
        "gpu_utilization_fraction": _optional(utilization.get("gpu")),
        "asic_utilization_fraction": _optional(utilization.get("asic")),
        "power_utilization_fraction": _optional(utilization.get("power")),
    }


def _optional(value: object) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def customer_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """One row per customer (index ``customer``), largest bill first: ``workloads``
    (submitted), ``completed``, ``gpu_hours`` (GPU-hours served: served seconds x GPUs /
    3600), ``billed_usd`` (what the platform earned from the customer's workloads, the
    customer's cost), ``sla_met_fraction`` (over workloads with an SLA outcome; NaN when
    none has one), ``wait_mean_s`` and ``wait_p99_s`` (over workloads that started)."""
    served_h = jobs["served_s"].fillna(0.0) * jobs["gpus"].fillna(0) / 3600.0
    frame = jobs.assign(
        gpu_hours=served_h,
        completed=(jobs["status"] == "completed").astype(float),
        sla=jobs["sla_met"].astype("float64"),
    )
    grouped = frame.groupby("customer", sort=False)
    table = pd.DataFrame(
        {
            "workloads": grouped.size().astype(float),
            "completed": grouped["completed"].sum(),
            "gpu_hours": grouped["gpu_hours"].sum(),
            "billed_usd": grouped["revenue_usd"].sum(min_count=1).fillna(0.0),
            "sla_met_fraction": grouped["sla"].mean(),
            "wait_mean_s": grouped["wait_s"].mean(),
            "wait_p99_s": grouped["wait_s"].quantile(0.99),
        }
    )
    table.index = table.index.astype(str)
    return table.sort_values("billed_usd", ascending=False, kind="stable").rename_axis("customer")


def energy_summary(
    frame: pd.DataFrame, kpis: Mapping[str, Any], interval_s: float
) -> dict[str, float]:
    """Energy headline figures of a run: ``energy_mwh`` (consumed), ``mean_power_mw``
    (fleet), ``peak_power_mw``, ``pue_mining`` and ``pue_ai`` (energy-weighted means over
    facilities and intervals), ``curtailment_mwh`` and ``curtailment_h`` (from
    ``kpis.json``), ``four_cp_intervals`` (intervals flagged as a likely 4CP peak),
    ``energy_cost_usd`` and ``transmission_4cp_cost_usd``. ``frame`` holds
    :data:`ENERGY_COLUMNS`; ``interval_s`` is the dispatch interval [s] (for interval
    counts, not used for energy, which the frame carries)."""
    power = fleet_series(frame, "power_total_mw")["value"]
    weights = frame["energy_mwh"].fillna(0.0)
    four_cp = fleet_series(frame, "four_cp")["value"]
    curtailment = kpis.get("curtailment", {})
    return {
        "energy_mwh": float(frame["energy_mwh"].sum()),
        "mean_power_mw": float(power.mean()) if len(power) else math.nan,
        "peak_power_mw": float(power.max()) if len(power) else math.nan,
        "pue_mining": _weighted_mean(frame["pue_mining"], weights),
        "pue_ai": _weighted_mean(frame["pue_ai"], weights),
        "curtailment_mwh": _number(_optional(curtailment.get("mwh"))),
        "curtailment_h": _number(_optional(curtailment.get("hours"))),
        "four_cp_intervals": int((four_cp > 0).sum()),
        "four_cp_hours": float((four_cp > 0).sum()) * interval_s / 3600.0,
        "energy_cost_usd": float(frame["cost_energy_usd"].fillna(0.0).sum()),
        "transmission_4cp_cost_usd": float(frame["cost_transmission_4cp_usd"].fillna(0.0).sum()),
    }


def _weighted_mean(values: pd.Series, weights: pd.Series) -> float:
    valid = values.notna() & (weights > 0)
    if not valid.any():
        return float(values.mean()) if values.notna().any() else math.nan
    return float((values[valid] * weights[valid]).sum() / weights[valid].sum())


def four_cp_intervals(frame: pd.DataFrame) -> pd.DataFrame:
    """The intervals flagged as a likely 4CP peak (``four_cp`` > 0 on any facility): ``t_s``,
    ``time``, fleet ``power_total_mw`` and mean ``price_usd_per_mwh`` in that interval."""
    flag = fleet_series(frame, "four_cp")
    power = fleet_series(frame, "power_total_mw")["value"]
    price = fleet_series(frame, "price_usd_per_mwh")["value"]
    table = flag.assign(power_total_mw=power, price_usd_per_mwh=price)
    rows = table[table["value"] > 0].drop(columns="value")
    return rows.reset_index(drop=True)


def dispatch_interval_s(frame: pd.DataFrame) -> float:
    """The dispatch interval of a time series [s]: the smallest step between its times
    (NaN with fewer than two intervals)."""
    steps = pd.Series(sorted(frame["t_s"].unique())).diff().dropna()
    return float(steps.min()) if not steps.empty else math.nan
