"""Dispatch policies: a snapshot in, a plan out.

Every policy shares one allocation skeleton (:func:`allocate`): the AI hall gets a power
budget for all its healthy GPUs at TDP (GPU work earns far more per MWh than mining), mining
gets what is left under the facility cap, grid curtailment requests shed mining least
efficient first, and idle GPUs may be rented out on the spot market. Policies differ in
which miners they *want* hashing:

* ``always_on`` — every healthy miner, whatever the price;
* ``strike`` — a miner model stops when the marginal energy price has been above its strike
  for ``intervals_above`` intervals in a row, and restarts after ``intervals_below``
  intervals below a lower strike (hysteresis against on/off cycling wear).

A model's strike is the price at which it breaks even: revenue per facility MWh is
``hashprice / (J/TH * 24 / 1e6) / PUE`` [USD/MWh]. Less efficient models have lower
strikes, so as the price rises they are shed first and they are the last restored: the
fleet's load follows a step curve of price.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from optimizer.power import SPOT_LOAD_FRACTION, asic_mw, fit_asics_to_budget, gpu_full_mw
from optimizer.types import AsicClassState, FacilityPlan, FacilityState, Plan, Snapshot
from twin.scenario import FixedBlockContract, IndexContract


class Policy(Protocol):
    """Anything that turns a snapshot into a plan (may keep state between calls)."""

    name: str

    def decide(self, snapshot: Snapshot) -> Plan:
        """The plan for the interval starting at ``snapshot.t_s``."""
        ...


def breakeven_usd_per_mwh(
    cls: AsicClassState, hashprice_usd_per_ths_day: float, pue: float
) -> float:
    """Facility energy price at which this model's mining revenue equals its energy cost
    [USD/MWh]: ``hashprice / (J/TH * 24 / 1e6) / PUE``."""
    return hashprice_usd_per_ths_day / (cls.efficiency_j_per_th * 24.0 / 1e6) / pue


def spot_breakeven_usd_per_mwh(rental_usd_per_gpu_hour: float, tdp_w: float, pue: float) -> float:
    """Energy price above which renting an idle GPU out loses money [USD/MWh]."""
    return rental_usd_per_gpu_hour / (tdp_w * SPOT_LOAD_FRACTION * pue / 1e6)


def allocate(
    facility: FacilityState,
    wanted_active: dict[str, int],
    *,
    sell_idle_gpus_on_spot: bool,
    respond_to_grid_events: bool,
    spot_energy_price_usd_per_mwh: float | None = None,
) -> FacilityPlan:
    """The shared allocation skeleton: GPU budget first, mining in what is left.

    ``wanted_active`` is how many miners of each model the policy would like hashing; the
    result never exceeds the power cap (see optimizer.power) and sheds
    ``curtail_request_fraction`` of mining when a grid event asks and
    ``respond_to_grid_events`` is set.
    """
    fraction = {c.model_id: 1.0 for c in facility.asic_classes}
    asleep_mw = sum(asic_mw(c, 0, 1.0, facility.pue_mining) for c in facility.asic_classes)
    gpu_budget_mw = min(
        gpu_full_mw(facility.gpu_pools, facility.pue_ai),
        max(0.0, facility.power_cap_mw - asleep_mw),
    )
    mining_budget_mw = facility.power_cap_mw - gpu_budget_mw
    active = {
        c.model_id: max(0, min(wanted_active.get(c.model_id, 0), c.count - c.failed))
        for c in facility.asic_classes
    }
    active = fit_asics_to_budget(facility, active, fraction, mining_budget_mw)
    if respond_to_grid_events and facility.curtail_request_fraction > 0:
        active = _shed_for_event(facility, active, facility.curtail_request_fraction)
    spot: dict[str, int] = {}
    for pool in facility.gpu_pools:
        idle = max(0, pool.count - pool.failed - pool.busy)
        sell = sell_idle_gpus_on_spot
        if spot_energy_price_usd_per_mwh is not None:
            sell = sell and spot_energy_price_usd_per_mwh < spot_breakeven_usd_per_mwh(
                pool.rental_usd_per_gpu_hour, pool.tdp_w, facility.pue_ai
            )
        if respond_to_grid_events and facility.curtail_request_fraction > 0:
            sell = False
        spot[pool.type_id] = idle if sell else 0
    return FacilityPlan(
        facility_id=facility.facility_id,
        asic_active=active,
        asic_power_fraction=fraction,
        gpu_power_budget_mw=gpu_budget_mw,
        gpu_spot=spot,
    )


class _AllocationSwitches(Protocol):
    """The allocation switches of the present-only policies (always_on, strike, greedy)."""

    sell_idle_gpus_on_spot: bool
    respond_to_grid_events: bool


def _allocate_with(
    policy: _AllocationSwitches,
    facility: FacilityState,
    wanted_active: dict[str, int],
    spot_energy_price_usd_per_mwh: float | None = None,
) -> FacilityPlan:
    """:func:`allocate` with ``policy``'s spot and grid-event switches."""
    return allocate(
        facility,
        wanted_active,
        sell_idle_gpus_on_spot=policy.sell_idle_gpus_on_spot,
        respond_to_grid_events=policy.respond_to_grid_events,
        spot_energy_price_usd_per_mwh=spot_energy_price_usd_per_mwh,
    )


