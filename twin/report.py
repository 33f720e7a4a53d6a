"""Self-contained HTML report of one run folder (works offline, no CDN).

:func:`write_report` reads ``metadata.yaml``, ``kpis.json``, ``timeseries.parquet`` and
``jobs.parquet`` from a run folder and writes ``report.html``: a header (scenario, dates,
seed, git revision, runtime), KPI tables and plotly figures for power by use, price and
curtailment, revenue and cost, and the job queue and SLA.

plotly.js is inlined once (about 4.6 MB). To keep the whole file under ~8 MB for runs of a
year or more, time series are averaged into fixed time bins (5 min ... 1 week, chosen so
that no trace exceeds MAX_POINTS_PER_TRACE points and all time-series traces together stay
within POINT_BUDGET), traces carry a start and a step instead of a time array, values are
sent as float32, and job wait times are shown as binned counts over all jobs (exact and
small at any job count, so no sampling is needed). Times are shown in UTC.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import polars as pl
import yaml
from plotly.subplots import make_subplots

from twin.recorder import (
    COST_COLUMNS,
    COST_STREAMS,
    JOBS_FILE,
    KPIS_FILE,
    METADATA_FILE,
    POWER_USE_COLUMNS,
    REPORT_FILE,
    REVENUE_COLUMNS,
    REVENUE_STREAMS,
    TIMESERIES_FILE,
    atomic_output,
)
from twin.scenario import WORKLOAD_TYPES

MAX_POINTS_PER_TRACE = 5000
POINT_BUDGET = 400_000
"""Most time-series points over all traces of the report (float32: ~5.3 bytes each)."""

NICE_BIN_S: tuple[int, ...] = (
    60,
    300,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
    2 * 86400,
    7 * 86400,
)
"""Candidate averaging bins for plotted time series [s]."""

SECTIONS: Mapping[str, str] = {
    "summary": "Summary",
    "power": "Power by use",
    "price": "Price and curtailment",
    "money": "Revenue and cost",
    "queue": "Queue, SLA and customers",
}
"""Section anchor -> heading, in report order."""

FIGURE_IDS: tuple[str, ...] = (
    "fig-power-stack",
    "fig-price-curtailment",
    "fig-price-vs-mining",
    "fig-revenue-cost",
    "fig-queue",
    "fig-wait-distribution",
    "fig-sla-met",
    "fig-customer-service",
)
"""The div id of every figure, in report order (one plotly div each)."""

POWER_USE_LABELS: Mapping[str, tuple[str, str]] = {
    "power_mining_mw": ("Mining", "#f2a900"),
    "power_inference_mw": ("Inference", "#1f77b4"),
    "power_batch_mw": ("Batch", "#17becf"),
    "power_training_mw": ("Training", "#9467bd"),
    "power_spot_mw": ("Spot", "#2ca02c"),
    "power_gpu_idle_mw": ("GPU idle", "#c7c7c7"),
    "power_overhead_mw": ("Overhead (PUE)", "#8c564b"),
}

WAIT_EDGES_S: tuple[float, ...] = (
    0.0,
    *(mantissa * 10.0**exponent for exponent in range(6) for mantissa in (1, 2, 5)),
    1e6,
)
"""Left edges of the wait-time histogram bins [s]; the last bin is open-ended."""

FIGURE_HEIGHT_PX = 460


class ReportError(ValueError):
    """A run folder cannot be reported (names the file and the reason)."""


@dataclass(frozen=True)
class RunFiles:
    """The contents of one run folder, as read for the report."""

    metadata: dict[str, Any]
    kpis: dict[str, Any]
    timeseries: pl.DataFrame
    jobs: pl.DataFrame


def write_report(run_dir: Path) -> Path:
    """Write ``report.html`` into ``run_dir`` (atomically) and return its path.

    Raises:
        ReportError: a results file is missing or unreadable.
    """
    run_dir = Path(run_dir)
    run = read_run(run_dir)
    page = render_report(run)
    path = run_dir / REPORT_FILE
    with atomic_output(path) as handle:
        handle.write(page)
    return path


def read_run(run_dir: Path) -> RunFiles:
    """Read the results files the report needs (only the job columns it shows)."""
    metadata = _read_mapping(run_dir / METADATA_FILE, yaml.safe_load)
    kpis = _read_mapping(run_dir / KPIS_FILE, json.loads)
    timeseries = _read_parquet(run_dir / TIMESERIES_FILE, None)
    jobs = _read_parquet(
        run_dir / JOBS_FILE,
        ["type", "start_s", "wait_s", "customer", "gpus", "work_s", "served_s", "status"],
    )
    return RunFiles(metadata, kpis, timeseries, jobs)


def render_report(run: RunFiles) -> str:
    """The complete HTML page of a run."""
    from twin.report_customers import customer_service_figure  # uses this module's helpers

    grid = TimeGrid.from_run(run)
    figures = {
        "fig-power-stack": power_figure(run.timeseries, grid),
        "fig-price-curtailment": price_curtailment_figure(run.timeseries, grid),
        "fig-price-vs-mining": price_vs_mining_figure(run.timeseries, grid),
        "fig-revenue-cost": revenue_cost_figure(run.timeseries, grid),
        "fig-queue": queue_figure(run.timeseries, grid),
        "fig-wait-distribution": wait_distribution_figure(run.jobs),
        "fig-sla-met": sla_figure(run.kpis),
        "fig-customer-service": customer_service_figure(run.jobs, run.kpis),
    }
    divs = {}
    for position, figure_id in enumerate(FIGURE_IDS):
        divs[figure_id] = figures[figure_id].to_html(
            full_html=False,
            include_plotlyjs=position == 0,
            div_id=figure_id,
            default_height=f"{FIGURE_HEIGHT_PX}px",
            config={"displaylogo": False, "responsive": True},
        )
    body = [
        _header_html(run.metadata, run.kpis),
        _section("summary", _summary_html(run.kpis)),
        _section(
            "power",
            f"<p>Facility draw by use, {html.escape(grid.bin_label)} means; pick a facility "
            "in the menu. The dashed line is the power cap.</p>" + divs["fig-power-stack"],
        ),
        _section("price", divs["fig-price-curtailment"] + divs["fig-price-vs-mining"]),
        _section("money", divs["fig-revenue-cost"]),
        _section(
            "queue",
            divs["fig-queue"]
            + divs["fig-wait-distribution"]
            + divs["fig-sla-met"]
            + _scheduling_html(run.kpis)
            + divs["fig-customer-service"],
        ),
    ]
    title = html.escape(str(run.metadata.get("name", "run")))
    return PAGE_TEMPLATE.format(title=title, body="\n".join(body))


# ---------------------------------------------------------------------- reading


def _read_mapping(path: Path, parse: Any) -> dict[str, Any]:
    try:
        data = parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: file not found") from None
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise ReportError(f"{path}: cannot read ({error})") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a mapping at the top level")
    return data


def _read_parquet(path: Path, columns: list[str] | None) -> pl.DataFrame:
    if not path.is_file():
        raise ReportError(f"{path}: file not found")
    try:
        return pl.read_parquet(path, columns=columns)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise ReportError(f"{path}: cannot read ({error})") from None


# ---------------------------------------------------------------------- time bins


@dataclass(frozen=True)
class TimeGrid:
    """Fixed-width time bins over the recorded intervals, and each row's bin and facility.

    Bin ``k`` covers ``[first_bin_s + k*bin_s, first_bin_s + (k+1)*bin_s)`` seconds since
    scenario start; ``start_utc`` is the scenario start.
    """

    start_utc: datetime
    interval_s: float
    bin_s: float
    first_bin_s: float
    n_bins: int
    facility_ids: tuple[str, ...]
    row_bin: np.ndarray
    row_facility: np.ndarray

    @classmethod
    def from_run(cls, run: RunFiles) -> TimeGrid:
        """Bins for ``run.timeseries`` sized so the whole report stays within budget."""
        frame = run.timeseries
        facility_ids = tuple(
            frame["facility_id"].cast(pl.String).unique(maintain_order=True).to_list()
            if "facility_id" in frame.columns
            else ()
        )
        t_s = frame["t_s"].to_numpy() if "t_s" in frame.columns else np.zeros(0)
        interval_s = _interval_s(run.metadata, t_s)
        start_utc = _start_utc(run.metadata, frame)
        n_facilities = max(len(facility_ids), 1)
        # traces: power (views x uses+cap), prices + curtailment, scatter (x and y), queue
        n_traces = (n_facilities + 1) * (len(POWER_USE_COLUMNS) + 1) + 3 * n_facilities + 3
        max_points = min(MAX_POINTS_PER_TRACE, POINT_BUDGET // n_traces)
        span_s = float(t_s.max() - t_s.min()) + interval_s if t_s.size else interval_s
        bin_s = choose_bin_s(interval_s, span_s, max_points)
        first_bin_s = math.floor(float(t_s.min()) / bin_s) * bin_s if t_s.size else 0.0
        row_bin = np.floor((t_s - first_bin_s) / bin_s).astype(np.int64)
        n_bins = int(row_bin.max()) + 1 if t_s.size else 0
        row_facility = (
            frame["facility_id"]
            .cast(pl.String)
            .cast(pl.Enum(list(facility_ids)))
            .to_physical()
            .to_numpy()
            .astype(np.int64)
            if t_s.size
            else np.zeros(0, dtype=np.int64)
        )
        return cls(
            start_utc,
            interval_s,
            bin_s,
            first_bin_s,
            n_bins,
            facility_ids,
            row_bin,
            row_facility,
        )

    @property
    def bin_label(self) -> str:
        """Human text for the bin width, e.g. ``1 h``."""
        return duration_label(self.bin_s)

    @property
    def x0(self) -> str:
        """Start of the first bin as a plotly date string (UTC)."""
        return plotly_date(self.start_utc + timedelta(seconds=self.first_bin_s))

    @property
    def dx_ms(self) -> float:
        """Bin width in plotly date-axis units [ms]."""
        return self.bin_s * 1000.0

    def mean(self, values: np.ndarray) -> np.ndarray:
        """Mean of ``values`` (one per row) per bin and facility, ``[n_bins, n_facilities]``;
        NaN where a bin has no finite value."""
        sums, counts = self._reduce(values)
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    def _reduce(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n_facilities = len(self.facility_ids)
        finite = np.isfinite(values)
        cells = self.row_bin * n_facilities + self.row_facility
        size = self.n_bins * n_facilities
        sums = np.bincount(cells[finite], weights=values[finite], minlength=size)
        counts = np.bincount(cells[finite], minlength=size)
        shape = (self.n_bins, n_facilities)
        return sums.reshape(shape), counts.reshape(shape)


def choose_bin_s(interval_s: float, span_s: float, max_points: int) -> float:
    """Smallest plotting bin [s] that is a multiple of ``interval_s`` (the interval itself
    or one of NICE_BIN_S) and puts at most ``max_points`` bins into ``span_s``."""
    needed = span_s / max(max_points, 1)
    if interval_s >= needed:
        return float(interval_s)
    for candidate in NICE_BIN_S:
        if candidate >= needed and math.isclose(
            candidate / interval_s, round(candidate / interval_s)
        ):
            return float(candidate)
    return float(interval_s * math.ceil(needed / interval_s))


def _interval_s(metadata: Mapping[str, Any], t_s: np.ndarray) -> float:
    scenario = metadata.get("scenario")
    if isinstance(scenario, Mapping) and isinstance(
        scenario.get("dispatch_interval_s"), int | float
    ):
        return float(scenario["dispatch_interval_s"])
    steps = np.diff(np.unique(t_s))
    return float(steps.min()) if steps.size else 3600.0


def _start_utc(metadata: Mapping[str, Any], frame: pl.DataFrame) -> datetime:
    if frame.height and "time" in frame.columns:
        first_time = frame["time"][0]
        if isinstance(first_time, datetime):
            aware = first_time if first_time.tzinfo else first_time.replace(tzinfo=UTC)
            return aware.astimezone(UTC) - timedelta(seconds=float(frame["t_s"][0]))
    scenario = metadata.get("scenario")
    if isinstance(scenario, Mapping) and scenario.get("start"):
        start = scenario["start"]
        parsed = start if isinstance(start, datetime) else datetime.fromisoformat(str(start))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    return datetime(1970, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------------- figures


def power_figure(timeseries: pl.DataFrame, grid: TimeGrid) -> go.Figure:
    """(a) Stacked area of facility power by use with the cap line; a menu picks the whole
    fleet or one facility."""
    figure = go.Figure()
    if not grid.n_bins:
        return empty_figure(figure, "Power by use", "no intervals recorded")
    uses = {column: grid.mean(_column(timeseries, column)) for column in POWER_USE_COLUMNS}
    cap = grid.mean(_column(timeseries, "power_cap_mw"))
    views = [("All facilities", slice(None))] + [
        (facility_id, slice(i, i + 1)) for i, facility_id in enumerate(grid.facility_ids)
    ]
    traces_per_view = len(POWER_USE_COLUMNS) + 1
    for view_index, (_label, facilities) in enumerate(views):
        visible = view_index == 0
        for column, (name, color) in POWER_USE_LABELS.items():
            figure.add_trace(
                go.Scatter(
                    x0=grid.x0,
                    dx=grid.dx_ms,
                    y=_fleet_sum(uses[column][:, facilities]),
                    name=name,
                    stackgroup="power",
                    mode="none",
                    fillcolor=color,
                    legendgroup=name,
                    visible=visible,
                )
            )
        figure.add_trace(
            go.Scatter(
                x0=grid.x0,
                dx=grid.dx_ms,
                y=_fleet_sum(cap[:, facilities]),
                name="Power cap",
                mode="lines",
                line={"color": "#d62728", "dash": "dash"},
                visible=visible,
            )
        )
    n_traces = len(views) * traces_per_view
    buttons = []
    for view_index, (label, _facilities) in enumerate(views):
        shown = [
            view_index * traces_per_view <= i < (view_index + 1) * traces_per_view
            for i in range(n_traces)
        ]
        buttons.append({"label": label, "method": "update", "args": [{"visible": shown}]})
    figure.update_layout(
        updatemenus=[{"buttons": buttons, "x": 0.0, "xanchor": "left", "y": 1.15}],
    )
    return time_layout(figure, f"Power by use ({grid.bin_label} means)", "MW")


def price_curtailment_figure(timeseries: pl.DataFrame, grid: TimeGrid) -> go.Figure:
    """(b1) Settlement point price per facility and fleet curtailed mining power."""
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    if not grid.n_bins:
        return empty_figure(figure, "Price and curtailment", "no intervals recorded")
    price = grid.mean(_column(timeseries, "price_usd_per_mwh"))
    curtailed = _fleet_sum(grid.mean(_column(timeseries, "curtailed_mw")))
    for i, facility_id in enumerate(grid.facility_ids):
        figure.add_trace(
            go.Scatter(
                x0=grid.x0,
                dx=grid.dx_ms,
                y=as_float32(price[:, i]),
                name=f"Price {facility_id}",
                mode="lines",
            ),
            secondary_y=False,
        )
    figure.add_trace(
        go.Scatter(
            x0=grid.x0,
            dx=grid.dx_ms,
            y=curtailed,
            name="Curtailed (fleet)",
            mode="lines",
            fill="tozeroy",
            line={"color": "rgba(214,39,40,0.6)"},
        ),
        secondary_y=True,
    )
    figure.update_yaxes(title_text="USD/MWh", secondary_y=False)
    figure.update_yaxes(title_text="curtailed MW", secondary_y=True, rangemode="tozero")
    return time_layout(figure, f"Price and curtailment ({grid.bin_label} means)", None)


def price_vs_mining_figure(timeseries: pl.DataFrame, grid: TimeGrid) -> go.Figure:
    """(b2) Scatter of price against mining power, one point per bin and facility."""
    figure = go.Figure()
    if not grid.n_bins:
        return empty_figure(figure, "Price vs mining power", "no intervals recorded")
    price = grid.mean(_column(timeseries, "price_usd_per_mwh"))
    mining = grid.mean(_column(timeseries, "power_mining_mw"))
    for i, facility_id in enumerate(grid.facility_ids):
        keep = np.isfinite(price[:, i]) & np.isfinite(mining[:, i])
        figure.add_trace(
            go.Scatter(
                x=as_float32(price[keep, i]),
                y=as_float32(mining[keep, i]),
                name=facility_id,
                mode="markers",
                marker={"size": 4, "opacity": 0.5},
            )
        )
    figure.update_layout(
        title=f"Price vs mining power ({grid.bin_label} means)",
        xaxis_title="price USD/MWh",
        yaxis_title="mining IT power MW",
        template="plotly_white",
    )
    return figure


def revenue_cost_figure(timeseries: pl.DataFrame, grid: TimeGrid) -> go.Figure:
    """(c) Revenue by stream (up) and cost by stream (down) per day (per hour for runs of
    up to 3 days; per week past 2,000 days), with the net as a line."""
    figure = go.Figure()
    if not grid.n_bins:
        return empty_figure(figure, "Revenue and cost", "no intervals recorded")
    span_s = grid.n_bins * grid.bin_s
    period_s = 3600.0 if span_s <= 3 * 86400 else 86400.0
    if span_s / period_s > 2000:
        period_s = 7 * 86400.0
    t_s = _column(timeseries, "t_s")
    period = np.floor(t_s / period_s).astype(np.int64)
    first = int(period.min())
    period -= first
    n_periods = int(period.max()) + 1
    x0 = plotly_date(grid.start_utc + timedelta(seconds=first * period_s))

    def per_period(column: str) -> np.ndarray:
        values = _column(timeseries, column)
        finite = np.isfinite(values)
        return np.bincount(period[finite], weights=values[finite], minlength=n_periods)

    net = np.zeros(n_periods)
    for stream in REVENUE_STREAMS:
        values = per_period(REVENUE_COLUMNS[stream])
        net += values
        figure.add_trace(
            go.Bar(x0=x0, dx=period_s * 1000, y=as_float32(values), name=f"revenue: {stream}")
        )
    for stream in COST_STREAMS:
        values = per_period(COST_COLUMNS[stream])
        net -= values
        figure.add_trace(
            go.Bar(x0=x0, dx=period_s * 1000, y=as_float32(-values), name=f"cost: {stream}")
        )
    figure.add_trace(
        go.Scatter(
            x0=x0,
            dx=period_s * 1000,
            y=as_float32(net),
            name="net",
            mode="lines+markers",
            line={"color": "black"},
        )
    )
    figure.update_layout(barmode="relative")
    label = duration_label(period_s)
    return time_layout(figure, f"Revenue (up) and cost (down) per {label}", "USD")


def queue_figure(timeseries: pl.DataFrame, grid: TimeGrid) -> go.Figure:
    """(d1) Global queue length and running jobs (fleet total) over time."""
    figure = go.Figure()
    if not grid.n_bins:
        return empty_figure(figure, "Jobs queued and running", "no intervals recorded")
    queued = grid.mean(_column(timeseries, "queued_jobs"))
    # the global queue length is repeated on every facility row: take it once per bin
    finite = np.isfinite(queued)
    largest = np.where(finite, queued, -np.inf).max(axis=1)
    queued_global = np.where(finite.any(axis=1), largest, np.nan)
    running = _fleet_sum(grid.mean(_column(timeseries, "running_jobs")))
    figure.add_trace(
        go.Scatter(x0=grid.x0, dx=grid.dx_ms, y=as_float32(queued_global), name="queued (global)")
    )
    figure.add_trace(go.Scatter(x0=grid.x0, dx=grid.dx_ms, y=running, name="running (fleet)"))
    return time_layout(figure, f"Jobs queued and running ({grid.bin_label} means)", "jobs")


def wait_distribution_figure(jobs: pl.DataFrame) -> go.Figure:
    """(d2) Share of started jobs per wait-time bin, per workload type (all jobs counted)."""
    figure = go.Figure()
    started = jobs.with_columns(pl.col("type").cast(pl.String)).filter(
        pl.col("start_s").is_not_nan() & pl.col("wait_s").is_finite()
    )
    if not started.height:
        return empty_figure(figure, "Wait time distribution", "no job has started")
    edges = np.asarray(WAIT_EDGES_S)
    labels = [
        f"{_seconds_label(edges[i])}-{_seconds_label(edges[i + 1])}" for i in range(len(edges) - 1)
    ] + [f">{_seconds_label(edges[-1])}"]
    for workload_type in WORKLOAD_TYPES:
        waits = started.filter(pl.col("type") == workload_type)["wait_s"].to_numpy()
        if not waits.size:
            continue
        bins = np.clip(np.searchsorted(edges, waits, side="right") - 1, 0, len(edges) - 1)
        share = np.bincount(bins, minlength=len(edges)) / waits.size
        figure.add_trace(
            go.Bar(x=labels, y=as_float32(share), name=f"{workload_type} (n={waits.size})")
        )
    figure.update_layout(
        title="Wait time distribution (share of started jobs per type)",
        xaxis_title="wait [s]",
        yaxis_title="share of jobs",
        barmode="group",
        template="plotly_white",
    )
    return figure


def sla_figure(kpis: Mapping[str, Any]) -> go.Figure:
    """(d3) Share of jobs that met their SLA, per workload type (from kpis.json)."""
    sla = kpis.get("sla") or {}
    met = [(sla.get(t) or {}).get("met_fraction") for t in WORKLOAD_TYPES]
    figure = go.Figure(
        go.Bar(
            x=list(WORKLOAD_TYPES),
            y=[value if value is not None else 0.0 for value in met],
            text=[f"{value:.1%}" if value is not None else "no data" for value in met],
            textposition="outside",
            marker={"color": "#2ca02c"},
        )
    )
    figure.update_layout(
        title="SLA met (share of jobs with a decided SLA)",
        yaxis={"title": "met fraction", "range": [0, 1.1], "tickformat": ".0%"},
        template="plotly_white",
    )
    return figure


def time_layout(figure: go.Figure, title: str, y_title: str | None) -> go.Figure:
    figure.update_layout(
        title=title,
        template="plotly_white",
        hovermode="x unified",
        legend={"orientation": "h", "y": -0.12, "yanchor": "top"},
    )
    figure.update_xaxes(type="date", title_text="time (UTC)", title_standoff=4)
    if y_title is not None:
        figure.update_yaxes(title_text=y_title)
    return figure


def empty_figure(figure: go.Figure, title: str, message: str) -> go.Figure:
    figure.update_layout(
        title=title,
        template="plotly_white",
        annotations=[
            {
                "text": message,
                "showarrow": False,
                "x": 0.5,
                "y": 0.5,
                "xref": "paper",
                "yref": "paper",
            }
        ],
    )
    return figure


def _column(frame: pl.DataFrame, name: str) -> np.ndarray:
    return frame[name].cast(pl.Float64).to_numpy()


def _fleet_sum(per_facility: np.ndarray) -> np.ndarray:
    """Sum over facilities per bin as float32; NaN where no facility has data."""
    total = np.nansum(per_facility, axis=1)
    return as_float32(np.where(np.isfinite(per_facility).any(axis=1), total, np.nan))


def as_float32(values: np.ndarray) -> np.ndarray:
    """float32 copy: halves the embedded size; plenty for MW, USD/MWh and job counts."""
    return np.ascontiguousarray(values, dtype=np.float32)


def plotly_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration_label(seconds: float) -> str:
    for unit_s, unit in ((7 * 86400, "week"), (86400, "day"), (3600, "h"), (60, "min")):
        if seconds >= unit_s and seconds % unit_s == 0:
            count = int(seconds // unit_s)
            return unit if count == 1 and unit in ("week", "day") else f"{count} {unit}"
    return f"{seconds:g} s"


def _seconds_label(seconds: float) -> str:
    return f"{seconds / 1e3:g}k" if seconds >= 1e3 else f"{seconds:g}"


# ---------------------------------------------------------------------- html


def _header_html(metadata: Mapping[str, Any], kpis: Mapping[str, Any]) -> str:
    scenario = _mapping(metadata.get("scenario"))
    start_text, end_text = _scenario_dates(scenario)
    git = _mapping(metadata.get("git"))
    revision = str(git.get("revision", "unknown"))
    if git.get("dirty"):
        revision += " (uncommitted changes)"
    facilities = scenario.get("facilities") or []
    facility_ids = ", ".join(str(f.get("id")) for f in facilities if isinstance(f, Mapping))
    rows = [
        ("Scenario", metadata.get("name", scenario.get("name"))),
        ("Description", scenario.get("description")),
        ("Period (UTC)", f"{start_text} to {end_text}"),
        ("Simulated days", format_number(kpis.get("sim_days"), 2)),
        ("Facilities", facility_ids),
        ("Seed", metadata.get("seed")),
        ("Git revision", revision),
        ("Started at", metadata.get("started_at")),
        ("Runtime", f"{format_number(metadata.get('runtime_s'), 1)} s"),
    ]
    name = html.escape(str(metadata.get("name", "run")))
    return f"<header><h1>{name}</h1>{html_table(rows)}</header>"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _scenario_dates(scenario: Mapping[str, Any]) -> tuple[str, str]:
    start = scenario.get("start")
    days = scenario.get("duration_days")
    if not start:
        return "?", "?"
    try:
        parsed = datetime.fromisoformat(str(start))
    except ValueError:
        return str(start), "?"
    parsed = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    end = parsed + timedelta(days=float(days)) if isinstance(days, int | float) else None
    end_text = end.strftime("%Y-%m-%d %H:%M") if end else "?"
    return parsed.strftime("%Y-%m-%d %H:%M"), end_text


def _scheduling_html(kpis: Mapping[str, Any]) -> str:
    """One line of scheduling figures: preemptions, lost GPU work, rejections."""
    scheduling = kpis.get("scheduling") or {}
    rejected = scheduling.get("rejected_by_reason") or {}
    reasons = "; ".join(f"{html.escape(str(k))}: {v}" for k, v in rejected.items()) or "none"
    return (
        f"<p>Preemptions: {scheduling.get('preemptions', 0)}; GPU work redone after "
        f"preemptions: {format_number(scheduling.get('lost_work_gpu_h'), 1)} GPU-h; "
        f"rejected: {reasons}.</p>"
    )


def _summary_html(kpis: Mapping[str, Any]) -> str:
    revenue = kpis.get("revenue_usd") or {}
    cost = kpis.get("cost_usd") or {}
    utilization = kpis.get("utilization") or {}
    curtailment = kpis.get("curtailment") or {}
    money_rows: list[tuple[str, Any]] = [("Net", format_usd(kpis.get("net_usd")))]
    money_rows += [("Revenue total", format_usd(revenue.get("total")))]
    money_rows += [(f"Revenue: {s}", format_usd(revenue.get(s))) for s in REVENUE_STREAMS]
    money_rows += [("Cost total", format_usd(cost.get("total")))]
    money_rows += [(f"Cost: {s}", format_usd(cost.get(s))) for s in COST_STREAMS]
    operations_rows: list[tuple[str, Any]] = [
        ("Energy", f"{format_number(kpis.get('energy_mwh'), 1)} MWh"),
        ("Curtailed energy", f"{format_number(curtailment.get('mwh'), 1)} MWh"),
        ("Curtailed time", f"{format_number(curtailment.get('hours'), 2)} h"),
        ("GPU utilization", format_percent(utilization.get("gpu"))),
        ("ASIC utilization", format_percent(utilization.get("asic"))),
        ("Power vs cap", format_percent(utilization.get("power"))),
    ]
    workloads = kpis.get("workloads") or {}
    workload_rows = [(key.replace("_", " "), value) for key, value in workloads.items()]
    sla = kpis.get("sla") or {}
    sla_rows = [
        [
            workload_type,
            format_percent((sla.get(workload_type) or {}).get("met_fraction")),
            format_number((sla.get(workload_type) or {}).get("wait_p50_s"), 3),
            format_number((sla.get(workload_type) or {}).get("wait_p99_s"), 3),
            (sla.get(workload_type) or {}).get("count"),
        ]
        for workload_type in WORKLOAD_TYPES
    ]
    facility_rows = [
        [
            facility_id,
            format_usd(values.get("net_usd")),
            format_usd(values.get("revenue_usd")),
            format_usd(values.get("cost_usd")),
            format_number(values.get("energy_mwh"), 1),
            format_number(values.get("mean_price_usd_per_mwh"), 2),
        ]
        for facility_id, values in (kpis.get("per_facility") or {}).items()
        if isinstance(values, Mapping)
    ]
    return (
        '<div class="cards">'
        f"<div><h3>Money (USD)</h3>{html_table(money_rows)}</div>"
        f"<div><h3>Operations</h3>{html_table(operations_rows)}</div>"
        f"<div><h3>Workloads</h3>{html_table(workload_rows)}</div>"
        "</div>"
        "<h3>SLA by workload type</h3>"
        + grid_table(["type", "SLA met", "wait p50 [s]", "wait p99 [s]", "jobs"], sla_rows)
        + "<h3>Per facility</h3>"
        + grid_table(
            ["facility", "net USD", "revenue USD", "cost USD", "energy MWh", "mean price USD/MWh"],
            facility_rows,
        )
    )


def _section(anchor: str, content: str) -> str:
    return f'<section id="{anchor}"><h2>{html.escape(SECTIONS[anchor])}</h2>{content}</section>'


def html_table(rows: Sequence[tuple[str, Any]]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(str(label))}</th><td>{_cell(value)}</td></tr>"
        for label, value in rows
    )
    return f"<table>{cells}</table>"


def grid_table(headings: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table class="grid"><tr>{head}</tr>{body}</table>'


def _cell(value: Any) -> str:
    return "&mdash;" if value is None or value == "" else html.escape(str(value))


def format_number(value: Any, digits: int) -> str | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return f"{value:,.{digits}f}"


def format_usd(value: Any) -> str | None:
    return format_number(value, 2)


def format_percent(value: Any) -> str | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return f"{value:.2%}"


PAGE_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - HCP Twin report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px;
       color: #222; padding: 0 1rem; }}
h1 {{ margin-bottom: 0.3rem; }}
section {{ margin-top: 2rem; border-top: 1px solid #ddd; }}
table {{ border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }}
th, td {{ padding: 0.2rem 0.6rem; text-align: left; border-bottom: 1px solid #eee; }}
td {{ font-variant-numeric: tabular-nums; }}
table.grid td {{ text-align: right; }}
table.grid td:first-child {{ text-align: left; }}
.cards {{ display: flex; flex-wrap: wrap; gap: 2rem; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""
