"""Dispatch MILP: hand-worked optima, cap safety, Pyomo/highspy agreement and fallbacks.

The hand cases use one facility at PUE 1, 300-s steps (dt = 1/12 h), index energy without
adder unless stated, one power tier (1.0), no wake or deferral cost and no reserves, so
every expected objective below is plain arithmetic written out in the test.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer.dispatch import (
    AncillaryService,
    ContractTerms,
    DispatchInputError,
    DispatchOptions,
    DispatchSolver,
    HorizonData,
    inputs_from_snapshot,
    solve_dispatch,
)
from optimizer.power import asic_mw
from optimizer.types import AsicClassState, FacilityState, GpuPoolState, Snapshot
from tests.optimizer import builders

DT_H = 300.0 / 3600.0
HASHPRICE = 0.05
"""USD per TH/s per day: a 100 TH/s miner earns 100 x 0.05 / 24 USD per hour."""
REV_100THS_STEP = 100 * HASHPRICE / 24 * DT_H
"""Mining revenue of one 100 TH/s miner in one 300-s step [USD]."""

HAND = DispatchOptions(
    power_tiers=(1.0,),
    wake_cost_usd_per_miner=0.0,
    deferral_usd_per_gpu_hour_h=0.0,
    services=(),
    mip_rel_gap=0.0,
    integer_blocks=None,
    spot_load_fraction=1.0,
)
INDEX = ContractTerms(adder_usd_per_mwh=0.0)


def _asic(
    model_id: str = "m100",
    ths: float = 100.0,
    watts: float = 3000.0,
    sleep_w: float = 20.0,
    count: int = 10,
    active: int | None = None,
) -> AsicClassState:
    return builders.asic_class(model_id, ths, watts, count, active=active, sleep_w=sleep_w)


def _pool(
    type_id: str = "g1000",
    tdp_w: float = 1000.0,
    idle_w: float = 0.0,
    count: int = 10,
    rental: float = 0.0,
) -> GpuPoolState:
    return GpuPoolState(type_id, tdp_w, idle_w, count, 0, 0, rental)


def _facility(
    asics: tuple[AsicClassState, ...] = (),
    pools: tuple[GpuPoolState, ...] = (),
    cap_mw: float = 1.0,
    facility_id: str = "site",
    pue_mining: float = 1.0,
    pue_ai: float = 1.0,
) -> FacilityState:
    return builders.facility_state(
        asics,
        pools,
        price_usd_per_mwh=0.0,
        cap_mw=cap_mw,
        pue_mining=pue_mining,
        pue_ai=pue_ai,
        facility_id=facility_id,
    )


def _snapshot(*facilities: FacilityState, ancillary: dict[str, float] | None = None) -> Snapshot:
    market = builders.market_state(HASHPRICE, network_hashrate_ehs=900.0, fees_btc_per_block=0.03)
    return builders.snapshot(facilities, market, ancillary)


def _horizon(prices: list[float], **arrays: object) -> HorizonData:
    t = len(prices)
    return HorizonData(
        step_s=300.0,
        price_usd_per_mwh=np.array(prices, dtype=float).reshape(t, 1),
        hashprice_usd_per_ths_day=np.full(t, HASHPRICE),
        **arrays,  # type: ignore[arg-type]
    )


def _solve(
    facility: FacilityState,
    prices: list[float],
    contract: ContractTerms = INDEX,
    options: DispatchOptions = HAND,
    ancillary: dict[str, float] | None = None,
    **kwargs: object,
):
    horizon_keys = {f for f in HorizonData.__dataclass_fields__ if f not in ("step_s",)}
    arrays = {k: v for k, v in kwargs.items() if k in horizon_keys}
    extra = {k: v for k, v in kwargs.items() if k not in horizon_keys}
    inputs = inputs_from_snapshot(
        _snapshot(facility, ancillary=ancillary),
        _horizon(prices, **arrays),
        {facility.facility_id: contract},
        **extra,  # type: ignore[arg-type]
    )
    result = solve_dispatch(inputs, options)
    assert result.status == "optimal", result.message
    assert result.schedule is not None
    return result


# --------------------------------------------------------------------------- hand-worked


def test_miners_hash_below_breakeven_and_sleep_above():
    """Ten 100 TH/s, 3 kW miners break even at 0.05 x 100 / 24 / 0.00298 MW = 69.9 USD/MWh
    (energy above the 20 W sleep draw): they hash at 40 and 60 USD/MWh, sleep at 100."""
    result = _solve(_facility((_asic(),)), [40.0, 100.0, 60.0])
    schedule = result.schedule
    assert schedule.asic_active[:, 0].tolist() == [10, 0, 10]
    expected = (
        10 * REV_100THS_STEP
        - 10 * 3000e-6 * 40 * DT_H  # step 0: all hash
        - 10 * 20e-6 * 100 * DT_H  # step 1: all asleep, 20 W each
        + 10 * REV_100THS_STEP
        - 10 * 3000e-6 * 60 * DT_H  # step 2: all hash again
    )
    assert result.objective_usd == pytest.approx(expected, rel=1e-9)
    assert result.plan.facility("site").asic_active == {"m100": 10}
    assert result.plan.facility("site").asic_power_fraction == {"m100": 1.0}


def test_fixed_block_sells_unused_power_back_in_a_spike():
    """Fixed block 0.02 MW at 30 USD/MWh with sell-back, adder 4: at 20 USD/MWh the miners
    hash (0.01 MW above the block at 24); at 500 they sleep and 0.02 - 0.0002 MW is resold."""
    contract = ContractTerms(4.0, block_mw=0.02, block_price_usd_per_mwh=30.0, sellback=True)
    result = _solve(_facility((_asic(),)), [20.0, 500.0], contract)
    schedule = result.schedule
    assert schedule.asic_active[:, 0].tolist() == [10, 0]
    assert schedule.resale_mw[:, 0] == pytest.approx([0.0, 0.0198], abs=1e-12)
    assert schedule.above_block_mw[:, 0] == pytest.approx([0.01, 0.0], abs=1e-12)
    block_cost = 2 * 0.02 * 30 * DT_H
    expected = (
        -block_cost
        + 10 * REV_100THS_STEP
        - (0.03 - 0.02) * (20 + 4) * DT_H  # step 0
        + (0.02 - 10 * 20e-6) * 500 * DT_H  # step 1: resale of the unused block
    )
    assert result.objective_usd == pytest.approx(expected, rel=1e-9)
    assert schedule.value_usd["resale"].sum() == pytest.approx(0.0198 * 500 * DT_H, rel=1e-9)


def test_fixed_block_without_sellback_at_negative_price_buys_only_above_the_block():
    """At -30 USD/MWh (buy price -26 < sell-back 0) the block split is non-convex; the binary
    keeps the unused part at 0, so only the 0.01 MW above the block is bought (and paid for)."""
    contract = ContractTerms(4.0, block_mw=0.02, block_price_usd_per_mwh=30.0, sellback=False)
    result = _solve(_facility((_asic(),)), [-30.0], contract)
    schedule = result.schedule
    assert schedule.above_block_mw[0, 0] == pytest.approx(0.01, abs=1e-12)
    assert schedule.resale_mw[0, 0] == pytest.approx(0.0, abs=1e-12)
    expected = -0.02 * 30 * DT_H + 10 * REV_100THS_STEP + 0.01 * 26 * DT_H
    assert result.objective_usd == pytest.approx(expected, rel=1e-9)


def test_binding_cap_goes_to_the_most_value_per_mw():
    """Cap 0.034 MW: GPUs on spot earn 2 USD/h per kW (2,000 USD/MWh) and take 0.01 MW; the
    200 TH/s, 3.5 kW miners (57 TH/s per kW) come next (0.0175 MW); 2 of the 100 TH/s, 3 kW
    miners fill 0.006 MW of the 0.0065 MW left (a third would not fit)."""
    efficient = _asic("m200", ths=200.0, watts=3500.0, sleep_w=0.0, count=5)
    plain = _asic("m100", sleep_w=0.0, count=5)
    facility = _facility((plain, efficient), (_pool(rental=2.0),), cap_mw=0.034)
    result = _solve(facility, [10.0])
    schedule = result.schedule
    assert schedule.asic_active[0].tolist() == [2, 5]
    assert schedule.gpus_by_use[0, 0, 4] == pytest.approx(10.0)
    expected = (
        10 * 2.0 * DT_H
        - 0.010 * 10 * DT_H  # spot GPUs
        + (5 * 200 + 2 * 100) * HASHPRICE / 24 * DT_H  # hashrate
        - (0.0175 + 0.006) * 10 * DT_H  # mining energy
    )
    assert result.objective_usd == pytest.approx(expected, rel=1e-9)
    plan = result.plan.facility("site")
    assert plan.gpu_spot == {"g1000": 10}
    assert plan.gpu_power_budget_mw == pytest.approx(0.010)
    assert schedule.cap_mw_used[0, 0] <= 0.034


def test_four_cp_interval_is_avoided_and_waking_costs_wear():
    """A sure 4CP step costs 55 / 4 x 1000 x 300/900 = 4,583 USD per MW drawn: the miners
    sleep through it and are woken after it at 0.005 USD each (one step of hashing earns
    0.0174 - 0.005 = 0.0124 USD net, so waking pays)."""
    options = replace(HAND, wake_cost_usd_per_miner=0.005)
    result = _solve(
        _facility((_asic(),)),
        [20.0, 20.0, 20.0],
        options=options,
        four_cp_probability=np.array([0.0, 1.0, 0.0]),
        four_cp_rate_usd_per_kw_year=55.0,
    )
    assert result.schedule.asic_active[:, 0].tolist() == [10, 0, 10]
    per_mw_4cp = 55.0 / 4 * 1000 * (300.0 / 900.0)
    hashing = 10 * REV_100THS_STEP - 10 * 3000e-6 * 20 * DT_H
    asleep_mw = 10 * 20e-6
    expected = 2 * hashing - asleep_mw * 20 * DT_H - asleep_mw * per_mw_4cp - 10 * 0.005
    assert result.objective_usd == pytest.approx(expected, rel=1e-9)
    assert result.schedule.value_usd["cycling"].sum() == pytest.approx(-0.05)


def test_waking_for_one_step_does_not_pay_its_wear():
    """At 0.10 USD per wake-up one step of hashing (0.0124 USD net per miner) does not pay:
    after the 4CP step the miners stay asleep to the horizon end."""
    options = replace(HAND, wake_cost_usd_per_miner=0.10)
    result = _solve(
        _facility((_asic(),)),
        [20.0, 20.0, 20.0],
        options=options,
        four_cp_probability=np.array([0.0, 1.0, 0.0]),
    )
    assert result.schedule.asic_active[:, 0].tolist() == [10, 0, 0]


def test_ramp_limit_forces_a_partial_ramp():
    """From all asleep, mining IT may rise 0.0062 MW/min = 0.031 MW per step: 10 of 20
    3 kW miners in step 0, all 20 from step 1."""
    miners = _asic(sleep_w=0.0, count=20, active=0)
    result = _solve(_facility((miners,)), [20.0] * 3, ramp_up_mw_per_min={"site": 0.0062})
    assert result.schedule.asic_active[:, 0].tolist() == [10, 20, 20]
    per_miner = REV_100THS_STEP - 3000e-6 * 20 * DT_H
    assert result.objective_usd == pytest.approx((10 + 20 + 20) * per_miner, rel=1e-9)


def test_grid_request_sheds_mining_and_earns_the_payment():
    """A full curtailment request paying 1,000 USD/MWh: all miners sleep; the 20 W each still
    drawn (0.0002 MW) is a shortfall charged at the payment rate (twin.accounting)."""
    result = _solve(
        _facility((_asic(),)),
        [20.0, 20.0],
        curtail_request_fraction=np.array([[0.0], [1.0]]),
        curtail_payment_usd_per_mwh=np.array([[0.0], [1000.0]]),
    )
    schedule = result.schedule
    assert schedule.asic_active[:, 0].tolist() == [10, 0]
    assert schedule.grid_shortfall_mw[:, 0] == pytest.approx([0.0, 0.0002], abs=1e-12)
    baseline_mw = 10 * 3000e-6
    dr = (baseline_mw - 0.0002) * 1000 * DT_H - 0.0002 * 1000 * DT_H  # paid shed, charged gap
    expected = 10 * REV_100THS_STEP - 0.03 * 20 * DT_H - 0.0002 * 20 * DT_H + dr
    assert result.objective_usd == pytest.approx(expected, rel=1e-9)
    assert schedule.value_usd["demand_response"].sum() == pytest.approx(dr, rel=1e-9)


def test_reserve_offer_is_the_curtailable_mining_load_net_of_deployment_cost():
    """ECRS at 10 USD/MW-h is backed by the hashing miners' draw above sleep (0.0298 MW).
    Deployed 10 % of the time, each MWh shed loses the 30 J/TH miners' value
    0.05 / (30 x 24 / 1e6) = 69.4 USD/MWh less the 20 USD/MWh not bought."""
    options = replace(HAND, services=(AncillaryService("ECRS", 600.0, 0.1),))
    result = _solve(_facility((_asic(),)), [20.0], options=options, ancillary={"ECRS": 10.0})
    offer = result.plan.facility("site").ancillary_offer_mw["ECRS"]
    assert offer == pytest.approx(10 * 2980e-6, rel=1e-9)
    lost_usd_per_mwh = HASHPRICE / (30.0 * 24 / 1e6) - 20.0
    expected = (
        10 * REV_100THS_STEP - 0.03 * 20 * DT_H + offer * DT_H * (10.0 - 0.1 * lost_usd_per_mwh)
    )
    assert result.objective_usd == pytest.approx(expected, rel=1e-9)


def test_reserve_needing_a_faster_response_than_gpus_gets_no_gpu_backing():
    """RRS (0.5 s) can only be backed by mining (0.5 s), not by GPU work (60 s): a GPU-only
    site offers no RRS even at a high price, but offers ECRS from its spot GPUs."""
    options = replace(
        HAND,
        services=(AncillaryService("RRS", 0.5, 0.0), AncillaryService("ECRS", 600.0, 0.0)),
    )
    facility = _facility(pools=(_pool(rental=2.0),))
    result = _solve(facility, [20.0], options=options, ancillary={"RRS": 50.0, "ECRS": 5.0})
    offers = result.plan.facility("site").ancillary_offer_mw
    assert offers["RRS"] == 0.0
    assert offers["ECRS"] == pytest.approx(10 * 1000e-6, rel=1e-9)


def test_batch_work_waits_out_a_price_spike():
    """At 3,000 USD/MWh a 1 kW GPU costs 3 USD/h to run and batch work pays 2.5: the ten
    GPUs' work waits one step (0.05 USD per GPU-h per hour waited) and runs at 10 USD/MWh."""
    options = replace(HAND, deferral_usd_per_gpu_hour_h=0.05)
    facility = _facility(pools=(_pool(),))
    result = _solve(
        facility,
        [3000.0, 10.0],
        options=options,
        batch_gpus=np.array([[10.0], [0.0]]),
        gpu_prices_usd_per_gpu_hour={"batch": 2.5},
    )
    schedule = result.schedule
    assert schedule.gpus_by_use[:, 0, 2] == pytest.approx([0.0, 10.0], abs=1e-9)
    assert schedule.backlog_gpu_h[:, 0, 0] == pytest.approx([10 * DT_H, 0.0], abs=1e-9)
    expected = 10 * 2.5 * DT_H - 0.010 * 10 * DT_H - 0.05 * (10 * DT_H) * DT_H
    assert result.objective_usd == pytest.approx(expected, rel=1e-9)


