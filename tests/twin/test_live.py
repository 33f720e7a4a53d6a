"""Live mode end to end: the controller on the wall clock against emulated miners read and
commanded through pyasic."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import polars as pl
import pytest

from twin.live import LiveError, LiveOptions, run_live
from twin.live_controller import LiveController
from twin.scenario import load_scenario

LIVE_DEMO = Path(__file__).resolve().parents[2] / "scenarios" / "live_demo.yaml"
MINERS = 12


def _scenario(price_usd_per_mwh: float, cap_mw: float = 1.0):
    """The live demo with a few miners, a constant price and a roomy cap."""
    return load_scenario(
        LIVE_DEMO,
        {
            "facilities[lab].asics": [{"model": "antminer_s19j_pro", "count": MINERS}],
            "facilities[lab].power_cap_mw": cap_mw,
            "grid.prices": {"kind": "constant", "value": price_usd_per_mwh},
        },
    )


def _options(**fields) -> LiveOptions:
    return LiveOptions(**{"tick_s": 0.5, "duration_s": 5.0, "timeout_s": 1.0, **fields})


def test_curtailment_shows_in_what_pyasic_reads_back(tmp_path) -> None:
    """At a price far above the miners' breakeven the strike policy curtails: within a few
    ticks every miner reads back asleep through pyasic, commands were verified, the cap
    held, and the run's files are written."""
    result = run_live(_scenario(900.0), _options(), out_dir=tmp_path)
    samples = result.samples
    assert samples[0].miners_active == MINERS  # the emulators start hashing
    assert samples[-1].miners_sleeping == MINERS and samples[-1].measured_mw < 0.01
    assert sum(s.commands for s in samples) >= 1 and sum(s.failed for s in samples) == 0
    assert result.summary["cap_exceeded_ticks"] == 0
    assert not any(s.stale for s in samples)
    frame = pl.read_parquet(tmp_path / "live.parquet")
    assert frame.height == len(samples) and (tmp_path / "summary.json").exists()
    assert result.alerts.height == 0  # miners sleeping together are not anomalies


def test_stale_prices_switch_to_the_conservative_policy() -> None:
    """At a cheap price every miner hashes; when the price feed goes silent the price turns
    stale, the conservative policy takes over and curtails, and metrics are served."""
    paused: list[float] = []
    scraped: list[str] = []

    def silence_feed(controller: LiveController) -> None:
        if controller.samples and controller.samples[-1].tick >= 2 and not paused:
            for poller in controller.price_pollers:
                poller.pause()
            paused.append(controller.samples[-1].t_s)
        if controller.samples and not scraped:
            scraped.append(urllib.request.urlopen("http://127.0.0.1:9731/metrics").read().decode())

    result = run_live(
        _scenario(5.0),
        _options(duration_s=6.0, price_max_age_s=1.0, price_period_s=0.2, metrics_port=9731),
        on_tick=silence_feed,
    )
    samples = result.samples
    assert paused
    early = [s for s in samples if s.t_s <= paused[0]]
    late = [s for s in samples if s.stale]
    assert all(s.policy == "strike" and s.miners_active == MINERS for s in early[1:])
    assert late and all(s.policy == "conservative" for s in late)
    assert late[-1].miners_sleeping == MINERS
    assert result.summary["stale_ticks"] == len(late)
    assert "hcp_loop_lag_seconds_bucket" in scraped[0] and "hcp_facility_power_mw" in scraped[0]


