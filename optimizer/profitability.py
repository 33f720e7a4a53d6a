"""Economic optimizer: a 0-100 profitability score per resource class and workload type, and
the facade that also answers allocation questions with the dispatch MILP.

:class:`EconomicOptimizer` is built from the current :class:`~optimizer.types.Snapshot`, the
facilities' contracts and (for allocation) a :class:`~optimizer.dispatch.HorizonData`:

* :meth:`EconomicOptimizer.calculate_profitability` scores one device of a resource class
  (``"<facility_id>/asic/<model_id>"`` or ``"<facility_id>/gpu/<type_id>"``) running one
  workload type at given market prices, and recommends what the device should do;
* :meth:`EconomicOptimizer.get_allocation_recommendation` solves the dispatch MILP and returns
  one facility's plan over a horizon (optimizer.allocation).

Money per device-hour [USD/h] (the scored use, at nameplate):

* revenue: mining ``hashrate_ths x hashprice / 24``; AI work the billing price per GPU-hour
  (pay per use 2.50 USD/GPU-h by default, DESIGN.md billing models); spot the rental rate;
* energy cost: ``IT power x PUE x marginal energy price``. The marginal price follows the
  contract as models.facility.marginal_energy_usd_per_mwh does: index ``price + adder``; a
  fixed block below its size the sell-back price forgone (0 without sell-back), at or above
  it ``price + adder``. The facility's draw is estimated from the snapshot (hashing miners at
  nameplate, the other healthy miners asleep, busy GPUs at TDP, the rest idle). A spot GPU
  draws ``SPOT_LOAD_FRACTION`` of TDP (optimizer.power);
* other cost: wear per running device-hour (:class:`ProfitabilityAssumptions`, default 0);
* ``net = revenue - energy - other``, ``margin = net / revenue``;
* breakeven: the marginal energy price at which ``net = 0`` [USD/MWh]; with no wear it is
  optimizer.policies.breakeven_usd_per_mwh (ASICs) or spot_breakeven_usd_per_mwh (spot).

**Score** (:func:`score_from_margin`): ``clip(50 + 62.5 x margin, 0, 100)`` — 50 at
breakeven, 100 at a margin of 80 % or more, 0 at -80 % or less, linear in between. It is
non-decreasing in the margin, so non-increasing in the electricity price.

**Recommendation**: the option with the highest net per device-hour, each option paying for
the power it draws (a sleeping miner and an idle GPU still draw power, so running pays off up
to slightly above the breakeven):

* ASIC, ``bitcoin_mining``: ``run`` (nameplate), ``run_reduced`` (the best power tier below 1
  of DispatchOptions.power_tiers at or above the model's minimum; hashrate scales as
  ``tier ** hashrate_exponent``, as in the dispatch model) or ``curtail`` (sleep);
* GPU, an AI type: ``run``, ``sell_spot`` or ``idle``; GPU, ``spot``: ``sell_spot`` or
  ``idle``.
Ties go to the earlier option in these lists.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal, TypeVar

import numpy as np

from models.facility import marginal_energy_usd_per_mwh
from optimizer.allocation import AllocationPlan, recommend_allocation
from optimizer.dispatch_inputs import DEFAULT_GPU_PRICES_USD_PER_GPU_HOUR, HorizonData
from optimizer.dispatch_types import DispatchOptions
from optimizer.power import SPOT_LOAD_FRACTION, asic_mw
from optimizer.types import AsicClassState, FacilityState, GpuPoolState, Snapshot
from twin.scenario import WORKLOAD_TYPES, FixedBlockContract, IndexContract

SPOT_WORKLOAD = "spot"
"""Pseudo workload type: renting an idle GPU out on the spot market."""
ASIC_WORKLOADS = ("bitcoin_mining",)
"""Workload types that run on ASICs."""
GPU_WORK_PRICE_KEY = {
    "ai_inference_realtime": "realtime",
    "ai_inference_batch": "batch",
    "model_training": "training",
}
"""AI workload type -> key of its price in ``gpu_prices_usd_per_gpu_hour``."""
KNOWN_WORKLOADS = (*WORKLOAD_TYPES, SPOT_WORKLOAD)
GPU_PRICE_KEYS = tuple(DEFAULT_GPU_PRICES_USD_PER_GPU_HOUR)
"""Uses with a billing price: ``realtime``, ``reserved``, ``batch``, ``training``."""

SCORE_AT_BREAKEVEN = 50.0
SCORE_PER_MARGIN = 62.5
"""Score points per unit of margin: 100 at a margin of 0.8, 0 at -0.8 [-]."""

Recommendation = Literal["run", "run_reduced", "curtail", "sell_spot", "idle"]
ResourceKind = Literal["asic", "gpu"]
Contract = IndexContract | FixedBlockContract


class ProfitabilityError(ValueError):
    """A profitability or allocation question cannot be answered; the message says why."""


@dataclass(frozen=True, slots=True)
class ProfitabilityAssumptions:
    """Prices and costs the snapshot does not carry.

    Attributes:
        gpu_prices_usd_per_gpu_hour: billing price of ``realtime``, ``reserved``, ``batch`` and
            ``training`` GPU work [USD/GPU-h]; missing keys take
            optimizer.dispatch.DEFAULT_GPU_PRICES_USD_PER_GPU_HOUR (also used in allocation).
        asic_wear_usd_per_device_hour: wear of one hashing miner [USD/h].
        gpu_wear_usd_per_device_hour: wear of one busy (working or rented) GPU [USD/h].
        four_cp_rate_usd_per_kw_year: 4CP transmission rate used in allocation [USD/kW-year].
    """

    gpu_prices_usd_per_gpu_hour: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_GPU_PRICES_USD_PER_GPU_HOUR)
    )
    asic_wear_usd_per_device_hour: float = 0.0
    gpu_wear_usd_per_device_hour: float = 0.0
    four_cp_rate_usd_per_kw_year: float = 55.0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.gpu_prices_usd_per_gpu_hour) - set(GPU_PRICE_KEYS))
        if unknown:
            raise ProfitabilityError(
                f"gpu_prices_usd_per_gpu_hour: unknown use {unknown[0]!r}; known: "
                f"{', '.join(GPU_PRICE_KEYS)}"
            )
        prices = {**DEFAULT_GPU_PRICES_USD_PER_GPU_HOUR, **self.gpu_prices_usd_per_gpu_hour}
        for key, value in prices.items():
            _check_at_least(value, 0.0, f"gpu_prices_usd_per_gpu_hour[{key}]")
        object.__setattr__(self, "gpu_prices_usd_per_gpu_hour", prices)
        for name in (
            "asic_wear_usd_per_device_hour",
            "gpu_wear_usd_per_device_hour",
            "four_cp_rate_usd_per_kw_year",
        ):
            _check_at_least(getattr(self, name), 0.0, name)


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """A parsed resource class id: ``<facility_id>/<kind>/<item_id>``."""

    facility_id: str
    kind: ResourceKind
    item_id: str
    """ASIC model id or GPU type id."""

    @classmethod
    def parse(cls, resource_id: str) -> ResourceRef:
        """Split ``resource_id``; ProfitabilityError when it has not that shape."""
        parts = resource_id.rsplit("/", 2)
        if len(parts) != 3 or parts[1] not in ("asic", "gpu") or not parts[0] or not parts[2]:
            raise ProfitabilityError(
                f"resource_id: {resource_id!r} is not '<facility_id>/asic/<model_id>' or "
                "'<facility_id>/gpu/<type_id>'"
            )
        kind: ResourceKind = "asic" if parts[1] == "asic" else "gpu"
        return cls(parts[0], kind, parts[2])


@dataclass(frozen=True, slots=True)
class ProfitabilityInputs:
    """The values a score was computed from (units in the names).

    ``hashprice_usd_per_ths_day`` and ``hashrate_ths`` are None for GPUs;
    ``work_price_usd_per_gpu_hour`` is None for ASICs and for spot; ``spot_usd_per_gpu_hour``
    is None for ASICs. ``it_power_w`` is the device's IT draw in the scored use at nameplate.
    """

    electricity_price_usd_per_mwh: float
    marginal_energy_usd_per_mwh: float
    contract_kind: str
    estimated_facility_mw: float
    pue: float
    btc_price_usd: float
    it_power_w: float
    hashprice_usd_per_ths_day: float | None = None
    hashrate_ths: float | None = None
    work_price_usd_per_gpu_hour: float | None = None
    spot_usd_per_gpu_hour: float | None = None


@dataclass(frozen=True, slots=True)
class ProfitabilityScore:
    """How profitable one device of a resource class is for one workload type, per hour.

    Attributes:
        resource_id, workload_type: what was scored.
        score: :func:`score_from_margin` of ``margin`` [0-100].
        recommendation: the option with the highest net (module docstring).
        power_fraction: power target of the recommendation as a fraction of nameplate
            (0: asleep or idle) [-].
        revenue_usd_per_hour, energy_cost_usd_per_hour, other_cost_usd_per_hour,
        net_usd_per_hour: the scored use at nameplate [USD/h per device].
        margin: ``net / revenue`` [-]; +inf / -inf / 0 when revenue is 0 or less and the net
            is positive / negative / zero.
        breakeven_usd_per_mwh: marginal energy price at which ``net = 0`` [USD/MWh].
        breakeven_settlement_usd_per_mwh: the real-time price at which ``net = 0`` under the
            contract (the breakeven less the adder where it applies); None inside a fixed
            block without sell-back, where the marginal price does not follow the market.
        option_net_usd_per_hour: net of every option considered [USD/h per device].
        inputs: the values used.
    """

    resource_id: str
    workload_type: str
    score: float
    recommendation: Recommendation
    power_fraction: float
    revenue_usd_per_hour: float
    energy_cost_usd_per_hour: float
    other_cost_usd_per_hour: float
    net_usd_per_hour: float
    margin: float
    breakeven_usd_per_mwh: float
    breakeven_settlement_usd_per_mwh: float | None
    option_net_usd_per_hour: dict[Recommendation, float]
    inputs: ProfitabilityInputs

    @property
    def recommended_net_usd_per_hour(self) -> float:
        """Net of the recommended option [USD/h per device]."""
        return self.option_net_usd_per_hour[self.recommendation]


def score_from_margin(margin: float) -> float:
    """Profitability score [0-100] of a margin [-]: ``clip(50 + 62.5 x margin, 0, 100)``.

    50 at breakeven, 100 at a margin of 0.8 or more, 0 at -0.8 or less; non-decreasing.
    """
    if math.isnan(margin):
        raise ProfitabilityError("margin: is NaN")
    return float(min(100.0, max(0.0, SCORE_AT_BREAKEVEN + SCORE_PER_MARGIN * margin)))


def margin_of(revenue_usd: float, net_usd: float) -> float:
    """``net / revenue`` [-]; without positive revenue, the sign of the net as +-inf (or 0)."""
    if revenue_usd > 0:
        return net_usd / revenue_usd
    if net_usd == 0:
        return 0.0
    return math.copysign(math.inf, net_usd)


def estimated_facility_mw(facility: FacilityState) -> float:
    """Facility draw implied by the snapshot [MW]: hashing miners at nameplate, the other
    healthy miners asleep, busy GPUs at TDP and the other healthy GPUs idle (x hall PUE)."""
    mining_mw = sum(
        asic_mw(c, min(c.active, c.count - c.failed), 1.0, facility.pue_mining)
        for c in facility.asic_classes
    )
    gpu_it_w = sum(
        min(p.busy, p.count - p.failed) * p.tdp_w + max(0, p.count - p.failed - p.busy) * p.idle_w
        for p in facility.gpu_pools
    )
    return mining_mw + gpu_it_w * facility.pue_ai / 1e6


def settlement_offset_usd_per_mwh(contract: Contract, facility_mw: float) -> float | None:
    """Marginal energy price minus the real-time price under ``contract`` at ``facility_mw``
    [USD/MWh]; None where the marginal price does not follow the real-time price (inside a
    fixed block without sell-back)."""
    if isinstance(contract, FixedBlockContract) and facility_mw < contract.block_mw:
        return 0.0 if contract.sellback else None
    return contract.adder_usd_per_mwh


@dataclass(frozen=True, slots=True)
class _Money:
    """Revenue and costs of one use of one device [USD/h]."""

    revenue: float
    energy: float
    other: float
    facility_kw: float
    """Facility power of the device in this use (IT x PUE) [kW]."""

    @property
    def net(self) -> float:
        return self.revenue - self.energy - self.other


@dataclass(frozen=True, slots=True)
class _Evaluation:
    """The scored use of one device and the net of every option it has."""

    money: _Money
    nets: dict[Recommendation, float]
    """Net per option [USD/h], in tie-break order."""
    power_fraction: dict[Recommendation, float]
    """Power target of each option as a fraction of nameplate [-]."""
    pue: float
    it_power_w: float
    hashprice_usd_per_ths_day: float | None = None
    hashrate_ths: float | None = None
    spot_usd_per_gpu_hour: float | None = None


def _evaluate_asic(
    cls: AsicClassState,
    hashprice_usd_per_ths_day: float,
    pue: float,
    marginal_usd_per_mwh: float,
    wear_usd_per_hour: float,
    options: DispatchOptions,
) -> _Evaluation:
    """One miner of ``cls``: mining at nameplate, at the best reduced tier, or asleep."""
    revenue_full = cls.hashrate_ths_each * hashprice_usd_per_ths_day / 24.0
    facility_kw = cls.power_w_each * pue / 1e3
    money = _Money(
        revenue_full, facility_kw * marginal_usd_per_mwh / 1e3, wear_usd_per_hour, facility_kw
    )
    nets: dict[Recommendation, float] = {"run": money.net}
    fractions: dict[Recommendation, float] = {"run": 1.0}
    tiers = np.array(
        [t for t in options.power_tiers if cls.min_power_fraction <= t < 1.0], dtype=float
    )
    if tiers.size:
        reduced = (
            revenue_full * tiers**options.hashrate_exponent
            - facility_kw * tiers * marginal_usd_per_mwh / 1e3
            - wear_usd_per_hour
        )
        best = int(np.argmax(reduced))
        nets["run_reduced"] = float(reduced[best])
        fractions["run_reduced"] = float(tiers[best])
    nets["curtail"] = -cls.sleep_power_w_each * pue * marginal_usd_per_mwh / 1e6
    fractions["curtail"] = 0.0
    return _Evaluation(
        money,
        nets,
        fractions,
        pue=pue,
        it_power_w=cls.power_w_each,
        hashprice_usd_per_ths_day=hashprice_usd_per_ths_day,
        hashrate_ths=cls.hashrate_ths_each,
    )


def _evaluate_gpu(
    pool: GpuPoolState,
    work_price_usd_per_gpu_hour: float | None,
    spot_usd_per_gpu_hour: float,
    pue: float,
    marginal_usd_per_mwh: float,
    wear_usd_per_hour: float,
) -> _Evaluation:
    """One GPU of ``pool``: customer work at TDP (when a work price is given), rented out on
    the spot market at ``SPOT_LOAD_FRACTION`` of TDP, or idle."""

    def money(revenue: float, it_w: float) -> _Money:
        facility_kw = it_w * pue / 1e3
        energy = facility_kw * marginal_usd_per_mwh / 1e3
        return _Money(revenue, energy, wear_usd_per_hour, facility_kw)

    spot = money(spot_usd_per_gpu_hour, pool.tdp_w * SPOT_LOAD_FRACTION)
    idle_net = -pool.idle_w * pue * marginal_usd_per_mwh / 1e6
    fractions: dict[Recommendation, float] = {"run": 1.0, "sell_spot": 1.0, "idle": 0.0}
    if work_price_usd_per_gpu_hour is None:
        return _Evaluation(
            spot,
            {"sell_spot": spot.net, "idle": idle_net},
            fractions,
            pue=pue,
            it_power_w=pool.tdp_w * SPOT_LOAD_FRACTION,
            spot_usd_per_gpu_hour=spot_usd_per_gpu_hour,
        )
    work = money(work_price_usd_per_gpu_hour, pool.tdp_w)
    return _Evaluation(
        work,
        {"run": work.net, "sell_spot": spot.net, "idle": idle_net},
        fractions,
        pue=pue,
        it_power_w=pool.tdp_w,
        spot_usd_per_gpu_hour=spot_usd_per_gpu_hour,
    )


def _best_option(nets: Mapping[Recommendation, float]) -> Recommendation:
    """The option with the highest net; ties go to the first in ``nets``' order."""
    best = next(iter(nets))
    for name, value in nets.items():
        if value > nets[best]:
            best = name
    return best


