"""The dispatch MILP written algebraically in Pyomo: the readable reference model.

The model is built once per shape (blocks, facilities, classes and pools with their
facilities, tiers, services) with mutable parameters; every solve writes the new parameter
values, variable bounds and domains, switches the optional constraint families on or off
per facility and block, and re-solves with the persistent ``appsi`` HiGHS interface. The
equations follow the formulation in optimizer.dispatch term by term and are written from
the block parameters, not from the fast path's coefficients, so the equivalence test
compares two independent statements of one model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.appsi.base import TerminationCondition
from pyomo.contrib.appsi.solvers import Highs

from optimizer.dispatch_blocks import MINUTES_PER_HOUR, MW_PER_W, BlockData, integer_block_count
from optimizer.dispatch_readback import SolverOutcome, dispatch_status

REALTIME, RESERVED, BATCH, TRAINING, SPOT = range(5)
INTERRUPTIBLE = (BATCH, TRAINING, SPOT)


@dataclass(frozen=True)
class _Shape:
    """What fixes the model's structure; another shape needs a new model."""

    n_blocks: int
    n_facilities: int
    class_facility: tuple[int, ...]
    pool_facility: tuple[int, ...]
    n_tiers: int
    n_services: int


def _shape(blocks: BlockData) -> _Shape:
    x = blocks.inputs
    return _Shape(
        blocks.n_blocks,
        len(x.facility_ids),
        tuple(int(f) for f in x.class_facility),
        tuple(int(f) for f in x.pool_facility),
        int(blocks.tiers.size),
        len(blocks.service_names),
    )


