"""Economic optimizer: hand-worked scores and breakdowns, breakeven consistency with the
policies, recommendations, input errors and allocation plans from the dispatch MILP.

The reference device is an Antminer S21 (200 TH/s, 3,500 W) in a mining hall at PUE 1.1 on
an index contract without adder; GPUs are H100s (700 W TDP, 80 W idle) at PUE 1.3. Every
expected figure below is written out as arithmetic.
"""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.allocation import AllocationError
from optimizer.dispatch import DispatchOptions, HorizonData
from optimizer.policies import breakeven_usd_per_mwh, spot_breakeven_usd_per_mwh
from optimizer.power import SPOT_LOAD_FRACTION
from optimizer.profitability import (
    EconomicOptimizer,
    ProfitabilityAssumptions,
    ProfitabilityError,
    score_from_margin,
)
from optimizer.types import AsicClassState, FacilityState, GpuPoolState, Snapshot
from tests.optimizer import builders
from twin.scenario import FixedBlockContract, IndexContract

BTC_USD = builders.BTC_PRICE_USD
HASHPRICE = 0.05
"""USD per TH/s per day: an S21 earns 200 x 0.05 / 24 = 0.41667 USD per hour."""
S21_REVENUE_USD_PER_H = 200 * HASHPRICE / 24
S21 = "site/asic/antminer_s21"
H100 = "site/gpu/h100_sxm"
NO_ADDER = IndexContract(adder_usd_per_mwh=0.0)


def _asic(
    model_id: str = "antminer_s21",
    ths: float = 200.0,
    watts: float = 3500.0,
    count: int = 10,
    active: int | None = None,
) -> AsicClassState:
    return builders.asic_class(model_id, ths, watts, count, active=active)


def _pool(count: int = 8, busy: int = 0, rental: float = 2.1) -> GpuPoolState:
    return GpuPoolState("h100_sxm", 700.0, 80.0, count, busy, 0, rental)


def _facility(
    facility_id: str = "site",
    asics: tuple[AsicClassState, ...] | None = None,
    pools: tuple[GpuPoolState, ...] | None = None,
    cap_mw: float = 5.0,
) -> FacilityState:
    return builders.facility_state(
        (_asic(),) if asics is None else asics,
        (_pool(),) if pools is None else pools,
        price_usd_per_mwh=40.0,
        cap_mw=cap_mw,
        pue_mining=1.1,
        pue_ai=1.3,
        facility_id=facility_id,
    )


def _snapshot(*facilities: FacilityState) -> Snapshot:
    return builders.snapshot(facilities or (_facility(),), builders.market_state(HASHPRICE))


def _optimizer(
    contract: IndexContract | FixedBlockContract = NO_ADDER,
    facility: FacilityState | None = None,
    **kwargs: object,
) -> EconomicOptimizer:
    snapshot = _snapshot(facility or _facility())
    return EconomicOptimizer(snapshot, {"site": contract}, **kwargs)  # type: ignore[arg-type]


def _s21(price: float, btc: float = BTC_USD, **kwargs: object):
    return _optimizer(**kwargs).calculate_profitability(  # type: ignore[arg-type]
        S21, "bitcoin_mining", price, {}, btc
    )


# --------------------------------------------------------------------------- hand-worked


def test_s21_breakdown_at_40_usd_per_mwh():
    """At 40 USD/MWh: revenue 200 x 0.05 / 24 = 0.4167 USD/h, energy 3.5 kW x 1.1 x 0.04 =
    0.154 USD/h, net 0.2627 USD/h, margin 0.6304, score 50 + 62.5 x 0.6304 = 89.4: run."""
    result = _s21(40.0)
    assert result.revenue_usd_per_hour == pytest.approx(0.416667, abs=1e-6)
    assert result.energy_cost_usd_per_hour == pytest.approx(3.5 * 1.1 * 0.040)
    assert result.other_cost_usd_per_hour == 0.0
    net = 200 * 0.05 / 24 - 0.154
    assert result.net_usd_per_hour == pytest.approx(net)
    assert result.margin == pytest.approx(net / (200 * 0.05 / 24))
    assert result.score == pytest.approx(50 + 62.5 * net / (200 * 0.05 / 24))
    assert result.recommendation == "run" and result.power_fraction == 1.0
    assert result.inputs.marginal_energy_usd_per_mwh == 40.0
    assert result.inputs.hashrate_ths == 200.0 and result.inputs.it_power_w == 3500.0