@dataclass(frozen=True)
class EconomicOptimizer:
    """Profitability scores and allocation advice on one snapshot (module docstring).

    Attributes:
        snapshot: the state now.
        contracts: power contract of every facility of the snapshot, by facility id.
        horizon: what is known about the next steps (needed only for allocation).
        options: dispatch model options (power tiers and hashrate exponent are also used
            to judge underclocking).
        assumptions: GPU billing prices and wear (:class:`ProfitabilityAssumptions`).
    """

    snapshot: Snapshot
    contracts: Mapping[str, Contract]
    horizon: HorizonData | None = None
    options: DispatchOptions = field(default_factory=DispatchOptions)
    assumptions: ProfitabilityAssumptions = field(default_factory=ProfitabilityAssumptions)

    def __post_init__(self) -> None:
        missing = [
            f.facility_id for f in self.snapshot.facilities if f.facility_id not in self.contracts
        ]
        if missing:
            raise ProfitabilityError(f"contracts: no contract for facility {missing[0]!r}")
        for facility_id, contract in self.contracts.items():
            if not isinstance(contract, IndexContract | FixedBlockContract):
                raise ProfitabilityError(
                    f"contracts[{facility_id}]: expected an IndexContract or "
                    f"FixedBlockContract, got {type(contract).__name__}"
                )
        object.__setattr__(self, "contracts", dict(self.contracts))

    def facility(self, facility_id: str) -> FacilityState:
        """The snapshot's facility with this id; ProfitabilityError naming the known ids."""
        for state in self.snapshot.facilities:
            if state.facility_id == facility_id:
                return state
        known = ", ".join(f.facility_id for f in self.snapshot.facilities)
        raise ProfitabilityError(f"facility_id: unknown facility {facility_id!r}; known: {known}")

    def calculate_profitability(
        self,
        resource_id: str,
        workload_type: str,
        electricity_price: float,
        spot_rates: Mapping[str, float],
        btc_price: float,
    ) -> ProfitabilityScore:
        """Score one device of ``resource_id`` running ``workload_type``.

        Args:
            resource_id: ``"<facility_id>/asic/<model_id>"`` or ``"<facility_id>/gpu/<type_id>"``.
            workload_type: one of the four workload types, or ``"spot"`` (GPU rented out).
                ``bitcoin_mining`` runs only on ASICs, the others only on GPUs.
            electricity_price: real-time settlement point price, replacing the snapshot's
                [USD/MWh].
            spot_rates: spot rental price per GPU type [USD/GPU-h]; a type not listed takes
                the snapshot pool's rental price.
            btc_price: Bitcoin price [USD]; the snapshot's hashprice is scaled by
                ``btc_price / snapshot btc price`` (hashprice is linear in the price at fixed
                difficulty and fees).

        Raises:
            ProfitabilityError: a malformed or unknown resource, an unknown workload type, a
                workload type that does not run on the resource, or a bad price.
        """
        ref = ResourceRef.parse(resource_id)
        if workload_type not in KNOWN_WORKLOADS:
            raise ProfitabilityError(
                f"workload_type: unknown {workload_type!r}; known: {', '.join(KNOWN_WORKLOADS)}"
            )
        on_asic = workload_type in ASIC_WORKLOADS
        if on_asic != (ref.kind == "asic"):
            runs_on = "ASICs" if on_asic else "GPUs"
            raise ProfitabilityError(
                f"workload_type: {workload_type!r} runs only on {runs_on}, but resource "
                f"{resource_id!r} is a {ref.kind.upper()} class"
            )
        _check_finite(electricity_price, "electricity_price")
        _check_positive(btc_price, "btc_price")
        for type_id, rate in spot_rates.items():
            _check_at_least(rate, 0.0, f"spot_rates[{type_id}]")

        facility = self.facility(ref.facility_id)
        contract = self.contracts[ref.facility_id]
        facility_mw = estimated_facility_mw(facility)
        marginal = marginal_energy_usd_per_mwh(contract, facility_mw, electricity_price)
        work_price: float | None = None
        if ref.kind == "asic":
            evaluation = _evaluate_asic(
                _asic_class(facility, ref),
                self._hashprice(btc_price),
                facility.pue_mining,
                marginal,
                self.assumptions.asic_wear_usd_per_device_hour,
                self.options,
            )
        else:
            pool = _gpu_pool(facility, ref)
            work_price = (
                None
                if workload_type == SPOT_WORKLOAD
                else self.assumptions.gpu_prices_usd_per_gpu_hour[GPU_WORK_PRICE_KEY[workload_type]]
            )
            evaluation = _evaluate_gpu(
                pool,
                work_price,
                float(spot_rates.get(pool.type_id, pool.rental_usd_per_gpu_hour)),
                facility.pue_ai,
                marginal,
                self.assumptions.gpu_wear_usd_per_device_hour,
            )
        inputs = ProfitabilityInputs(
            electricity_price_usd_per_mwh=float(electricity_price),
            marginal_energy_usd_per_mwh=float(marginal),
            contract_kind=contract.kind,
            estimated_facility_mw=facility_mw,
            pue=evaluation.pue,
            btc_price_usd=float(btc_price),
            it_power_w=evaluation.it_power_w,
            hashprice_usd_per_ths_day=evaluation.hashprice_usd_per_ths_day,
            hashrate_ths=evaluation.hashrate_ths,
            work_price_usd_per_gpu_hour=work_price,
            spot_usd_per_gpu_hour=evaluation.spot_usd_per_gpu_hour,
        )
        money, nets = evaluation.money, evaluation.nets
        recommendation = _best_option(nets)
        margin = margin_of(money.revenue, money.net)
        breakeven = (money.revenue - money.other) / (money.facility_kw / 1e3)
        offset = settlement_offset_usd_per_mwh(contract, facility_mw)
        return ProfitabilityScore(
            resource_id=resource_id,
            workload_type=workload_type,
            score=score_from_margin(margin),
            recommendation=recommendation,
            power_fraction=evaluation.power_fraction[recommendation],
            revenue_usd_per_hour=money.revenue,
            energy_cost_usd_per_hour=money.energy,
            other_cost_usd_per_hour=money.other,
            net_usd_per_hour=money.net,
            margin=margin,
            breakeven_usd_per_mwh=breakeven,
            breakeven_settlement_usd_per_mwh=None if offset is None else breakeven - offset,
            option_net_usd_per_hour=dict(nets),
            inputs=inputs,
        )

    def get_allocation_recommendation(
        self, facility_id: str, time_horizon: timedelta | float
    ) -> AllocationPlan:
        """Solve the dispatch MILP over the first ``time_horizon`` of the horizon data and
        return ``facility_id``'s plan (optimizer.allocation.AllocationPlan).

        Args:
            facility_id: a facility of the snapshot.
            time_horizon: how far ahead to plan, a timedelta or hours [h]; rounded up to whole
                horizon steps.

        Raises:
            ProfitabilityError: no horizon data or an unknown facility.
            optimizer.allocation.AllocationError: a horizon that is not positive or is longer
                than the horizon data.
            optimizer.dispatch.DispatchInputError: horizon data the dispatch model rejects.
            (All three are ValueErrors.)
        """
        self.facility(facility_id)
        if self.horizon is None:
            raise ProfitabilityError(
                "horizon: the optimizer was built without HorizonData; allocation needs it"
            )
        return recommend_allocation(
            self.snapshot,
            self.horizon,
            self.contracts,
            facility_id,
            time_horizon,
            options=self.options,
            gpu_prices_usd_per_gpu_hour=self.assumptions.gpu_prices_usd_per_gpu_hour,
            four_cp_rate_usd_per_kw_year=self.assumptions.four_cp_rate_usd_per_kw_year,
        )

    def _hashprice(self, btc_price: float) -> float:
        """The snapshot's hashprice at ``btc_price`` [USD/(TH/s)/day]."""
        market = self.snapshot.market
        if not market.btc_price_usd > 0:
            raise ProfitabilityError(
                f"snapshot.market.btc_price_usd: must be > 0 to rescale the hashprice, got "
                f"{market.btc_price_usd}"
            )
        return market.hashprice_usd_per_ths_day * btc_price / market.btc_price_usd