def build_model(shape: _Shape) -> pyo.ConcreteModel:
    """The dispatch model of ``shape`` with every parameter mutable (values set per solve)."""
    m = pyo.ConcreteModel(name="dispatch")
    m.B = pyo.RangeSet(0, shape.n_blocks - 1)
    m.F = pyo.RangeSet(0, shape.n_facilities - 1)
    m.C = pyo.Set(initialize=range(len(shape.class_facility)))
    m.K = pyo.RangeSet(0, shape.n_tiers - 1)
    m.P = pyo.Set(initialize=range(len(shape.pool_facility)))
    m.U = pyo.RangeSet(0, 4)
    m.J = pyo.RangeSet(0, 1)
    m.S = pyo.Set(initialize=range(shape.n_services))
    m.L = pyo.RangeSet(0, 1)
    classes_of = {f: [c for c, g in enumerate(shape.class_facility) if g == f] for f in m.F}
    pools_of = {f: [p for p, g in enumerate(shape.pool_facility) if g == f] for f in m.F}

    def param(*sets: Any) -> pyo.Param:
        return pyo.Param(*sets, mutable=True, initialize=0.0, within=pyo.Any)

    # time and market [h, USD/TH/s/day]
    m.dt = param(m.B)
    m.hashprice = param(m.B)
    # miners: TH/s, W, W, miners
    m.ths, m.watt, m.sleep_w = param(m.C), param(m.C), param(m.C)
    m.healthy, m.active_now, m.fraction_now = param(m.C), param(m.C), param(m.C)
    m.tier, m.hash_factor = param(m.K), param(m.K)
    # GPUs: W, W, GPUs, load factor, USD/GPU-h, GPUs, GPU-h
    m.tdp, m.idle, m.gpus = param(m.P), param(m.P), param(m.P)
    m.load_factor = param(m.U)
    m.gpu_price = param(m.P, m.U)
    m.spot_price = param(m.B, m.P)
    m.must, m.reserved = param(m.B, m.P), param(m.B, m.P)
    m.deferrable = param(m.B, m.P, m.J)
    m.backlog_now = param(m.P, m.J)
    # facilities: PUE, USD/MWh, MW, USD/MW, -, USD/MW, MW/min
    m.pue_m, m.pue_a = param(m.B, m.F), param(m.B, m.F)
    m.pue_m_cap, m.pue_a_cap = param(m.B, m.F), param(m.B, m.F)
    m.buy, m.sell = param(m.B, m.F), param(m.B, m.F)
    m.is_index = param(m.F)
    m.block_mw, m.block_price, m.cap = param(m.F), param(m.F), param(m.F)
    m.four_cp = param(m.B, m.F)
    m.request, m.dr_credit, m.dr_shortfall = param(m.B, m.F), param(m.B, m.F), param(m.B, m.F)
    m.baseline = param(m.B, m.F)
    m.ramp = param(m.F)
    # ancillary: USD/MW-h, -, USD/MWh
    m.anc_price = param(m.B, m.S)
    m.deploy_p = param(m.S)
    m.deploy_cost = param(m.B, m.F, m.L)
    # options: USD/miner, USD/GPU-h, USD/GPU-h/h, MW
    m.wake_cost, m.sla, m.deferral, m.margin = param(), param(), param(), param()

    m.n = pyo.Var(m.B, m.C, m.K, bounds=(0, None))
    m.wake = pyo.Var(m.B, m.C, bounds=(0, None))
    m.x = pyo.Var(m.B, m.P, m.U, bounds=(0, None))
    m.backlog = pyo.Var(m.B, m.P, m.J, bounds=(0, None))
    m.above = pyo.Var(m.B, m.F, bounds=(0, None))
    m.under = pyo.Var(m.B, m.F, bounds=(0, None))
    m.z = pyo.Var(m.B, m.F, bounds=(0, 1))
    m.short = pyo.Var(m.B, m.F, bounds=(0, None))
    m.anc = pyo.Var(m.B, m.F, m.S, m.L, bounds=(0, None))

    def over_sleep_mw(b: int, c: int) -> Any:
        """IT MW of class c's hashing miners above their sleep draw."""
        return sum(m.n[b, c, k] * (m.watt[c] * m.tier[k] - m.sleep_w[c]) for k in m.K) * MW_PER_W

    def mining_it(b: int, f: int) -> Any:
        return sum(
            m.healthy[c] * m.sleep_w[c] * MW_PER_W + over_sleep_mw(b, c) for c in classes_of[f]
        )

    def gpu_it(b: int, f: int, cap: bool) -> Any:
        return sum(
            m.gpus[p] * m.idle[p] * MW_PER_W
            + sum(
                m.x[b, p, u]
                * ((1.0 if cap else m.load_factor[u]) * m.tdp[p] - m.idle[p])
                * MW_PER_W
                for u in m.U
            )
            for p in pools_of[f]
        )

    m.draw = pyo.Expression(
        m.B,
        m.F,
        rule=lambda m, b, f: m.pue_m[b, f] * mining_it(b, f) + m.pue_a[b, f] * gpu_it(b, f, False),
    )
    m.cap_draw = pyo.Expression(
        m.B,
        m.F,
        rule=lambda m, b, f: (
            m.pue_m_cap[b, f] * mining_it(b, f) + m.pue_a_cap[b, f] * gpu_it(b, f, True)
        ),
    )

    m.cap_limit = pyo.Constraint(
        m.B, m.F, rule=lambda m, b, f: m.cap_draw[b, f] <= m.cap[f] - m.margin
    )
    m.fleet = pyo.Constraint(
        m.B, m.C, rule=lambda m, b, c: sum(m.n[b, c, k] for k in m.K) <= m.healthy[c]
    )
    m.pool = pyo.Constraint(
        m.B, m.P, rule=lambda m, b, p: sum(m.x[b, p, u] for u in m.U) <= m.gpus[p]
    )

    def queue(m: Any, b: int, p: int, j: int) -> Any:
        before = m.backlog[b - 1, p, j] if b > 0 else m.backlog_now[p, j]
        served = m.x[b, p, BATCH + j]
        return m.backlog[b, p, j] == before + m.dt[b] * (m.deferrable[b, p, j] - served)

    m.queue = pyo.Constraint(m.B, m.P, m.J, rule=queue)

    def active(b: int, c: int) -> Any:
        return sum(m.n[b, c, k] for k in m.K) if b >= 0 else m.active_now[c]

    m.wakes = pyo.Constraint(
        m.B, m.C, rule=lambda m, b, c: m.wake[b, c] >= active(b, c) - active(b - 1, c)
    )

    def mining_over_sleep(b: int, f: int) -> Any:
        if b < 0:
            return sum(
                m.active_now[c] * (m.watt[c] * m.fraction_now[c] - m.sleep_w[c]) * MW_PER_W
                for c in classes_of[f]
            )
        return sum(over_sleep_mw(b, c) for c in classes_of[f])

    m.ramp_up = pyo.Constraint(
        m.B,
        m.F,
        rule=lambda m, b, f: (
            mining_over_sleep(b, f) - mining_over_sleep(b - 1, f)
            <= MINUTES_PER_HOUR * m.ramp[f] * m.dt[b]
        ),
    )
    m.block_split = pyo.Constraint(
        m.B, m.F, rule=lambda m, b, f: m.above[b, f] - m.under[b, f] == m.draw[b, f] - m.block_mw[f]
    )
    m.block_above = pyo.Constraint(
        m.B, m.F, rule=lambda m, b, f: m.above[b, f] <= m.cap[f] * m.z[b, f]
    )
    m.block_under = pyo.Constraint(
        m.B, m.F, rule=lambda m, b, f: m.under[b, f] <= m.block_mw[f] * (1 - m.z[b, f])
    )

    def spot_flexible(b: int, f: int) -> Any:
        return sum(
            m.pue_a[b, f] * m.load_factor[SPOT] * m.tdp[p] * MW_PER_W * m.x[b, p, SPOT]
            for p in pools_of[f]
        )

    m.grid_request = pyo.Constraint(
        m.B,
        m.F,
        rule=lambda m, b, f: (
            m.short[b, f]
            >= m.pue_m[b, f] * mining_it(b, f)
            + spot_flexible(b, f)
            - (1 - m.request[b, f]) * m.baseline[b, f]
        ),
    )

    def curtailable(b: int, f: int, group: int) -> Any:
        if group == 0:
            return m.pue_m[b, f] * mining_over_sleep(b, f)
        return sum(
            m.pue_a[b, f] * m.x[b, p, u] * (m.load_factor[u] * m.tdp[p] - m.idle[p]) * MW_PER_W
            for p in pools_of[f]
            for u in INTERRUPTIBLE
        )

    m.deliverable = pyo.Constraint(
        m.B,
        m.F,
        m.L,
        rule=lambda m, b, f, g: sum(m.anc[b, f, s, g] for s in m.S) <= curtailable(b, f, g),
    )

    def objective(m: Any) -> Any:
        total = 0
        for b in m.B:
            dt = m.dt[b]
            total += sum(
                dt * m.hashprice[b] / 24.0 * m.ths[c] * m.hash_factor[k] * m.n[b, c, k]
                for c in m.C
                for k in m.K
            )
            total += sum(dt * m.gpu_price[p, u] * m.x[b, p, u] for p in m.P for u in (0, 1, 2, 3))
            total += sum(dt * m.spot_price[b, p] * m.x[b, p, SPOT] for p in m.P)
            total += sum(
                dt
                * (m.anc_price[b, s] - m.deploy_p[s] * m.deploy_cost[b, f, g])
                * m.anc[b, f, s, g]
                for f in m.F
                for s in m.S
                for g in m.L
            )
            for f in m.F:
                index_energy = m.buy[b, f] * dt * m.draw[b, f]
                block_energy = (
                    m.block_price[f] * m.block_mw[f] * dt
                    + m.buy[b, f] * dt * m.above[b, f]
                    - m.sell[b, f] * dt * m.under[b, f]
                )
                total -= m.is_index[f] * index_energy + (1 - m.is_index[f]) * block_energy
                total -= m.four_cp[b, f] * m.draw[b, f]
                total += m.dr_credit[b, f] * m.baseline[b, f] - m.dr_shortfall[b, f] * m.short[b, f]
            total -= m.wake_cost * sum(m.wake[b, c] for c in m.C)
            total -= (
                m.sla
                * dt
                * sum(
                    m.must[b, p] - m.x[b, p, REALTIME] + m.reserved[b, p] - m.x[b, p, RESERVED]
                    for p in m.P
                )
            )
            total -= m.deferral * dt * sum(m.backlog[b, p, j] for p in m.P for j in m.J)
        return total

    m.objective = pyo.Objective(rule=objective, sense=pyo.maximize)
    return m