def test_index_adder_is_part_of_the_energy_cost_and_of_the_settlement_breakeven():
    """With a 4 USD/MWh adder the marginal price is 44: energy 3.5 x 1.1 x 0.044 USD/h; the
    real-time breakeven is the marginal breakeven less 4."""
    result = _s21(40.0, contract=IndexContract(adder_usd_per_mwh=4.0))
    assert result.inputs.marginal_energy_usd_per_mwh == 44.0
    assert result.energy_cost_usd_per_hour == pytest.approx(3.5 * 1.1 * 0.044)
    assert result.breakeven_settlement_usd_per_mwh == pytest.approx(
        result.breakeven_usd_per_mwh - 4.0
    )


def test_btc_price_rescales_the_hashprice_proportionally():
    """Doubling BTC from 90k to 180k doubles the hashprice (0.10) and the revenue."""
    result = _s21(40.0, btc=180_000.0)
    assert result.inputs.hashprice_usd_per_ths_day == pytest.approx(0.10)
    assert result.revenue_usd_per_hour == pytest.approx(200 * 0.10 / 24)


@pytest.mark.parametrize("hashprice_scale", [0.5, 1.0, 2.0])
def test_breakeven_matches_the_policies_strike(hashprice_scale: float):
    """The breakeven equals optimizer.policies.breakeven_usd_per_mwh, 0.05 / (17.5 x 24 /
    1e6) / 1.1 = 108.2 USD/MWh at 90k USD, and at that price the net is 0 and the score 50."""
    facility = _facility()
    btc = BTC_USD * hashprice_scale
    expected = breakeven_usd_per_mwh(facility.asic_classes[0], HASHPRICE * hashprice_scale, 1.1)
    result = _s21(0.0, btc=btc)
    assert result.breakeven_usd_per_mwh == pytest.approx(expected)
    at_breakeven = _s21(expected, btc=btc)
    assert at_breakeven.net_usd_per_hour == pytest.approx(0.0, abs=1e-12)
    assert at_breakeven.score == pytest.approx(50.0)


def test_wear_lowers_the_net_and_the_breakeven():
    """A wear cost of 0.1 USD per miner-hour is other cost; the breakeven becomes
    (revenue - 0.1) / (3.5 kW x 1.1) per MWh."""
    assumptions = ProfitabilityAssumptions(asic_wear_usd_per_device_hour=0.1)
    result = _s21(40.0, assumptions=assumptions)
    assert result.other_cost_usd_per_hour == 0.1
    assert result.net_usd_per_hour == pytest.approx(S21_REVENUE_USD_PER_H - 0.154 - 0.1)
    assert result.breakeven_usd_per_mwh == pytest.approx(
        (S21_REVENUE_USD_PER_H - 0.1) / (3.5 * 1.1 / 1000)
    )


def test_just_above_breakeven_underclocking_beats_nameplate_and_sleep():
    """At 112 USD/MWh mining at nameplate loses money but the 0.7 tier (hashrate 0.7^0.8)
    still earns: run_reduced at 0.7. Far above breakeven the miner sleeps."""
    price = 112.0
    result = _s21(price)
    full_net = S21_REVENUE_USD_PER_H - 3.5 * 1.1 * price / 1000
    tier_net = S21_REVENUE_USD_PER_H * 0.7**0.8 - 3.5 * 0.7 * 1.1 * price / 1000
    assert full_net < 0 < tier_net
    assert result.recommendation == "run_reduced"
    assert result.power_fraction == 0.7
    assert result.option_net_usd_per_hour["run_reduced"] == pytest.approx(tier_net)
    assert result.score < 50
    assert _s21(300.0).recommendation == "curtail"
    assert _s21(300.0).power_fraction == 0.0


def test_fixed_block_uses_the_marginal_price_of_the_contract():
    """Inside a fixed block with sell-back one more MWh costs the real-time price forgone (no
    adder); without sell-back it costs nothing; above the block it costs price + adder."""
    draw_mw = 10 * 3500 * 1.1 / 1e6 + 8 * 80 * 1.3 / 1e6  # miners hashing, GPUs idle
    big = FixedBlockContract(block_mw=1.0, price_usd_per_mwh=30.0, adder_usd_per_mwh=4.0)
    inside = _s21(200.0, contract=big)
    assert inside.inputs.estimated_facility_mw == pytest.approx(draw_mw)
    assert inside.inputs.marginal_energy_usd_per_mwh == 200.0
    assert inside.breakeven_settlement_usd_per_mwh == pytest.approx(inside.breakeven_usd_per_mwh)
    no_sellback = _s21(200.0, contract=big.model_copy(update={"sellback": False}))
    assert no_sellback.energy_cost_usd_per_hour == 0.0
    assert no_sellback.recommendation == "run"
    assert no_sellback.breakeven_settlement_usd_per_mwh is None
    small = big.model_copy(update={"block_mw": 0.01})
    assert _s21(200.0, contract=small).inputs.marginal_energy_usd_per_mwh == 204.0


