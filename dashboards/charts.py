"""Plotly figures of the dashboards: pure functions of pandas frames (no Streamlit, no IO).

Each builder takes the frame shapes dashboards.results produces and returns a
``go.Figure``; an empty input gives a figure that says so instead of failing. Long series
are averaged into time bins (:func:`downsample`) so a year-long run stays responsive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from twin.backtest_report import POLICY_COLORS, STREAM_COLORS, day_subplots
from twin.report import choose_bin_s

MAX_POINTS_PER_LINE = 2000
"""Most points of one line after :func:`downsample`."""

MAX_SCATTER_POINTS = 50_000
"""Most points of the price vs curtailment scatter (an even sample of the rows above it)."""

FIGURE_HEIGHT_PX = 420
DAY_S = 86400.0

XAxis = Literal["elapsed_days", "time"]

RUN_COLORS: tuple[str, ...] = tuple(qualitative.D3)
"""Line colours of compared runs, in selection order (cycled)."""

STREAM_COLOURS: Mapping[str, str] = {**STREAM_COLORS, "data_transfer": "#aec7e8"}
"""The run report's stream colours, plus one for data transfer."""

_UNITS: tuple[tuple[str, str], ...] = (
    ("_usd_per_mwh", "USD/MWh"),
    ("_usd_per_ths_day", "USD/TH/s/day"),
    ("_usd", "USD"),
    ("_mwh", "MWh"),
    ("_mw", "MW"),
    ("_ths", "TH/s"),
    ("_c", "°C"),
    ("_fraction", "fraction"),
    ("_jobs", "jobs"),
)


def column_unit(column: str) -> str:
    """The unit of a results column from its name (``power_total_mw`` -> ``MW``); ``""``
    when the name carries none (counts, PUE, difficulty)."""
    for suffix, unit in _UNITS:
        if column.endswith(suffix):
            return unit
    return ""


def column_label(column: str) -> str:
    """Axis text for a results column: the name with its unit, e.g. ``power_total_mw [MW]``."""
    unit = column_unit(column)
    return f"{column} [{unit}]" if unit else column


def downsample(series: pd.DataFrame, max_points: int = MAX_POINTS_PER_LINE) -> pd.DataFrame:
    """``series`` (columns ``t_s``, ``time``, ``value``; one row per interval) averaged into
    equal time bins so at most ``max_points`` rows remain; the bin width is the interval or
    a round duration (twin.report.choose_bin_s). Each bin keeps its first ``t_s``/``time``."""
    if len(series) <= max_points:
        return series.reset_index(drop=True)
    t_s = series["t_s"].to_numpy(dtype=float)
    steps = np.diff(np.unique(t_s))
    interval_s = float(steps.min()) if steps.size else 1.0
    span_s = float(t_s.max() - t_s.min()) + interval_s
    bin_s = choose_bin_s(interval_s, span_s, max_points)
    bins = np.floor((t_s - t_s.min()) / bin_s).astype(np.int64)
    grouped = series.assign(_bin=bins).groupby("_bin", sort=True)
    return grouped.agg(t_s=("t_s", "first"), time=("time", "first"), value=("value", "mean"))


def overlay_figure(
    series_by_run: Mapping[str, pd.DataFrame],
    column: str,
    x_axis: XAxis = "elapsed_days",
    title: str | None = None,
) -> go.Figure:
    """One line per run of ``column`` (frames with ``t_s``, ``time``, ``value``), on days
    since each run's start (runs of different dates line up) or on calendar time (UTC)."""
    figure = go.Figure()
    for index, (run, series) in enumerate(series_by_run.items()):
        points = downsample(series)
        x = points["t_s"] / DAY_S if x_axis == "elapsed_days" else points["time"]
        line = {"shape": "hv", "color": RUN_COLORS[index % len(RUN_COLORS)]}
        figure.add_trace(go.Scatter(x=x, y=points["value"], name=run, mode="lines", line=line))
    x_title = "days since start" if x_axis == "elapsed_days" else "time (UTC)"
    return _layout(
        figure, title or f"{column} per run", x_title, column_label(column), bool(series_by_run)
    )