class PyomoDispatchModel:
    """A persistent Pyomo model and its appsi HiGHS solver, rebuilt only on a new shape."""

    def __init__(self) -> None:
        self._built: tuple[_Shape, pyo.ConcreteModel, Highs] | None = None
        self.builds = 0
        """How many times a model was built (a new shape rebuilds) [-]."""

    def solve(self, blocks: BlockData) -> SolverOutcome:
        """Write ``blocks`` into the model and solve it."""
        shape = _shape(blocks)
        if self._built is None or self._built[0] != shape:
            self._built = (shape, build_model(shape), Highs())
            self.builds += 1
        _, model, solver = self._built
        _write(model, blocks)
        options = blocks.options
        solver.config.load_solution = False
        solver.config.stream_solver = False
        solver.config.time_limit = max(options.time_limit_s, 1e-3)
        solver.config.mip_gap = options.mip_rel_gap
        solver.highs_options = {"threads": options.threads}
        results = solver.solve(model)
        return _outcome(model, blocks, results)


def _outcome(m: pyo.ConcreteModel, blocks: BlockData, results: Any) -> SolverOutcome:
    """Status, objective and variable values of a finished appsi solve."""
    condition = results.termination_condition
    has_solution = results.best_feasible_objective is not None
    status = dispatch_status(
        condition,
        optimal=TerminationCondition.optimal,
        infeasible=(TerminationCondition.infeasible, TerminationCondition.infeasibleOrUnbounded),
        stopped_early=(
            TerminationCondition.maxTimeLimit,
            TerminationCondition.maxIterations,
            TerminationCondition.interrupted,
        ),
        has_solution=has_solution,
    )
    message = f"Pyomo appsi HiGHS: {condition.name}"
    if status not in ("optimal", "feasible") or not has_solution:
        return SolverOutcome(status, float("nan"), float("nan"), message, None)
    results.solution_loader.load_vars()
    bound = results.best_objective_bound
    objective = float(results.best_feasible_objective)
    gap = abs(bound - objective) / max(abs(objective), 1e-9) if bound is not None else float("nan")

    def array(var: pyo.Var, *sizes: int) -> np.ndarray:
        values = np.array([var[key].value or 0.0 for key in var.index_set()], dtype=float)
        return values.reshape(sizes)

    x = blocks.inputs
    nb, nf = blocks.n_blocks, len(x.facility_ids)
    nc, npools = len(x.class_keys), len(x.pool_keys)
    nk, ns = blocks.tiers.size, len(blocks.service_names)
    values = {
        "n": array(m.n, nb, nc, nk),
        "wake": array(m.wake, nb, nc),
        "x": array(m.x, nb, npools, 5),
        "backlog": array(m.backlog, nb, npools, 2),
        "above": array(m.above, nb, nf),
        "under": array(m.under, nb, nf),
        "z": array(m.z, nb, nf),
        "short": array(m.short, nb, nf),
        "anc": array(m.anc, nb, nf, ns, 2),
    }
    return SolverOutcome(status, objective, gap, message, values)