def test_mixed_tiers_become_one_power_target_with_the_same_power():
    """Cap 0.0275 MW for ten 3 kW miners at tiers 1.0 / 0.85 / 0.7: the plan's single
    target is the count-weighted mean tier, so its power (optimizer.power) equals the
    schedule's and stays under the cap; hashrate is at least the schedule's."""
    options = replace(HAND, power_tiers=(1.0, 0.85, 0.7))
    facility = _facility((_asic(sleep_w=0.0),), cap_mw=0.0275)
    result = _solve(facility, [10.0], options=options)
    plan = result.plan.facility("site")
    schedule = result.schedule
    plan_mw = asic_mw(
        facility.asic_classes[0], plan.asic_active["m100"], plan.asic_power_fraction["m100"], 1.0
    )
    assert plan_mw == pytest.approx(schedule.mining_it_mw[0, 0], rel=1e-9)
    assert plan_mw <= 0.0275
    plan_ths = plan.asic_active["m100"] * 100 * plan.asic_power_fraction["m100"] ** 0.8
    assert plan_ths >= schedule.hashrate_ths[0, 0] - 1e-9


# --------------------------------------------------------------------------- random instances


def _random_case(rng: np.random.Generator, n_steps: int = 6):
    """Two facilities (index; fixed block with random sell-back), random fleets, prices
    (some negative), 4CP, a grid event, reserves, a ramp limit and GPU demand."""
    facilities = []
    for f in range(2):
        asics = tuple(
            _asic(
                f"m{f}{c}",
                ths=float(rng.uniform(50, 250)),
                watts=float(rng.uniform(2500, 3600)),
                sleep_w=float(rng.uniform(0, 40)),
                count=int(rng.integers(5, 40)),
                active=int(rng.integers(0, 5)),
            )
            for c in range(int(rng.integers(1, 3)))
        )
        pools = tuple(
            _pool(
                f"g{f}{p}",
                tdp_w=float(rng.uniform(300, 1000)),
                idle_w=float(rng.uniform(30, 100)),
                count=int(rng.integers(4, 30)),
                rental=float(rng.uniform(0.5, 3.0)),
            )
            for p in range(int(rng.integers(1, 3)))
        )
        full_mw = (
            sum(a.count * a.power_w_each for a in asics) * 1.1e-6
            + sum(p.count * p.tdp_w for p in pools) * 1.3e-6
        )
        facilities.append(
            _facility(
                asics,
                pools,
                cap_mw=float(rng.uniform(0.5, 1.0) * full_mw + 0.002),
                facility_id=f"f{f}",
                pue_mining=1.1,
                pue_ai=1.3,
            )
        )
    snapshot = _snapshot(*facilities, ancillary={"RRS": 8.0, "ECRS": 6.0, "NSPIN": 3.0})
    n_pools = sum(len(f.gpu_pools) for f in facilities)
    healthy = np.array([p.count for f in facilities for p in f.gpu_pools], dtype=float)
    request = np.zeros((n_steps, 2))
    request[n_steps - 2, 0] = 0.5
    horizon = HorizonData(
        step_s=300.0,
        price_usd_per_mwh=rng.uniform(-40, 300, (n_steps, 2)),
        hashprice_usd_per_ths_day=np.full(n_steps, HASHPRICE),
        pue_mining=rng.uniform(1.05, 1.2, (n_steps, 2)),
        pue_ai=rng.uniform(1.2, 1.4, (n_steps, 2)),
        four_cp_probability=rng.uniform(0, 0.3, n_steps),
        curtail_request_fraction=request,
        curtail_payment_usd_per_mwh=np.full((n_steps, 2), 500.0),
        ancillary_usd_per_mw_h={s: rng.uniform(0, 20, n_steps) for s in ("RRS", "ECRS")},
        must_serve_gpus=np.floor(rng.uniform(0, 0.3, (n_steps, n_pools)) * healthy),
        reserved_gpus=np.floor(rng.uniform(0, 0.1, (n_steps, n_pools)) * healthy),
        batch_gpus=np.floor(rng.uniform(0, 0.3, (n_steps, n_pools)) * healthy),
        training_gpus=np.floor(rng.uniform(0, 0.3, (n_steps, n_pools)) * healthy),
        batch_backlog_gpu_h=rng.uniform(0, 2, n_pools),
    )
    contracts = {
        "f0": ContractTerms(4.0),
        "f1": ContractTerms(
            float(rng.uniform(-5, 5)),
            block_mw=0.5 * facilities[1].power_cap_mw,
            block_price_usd_per_mwh=30.0,
            sellback=bool(rng.integers(0, 2)),
        ),
    }
    inputs = inputs_from_snapshot(snapshot, horizon, contracts, ramp_up_mw_per_min={"f1": 0.002})
    return snapshot, inputs


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_pyomo_model_and_highspy_matrices_reach_the_same_optimum(seed):
    """On random small instances the Pyomo reference and the numpy/highspy fast path (two
    independent statements of the model) agree on the optimum within 1e-6 relative; the
    money streams read back from either add up to its objective."""
    _, inputs = _random_case(np.random.default_rng(seed))
    options = DispatchOptions(fine_steps=2, block_steps=2, mip_rel_gap=0.0, integer_blocks=2)
    fast = DispatchSolver(options, backend="highspy").solve(inputs)
    reference = DispatchSolver(options, backend="pyomo").solve(inputs)
    assert fast.status == reference.status == "optimal", (fast.message, reference.message)
    assert fast.objective_usd == pytest.approx(reference.objective_usd, rel=1e-6, abs=1e-6)
    for result in (fast, reference):
        streams = sum(v.sum() for v in result.schedule.value_usd.values())
        assert streams == pytest.approx(result.objective_usd, rel=1e-6, abs=1e-6)


