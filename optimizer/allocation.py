"""Allocation advice: one facility's part of a dispatch MILP solve, step by step.

:func:`recommend_allocation` cuts the horizon data to the asked time horizon, solves the
dispatch model for all facilities together (they share nothing but the solve, so the
facility's plan is its optimum) and reads the facility's rows out of the
:class:`~optimizer.dispatch.DispatchSchedule` into a frozen :class:`AllocationPlan`.

Steps are the model's time blocks (optimizer.dispatch: the first ``fine_steps`` horizon
steps one by one, later ones merged, hourly by default); decisions are constant within a
block and its money is exact for that. Miner and GPU counts are integers in the first
``integer_blocks`` blocks and may be fractional (a relaxation) after them. When the solve
finds no schedule the plan carries the solver's fallback plan for the first interval, no
steps and a NaN revenue, and says so in ``message``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta

import numpy as np

from optimizer.dispatch_inputs import HorizonData, inputs_from_snapshot
from optimizer.dispatch_solver import DispatchSolver
from optimizer.dispatch_types import (
    GPU_USES,
    MONEY_STREAMS,
    DispatchOptions,
    DispatchResult,
    DispatchSchedule,
    DispatchStatus,
)
from optimizer.types import FacilityPlan, Snapshot
from twin.scenario import FixedBlockContract, IndexContract

IDLE_USE = "idle"
"""Key of the GPUs left idle in ``AllocationStep.gpus_by_use``."""

STEP_AXIS_FIELDS = (
    "price_usd_per_mwh",
    "hashprice_usd_per_ths_day",
    "pue_mining",
    "pue_ai",
    "four_cp_probability",
    "curtail_request_fraction",
    "curtail_payment_usd_per_mwh",
    "must_serve_gpus",
    "reserved_gpus",
    "batch_gpus",
    "training_gpus",
    "spot_usd_per_gpu_hour",
)
"""HorizonData arrays whose first axis is the horizon step."""

STEP_TOLERANCE = 1e-9
"""A time horizon within this many steps of a whole number of steps counts as that [-]."""


class AllocationError(ValueError):
    """An allocation question cannot be answered; the message names the field and why."""


@dataclass(frozen=True, slots=True)
class AllocationStep:
    """What one facility does in one block of the horizon.

    Attributes:
        start_s: block start [s after the snapshot].
        duration_s: block length [s].
        miners_by_tier: model id -> {power tier (fraction of nameplate): miners hashing}.
        miners_active: model id -> miners hashing at any tier (the rest sleep).
        gpus_by_use: GPU type id -> {use: GPUs}; uses are optimizer.dispatch.GPU_USES
            (realtime, reserved, batch, training, spot) and ``idle``.
        ancillary_offer_mw: reserve capacity offered per service [MW].
        facility_mw: facility draw, IT x PUE [MW].
        hashrate_ths: facility hashrate [TH/s].
        net_revenue_usd: money over the block: the sum of the money streams [USD].
        value_usd: value per stream over the block [USD]: the money streams of
            optimizer.dispatch.MONEY_STREAMS (revenue > 0, cost < 0) and the model penalties
            of PENALTY_STREAMS (not money, not in ``net_revenue_usd``).
    """

    start_s: float
    duration_s: float
    miners_by_tier: dict[str, dict[float, float]]
    miners_active: dict[str, float]
    gpus_by_use: dict[str, dict[str, float]]
    ancillary_offer_mw: dict[str, float]
    facility_mw: float
    hashrate_ths: float
    net_revenue_usd: float
    value_usd: dict[str, float]


@dataclass(frozen=True, slots=True)
class AllocationPlan:
    """One facility's recommended allocation over a horizon.

    Attributes:
        facility_id: the facility.
        horizon_s: the horizon planned (whole steps of the horizon data) [s].
        status: solver status (optimizer.dispatch.DispatchStatus).
        message: the solver's account of the outcome, and of any fallback.
        used_fallback: True when the solve found no schedule; ``first_interval`` is then the
            solver's safe plan and ``steps`` is empty.
        first_interval: the plan for the interval starting now, in the twin's terms.
        steps: the blocks of the horizon in time order.
        expected_net_revenue_usd: money over the horizon [USD] (NaN on a fallback).
        value_usd: value per stream over the horizon [USD] (empty on a fallback).
    """

    facility_id: str
    horizon_s: float
    status: DispatchStatus
    message: str
    used_fallback: bool
    first_interval: FacilityPlan
    steps: tuple[AllocationStep, ...]
    expected_net_revenue_usd: float
    value_usd: dict[str, float]


def horizon_hours(time_horizon: timedelta | float) -> float:
    """``time_horizon`` in hours [h]: a timedelta, or a number of hours; must be > 0."""
    hours = (
        time_horizon.total_seconds() / 3600.0
        if isinstance(time_horizon, timedelta)
        else time_horizon
    )
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not math.isfinite(hours):
        raise AllocationError(f"time_horizon: must be a timedelta or finite hours, got {hours!r}")
    if hours <= 0:
        raise AllocationError(f"time_horizon: must be > 0, got {hours} h")
    return float(hours)


def steps_for(horizon: HorizonData, time_horizon: timedelta | float) -> int:
    """Horizon steps that cover ``time_horizon`` (rounded up) [-].

    Raises:
        AllocationError: a horizon that is not positive or is longer than ``horizon``.
    """
    hours = horizon_hours(time_horizon)
    exact = hours * 3600.0 / horizon.step_s
    steps = max(1, math.ceil(exact - STEP_TOLERANCE))
    if steps > horizon.n_steps:
        raise AllocationError(
            f"time_horizon: {hours:g} h needs {steps} steps of {horizon.step_s:g} s, but the "
            f"horizon data has only {horizon.n_steps} ({horizon.n_steps * horizon.step_s / 3600:g}"
            " h)"
        )
    return steps


def truncate_horizon(horizon: HorizonData, steps: int) -> HorizonData:
    """The first ``steps`` steps of ``horizon`` (per-pool backlogs are kept as they are)."""
    if not 1 <= steps <= horizon.n_steps:
        raise AllocationError(f"steps: must be in [1, {horizon.n_steps}], got {steps}")
    changes: dict[str, object] = {
        name: np.asarray(getattr(horizon, name))[:steps]
        for name in STEP_AXIS_FIELDS
        if getattr(horizon, name) is not None
    }
    if horizon.ancillary_usd_per_mw_h is not None:
        changes["ancillary_usd_per_mw_h"] = {
            name: np.asarray(prices)[:steps]
            for name, prices in horizon.ancillary_usd_per_mw_h.items()
        }
    return replace(horizon, **changes)  # type: ignore[arg-type]


def recommend_allocation(
    snapshot: Snapshot,
    horizon: HorizonData,
    contracts: Mapping[str, IndexContract | FixedBlockContract],
    facility_id: str,
    time_horizon: timedelta | float,
    *,
    options: DispatchOptions | None = None,
    gpu_prices_usd_per_gpu_hour: Mapping[str, float] | None = None,
    four_cp_rate_usd_per_kw_year: float = 55.0,
) -> AllocationPlan:
    """Solve dispatch over the first ``time_horizon`` (timedelta or hours) of ``horizon``
    and return ``facility_id``'s plan.

    Raises:
        AllocationError: an unknown facility, or a horizon not positive or too long.
        optimizer.dispatch.DispatchInputError: inputs the dispatch model rejects.
    """
    known = [f.facility_id for f in snapshot.facilities]
    if facility_id not in known:
        raise AllocationError(
            f"facility_id: unknown facility {facility_id!r}; known: {', '.join(known)}"
        )
    steps = steps_for(horizon, time_horizon)
    inputs = inputs_from_snapshot(
        snapshot,
        truncate_horizon(horizon, steps),
        contracts,
        four_cp_rate_usd_per_kw_year=four_cp_rate_usd_per_kw_year,
        gpu_prices_usd_per_gpu_hour=gpu_prices_usd_per_gpu_hour,
    )
    result = DispatchSolver(options or DispatchOptions(), policy_name="allocation").solve(inputs)
    return allocation_from_result(result, facility_id, steps * horizon.step_s)


def allocation_from_result(
    result: DispatchResult, facility_id: str, horizon_s: float
) -> AllocationPlan:
    """``facility_id``'s rows of a dispatch result as an :class:`AllocationPlan`."""
    first = result.plan.facility(facility_id)
    schedule = result.schedule
    if schedule is None:
        return AllocationPlan(
            facility_id=facility_id,
            horizon_s=horizon_s,
            status=result.status,
            message=result.message,
            used_fallback=True,
            first_interval=first,
            steps=(),
            expected_net_revenue_usd=float("nan"),
            value_usd={},
        )
    steps = _steps_of(schedule, facility_id)
    totals = {name: float(sum(s.value_usd[name] for s in steps)) for name in schedule.value_usd}
    return AllocationPlan(
        facility_id=facility_id,
        horizon_s=horizon_s,
        status=result.status,
        message=result.message,
        used_fallback=result.used_fallback,
        first_interval=first,
        steps=steps,
        expected_net_revenue_usd=float(sum(totals[name] for name in MONEY_STREAMS)),
        value_usd=totals,
    )