# --------------------------------------------------------------------------- GPUs


def test_gpu_is_rented_on_spot_when_it_pays_and_idles_when_it_does_not():
    """Spot at 2.0 USD/GPU-h against 0.7 kW x 0.85 x 1.3 x 0.04 = 0.031 USD/h: sell. At
    1,000 USD/MWh a 0.05 USD/GPU-h rate loses 0.72 USD/h against an idle cost of 0.104."""
    optimizer = _optimizer()
    cheap = optimizer.calculate_profitability(H100, "spot", 40.0, {"h100_sxm": 2.0}, BTC_USD)
    assert cheap.recommendation == "sell_spot"
    assert cheap.energy_cost_usd_per_hour == pytest.approx(0.7 * 0.85 * 1.3 * 0.04)
    assert cheap.net_usd_per_hour == pytest.approx(2.0 - 0.7 * 0.85 * 1.3 * 0.04)
    dear = optimizer.calculate_profitability(H100, "spot", 1000.0, {"h100_sxm": 0.05}, BTC_USD)
    assert dear.recommendation == "idle" and dear.power_fraction == 0.0
    assert dear.option_net_usd_per_hour["idle"] == pytest.approx(-0.08 * 1.3 * 1.0)
    assert dear.option_net_usd_per_hour["sell_spot"] == pytest.approx(0.05 - 0.7 * 0.85 * 1.3)
    assert dear.score == 0.0


def test_spot_breakeven_matches_the_policies_and_missing_rates_use_the_snapshot():
    """The spot breakeven equals optimizer.policies.spot_breakeven_usd_per_mwh; a type absent
    from ``spot_rates`` takes the pool's snapshot rental price (2.1 USD/GPU-h)."""
    result = _optimizer().calculate_profitability(H100, "spot", 40.0, {}, BTC_USD)
    assert result.inputs.spot_usd_per_gpu_hour == 2.1
    assert result.breakeven_usd_per_mwh == pytest.approx(
        spot_breakeven_usd_per_mwh(2.1, 700.0, 1.3)
    )
    assert result.inputs.it_power_w == pytest.approx(700.0 * SPOT_LOAD_FRACTION)


def test_ai_work_runs_at_its_billing_price_unless_spot_pays_more():
    """Training bills 2.50 USD/GPU-h at full TDP: it beats spot at 2.0, but a 4.0 spot rate
    earns more, so the GPU should be sold on spot."""
    optimizer = _optimizer()
    training = optimizer.calculate_profitability(
        H100, "model_training", 40.0, {"h100_sxm": 2.0}, BTC_USD
    )
    assert training.revenue_usd_per_hour == 2.50
    assert training.energy_cost_usd_per_hour == pytest.approx(0.7 * 1.3 * 0.04)
    assert training.recommendation == "run"
    spot_rich = optimizer.calculate_profitability(
        H100, "ai_inference_batch", 40.0, {"h100_sxm": 4.0}, BTC_USD
    )
    assert spot_rich.recommendation == "sell_spot"


# --------------------------------------------------------------------------- invariants


def test_score_mapping_points():
    """50 at breakeven, 100 at a margin of 80 % and above, 0 at -80 % and below."""
    assert score_from_margin(0.0) == 50.0
    assert score_from_margin(0.8) == 100.0
    assert score_from_margin(5.0) == 100.0
    assert score_from_margin(-0.8) == 0.0
    assert score_from_margin(-math.inf) == 0.0
    assert score_from_margin(0.4) == pytest.approx(75.0)


CONTRACTS = [
    NO_ADDER,
    IndexContract(adder_usd_per_mwh=6.0),
    FixedBlockContract(block_mw=1.0, price_usd_per_mwh=30.0),
    FixedBlockContract(block_mw=0.01, price_usd_per_mwh=30.0),
]


