"""The object that owns dispatch solves for a control loop, and the fallback plans.

:class:`DispatchSolver` runs build -> solve -> read back on one of two paths (``highspy``:
numpy matrices straight into HiGHS, the fast path; ``pyomo``: the algebraic reference model,
built once per model shape and re-solved with updated mutable parameters) and keeps the
last feasible plan. A solve that fails, times out or finds the model infeasible returns
that plan — trimmed to the caps of the current snapshot — or, before any solve has
succeeded, a safe plan with every miner asleep; the result's status and message say so.
Nothing is raised into the control loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from optimizer.dispatch_blocks import BlockData, build_blocks
from optimizer.dispatch_highs import build_matrix_model, solve_matrix_model
from optimizer.dispatch_inputs import DispatchInputs
from optimizer.dispatch_readback import (
    SolverOutcome,
    plan_from_schedule,
    schedule_from_values,
)
from optimizer.dispatch_types import DispatchOptions, DispatchResult
from optimizer.power import asic_mw, fit_asics_to_budget, gpu_full_mw
from optimizer.types import FacilityPlan, FacilityState, Plan, Snapshot

if TYPE_CHECKING:
    from optimizer.dispatch_pyomo import PyomoDispatchModel

Backend = Literal["highspy", "pyomo"]


@dataclass
class DispatchSolver:
    """Solves dispatch problems one after another, remembering the last feasible plan.

    Attributes:
        options: model and solver options (a per-call time limit may override).
        backend: ``highspy`` (fast, default) or ``pyomo`` (reference; persistent model).
        policy_name: written into every plan's ``policy`` field.
        last_feasible: the last result that came with a schedule, if any.
    """

    options: DispatchOptions = field(default_factory=DispatchOptions)
    backend: Backend = "highspy"
    policy_name: str = "mpc"
    last_feasible: DispatchResult | None = None
    _pyomo: PyomoDispatchModel | None = field(default=None, repr=False)

    @property
    def model_builds(self) -> int:
        """How many times the persistent Pyomo model was built (0 on the highspy path, which
        assembles fresh matrices every solve) [-]."""
        return self._pyomo.builds if self._pyomo is not None else 0

    def solve(self, inputs: DispatchInputs, time_limit_s: float | None = None) -> DispatchResult:
        """Plan the horizon of ``inputs``; see the module docstring for failures."""
        started = time.perf_counter()
        options = self.options
        if time_limit_s is not None:
            options = replace(options, time_limit_s=time_limit_s)
        try:
            blocks = build_blocks(inputs, options)
            outcome = self._solve_blocks(blocks, options)
            if outcome.values is not None:
                schedule = schedule_from_values(blocks, outcome.values)
                horizon_h = float(blocks.duration_h.sum())
                note = (
                    f"dispatch {outcome.status}: objective {outcome.objective_usd:,.0f} USD "
                    f"over {horizon_h:g} h"
                )
                plan = plan_from_schedule(blocks, schedule, self.policy_name, note)
                result = DispatchResult(
                    status=outcome.status,
                    objective_usd=outcome.objective_usd,
                    runtime_s=time.perf_counter() - started,
                    plan=plan,
                    schedule=schedule,
                    message=outcome.message,
                    mip_gap=outcome.mip_gap,
                )
                self.last_feasible = result
                return result
        # The control loop must never stop on a solver failure: any error is reported in
        # the result (status "error" and its message) and the fallback plan is returned.
        except Exception as error:
            outcome = SolverOutcome(
                "error", float("nan"), float("nan"), f"{type(error).__name__}: {error}", None
            )
        return self._fallback(inputs.snapshot, outcome, time.perf_counter() - started)

    def _solve_blocks(self, blocks: BlockData, options: DispatchOptions) -> SolverOutcome:
        """One solve on the configured path."""
        if self.backend == "pyomo":
            # Imported on first use: Pyomo takes a while to import and the fast path
            # does not need it.
            from optimizer.dispatch_pyomo import PyomoDispatchModel

            if self._pyomo is None:
                self._pyomo = PyomoDispatchModel()
            return self._pyomo.solve(blocks)
        model = build_matrix_model(blocks)
        return solve_matrix_model(model, options.time_limit_s, options.mip_rel_gap, options.threads)

    def _fallback(
        self, snapshot: Snapshot, outcome: SolverOutcome, runtime_s: float
    ) -> DispatchResult:
        """The result of a solve without a schedule: last feasible plan or a safe one."""
        if self.last_feasible is not None:
            plan = Plan(
                tuple(
                    _fit_plan_to_cap(state, _plan_of(self.last_feasible.plan, state.facility_id))
                    for state in snapshot.facilities
                ),
                self.policy_name,
                f"dispatch {outcome.status}: last feasible plan",
            )
            how = "returned the last feasible plan, trimmed to the current caps"
        else:
            plan = safe_plan(snapshot, self.policy_name, f"dispatch {outcome.status}: safe plan")
            how = "no feasible plan yet: returned the safe plan (all miners asleep)"
        return DispatchResult(
            status=outcome.status,
            objective_usd=float("nan"),
            runtime_s=runtime_s,
            plan=plan,
            schedule=None,
            message=f"{outcome.message}; {how}",
            used_fallback=True,
            mip_gap=outcome.mip_gap,
        )


def _plan_of(plan: Plan, facility_id: str) -> FacilityPlan | None:
    try:
        return plan.facility(facility_id)
    except KeyError:
        return None


def safe_plan(snapshot: Snapshot, policy: str, note: str = "") -> Plan:
    """Every miner asleep; the GPUs get the rest of the cap up to all of them at TDP."""
    return Plan(tuple(_fit_plan_to_cap(state, None) for state in snapshot.facilities), policy, note)


def _fit_plan_to_cap(state: FacilityState, plan: FacilityPlan | None) -> FacilityPlan:
    """``plan`` (None: all asleep, no spot) made to fit ``state``'s cap now: GPU budget at
    most the healthy GPUs at TDP and what the sleeping miners leave; miners trimmed least
    efficient first (optimizer.power)."""
    fraction = {}
    active = {}
    for cls in state.asic_classes:
        wanted = plan.asic_active.get(cls.model_id, 0) if plan is not None else 0
        active[cls.model_id] = max(0, min(wanted, cls.count - cls.failed))
        target = plan.asic_power_fraction.get(cls.model_id, 1.0) if plan is not None else 1.0
        fraction[cls.model_id] = min(1.0, max(cls.min_power_fraction, target))
    asleep_mw = sum(asic_mw(c, 0, 1.0, state.pue_mining) for c in state.asic_classes)
    budget = gpu_full_mw(state.gpu_pools, state.pue_ai)
    if plan is not None:
        budget = min(budget, plan.gpu_power_budget_mw)
    budget = max(0.0, min(budget, state.power_cap_mw - asleep_mw))
    active = fit_asics_to_budget(state, active, fraction, state.power_cap_mw - budget)
    return FacilityPlan(
        facility_id=state.facility_id,
        asic_active=active,
        asic_power_fraction=fraction,
        gpu_power_budget_mw=budget,
        gpu_spot=dict(plan.gpu_spot) if plan is not None else {},
    )
