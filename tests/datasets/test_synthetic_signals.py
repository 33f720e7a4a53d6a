"""Synthetic generators: determinism, shapes, and statistics that match their configuration."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasets.synthetic import (
    SECONDS_PER_YEAR,
    cpt_calendar,
    daily_price_shape,
    seasonal_price_shape,
    stationary_ar1,
    step_means_of_pulses,
    synthetic_ancillary,
    synthetic_btc_price,
    synthetic_fees,
    synthetic_gpu_rental,
    synthetic_network_hashrate,
    synthetic_prices,
)
from twin.scenario import (
    SyntheticAncillary,
    SyntheticBtc,
    SyntheticFees,
    SyntheticGpuRental,
    SyntheticHashrate,
    SyntheticPrices,
)

START = datetime(2023, 1, 1, 6, tzinfo=UTC)  # 2023-01-01 00:00 CST
POINTS = ["HB_WEST", "HB_NORTH", "LZ_WEST", "HB_SOUTH", "HB_HOUSTON"]
YEAR_STEPS = 105_120  # one year of 300 s steps


@pytest.fixture(scope="module")
def year_of_prices() -> dict[str, np.ndarray]:
    """One year of default synthetic prices at 300 s for five points (seed 7)."""
    signals = synthetic_prices(
        SyntheticPrices(), POINTS, START, YEAR_STEPS, 300, np.random.default_rng(7)
    )
    return {point: signal.values for point, signal in signals.items()}


def test_same_seed_same_arrays_different_seed_different() -> None:
    """Every generator repeats exactly for one seed and changes with another."""

    def draw(seed: int) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        prices = synthetic_prices(SyntheticPrices(), POINTS[:2], START, 2000, 300, rng)
        ancillary = synthetic_ancillary(SyntheticAncillary(), START, 2000, 300, rng)
        return [
            *(s.values for s in prices.values()),
            *(s.values for s in ancillary.values()),
            synthetic_btc_price(SyntheticBtc(), 2000, 300, rng).values,
            synthetic_network_hashrate(SyntheticHashrate(), 2000, 300, rng).values,
            synthetic_fees(SyntheticFees(), 2000, 300, rng).values,
            synthetic_gpu_rental(SyntheticGpuRental(), 2000, 300, rng).values,
        ]

    first, again, other = draw(11), draw(11), draw(12)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert all(not np.array_equal(a, b) for a, b in zip(first[:-4], other[:-4], strict=True))
    assert all(
        not np.array_equal(a[1:], b[1:]) for a, b in zip(first[-4:], other[-4:], strict=True)
    )


def test_price_mean_is_base_plus_expected_spike_uplift(
    year_of_prices: dict[str, np.ndarray],
) -> None:
    """The annual mean lies near the configured mean plus rate x duration x size of spikes."""
    cfg = SyntheticPrices()
    uplift = cfg.spike_rate_per_day * cfg.spike_mean_duration_h / 24 * cfg.spike_mean_usd_per_mwh
    mean = year_of_prices["HB_WEST"].mean()
    assert cfg.mean_usd_per_mwh - 5 < mean < cfg.mean_usd_per_mwh + 2.5 * uplift
    assert 40 < mean < 60  # ERCOT hubs, 2023-like


def test_prices_have_a_few_spike_hours_a_month_and_respect_the_cap(
    year_of_prices: dict[str, np.ndarray],
) -> None:
    """Spikes above 200 USD/MWh occur for a few hours a month; nothing exceeds cap or floor."""
    cfg = SyntheticPrices()
    west = year_of_prices["HB_WEST"]
    spike_hours_per_month = (west > 200).sum() * 300 / 3600 / 12
    assert 0.5 < spike_hours_per_month < 20
    assert west.max() <= cfg.cap_usd_per_mwh and west.min() >= cfg.floor_usd_per_mwh
    assert np.median(west) < west.mean()  # right-skewed, as real prices


def test_prices_follow_the_daily_and_seasonal_shape(year_of_prices: dict[str, np.ndarray]) -> None:
    """Median by CPT hour is lowest at night and highest late afternoon; summer beats spring."""
    local = pd.date_range(START, periods=YEAR_STEPS, freq="300s").tz_convert("America/Chicago")
    prices = pd.Series(year_of_prices["HB_NORTH"], index=local)
    by_hour = prices.groupby(local.hour).median()
    assert by_hour.idxmin() in (3, 4, 5)
    assert by_hour.idxmax() in (15, 16, 17, 18)
    by_month = prices.groupby(local.month).median()
    assert by_month[8] > by_month[4] and by_month[8] > by_month[10]
    assert by_month[1] > by_month[4]  # mild winter bump


def test_points_are_correlated_and_carry_their_basis() -> None:
    """Noise is shared with site_correlation; the basis shifts a point's mean."""
    cfg = SyntheticPrices(
        spike_rate_per_day=0,
        daily_amplitude=0,
        seasonal_amplitude=0,
        site_correlation=0.6,
        basis_usd_per_mwh={"LZ_WEST": -8.0},
    )
    signals = synthetic_prices(
        cfg, ["HB_WEST", "LZ_WEST"], START, 50_000, 300, np.random.default_rng(3)
    )
    west, lz_west = signals["HB_WEST"].values, signals["LZ_WEST"].values
    assert np.corrcoef(west, lz_west)[0, 1] == pytest.approx(0.6, abs=0.1)
    assert (lz_west - west).mean() == pytest.approx(-8.0, abs=1.0)
    assert west.std() == pytest.approx(cfg.volatility_usd_per_mwh, rel=0.25)


