"""The dispatch MILP as numpy matrices, solved directly with highspy (the fast path).

Columns and rows are laid out family by family with vectorized index arithmetic (no loop
over devices or blocks); the matrix goes to HiGHS row-wise in one ``passModel`` call. The
model is the one written in optimizer.dispatch; optimizer.dispatch_pyomo states the same
model algebraically and the tests check that both reach the same optimum.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass, field

import highspy
import numpy as np
from scipy import sparse

from optimizer.dispatch_blocks import MINUTES_PER_HOUR, BlockData, integer_block_count
from optimizer.dispatch_coefficients import (
    INTERRUPTIBLE_USES,
    USE_BATCH,
    USE_REALTIME,
    USE_RESERVED,
    USE_SPOT,
    USE_TRAINING,
    Coefficients,
    coefficients,
)
from optimizer.dispatch_readback import SolverOutcome, dispatch_status

INF = highspy.kHighsInf


def _family_indices(first: int, shape: tuple[int, ...]) -> np.ndarray:
    """Consecutive column or row indices from ``first`` for a family, shaped ``shape``."""
    return np.arange(first, first + int(np.prod(shape))).reshape(shape)


def _flat(
    value: float | bool | np.ndarray, shape: tuple[int, ...], dtype: type = float
) -> np.ndarray:
    """``value`` (bound, cost or integrality) broadcast to ``shape`` and flattened: one
    entry per column or row of a family."""
    return np.broadcast_to(np.asarray(value, dtype), shape).ravel()


@dataclass
class _Matrix:
    """Columns and rows under construction."""

    n_cols: int = 0
    n_rows: int = 0
    col_lower: list[np.ndarray] = field(default_factory=list)
    col_upper: list[np.ndarray] = field(default_factory=list)
    col_cost: list[np.ndarray] = field(default_factory=list)
    col_integer: list[np.ndarray] = field(default_factory=list)
    row_lower: list[np.ndarray] = field(default_factory=list)
    row_upper: list[np.ndarray] = field(default_factory=list)
    entries_row: list[np.ndarray] = field(default_factory=list)
    entries_col: list[np.ndarray] = field(default_factory=list)
    entries_value: list[np.ndarray] = field(default_factory=list)

    def columns(
        self,
        shape: tuple[int, ...],
        lower: float | np.ndarray,
        upper: float | np.ndarray,
        cost: float | np.ndarray,
        integer: bool | np.ndarray = False,
    ) -> np.ndarray:
        """Add a family of columns; returns their indices, shaped ``shape``."""
        index = _family_indices(self.n_cols, shape)
        self.n_cols += index.size
        self.col_lower.append(_flat(lower, shape))
        self.col_upper.append(_flat(upper, shape))
        self.col_cost.append(_flat(cost, shape))
        self.col_integer.append(_flat(integer, shape, bool))
        return index

    def rows(
        self, shape: tuple[int, ...], lower: float | np.ndarray, upper: float | np.ndarray
    ) -> np.ndarray:
        """Add a family of rows; returns their indices, shaped ``shape``."""
        index = _family_indices(self.n_rows, shape)
        self.n_rows += index.size
        self.row_lower.append(_flat(lower, shape))
        self.row_upper.append(_flat(upper, shape))
        return index

    def add(self, rows: np.ndarray, cols: np.ndarray, values: float | np.ndarray) -> None:
        """Add coefficients ``values`` at ``(rows, cols)`` (broadcast together)."""
        r, c, v = np.broadcast_arrays(rows, cols, np.asarray(values, float))
        self.entries_row.append(r.ravel())
        self.entries_col.append(c.ravel())
        self.entries_value.append(v.ravel())


@dataclass(frozen=True, eq=False)
class MatrixModel:
    """The assembled model: column index arrays per variable family, and HiGHS data."""

    variables: dict[str, np.ndarray]
    col_cost: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    integrality: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    matrix: sparse.csr_matrix
    offset: float


def build_matrix_model(blocks: BlockData) -> MatrixModel:
    """Assemble the dispatch MILP of ``blocks`` (objective maximised)."""
    k = coefficients(blocks)
    m = _Matrix()
    v = _add_columns(m, blocks, k)
    _add_cap_rows(m, blocks, k, v)
    _add_balance_rows(m, blocks, v)
    _add_ramp_rows(m, blocks, k, v)
    if np.any(blocks.is_fixed_block):
        _add_fixed_block_rows(m, blocks, k, v)
    _add_grid_request_rows(m, blocks, k, v)
    _add_reserve_rows(m, blocks, k, v)
    matrix = sparse.coo_matrix(
        (
            np.concatenate(m.entries_value),
            (np.concatenate(m.entries_row), np.concatenate(m.entries_col)),
        ),
        shape=(m.n_rows, m.n_cols),
    ).tocsr()
    return MatrixModel(
        variables=v,
        col_cost=np.concatenate(m.col_cost),
        col_lower=np.concatenate(m.col_lower),
        col_upper=np.concatenate(m.col_upper),
        integrality=np.concatenate(m.col_integer).astype(np.int32),
        row_lower=np.concatenate(m.row_lower),
        row_upper=np.concatenate(m.row_upper),
        matrix=matrix,
        offset=_objective_offset(blocks, k),
    )


def _add_columns(m: _Matrix, blocks: BlockData, k: Coefficients) -> dict[str, np.ndarray]:
    """Every variable family with its bounds, objective coefficient and integrality."""
    x = blocks.inputs
    o = blocks.options
    n_b = blocks.n_blocks
    n_f, n_c, n_p = len(x.facility_ids), len(x.class_keys), len(x.pool_keys)
    n_k, n_s = blocks.tiers.size, len(blocks.service_names)
    cf, pf = x.class_facility, x.pool_facility
    dt = blocks.duration_h

    miner_cost = (
        k.mining_revenue_per_miner - k.energy_per_miner * k.energy_usd_per_mw[:, cf][:, :, None]
    )
    miner_upper = np.where(blocks.tier_allowed, x.healthy_miners[:, None], 0.0)
    integer_miners = np.zeros((n_b, 1, 1), dtype=bool)
    integer_miners[: integer_block_count(blocks)] = True
    n = m.columns((n_b, n_c, n_k), 0.0, miner_upper[None], miner_cost, integer_miners)
    wake = m.columns((n_b, n_c), 0.0, INF, -o.wake_cost_usd_per_miner)

    sla = o.sla_weight * o.sla_penalty_usd_per_gpu_hour * dt
    gpu_cost = k.gpu_revenue_per_gpu - k.energy_per_gpu * k.energy_usd_per_mw[:, pf][:, :, None]
    gpu_cost[:, :, USE_REALTIME] += sla[:, None]
    gpu_cost[:, :, USE_RESERVED] += sla[:, None]
    gpu_upper = np.repeat(np.broadcast_to(x.healthy_gpus, (n_b, n_p))[:, :, None], 5, axis=2)
    gpu_upper[:, :, USE_REALTIME] = blocks.must_serve_gpus
    gpu_upper[:, :, USE_RESERVED] = blocks.reserved_gpus
    gpu_lower = np.zeros_like(gpu_upper)
    if not o.allow_unmet_must_serve:
        gpu_lower[:, :, USE_REALTIME] = blocks.must_serve_gpus
        gpu_lower[:, :, USE_RESERVED] = blocks.reserved_gpus
    gpus = m.columns((n_b, n_p, 5), gpu_lower, gpu_upper, gpu_cost)
    backlog = m.columns((n_b, n_p, 2), 0.0, INF, -o.deferral_usd_per_gpu_hour_h * dt[:, None, None])

    fixed = blocks.is_fixed_block[None, :]
    above = m.columns(
        (n_b, n_f), 0.0, np.where(fixed, x.power_cap_mw, 0.0), -blocks.buy_usd_per_mwh * dt[:, None]
    )
    under = m.columns(
        (n_b, n_f),
        0.0,
        np.where(fixed, blocks.block_mw, 0.0),
        blocks.sell_usd_per_mwh * dt[:, None],
    )
    z = m.columns((n_b, n_f), 0.0, np.where(fixed, 1.0, 0.0), 0.0, blocks.nonconvex_block)
    in_event = blocks.curtail_fraction > 0
    short = m.columns(
        (n_b, n_f), 0.0, np.where(in_event, INF, 0.0), -blocks.dr_shortfall_usd_per_mw
    )
    anc_ok = blocks.service_offered[:, None] & blocks.eligible  # [S, L]
    anc_value = dt[:, None, None, None] * (
        blocks.ancillary_usd_per_mw_h[:, None, :, None]
        - blocks.deploy_probability[None, None, :, None]
        * blocks.deploy_cost_usd_per_mwh[:, :, None, :]
    )
    anc = m.columns((n_b, n_f, n_s, 2), 0.0, np.where(anc_ok, INF, 0.0)[None, None], anc_value)
    return {
        "n": n,
        "wake": wake,
        "x": gpus,
        "backlog": backlog,
        "above": above,
        "under": under,
        "z": z,
        "short": short,
        "anc": anc,
    }


def _add_cap_rows(m: _Matrix, blocks: BlockData, k: Coefficients, v: dict[str, np.ndarray]) -> None:
    """Cap: all asleep and idle + hashing miners + busy GPUs (at TDP) <= cap - margin."""
    x = blocks.inputs
    rhs = x.power_cap_mw[None, :] - blocks.options.cap_margin_mw - k.cap_floor_mw
    cap = m.rows(rhs.shape, -INF, rhs)
    m.add(cap[:, x.class_facility][:, :, None], v["n"], k.cap_per_miner)
    m.add(cap[:, x.pool_facility][:, :, None], v["x"], k.cap_per_gpu)


def _add_balance_rows(m: _Matrix, blocks: BlockData, v: dict[str, np.ndarray]) -> None:
    """Fleet and pool sizes, the backlog of deferrable work, and wake-ups."""
    x = blocks.inputs
    n_b, dt = blocks.n_blocks, blocks.duration_h
    n, gpus, backlog, wake = v["n"], v["x"], v["backlog"], v["wake"]
    # one miner runs at one tier at most
    fleet = m.rows((n_b, len(x.class_keys)), -INF, x.healthy_miners[None, :])
    m.add(fleet[:, :, None], n, 1.0)
    # GPU conservation: busy uses fit the healthy pool, the rest idles
    pool = m.rows((n_b, len(x.pool_keys)), -INF, x.healthy_gpus[None, :])
    m.add(pool[:, :, None], gpus, 1.0)
    # backlog_b = backlog_{b-1} + dt (demand - served) [GPU-h]
    rhs = np.stack([blocks.batch_gpus, blocks.training_gpus], axis=2) * dt[:, None, None]
    rhs[0] += x.backlog_gpu_h
    queue = m.rows(rhs.shape, rhs, rhs)
    m.add(queue, backlog, 1.0)
    m.add(queue[1:], backlog[:-1], -1.0)
    m.add(queue, gpus[:, :, [USE_BATCH, USE_TRAINING]], dt[:, None, None])
    # wake >= active_b - active_{b-1}
    wake_rhs = np.zeros(wake.shape)
    wake_rhs[0] = -x.active_now
    wakes = m.rows(wake.shape, wake_rhs, INF)
    m.add(wakes, wake, 1.0)
    m.add(wakes[:, :, None], n, -1.0)
    m.add(wakes[1:, :, None], n[:-1], 1.0)


def _add_ramp_rows(
    m: _Matrix, blocks: BlockData, k: Coefficients, v: dict[str, np.ndarray]
) -> None:
    """Mining IT power rises at most ``60 r dt`` from one block to the next."""
    x = blocks.inputs
    ramped = np.flatnonzero(np.isfinite(x.ramp_up_mw_per_min))
    if not ramped.size:
        return
    n_b, dt = blocks.n_blocks, blocks.duration_h
    limit = x.ramp_up_mw_per_min[ramped][None, :] * MINUTES_PER_HOUR * dt[:, None]
    limit[0] += k.active_it_now_mw[ramped]
    ramp = np.full((n_b, len(x.facility_ids)), -1, dtype=np.int64)
    ramp[:, ramped] = m.rows((n_b, ramped.size), -INF, limit)
    has_ramp = np.isin(x.class_facility, ramped)
    rows_now = ramp[:, x.class_facility[has_ramp]][:, :, None]
    n = v["n"][:, has_ramp]
    m.add(rows_now, n, k.it_per_miner[has_ramp][None])
    m.add(rows_now[1:], n[:-1], -k.it_per_miner[has_ramp][None])


def _add_grid_request_rows(
    m: _Matrix, blocks: BlockData, k: Coefficients, v: dict[str, np.ndarray]
) -> None:
    """Where a request is active: shortfall >= flexible draw - (1 - share) x baseline."""
    x = blocks.inputs
    event_b, event_f = np.nonzero(blocks.curtail_fraction > 0)
    if not event_b.size:
        return
    rhs = (
        blocks.pue_mining[event_b, event_f] * k.sleep_it_mw[event_f]
        - (1.0 - blocks.curtail_fraction[event_b, event_f])
        * blocks.flexible_baseline_mw[event_b, event_f]
    )
    dr = m.rows((event_b.size,), rhs, INF)
    m.add(dr, v["short"][event_b, event_f], 1.0)
    rows_c, cls = np.nonzero(event_f[:, None] == x.class_facility[None, :])
    m.add(
        dr[rows_c][:, None],
        v["n"][event_b[rows_c], cls],
        -k.energy_per_miner[event_b[rows_c], cls],
    )
    rows_p, pls = np.nonzero(event_f[:, None] == x.pool_facility[None, :])
    m.add(
        dr[rows_p],
        v["x"][event_b[rows_p], pls, USE_SPOT],
        -k.spot_flexible_per_gpu[event_b[rows_p], pls],
    )


def _add_reserve_rows(
    m: _Matrix, blocks: BlockData, k: Coefficients, v: dict[str, np.ndarray]
) -> None:
    """Offers backed by each load group fit that group's curtailable draw."""
    if not blocks.service_names:
        return
    x = blocks.inputs
    deliver = m.rows((blocks.n_blocks, len(x.facility_ids), 2), -INF, 0.0)
    m.add(deliver[:, :, None, :], v["anc"], 1.0)
    m.add(deliver[:, x.class_facility, 0][:, :, None], v["n"], -k.energy_per_miner)
    uses = list(INTERRUPTIBLE_USES)
    m.add(
        deliver[:, x.pool_facility, 1][:, :, None],
        v["x"][:, :, uses],
        -k.energy_per_gpu[:, :, uses],
    )


