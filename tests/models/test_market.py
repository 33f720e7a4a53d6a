"""Bitcoin protocol arithmetic, the simulated network's retargets, and the Market facade."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasets.signals import ConstantSignal, SeriesSignal
from models.hardware import ASIC_CATALOG, GPU_CATALOG
from models.market import (
    HASHES_PER_DIFFICULTY,
    BitcoinNetwork,
    Market,
    MarketInputError,
    block_subsidy_btc,
    difficulty_from_network_hashrate_hs,
    estimate_block_height,
    expected_blocks_per_day,
    hashprice_usd_per_ths_day,
    network_hashrate_hs_from_difficulty,
)
from twin.scenario import Market as MarketConfig

DIFFICULTY = 1.0e14
STEP_S = 300.0
DAY_S = 86400.0


def _hashrate_ehs(multiple: float, difficulty: float = DIFFICULTY) -> ConstantSignal:
    """A constant network hashrate ``multiple`` times the one ``difficulty`` is tuned for."""
    hashrate_hs = multiple * difficulty * HASHES_PER_DIFFICULTY / 600.0
    return ConstantSignal(hashrate_hs / 1e18, name="hashrate", unit="EH/s")


def _network(multiple: float, seed: int = 7, height: int = 2016 * 400) -> BitcoinNetwork:
    return BitcoinNetwork(
        _hashrate_ehs(multiple), np.random.default_rng(seed), height=height, difficulty=DIFFICULTY
    )


def _advance_until_retarget(network: BitcoinNetwork, limit_s: float) -> None:
    """Advance in dispatch-interval steps until the first retarget (or ``limit_s``)."""
    t_s = 0.0
    while not network.retargets and t_s < limit_s:
        t_s += STEP_S
        network.advance(t_s)


# --------------------------------------------------------------------------- protocol math


def test_subsidy_halves_at_each_halving_height() -> None:
    """50 BTC until block 209,999, then 25, 12.5, 6.25 and 3.125 from block 840,000."""
    assert block_subsidy_btc(0) == 50.0
    assert block_subsidy_btc(209_999) == 50.0
    assert block_subsidy_btc(210_000) == 25.0
    assert block_subsidy_btc(420_000) == 12.5
    assert block_subsidy_btc(629_999) == 12.5
    assert block_subsidy_btc(630_000) == 6.25
    assert block_subsidy_btc(839_999) == 6.25
    assert block_subsidy_btc(840_000) == 3.125
    assert block_subsidy_btc(1_050_000) == 1.5625


def test_subsidy_is_zero_once_the_shift_runs_out() -> None:
    """The satoshi shift reaches 0 after 33 halvings; 64 and more halvings pay nothing."""
    assert block_subsidy_btc(32 * 210_000) == 1e-8
    assert block_subsidy_btc(33 * 210_000) == 0.0
    assert block_subsidy_btc(64 * 210_000) == 0.0
    assert block_subsidy_btc(500 * 210_000) == 0.0


def test_subsidy_rejects_negative_height() -> None:
    """A negative height is an input error that names the field."""
    with pytest.raises(MarketInputError, match="height"):
        block_subsidy_btc(-1)


@given(st.integers(min_value=0, max_value=40 * 210_000))
def test_subsidy_matches_halving_formula_for_arrays_and_scalars(height: int) -> None:
    """Scalar and array forms agree with ``floor(50e8 / 2**halvings) / 1e8`` BTC."""
    halvings = height // 210_000
    expected = (5_000_000_000 // 2**halvings) / 1e8
    assert block_subsidy_btc(height) == expected
    assert np.asarray(block_subsidy_btc(np.array([height, height])))[1] == expected


def test_network_at_its_difficulty_finds_144_blocks_a_day() -> None:
    """The hashrate implied by a difficulty finds one block per 600 s: 144 a day."""
    hashrate_hs = network_hashrate_hs_from_difficulty(DIFFICULTY)
    assert expected_blocks_per_day(hashrate_hs, DIFFICULTY) == pytest.approx(144.0)
    assert difficulty_from_network_hashrate_hs(hashrate_hs) == pytest.approx(DIFFICULTY)


def test_hashprice_example_breaks_even_near_93_usd_per_mwh() -> None:
    """At a difficulty where 1 TH/s finds 1/1000 block a day, 4 BTC per block at 10 USD and a
    2.5 % pool fee pay 39 USD/PH/day; an S21 (17.5 J/TH) breaks even at ~93 USD/MWh."""
    difficulty = 86400.0 * 1e12 * 1000.0 / HASHES_PER_DIFFICULTY
    hashprice = hashprice_usd_per_ths_day(
        btc_price_usd=10.0,
        difficulty=difficulty,
        subsidy_btc=3.125,
        fees_btc_per_block=0.875,
        pool_fee_fraction=0.025,
    )
    assert hashprice == pytest.approx(0.039)
    s21 = ASIC_CATALOG["antminer_s21"]
    assert s21.efficiency_j_per_th == pytest.approx(17.5)
    assert s21.breakeven_usd_per_mwh(hashprice) == pytest.approx(93.0, abs=0.5)


@given(
    price=st.floats(1.0, 1e6),
    difficulty=st.floats(1e6, 1e16),
    fees=st.floats(0.0, 10.0),
    pool_fee=st.floats(0.0, 0.2),
)
def test_hashprice_scales_with_price_and_inverse_difficulty(
    price: float, difficulty: float, fees: float, pool_fee: float
) -> None:
    """Hashprice is linear in price and reward, inverse in difficulty, times (1 - pool fee)."""
    base = hashprice_usd_per_ths_day(price, difficulty, 3.125, fees, pool_fee)
    assert hashprice_usd_per_ths_day(2 * price, difficulty, 3.125, fees, pool_fee) == (
        pytest.approx(2 * base)
    )
    assert hashprice_usd_per_ths_day(price, 2 * difficulty, 3.125, fees, pool_fee) == (
        pytest.approx(base / 2)
    )
    gross = hashprice_usd_per_ths_day(price, difficulty, 3.125, fees)
    assert base == pytest.approx(gross * (1 - pool_fee))


def test_hashprice_rejects_bad_inputs() -> None:
    """Zero difficulty, negative fees and a pool fee of 100 % are refused by name."""
    with pytest.raises(MarketInputError, match="difficulty"):
        hashprice_usd_per_ths_day(60000.0, 0.0, 3.125, 0.1)
    with pytest.raises(MarketInputError, match="fees_btc_per_block"):
        hashprice_usd_per_ths_day(60000.0, DIFFICULTY, 3.125, -0.1)
    with pytest.raises(MarketInputError, match="pool_fee_fraction"):
        hashprice_usd_per_ths_day(60000.0, DIFFICULTY, 3.125, 0.1, pool_fee_fraction=1.0)


def test_block_height_estimate_is_exact_at_halvings() -> None:
    """The halving blocks' own timestamps give their heights; a day either side lands in
    the neighbouring epoch."""
    halving_2024 = datetime(2024, 4, 20, 0, 9, 27, tzinfo=UTC)
    assert estimate_block_height(halving_2024) == 840_000
    assert block_subsidy_btc(estimate_block_height(halving_2024 - timedelta(days=1))) == 6.25
    assert block_subsidy_btc(estimate_block_height(halving_2024 + timedelta(days=1))) == 3.125
    assert estimate_block_height(datetime(2016, 7, 9, 16, 46, 13, tzinfo=UTC)) == 420_000
    assert estimate_block_height(datetime(2008, 1, 1, tzinfo=UTC)) == 0


def test_block_height_estimate_extrapolates_near_144_a_day() -> None:
    """After the last anchor the chain grows by 140-150 blocks a day."""
    a = estimate_block_height(datetime(2026, 1, 1, tzinfo=UTC))
    b = estimate_block_height(datetime(2027, 1, 1, tzinfo=UTC))
    assert 140 * 365 <= b - a <= 150 * 365


@given(
    st.datetimes(min_value=datetime(2008, 1, 1), max_value=datetime(2040, 1, 1)),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3000)),
)
def test_block_height_estimate_never_decreases(when: datetime, later: timedelta) -> None:
    """Height is non-decreasing in time."""
    start = when.replace(tzinfo=UTC)
    assert estimate_block_height(start + later) >= estimate_block_height(start)


def test_block_height_estimate_needs_a_timezone() -> None:
    """A naive datetime is ambiguous and refused."""
    with pytest.raises(MarketInputError, match="timezone"):
        estimate_block_height(datetime(2024, 1, 1))


# --------------------------------------------------------------------------- network


def test_double_hashrate_doubles_difficulty_at_next_retarget() -> None:
    """Twice the hashrate the difficulty is tuned for finds 2016 blocks in ~3.5 days instead
    of 7, so the retarget roughly doubles the difficulty."""
    network = _network(2.0)
    _advance_until_retarget(network, limit_s=14 * DAY_S)
    (retarget,) = network.retargets
    assert retarget.height == 2016 * 401
    assert retarget.t_s == pytest.approx(2016 * 300.0, rel=0.1)
    assert retarget.difficulty / DIFFICULTY == pytest.approx(2.0, rel=0.1)
    assert network.difficulty == retarget.difficulty


def test_retarget_is_clamped_to_four_times_up() -> None:
    """Ten times the hashrate would ask for a 10x difficulty; Bitcoin allows at most 4x."""
    network = _network(10.0)
    _advance_until_retarget(network, limit_s=7 * DAY_S)
    assert network.retargets[0].adjustment == 4.0
    assert network.difficulty == pytest.approx(4.0 * DIFFICULTY)


def test_retarget_is_clamped_to_a_quarter_down_in_one_long_advance() -> None:
    """A tenth of the hashrate takes ~140 days per epoch; the difficulty falls by at most 4x.
    One advance call spanning the whole epoch gives the same physics as many small ones."""
    network = _network(0.1)
    network.advance(160 * DAY_S)
    (retarget,) = network.retargets
    assert retarget.adjustment == 0.25
    assert retarget.t_s == pytest.approx(2016 * 6000.0, rel=0.1)


@settings(max_examples=20, deadline=None)
@given(multiple=st.floats(0.5, 20.0), seed=st.integers(0, 2**32 - 1))
def test_retarget_tracks_hashrate_within_the_clamp(multiple: float, seed: int) -> None:
    """For any constant hashrate multiple, the first retarget moves the difficulty by that
    multiple clamped to [1/4, 4] (to within Poisson noise of 2016 blocks, ~2 %)."""
    network = _network(multiple, seed=seed)
    network.advance(2016 * 600.0 / multiple * 1.5)
    retarget = network.retargets[0]
    assert 0.25 <= retarget.adjustment <= 4.0
    assert retarget.adjustment == pytest.approx(min(multiple, 4.0), rel=0.12)


def test_blocks_arrive_at_the_poisson_rate() -> None:
    """With hashrate matching difficulty, 20 days mid-epoch yield ~2880 blocks (+-4 sigma)."""
    network = _network(1.0, height=2016 * 400)
    network.advance(20 * DAY_S)
    found = network.height - 2016 * 400
    assert abs(found - 2880) < 4 * np.sqrt(2880)


def test_default_epoch_start_assumes_target_pace() -> None:
    """Starting 1000 blocks into an epoch, the epoch is taken to have begun 1000 x 600 s ago,
    so a matching hashrate retargets near 1.0 after the remaining 1016 blocks."""
    network = _network(1.0, height=2016 * 400 + 1000)
    assert network.epoch_start_s == -600_000.0
    _advance_until_retarget(network, limit_s=14 * DAY_S)
    assert network.retargets[0].height == 2016 * 401
    assert network.retargets[0].adjustment == pytest.approx(1.0, rel=0.1)


def test_difficulty_defaults_to_hashrate_at_start() -> None:
    """Without a difficulty, the one that the t=0 hashrate meets at 600 s per block is used."""
    network = BitcoinNetwork(
        ConstantSignal(800.0, name="hashrate"), np.random.default_rng(0), height=880_000
    )
    assert network.difficulty == pytest.approx(800e18 * 600.0 / 2**32)


def test_network_is_deterministic_per_seed() -> None:
    """Same seed and calls: identical heights and retarget logs; another seed differs."""
    runs = []
    for seed in (3, 3, 4):
        network = _network(1.3, seed=seed)
        for step in range(1, 5000):
            network.advance(step * STEP_S)
        runs.append((network.height, network.retargets))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_network_refuses_to_go_back_in_time() -> None:
    """The chain only moves forward."""
    network = _network(1.0)
    network.advance(3600.0)
    with pytest.raises(MarketInputError, match="cannot go back"):
        network.advance(1800.0)


def test_network_rejects_negative_hashrate() -> None:
    """A negative hashrate from the signal is reported with the signal's name."""
    hashrate = SeriesSignal(np.array([800.0, -1.0]), STEP_S, name="hashrate.bad", unit="EH/s")
    network = BitcoinNetwork(hashrate, np.random.default_rng(0), height=0, difficulty=DIFFICULTY)
    network.advance(STEP_S)
    with pytest.raises(MarketInputError, match=r"hashrate\.bad"):
        network.advance(2 * STEP_S)