def test_pyomo_model_is_built_once_and_re_solved_with_new_parameters():
    """Two solves of the same shape reuse one persistent Pyomo model and still follow the
    new prices (the second objective equals a fresh highspy solve of the new inputs)."""
    options = DispatchOptions(fine_steps=2, block_steps=2, mip_rel_gap=0.0, integer_blocks=2)
    solver = DispatchSolver(options, backend="pyomo")
    _, first = _random_case(np.random.default_rng(7))
    solver.solve(first)
    second = replace(first, price_usd_per_mwh=first.price_usd_per_mwh + 50.0)
    result = solver.solve(second)
    assert solver.model_builds == 1
    fresh = DispatchSolver(options).solve(second)
    assert result.objective_usd == pytest.approx(fresh.objective_usd, rel=1e-6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), cap_share=st.floats(0.3, 1.2))
def test_no_plan_and_no_scheduled_block_exceeds_a_cap(seed, cap_share):
    """Whatever the prices and fleets, the plan's draw by the twin's own arithmetic
    (optimizer.power: miners x PUE + GPU budget) and every block of the schedule stay
    within each facility's cap."""
    snapshot, inputs = _random_case(np.random.default_rng(seed))
    caps = inputs.power_cap_mw * cap_share
    facilities = tuple(
        replace(f, power_cap_mw=float(c)) for f, c in zip(snapshot.facilities, caps, strict=True)
    )
    snapshot = replace(snapshot, facilities=facilities)
    inputs = replace(inputs, snapshot=snapshot, power_cap_mw=caps)
    result = DispatchSolver(DispatchOptions(fine_steps=2, block_steps=2)).solve(inputs)
    assert result.status in ("optimal", "feasible"), result.message
    for f, state in enumerate(snapshot.facilities):
        plan = result.plan.facility(state.facility_id)
        mining_mw = sum(
            asic_mw(
                c,
                plan.asic_active[c.model_id],
                plan.asic_power_fraction[c.model_id],
                state.pue_mining,
            )
            for c in state.asic_classes
        )
        assert mining_mw + plan.gpu_power_budget_mw <= state.power_cap_mw
        assert np.all(result.schedule.cap_mw_used[:, f] <= state.power_cap_mw)
        assert np.all(result.schedule.facility_mw[:, f] <= state.power_cap_mw)


