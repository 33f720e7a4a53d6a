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


def policy_bar_figure(
    table: pd.DataFrame, column: str, title: str, category: str = "policy"
) -> go.Figure:
    """One bar per row of ``table`` (its index: policies, or the ``category`` named) of
    ``column``; missing values left out."""
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
        figure, title, category, column_label(column), not values.empty, hovermode="closest"
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


# ---------------------------------------------------------------- executive, customers, energy

MAX_CUSTOMER_BARS = 25
"""Most customers in one bar chart (the first rows of the table, largest bill first)."""

POWER_USE_COLOURS: Mapping[str, str] = {
    "power_mining_mw": "#ff7f0e",
    "power_inference_mw": "#1f77b4",
    "power_batch_mw": "#17becf",
    "power_training_mw": "#2ca02c",
    "power_spot_mw": "#9467bd",
    "power_gpu_idle_mw": "#c7c7c7",
    "power_overhead_mw": "#8c564b",
}
"""Fill colours of the power-by-use stack."""

DEVICE_STATE_COLOURS: Mapping[str, str] = {
    "active": POWER_USE_COLOURS["power_mining_mw"],
    "sleeping": "#c7c7c7",
    "inference": POWER_USE_COLOURS["power_inference_mw"],
    "batch": POWER_USE_COLOURS["power_batch_mw"],
    "training": POWER_USE_COLOURS["power_training_mw"],
    "spot": POWER_USE_COLOURS["power_spot_mw"],
    "idle": POWER_USE_COLOURS["power_gpu_idle_mw"],
    "failed": "#d62728",
}
"""Bar colours of miner states and GPU uses (the power-by-use colours where they match;
red only for failed devices)."""

FOUR_CP_COLOUR = "rgba(214,39,40,0.25)"


def customer_bar_figure(
    table: pd.DataFrame, column: str, title: str, max_bars: int = MAX_CUSTOMER_BARS
) -> go.Figure:
    """One bar per customer (the index of ``table``, from dashboards.results.customer_table)
    of ``column``, the first ``max_bars`` rows in table order; missing values left out."""
    values = table[column].dropna().iloc[:max_bars] if column in table.columns else pd.Series()
    figure = go.Figure(
        go.Bar(x=[str(c) for c in values.index], y=values.to_numpy(), marker_color="#1f77b4")
    )
    figure.update_xaxes(tickangle=-40)
    return _layout(
        figure, title, "customer", column_label(column), not values.empty, hovermode="closest"
    )


def power_by_use_figure(
    series_by_use: Mapping[str, pd.DataFrame], four_cp: pd.DataFrame | None = None
) -> go.Figure:
    """Fleet power stacked by use over time (frames with ``t_s``, ``time``, ``value`` per
    power column, e.g. from dashboards.results.fleet_series), with the intervals flagged as
    likely 4CP peaks shaded (``four_cp``: ``time`` and ``value`` > 0 where flagged)."""
    figure = go.Figure()
    for column, series in series_by_use.items():
        points = downsample(series)
        figure.add_trace(
            go.Scatter(
                x=points["time"],
                y=points["value"],
                name=column.removeprefix("power_").removesuffix("_mw"),
                mode="lines",
                stackgroup="power",
                line={"width": 0.5, "color": POWER_USE_COLOURS.get(column)},
            )
        )
    if four_cp is not None:
        for start, end in _flagged_spans(four_cp):
            figure.add_vrect(x0=start, x1=end, fillcolor=FOUR_CP_COLOUR, line_width=0)
    has_data = any(not s.empty for s in series_by_use.values())
    title = "Fleet power by use (4CP intervals shaded)"
    return _layout(figure, title, "time (UTC)", "MW", has_data)