# --------------------------------------------------------------------------- market


def _market(
    cfg: MarketConfig | None = None, seed: int = 11, start: datetime | None = None
) -> Market:
    return Market(
        cfg or MarketConfig(),
        start or datetime(2025, 6, 1, tzinfo=UTC),
        btc_price=ConstantSignal(100_000.0, name="btc_price", unit="USD"),
        network_hashrate_ehs=ConstantSignal(900.0, name="hashrate", unit="EH/s"),
        fees_btc_per_block=ConstantSignal(0.05, name="fees", unit="BTC"),
        gpu_rental_multiplier=ConstantSignal(1.5, name="gpu_rental"),
        rng=np.random.default_rng(seed),
    )


def test_market_state_prices_hashprice_after_pool_fee() -> None:
    """The state's hashprice is the protocol hashprice at the network's difficulty and
    subsidy, after the configured pool fee; the signals pass through."""
    market = _market(MarketConfig(pool_fee_fraction=0.02))
    state = market.state_at(0.0)
    expected = hashprice_usd_per_ths_day(100_000.0, state.difficulty, 3.125, 0.05, 0.02)
    assert state.hashprice_usd_per_ths_day == pytest.approx(expected)
    assert state.btc_price_usd == 100_000.0
    assert state.block_subsidy_btc == 3.125
    assert state.fees_btc_per_block == 0.05
    assert state.network_hashrate_ehs == 900.0
    assert state.gpu_rental_multiplier == 1.5
    assert state.difficulty == pytest.approx(900e18 * 600.0 / 2**32)