# --------------------------------------------------------------------------- fallbacks


def _must_serve_case(must_serve: float):
    facility = _facility((_asic(),), (_pool(),))
    horizon = _horizon([20.0, 20.0], must_serve_gpus=np.full((2, 1), must_serve))
    return inputs_from_snapshot(_snapshot(facility), horizon, {"site": INDEX})


def test_infeasible_solve_returns_the_last_feasible_plan():
    """With unmet must-serve demand forbidden, asking for 12 of 10 GPUs is infeasible: the
    solver says so and hands back the plan of its last feasible solve."""
    solver = DispatchSolver(replace(HAND, allow_unmet_must_serve=False))
    good = solver.solve(_must_serve_case(4.0))
    assert good.status == "optimal" and not good.used_fallback
    bad = solver.solve(_must_serve_case(12.0))
    assert bad.status == "infeasible"
    assert bad.used_fallback and bad.schedule is None
    assert "last feasible plan" in bad.message
    assert bad.plan.facility("site").asic_active == good.plan.facility("site").asic_active
    assert bad.plan.facility("site").gpu_power_budget_mw == pytest.approx(
        good.plan.facility("site").gpu_power_budget_mw
    )


def test_infeasible_first_solve_returns_a_safe_plan():
    """Without any earlier feasible solve the fallback is the safe plan: every miner asleep."""
    solver = DispatchSolver(replace(HAND, allow_unmet_must_serve=False))
    result = solver.solve(_must_serve_case(12.0))
    assert result.status == "infeasible" and result.used_fallback
    assert "safe plan" in result.message
    assert result.plan.facility("site").asic_active == {"m100": 0}