def _shed_for_event(
    facility: FacilityState, active: dict[str, int], curtail_fraction: float
) -> dict[str, int]:
    """Keep at most ``1 - curtail_fraction`` of the healthy miners hashing, shedding the
    least efficient first."""
    healthy = sum(c.count - c.failed for c in facility.asic_classes)
    allowed = int((1.0 - curtail_fraction) * healthy)
    to_shed = sum(active.values()) - allowed
    result = dict(active)
    for cls in sorted(facility.asic_classes, key=lambda c: -c.efficiency_j_per_th):
        if to_shed <= 0:
            break
        shed = min(result[cls.model_id], to_shed)
        result[cls.model_id] -= shed
        to_shed -= shed
    return result


@dataclass
class AlwaysOn:
    """Every healthy miner hashes at all times; no price response."""

    sell_idle_gpus_on_spot: bool = True
    respond_to_grid_events: bool = True
    name: str = "always_on"

    def decide(self, snapshot: Snapshot) -> Plan:
        plans = tuple(
            _allocate_with(self, f, {c.model_id: c.count for c in f.asic_classes})
            for f in snapshot.facilities
        )
        return Plan(plans, self.name)


@dataclass
class _StrikeCounter:
    curtailed: bool = False
    above: int = 0
    below: int = 0


@dataclass
class Strike:
    """Curtail each miner model above its strike price, with hysteresis (module docstring)."""

    high_factor: float = 1.0
    low_factor: float = 0.9
    intervals_above: int = 2
    intervals_below: int = 3
    strike_usd_per_mwh: float | None = None
    curtail_gpu_spot: bool = True
    sell_idle_gpus_on_spot: bool = True
    respond_to_grid_events: bool = True
    avoid_four_cp: bool = True
    name: str = "strike"
    _counters: dict[tuple[str, str], _StrikeCounter] = field(default_factory=dict, repr=False)

    def strikes(
        self, facility: FacilityState, cls: AsicClassState, hashprice: float
    ) -> tuple[float, float]:
        """(high, low) strike of one model at one facility [USD/MWh]."""
        base = (
            self.strike_usd_per_mwh
            if self.strike_usd_per_mwh is not None
            else breakeven_usd_per_mwh(cls, hashprice, facility.pue_mining)
        )
        return base * self.high_factor, base * self.low_factor

    def decide(self, snapshot: Snapshot) -> Plan:
        hashprice = snapshot.market.hashprice_usd_per_ths_day
        plans = []
        for facility in snapshot.facilities:
            price = facility.marginal_energy_usd_per_mwh
            wanted = {}
            for cls in facility.asic_classes:
                counter = self._counters.setdefault(
                    (facility.facility_id, cls.model_id), _StrikeCounter()
                )
                high, low = self.strikes(facility, cls, hashprice)
                counter.above = counter.above + 1 if price > high else 0
                counter.below = counter.below + 1 if price < low else 0
                if not counter.curtailed and counter.above >= self.intervals_above:
                    counter.curtailed = True
                elif counter.curtailed and counter.below >= self.intervals_below:
                    counter.curtailed = False
                off = counter.curtailed or (self.avoid_four_cp and facility.four_cp_interval)
                wanted[cls.model_id] = 0 if off else cls.count
            spot_price = price if self.curtail_gpu_spot else None
            plans.append(_allocate_with(self, facility, wanted, spot_price))
        curtailed = sum(c.curtailed for c in self._counters.values())
        return Plan(tuple(plans), self.name, note=f"{curtailed} model classes curtailed")