def test_market_starts_at_configured_or_estimated_height() -> None:
    """Height defaults to the halving-calendar estimate of the start; config overrides it."""
    start = datetime(2025, 6, 1, tzinfo=UTC)
    assert _market(start=start).network.height == estimate_block_height(start)
    configured = _market(MarketConfig(block_height_at_start=123_456, difficulty_at_start=5e13))
    assert configured.network.height == 123_456
    assert configured.network.difficulty == 5e13


def test_market_state_crosses_a_halving() -> None:
    """Starting 100 blocks before the 2028 halving, the subsidy drops to 1.5625 BTC within a
    day and the hashprice falls with it."""
    market = _market(MarketConfig(block_height_at_start=1_050_000 - 100))
    before = market.state_at(0.0)
    after = market.state_at(DAY_S)
    assert before.block_subsidy_btc == 3.125
    assert after.block_subsidy_btc == 1.5625
    assert after.hashprice_usd_per_ths_day < before.hashprice_usd_per_ths_day


def test_market_state_times_must_not_decrease() -> None:
    """Asking for an earlier time than the last one is an error; the same time is fine."""
    market = _market()
    market.state_at(600.0)
    market.state_at(600.0)
    with pytest.raises(ValueError, match="cannot go back"):
        market.state_at(300.0)