@settings(max_examples=25, deadline=None)
@given(
    mean=st.floats(-50, 500),
    volatility=st.floats(0, 300),
    spike_rate=st.floats(0, 20),
    floor=st.floats(-100, 0),
    cap=st.floats(100, 9000),
    seed=st.integers(0, 2**32),
)
def test_prices_stay_within_floor_and_cap(
    mean: float, volatility: float, spike_rate: float, floor: float, cap: float, seed: int
) -> None:
    """For any configuration every price is finite and within [floor, cap]."""
    cfg = SyntheticPrices(
        mean_usd_per_mwh=mean,
        volatility_usd_per_mwh=volatility,
        spike_rate_per_day=spike_rate,
        floor_usd_per_mwh=floor,
        cap_usd_per_mwh=cap,
    )
    values = synthetic_prices(cfg, ["A"], START, 3000, 300, np.random.default_rng(seed))["A"].values
    assert np.all(np.isfinite(values))
    assert values.min() >= floor and values.max() <= cap


def test_year_of_prices_has_one_named_series_per_point() -> None:
    """A year at 300 s for five points gives five full series with names, units and step."""
    signals = synthetic_prices(
        SyntheticPrices(), POINTS, START, YEAR_STEPS, 300, np.random.default_rng(0)
    )
    assert [s.values.size for s in signals.values()] == [YEAR_STEPS] * 5
    assert {s.name for s in signals.values()} == {f"price.{p}" for p in POINTS}
    assert all(s.unit == "USD/MWh" and s.step_s == 300 for s in signals.values())


def test_daily_shape_is_low_at_four_high_at_seventeen() -> None:
    """The daily shape spans [-1, 1] with its extremes at 04:00 and 17:00 and mean 0."""
    hours = np.linspace(0, 24, 24 * 60, endpoint=False)
    shape = daily_price_shape(hours)
    assert shape.min() == pytest.approx(-1) and hours[shape.argmin()] == pytest.approx(4)
    assert shape.max() == pytest.approx(1) and hours[shape.argmax()] == pytest.approx(17)
    assert shape.mean() == pytest.approx(0, abs=1e-9)


def test_seasonal_shape_peaks_in_summer_with_winter_bump() -> None:
    """Seasonal shape: max 1 near 1 August, mean 0, January above the April/November troughs."""
    days = np.arange(1, 366, dtype=float)
    shape = seasonal_price_shape(days)
    assert shape.max() == pytest.approx(1, abs=1e-3) and 205 <= days[shape.argmax()] <= 220
    assert shape.mean() == pytest.approx(0, abs=0.01)
    assert shape[14] > shape[96] and shape[14] > shape[328]  # Jan 15 vs Apr 7, Nov 25


def test_cpt_calendar_knows_daylight_saving() -> None:
    """Midnight UTC is 18:00 CST in January and 19:00 CDT in July."""
    january, _ = cpt_calendar(datetime(2023, 1, 10, tzinfo=UTC), 1, 300)
    july, day = cpt_calendar(datetime(2023, 7, 10, tzinfo=UTC), 1, 300)
    assert january[0] == 18 and july[0] == 19
    assert day[0] == pytest.approx(190 + 19 / 24)


@settings(max_examples=40, deadline=None)
@given(
    pulses=st.lists(
        st.tuples(st.floats(0, 3000), st.floats(0.1, 1500), st.floats(0, 1000)),
        min_size=1,
        max_size=8,
    ),
    step_s=st.sampled_from([60.0, 300.0, 900.0]),
)
def test_step_means_of_pulses_match_direct_integration(
    pulses: list[tuple[float, float, float]], step_s: float
) -> None:
    """Per-step means of rectangular pulses equal a brute-force fine-grid average."""
    starts, durations, heights = (np.array(v) for v in zip(*pulses, strict=True))
    n_steps = int(np.ceil(4500 / step_s))
    means = step_means_of_pulses(starts, durations, heights, n_steps, step_s)
    fine = (np.arange(int(n_steps * step_s * 10)) + 0.5) / 10  # 0.1 s midpoints
    inside = (fine[:, None] >= starts) & (fine[:, None] < starts + durations)
    direct = (inside * heights).sum(axis=1).reshape(n_steps, -1).mean(axis=1)
    assert np.allclose(means, direct, atol=0.02 * heights.max() + 1e-9)


def test_stationary_ar1_has_unit_variance_and_lag_correlation() -> None:
    """The AR(1) filter gives variance 1 and lag-1 correlation phi."""
    x = stationary_ar1(np.random.default_rng(5).standard_normal((1, 200_000)), 0.9)[0]
    assert x.var() == pytest.approx(1, abs=0.05)
    assert np.corrcoef(x[:-1], x[1:])[0, 1] == pytest.approx(0.9, abs=0.01)


