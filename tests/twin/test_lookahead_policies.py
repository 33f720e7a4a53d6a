"""The look-ahead policies inside the twin: the oracle sees the truth, plans fit the caps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optimizer.lookahead import LookAhead, LookAheadError
from twin.engine import build
from twin.scenario import load_scenario

BASELINE = Path(__file__).resolve().parents[2] / "scenarios" / "baseline.yaml"


def test_oracle_runs_in_the_twin_within_caps() -> None:
    """A short oracle run solves the MILP, never falls back, and never exceeds a cap."""
    scenario = load_scenario(BASELINE, {"duration_days": 0.25, "policy": {"name": "oracle"}})
    twin = build(scenario)
    result = twin.run()
    policy = twin.controller.policy
    assert isinstance(policy, LookAhead)
    assert policy.solves > 0 and policy.fallbacks == 0
    ts = result.timeseries
    assert np.all(ts["power_total_mw"].to_numpy() <= ts["power_cap_mw"].to_numpy() + 1e-6)
    assert twin.controller.cap_guard_trims == 0


def test_look_ahead_without_horizon_is_an_error() -> None:
    """A look-ahead policy given a plain snapshot says what is missing."""
    scenario = load_scenario(BASELINE, {"duration_days": 0.01})
    twin = build(scenario)
    snapshot = twin.controller.observe(0, 0.0)
    policy = LookAhead(name="mpc", horizon_source="forecast", contracts={})
    with pytest.raises(LookAheadError, match="no horizon"):
        policy.decide(snapshot)


def _run_with_future_prices_changed(policy: str, change_after_s: float, factor: float):
    """Run a short baseline with ``policy``; multiply every price after ``change_after_s``
    by ``factor`` before the run starts."""
    from datasets.signals import SeriesSignal

    scenario = load_scenario(BASELINE, {"duration_days": 0.3, "policy": {"name": policy}})
    twin = build(scenario)
    grid = twin.world.grid
    for point, signal in list(grid.prices.items()):
        values = signal.values.copy()
        cut = int(change_after_s // signal.step_s)
        values[cut:] *= factor
        grid.prices[point] = SeriesSignal(
            values, signal.step_s, signal.t0_s, signal.name, signal.unit
        )
    return twin.run().timeseries


@pytest.mark.parametrize("policy", ["mpc"])
def test_mpc_decisions_do_not_see_the_future(policy: str) -> None:
    """Altering prices after time T leaves every mpc decision before T unchanged, while the
    oracle's decisions before T do change (so the comparison could fail)."""
    change_after_s = 57 * 300.0  # on the dispatch grid: the first changed interval
    kept = ["power_mining_mw", "asics_active", "gpus_spot", "power_total_mw"]
    base = _run_with_future_prices_changed(policy, change_after_s, 1.0)
    spiked = _run_with_future_prices_changed(policy, change_after_s, 40.0)
    early_base = base.filter(base["t_s"] < change_after_s).select(kept)
    early_spiked = spiked.filter(spiked["t_s"] < change_after_s).select(kept)
    assert early_base.equals(early_spiked)

    oracle_base = _run_with_future_prices_changed("oracle", change_after_s, 1.0)
    oracle_spiked = _run_with_future_prices_changed("oracle", change_after_s, 40.0)
    assert (
        not oracle_base.filter(oracle_base["t_s"] < change_after_s)
        .select(kept)
        .equals(oracle_spiked.filter(oracle_spiked["t_s"] < change_after_s).select(kept))
    )


def _truth_horizon_at(twin, index: int):
    """The oracle's horizon at dispatch step ``index`` of a fresh twin (nothing advanced
    but the observation)."""
    controller = twin.controller
    snapshot = controller.observe(index, index * controller.interval_s)
    return snapshot, controller.horizon_provider.horizon(snapshot, index, None)


def test_truth_horizon_follows_the_true_btc_and_rental_paths() -> None:
    """The oracle's hashprice and spot prices move with the BTC price and rental multiplier
    signals ahead (ratios to now match the signals' ratios), not held flat."""
    scenario = load_scenario(BASELINE, {"duration_days": 2.0, "policy": {"name": "oracle"}})
    twin = build(scenario)
    snapshot, horizon = _truth_horizon_at(twin, 0)
    market = twin.world.market
    step = twin.controller.interval_s
    times = step * np.arange(horizon.hashprice_usd_per_ths_day.size)
    btc = np.array([market.btc_price.at(float(t)) for t in times])
    fees = np.array([market.fees_btc_per_block.at(float(t)) for t in times])
    subsidy = snapshot.market.block_subsidy_btc
    expected = (btc / btc[0]) * ((subsidy + fees) / (subsidy + fees[0]))
    hashprice = horizon.hashprice_usd_per_ths_day
    assert np.ptp(hashprice) > 0.0
    np.testing.assert_allclose(hashprice / hashprice[0], expected, rtol=1e-9)
    multiplier = np.array([market.gpu_rental_multiplier.at(float(t)) for t in times])
    spot = horizon.spot_usd_per_gpu_hour
    ratio = np.broadcast_to((multiplier / multiplier[0])[:, None], spot.shape)
    np.testing.assert_allclose(spot / spot[0], ratio, rtol=1e-9)


def test_truth_horizon_must_serve_is_the_realtime_load_that_will_arrive() -> None:
    """Must-serve GPUs ahead equal the GPU-time of the realtime jobs the generator will
    submit, step by step; and they follow the daily cycle rather than a flat line."""
    from models.workload_types import REALTIME

    scenario = load_scenario(BASELINE, {"duration_days": 2.0, "policy": {"name": "oracle"}})
    twin = build(scenario)
    _, horizon = _truth_horizon_at(twin, 12)
    step = twin.controller.interval_s
    t0 = 12 * step
    load = horizon.must_serve_gpus.sum(axis=1)
    jobs = twin.world.generator.arrivals(0.0, t0 + load.size * step)
    realtime = jobs.type == REALTIME
    for i in (0, load.size // 3, load.size - 1):
        lo, hi = t0 + i * step, t0 + (i + 1) * step
        start = jobs.submit_s[realtime]
        end = start + jobs.work_s[realtime]
        gpu_s = (np.clip(np.minimum(end, hi) - np.maximum(start, lo), 0, None)) @ jobs.gpus[
            realtime
        ].astype(float)
        assert load[i] == pytest.approx(gpu_s / step, rel=0.02)
    assert load.max() > 1.3 * load.min()