def test_market_rejects_non_positive_btc_price() -> None:
    """A zero BTC price from the signal is refused with the signal's name."""
    market = Market(
        MarketConfig(),
        datetime(2025, 6, 1, tzinfo=UTC),
        btc_price=ConstantSignal(0.0, name="btc_price.bad"),
        network_hashrate_ehs=ConstantSignal(900.0),
        fees_btc_per_block=ConstantSignal(0.05),
        gpu_rental_multiplier=ConstantSignal(1.0),
        rng=np.random.default_rng(0),
    )
    with pytest.raises(MarketInputError, match=r"btc_price\.bad"):
        market.state_at(0.0)


def test_gpu_rental_is_index_times_multiplier() -> None:
    """An H100's spot rate is its catalog index times the market multiplier."""
    h100 = GPU_CATALOG["h100_sxm"]
    rate = _market().gpu_rental_usd_per_gpu_hour(h100, 0.0)
    assert rate == pytest.approx(h100.rental_index_usd_per_gpu_hour * 1.5)


def test_market_is_deterministic_per_seed() -> None:
    """Two markets with the same seed give identical states over a week."""
    states = []
    for _ in range(2):
        market = _market(seed=5)
        states.append([market.state_at(step * STEP_S) for step in range(0, 2016 * 2)])
    assert states[0] == states[1]
