r"""Rolling-horizon dispatch MILP for all facilities together (Pyomo reference + HiGHS).

Every dispatch interval the mpc policy (or the perfect-foresight oracle) asks: given the
fleet now and what is known about the next hours, how many miners of each model should
hash and at which power target, how should each GPU pool be split between customer work,
spot rental and idling, what reserve capacity should be offered, and what is the resulting
first-interval :class:`~optimizer.types.Plan`? The answer maximises expected net revenue
over the horizon; only its first block is applied, then the horizon rolls on.

Usage::

    inputs = inputs_from_snapshot(snapshot, HorizonData(...), contracts)
    solver = DispatchSolver(DispatchOptions(time_limit_s=0.5))
    result = solver.solve(inputs)  # DispatchResult: status, plan, schedule, message

Modules: inputs (optimizer.dispatch_inputs), time blocks (dispatch_blocks), coefficients
(dispatch_coefficients), the matrix model and its HiGHS solve (dispatch_highs, fast path),
the same model in Pyomo (dispatch_pyomo, reference), read-back (dispatch_readback), the
solver object with fallbacks (dispatch_solver), options and results (dispatch_types).

Formulation
===========

**Time.** Input steps of ``step_s`` (the dispatch interval). The first ``fine_steps`` are
blocks of their own; later steps are merged into blocks of ``block_steps``, broken early
wherever the 4CP probability or a grid request changes (default: 2 h at 5 min, then
hourly: 288 steps -> 46 blocks, a few more around 4CP windows and events). Decisions are
constant within a block of length :math:`\Delta_b` [h]; block parameters are time means
(PUE: the mean for energy and the block maximum for the cap; 4CP weights and grid-request
payments: sums), so the money of a constant decision is exact (optimizer.dispatch_blocks).
Miner counts are integer in the first ``integer_blocks`` blocks (default 1: the block that
becomes the plan) and relaxed after it, which keeps a 24 h solve under 0.1 s; on the
baseline the relaxed tail changes the horizon value by < 1e-5 relative.

**Sets.** :math:`b \in B` blocks; :math:`f \in F` facilities; :math:`c \in C` ASIC classes
(one model at one facility, :math:`f(c)`); :math:`k \in K` power tiers (e.g. 1.0, 0.85,
0.7 of nameplate, only those >= the class's minimum); :math:`p \in P` GPU pools (one type
at one facility, :math:`f(p)`); uses :math:`u \in U` = {realtime, reserved, batch,
training, spot}; deferrable :math:`j \in J` = {batch, training}; :math:`s \in S`
ancillary services (RRS, ECRS, NSPIN); load groups :math:`l \in L` = {mining, gpu}.

**Parameters** (per block unless static).

=============================  ==============================================  ============
symbol                         meaning                                         unit
=============================  ==============================================  ============
:math:`\bar P_f`               interconnect cap (less a 1e-6 MW margin)        MW
:math:`\pi_{bf}`               real-time price (mean)                          USD/MWh
:math:`a_f`                    contract adder                                  USD/MWh
:math:`\bar B_f, c_f`          fixed block size and price (0 for index)        MW, USD/MWh
:math:`\sigma_{bf}`            sell-back price: :math:`\pi_{bf}` or 0          USD/MWh
:math:`\eta^m, \eta^a`         PUE of mining / AI hall (mean; cap: max)        --
:math:`h_c, W_c, w_c`          hashrate, power, sleep power of one miner       TH/s, W, W
:math:`\phi_k, \phi_k^e`       power tier, hashrate factor (e = 0.8)           --
:math:`H_c, A^0_c`             healthy miners, hashing now                     miners
:math:`\rho_b`                 hashprice (after pool fee)                      USD/TH/s/day
:math:`N_p, T_p, I_p`          healthy GPUs, TDP, idle power                   GPUs, W, W
:math:`\lambda_u`              load factor: 1, spot 0.85 (energy only)         --
:math:`v_{bpu}`                price per GPU-hour of use u (spot: rental)      USD/GPU-h
:math:`D_{bp}, R_{bp}`         must-serve realtime / reserved GPUs             GPUs
:math:`Q_{bpj}, Q^0_{pj}`      deferrable demand / backlog now                 GPUs, GPU-h
:math:`\omega_{bf}`            expected 4CP charge per MW (prob x rate)        USD/MW
:math:`\kappa_{bf}, q_{bf}`    grid-request share (max), payment               --, USD/MWh
:math:`G_{bf}`                 flexible baseline: all miners at nameplate      MW
:math:`r_f`                    mining ramp-up limit                            MW/min
:math:`\alpha_{bs}`            ancillary capacity price                        USD/MW-h
:math:`\delta_s, \nu_{bfl}`    deployment probability, value lost per MWh      --, USD/MWh
                               shed (cheapest load of the group less the
                               marginal energy price, >= 0)
:math:`\epsilon_{ls}`          group l responds within service s's time        {0, 1}
:math:`\gamma, \beta, \mu`     wake cost, SLA penalty, deferral cost           USD/miner,
                                                                               USD/GPU-h,
                                                                               USD/GPU-h/h
=============================  ==============================================  ============

**Variables.** :math:`n_{bck} \in \mathbb{Z}_{\ge 0}` miners of class c hashing at tier k
(integer, or relaxed by option); :math:`y_{bc} \ge 0` miners woken;
:math:`x_{bpu} \ge 0` GPUs of pool p busy with use u (the rest idle); :math:`g_{bpj} \ge 0`
deferred work at block end [GPU-h]; :math:`e^+_{bf}, e^-_{bf} \ge 0` draw above / unused
part of a fixed block [MW]; :math:`z_{bf} \in [0, 1]` (binary only where buying above the
block is cheaper than selling it back, which makes the split non-convex);
:math:`d_{bf} \ge 0` grid-request shortfall [MW]; :math:`o_{bfsl} \ge 0` reserve offered
by service s backed by load group l [MW].

**Expressions.** Facility draw (energy PUE; the cap version uses the block's peak PUE and
counts every busy GPU at TDP):

.. math::

    E_{bf} = \eta^m_{bf} \sum_{c \in f} \Big( H_c w_c + \sum_k n_{bck}(W_c\phi_k - w_c)\Big)
      10^{-6} + \eta^a_{bf} \sum_{p \in f} \Big( N_p I_p + \sum_u x_{bpu}
      (\lambda_u T_p - I_p) \Big) 10^{-6}

**Constraints** (all b, f, c, p):

1. cap (hard): :math:`E^{cap}_{bf} \le \bar P_f`;
2. fleet: :math:`\sum_k n_{bck} \le H_c`, :math:`n_{bck} = 0` for tiers below the minimum;
3. GPU conservation: :math:`\sum_u x_{bpu} \le N_p`;
4. must-serve: :math:`x_{bp,rt} \le D_{bp}`, :math:`x_{bp,res} \le R_{bp}`; the unmet part
   is penalised (``allow_unmet_must_serve``) or forbidden (lower bound = demand);
5. deferrable work: :math:`g_{bpj} = g_{b-1,pj} + \Delta_b (Q_{bpj} - x_{bpj})`,
   :math:`g_{-1} = Q^0`;
6. wake-ups: :math:`y_{bc} \ge \sum_k n_{bck} - \sum_k n_{b-1,ck}`, :math:`n_{-1} = A^0`;
7. ramp-up of mining IT power: :math:`M_{bf} - M_{b-1,f} \le 60\, r_f \Delta_b` with
   :math:`M_{bf} = \sum_{c \in f} \sum_k n_{bck}(W_c \phi_k - w_c) 10^{-6}`
   (shedding is instant: a sleep command takes seconds);
8. fixed block: :math:`e^+_{bf} - e^-_{bf} = E_{bf} - \bar B_f`,
   :math:`e^+ \le \bar P_f z`, :math:`e^- \le \bar B_f (1 - z)`;
9. grid request (only where :math:`\kappa_{bf} > 0`): :math:`d_{bf} \ge \eta^m_{bf}
   (\text{mining IT}) + \eta^a_{bf}\lambda T_p x_{bp,spot} - (1-\kappa_{bf}) G_{bf}`
   (twin.accounting: the shed share is paid, a shortfall charged at the same rate);
10. reserve deliverability: :math:`\sum_s o_{bfsl} \le` the group's curtailable draw
    (mining: miners hashing, down to sleep; gpu: batch, training and spot GPUs down to
    idle), and :math:`o_{bfsl} = 0` unless :math:`\epsilon_{ls}` and the service is priced.

**Objective** (maximise; weights in :class:`DispatchOptions`):

.. math::

    \sum_b \Big[ \sum_{c,k} \Delta_b \frac{\rho_b}{24} h_c \phi_k^e n_{bck}
    + \sum_{p,u} \Delta_b v_{bpu} x_{bpu}
    + \sum_{f,s,l} \Delta_b (\alpha_{bs} - \delta_s \nu_{bfl}) o_{bfsl}
    - \sum_f \text{energy}_{bf} - \sum_f \omega_{bf} E_{bf}
    + \sum_f q_{bf}\Delta_b(\kappa_{bf} G_{bf} - 2 W_{grid} d_{bf})
    - \gamma \sum_c y_{bc}
    - W_{sla} \beta \Delta_b \sum_p (D_{bp} - x_{bp,rt} + R_{bp} - x_{bp,res})
    - \mu \Delta_b \sum_{p,j} g_{bpj} \Big]

with energy :math:`(\pi + a)\Delta E` on an index contract and
:math:`c \bar B \Delta + (\pi + a)\Delta e^+ - \sigma \Delta e^-` on a fixed block
(models.facility.settle_energy). The first block becomes the plan: per class the active
count and the count-weighted mean tier (same power, at least the hashrate: hashrate is
concave in the tier), the GPU budget of every busy GPU at TDP plus idle GPUs, spot GPUs per
type and the reserve offers.

**Approximations.** Time blocks after ``fine_steps`` (constant decisions for an hour);
integer counts only in the first blocks; power tiers instead of a continuous target; GPU
counts are continuous (the plan floors spot counts); reserve deployment is an expected cost
with a fixed probability, valued at the cheapest load of a group; the deliverability of
reserves ignores overlap with grid-event curtailment; ramp limits apply to ramping up only;
deferrable work not served by the horizon end is simply not earned; the hashrate exponent
is one option for all models (the snapshot does not carry each model's).
"""