def test_unmet_must_serve_is_penalised_not_infeasible_by_default():
    """With the SLA slack allowed, the same demand solves: 10 GPUs serve, 2 are unmet at
    the SLA penalty."""
    result = DispatchSolver(HAND).solve(_must_serve_case(12.0))
    assert result.status == "optimal"
    assert result.schedule.unmet_must_serve_gpus[:, 0] == pytest.approx([2.0, 2.0])


def test_timeout_returns_the_last_feasible_plan():
    """A zero time limit stops HiGHS before any solution: status ``timeout`` and the plan of
    the last feasible solve."""
    _, inputs = _random_case(np.random.default_rng(11), n_steps=24)
    solver = DispatchSolver(DispatchOptions(integer_blocks=None))
    good = solver.solve(inputs)
    assert good.status in ("optimal", "feasible")
    late = solver.solve(inputs, time_limit_s=0.0)
    assert late.status == "timeout"
    assert late.used_fallback and "last feasible plan" in late.message
    for state in inputs.snapshot.facilities:
        assert (
            late.plan.facility(state.facility_id).asic_active
            == good.plan.facility(state.facility_id).asic_active
        )


# --------------------------------------------------------------------------- inputs


def test_inputs_name_the_field_with_a_wrong_shape():
    """A horizon array of the wrong shape is rejected with the field's name."""
    facility = _facility((_asic(),))
    bad = _horizon([20.0, 30.0], pue_mining=np.ones((3, 1)))
    with pytest.raises(DispatchInputError, match=r"horizon\.pue_mining"):
        inputs_from_snapshot(_snapshot(facility), bad, {"site": INDEX})


def test_inputs_need_a_contract_for_every_facility():
    """A facility without a contract is an error naming it."""
    with pytest.raises(DispatchInputError, match="site"):
        inputs_from_snapshot(_snapshot(_facility((_asic(),))), _horizon([20.0]), {})


def test_horizon_blocks_are_fine_first_then_merged():
    """288 five-minute steps with 24 fine steps and hourly blocks make 24 + 22 blocks that
    cover the whole day."""
    facility = _facility((_asic(),))
    inputs = inputs_from_snapshot(_snapshot(facility), _horizon([30.0] * 288), {"site": INDEX})
    result = solve_dispatch(inputs, DispatchOptions())
    schedule = result.schedule
    assert schedule.block_duration_s.size == 46
    assert schedule.block_duration_s[:24].tolist() == [300.0] * 24
    assert schedule.block_duration_s[24:].tolist() == [3600.0] * 22
    assert schedule.block_of_step.size == 288 and schedule.block_of_step[-1] == 45
