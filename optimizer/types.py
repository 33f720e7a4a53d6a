"""Typed values that cross the boundary between the twin and the optimizer.

The controller builds a :class:`Snapshot` every dispatch interval (observe), a policy turns
it into a :class:`Plan` (decide), and the controller turns the plan into driver commands
(act). Both are frozen: the optimizer never mutates twin state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optimizer.dispatch_inputs import HorizonData


@dataclass(frozen=True, slots=True)
class MarketState:
    """Bitcoin and GPU-market conditions at the start of an interval."""

    btc_price_usd: float
    hashprice_usd_per_ths_day: float
    """Expected miner revenue per TH/s per day after pool fee [USD/(TH/s)/day]."""
    difficulty: float
    network_hashrate_ehs: float
    block_subsidy_btc: float
    fees_btc_per_block: float
    gpu_rental_multiplier: float
    """Multiplier on each GPU type's catalog rental index [-]."""


@dataclass(frozen=True, slots=True)
class AsicClassState:
    """The miners of one model at one facility."""

    model_id: str
    efficiency_j_per_th: float
    hashrate_ths_each: float
    """Nameplate hashrate of one miner [TH/s]."""
    power_w_each: float
    """Nameplate power of one miner [W]."""
    sleep_power_w_each: float
    """Draw of one sleeping miner [W]."""
    min_power_fraction: float
    """Lowest power target the firmware accepts [-]."""
    count: int
    active: int
    sleeping: int
    failed: int


@dataclass(frozen=True, slots=True)
class GpuPoolState:
    """The GPUs of one type at one facility."""

    type_id: str
    tdp_w: float
    idle_w: float
    count: int
    busy: int
    """GPUs running customer jobs at the start of the interval."""
    failed: int
    rental_usd_per_gpu_hour: float
    """Current spot rental price for this type [USD/GPU-h] (index x multiplier)."""


@dataclass(frozen=True, slots=True)
class FacilityState:
    """One facility at the start of an interval."""

    facility_id: str
    price_usd_per_mwh: float
    """Real-time settlement point price [USD/MWh]."""
    marginal_energy_usd_per_mwh: float
    """What one more MWh drawn costs under the contract (price + adder for index; the
    sell-back price forgone inside a fixed block) [USD/MWh]."""
    power_cap_mw: float
    pue_mining: float
    pue_ai: float
    ambient_c: float
    asic_classes: tuple[AsicClassState, ...]
    gpu_pools: tuple[GpuPoolState, ...]
    curtail_request_fraction: float = 0.0
    """Share of flexible load a grid event asks to shed now [0-1]."""
    four_cp_interval: bool = False
    """True when this interval is a (known or forecast) 4CP system-peak interval."""
    queued_gpu_demand: int = 0
    """GPUs asked for by jobs waiting for this facility [-]."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a policy may look at: state now, no future."""

    t_s: float
    interval_s: float
    market: MarketState
    facilities: tuple[FacilityState, ...]
    ancillary_usd_per_mw_h: dict[str, float] = field(default_factory=dict)
    horizon: HorizonData | None = None
    """The coming hours as known to a look-ahead policy (forecasts for ``mpc``, truth for
    ``oracle``); None for policies that look only at the present."""

    def facility(self, facility_id: str) -> FacilityState:
        """The facility with this id (KeyError if absent)."""
        for state in self.facilities:
            if state.facility_id == facility_id:
                return state
        raise KeyError(facility_id)


@dataclass(frozen=True, slots=True)
class FacilityPlan:
    """What one facility should do this interval.

    Attributes:
        asic_active: target count of hashing miners per ASIC model id; the rest sleep.
        asic_power_fraction: power target per model as a fraction of nameplate [-].
        gpu_power_budget_mw: facility-level power (PUE included) the GPUs may draw [MW];
            the scheduler admits jobs only within it.
        gpu_spot: idle GPUs per type to rent out on the spot market this interval.
        ancillary_offer_mw: capacity offered per service (RRS, ECRS, NSPIN, ...) [MW].
    """

    facility_id: str
    asic_active: dict[str, int]
    asic_power_fraction: dict[str, float]
    gpu_power_budget_mw: float
    gpu_spot: dict[str, int] = field(default_factory=dict)
    ancillary_offer_mw: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Plan:
    """A policy's decision for every facility, with a short reason for the record."""

    facilities: tuple[FacilityPlan, ...]
    policy: str
    note: str = ""

    def facility(self, facility_id: str) -> FacilityPlan:
        """The plan of this facility (KeyError if absent)."""
        for plan in self.facilities:
            if plan.facility_id == facility_id:
                return plan
        raise KeyError(facility_id)
