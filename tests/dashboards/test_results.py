"""Tests of reading saved results: run and backtest folders, KPI tables, fleet series."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboards import results
from twin.recorder import COST_COLUMNS, REVENUE_COLUMNS

from .conftest import BACKTEST_NAME, RUN_NAMES


def test_run_and_backtest_folders_are_listed(results_dir: Path) -> None:
    """Runs are the folders holding kpis.json (a backtest's policy folders included);
    backtests those holding backtest.json; names are relative to the root."""
    runs = {run.name for run in results.list_runs(results_dir)}
    assert set(RUN_NAMES) <= runs
    assert f"{BACKTEST_NAME}/oracle" in runs
    backtests = results.list_backtests(results_dir)
    assert BACKTEST_NAME in {b.name for b in backtests}
    assert all((b.path / "backtest.json").is_file() for b in backtests)
    stamps = [b.modified_s for b in backtests]
    assert stamps == sorted(stamps, reverse=True)
    assert results.list_runs(results_dir / "missing") == []


def test_net_per_interval_adds_up_to_the_run_kpi(results_dir: Path) -> None:
    """net_usd per row is revenue minus cost; over the run it is the net in kpis.json."""
    run_dir = results_dir / RUN_NAMES[0]
    frame = results.read_timeseries(run_dir, ["net_usd"])
    full = results.read_timeseries(run_dir)
    revenue = full[list(REVENUE_COLUMNS.values())].fillna(0.0).sum(axis=1)
    cost = full[list(COST_COLUMNS.values())].fillna(0.0).sum(axis=1)
    np.testing.assert_allclose(frame["net_usd"], revenue - cost)
    assert frame["net_usd"].sum() == pytest.approx(results.read_kpis(run_dir)["net_usd"], abs=0.1)
    assert list(frame.columns) == ["t_s", "time", "facility_id", "net_usd"]


def test_kpi_comparison_has_deltas_against_the_reference(results_dir: Path) -> None:
    """Each other run gets a delta column (its value minus the reference's); with BTC at
    half price the cheaper-BTC run earns less from mining."""
    kpis = {name: results.read_kpis(results_dir / name) for name in RUN_NAMES}
    table = results.kpi_comparison(kpis, RUN_NAMES[0])
    delta = f"Δ {RUN_NAMES[1]}"
    assert list(table.columns) == [*RUN_NAMES, delta]
    np.testing.assert_allclose(
        table[delta].dropna(), (table[RUN_NAMES[1]] - table[RUN_NAMES[0]]).dropna()
    )
    assert table.loc["revenue_usd.mining", delta] < 0
    assert table.loc["net_usd", RUN_NAMES[0]] == kpis[RUN_NAMES[0]]["net_usd"]
    with pytest.raises(results.ResultsError, match="reference run"):
        results.kpi_comparison(kpis, "other")


def test_flatten_keeps_numbers_and_missing_values() -> None:
    """Nested KPIs flatten to dotted names; None stays None; text is left out."""
    flat = results.flatten_kpis({"a": {"b": 1, "c": None, "d": "x"}, "e": 2.5, "f": True})
    assert flat == {"a.b": 1.0, "a.c": None, "e": 2.5}


def test_stream_frame_holds_every_stream_but_totals(results_dir: Path) -> None:
    """Revenue and cost streams per run, totals left out, summing to the totals."""
    kpis = {RUN_NAMES[0]: results.read_kpis(results_dir / RUN_NAMES[0])}
    streams = results.stream_frame(kpis)
    assert "total" not in set(streams["stream"])
    revenue = streams.loc[streams["kind"] == "revenue", "usd"].sum()
    assert revenue == pytest.approx(kpis[RUN_NAMES[0]]["revenue_usd"]["total"], abs=0.1)


def test_fleet_series_sums_power_and_averages_prices(results_dir: Path) -> None:
    """Over all facilities power adds up and the price is the mean; one facility gives
    its own rows; an unknown facility is an error naming the known ones."""
    frame = results.read_timeseries(
        results_dir / RUN_NAMES[0], ["power_total_mw", "price_usd_per_mwh"]
    )
    first = frame[frame["t_s"] == frame["t_s"].min()]
    power = results.fleet_series(frame, "power_total_mw")
    price = results.fleet_series(frame, "price_usd_per_mwh")
    assert power["value"].iloc[0] == pytest.approx(first["power_total_mw"].sum())
    assert price["value"].iloc[0] == pytest.approx(first["price_usd_per_mwh"].mean())
    assert power["t_s"].is_monotonic_increasing and len(power) == frame["t_s"].nunique()
    site = results.facility_ids(frame)[0]
    single = results.fleet_series(frame, "power_total_mw", site)
    assert (
        single["value"].iloc[0] == first.loc[first["facility_id"] == site, "power_total_mw"].iloc[0]
    )
    with pytest.raises(results.ResultsError, match="no facility 'nowhere'"):
        results.fleet_series(frame, "power_total_mw", "nowhere")


def test_backtest_table_and_fleet_agree_with_backtest_json(results_dir: Path) -> None:
    """Regret is the oracle's net minus each policy's; each policy's cumulative net ends
    at its net in backtest.json."""
    folder = results_dir / BACKTEST_NAME
    summary = results.read_backtest_summary(folder)
    table = results.backtest_table(summary)
    assert list(table.index) == ["always_on", "strike", "oracle"]
    oracle_net = table.loc["oracle", "net_usd"]
    np.testing.assert_allclose(table["regret_usd"], oracle_net - table["net_usd"], atol=0.02)
    assert table.loc["oracle", "regret_usd"] == 0
    series = results.read_backtest_series(folder, summary)
    fleet = results.policy_fleet(series)
    assert list(pd.unique(fleet["policy"])) == ["always_on", "strike", "oracle"]
    last = fleet.groupby("policy", sort=False)["cumulative_net_usd"].last()
    np.testing.assert_allclose(last, table["net_usd"], atol=0.1)


def test_day_drill_down_covers_one_local_day(results_dir: Path) -> None:
    """The largest-spread day is one of the local days; its rows are all on that day,
    and the net within the day restarts from that day's first interval."""
    folder = results_dir / BACKTEST_NAME
    summary = results.read_backtest_summary(folder)
    fleet = results.policy_fleet(results.read_backtest_series(folder, summary))
    zone = summary["window"]["time_zone"]
    days = results.local_days(fleet, zone)
    day = results.largest_spread_day(fleet, zone)
    assert day in days
    rows = results.day_rows(fleet, str(day), zone)
    assert set(rows["time"].dt.strftime("%Y-%m-%d")) == {day}
    for _, policy_rows in rows.groupby("policy"):
        assert policy_rows["day_net_usd"].iloc[-1] == pytest.approx(policy_rows["net_usd"].sum())


def test_missing_and_broken_files_name_the_file(tmp_path: Path) -> None:
    """Reading a folder without results, or a broken kpis.json, names the file."""
    with pytest.raises(results.ResultsError, match=r"kpis\.json: file not found"):
        results.read_kpis(tmp_path)
    (tmp_path / "kpis.json").write_text("{not json")
    with pytest.raises(results.ResultsError, match=r"kpis\.json: cannot read"):
        results.read_kpis(tmp_path)
    with pytest.raises(results.ResultsError, match=r"timeseries\.parquet: file not found"):
        results.read_timeseries(tmp_path, ["net_usd"])
    with pytest.raises(results.ResultsError, match="no column 'bogus'"):
        results.read_timeseries(tmp_path, ["bogus"])
    assert math.isnan(results.kpi_comparison({"a": {"x": None}}, "a").loc["x", "a"])