def _objective_offset(blocks: BlockData, k: Coefficients) -> float:
    """The objective's constant [USD]: the all-asleep, all-idle floor's energy and 4CP, the
    fixed blocks' take-or-pay, the grid-request credit, and minus every must-serve GPU-hour
    at the SLA penalty (each served GPU earns it back through its column)."""
    o = blocks.options
    dt = blocks.duration_h
    sla = o.sla_weight * o.sla_penalty_usd_per_gpu_hour * dt
    return float(
        -(k.energy_floor_mw * k.energy_usd_per_mw).sum()
        - (blocks.block_price_usd_per_mwh * blocks.block_mw).sum() * dt.sum()
        + (blocks.dr_credit_usd_per_mw * blocks.flexible_baseline_mw).sum()
        - (sla[:, None] * (blocks.must_serve_gpus + blocks.reserved_gpus)).sum()
    )


def _add_fixed_block_rows(
    m: _Matrix, blocks: BlockData, k: Coefficients, v: dict[str, np.ndarray]
) -> None:
    """``above - under - draw = -block`` and the big-M pair ``above <= cap z``,
    ``under <= block (1 - z)`` for every fixed-block facility and block."""
    x = blocks.inputs
    n_b = blocks.n_blocks
    cf, pf = x.class_facility, x.pool_facility
    fixed_ids = np.flatnonzero(blocks.is_fixed_block)
    above, under, z = v["above"][:, fixed_ids], v["under"][:, fixed_ids], v["z"][:, fixed_ids]
    rhs = k.energy_floor_mw[:, fixed_ids] - blocks.block_mw[fixed_ids][None, :]
    split = np.full((n_b, len(x.facility_ids)), -1, dtype=np.int64)
    split[:, fixed_ids] = m.rows(rhs.shape, rhs, rhs)
    m.add(split[:, fixed_ids], above, 1.0)
    m.add(split[:, fixed_ids], under, -1.0)
    in_fixed = np.isin(cf, fixed_ids)
    m.add(split[:, cf[in_fixed]][:, :, None], v["n"][:, in_fixed], -k.energy_per_miner[:, in_fixed])
    pools_fixed = np.isin(pf, fixed_ids)
    m.add(
        split[:, pf[pools_fixed]][:, :, None],
        v["x"][:, pools_fixed],
        -k.energy_per_gpu[:, pools_fixed],
    )
    cap = np.broadcast_to(x.power_cap_mw[fixed_ids][None, :], rhs.shape)
    block = np.broadcast_to(blocks.block_mw[fixed_ids][None, :], rhs.shape)
    upper_above = m.rows(rhs.shape, -INF, 0.0)
    m.add(upper_above, above, 1.0)
    m.add(upper_above, z, -cap)
    upper_under = m.rows(rhs.shape, -INF, block)
    m.add(upper_under, under, 1.0)
    m.add(upper_under, z, block)