def _set(param: pyo.Param, array: np.ndarray | list[float]) -> None:
    """Write ``array`` into an indexed mutable parameter (index order = array order)."""
    for key, value in zip(param.index_set(), np.asarray(array, dtype=float).ravel(), strict=True):
        param[key] = float(value)


def _write(m: pyo.ConcreteModel, blocks: BlockData) -> None:
    """Parameter values, bounds, domains and active constraints of one solve."""
    x = blocks.inputs
    o = blocks.options
    nb = blocks.n_blocks
    _set(m.dt, blocks.duration_h)
    _set(m.hashprice, blocks.hashprice_usd_per_ths_day)
    _set(m.ths, x.hashrate_ths_each)
    _set(m.watt, x.power_w_each)
    _set(m.sleep_w, x.sleep_w_each)
    _set(m.healthy, x.healthy_miners)
    _set(m.active_now, x.active_now)
    _set(m.fraction_now, x.power_fraction_now)
    _set(m.tier, blocks.tiers)
    _set(m.hash_factor, blocks.hashrate_factor)
    _set(m.tdp, x.tdp_w)
    _set(m.idle, x.idle_w)
    _set(m.gpus, x.healthy_gpus)
    _set(m.load_factor, [1.0, 1.0, 1.0, 1.0, o.spot_load_fraction])
    gpu_price = np.zeros((len(x.pool_keys), 5))
    gpu_price[:, :4] = x.gpu_price_usd_per_gpu_hour
    _set(m.gpu_price, gpu_price)
    _set(m.spot_price, blocks.spot_usd_per_gpu_hour)
    _set(m.must, blocks.must_serve_gpus)
    _set(m.reserved, blocks.reserved_gpus)
    _set(m.deferrable, np.stack([blocks.batch_gpus, blocks.training_gpus], axis=2))
    _set(m.backlog_now, x.backlog_gpu_h)
    _set(m.pue_m, blocks.pue_mining)
    _set(m.pue_a, blocks.pue_ai)
    _set(m.pue_m_cap, blocks.pue_mining_cap)
    _set(m.pue_a_cap, blocks.pue_ai_cap)
    _set(m.buy, blocks.buy_usd_per_mwh)
    _set(m.sell, blocks.sell_usd_per_mwh)
    _set(m.is_index, ~blocks.is_fixed_block)
    _set(m.block_mw, blocks.block_mw)
    _set(m.block_price, blocks.block_price_usd_per_mwh)
    _set(m.cap, x.power_cap_mw)
    _set(m.four_cp, blocks.four_cp_usd_per_mw)
    _set(m.request, blocks.curtail_fraction)
    _set(m.dr_credit, blocks.dr_credit_usd_per_mw)
    _set(m.dr_shortfall, blocks.dr_shortfall_usd_per_mw)
    _set(m.baseline, blocks.flexible_baseline_mw)
    _set(m.ramp, np.where(np.isfinite(x.ramp_up_mw_per_min), x.ramp_up_mw_per_min, 0.0))
    _set(m.anc_price, blocks.ancillary_usd_per_mw_h)
    _set(m.deploy_p, blocks.deploy_probability)
    _set(m.deploy_cost, blocks.deploy_cost_usd_per_mwh)
    m.wake_cost = o.wake_cost_usd_per_miner
    m.sla = o.sla_weight * o.sla_penalty_usd_per_gpu_hour
    m.deferral = o.deferral_usd_per_gpu_hour_h
    m.margin = o.cap_margin_mw

    integer_blocks = integer_block_count(blocks)
    for (b, c, k), var in m.n.items():
        var.domain = pyo.Integers if b < integer_blocks else pyo.Reals
        var.setlb(0.0)
        var.setub(float(x.healthy_miners[c]) if blocks.tier_allowed[c, k] else 0.0)
    for (b, p, u), var in m.x.items():
        demand = {REALTIME: blocks.must_serve_gpus[b, p], RESERVED: blocks.reserved_gpus[b, p]}
        var.setub(float(demand.get(u, x.healthy_gpus[p])))
        hard = u in demand and not o.allow_unmet_must_serve
        var.setlb(float(demand[u]) if hard else 0.0)
    for b in range(nb):
        for f in range(len(x.facility_ids)):
            fixed = bool(blocks.is_fixed_block[f])
            m.above[b, f].setub(float(x.power_cap_mw[f]) if fixed else 0.0)
            m.under[b, f].setub(float(blocks.block_mw[f]) if fixed else 0.0)
            m.z[b, f].domain = pyo.Binary if blocks.nonconvex_block[b, f] else pyo.Reals
            m.z[b, f].setlb(0.0)
            m.z[b, f].setub(1.0 if fixed else 0.0)
            in_event = bool(blocks.curtail_fraction[b, f] > 0)
            m.short[b, f].setub(None if in_event else 0.0)
            ramped = bool(np.isfinite(x.ramp_up_mw_per_min[f]))
            switches = (
                (m.block_split, fixed),
                (m.block_above, fixed),
                (m.block_under, fixed),
                (m.grid_request, in_event),
                (m.ramp_up, ramped),
            )
            for constraint, on in switches:
                if on:
                    constraint[b, f].activate()
                else:
                    constraint[b, f].deactivate()
            for s in range(len(blocks.service_names)):
                for g in range(2):
                    ok = bool(blocks.service_offered[s] and blocks.eligible[s, g])
                    m.anc[b, f, s, g].setub(None if ok else 0.0)
