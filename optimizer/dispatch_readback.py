"""Read a solved dispatch model back: solver status, the horizon schedule, the first plan.

Both solver paths (highspy direct, Pyomo) hand over a :class:`SolverOutcome` whose
``values`` hold one array per variable family in the shapes of optimizer.dispatch_highs;
everything after that — schedule arrays, money per stream, the :class:`Plan` for the first
interval — is computed here once, with numpy.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from optimizer.dispatch_blocks import MW_PER_W, BlockData, integer_block_count
from optimizer.dispatch_coefficients import (
    USE_BATCH,
    USE_REALTIME,
    USE_RESERVED,
    USE_SPOT,
    USE_TRAINING,
    coefficients,
)
from optimizer.dispatch_types import GPU_USES, DispatchSchedule, DispatchStatus
from optimizer.types import FacilityPlan, Plan

COUNT_TOLERANCE = 1e-6
"""Solver values within this of an integer count as that integer [-]."""

ConditionT = TypeVar("ConditionT")


@dataclass(frozen=True, eq=False)
class SolverOutcome:
    """What a solver path returns: status, objective and the variable values (or None)."""

    status: DispatchStatus
    objective_usd: float
    mip_gap: float
    message: str
    values: dict[str, np.ndarray] | None


def dispatch_status(
    condition: ConditionT,
    optimal: ConditionT,
    infeasible: Collection[ConditionT],
    stopped_early: Collection[ConditionT],
    has_solution: bool,
) -> DispatchStatus:
    """A solver's termination condition in the twin's terms (:data:`DispatchStatus`).

    Args:
        condition: how the solve ended, in the solver's own vocabulary.
        optimal: the solver's "proven optimal" condition.
        infeasible: its conditions meaning no plan meets the hard constraints.
        stopped_early: its conditions for a solve cut short (time, iteration or solution
            limit, interrupt): ``feasible`` with an incumbent, ``timeout`` without.
        has_solution: the solver holds a feasible solution.

    Any other condition is an ``error``.
    """
    if condition == optimal:
        return "optimal"
    if condition in infeasible:
        return "infeasible"
    if condition in stopped_early:
        return "feasible" if has_solution else "timeout"
    return "error"


def schedule_from_values(blocks: BlockData, values: dict[str, np.ndarray]) -> DispatchSchedule:
    """The horizon schedule and its money per stream from solved variable values."""
    x = blocks.inputs
    o = blocks.options
    k = coefficients(blocks)
    n_f = len(x.facility_ids)
    cf, pf = x.class_facility, x.pool_facility
    dt = blocks.duration_h
    n_b = blocks.n_blocks

    miners = np.clip(values["n"], 0.0, x.healthy_miners[None, :, None])
    integer_blocks = integer_block_count(blocks)
    miners[:integer_blocks] = np.rint(miners[:integer_blocks])
    gpus = np.clip(values["x"], 0.0, None)
    anc = np.clip(values["anc"], 0.0, None)
    above, under = np.clip(values["above"], 0.0, None), np.clip(values["under"], 0.0, None)

    def per_facility(array: np.ndarray, owner: np.ndarray) -> np.ndarray:
        """Sum ``array`` [B, items] into facilities [B, F]."""
        out = np.zeros((n_b, n_f))
        np.add.at(out.T, owner, array.T)
        return out

    active = miners.sum(axis=2)
    tiers_weighted = (miners * blocks.tiers[None, None, :]).sum(axis=2)
    fraction = np.divide(tiers_weighted, active, out=np.ones_like(active), where=active > 0)
    mining_it = k.sleep_it_mw[None, :] + per_facility((miners * k.it_per_miner).sum(2), cf)
    gpu_it = k.idle_it_mw[None, :] + per_facility((gpus * k.gpu_it_per_gpu).sum(2), pf)
    facility_mw = (
        k.energy_floor_mw
        + per_facility((miners * k.energy_per_miner).sum(2), cf)
        + per_facility((gpus * k.energy_per_gpu).sum(2), pf)
    )
    cap_used = (
        k.cap_floor_mw
        + per_facility((miners * k.cap_per_miner).sum(2), cf)
        + per_facility((gpus * k.cap_per_gpu).sum(2), pf)
    )
    hashrate = per_facility((miners * k.ths_per_miner[None]).sum(2), cf)
    idle = x.healthy_gpus[None, :] - gpus.sum(axis=2)
    by_use = np.concatenate([gpus, idle[:, :, None]], axis=2)
    unmet = np.maximum(0.0, blocks.must_serve_gpus - gpus[:, :, USE_REALTIME]) + np.maximum(
        0.0, blocks.reserved_gpus - gpus[:, :, USE_RESERVED]
    )
    backlog = np.maximum(0.0, values["backlog"])
    full_mining_it = np.bincount(
        cf, weights=x.healthy_miners * x.power_w_each * MW_PER_W, minlength=n_f
    )
    flexible = blocks.pue_mining * mining_it + per_facility(
        gpus[:, :, USE_SPOT] * k.spot_flexible_per_gpu, pf
    )
    in_event = blocks.curtail_fraction > 0
    shortfall = np.where(
        in_event,
        np.maximum(0.0, flexible - (1.0 - blocks.curtail_fraction) * blocks.flexible_baseline_mw),
        0.0,
    )
    wakes = np.maximum(0.0, active - np.vstack([x.active_now[None, :], active[:-1]]))

    dth = dt[:, None]
    fixed = blocks.is_fixed_block[None, :]
    gpu_money = gpus * k.gpu_revenue_per_gpu
    anc_mw_h = anc.sum(axis=3) * dt[:, None, None]  # [B, F, S]
    deploy = (
        anc
        * dt[:, None, None, None]
        * blocks.deploy_probability[None, None, :, None]
        * blocks.deploy_cost_usd_per_mwh[:, :, None, :]
    )
    index_energy = blocks.buy_usd_per_mwh * dth * facility_mw
    fixed_energy = (blocks.block_price_usd_per_mwh * blocks.block_mw)[None, :] * dth + (
        blocks.buy_usd_per_mwh * dth * above
    )
    value = {
        "mining": per_facility((miners * k.mining_revenue_per_miner).sum(2), cf),
        "realtime": per_facility(gpu_money[:, :, USE_REALTIME], pf),
        "reserved": per_facility(gpu_money[:, :, USE_RESERVED], pf),
        "batch": per_facility(gpu_money[:, :, USE_BATCH], pf),
        "training": per_facility(gpu_money[:, :, USE_TRAINING], pf),
        "spot": per_facility(gpu_money[:, :, USE_SPOT], pf),
        "ancillary": (anc_mw_h * blocks.ancillary_usd_per_mw_h[:, None, :]).sum(axis=2),
        "resale": np.where(fixed, blocks.sell_usd_per_mwh * dth * under, 0.0),
        "demand_response": blocks.dr_credit_usd_per_mw * blocks.flexible_baseline_mw
        - blocks.dr_payment_usd_per_mw * shortfall,
        "energy": -np.where(fixed, fixed_energy, index_energy),
        "four_cp": -blocks.four_cp_usd_per_mw * facility_mw,
        "ancillary_deployment": -deploy.sum(axis=(2, 3)),
        "cycling": -per_facility(wakes * o.wake_cost_usd_per_miner, cf),
        "sla_penalty": -per_facility(unmet * o.sla_penalty_usd_per_gpu_hour * dth, pf),
        "deferral": -per_facility(backlog.sum(axis=2) * o.deferral_usd_per_gpu_hour_h * dth, pf),
    }
    return DispatchSchedule(
        facility_ids=x.facility_ids,
        class_keys=x.class_keys,
        pool_keys=x.pool_keys,
        power_tiers=tuple(float(t) for t in blocks.tiers),
        block_start_s=blocks.block_start_step * x.step_s,
        block_duration_s=dt * 3600.0,
        block_of_step=blocks.block_of_step,
        asic_active=active,
        asic_by_tier=miners,
        asic_power_fraction=fraction,
        hashrate_ths=hashrate,
        mining_it_mw=mining_it,
        gpu_it_mw=gpu_it,
        facility_mw=facility_mw,
        cap_mw_used=cap_used,
        gpus_by_use=by_use,
        unmet_must_serve_gpus=unmet,
        backlog_gpu_h=backlog,
        ancillary_offer_mw={
            name: anc[:, :, s, :].sum(axis=2) for s, name in enumerate(blocks.service_names)
        },
        resale_mw=under,
        above_block_mw=above,
        curtailed_mw=full_mining_it[None, :] - mining_it,
        grid_shortfall_mw=shortfall,
        wakes=wakes,
        value_usd=value,
    )


def plan_from_schedule(
    blocks: BlockData, schedule: DispatchSchedule, policy: str, note: str = ""
) -> Plan:
    """The plan for the first block (the interval starting now), in the twin's terms.

    A class whose miners sit at several tiers gets one power target: the count-weighted
    mean tier. Power is linear in the target, so the draw is unchanged; hashrate is concave
    in it, so the plan hashes at least as much as the schedule. Counts are rounded down
    when relaxed (less power); the GPU budget covers every busy GPU at TDP, idle GPUs at
    idle power, times the AI hall's PUE — what optimizer.power assumes.
    """
    x = blocks.inputs
    miners = schedule.asic_by_tier[0]
    counts = np.floor(miners.sum(axis=1) + COUNT_TOLERANCE)
    gpus = schedule.gpus_by_use[0, :, : len(GPU_USES)]
    busy_it_mw = ((x.tdp_w - x.idle_w) * MW_PER_W) * gpus.sum(axis=1)
    plans = []
    for f, facility_id in enumerate(x.facility_ids):
        classes = np.flatnonzero(x.class_facility == f)
        pools = np.flatnonzero(x.pool_facility == f)
        budget_mw = float(blocks.pue_ai_cap[0, f]) * (
            float((x.healthy_gpus[pools] * x.idle_w[pools]).sum()) * MW_PER_W
            + float(busy_it_mw[pools].sum())
        )
        plans.append(
            FacilityPlan(
                facility_id=facility_id,
                asic_active={x.class_keys[c][1]: int(counts[c]) for c in classes},
                asic_power_fraction={
                    x.class_keys[c][1]: float(schedule.asic_power_fraction[0, c]) for c in classes
                },
                gpu_power_budget_mw=budget_mw,
                gpu_spot={
                    x.pool_keys[p][1]: int(np.floor(gpus[p, USE_SPOT] + COUNT_TOLERANCE))
                    for p in pools
                },
                ancillary_offer_mw={
                    name: float(offer[0, f]) for name, offer in schedule.ancillary_offer_mw.items()
                },
            )
        )
    return Plan(tuple(plans), policy, note)


__all__ = [
    "SolverOutcome",
    "dispatch_status",
    "plan_from_schedule",
    "schedule_from_values",
]