def solve_matrix_model(
    model: MatrixModel, time_limit_s: float, mip_rel_gap: float, threads: int
) -> SolverOutcome:
    """Solve ``model`` with HiGHS and read the values back per variable family."""
    h = _new_highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(time_limit_s))
    h.setOptionValue("mip_rel_gap", float(mip_rel_gap))
    h.setOptionValue("threads", int(threads))
    a = model.matrix
    n_cols = model.col_cost.size
    h.passModel(
        n_cols,
        a.shape[0],
        a.nnz,
        int(highspy.MatrixFormat.kRowwise),
        int(highspy.ObjSense.kMaximize),
        model.offset,
        model.col_cost,
        model.col_lower,
        model.col_upper,
        model.row_lower,
        model.row_upper,
        a.indptr.astype(np.int32),
        a.indices.astype(np.int32),
        a.data,
        model.integrality,
    )
    h.run()
    return outcome_from_highs(h, model.variables)


def outcome_from_highs(h: highspy.Highs, variables: dict[str, np.ndarray]) -> SolverOutcome:
    """Map a finished HiGHS run to a :class:`SolverOutcome`."""
    model_status = h.getModelStatus()
    info = h.getInfo()
    has_solution = info.primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible
    gap = float(info.mip_gap) if np.isfinite(info.mip_gap) else float("nan")
    text = h.modelStatusToString(model_status)
    statuses = highspy.HighsModelStatus
    status = dispatch_status(
        model_status,
        optimal=statuses.kOptimal,
        infeasible=(statuses.kInfeasible, statuses.kUnboundedOrInfeasible),
        stopped_early=(
            statuses.kTimeLimit,
            statuses.kIterationLimit,
            statuses.kSolutionLimit,
            statuses.kInterrupt,
        ),
        has_solution=has_solution,
    )
    if status not in ("optimal", "feasible") or not has_solution:
        return SolverOutcome(status, float("nan"), gap, f"HiGHS: {text}", None)
    solution = np.asarray(h.getSolution().col_value)
    values = {name: solution[index] for name, index in variables.items()}
    return SolverOutcome(
        status, float(info.objective_function_value), gap, f"HiGHS: {text}", values
    )


def _new_highs() -> highspy.Highs:
    """A HiGHS instance, without the licence banner HiGHS prints to stdout on the first
    instance of a process (before any option can silence it)."""
    _absorb_banner()
    return highspy.Highs()


@functools.cache
def _absorb_banner() -> None:
    """Build one throw-away instance with stdout pointed at /dev/null (once per process)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