def stream_figure(streams: pd.DataFrame) -> go.Figure:
    """Revenue (up) and cost (down) by stream per run, with each run's net marked; input
    from dashboards.results.stream_frame (``run``, ``kind``, ``stream``, ``usd``)."""
    figure = go.Figure()
    runs = list(pd.unique(streams["run"])) if not streams.empty else []
    for (kind, stream), rows in streams.groupby(["kind", "stream"], sort=False):
        sign = -1.0 if kind == "cost" else 1.0
        values = rows.set_index("run")["usd"].reindex(runs).fillna(0.0)
        figure.add_trace(
            go.Bar(
                x=runs,
                y=sign * values.to_numpy(),
                name=f"{kind}: {stream}",
                marker_color=STREAM_COLOURS.get(str(stream)),
            )
        )
    if runs:
        signed = np.where(streams["kind"] == "cost", -1.0, 1.0) * streams["usd"]
        net = signed.groupby(streams["run"]).sum().reindex(runs)
        figure.add_trace(
            go.Scatter(
                x=runs,
                y=net.to_numpy(),
                name="net",
                mode="markers",
                marker={"symbol": "diamond", "size": 12, "color": "black"},
            )
        )
    figure.update_layout(barmode="relative")
    return _layout(
        figure, "Revenue and cost by stream", None, "USD", bool(runs), hovermode="closest"
    )


def policy_bar_figure(table: pd.DataFrame, column: str, title: str) -> go.Figure:
    """One bar per policy (the index of ``table``) of ``column``; missing values left out."""
    values = table[column].dropna() if column in table.columns else pd.Series(dtype=float)
    figure = go.Figure(
        go.Bar(
            x=[str(p) for p in values.index],
            y=values.to_numpy(),
            marker_color=[POLICY_COLORS.get(str(p), "#636efa") for p in values.index],
            text=[f"{v:,.0f}" for v in values.to_numpy()],
            textposition="outside",
        )
    )
    return _layout(
        figure, title, "policy", column_label(column), not values.empty, hovermode="closest"
    )


def cumulative_net_figure(fleet: pd.DataFrame) -> go.Figure:
    """Cumulative net revenue of each policy over time (from results.policy_fleet)."""
    figure = go.Figure()
    for policy, rows in fleet.groupby("policy", sort=False):
        points = downsample(
            rows[["t_s", "time", "cumulative_net_usd"]].rename(
                columns={"cumulative_net_usd": "value"}
            )
        )
        figure.add_trace(
            go.Scatter(
                x=points["time"],
                y=points["value"],
                name=str(policy),
                mode="lines",
                line={"color": POLICY_COLORS.get(str(policy))},
            )
        )
    return _layout(
        figure, "Cumulative net revenue per policy", "time (UTC)", "USD", not fleet.empty
    )


def price_curtailment_figure(series: pd.DataFrame) -> go.Figure:
    """Curtailed mining power against the price, one point per facility and interval,
    coloured by policy (from results.read_backtest_series): a policy that curtails on
    price shows a step up at its strike."""
    figure = go.Figure()
    rows = series
    if len(rows) > MAX_SCATTER_POINTS:
        rows = rows.iloc[np.linspace(0, len(rows) - 1, MAX_SCATTER_POINTS).astype(np.int64)]
    for policy, points in rows.groupby("policy", sort=False):
        figure.add_trace(
            go.Scattergl(
                x=points["price_usd_per_mwh"],
                y=points["curtailed_mw"],
                name=str(policy),
                mode="markers",
                marker={"size": 5, "opacity": 0.5, "color": POLICY_COLORS.get(str(policy))},
            )
        )
    return _layout(
        figure,
        "Curtailed mining power vs price (per facility and interval)",
        column_label("price_usd_per_mwh"),
        column_label("curtailed_mw"),
        not series.empty,
        hovermode="closest",
    )