def test_ancillary_means_match_config_and_hold_each_hour() -> None:
    """Each service averages its configured mean and keeps one price per clock hour."""
    cfg = SyntheticAncillary()
    signals = synthetic_ancillary(cfg, START, 12 * 24 * 200, 300, np.random.default_rng(2))
    assert set(signals) == {"REGUP", "REGDN", "RRS", "ECRS", "NSPIN"}
    for service, signal in signals.items():
        assert signal.values.mean() == pytest.approx(cfg.mean_usd_per_mw_h[service], rel=0.2)
        assert np.all(np.ptp(signal.values.reshape(-1, 12), axis=1) == 0)
        assert signal.unit == "USD/MW-h" and signal.name == f"ancillary.{service}"


def test_btc_without_noise_grows_at_the_drift() -> None:
    """With no volatility and no jumps the price is initial x exp(drift x t)."""
    cfg = SyntheticBtc(
        initial_usd=50_000, drift_per_year=0.3, volatility_per_year=0, jump_rate_per_year=0
    )
    signal = synthetic_btc_price(cfg, 1000, 3600, np.random.default_rng(0))
    t_years = 3600 * np.arange(1000) / SECONDS_PER_YEAR
    assert np.allclose(signal.values, 50_000 * np.exp(0.3 * t_years))


def test_btc_log_returns_have_configured_volatility() -> None:
    """Annualised volatility of daily log returns (no jumps) matches volatility_per_year."""
    cfg = SyntheticBtc(volatility_per_year=0.6, jump_rate_per_year=0)
    values = synthetic_btc_price(cfg, 20_000, 86400, np.random.default_rng(4)).values
    annualised = np.diff(np.log(values)).std() * np.sqrt(SECONDS_PER_YEAR / 86400)
    assert annualised == pytest.approx(0.6, rel=0.05)


def test_btc_jumps_keep_the_expected_return() -> None:
    """Compensated jumps: the mean final price over many paths stays near initial x e^(mu t)."""
    cfg = SyntheticBtc(
        drift_per_year=0.1,
        volatility_per_year=0.2,
        jump_rate_per_year=50,
        jump_mean=-0.05,
        jump_std=0.05,
    )
    finals = [
        synthetic_btc_price(cfg, 366, 86400, np.random.default_rng(s)).values[-1]
        for s in range(400)
    ]
    expected = cfg.initial_usd * np.exp(0.1 * 365 * 86400 / SECONDS_PER_YEAR)
    assert np.mean(finals) == pytest.approx(expected, rel=0.05)


def test_hashrate_without_noise_grows_exponentially() -> None:
    """With no volatility hashrate is initial x exp(growth x t) [EH/s]."""
    cfg = SyntheticHashrate(initial_ehs=600, growth_per_year=0.35, volatility_per_year=0)
    signal = synthetic_network_hashrate(cfg, 366, 86400, np.random.default_rng(0))
    assert signal.unit == "EH/s"
    assert signal.values[-1] == pytest.approx(600 * np.exp(0.35 * 365 * 86400 / SECONDS_PER_YEAR))


def test_fees_are_positive_persistent_and_average_the_mean() -> None:
    """Fees per block are positive, average the configured mean and persist hour to hour."""
    cfg = SyntheticFees(mean_btc_per_block=0.1, volatility=0.5)
    values = synthetic_fees(cfg, 12 * 24 * 365 * 3, 300, np.random.default_rng(8)).values
    assert values.min() > 0
    assert values.mean() == pytest.approx(0.1, rel=0.15)
    assert np.corrcoef(values[:-12], values[12:])[0, 1] > 0.95


def test_gpu_rental_multiplier_averages_one() -> None:
    """The rental multiplier is positive with mean 1 and the stationary log spread."""
    cfg = SyntheticGpuRental(volatility_per_day=0.05, reversion_per_day=0.5)
    values = synthetic_gpu_rental(cfg, 24 * 365 * 5, 3600, np.random.default_rng(9)).values
    assert values.min() > 0
    assert values.mean() == pytest.approx(1, abs=0.02)
    assert np.log(values).std() == pytest.approx(0.05 / np.sqrt(2 * 0.5), rel=0.15)


@pytest.mark.parametrize(("n_steps", "step_s"), [(0, 300), (10, 0), (10, -5)])
def test_bad_grid_is_rejected(n_steps: int, step_s: float) -> None:
    """n_steps < 1 or step_s <= 0 raise ValueError naming the argument."""
    with pytest.raises(ValueError, match=r"n_steps|step_s"):
        synthetic_fees(SyntheticFees(), n_steps, step_s, np.random.default_rng(0))


def test_naive_start_is_rejected() -> None:
    """A start without a time zone cannot be placed on the CPT calendar."""
    with pytest.raises(ValueError, match="timezone-aware"):
        synthetic_prices(
            SyntheticPrices(), ["A"], datetime(2023, 1, 1), 10, 300, np.random.default_rng(0)
        )
