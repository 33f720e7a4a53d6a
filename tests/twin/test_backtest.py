"""Tests of the backtest: policies on one world, backtest.json, backtest.html and the CLI."""

from __future__ import annotations

import json
import math
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import plotly.offline
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.backtest import (
    BACKTEST_HTML,
    BACKTEST_JSON,
    DEFAULT_POLICIES,
    BacktestError,
    BacktestResult,
    backtest_summary,
    capture_vs_oracle,
    parse_date,
    parse_policies,
    prepare_scenario,
    run_backtest,
)
from twin.backtest_report import FIGURE_IDS
from twin.cli import main
from twin.kpis import kpis_without_wall
from twin.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "scenarios" / "baseline.yaml"
DAM_FILE = ROOT / "datasets" / "real" / "ercot_dam_spp_hub_lz_hourly_2021_2023.csv"
SHORT_POLICIES = ("always_on", "strike", "oracle")
POLICY_FIELDS = {
    "net_usd",
    "revenue_usd",
    "cost_usd",
    "energy_mwh",
    "curtailment",
    "sla_met_fraction",
    "wall_s",
    "delta_vs_best_usd",
    "capture_vs_oracle",
    "regret_usd",
    "results_dir",
}
SPIKE_DAY = date(2024, 2, 5)
SPIKE_HOURS_ENDING = range(17, 21)  # HE17-HE20: 16:00-20:00 local
SPIKE_USD_PER_MWH = 3000.0
BASE_USD_PER_MWH = 25.0


@pytest.fixture(scope="module")
def short_backtest(tmp_path_factory: pytest.TempPathFactory) -> BacktestResult:
    """The baseline cut to a quarter day, run with always_on, strike and oracle."""
    scenario = prepare_scenario(BASELINE, {"duration_days": 0.25})
    out = tmp_path_factory.mktemp("backtest")
    return run_backtest(scenario, SHORT_POLICIES, out, scenario_file=str(BASELINE))