def day_figure(day: pd.DataFrame, title: str) -> go.Figure:
    """One day at full resolution (from results.day_rows): fleet mining power per policy
    over the price (top, price on the right axis) and net accrued within the day (bottom)."""
    figure = day_subplots()
    first = True
    for policy, rows in day.groupby("policy", sort=False):
        color = POLICY_COLORS.get(str(policy))
        if first:
            figure.add_trace(
                go.Scatter(
                    x=rows["time"],
                    y=rows["price_usd_per_mwh"],
                    name="price (fleet mean)",
                    mode="lines",
                    line={"color": "rgba(90,90,90,0.5)", "shape": "hv", "width": 1},
                    fill="tozeroy",
                    fillcolor="rgba(90,90,90,0.08)",
                ),
                row=1,
                col=1,
                secondary_y=True,
            )
            first = False
        figure.add_trace(
            go.Scatter(
                x=rows["time"],
                y=rows["power_mining_mw"],
                name=f"mining MW: {policy}",
                mode="lines",
                line={"color": color, "shape": "hv"},
                legendgroup=str(policy),
            ),
            row=1,
            col=1,
            secondary_y=False,
        )
        figure.add_trace(
            go.Scatter(
                x=rows["time"],
                y=rows["day_net_usd"],
                name=f"net so far: {policy}",
                mode="lines",
                line={"color": color},
                legendgroup=str(policy),
                showlegend=False,
            ),
            row=2,
            col=1,
        )
    figure.update_yaxes(title_text="mining MW", rangemode="tozero", row=1, col=1)
    figure.update_yaxes(title_text="USD/MWh", showgrid=False, row=1, col=1, secondary_y=True)
    figure.update_yaxes(title_text="net so far USD", row=2, col=1)
    figure = _layout(figure, title, None, None, not day.empty)
    figure.update_layout(height=FIGURE_HEIGHT_PX + 120)
    return figure


def skill_figure(scores: pd.DataFrame) -> go.Figure:
    """Forecast skill against seasonal naive by lead time, one line per method (frame
    with ``horizon``, ``method``, ``skill``); 0 is as good as the baseline."""
    figure = go.Figure()
    for index, (method, rows) in enumerate(scores.groupby("method", sort=False)):
        figure.add_trace(
            go.Scatter(
                x=rows["horizon"],
                y=rows["skill"],
                name=str(method),
                mode="lines+markers",
                line={"color": RUN_COLORS[index % len(RUN_COLORS)]},
            )
        )
    figure.add_hline(y=0.0, line_dash="dot", line_color="grey")
    return _layout(
        figure,
        "Skill vs seasonal naive (1 - MAE / MAE naive)",
        "lead time",
        "skill [-]",
        not scores.empty,
    )


def forecast_paths_figure(
    time: Sequence[object] | pd.Series, actual: np.ndarray, forecasts: Mapping[str, np.ndarray]
) -> go.Figure:
    """The actual prices after one forecast origin and each method's forecast of them."""
    figure = go.Figure(
        go.Scatter(x=list(time), y=actual, name="actual", mode="lines", line={"color": "black"})
    )
    for index, (method, values) in enumerate(forecasts.items()):
        line = {"color": RUN_COLORS[index % len(RUN_COLORS)]}
        figure.add_trace(go.Scatter(x=list(time), y=values, name=method, mode="lines", line=line))
    return _layout(figure, "Forecasts from one origin", "time", "USD/MWh", bool(np.size(actual)))


def _layout(
    figure: go.Figure,
    title: str,
    x_title: str | None,
    y_title: str | None,
    has_data: bool,
    hovermode: str = "x unified",
) -> go.Figure:
    figure.update_layout(
        title=title,
        height=FIGURE_HEIGHT_PX,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.2},
        hovermode=hovermode,
    )
    if x_title is not None:
        figure.update_xaxes(title_text=x_title)
    if y_title is not None:
        figure.update_yaxes(title_text=y_title)
    if not has_data:
        figure.add_annotation(
            text="no data", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5
        )
    return figure
