"""Policies: the cap always holds, strike hysteresis, shedding order, grid events."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.policies import AlwaysOn, Strike, breakeven_usd_per_mwh, make_policy
from optimizer.power import asic_mw, gpu_full_mw
from optimizer.types import FacilityState, GpuPoolState, Snapshot
from tests.optimizer import builders


def _facility(price: float, cap_mw: float = 20.0, **changes: object) -> FacilityState:
    asics = (
        builders.asic_class("antminer_s9", 13.5, 1323.0, 1000),
        builders.asic_class("antminer_s19j_pro", 104.0, 3068.0, 2000),
        builders.asic_class("antminer_s21", 200.0, 3500.0, 2000),
    )
    pools = (GpuPoolState("h100_sxm", 700.0, 80.0, 256, 100, 0, 2.1),)
    return builders.facility_state(
        asics,
        pools,
        price_usd_per_mwh=price,
        cap_mw=cap_mw,
        pue_mining=1.1,
        pue_ai=1.3,
        ambient_c=30.0,
        **changes,
    )


def _snapshot(facility: FacilityState, hashprice: float = 0.05) -> Snapshot:
    return builders.snapshot((facility,), builders.market_state(hashprice))


def _plan_mw(facility: FacilityState, plan_active: dict[str, int], gpu_budget: float) -> float:
    return gpu_budget + sum(
        asic_mw(c, plan_active[c.model_id], 1.0, facility.pue_mining) for c in facility.asic_classes
    )


@settings(max_examples=200, deadline=None)
@given(
    price=st.floats(-50, 5000),
    cap=st.floats(0.5, 40.0),
    curtail=st.floats(0.0, 1.0),
    policy_name=st.sampled_from(["always_on", "strike"]),
)
def test_plans_never_exceed_the_power_cap(
    price: float, cap: float, curtail: float, policy_name: str
) -> None:
    """Whatever the price, cap and grid request, a plan's worst-case draw fits the cap
    (as long as the idle floor of the hall fits at all)."""
    facility = _facility(price, cap_mw=cap, curtail_request_fraction=curtail)
    plan = make_policy(policy_name, {}).decide(_snapshot(facility)).facility("site")
    total = _plan_mw(facility, plan.asic_active, plan.gpu_power_budget_mw)
    sleep_floor = sum(asic_mw(c, 0, 1.0, facility.pue_mining) for c in facility.asic_classes)
    assert total <= max(cap, sleep_floor + plan.gpu_power_budget_mw) + 1e-9


def test_cap_trims_least_efficient_models_first() -> None:
    """With room for only part of the fleet, the S9s sleep before any S21."""
    facility = _facility(20.0, cap_mw=gpu_full_mw(_facility(0).gpu_pools, 1.3) + 8.0)
    plan = AlwaysOn().decide(_snapshot(facility)).facility("site")
    assert plan.asic_active["antminer_s9"] == 0
    assert plan.asic_active["antminer_s21"] == 2000
    assert 0 < plan.asic_active["antminer_s19j_pro"] < 2000


def test_strike_sheds_in_efficiency_order_with_hysteresis() -> None:
    """A price between the S9 and S19j Pro strikes curtails only the S9s, after
    ``intervals_above`` intervals, and restores them only after ``intervals_below``."""
    hashprice = 0.05
    facility = _facility(0.0, cap_mw=100.0)
    s9, s19 = facility.asic_classes[0], facility.asic_classes[1]
    s9_strike = breakeven_usd_per_mwh(s9, hashprice, facility.pue_mining)
    s19_strike = breakeven_usd_per_mwh(s19, hashprice, facility.pue_mining)
    assert s9_strike < s19_strike
    between = (s9_strike + s19_strike) / 2
    policy = Strike(intervals_above=2, intervals_below=3, low_factor=0.9)

    def active_s9(price: float) -> int:
        state = _facility(price, cap_mw=100.0)
        plan = policy.decide(_snapshot(state, hashprice)).facility("site")
        assert plan.asic_active["antminer_s19j_pro"] == 2000
        return plan.asic_active["antminer_s9"]

    assert active_s9(between) == 1000  # one interval above: not yet
    assert active_s9(between) == 0  # two in a row: curtailed
    low = s9_strike * 0.95  # inside the hysteresis band: stays off
    assert [active_s9(low) for _ in range(4)] == [0, 0, 0, 0]
    below = s9_strike * 0.5
    assert [active_s9(below) for _ in range(3)] == [0, 0, 1000]


def test_grid_event_sheds_requested_share_least_efficient_first() -> None:
    """A 50 % curtailment request keeps at most half the healthy miners, S9s shed first."""
    facility = _facility(30.0, cap_mw=100.0, curtail_request_fraction=0.5)
    plan = AlwaysOn().decide(_snapshot(facility)).facility("site")
    assert sum(plan.asic_active.values()) == 2500
    assert plan.asic_active["antminer_s9"] == 0
    assert plan.asic_active["antminer_s21"] == 2000
    assert all(count == 0 for count in plan.gpu_spot.values())


def test_strike_sleeps_miners_in_four_cp_intervals() -> None:
    """In a 4CP interval the strike policy sleeps every miner, whatever the price."""
    facility = _facility(10.0, cap_mw=100.0, four_cp_interval=True)
    plan = Strike().decide(_snapshot(facility)).facility("site")
    assert sum(plan.asic_active.values()) == 0


def test_idle_gpus_are_offered_on_spot_unless_energy_costs_more() -> None:
    """Idle GPUs go to spot at normal prices; at 5,000 USD/MWh renting them loses money."""
    normal = Strike().decide(_snapshot(_facility(40.0, cap_mw=100.0))).facility("site")
    assert normal.gpu_spot["h100_sxm"] == 256 - 100
    spike = Strike().decide(_snapshot(_facility(5000.0, cap_mw=100.0))).facility("site")
    assert spike.gpu_spot["h100_sxm"] == 0


def test_unknown_policy_is_named() -> None:
    """An unknown policy name raises an error naming it and listing the known ones."""
    try:
        make_policy("magic", {})
    except ValueError as error:
        assert "magic" in str(error) and "strike" in str(error)
    else:
        raise AssertionError("expected ValueError")


def test_greedy_counts_the_four_cp_charge_as_energy_cost() -> None:
    """Greedy mines at a normal price but sleeps every miner in a 4CP interval, where each
    MWh drawn also accrues the transmission charge."""
    from optimizer.policies import Greedy

    normal = Greedy().decide(_snapshot(_facility(20.0, cap_mw=100.0))).facility("site")
    assert normal.asic_active["antminer_s21"] == 2000
    peak = _facility(20.0, cap_mw=100.0, four_cp_interval=True)
    plan = Greedy().decide(_snapshot(peak)).facility("site")
    assert sum(plan.asic_active.values()) == 0


def test_within_cap_trims_an_oversized_plan_and_keeps_a_sound_one() -> None:
    """The controller's guard returns a fitting plan unchanged and trims one that is not."""
    from dataclasses import replace

    from optimizer.power import within_cap

    facility = _facility(20.0, cap_mw=12.0)
    sound = AlwaysOn().decide(_snapshot(facility)).facility("site")
    assert within_cap(facility, sound) is sound
    greedy_for_power = replace(
        sound, asic_active={c.model_id: c.count for c in facility.asic_classes}
    )
    trimmed = within_cap(facility, greedy_for_power)
    assert _plan_mw(facility, trimmed.asic_active, trimmed.gpu_power_budget_mw) <= 12.0 + 1e-9
    assert trimmed.asic_active["antminer_s9"] == 0
