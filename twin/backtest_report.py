"""Self-contained HTML comparison of the policies of one backtest (offline, no CDN).

:func:`write_backtest_report` reads ``backtest.json`` and each policy's
``timeseries.parquet`` from a backtest folder (see twin.backtest) and writes
``backtest.html``:

* a KPI table per policy (net, delta vs the best policy, capture vs the oracle, regret,
  revenue, cost, energy, curtailment, SLA);
* ``fig-net-by-stream``: revenue (up) and cost (down) by stream per policy, net marked;
* ``fig-price-mining``: fleet mining power of each policy over time on the price;
* ``fig-cumulative-net``: cumulative net revenue of each policy over time;
* ``fig-drilldown``: the day with the largest spread of daily net between policies, at
  full dispatch resolution (price, mining power and cumulative net of that day).

plotly.js is inlined once; long windows are averaged into time bins with the run report's
rules (twin.report.choose_bin_s) so the page stays small. Times are shown in UTC.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from twin.backtest import BACKTEST_HTML, BACKTEST_JSON
from twin.recorder import (
    COST_COLUMNS,
    COST_STREAMS,
    REVENUE_COLUMNS,
    REVENUE_STREAMS,
    TIMESERIES_FILE,
    atomic_output,
)
from twin.report import (
    FIGURE_HEIGHT_PX,
    MAX_POINTS_PER_TRACE,
    PAGE_TEMPLATE,
    POINT_BUDGET,
    ReportError,
    as_float32,
    choose_bin_s,
    duration_label,
    empty_figure,
    format_number,
    format_percent,
    format_usd,
    grid_table,
    html_table,
    plotly_date,
    time_layout,
)
from twin.scenario import WORKLOAD_TYPES

FIGURE_IDS: tuple[str, ...] = (
    "fig-net-by-stream",
    "fig-price-mining",
    "fig-cumulative-net",
    "fig-drilldown",
)
"""The div id of every figure, in page order (one plotly div each)."""

POLICY_COLORS: Mapping[str, str] = {
    "always_on": "#ff7f0e",
    "strike": "#1f77b4",
    "greedy": "#2ca02c",
    "mpc": "#9467bd",
    "oracle": "#d62728",
}
STREAM_COLORS: Mapping[str, str] = {
    "mining": "#f2a900",
    "ai_inference": "#1f77b4",
    "training": "#9467bd",
    "spot": "#2ca02c",
    "ancillary": "#17becf",
    "resale": "#bcbd22",
    "demand_response": "#e377c2",
    "energy": "#8c564b",
    "transmission_4cp": "#d62728",
    "penalties": "#7f7f7f",
}
DAY_S = 86400.0

_READ_COLUMNS: tuple[str, ...] = (
    "t_s",
    "facility_id",
    "price_usd_per_mwh",
    "power_mining_mw",
    "curtailed_mw",
    *REVENUE_COLUMNS.values(),
    *COST_COLUMNS.values(),
)


@dataclass(frozen=True)
class PolicySeries:
    """Fleet totals of one policy per dispatch interval (rows in time order).

    ``net_usd``: revenue minus cost accrued in each interval [USD]; ``mining_mw`` and
    ``curtailed_mw``: fleet mining IT power and curtailed mining power [MW, interval means].
    """

    t_s: np.ndarray
    net_usd: np.ndarray
    mining_mw: np.ndarray
    curtailed_mw: np.ndarray


@dataclass(frozen=True)
class BacktestFiles:
    """What the page shows: ``backtest.json`` and each policy's fleet series, plus the
    price per settlement point [USD/MWh] (the same world for every policy)."""

    summary: dict[str, Any]
    series: dict[str, PolicySeries]
    prices: dict[str, np.ndarray]

    @property
    def start_utc(self) -> datetime:
        """Scenario start (UTC)."""
        return datetime.fromisoformat(self.summary["window"]["start_utc"]).astimezone(UTC)

    @property
    def interval_s(self) -> float:
        """Dispatch interval [s]."""
        return float(self.summary["scenario"]["dispatch_interval_s"])


def write_backtest_report(out_dir: Path) -> Path:
    """Write ``backtest.html`` into the backtest folder ``out_dir``; returns its path.

    Raises:
        ReportError: ``backtest.json`` or a policy's time series is missing or unreadable,
            or the policies were not run on the same intervals.
    """
    out_dir = Path(out_dir)
    page = render_backtest_report(read_backtest(out_dir))
    path = out_dir / BACKTEST_HTML
    with atomic_output(path) as handle:
        handle.write(page)
    return path


def read_backtest(out_dir: Path) -> BacktestFiles:
    """Read ``backtest.json`` and the fleet series of each policy it lists."""
    summary_path = out_dir / BACKTEST_JSON
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{summary_path}: file not found") from None
    except (OSError, ValueError) as error:
        raise ReportError(f"{summary_path}: cannot read ({error})") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("policies"), dict):
        raise ReportError(f"{summary_path}: expected a mapping with 'policies'")
    facilities: Mapping[str, str] = summary["scenario"]["facilities"]
    series: dict[str, PolicySeries] = {}
    prices: dict[str, np.ndarray] = {}
    reference: np.ndarray | None = None
    for name, values in summary["policies"].items():
        path = out_dir / str(values.get("results_dir", name)) / TIMESERIES_FILE
        frame = _read_timeseries(path)
        series[name] = fleet_series(frame)
        if reference is None:
            reference = series[name].t_s
            prices = settlement_point_prices(frame, facilities)
        elif not np.array_equal(reference, series[name].t_s):
            raise ReportError(f"{path}: intervals differ from the other policies' runs")
    return BacktestFiles(summary, series, prices)


def _read_timeseries(path: Path) -> pl.DataFrame:
    if not path.is_file():
        raise ReportError(f"{path}: file not found")
    try:
        return pl.read_parquet(path, columns=list(_READ_COLUMNS))
    except (OSError, pl.exceptions.PolarsError) as error:
        raise ReportError(f"{path}: cannot read ({error})") from None


def fleet_series(frame: pl.DataFrame) -> PolicySeries:
    """Sum the facility rows of each interval (NaN counts as 0, as in the KPIs)."""
    revenue = pl.sum_horizontal([pl.col(c).fill_nan(0.0) for c in REVENUE_COLUMNS.values()])
    cost = pl.sum_horizontal([pl.col(c).fill_nan(0.0) for c in COST_COLUMNS.values()])
    fleet = (
        frame.select(
            "t_s",
            (revenue - cost).alias("net_usd"),
            pl.col("power_mining_mw").fill_nan(0.0),
            pl.col("curtailed_mw").fill_nan(0.0),
        )
        .group_by("t_s")
        .agg(pl.all().sum())
        .sort("t_s")
    )
    return PolicySeries(
        t_s=fleet["t_s"].cast(pl.Float64).to_numpy(),
        net_usd=fleet["net_usd"].to_numpy(),
        mining_mw=fleet["power_mining_mw"].to_numpy(),
        curtailed_mw=fleet["curtailed_mw"].to_numpy(),
    )


def settlement_point_prices(
    frame: pl.DataFrame, facilities: Mapping[str, str]
) -> dict[str, np.ndarray]:
    """Price per settlement point per interval [USD/MWh], from the first facility at it."""
    prices: dict[str, np.ndarray] = {}
    for facility_id, point in facilities.items():
        if point in prices:
            continue
        rows = frame.filter(pl.col("facility_id").cast(pl.String) == facility_id).sort("t_s")
        prices[point] = rows["price_usd_per_mwh"].cast(pl.Float64).to_numpy()
    return prices


# ---------------------------------------------------------------------- page


def render_backtest_report(files: BacktestFiles) -> str:
    """The complete HTML page of a backtest."""
    bins = Bins.for_files(files)
    figures = {
        "fig-net-by-stream": net_by_stream_figure(files.summary),
        "fig-price-mining": price_mining_figure(files, bins),
        "fig-cumulative-net": cumulative_net_figure(files, bins),
        "fig-drilldown": drilldown_figure(files),
    }
    divs = {
        figure_id: figures[figure_id].to_html(
            full_html=False,
            include_plotlyjs=position == 0,
            div_id=figure_id,
            default_height=f"{FIGURE_HEIGHT_PX}px",
            config={"displaylogo": False, "responsive": True},
        )
        for position, figure_id in enumerate(FIGURE_IDS)
    }
    summary = files.summary
    body = [
        _header_html(summary),
        _section("kpis", "Policies compared", _kpi_tables_html(summary)),
        _section("streams", "Net revenue by stream", divs["fig-net-by-stream"]),
        _section(
            "price",
            "Price and mining power",
            f"<p>Fleet mining IT power of each policy ({html.escape(bins.label)} means) over "
            "the settlement point price; curtailed power is in the legend (click to show)."
            "</p>" + divs["fig-price-mining"],
        ),
        _section("cumulative", "Cumulative net revenue", divs["fig-cumulative-net"]),
        _section(
            "drilldown",
            "The day the policies differ most",
            "<p>The simulated day with the largest spread of net revenue between policies, "
            "at full dispatch resolution.</p>" + divs["fig-drilldown"],
        ),
    ]
    title = html.escape(f"{summary['scenario']['name']} backtest")
    return PAGE_TEMPLATE.format(title=title, body="\n".join(body))


def _section(anchor: str, heading: str, content: str) -> str:
    return f'<section id="{anchor}"><h2>{html.escape(heading)}</h2>{content}</section>'


def _header_html(summary: Mapping[str, Any]) -> str:
    scenario = summary["scenario"]
    window = summary["window"]
    prices = summary["prices"]
    source = str(prices.get("kind"))
    if prices.get("file"):
        source = f"{prices.get('format', 'historical')}: {prices['file']}"
    facilities = ", ".join(f"{fid} ({point})" for fid, point in scenario["facilities"].items())
    rows = [
        ("Scenario", scenario["name"]),
        ("Scenario file", scenario.get("file")),
        ("Window", f"{window['start']} to {window['end']} ({window['time_zone']})"),
        ("Simulated days", format_number(window["duration_days"], 2)),
        ("Prices", source),
        ("Facilities (settlement point)", facilities),
        ("Seed", scenario["seed"]),
        ("Policies", ", ".join(summary["policies"])),
    ]
    rows += [(f"Skipped {name}", reason) for name, reason in summary["skipped_policies"].items()]
    name = html.escape(f"Backtest: {scenario['name']}")
    return f"<header><h1>{name}</h1>{html_table(rows)}</header>"


def _kpi_tables_html(summary: Mapping[str, Any]) -> str:
    policies: Mapping[str, Mapping[str, Any]] = summary["policies"]
    rows = [
        [
            name,
            format_usd(values["net_usd"]),
            format_usd(values["delta_vs_best_usd"]),
            format_percent(values["capture_vs_oracle"]),
            format_usd(values["regret_usd"]),
            format_usd(values["revenue_usd"]["total"]),
            format_usd(values["cost_usd"]["total"]),
            format_number(values["energy_mwh"], 1),
            format_number(values["curtailment"]["mwh"], 1),
            format_number(values["curtailment"]["hours"], 2),
            format_number(values["wall_s"], 1),
        ]
        for name, values in policies.items()
    ]
    kpis = grid_table(
        [
            "policy",
            "net USD",
            "vs best USD",
            "capture vs oracle",
            "regret USD",
            "revenue USD",
            "cost USD",
            "energy MWh",
            "curtailed MWh",
            "curtailed h",
            "wall s",
        ],
        rows,
    )
    sla_rows = [
        [name, *(format_percent(values["sla_met_fraction"].get(t)) for t in WORKLOAD_TYPES)]
        for name, values in policies.items()
    ]
    best = summary.get("best_policy")
    note = (
        f"<p>Best net: <b>{html.escape(str(best))}</b>. Capture = net / oracle net "
        "(the oracle dispatches on the true future; blank without an oracle run or when its "
        "net is not positive); regret = oracle net - net.</p>"
    )
    return (
        note
        + kpis
        + "<h3>SLA met by workload type</h3>"
        + grid_table(["policy", *WORKLOAD_TYPES], sla_rows)
    )


# ---------------------------------------------------------------------- time bins


@dataclass(frozen=True)
class Bins:
    """Equal time bins of ``factor`` dispatch intervals each for the long-window figures."""

    factor: int
    bin_s: float
    x0: str

    @classmethod
    def for_files(cls, files: BacktestFiles) -> Bins:
        """Bins sized so the time-series traces of all policies fit the point budget."""
        n_intervals = max((len(s.t_s) for s in files.series.values()), default=0)
        n_traces = 3 * len(files.series) + len(files.prices)
        max_points = min(MAX_POINTS_PER_TRACE, POINT_BUDGET // max(n_traces, 1))
        interval_s = files.interval_s
        bin_s = choose_bin_s(interval_s, max(n_intervals, 1) * interval_s, max_points)
        first_s = next((float(s.t_s[0]) for s in files.series.values() if len(s.t_s)), 0.0)
        x0 = plotly_date(files.start_utc + timedelta(seconds=first_s))
        return cls(max(1, round(bin_s / interval_s)), bin_s, x0)

    @property
    def label(self) -> str:
        """Human text for the bin width, e.g. ``1 h``."""
        return duration_label(self.bin_s)

    @property
    def dx_ms(self) -> float:
        """Bin width in plotly date units [ms]."""
        return self.bin_s * 1000.0

    def mean(self, values: np.ndarray) -> np.ndarray:
        """Mean per bin (NaN ignored; NaN where a bin has no finite value)."""
        blocks = self._blocks(values)
        finite = np.isfinite(blocks)
        counts = finite.sum(axis=1)
        sums = np.where(finite, blocks, 0.0).sum(axis=1)
        return as_float32(np.where(counts > 0, sums / np.maximum(counts, 1), np.nan))

    def last(self, values: np.ndarray) -> np.ndarray:
        """The value at the end of each bin (for running totals)."""
        if not values.size:
            return as_float32(values)
        ends = np.minimum(np.arange(1, self._n_bins(values) + 1) * self.factor, values.size) - 1
        return as_float32(values[ends])

    def _n_bins(self, values: np.ndarray) -> int:
        return math.ceil(values.size / self.factor)

    def _blocks(self, values: np.ndarray) -> np.ndarray:
        padded = np.full(self._n_bins(values) * self.factor, np.nan)
        padded[: values.size] = values
        return padded.reshape(-1, self.factor)


# ---------------------------------------------------------------------- figures


def net_by_stream_figure(summary: Mapping[str, Any]) -> go.Figure:
    """Revenue by stream (up) and cost by stream (down) per policy, with the net marked.
    Streams that are zero for every policy are left out."""
    policies: Mapping[str, Mapping[str, Any]] = summary["policies"]
    figure = go.Figure()
    if not policies:
        return empty_figure(figure, "Net revenue by stream", "no policy was run")
    names = list(policies)
    for stream in REVENUE_STREAMS:
        values = [float(policies[n]["revenue_usd"].get(stream) or 0.0) for n in names]
        if any(values):
            figure.add_trace(
                go.Bar(
                    x=names,
                    y=values,
                    name=f"revenue: {stream}",
                    marker={"color": STREAM_COLORS.get(stream)},
                )
            )
    for stream in COST_STREAMS:
        values = [-float(policies[n]["cost_usd"].get(stream) or 0.0) for n in names]
        if any(values):
            figure.add_trace(
                go.Bar(
                    x=names,
                    y=values,
                    name=f"cost: {stream}",
                    marker={"color": STREAM_COLORS.get(stream), "pattern": {"shape": "/"}},
                )
            )
    nets = [float(policies[n]["net_usd"]) for n in names]
    figure.add_trace(
        go.Scatter(
            x=names,
            y=nets,
            name="net",
            mode="markers+text",
            marker={"symbol": "diamond", "size": 14, "color": "black"},
            text=[f"{value:,.0f}" for value in nets],
            textposition="middle right",
        )
    )
    figure.update_layout(
        title="Revenue (up) and cost (down) by stream per policy; net marked",
        barmode="relative",
        template="plotly_white",
        yaxis_title="USD",
        legend={"orientation": "h", "y": -0.12, "yanchor": "top"},
    )
    return figure


def price_mining_figure(files: BacktestFiles, bins: Bins) -> go.Figure:
    """Fleet mining power per policy (left axis) over the price per settlement point (right
    axis); curtailed power per policy is available from the legend."""
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    if not files.series or not bins.factor:
        return empty_figure(figure, "Price and mining power", "no intervals recorded")
    _add_price_traces(figure, files.prices, bins.mean, bins.x0, bins.dx_ms)
    for name, series in files.series.items():
        color = POLICY_COLORS.get(name)
        _add_power_line(
            figure,
            bins.x0,
            bins.dx_ms,
            bins.mean(series.mining_mw),
            f"mining MW: {name}",
            name,
            {"color": color, "width": 1.5},
        )
        _add_power_line(
            figure,
            bins.x0,
            bins.dx_ms,
            bins.mean(series.curtailed_mw),
            f"curtailed MW: {name}",
            name,
            {"color": color, "width": 1, "dash": "dot"},
            visible="legendonly",
        )
    figure.update_yaxes(title_text="mining IT power MW", rangemode="tozero", secondary_y=False)
    figure.update_yaxes(title_text="price USD/MWh", showgrid=False, secondary_y=True)
    figure = time_layout(figure, f"Price and mining power per policy ({bins.label} means)", None)
    figure.update_layout(legend={"y": -0.2})  # below the axis title
    return figure


def cumulative_net_figure(files: BacktestFiles, bins: Bins) -> go.Figure:
    """Running total of net revenue per policy [USD], sampled at the end of each bin."""
    figure = go.Figure()
    if not files.series:
        return empty_figure(figure, "Cumulative net revenue", "no intervals recorded")
    for name, series in files.series.items():
        figure.add_trace(
            go.Scatter(
                x0=plotly_date(
                    files.start_utc + timedelta(seconds=float(series.t_s[0]) + bins.bin_s)
                )
                if series.t_s.size
                else bins.x0,
                dx=bins.dx_ms,
                y=bins.last(np.cumsum(series.net_usd)),
                name=name,
                mode="lines",
                line={"color": POLICY_COLORS.get(name)},
            )
        )
    return time_layout(figure, "Cumulative net revenue per policy (at bin ends)", "USD")


def largest_spread_day(files: BacktestFiles) -> tuple[int, np.ndarray]:
    """Index of the simulated day (24 h from the scenario start) with the largest spread
    of daily net between policies, and the daily nets ``[days, policies]`` [USD]."""
    series = list(files.series.values())
    if not series or not series[0].t_s.size:
        return 0, np.zeros((0, len(series)))
    day = np.floor(series[0].t_s / DAY_S).astype(np.int64)
    n_days = int(day.max()) + 1
    daily = np.column_stack([np.bincount(day, weights=s.net_usd, minlength=n_days) for s in series])
    spread = daily.max(axis=1) - daily.min(axis=1)
    return int(np.argmax(spread)), daily


def day_subplots() -> go.Figure:
    """The empty layout of a one-day drill-down: power on the price (top, price on the
    right axis) over net within the day (bottom), sharing the time axis."""
    return make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        row_heights=[0.6, 0.4],
        specs=[[{"secondary_y": True}], [{}]],
    )


def drilldown_figure(files: BacktestFiles) -> go.Figure:
    """The day of :func:`largest_spread_day` at full resolution: mining power per policy
    on the price (top) and cumulative net within the day per policy (bottom)."""
    figure = day_subplots()
    if not files.series or not next(iter(files.series.values())).t_s.size:
        return empty_figure(figure, "Day with the largest spread", "no intervals recorded")
    day, daily = largest_spread_day(files)
    t_s = next(iter(files.series.values())).t_s
    rows = (t_s >= day * DAY_S) & (t_s < (day + 1) * DAY_S)
    first_s = float(t_s[rows][0])
    x0 = plotly_date(files.start_utc + timedelta(seconds=first_s))
    dx_ms = files.interval_s * 1000.0

    def full(values: np.ndarray) -> np.ndarray:
        return as_float32(values[rows])

    _add_price_traces(figure, files.prices, full, x0, dx_ms)
    for name, series in files.series.items():
        color = POLICY_COLORS.get(name)
        _add_power_line(
            figure,
            x0,
            dx_ms,
            full(series.mining_mw),
            f"mining MW: {name}",
            name,
            {"color": color, "shape": "hv"},
        )
        figure.add_trace(
            go.Scatter(
                x0=plotly_date(files.start_utc + timedelta(seconds=first_s + files.interval_s)),
                dx=dx_ms,
                y=as_float32(np.cumsum(series.net_usd[rows])),
                name=f"net so far: {name}",
                mode="lines",
                line={"color": color},
                legendgroup=name,
                showlegend=False,
            ),
            row=2,
            col=1,
        )
    spread = float(daily[day].max() - daily[day].min())
    day_start = files.start_utc + timedelta(seconds=day * DAY_S)
    title = (
        f"Day {day + 1} ({day_start:%Y-%m-%d %H:%M} UTC): daily net spread "
        f"{spread:,.0f} USD between policies ({duration_label(files.interval_s)} intervals)"
    )
    figure.update_yaxes(title_text="mining MW", rangemode="tozero", row=1, col=1)
    figure.update_yaxes(title_text="USD/MWh", showgrid=False, row=1, col=1, secondary_y=True)
    figure.update_yaxes(title_text="net so far USD", row=2, col=1)
    figure = time_layout(figure, title, None)
    figure.update_xaxes(title_text=None, row=1, col=1)
    figure.update_layout(legend={"y": -0.2})  # below the axis title
    return figure


def _add_price_traces(
    figure: go.Figure,
    prices: Mapping[str, np.ndarray],
    reduce: Callable[[np.ndarray], np.ndarray],
    x0: str,
    dx_ms: float,
) -> None:
    """Price per settlement point as a shaded backdrop on the right axis of row 1."""
    shades = ("0,0,0", "90,90,90", "140,140,140", "180,180,180")
    for index, (point, values) in enumerate(prices.items()):
        shade = shades[index % len(shades)]
        figure.add_trace(
            go.Scatter(
                x0=x0,
                dx=dx_ms,
                y=reduce(values),
                name=f"price {point}",
                mode="lines",
                line={"color": f"rgba({shade},0.45)", "width": 1, "shape": "hv"},
                fill="tozeroy",
                fillcolor=f"rgba({shade},0.07)",
            ),
            row=1,
            col=1,
            secondary_y=True,
        )


def _add_power_line(
    figure: go.Figure,
    x0: str,
    dx_ms: float,
    y: np.ndarray,
    label: str,
    policy: str,
    line: dict[str, Any],
    **extra: Any,
) -> None:
    """One policy's power series [MW] on the primary axis of the top subplot."""
    figure.add_trace(
        go.Scatter(
            x0=x0, dx=dx_ms, y=y, name=label, mode="lines", line=line, legendgroup=policy, **extra
        ),
        row=1,
        col=1,
        secondary_y=False,
    )