from __future__ import annotations

from optimizer.dispatch_inputs import (
    DEFAULT_GPU_PRICES_USD_PER_GPU_HOUR,
    ContractTerms,
    DispatchInputs,
    HorizonData,
    class_keys,
    inputs_from_snapshot,
    pool_keys,
)
from optimizer.dispatch_solver import DispatchSolver, safe_plan
from optimizer.dispatch_types import (
    DEFAULT_SERVICES,
    GPU_USES,
    MONEY_STREAMS,
    PENALTY_STREAMS,
    AncillaryService,
    DispatchInputError,
    DispatchOptions,
    DispatchResult,
    DispatchSchedule,
    DispatchStatus,
)


def solve_dispatch(
    inputs: DispatchInputs, options: DispatchOptions | None = None
) -> DispatchResult:
    """One stateless solve (no last-plan memory): a fresh :class:`DispatchSolver`."""
    return DispatchSolver(options or DispatchOptions()).solve(inputs)


__all__ = [
    "DEFAULT_GPU_PRICES_USD_PER_GPU_HOUR",
    "DEFAULT_SERVICES",
    "GPU_USES",
    "MONEY_STREAMS",
    "PENALTY_STREAMS",
    "AncillaryService",
    "ContractTerms",
    "DispatchInputError",
    "DispatchInputs",
    "DispatchOptions",
    "DispatchResult",
    "DispatchSchedule",
    "DispatchSolver",
    "DispatchStatus",
    "HorizonData",
    "class_keys",
    "inputs_from_snapshot",
    "pool_keys",
    "safe_plan",
    "solve_dispatch",
]
