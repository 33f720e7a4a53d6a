"""Look-ahead policies: ``mpc`` (the dispatch MILP on forecasts) and ``oracle`` (the same
MILP on the true future — an upper bound, never usable live).

Each dispatch interval the controller attaches a :class:`optimizer.dispatch.HorizonData`
to the snapshot (forecasts or truth, see twin.horizon); the policy solves the rolling
horizon and applies the plan of its first step. To keep long backtests affordable the
MILP is re-solved every ``resolve_every`` intervals, and at once whenever something the
plan depends on changes unannounced: a grid curtailment request, a 4CP flag, healthy
device counts, or the price moving to another octave; in between, the last solve's plan is
reused (the controller's cap guard still checks it against today's caps). A failed or
timed-out solve falls back to the last feasible plan (optimizer.dispatch_solver).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from optimizer.dispatch import (
    DispatchOptions,
    DispatchResult,
    DispatchSolver,
    inputs_from_snapshot,
)
from optimizer.power import asic_mw, gpu_full_mw
from optimizer.types import Plan, Snapshot
from twin.scenario import FixedBlockContract, IndexContract

Contract = IndexContract | FixedBlockContract


class LookAheadError(ValueError):
    """A look-ahead policy was called without the horizon it needs."""


@dataclass
class LookAhead:
    """Rolling-horizon MILP dispatch (see the module docstring).

    Attributes:
        name: ``mpc`` or ``oracle`` (written into plans and results).
        horizon_source: ``forecast`` (mpc) or ``truth`` (oracle): what the controller
            must attach to each snapshot.
        contracts: power contract per facility id.
        four_cp_rate_usd_per_kw_year: transmission rate charged on 4CP demand.
        horizon_h: look-ahead [h].
        resolve_every: re-solve at least every this many intervals [-].
        time_limit_s: wall-clock limit of one solve [s].
        options: MILP options.
    """

    name: str
    horizon_source: str
    contracts: Mapping[str, Contract]
    four_cp_rate_usd_per_kw_year: float = 55.0
    horizon_h: float = 24.0
    resolve_every: int = 3
    time_limit_s: float = 2.0
    options: DispatchOptions = field(default_factory=DispatchOptions)
    solves: int = 0
    fallbacks: int = 0
    last_result: DispatchResult | None = None
    _solver: DispatchSolver | None = field(default=None, repr=False)
    _since_solve: int = 0
    _last_signature: tuple[object, ...] = ()

    def decide(self, snapshot: Snapshot) -> Plan:
        """The plan for the interval starting at ``snapshot.t_s``."""
        if snapshot.horizon is None:
            raise LookAheadError(f"policy {self.name}: the snapshot carries no horizon")
        signature = _signature(snapshot)
        due = (
            self.last_result is None
            or self._since_solve + 1 >= self.resolve_every
            or signature != self._last_signature
        )
        if not due and self.last_result is not None:
            self._since_solve += 1
            return _widen_gpu_budgets(snapshot, self.last_result.plan)
        if self._solver is None:
            self._solver = DispatchSolver(options=self.options, policy_name=self.name)
        inputs = inputs_from_snapshot(
            snapshot,
            snapshot.horizon,
            self.contracts,
            four_cp_rate_usd_per_kw_year=self.four_cp_rate_usd_per_kw_year,
            previous_plan=self.last_result.plan if self.last_result else None,
        )
        result = self._solver.solve(inputs, self.time_limit_s)
        self.solves += 1
        self.fallbacks += int(result.used_fallback)
        self.last_result = result
        self._since_solve = 0
        self._last_signature = signature
        return _widen_gpu_budgets(snapshot, result.plan)


def _signature(snapshot: Snapshot) -> tuple[object, ...]:
    """What forces a re-solve when it changes: grid requests, 4CP flags, healthy counts,
    and the price band (x2 steps) of each facility."""
    parts: list[object] = []
    for facility in snapshot.facilities:
        parts.append(
            (
                facility.curtail_request_fraction,
                facility.four_cp_interval,
                _price_band(facility.price_usd_per_mwh),
                tuple(c.count - c.failed for c in facility.asic_classes),
                tuple(p.count - p.failed for p in facility.gpu_pools),
            )
        )
    return tuple(parts)


def _price_band(price_usd_per_mwh: float) -> int:
    """Octave of the price: -1 at or below 1 USD/MWh, else floor(log2(price))."""
    if price_usd_per_mwh <= 1.0:
        return -1
    return math.floor(math.log2(price_usd_per_mwh))


def _widen_gpu_budgets(snapshot: Snapshot, plan: Plan) -> Plan:
    """Give each facility's GPUs all the power its mining plan leaves under the cap.

    The MILP sizes GPU power for the demand it was told about (held at today's level), but
    realtime inference arrives in bursts and must start at once: the scheduler's budget is
    a ceiling, not a target, so widening it costs nothing when demand is as planned and
    keeps the SLA when it is not. Spot rentals stay as planned (``gpu_spot``).
    """
    widened = []
    for facility in snapshot.facilities:
        facility_plan = plan.facility(facility.facility_id)
        mining_mw = sum(
            asic_mw(
                c,
                facility_plan.asic_active.get(c.model_id, 0),
                facility_plan.asic_power_fraction.get(c.model_id, 1.0),
                facility.pue_mining,
            )
            for c in facility.asic_classes
        )
        room_mw = min(
            gpu_full_mw(facility.gpu_pools, facility.pue_ai),
            facility.power_cap_mw - mining_mw,
        )
        budget = max(facility_plan.gpu_power_budget_mw, room_mw)
        widened.append(replace(facility_plan, gpu_power_budget_mw=budget))
    return replace(plan, facilities=tuple(widened))
