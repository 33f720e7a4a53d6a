"""Tests of the plotly figure builders (pure functions of frames)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboards import charts

START = pd.Timestamp("2025-07-14T05:00:00Z")


def _series(n: int, interval_s: float = 300.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t_s = np.arange(n) * interval_s
    return pd.DataFrame(
        {"t_s": t_s, "time": START + pd.to_timedelta(t_s, unit="s"), "value": rng.normal(size=n)}
    )


def _no_data(figure: object) -> bool:
    return any(a.text == "no data" for a in figure.layout.annotations)  # type: ignore[attr-defined]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40_000), max_points=st.integers(10, 3000))
def test_downsample_bounds_points_and_keeps_order(n: int, max_points: int) -> None:
    """At most max_points rows remain, in time order, and short series are untouched."""
    series = _series(n)
    points = charts.downsample(series, max_points)
    assert len(points) <= max(max_points, 1)
    assert points["t_s"].is_monotonic_increasing
    if n <= max_points:
        pd.testing.assert_frame_equal(points, series)


def test_downsample_keeps_the_mean_of_full_bins() -> None:
    """A year of 5-min values averaged into bins keeps the overall mean when every bin
    holds the same number of intervals."""
    series = _series(288 * 364)
    points = charts.downsample(series, 2000)
    assert len(points) <= 2000
    assert points["value"].mean() == pytest.approx(series["value"].mean(), abs=1e-9)


def test_overlay_has_one_line_per_run_on_days_or_time() -> None:
    """One trace per run; the elapsed axis is in days since each run's start."""
    runs = {"a": _series(288), "b": _series(288, seed=1)}
    figure = charts.overlay_figure(runs, "power_total_mw", "elapsed_days")
    assert [trace.name for trace in figure.data] == ["a", "b"]
    assert figure.data[0].x[-1] == pytest.approx(287 * 300 / 86400)
    assert figure.layout.yaxis.title.text == "power_total_mw [MW]"
    calendar = charts.overlay_figure(runs, "price_usd_per_mwh", "time")
    assert pd.Timestamp(calendar.data[0].x[0]) == START.tz_localize(None)  # plotly: naive UTC
    assert _no_data(charts.overlay_figure({}, "net_usd"))


def test_stream_bars_stack_revenue_up_cost_down_with_net() -> None:
    """Costs are drawn below zero and the net marker is revenue minus cost per run."""
    streams = pd.DataFrame(
        [
            ("a", "revenue", "mining", 100.0),
            ("a", "cost", "energy", 30.0),
            ("b", "revenue", "mining", 50.0),
            ("b", "cost", "energy", 60.0),
        ],
        columns=["run", "kind", "stream", "usd"],
    )
    figure = charts.stream_figure(streams)
    bars = {trace.name: list(trace.y) for trace in figure.data if trace.type == "bar"}
    assert bars == {"revenue: mining": [100.0, 50.0], "cost: energy": [-30.0, -60.0]}
    net = next(trace for trace in figure.data if trace.name == "net")
    assert list(net.y) == [70.0, -10.0]
    empty = pd.DataFrame(columns=["run", "kind", "stream", "usd"])
    assert _no_data(charts.stream_figure(empty))


def test_policy_bars_leave_out_missing_values() -> None:
    """A policy without a value (no oracle, say) has no bar."""
    table = pd.DataFrame({"regret_usd": [10.0, np.nan, 0.0]}, index=["strike", "greedy", "oracle"])
    figure = charts.policy_bar_figure(table, "regret_usd", "Regret")
    assert list(figure.data[0].x) == ["strike", "oracle"]
    assert _no_data(charts.policy_bar_figure(table, "missing_column", "x"))