def write_spike_prices(path: Path, points: tuple[str, ...] = ("HB_WEST", "HB_NORTH")) -> Path:
    """A day-ahead hourly ERCOT file for 2024-02-04..2024-02-07 at BASE_USD_PER_MWH with a
    SPIKE_USD_PER_MWH spike on SPIKE_DAY's evening hours."""
    lines = ["delivery_date,hour_ending,repeated_hour_flag," + ",".join(points)]
    for offset in range(-1, 3):
        day = SPIKE_DAY + timedelta(days=offset)
        for hour_ending in range(1, 25):
            spike = offset == 0 and hour_ending in SPIKE_HOURS_ENDING
            price = SPIKE_USD_PER_MWH if spike else BASE_USD_PER_MWH
            cells = ",".join(f"{price:.2f}" for _ in points)
            lines.append(f"{day:%m/%d/%Y},{hour_ending:02d}:00,N,{cells}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------- backtest.json


def test_backtest_json_has_every_field_per_policy(short_backtest: BacktestResult) -> None:
    """backtest.json names the scenario, window and price source, and has the KPI fields
    for each policy run, in run order, each with its own results folder."""
    summary = read_json(short_backtest.json_path)
    assert summary["scenario"]["name"] == "baseline"
    assert summary["window"]["duration_days"] == pytest.approx(0.25)
    assert summary["prices"]["kind"] == "synthetic"
    assert list(summary["policies"]) == list(SHORT_POLICIES)
    for name, values in summary["policies"].items():
        assert set(values) >= POLICY_FIELDS, name
        assert (short_backtest.out_dir / values["results_dir"] / "kpis.json").is_file()
        assert (short_backtest.out_dir / values["results_dir"] / "report.html").is_file()
        assert set(values["curtailment"]) == {"hours", "mwh"}
        assert values["delta_vs_best_usd"] <= 0


def test_capture_and_regret_come_from_the_policy_nets(short_backtest: BacktestResult) -> None:
    """capture_vs_oracle is exactly net / oracle net and regret is oracle net - net, with the
    nets read back from each policy's own kpis.json."""
    summary = read_json(short_backtest.json_path)
    nets = {
        name: read_json(short_backtest.out_dir / name / "kpis.json")["net_usd"]
        for name in SHORT_POLICIES
    }
    assert nets["oracle"] > 0
    for name, values in summary["policies"].items():
        assert values["net_usd"] == nets[name]
        assert values["capture_vs_oracle"] == nets[name] / nets["oracle"]
        assert values["regret_usd"] == pytest.approx(nets["oracle"] - nets[name], abs=0.005)
    assert summary["best_policy"] == max(nets, key=lambda name: nets[name])


def test_every_policy_sees_the_same_world(short_backtest: BacktestResult) -> None:
    """Prices, BTC economics and job arrivals are identical across the policies' runs; only
    the decisions differ."""
    frames = {
        name: pl.read_parquet(short_backtest.out_dir / name / "timeseries.parquet")
        for name in SHORT_POLICIES
    }
    arrivals = {
        name: pl.read_parquet(
            short_backtest.out_dir / name / "jobs.parquet", columns=["job_id", "type", "submit_s"]
        )
        for name in SHORT_POLICIES
    }
    world = ["t_s", "facility_id", "price_usd_per_mwh", "btc_price_usd", "four_cp"]
    first = SHORT_POLICIES[0]
    for name in SHORT_POLICIES[1:]:
        assert frames[name].select(world).equals(frames[first].select(world)), name
        assert arrivals[name].equals(arrivals[first]), name


def test_backtest_json_repeats_apart_from_wall_times(tmp_path: Path) -> None:
    """Two backtests of one scenario write the same backtest.json apart from wall_s."""
    scenario = prepare_scenario(BASELINE, {"duration_days": 0.1})

    def without_wall(path: Path) -> dict[str, Any]:
        summary = read_json(path)
        for values in summary["policies"].values():
            values.pop("wall_s")
        return summary

    first = run_backtest(scenario, ("always_on", "greedy"), tmp_path / "a")
    second = run_backtest(scenario, ("always_on", "greedy"), tmp_path / "b")
    assert without_wall(first.json_path) == without_wall(second.json_path)
    kpis = read_json(first.out_dir / "greedy" / "kpis.json")
    assert kpis_without_wall(kpis) == kpis_without_wall(
        read_json(second.out_dir / "greedy" / "kpis.json")
    )


# ---------------------------------------------------------------------- backtest.html


def test_html_has_one_plotly_div_per_figure_and_no_cdn(short_backtest: BacktestResult) -> None:
    """backtest.html holds exactly one plotly div per figure, inlines plotly.js once and
    loads no script from elsewhere."""
    page = short_backtest.html_path.read_text(encoding="utf-8")
    assert short_backtest.html_path.name == BACKTEST_HTML
    divs = re.findall(r'<div id="([^"]+)" class="plotly-graph-div"', page)
    assert divs == list(FIGURE_IDS)
    bundle = plotly.offline.get_plotlyjs()
    assert page.count(bundle) == 1
    outside = page.replace(bundle, "")
    assert "<script src=" not in outside
    assert "cdn.plot.ly" not in outside
    for name in SHORT_POLICIES:
        assert f"<td>{name}</td>" in page


# ---------------------------------------------------------------------- user price file


def test_oracle_earns_most_on_a_price_spike_from_a_user_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --prices, a user's ERCOT file (a 3,000 USD/MWh evening spike) replaces the
    scenario's prices; the oracle, seeing the spike coming, earns at least as much as
    every other policy."""
    prices = write_spike_prices(tmp_path / "spike.csv")
    out = tmp_path / "out"
    code = main(
        [
            "backtest",
            str(BASELINE),
            "--prices",
            str(prices),
            "--settlement-point",
            "HB_WEST",
            "--start",
            SPIKE_DAY.isoformat(),
            "--end",
            (SPIKE_DAY + timedelta(days=1)).isoformat(),
            "--policies",
            "always_on,strike,oracle",
            "--set",
            "dispatch_interval_s=900",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    summary = read_json(out / BACKTEST_JSON)
    assert summary["prices"]["file"] == str(prices.resolve())
    assert set(summary["scenario"]["facilities"].values()) == {"HB_WEST"}
    assert summary["window"]["start"] == "2024-02-05T00:00:00-06:00"
    nets = {name: values["net_usd"] for name, values in summary["policies"].items()}
    assert all(nets["oracle"] >= net for net in nets.values()), nets
    assert nets["oracle"] > nets["always_on"]
    price = pl.read_parquet(out / "oracle" / "timeseries.parquet")["price_usd_per_mwh"]
    assert price.max() == pytest.approx(SPIKE_USD_PER_MWH)
    assert price.min() == pytest.approx(BASE_USD_PER_MWH)


# ---------------------------------------------------------------------- CLI bad input


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--start", "2024-02-06", "--end", "2024-02-05"], ["--end 2024-02-05", "--start"]),
        (["--settlement-point", "HB_NOWHERE"], ["--settlement-point HB_NOWHERE", "HB_NORTH"]),
        (
            ["--settlement-point", "HB_WEST", "--start", "2030-01-01", "--end", "2030-01-02"],
            ["--prices", "2030-01-01 00:00", "covers 2024-02-04 00:00", "2024-02-08 00:00"],
        ),
        (["--policies", "always_on,magic"], ["--policies", "'magic'", "oracle"]),
        (["--start", "05/02/2024", "--end", "2024-02-06"], ["--start", "YYYY-MM-DD"]),
        ([], ["--prices", "no settlement point", "--settlement-point"]),
    ],
    ids=[
        "end-before-start",
        "missing-settlement-point",
        "window-outside-file",
        "unknown-policy",
        "bad-date",
        "facility-point-missing",
    ],
)
def test_cli_rejects_bad_backtest_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], expected: list[str]
) -> None:
    """Bad backtest options exit 2 with a message naming the option, without running."""
    prices = write_spike_prices(tmp_path / "prices.csv")
    args = ["backtest", str(BASELINE), "--prices", str(prices), "--out", str(tmp_path / "o")]
    defaults = ["--start", "2024-02-05", "--end", "2024-02-06"]
    if "--start" not in extra:
        args += defaults
    code = main([*args, *extra, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    for text in expected:
        assert text in err
    assert not (tmp_path / "o").exists()


def test_a_gap_in_the_price_file_is_reported(tmp_path: Path) -> None:
    """A window over a stretch the file lacks (its days are missing) is a BacktestError
    naming --prices and the missing stretch, before anything runs."""
    full = write_spike_prices(tmp_path / "full.csv").read_text().splitlines()
    missing_day = f"{SPIKE_DAY:%m/%d/%Y}"
    gapped = tmp_path / "gapped.csv"
    gapped.write_text("\n".join(line for line in full if missing_day not in line) + "\n")
    with pytest.raises(BacktestError, match=r"--prices .*no prices from 2024-02-05 00:00 CST"):
        prepare_scenario(
            BASELINE,
            prices_file=gapped,
            settlement_point="HB_WEST",
            start=SPIKE_DAY - timedelta(days=1),
            end=SPIKE_DAY + timedelta(days=2),
        )


def test_a_window_over_the_gap_between_bundled_januaries_is_rejected() -> None:
    """The bundled real-time file holds January 2022 and January 2023 only: a window from
    January into March 2022 is rejected naming the stretch without prices."""
    rtm = ROOT / "datasets" / "real" / "ercot_rtm_spp_hub_lz_15min_january_2022_2023.csv"
    with pytest.raises(BacktestError, match="no prices from 2022-02-01 00:00 CST to 2023-01-01"):
        prepare_scenario(
            BASELINE,
            prices_file=rtm,
            settlement_point="HB_WEST",
            start=date(2022, 1, 1),
            end=date(2022, 3, 1),
        )


def test_cli_rejects_a_missing_price_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """A --prices path that does not exist exits 2 naming --prices and the path."""
    code = main(["backtest", str(BASELINE), "--prices", str(tmp_path / "nope.csv"), "--quiet"])
    assert code == 2
    assert "--prices" in capsys.readouterr().err


# ---------------------------------------------------------------------- options and summary


def test_window_dates_are_central_time_across_a_dst_change() -> None:
    """--start/--end are local midnights in America/Chicago: the fall-back day of 2023
    lasts 25 hours, and the start carries the CDT offset."""
    scenario = prepare_scenario(
        BASELINE,
        prices_file=DAM_FILE,
        settlement_point="HB_NORTH",
        start=date(2023, 11, 5),
        end=date(2023, 11, 6),
    )
    assert scenario.duration_days == pytest.approx(25 / 24)
    assert scenario.start.isoformat() == "2023-11-05T00:00:00-05:00"
    assert {f.settlement_point for f in scenario.facilities} == {"HB_NORTH"}
    assert scenario.grid.prices.kind == "historical"


def test_start_alone_moves_the_scenario_duration() -> None:
    """--start without --end keeps the scenario's length (7 days for the baseline) and
    moves it to that local day; the scenario's own signals are kept."""
    scenario = prepare_scenario(BASELINE, start=date(2023, 8, 1))
    assert scenario.start.isoformat() == "2023-08-01T00:00:00-05:00"
    assert scenario.duration_days == pytest.approx(7.0)
    assert scenario.grid.prices.kind == "synthetic"


def test_policy_lists_parse_in_order_without_duplicates() -> None:
    """No list means the five defaults; a list keeps its order and drops repeats; an
    empty list, an unknown name or a malformed date is a BacktestError naming the option."""
    assert parse_policies(None) == DEFAULT_POLICIES
    assert parse_policies("oracle, strike,oracle") == ("oracle", "strike")
    with pytest.raises(BacktestError, match="--policies"):
        parse_policies(" , ")
    with pytest.raises(BacktestError, match="--policies: unknown policy 'mcp'"):
        parse_policies("mcp")
    with pytest.raises(BacktestError, match="--end"):
        parse_date("2023-02-30", "--end")


def test_summary_without_a_profitable_oracle_has_no_capture() -> None:
    """Without an oracle run capture and regret are null; with an oracle that loses money
    capture is null (a ratio to a loss means nothing) but regret is still given."""
    scenario = load_scenario(BASELINE, {"duration_days": 0.1})
    kpis = {
        "net_usd": 10.0,
        "revenue_usd": {"total": 30.0, "mining": 30.0},
        "cost_usd": {"total": 20.0, "energy": 20.0},
        "energy_mwh": 1.0,
        "curtailment": {"hours": 0.0, "mwh": 0.0},
        "sla": {"ai_inference_realtime": {"met_fraction": 1.0}},
        "wall_s": 0.1,
    }
    alone = backtest_summary(scenario, {"strike": kpis})["policies"]["strike"]
    assert alone["capture_vs_oracle"] is None
    assert alone["regret_usd"] is None
    losing = backtest_summary(scenario, {"strike": kpis, "oracle": {**kpis, "net_usd": -5.0}})
    assert losing["policies"]["strike"]["capture_vs_oracle"] is None
    assert losing["policies"]["strike"]["regret_usd"] == -15.0
    assert losing["best_policy"] == "strike"


@given(
    net_cents=st.integers(-(10**13), 10**13),
    oracle_cents=st.integers(-(10**13), 10**13),
)
def test_capture_is_the_net_ratio_when_the_oracle_earns(net_cents: int, oracle_cents: int):
    """capture_vs_oracle is net / oracle net exactly when the oracle net is positive, else
    None (nets are whole cents, as in kpis.json)."""
    net, oracle = net_cents / 100, oracle_cents / 100
    capture = capture_vs_oracle(net, oracle)
    if oracle > 0:
        assert capture == net / oracle
        assert math.isfinite(capture)
    else:
        assert capture is None