@settings(max_examples=150, deadline=None)
@given(
    low=st.floats(-250.0, 5000.0),
    high=st.floats(-250.0, 5000.0),
    contract=st.sampled_from(CONTRACTS),
    use=st.sampled_from([(S21, "bitcoin_mining"), (H100, "spot"), (H100, "ai_inference_realtime")]),
    btc=st.floats(10_000.0, 300_000.0),
)
def test_score_and_net_never_rise_with_the_electricity_price(low, high, contract, use, btc):
    """For every contract and use, a higher electricity price never raises the score, the
    net or the best option's net; the score stays within 0-100."""
    low, high = min(low, high), max(low, high)
    optimizer = _optimizer(contract)
    resource, workload = use
    cheap = optimizer.calculate_profitability(resource, workload, low, {"h100_sxm": 2.0}, btc)
    dear = optimizer.calculate_profitability(resource, workload, high, {"h100_sxm": 2.0}, btc)
    assert 0.0 <= dear.score <= cheap.score <= 100.0
    assert dear.net_usd_per_hour <= cheap.net_usd_per_hour + 1e-12
    assert dear.recommended_net_usd_per_hour <= cheap.recommended_net_usd_per_hour + 1e-12


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("resource", "workload"),
    [
        (H100, "bitcoin_mining"),
        (S21, "model_training"),
        (S21, "ai_inference_realtime"),
        (S21, "spot"),
    ],
)
def test_workload_on_the_wrong_hardware_names_both(resource: str, workload: str):
    """Mining runs only on ASICs and AI work (and spot rental) only on GPUs."""
    with pytest.raises(ValueError, match=workload) as info:
        _optimizer().calculate_profitability(resource, workload, 40.0, {}, BTC_USD)
    assert resource in str(info.value)


@pytest.mark.parametrize(
    ("resource", "workload", "price", "btc", "field"),
    [
        ("site/fpga/x", "bitcoin_mining", 40.0, BTC_USD, "resource_id"),
        ("antminer_s21", "bitcoin_mining", 40.0, BTC_USD, "resource_id"),
        ("elsewhere/asic/antminer_s21", "bitcoin_mining", 40.0, BTC_USD, "elsewhere"),
        ("site/asic/antminer_s9", "bitcoin_mining", 40.0, BTC_USD, "antminer_s9"),
        ("site/gpu/b200", "spot", 40.0, BTC_USD, "b200"),
        (S21, "video_transcoding", 40.0, BTC_USD, "workload_type"),
        (S21, "bitcoin_mining", math.nan, BTC_USD, "electricity_price"),
        (S21, "bitcoin_mining", 40.0, 0.0, "btc_price"),
    ],
)
def test_bad_questions_are_rejected_with_the_reason(resource, workload, price, btc, field):
    """Malformed or unknown resources, unknown workload types and bad prices are errors
    that name what is wrong."""
    with pytest.raises(ProfitabilityError, match=field):
        _optimizer().calculate_profitability(resource, workload, price, {}, btc)


def test_negative_spot_rate_and_missing_contract_are_rejected():
    """A negative spot rate names its type; an optimizer without a contract for a facility
    cannot be built."""
    with pytest.raises(ProfitabilityError, match=r"spot_rates\[h100_sxm\]"):
        _optimizer().calculate_profitability(H100, "spot", 40.0, {"h100_sxm": -1.0}, BTC_USD)
    with pytest.raises(ProfitabilityError, match="no contract for facility 'site'"):
        EconomicOptimizer(_snapshot(), {})


# --------------------------------------------------------------------------- allocation

FAST = DispatchOptions(services=(), wake_cost_usd_per_miner=0.0, time_limit_s=5.0)


def _horizon(prices: list[float], **arrays: object) -> HorizonData:
    """``prices`` per step (a list per step for several facilities) [USD/MWh]."""
    t = len(prices)
    return HorizonData(
        step_s=300.0,
        price_usd_per_mwh=np.array(prices, dtype=float).reshape(t, -1),
        hashprice_usd_per_ths_day=np.full(t, HASHPRICE),
        **arrays,  # type: ignore[arg-type]
    )


def _allocation_optimizer(
    prices: list[float], options: DispatchOptions = FAST, **arrays: object
) -> EconomicOptimizer:
    return _optimizer(horizon=_horizon(prices, **arrays), options=options)