def _steps_of(schedule: DispatchSchedule, facility_id: str) -> tuple[AllocationStep, ...]:
    """One :class:`AllocationStep` per block, for the facility's classes and pools only."""
    f = schedule.facility_ids.index(facility_id)
    classes = [i for i, (fid, _) in enumerate(schedule.class_keys) if fid == facility_id]
    pools = [i for i, (fid, _) in enumerate(schedule.pool_keys) if fid == facility_id]
    uses = (*GPU_USES, IDLE_USE)
    steps = []
    for b in range(schedule.block_start_s.size):
        value = {name: float(array[b, f]) for name, array in schedule.value_usd.items()}
        steps.append(
            AllocationStep(
                start_s=float(schedule.block_start_s[b]),
                duration_s=float(schedule.block_duration_s[b]),
                miners_by_tier={
                    schedule.class_keys[c][1]: {
                        tier: float(schedule.asic_by_tier[b, c, k])
                        for k, tier in enumerate(schedule.power_tiers)
                    }
                    for c in classes
                },
                miners_active={
                    schedule.class_keys[c][1]: float(schedule.asic_active[b, c]) for c in classes
                },
                gpus_by_use={
                    schedule.pool_keys[p][1]: {
                        use: float(schedule.gpus_by_use[b, p, u]) for u, use in enumerate(uses)
                    }
                    for p in pools
                },
                ancillary_offer_mw={
                    name: float(offer[b, f]) for name, offer in schedule.ancillary_offer_mw.items()
                },
                facility_mw=float(schedule.facility_mw[b, f]),
                hashrate_ths=float(schedule.hashrate_ths[b, f]),
                net_revenue_usd=float(sum(value[name] for name in MONEY_STREAMS)),
                value_usd=value,
            )
        )
    return tuple(steps)


__all__ = [
    "IDLE_USE",
    "AllocationError",
    "AllocationPlan",
    "AllocationStep",
    "allocation_from_result",
    "horizon_hours",
    "recommend_allocation",
    "steps_for",
    "truncate_horizon",
]
