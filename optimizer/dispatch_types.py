"""Options, results and errors of the dispatch MILP (see optimizer.dispatch for the model).

Everything here is a frozen value: :class:`DispatchOptions` (solver settings and the
multi-objective weights), :class:`AncillaryService` (one reserve product), and what a solve
returns, :class:`DispatchResult` with its :class:`DispatchSchedule` for the whole horizon.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from optimizer.power import SPOT_LOAD_FRACTION
from optimizer.types import Plan

DispatchStatus = Literal["optimal", "feasible", "infeasible", "timeout", "error"]
"""``optimal``: solved to the gap; ``feasible``: a solution but not proven optimal (time
limit hit with an incumbent); ``infeasible``: no plan meets the hard constraints;
``timeout``: the time limit passed before any solution; ``error``: the solver failed."""

GPU_USES = ("realtime", "reserved", "batch", "training", "spot")
"""Busy uses of a GPU in the model, in column order; the rest of a pool idles."""
DEFERRABLE_USES = ("batch", "training")
"""GPU uses whose work may wait within the horizon (a backlog in GPU-hours)."""
LOAD_GROUPS = ("mining", "gpu")
"""Curtailable load groups that may back an ancillary offer: sleeping miners, and
interruptible GPU work (batch, training, spot) going idle."""

MONEY_STREAMS = (
    "mining",
    "realtime",
    "reserved",
    "batch",
    "training",
    "spot",
    "ancillary",
    "resale",
    "demand_response",
    "energy",
    "four_cp",
    "ancillary_deployment",
    "cycling",
)
"""Streams of money in ``DispatchSchedule.value_usd`` (expected values where uncertain)."""
PENALTY_STREAMS = ("sla_penalty", "deferral")
"""Model penalties in ``value_usd`` at unit weight: unmet must-serve GPU-hours and waiting
deferrable work; not money, but part of the objective."""


class DispatchInputError(ValueError):
    """Dispatch inputs are unusable; the message names the field and the reason."""


@dataclass(frozen=True, slots=True)
class AncillaryService:
    """One ERCOT reserve product a flexible load can sell.

    Attributes:
        name: service key as in ``Snapshot.ancillary_usd_per_mw_h`` (``RRS``, ``ECRS``...).
        response_s: time within which offered load must be shed once deployed [s]; a load
            group backs the service only if it can be shed at least this fast.
        deploy_probability: expected share of the offered MW-hours that are deployed [-];
            the expected cost of an offer is this share times the value of the load shed.
    """

    name: str
    response_s: float
    deploy_probability: float


DEFAULT_SERVICES = (
    AncillaryService("RRS", response_s=0.5, deploy_probability=0.01),
    AncillaryService("ECRS", response_s=600.0, deploy_probability=0.01),
    AncillaryService("NSPIN", response_s=1800.0, deploy_probability=0.02),
)
"""RRS from load resources trips on under-frequency relays (~0.5 s); ECRS must respond in
10 minutes and Non-Spin in 30 (ERCOT Nodal Protocols, DESIGN.md domain facts). Deployment
shares are planning assumptions: reserves are deployed for a small share of the hours."""


@dataclass(frozen=True, slots=True)
class DispatchOptions:
    """How the dispatch model is built and solved.

    Attributes:
        power_tiers: power targets a miner may run at, as fractions of nameplate [-];
            tiers below a class's ``min_power_fraction`` are not offered to it.
        hashrate_exponent: hashrate scales as ``tier ** exponent`` [-] (models.hardware).
        fine_steps: leading horizon steps kept at the input resolution [-].
        block_steps: later steps are merged into blocks of this many [-] (e.g. 12 x 300 s
            = hourly); ``1`` keeps the whole horizon at the input resolution.
        integer_miners: miner counts are integers (else continuous, rounded down in the plan).
        integer_blocks: only the first this many blocks have integer counts, later ones are
            relaxed (None: all); the plan comes from block 0.
        allow_unmet_must_serve: realtime inference and reserved GPUs below demand are allowed
            at ``sla_penalty_usd_per_gpu_hour`` (the model is then always feasible when the
            all-asleep, all-idle floor fits the cap); ``False`` makes them hard.
        sla_penalty_usd_per_gpu_hour: penalty per GPU-hour of unmet must-serve demand [USD].
        sla_weight: multiplies the SLA penalty in the objective [-].
        grid_support_weight: multiplies the money a grid-request shortfall costs [-].
        grid_shortfall_usd_per_mwh: extra value put on honouring a grid request beyond its
            payment (program rules, reputation) [USD/MWh of shortfall].
        wake_cost_usd_per_miner: wear cost of waking one sleeping miner [USD].
        deferral_usd_per_gpu_hour_h: cost of one GPU-hour of batch/training work waiting one
            hour [USD/(GPU-h x h)]; keeps deferrable work prompt when prices are flat.
        services: ancillary products that may be offered (others are ignored).
        mining_response_s: how fast mining load can be shed (relay-tripped feeders) [s].
        gpu_response_s: how fast interruptible GPU work can be shed (preempt/checkpoint) [s].
        spot_load_fraction: a spot GPU draws this fraction of TDP on average [-] (energy);
            the cap counts spot GPUs at TDP, as the twin's GPU budget does.
        cap_margin_mw: the model keeps this far below each cap so that solver tolerances
            never put a plan over it [MW].
        time_limit_s: wall-clock limit of one solve [s].
        mip_rel_gap: relative MIP gap at which a solution counts as optimal [-].
        threads: solver threads.
    """

    power_tiers: tuple[float, ...] = (1.0, 0.85, 0.7)
    hashrate_exponent: float = 0.8
    fine_steps: int = 24
    block_steps: int = 12
    integer_miners: bool = True
    integer_blocks: int | None = 1
    allow_unmet_must_serve: bool = True
    sla_penalty_usd_per_gpu_hour: float = 1000.0
    sla_weight: float = 1.0
    grid_support_weight: float = 1.0
    grid_shortfall_usd_per_mwh: float = 0.0
    wake_cost_usd_per_miner: float = 0.10
    deferral_usd_per_gpu_hour_h: float = 0.05
    services: tuple[AncillaryService, ...] = DEFAULT_SERVICES
    mining_response_s: float = 0.5
    gpu_response_s: float = 60.0
    spot_load_fraction: float = SPOT_LOAD_FRACTION
    cap_margin_mw: float = 1e-6
    time_limit_s: float = 10.0
    mip_rel_gap: float = 1e-4
    threads: int = 1

    def __post_init__(self) -> None:
        tiers = np.asarray(self.power_tiers, dtype=float)
        if tiers.size == 0 or not np.all((tiers > 0) & (tiers <= 1)):
            raise DispatchInputError("options.power_tiers: need at least one tier in (0, 1]")
        if len(set(self.power_tiers)) != len(self.power_tiers):
            raise DispatchInputError("options.power_tiers: tiers must be distinct")
        if self.fine_steps < 1:
            raise DispatchInputError("options.fine_steps: must be >= 1")
        if self.integer_blocks is not None and self.integer_blocks < 0:
            raise DispatchInputError("options.integer_blocks: must be >= 0 or None")
        if self.block_steps < 1:
            raise DispatchInputError("options.block_steps: must be >= 1")
        non_negative = {
            "hashrate_exponent": self.hashrate_exponent,
            "sla_penalty_usd_per_gpu_hour": self.sla_penalty_usd_per_gpu_hour,
            "sla_weight": self.sla_weight,
            "grid_support_weight": self.grid_support_weight,
            "grid_shortfall_usd_per_mwh": self.grid_shortfall_usd_per_mwh,
            "wake_cost_usd_per_miner": self.wake_cost_usd_per_miner,
            "deferral_usd_per_gpu_hour_h": self.deferral_usd_per_gpu_hour_h,
            "mining_response_s": self.mining_response_s,
            "gpu_response_s": self.gpu_response_s,
            "cap_margin_mw": self.cap_margin_mw,
            "mip_rel_gap": self.mip_rel_gap,
        }
        for name, value in non_negative.items():
            if not (np.isfinite(value) and value >= 0):
                raise DispatchInputError(f"options.{name}: must be finite and >= 0, got {value}")
        if not 0 < self.spot_load_fraction <= 1:
            raise DispatchInputError("options.spot_load_fraction: must be in (0, 1]")
        if not self.time_limit_s >= 0:
            raise DispatchInputError("options.time_limit_s: must be >= 0")
        if self.threads < 1:
            raise DispatchInputError("options.threads: must be >= 1")
        names = [s.name for s in self.services]
        if len(set(names)) != len(names):
            raise DispatchInputError("options.services: service names must be distinct")
        for service in self.services:
            if not 0 <= service.deploy_probability <= 1 or service.response_s < 0:
                raise DispatchInputError(
                    f"options.services[{service.name}]: deploy_probability must be in [0, 1] "
                    "and response_s >= 0"
                )


@dataclass(frozen=True, eq=False)
class DispatchSchedule:
    """The solved plan for every block of the horizon (for reports and allocation advice).

    Blocks are the model's time periods: the first ``fine_steps`` input steps one by one,
    then merged blocks (see :class:`DispatchOptions`). ``block_of_step[i]`` is the block that
    holds input step ``i``, so ``array[block_of_step]`` expands any block array to steps.
    Facility axes follow ``facility_ids``, class axes ``class_keys`` and pool axes
    ``pool_keys`` (each a ``(facility_id, model_or_type_id)`` pair).

    Attributes:
        block_start_s: block start [s after the snapshot], shape [B].
        block_duration_s: block length [s], shape [B].
        block_of_step: block of each input step, shape [T].
        asic_active: hashing miners per class, [B, C].
        asic_by_tier: hashing miners per class and power tier, [B, C, K].
        asic_power_fraction: mean power target of the hashing miners, [B, C] (1 when none).
        power_tiers: the tiers of the last axis of ``asic_by_tier`` [-].
        hashrate_ths: facility hashrate [TH/s], [B, F].
        mining_it_mw: mining IT power incl. sleeping miners [MW], [B, F].
        gpu_it_mw: GPU IT power (spot at its mean load) [MW], [B, F].
        facility_mw: facility draw used for energy cost, IT x PUE [MW], [B, F].
        cap_mw_used: facility draw as the cap counts it (PUE at its block maximum, busy GPUs
            at TDP) [MW], [B, F]; never above the cap.
        gpus_by_use: GPUs per pool and use (``GPU_USES`` order, then idle), [B, P, 6].
        unmet_must_serve_gpus: realtime plus reserved GPUs below demand, [B, P].
        backlog_gpu_h: deferred batch and training work at block end [GPU-h], [B, P, 2].
        ancillary_offer_mw: offered capacity per service [MW], each [B, F].
        resale_mw: unused fixed-block power sold back [MW], [B, F].
        above_block_mw: draw above a fixed block, bought at index [MW], [B, F].
        curtailed_mw: mining IT power not drawn versus all healthy miners at nameplate
            [MW], [B, F].
        grid_shortfall_mw: requested curtailment not delivered [MW], [B, F].
        wakes: miners woken at the block start per class, [B, C].
        value_usd: value per stream (positive = revenue, negative = cost) [USD], each
            [B, F]: the money streams of :data:`MONEY_STREAMS` and the model penalties of
            :data:`PENALTY_STREAMS`; at unit weights they sum to the objective.
    """

    facility_ids: tuple[str, ...]
    class_keys: tuple[tuple[str, str], ...]
    pool_keys: tuple[tuple[str, str], ...]
    power_tiers: tuple[float, ...]
    block_start_s: np.ndarray
    block_duration_s: np.ndarray
    block_of_step: np.ndarray
    asic_active: np.ndarray
    asic_by_tier: np.ndarray
    asic_power_fraction: np.ndarray
    hashrate_ths: np.ndarray
    mining_it_mw: np.ndarray
    gpu_it_mw: np.ndarray
    facility_mw: np.ndarray
    cap_mw_used: np.ndarray
    gpus_by_use: np.ndarray
    unmet_must_serve_gpus: np.ndarray
    backlog_gpu_h: np.ndarray
    ancillary_offer_mw: dict[str, np.ndarray]
    resale_mw: np.ndarray
    above_block_mw: np.ndarray
    curtailed_mw: np.ndarray
    grid_shortfall_mw: np.ndarray
    wakes: np.ndarray
    value_usd: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def net_revenue_usd(self) -> float:
        """Money over the horizon [USD]: the :data:`MONEY_STREAMS`, without penalties."""
        return float(sum(self.value_usd[name].sum() for name in MONEY_STREAMS))


@dataclass(frozen=True, eq=False)
class DispatchResult:
    """What one solve returns; never raised into the control loop.

    Attributes:
        status: see :data:`DispatchStatus`.
        objective_usd: the weighted objective of the returned schedule [USD] (NaN when no
            schedule was found this solve).
        runtime_s: wall time of build, solve and read-back [s].
        plan: the plan for the first interval. From this solve when it found a schedule;
            otherwise the last feasible plan (trimmed to today's caps), or an all-asleep
            safe plan when there has never been one — ``used_fallback`` says which.
        schedule: the whole-horizon schedule of this solve, or None when it found none.
        message: a human-readable account of the outcome (and of any fallback).
        used_fallback: True when ``plan`` is not from this solve.
        mip_gap: relative gap of the returned solution [-] (NaN when unknown).
    """

    status: DispatchStatus
    objective_usd: float
    runtime_s: float
    plan: Plan
    schedule: DispatchSchedule | None
    message: str
    used_fallback: bool = False
    mip_gap: float = float("nan")