def test_miners_sleep_all_horizon_when_the_price_is_above_every_breakeven():
    """At 1,000 USD/MWh (S21 breakeven 108) every miner sleeps in every step, while the idle
    H100s are rented: 2.1 USD/h against 0.7 x 0.85 x 1.3 x 1.0 = 0.77 USD/h."""
    plan = _allocation_optimizer([1000.0] * 24).get_allocation_recommendation("site", 1.0)
    assert plan.status == "optimal" and not plan.used_fallback
    assert plan.horizon_s == 3600.0
    assert [s.start_s for s in plan.steps] == [300.0 * i for i in range(12)]
    assert all(s.miners_active == {"antminer_s21": 0.0} for s in plan.steps)
    assert all(s.gpus_by_use["h100_sxm"]["spot"] == 8.0 for s in plan.steps)
    assert plan.first_interval.asic_active == {"antminer_s21": 0}
    assert plan.first_interval.gpu_spot == {"h100_sxm": 8}
    assert plan.value_usd["mining"] == 0.0
    assert plan.value_usd["spot"] == pytest.approx(8 * 2.1 * 1.0)
    assert plan.expected_net_revenue_usd == pytest.approx(
        sum(s.net_revenue_usd for s in plan.steps)
    )


def test_miners_hash_at_nameplate_when_power_is_cheap_and_follow_a_price_spike():
    """At 20 USD/MWh all ten S21s hash at the full tier; during a 2-step spike to 1,000
    USD/MWh they sleep. The mining revenue is ten S21s for the 4 cheap steps."""
    prices = [20.0, 20.0, 1000.0, 1000.0, 20.0, 20.0]
    plan = _allocation_optimizer(prices).get_allocation_recommendation(
        "site", timedelta(minutes=30)
    )
    assert [s.miners_active["antminer_s21"] for s in plan.steps] == [10, 10, 0, 0, 10, 10]
    assert plan.steps[0].miners_by_tier["antminer_s21"][1.0] == 10.0
    assert plan.steps[0].hashrate_ths == pytest.approx(2000.0)
    assert plan.value_usd["mining"] == pytest.approx(4 * 10 * S21_REVENUE_USD_PER_H / 12)


def test_allocation_covers_only_the_asked_facility_and_the_asked_horizon():
    """With two facilities the plan lists only the asked one's miners; a 40-minute horizon
    at 300-s steps is 8 steps even though 24 are known; 0.5 h and 30 min are the same."""
    other = _facility("other", asics=(_asic("antminer_s19j_pro", 104.0, 3068.0),), pools=())
    snapshot = _snapshot(_facility(), other)
    contracts = {"site": NO_ADDER, "other": NO_ADDER}
    horizon = _horizon([[30.0, 40.0]] * 24)  # type: ignore[list-item]
    optimizer = EconomicOptimizer(snapshot, contracts, horizon, FAST)
    plan = optimizer.get_allocation_recommendation("other", timedelta(minutes=40))
    assert len(plan.steps) == 8 and plan.horizon_s == 2400.0
    assert set(plan.steps[0].miners_active) == {"antminer_s19j_pro"}
    assert plan.steps[0].gpus_by_use == {}
    hours = optimizer.get_allocation_recommendation("site", 0.5)
    minutes = optimizer.get_allocation_recommendation("site", timedelta(minutes=30))
    assert len(hours.steps) == len(minutes.steps) == 6
    assert hours.expected_net_revenue_usd == pytest.approx(minutes.expected_net_revenue_usd)


def test_failed_solve_returns_the_safe_plan_and_says_so():
    """Must-serve demand for 12 of 8 GPUs with unmet demand forbidden is infeasible: the plan
    is the solver's safe plan (all miners asleep), with no steps and no revenue figure."""
    options = DispatchOptions(services=(), allow_unmet_must_serve=False)
    optimizer = _allocation_optimizer(
        [40.0] * 4, options=options, must_serve_gpus=np.full((4, 1), 12.0)
    )
    plan = optimizer.get_allocation_recommendation("site", timedelta(minutes=20))
    assert plan.status == "infeasible" and plan.used_fallback
    assert "safe plan" in plan.message
    assert plan.steps == ()
    assert math.isnan(plan.expected_net_revenue_usd)
    assert plan.first_interval.asic_active == {"antminer_s21": 0}


def test_allocation_rejects_unknown_facilities_and_impossible_horizons():
    """An unknown facility, a horizon longer than the data, a non-positive horizon and an
    optimizer built without horizon data are errors naming the reason."""
    optimizer = _allocation_optimizer([40.0] * 12)
    with pytest.raises(ValueError, match="unknown facility 'nowhere'"):
        optimizer.get_allocation_recommendation("nowhere", 1.0)
    with pytest.raises(AllocationError, match="only 12"):
        optimizer.get_allocation_recommendation("site", timedelta(hours=2))
    with pytest.raises(AllocationError, match="must be > 0"):
        optimizer.get_allocation_recommendation("site", 0.0)
    with pytest.raises(ProfitabilityError, match="HorizonData"):
        _optimizer().get_allocation_recommendation("site", 1.0)