def _backtest_rows(policies: tuple[str, ...], n: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    frames = []
    for policy in policies:
        series = _series(n)
        frames.append(
            pd.DataFrame(
                {
                    "policy": policy,
                    "t_s": series["t_s"],
                    "time": series["time"],
                    "price_usd_per_mwh": rng.uniform(0, 200, n),
                    "power_mining_mw": rng.uniform(0, 10, n),
                    "curtailed_mw": rng.uniform(0, 2, n),
                    "net_usd": rng.normal(100, 10, n),
                    "day_net_usd": rng.normal(100, 10, n),
                    "cumulative_net_usd": np.cumsum(rng.normal(100, 10, n)),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_scatter_is_per_policy_and_bounded() -> None:
    """One marker trace per policy, no more than MAX_SCATTER_POINTS points in all."""
    rows = _backtest_rows(("strike", "oracle"), 40_000)
    figure = charts.price_curtailment_figure(rows)
    assert [trace.name for trace in figure.data] == ["strike", "oracle"]
    assert sum(len(trace.x) for trace in figure.data) <= charts.MAX_SCATTER_POINTS


def test_day_and_cumulative_figures_have_a_line_per_policy() -> None:
    """The day view has the price once plus power and net-so-far per policy; the
    cumulative view one line per policy."""
    rows = _backtest_rows(("always_on", "strike"), 288)
    day = charts.day_figure(rows, "a day")
    names = [trace.name for trace in day.data]
    assert names.count("price (fleet mean)") == 1
    assert {"mining MW: always_on", "net so far: strike"} <= set(names)
    cumulative = charts.cumulative_net_figure(rows)
    assert [trace.name for trace in cumulative.data] == ["always_on", "strike"]


def test_forecast_figures() -> None:
    """Skill has a line per method; the paths figure shows actual and each forecast."""
    scores = pd.DataFrame(
        {
            "horizon": ["1 h", "4 h"] * 2,
            "method": ["boosted"] * 2 + ["persistence"] * 2,
            "skill": [0.5, 0.2, 0.4, -0.1],
        }
    )
    assert [trace.name for trace in charts.skill_figure(scores).data] == ["boosted", "persistence"]
    time = pd.date_range(START, periods=4, freq="5min")
    paths = charts.forecast_paths_figure(time, np.ones(4), {"boosted": np.zeros(4)})
    assert [trace.name for trace in paths.data] == ["actual", "boosted"]


@pytest.mark.parametrize(
    ("column", "unit"),
    [
        ("power_total_mw", "MW"),
        ("energy_mwh", "MWh"),
        ("price_usd_per_mwh", "USD/MWh"),
        ("revenue_mining_usd", "USD"),
        ("hashprice_usd_per_ths_day", "USD/TH/s/day"),
        ("ambient_c", "°C"),
        ("pue_ai", ""),
    ],
)
def test_units_come_from_column_names(column: str, unit: str) -> None:
    """The unit suffix of a results column names its unit."""
    assert charts.column_unit(column) == unit


def test_fleet_figures_stack_uses_mark_caps_and_keep_red_for_failures() -> None:
    """Power now stacks one bar per use with the caps as markers; device states stack per
    facility, and only failed devices are drawn red."""
    power = pd.DataFrame(
        {"mining": [8.0, 1.0], "inference": [0.5, 2.0], "power_cap_mw": [9.5, 4.5]},
        index=pd.Index(["west", "east"], name="facility"),
    )
    power["power_total_mw"] = power["mining"] + power["inference"]
    figure = charts.facility_power_figure(power)
    names = [trace.name for trace in figure.data]
    assert names == ["mining", "inference", "cap"] and figure.layout.barmode == "stack"
    assert list(figure.data[2].y) == [9.5, 4.5]
    gpus = pd.DataFrame(
        {"inference": [3, 1], "spot": [2, 2], "idle": [1, 0], "failed": [0, 1]},
        index=["west", "east"],
    )
    colours = {t.name: t.marker.color for t in charts.device_states_figure(gpus, "GPUs").data}
    assert [name for name, colour in colours.items() if colour == "#d62728"] == ["failed"]
    assert len(set(colours.values())) == len(colours)
