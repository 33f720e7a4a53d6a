"""Facility envelope: ambient, PUE, power accounting under the cap, contract settlement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.facility import (
    EnergySettlement,
    FacilityError,
    FacilityPower,
    ambient_c,
    energy_balance_residual_mwh,
    facility_energy_mwh,
    facility_power_mw,
    headroom_mw,
    it_budget_mw,
    marginal_energy_usd_per_mwh,
    pue,
    settle_energy,
)
from models.fleet import N_GPU_USES, AsicFleet, GpuFleet, GpuUse, asic_class_power_bound_w
from models.hardware import ASIC_CATALOG, GPU_CATALOG
from twin.scenario import AmbientModel, FixedBlockContract, IndexContract

CENTRAL_STANDARD = timezone(timedelta(hours=-6))
START = datetime(2024, 1, 1, tzinfo=CENTRAL_STANDARD)


# --------------------------------------------------------------------------- ambient


@pytest.mark.parametrize(("day", "utc_offset_h"), [(20, -6), (200, -5)])
def test_daily_peak_is_at_1600_local_across_daylight_saving(day: int, utc_offset_h: int) -> None:
    """With no seasonal term the warmest minute of a day is 16:00 wall-clock time, in
    winter (CST) and in summer (CDT)."""
    cfg = AmbientModel(seasonal_amplitude_c=0.0)
    midnight_utc = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=day)
    offsets = np.arange(0.0, 86400.0, 60.0)
    t_s = (midnight_utc - START).total_seconds() + offsets
    warmest = midnight_utc + timedelta(
        seconds=float(offsets[np.argmax(ambient_c(cfg, START, t_s))])
    )
    assert (warmest + timedelta(hours=utc_offset_h)).hour == 16
    values = ambient_c(cfg, START, t_s)
    assert values.max() == pytest.approx(cfg.mean_c + cfg.daily_amplitude_c, abs=1e-6)
    assert values.min() == pytest.approx(cfg.mean_c - cfg.daily_amplitude_c, abs=1e-3)


def test_seasonal_peak_is_on_the_warmest_day() -> None:
    """With no daily term the warmest point of the year lies on warmest_day_of_year."""
    cfg = AmbientModel(daily_amplitude_c=0.0, warmest_day_of_year=190)
    t_s = np.arange(0.0, 366 * 86400.0, 3600.0)
    values = ambient_c(cfg, START, t_s)
    peak = START + timedelta(seconds=float(t_s[np.argmax(values)]))
    assert peak.timetuple().tm_yday in (190, 191)
    assert values.max() == pytest.approx(cfg.mean_c + cfg.seasonal_amplitude_c, abs=1e-3)


@settings(max_examples=30, deadline=None)
@given(t_s=st.lists(st.floats(-1e7, 4e8), min_size=1, max_size=20))
def test_ambient_array_matches_scalar(t_s: list[float]) -> None:
    """The vectorized path and the scalar path give the same temperatures."""
    cfg = AmbientModel()
    array = ambient_c(cfg, START, np.array(t_s))
    scalar = [ambient_c(cfg, START, t) for t in t_s]
    np.testing.assert_allclose(array, scalar, atol=1e-6)
    assert isinstance(scalar[0], float) and array.shape == (len(t_s),)


def test_ambient_needs_an_aware_start() -> None:
    """A naive start datetime is rejected."""
    with pytest.raises(FacilityError, match="start"):
        ambient_c(AmbientModel(), datetime(2024, 1, 1), 0.0)


# --------------------------------------------------------------------------- PUE and power


def test_pue_is_flat_below_reference_and_linear_above() -> None:
    """PUE equals base up to the reference temperature and rises by coeff per degree."""
    assert pue(1.1, 0.01, 25.0, 10.0) == 1.1
    assert pue(1.1, 0.01, 25.0, 25.0) == 1.1
    assert pue(1.1, 0.01, 25.0, 35.0) == pytest.approx(1.1 * 1.1)
    np.testing.assert_allclose(pue(1.2, 0.005, 20.0, np.array([0.0, 40.0])), [1.2, 1.2 * 1.1])
    with pytest.raises(FacilityError, match="base"):
        pue(0.9, 0.01, 25.0, 30.0)


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.floats(0.0, 100.0), min_size=4, max_size=4),
    bump=st.floats(0.0, 10.0),
    which=st.integers(0, 3),
)
def test_facility_power_is_monotone(values: list[float], bump: float, which: int) -> None:
    """Raising any IT power or PUE never lowers facility power, and the IT/overhead split
    adds up to the total."""
    base = [values[0], values[1], 1 + values[2] / 50, 1 + values[3] / 50]
    raised = list(base)
    raised[which] += bump
    assert facility_power_mw(*raised) >= facility_power_mw(*base)
    split = FacilityPower(*base)
    assert split.it_mw + split.overhead_mw == pytest.approx(split.total_mw)
    assert headroom_mw(500.0, *base) == pytest.approx(500.0 - split.total_mw)


def test_power_accounting_rejects_bad_input() -> None:
    """Negative IT power and PUE below 1 are errors naming the argument."""
    with pytest.raises(FacilityError, match="it_ai_mw"):
        facility_power_mw(1.0, -1.0, 1.1, 1.3)
    with pytest.raises(FacilityError, match="pue_mining"):
        FacilityPower(1.0, 1.0, 0.5, 1.3)
    with pytest.raises(FacilityError, match="power_cap_mw"):
        headroom_mw(0.0, 1.0, 1.0, 1.1, 1.3)


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(0, 40), min_size=3, max_size=3),
    initial_active=st.lists(st.integers(0, 40), min_size=3, max_size=3),
    fractions=st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3),
    gpu_nodes=st.integers(0, 4),
    gpu_limit=st.floats(0.5, 1.0),
    ambient=st.floats(-10.0, 45.0),
    margin=st.floats(0.0, 1.5),
    seed=st.integers(0, 2**32 - 1),
)
def test_commands_within_headroom_keep_power_under_cap(
    counts: list[int],
    initial_active: list[int],
    fractions: list[float],
    gpu_nodes: int,
    gpu_limit: float,
    ambient: float,
    margin: float,
    seed: int,
) -> None:
    """Active counts chosen to fit headroom_mw (each miner's worst case over a ramp, GPUs at
    their capped TDP) keep facility power (IT x PUE) under the cap at every instant of the
    following interval, ramp transients included, and on average."""
    specs = [ASIC_CATALOG[m] for m in ("antminer_s9", "antminer_s19j_pro", "antminer_s21")]
    fleet = AsicFleet.from_groups([(0, s, n, 1.0) for s, n in zip(specs, counts, strict=True)])
    h100 = GPU_CATALOG["h100_sxm"]
    gpus = GpuFleet.from_groups([(0, h100, 8 * gpu_nodes, 8)])
    for spec, n in zip(specs, initial_active, strict=True):
        fleet.set_active_count(0, spec.model_id, n, -1000.0)
    pue_mining = pue(1.08, 0.004, 25.0, ambient)
    pue_ai = pue(1.3, 0.004, 25.0, ambient)

    # plan: every miner asleep, GPUs at worst case; then add hashing miners while they fit
    targets = [
        s.min_power_fraction + f * (1 - s.min_power_fraction)
        for s, f in zip(specs, fractions, strict=True)
    ]
    sleeping_w = sum(s.sleep_power_w * n for s, n in zip(specs, counts, strict=True))
    gpu_worst_w = 8 * gpu_nodes * h100.tdp_w * max(gpu_limit, h100.min_power_fraction)
    floor_mw = facility_power_mw(sleeping_w / 1e6, gpu_worst_w / 1e6, pue_mining, pue_ai)
    cap_mw = max(floor_mw, 1e-3) * (1.0 + margin)
    room_mw = headroom_mw(cap_mw, sleeping_w / 1e6, gpu_worst_w / 1e6, pue_mining, pue_ai)
    room_it_w = it_budget_mw(room_mw, pue_mining) * 1e6
    for spec, n, target in zip(specs, counts, targets, strict=True):
        extra_w = asic_class_power_bound_w(spec, 1, 0, target) - spec.sleep_power_w
        active = min(n, int(room_it_w // extra_w)) if extra_w > 0 else n
        room_it_w -= active * extra_w
        fleet.set_power_fraction(0, spec.model_id, target, 0.0)
        fleet.set_active_count(0, spec.model_id, active, 0.0)

    rng = np.random.default_rng(seed)
    if gpu_nodes:
        gpus.set_power_limit(0, gpu_limit)
        shares = rng.dirichlet(np.ones(5)) * 8 * gpu_nodes
        uses = (GpuUse.INFERENCE, GpuUse.BATCH, GpuUse.TRAINING, GpuUse.SPOT, GpuUse.IDLE)
        gpus.apply_uses(0, dict(zip(uses, shares, strict=True)))
    busy = rng.uniform(0, 1, size=(gpus.n_pools, N_GPU_USES)) * gpus.counts_by_use() * 300.0
    gpu_mw = gpus.step(0.0, 300.0, busy, np.array([ambient])).mean_power_kw.sum() / 1e3

    for t_s in np.linspace(0.0, 300.0, 61):
        mining_mw = fleet.power_w_at(t_s).sum(dtype=np.float64) / 1e6
        assert facility_power_mw(mining_mw, gpu_mw, pue_mining, pue_ai) <= cap_mw * (1 + 1e-9)
    mean_mw = fleet.step(0.0, 300.0, np.array([ambient])).mean_power_kw.sum() / 1e3
    assert facility_power_mw(mean_mw, gpu_mw, pue_mining, pue_ai) <= cap_mw * (1 + 1e-9)


def test_energy_balance_closes_for_a_stepped_facility() -> None:
    """Facility energy equals IT energy of each use times its hall's PUE, and settlement
    bills exactly that energy."""
    fleet = AsicFleet.from_groups([(0, ASIC_CATALOG["antminer_s21"], 100, 0.9)])
    gpus = GpuFleet.from_groups([(0, GPU_CATALOG["h100_sxm"], 64, 8)])
    fleet.set_active_count(0, "antminer_s21", 60, 0.0)
    gpus.apply_uses(0, {GpuUse.INFERENCE: 10, GpuUse.TRAINING: 32, GpuUse.SPOT: 8})
    busy = np.zeros((1, N_GPU_USES))
    busy[0, GpuUse.INFERENCE], busy[0, GpuUse.TRAINING] = 2000.0, 32 * 300.0
    asic = fleet.step(0.0, 300.0, np.array([30.0]))
    gpu = gpus.step(0.0, 300.0, busy, np.array([30.0]))
    pue_mining, pue_ai = pue(1.08, 0.004, 25.0, 30.0), pue(1.3, 0.004, 25.0, 30.0)
    it_mwh = {"mining": float(asic.energy_kwh.sum()) / 1e3}
    for use in GpuUse:
        it_mwh[use.name.lower()] = float(gpu.energy_kwh_by_use[0, use]) / 1e3
    pue_by_use = {use: (pue_mining if use == "mining" else pue_ai) for use in it_mwh}
    it_mining_mw = float(asic.mean_power_kw.sum()) / 1e3
    facility_mw = facility_power_mw(
        it_mining_mw, float(gpu.mean_power_kw.sum()) / 1e3, pue_mining, pue_ai
    )
    settled = settle_energy(IndexContract(), facility_mw, 50.0, 300.0 / 3600.0)
    assert energy_balance_residual_mwh(settled.energy_mwh, it_mwh, pue_by_use) == pytest.approx(
        0.0, abs=1e-12
    )
    assert facility_energy_mwh(it_mwh, pue_by_use) > sum(it_mwh.values())
    with pytest.raises(FacilityError, match="mining"):
        facility_energy_mwh(it_mwh, {})


# --------------------------------------------------------------------------- contracts


def test_settle_index_contract() -> None:
    """Index: every MWh at price + adder, nothing resold."""
    result = settle_energy(IndexContract(adder_usd_per_mwh=4.0), 12.5, 40.0, 0.25)
    assert result == EnergySettlement(3.125, 3.125 * 44.0, 0.0)
    assert result.net_cost_usd == 137.5


def test_settle_fixed_block_below_block_with_sellback() -> None:
    """Below the block: the whole block is paid, the unused part sold at real time."""
    contract = FixedBlockContract(block_mw=20.0, price_usd_per_mwh=35.0, adder_usd_per_mwh=4.0)
    result = settle_energy(contract, 12.0, 100.0, 0.5)
    assert result.energy_mwh == 6.0
    assert result.cost_energy_usd == 10.0 * 35.0
    assert result.revenue_resale_usd == 4.0 * 100.0
    assert result.net_cost_usd == -50.0


def test_settle_fixed_block_without_sellback_pays_take_or_pay() -> None:
    """Without sell-back the unused block is simply lost."""
    contract = FixedBlockContract(block_mw=20.0, price_usd_per_mwh=35.0, sellback=False)
    result = settle_energy(contract, 12.0, 100.0, 0.5)
    assert (result.cost_energy_usd, result.revenue_resale_usd) == (350.0, 0.0)


def test_settle_fixed_block_above_block() -> None:
    """Above the block the excess is bought at price + adder; nothing is resold."""
    contract = FixedBlockContract(block_mw=20.0, price_usd_per_mwh=35.0, adder_usd_per_mwh=4.0)
    result = settle_energy(contract, 26.0, 60.0, 0.25)
    assert result.energy_mwh == 6.5
    assert result.cost_energy_usd == 5.0 * 35.0 + 1.5 * 64.0
    assert result.revenue_resale_usd == 0.0


def test_settle_sellback_at_negative_price_costs_money() -> None:
    """Selling back at a negative price is negative revenue; consuming is then cheaper."""
    contract = FixedBlockContract(block_mw=10.0, price_usd_per_mwh=30.0)
    idle = settle_energy(contract, 0.0, -20.0, 1.0)
    busy = settle_energy(contract, 10.0, -20.0, 1.0)
    assert idle.revenue_resale_usd == -200.0
    assert busy.net_cost_usd < idle.net_cost_usd


def test_marginal_energy_cost() -> None:
    """One more MWh costs price + adder on index or above the block, the forgone
    sell-back price inside a block, and nothing inside a block without sell-back."""
    index = IndexContract(adder_usd_per_mwh=4.0)
    block = FixedBlockContract(block_mw=10.0, price_usd_per_mwh=30.0, adder_usd_per_mwh=5.0)
    no_sellback = FixedBlockContract(block_mw=10.0, price_usd_per_mwh=30.0, sellback=False)
    assert marginal_energy_usd_per_mwh(index, 3.0, 50.0) == 54.0
    assert marginal_energy_usd_per_mwh(block, 3.0, 50.0) == 50.0
    assert marginal_energy_usd_per_mwh(block, 10.0, 50.0) == 55.0
    assert marginal_energy_usd_per_mwh(no_sellback, 3.0, 50.0) == 0.0


def test_settle_rejects_bad_input() -> None:
    """Negative power and a non-positive interval are errors naming the argument."""
    with pytest.raises(FacilityError, match="facility_mw"):
        settle_energy(IndexContract(), -1.0, 10.0, 1.0)
    with pytest.raises(FacilityError, match="dt_h"):
        settle_energy(IndexContract(), 1.0, 10.0, 0.0)