def _flagged_spans(flags: pd.DataFrame) -> list[tuple[object, object]]:
    """(start, end) times of runs of consecutive flagged rows; each span ends where the
    next unflagged row starts (or one interval after the last row)."""
    if flags.empty:
        return []
    times = pd.to_datetime(flags["time"], utc=True).reset_index(drop=True)
    flagged = (flags["value"].to_numpy(dtype=float) > 0).astype(np.int8)
    step = times.diff().min() if len(times) > 1 else pd.Timedelta(0)
    edges = np.diff(np.concatenate(([0], flagged, [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)  # index of the first unflagged row after each run
    end_times = [times[i] if i < len(times) else times.iloc[-1] + step for i in ends]
    return [(times[i], end) for i, end in zip(starts, end_times, strict=True)]


def series_lines_figure(
    series_by_name: Mapping[str, pd.DataFrame], title: str, y_title: str
) -> go.Figure:
    """One line per named series (frames with ``t_s``, ``time``, ``value``) on calendar
    time (UTC)."""
    figure = go.Figure()
    for index, (name, series) in enumerate(series_by_name.items()):
        points = downsample(series)
        line = {"color": RUN_COLORS[index % len(RUN_COLORS)]}
        figure.add_trace(
            go.Scatter(x=points["time"], y=points["value"], name=name, mode="lines", line=line)
        )
    has_data = any(not s.empty for s in series_by_name.values())
    return _layout(figure, title, "time (UTC)", y_title, has_data)


# ---------------------------------------------------------------- operations (live API)


def availability_figure(availability: pd.DataFrame) -> go.Figure:
    """Free and busy GPUs per facility, one bar group per GPU type (frame with
    ``facility_id``, ``gpu_type``, ``available``, ``total``)."""
    figure = go.Figure()
    if not availability.empty:
        for index, (gpu_type, rows) in enumerate(availability.groupby("gpu_type", sort=True)):
            figure.add_trace(
                go.Bar(
                    x=rows["facility_id"],
                    y=rows["available"],
                    name=f"{gpu_type} free",
                    marker_color=RUN_COLORS[index % len(RUN_COLORS)],
                    customdata=rows[["total"]].to_numpy(),
                    hovertemplate="%{y} of %{customdata[0]} free<extra>%{fullData.name}</extra>",
                )
            )
    figure.update_layout(barmode="group")
    return _layout(
        figure,
        "Free GPUs per facility and type",
        "facility",
        "GPUs",
        not availability.empty,
        hovermode="closest",
    )


def workload_status_figure(counts: Mapping[str, float]) -> go.Figure:
    """Workloads by status (a bar per status, e.g. from the ``hcp_workloads`` gauge)."""
    statuses = list(counts)
    figure = go.Figure(
        go.Bar(
            x=statuses,
            y=[counts[s] for s in statuses],
            marker_color=[RUN_COLORS[i % len(RUN_COLORS)] for i in range(len(statuses))],
            text=[f"{counts[s]:,.0f}" for s in statuses],
            textposition="outside",
        )
    )
    return _layout(
        figure, "Workloads by status", "status", "workloads", bool(statuses), hovermode="closest"
    )


def facility_power_figure(power: pd.DataFrame) -> go.Figure:
    """Each facility's power now stacked by use, with its interconnect cap as a marker
    (frame indexed by facility with a column per use [MW] and ``power_cap_mw``)."""
    figure = go.Figure()
    uses = [c for c in power.columns if c not in ("power_cap_mw", "power_total_mw")]
    for use in uses:
        figure.add_trace(
            go.Bar(
                x=power.index,
                y=power[use],
                name=use,
                marker_color=POWER_USE_COLOURS.get(f"power_{use}_mw"),
                hovertemplate="%{y:,.2f} MW<extra>%{fullData.name}</extra>",
            )
        )
    if "power_cap_mw" in power:
        figure.add_trace(
            go.Scatter(
                x=power.index,
                y=power["power_cap_mw"],
                name="cap",
                mode="markers",
                marker={"symbol": "line-ew-open", "size": 40, "color": "#d62728"},
            )
        )
    figure.update_layout(barmode="stack")
    return _layout(
        figure,
        "Power by use now (cap marked)",
        "facility",
        "MW",
        not power.empty,
        hovermode="closest",
    )


def device_states_figure(counts: pd.DataFrame, title: str) -> go.Figure:
    """Devices per facility stacked by state or use (frame indexed by facility, a column
    per state)."""
    figure = go.Figure()
    for index, state in enumerate(counts.columns):
        colour = DEVICE_STATE_COLOURS.get(str(state), RUN_COLORS[index % len(RUN_COLORS)])
        figure.add_trace(
            go.Bar(x=counts.index, y=counts[state], name=str(state), marker_color=colour)
        )
    figure.update_layout(barmode="stack")
    has_data = not counts.empty and bool(counts.to_numpy().sum() > 0)
    return _layout(figure, title, "facility", "devices", has_data, hovermode="closest")