def test_device_faults_mark_miners_unhealthy_and_the_loop_goes_on() -> None:
    """A quarter of the miners time out: they are reported unhealthy (FAILED), commands to
    their class are not all verified, and every tick still runs."""
    options = _options(duration_s=5.0, faults=("timeout:0.25",), timeout_s=0.3)
    result = run_live(_scenario(900.0), options)
    assert result.summary["ticks"] == 10
    assert len(result.health) == MINERS // 4
    assert all(s.miners_failed == MINERS // 4 for s in result.samples)
    assert result.samples[-1].miners_sleeping == MINERS - MINERS // 4
    silent = result.alerts.filter(pl.col("signal") == "silent")
    assert set(silent["device_id"]) == set(result.health)  # the timed-out miners, once each
    assert silent.height == MINERS // 4


def test_miners_reporting_low_hashrate_raise_alerts_and_readings_are_kept(tmp_path) -> None:
    """A quarter of the miners report half their hashrate: after three ticks each raises one
    ``hashrate_low`` alert with a ratio near 0.5 to its class median, no healthy miner does;
    each flagged miner is quarantined (asleep, reported FAILED, out of the plan), and every
    tick's readings are summarised and written with the alerts."""
    result = run_live(_scenario(20.0), _options(faults=("wrong_reading:0.25",)), out_dir=tmp_path)
    alerts = result.alerts
    assert alerts.height == MINERS // 4 and set(alerts["signal"]) == {"hashrate_low"}
    assert alerts["device_id"].n_unique() == MINERS // 4
    assert all(0.4 < score < 0.6 for score in alerts["score"])
    assert result.summary["alerts"] == MINERS // 4
    quarantined = {a for a, why in result.health.items() if why.startswith("quarantined")}
    assert quarantined == set(alerts["device_id"])  # put to sleep and held out of service
    assert result.samples[-1].miners_failed == MINERS // 4
    assert result.samples[-1].miners_active == MINERS - MINERS // 4
    summary = pl.read_parquet(tmp_path / "telemetry_summary.parquet")
    assert summary.height == result.summary["ticks"] and set(summary["miners"]) == {MINERS}
    total = summary["hashrate_ths"].to_numpy()
    assert (total > 0).all()
    detail = pl.read_parquet(tmp_path / "telemetry.parquet")
    assert detail.height == result.summary["ticks"]  # one sampled miner per class
    assert pl.read_parquet(tmp_path / "alerts.parquet").height == MINERS // 4


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"drivers": "magic"}, "--drivers"),
        ({"tick_s": 0.0}, "--tick-s"),
        ({"drivers": "real"}, "--subnet"),
    ],
)
def test_bad_options_name_the_option(fields, message) -> None:
    """Bad live options fail before anything starts, naming the option."""
    with pytest.raises(LiveError, match=message):
        run_live(_scenario(50.0), _options(**fields))


def test_live_cli_on_real_drivers_stops_cleanly_on_sigterm(tmp_path) -> None:
    """``run.py live --drivers real --subnet`` drives miners it finds by scanning (here an
    emulator started with ``run.py emulate``, as a real fleet would be another machine);
    SIGTERM stops it cleanly: exit 0, summary written, ticks counted."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = LIVE_DEMO.parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    subnet = "127.62.0.0/29"
    farm = subprocess.Popen(
        [sys.executable, "run.py", "emulate", "--miners", "6", "--subnet", subnet],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert farm.stdout is not None and farm.stdout.readline().strip() == "ready 6 miners"
        live = subprocess.Popen(
            [
                sys.executable,
                "run.py",
                "live",
                str(LIVE_DEMO),
                "--drivers",
                "real",
                "--subnet",
                subnet,
                "--tick-s",
                "0.5",
                "--set",
                "facilities[lab].asics=[{model: antminer_s19j_pro, count: 6}]",
                "--out",
                str(tmp_path),
            ],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(5.0)  # start-up (pyasic import, scan) and a few ticks
        assert live.poll() is None, "live mode ended on its own"
        live.send_signal(signal.SIGTERM)
        out, err = live.communicate(timeout=30.0)
        assert live.returncode == 0, err[-2000:]
        assert "live:" in out
        summary = (tmp_path / "summary.json").read_text()
        assert '"ticks"' in summary
        frame = pl.read_parquet(tmp_path / "live.parquet")
        seen = frame["miners_active"] + frame["miners_sleeping"] + frame["miners_failed"]
        assert frame.height >= 2 and (seen == 6).all()
    finally:
        farm.send_signal(signal.SIGTERM)
        farm.wait(15.0)
        if farm.stdout is not None:
            farm.stdout.close()