def _asic_class(facility: FacilityState, ref: ResourceRef) -> AsicClassState:
    return _resource(facility.asic_classes, lambda c: c.model_id, ref, "ASIC model")


def _gpu_pool(facility: FacilityState, ref: ResourceRef) -> GpuPoolState:
    return _resource(facility.gpu_pools, lambda p: p.type_id, ref, "GPU type")


_ItemT = TypeVar("_ItemT", AsicClassState, GpuPoolState)


def _resource(
    items: Sequence[_ItemT], item_id: Callable[[_ItemT], str], ref: ResourceRef, what: str
) -> _ItemT:
    """The first of a facility's ``items`` whose id is ``ref.item_id``; ProfitabilityError
    naming ``what`` (``ASIC model``, ``GPU type``) and the known ids otherwise."""
    for item in items:
        if item_id(item) == ref.item_id:
            return item
    known = ", ".join(item_id(item) for item in items) or "none"
    raise ProfitabilityError(
        f"resource_id: facility {ref.facility_id!r} has no {what} {ref.item_id!r}; known: {known}"
    )


def _check_finite(value: float, name: str) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ProfitabilityError(f"{name}: must be a finite number, got {value!r}")


def _check_positive(value: float, name: str) -> None:
    _check_finite(value, name)
    if not value > 0:
        raise ProfitabilityError(f"{name}: must be > 0, got {value!r}")


def _check_at_least(value: float, low: float, name: str) -> None:
    _check_finite(value, name)
    if value < low:
        raise ProfitabilityError(f"{name}: must be >= {low}, got {value!r}")


__all__ = [
    "ASIC_WORKLOADS",
    "KNOWN_WORKLOADS",
    "SPOT_WORKLOAD",
    "AllocationPlan",
    "EconomicOptimizer",
    "ProfitabilityAssumptions",
    "ProfitabilityError",
    "ProfitabilityInputs",
    "ProfitabilityScore",
    "Recommendation",
    "ResourceRef",
    "estimated_facility_mw",
    "margin_of",
    "score_from_margin",
    "settlement_offset_usd_per_mwh",
]