@dataclass
class Greedy:
    """Rank uses by profit per watt each interval (no look-ahead, no hysteresis).

    GPU work keeps its budget (it earns far more per watt); a miner model hashes while its
    revenue per facility MWh beats the marginal energy price plus, in a 4CP interval, the
    transmission charge that interval's draw accrues; idle GPUs are rented out while the
    rental beats the same price. The cap is then filled most-profitable-per-watt first,
    which for miners at one price means most efficient first.
    """

    sell_idle_gpus_on_spot: bool = True
    respond_to_grid_events: bool = True
    four_cp_rate_usd_per_kw_year: float = 55.0
    name: str = "greedy"

    def decide(self, snapshot: Snapshot) -> Plan:
        hashprice = snapshot.market.hashprice_usd_per_ths_day
        plans = []
        for facility in snapshot.facilities:
            price = facility.marginal_energy_usd_per_mwh
            if facility.four_cp_interval:
                price += four_cp_usd_per_mwh(self.four_cp_rate_usd_per_kw_year)
            wanted = {
                c.model_id: c.count
                if breakeven_usd_per_mwh(c, hashprice, facility.pue_mining) > price
                else 0
                for c in facility.asic_classes
            }
            plans.append(_allocate_with(self, facility, wanted, price))
        return Plan(tuple(plans), self.name)


def four_cp_usd_per_mwh(rate_usd_per_kw_year: float) -> float:
    """Transmission charge per MWh drawn in a 4CP interval [USD/MWh]: a quarter of the
    annual rate per kW of demand in the 15-minute peak window, over the 0.25 MWh that one
    MW draws in that window: ``rate / 4 * 1000 / 0.25`` (see twin.accounting)."""
    return rate_usd_per_kw_year / 4.0 * 1000.0 / 0.25


@dataclass(frozen=True)
class PolicyContext:
    """Static facts some policies need besides their parameters."""

    contracts: Mapping[str, IndexContract | FixedBlockContract] = field(default_factory=dict)
    four_cp_rate_usd_per_kw_year: float = 55.0


MPC_RESOLVE_EVERY = 3
"""Default re-solve period of ``mpc`` [intervals] (sooner on a grid request, 4CP flag,
device count or price octave change)."""
ORACLE_RESOLVE_EVERY = 1
"""The oracle re-solves every interval: it is the bound, not a live controller."""
ORACLE_MIP_GAP = 1e-6
"""The oracle's relative MIP gap: tight, so that solver tolerance does not let a policy
appear to beat the bound [-]."""


def make_policy(name: str, params: dict[str, Any], context: PolicyContext | None = None) -> Policy:
    """Build a policy by name with its parameters (as validated by the scenario schema)."""
    context = context or PolicyContext()
    if name == "always_on":
        return AlwaysOn(**params)
    if name == "strike":
        return Strike(**params)
    if name == "greedy":
        return Greedy(**params, four_cp_rate_usd_per_kw_year=context.four_cp_rate_usd_per_kw_year)
    if name in ("mpc", "oracle"):
        from optimizer.dispatch import DispatchOptions
        from optimizer.lookahead import LookAhead  # MILP stack only when asked for

        oracle = name == "oracle"
        resolve_every = params.get("resolve_every")
        return LookAhead(
            name=name,
            horizon_source="truth" if oracle else "forecast",
            contracts=context.contracts,
            four_cp_rate_usd_per_kw_year=context.four_cp_rate_usd_per_kw_year,
            horizon_h=params.get("horizon_h", 24.0),
            resolve_every=resolve_every or (ORACLE_RESOLVE_EVERY if oracle else MPC_RESOLVE_EVERY),
            time_limit_s=params.get("time_limit_s", 2.0),
            options=DispatchOptions(mip_rel_gap=ORACLE_MIP_GAP) if oracle else DispatchOptions(),
        )
    known = "always_on, strike, greedy, mpc, oracle"
    raise ValueError(f"policy.name: unknown policy {name!r}; known: {known}")
