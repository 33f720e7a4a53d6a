"""Power-cap arithmetic shared by every policy: what a plan draws and how to trim it to fit.

All powers here are facility-level (IT x PUE) in MW unless the name says ``it``. A plan is
within the cap when ``mining_mw(plan) + gpu_power_budget_mw <= power_cap_mw``; the scheduler
keeps GPU power inside ``gpu_power_budget_mw``, so the cap holds at every instant.
"""

from __future__ import annotations

from dataclasses import replace

from optimizer.types import AsicClassState, FacilityPlan, FacilityState, GpuPoolState

SPOT_LOAD_FRACTION = 0.85
"""A GPU rented on the spot market is assumed to draw this fraction of TDP on average."""


def asic_mw(cls: AsicClassState, active: int, power_fraction: float, pue: float) -> float:
    """Facility power of one ASIC class with ``active`` miners hashing at ``power_fraction``
    of nameplate [MW]; the other healthy miners sleep at their sleep power, failed draw 0.
    """
    healthy = cls.count - cls.failed
    sleeping = max(0, healthy - active)
    it_w = active * cls.power_w_each * power_fraction + sleeping * cls.sleep_power_w_each
    return it_w * pue / 1e6


def gpu_full_mw(pools: tuple[GpuPoolState, ...], pue: float) -> float:
    """Facility power if every healthy GPU ran at TDP [MW]: the AI hall's worst case."""
    return sum((p.count - p.failed) * p.tdp_w for p in pools) * pue / 1e6


def gpu_idle_mw(pools: tuple[GpuPoolState, ...], pue: float) -> float:
    """Facility power if every healthy GPU idled [MW]: the floor a GPU budget must cover."""
    return sum((p.count - p.failed) * p.idle_w for p in pools) * pue / 1e6


def gpu_busy_limits(
    pools: tuple[GpuPoolState, ...], budget_mw: float, pue: float
) -> dict[str, int]:
    """How many GPUs of each pool may be busy (at TDP) within ``budget_mw`` [GPUs].

    Idle GPUs draw ``idle_w``; each busy GPU adds ``tdp_w - idle_w``. The headroom above the
    all-idle floor is shared between pools in proportion to their healthy size.
    """
    healthy = {p.type_id: p.count - p.failed for p in pools}
    if budget_mw >= gpu_full_mw(pools, pue) - 1e-9:
        return healthy
    headroom_it_w = max(
        0.0, budget_mw * 1e6 / pue - sum(healthy[p.type_id] * p.idle_w for p in pools)
    )
    total_busy_w = sum(healthy[p.type_id] * (p.tdp_w - p.idle_w) for p in pools)
    limits = {}
    for pool in pools:
        share = healthy[pool.type_id] * (pool.tdp_w - pool.idle_w) / total_busy_w
        per_gpu_w = pool.tdp_w - pool.idle_w
        limits[pool.type_id] = min(healthy[pool.type_id], int(headroom_it_w * share // per_gpu_w))
    return limits


def fit_asics_to_budget(
    facility: FacilityState,
    active: dict[str, int],
    power_fraction: dict[str, float],
    budget_mw: float,
) -> dict[str, int]:
    """Trim active miners, least efficient model first, until mining fits ``budget_mw``.

    Returns a new ``active`` mapping; counts only go down. The result draws at most
    ``budget_mw`` unless even an all-asleep fleet exceeds it (then every miner sleeps).
    """
    result = dict(active)
    by_efficiency = sorted(facility.asic_classes, key=lambda c: -c.efficiency_j_per_th)

    def total() -> float:
        return sum(
            asic_mw(c, result[c.model_id], power_fraction[c.model_id], facility.pue_mining)
            for c in facility.asic_classes
        )

    excess = total() - budget_mw
    for cls in by_efficiency:
        if excess <= 1e-9:
            break
        per_miner_mw = (
            (cls.power_w_each * power_fraction[cls.model_id] - cls.sleep_power_w_each)
            * facility.pue_mining
            / 1e6
        )
        if per_miner_mw <= 0:
            continue
        shed = min(result[cls.model_id], int(-(-excess // per_miner_mw)))
        result[cls.model_id] -= shed
        excess -= shed * per_miner_mw
    return result


def within_cap(facility: FacilityState, plan: FacilityPlan) -> FacilityPlan:
    """The plan itself when it fits the facility's cap at today's PUE; otherwise a copy
    whose GPU budget is cut to what the cap leaves beside sleeping miners and whose miners
    are trimmed least efficient first (the last line of "no plan may exceed a cap")."""
    asleep_mw = sum(asic_mw(c, 0, 1.0, facility.pue_mining) for c in facility.asic_classes)
    gpu_budget_mw = min(plan.gpu_power_budget_mw, max(0.0, facility.power_cap_mw - asleep_mw))
    mining_mw = sum(
        asic_mw(
            c,
            plan.asic_active.get(c.model_id, 0),
            plan.asic_power_fraction.get(c.model_id, 1.0),
            facility.pue_mining,
        )
        for c in facility.asic_classes
    )
    if gpu_budget_mw == plan.gpu_power_budget_mw and (
        mining_mw + gpu_budget_mw <= facility.power_cap_mw + 1e-9
    ):
        return plan
    fractions = {
        c.model_id: plan.asic_power_fraction.get(c.model_id, 1.0) for c in facility.asic_classes
    }
    active = {c.model_id: plan.asic_active.get(c.model_id, 0) for c in facility.asic_classes}
    active = fit_asics_to_budget(facility, active, fractions, facility.power_cap_mw - gpu_budget_mw)
    return replace(plan, asic_active=active, gpu_power_budget_mw=gpu_budget_mw)
