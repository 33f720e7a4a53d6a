"""Typed scenario schema (pydantic) and YAML loading with ``base:`` inheritance.

A scenario file is YAML. ``base: other.yaml`` (relative to the file) makes it a what-if:
the base is loaded first and this file's keys are deep-merged over it. Mappings merge key by
key, except that a mapping whose ``kind`` differs from the base's replaces it; lists of
mappings that all carry an ``id`` merge item by item on ``id`` (an item with ``remove: true``
drops that id); any other list replaces the base list.

Every problem is reported as ``path: reason`` with the path in the file's own terms, e.g.
``facilities[1].power_cap_mw: must be > 0``; :class:`ScenarioError` carries all of them.
"""

from __future__ import annotations

import copy
import re
from datetime import datetime
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from models.hardware import ASIC_CATALOG, GPU_CATALOG, AsicSpec, GpuSpec
from twin.scenario_faults import Detection, Fault, FaultRates, Telemetry, fault_problems
from twin.scenario_scheduling import Region, Scheduling

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WORKLOAD_TYPES = (
    "ai_inference_realtime",
    "ai_inference_batch",
    "model_training",
    "bitcoin_mining",
)
WorkloadType = Literal[
    "ai_inference_realtime", "ai_inference_batch", "model_training", "bitcoin_mining"
]


class ScenarioError(ValueError):
    """A scenario could not be loaded; ``problems`` lists each as ``path: reason``."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "invalid scenario\n  " + "\n  ".join(problems))


class Strict(BaseModel):
    """Base for every schema block: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


# --------------------------------------------------------------------------- facilities


class PueModel(Strict):
    """Power usage effectiveness by hall type, rising linearly with ambient temperature.

    ``pue(T) = base * (1 + temp_coeff_per_c * max(0, T - reference_ambient_c))``.
    """

    mining: float = Field(1.08, ge=1.0, le=3.0)
    ai: float = Field(1.3, ge=1.0, le=3.0)
    temp_coeff_per_c: float = Field(0.004, ge=0, le=0.1)
    reference_ambient_c: float = 25.0


class AmbientModel(Strict):
    """Outdoor dry-bulb temperature [°C]: seasonal and daily sinusoids (peak 16:00 local)."""

    mean_c: float = Field(21.0, ge=-40, le=50)
    daily_amplitude_c: float = Field(6.0, ge=0, le=30)
    seasonal_amplitude_c: float = Field(9.0, ge=0, le=30)
    warmest_day_of_year: int = Field(205, ge=1, le=366)


class IndexContract(Strict):
    """Pay the real-time settlement point price plus adders for every MWh drawn."""

    kind: Literal["index"] = "index"
    adder_usd_per_mwh: float = Field(4.0, ge=-100, le=1000)


class FixedBlockContract(Strict):
    """A fixed-price block of ``block_mw``; unused block power is sold back at real time.

    Energy above the block is bought at the real-time price plus ``adder_usd_per_mwh``.
    """

    kind: Literal["fixed_block"] = "fixed_block"
    block_mw: PositiveFloat
    price_usd_per_mwh: float = Field(ge=-100, le=5000)
    sellback: bool = True
    adder_usd_per_mwh: float = Field(4.0, ge=-100, le=1000)


Contract = Annotated[IndexContract | FixedBlockContract, Field(discriminator="kind")]


class CustomAsic(Strict):
    """An ASIC model not in the catalog."""

    name: str = Field(min_length=1)
    hashrate_ths: PositiveFloat
    power_w: PositiveFloat
    min_power_fraction: float = Field(0.6, gt=0, le=1)
    sleep_power_w: float = Field(25.0, ge=0)
    ramp_s: float = Field(120.0, ge=0)


class AsicGroup(Strict):
    """``count`` identical miners of a catalog ``model`` or a ``custom`` spec."""

    model: str | None = None
    custom: CustomAsic | None = None
    count: int = Field(ge=0)
    power_target_fraction: float = Field(1.0, gt=0, le=1)

    @model_validator(mode="after")
    def _one_spec(self) -> AsicGroup:
        if (self.model is None) == (self.custom is None):
            raise ValueError("give exactly one of model or custom")
        if self.model is not None and self.model not in ASIC_CATALOG:
            known = ", ".join(sorted(ASIC_CATALOG))
            raise ValueError(f"unknown ASIC model {self.model!r}; known: {known}")
        return self

    def spec(self) -> AsicSpec:
        """The catalog or custom spec of this group."""
        if self.custom is None:
            return ASIC_CATALOG[str(self.model)]
        c = self.custom
        model_id = "custom_" + re.sub(r"[^a-z0-9]+", "_", c.name.lower()).strip("_")
        return AsicSpec(
            model_id,
            c.name,
            c.hashrate_ths,
            c.power_w,
            c.min_power_fraction,
            c.sleep_power_w,
            c.ramp_s,
            source="scenario custom spec",
        )


class CustomGpu(Strict):
    """A GPU type not in the catalog."""

    name: str = Field(min_length=1)
    tdp_w: PositiveFloat
    idle_w: float = Field(ge=0)
    memory_gb: PositiveFloat
    rental_index_usd_per_gpu_hour: float = Field(2.0, ge=0)


class GpuGroup(Strict):
    """``count`` GPUs of one ``type`` (or ``custom`` spec) in nodes of ``node_size``."""

    type: str | None = None
    custom: CustomGpu | None = None
    count: int = Field(ge=0)
    node_size: int = Field(8, ge=1, le=72)

    @model_validator(mode="after")
    def _one_spec(self) -> GpuGroup:
        if (self.type is None) == (self.custom is None):
            raise ValueError("give exactly one of type or custom")
        if self.type is not None and self.type not in GPU_CATALOG:
            known = ", ".join(sorted(GPU_CATALOG))
            raise ValueError(f"unknown GPU type {self.type!r}; known: {known}")
        if self.count % self.node_size:
            raise ValueError(f"count {self.count} is not a multiple of node_size {self.node_size}")
        return self

    def spec(self) -> GpuSpec:
        """The catalog or custom spec of this group."""
        if self.custom is None:
            return GPU_CATALOG[str(self.type)]
        c = self.custom
        type_id = "custom_" + re.sub(r"[^a-z0-9]+", "_", c.name.lower()).strip("_")
        return GpuSpec(
            type_id,
            c.name,
            c.tdp_w,
            c.idle_w,
            c.memory_gb,
            rental_index_usd_per_gpu_hour=c.rental_index_usd_per_gpu_hour,
            source="scenario custom spec",
        )


class Facility(Strict):
    """One data center: interconnect cap, PUE, contract, and its ASIC and GPU fleets."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=40)
    name: str = ""
    region: Region = "us-central"
    settlement_point: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    power_cap_mw: PositiveFloat
    pue: PueModel = PueModel()
    ambient: AmbientModel = AmbientModel()
    contract: Contract = IndexContract()
    asics: list[AsicGroup] = []
    gpus: list[GpuGroup] = []


# --------------------------------------------------------------------------- signals


class SyntheticPrices(Strict):
    """Mean-reverting (Ornstein-Uhlenbeck) real-time prices with spikes and shape [USD/MWh].

    ``price = mean * daily(t) * seasonal(t) + OU(t) + spikes(t) + basis[settlement_point]``,
    clipped to ``[floor, cap]``. Settlement points share the OU noise with correlation
    ``site_correlation``.
    """

    kind: Literal["synthetic"] = "synthetic"
    mean_usd_per_mwh: float = Field(42.0, ge=-100, le=1000)
    reversion_per_hour: PositiveFloat = 0.25
    volatility_usd_per_mwh: float = Field(9.0, ge=0)
    daily_amplitude: Fraction = 0.35
    seasonal_amplitude: Fraction = 0.30
    spike_rate_per_day: float = Field(0.25, ge=0, le=50)
    spike_mean_usd_per_mwh: float = Field(900.0, ge=0)
    spike_mean_duration_h: PositiveFloat = 0.75
    floor_usd_per_mwh: float = -50.0
    cap_usd_per_mwh: float = Field(5000.0, gt=0)
    site_correlation: Fraction = 0.85
    basis_usd_per_mwh: dict[str, float] = {}


class HistoricalSeries(Strict):
    """Replay of a real history file (ERCOT or BTC format of ``datasets/real``).

    ``file`` is relative to the scenario file or the project root. ``shift_days`` moves the
    replay: the value shown at scenario time T is the file's value at ``T - shift_days``;
    leave it 0 to replay the file on the scenario's own dates.
    """

    kind: Literal["historical"] = "historical"
    file: str
    shift_days: float = 0.0


class ConstantValue(Strict):
    """The same value at every time (unit as in the field name of the signal)."""

    kind: Literal["constant"] = "constant"
    value: float


PriceSource = Annotated[
    SyntheticPrices | HistoricalSeries | ConstantValue, Field(discriminator="kind")
]


class SyntheticAncillary(Strict):
    """Day-ahead ancillary-service capacity prices [USD/MW-h]: lognormal around means."""

    kind: Literal["synthetic"] = "synthetic"
    mean_usd_per_mw_h: dict[Literal["REGUP", "REGDN", "RRS", "ECRS", "NSPIN"], float] = {
        "REGUP": 12.0,
        "REGDN": 6.0,
        "RRS": 10.0,
        "ECRS": 9.0,
        "NSPIN": 5.0,
    }
    volatility: float = Field(0.6, ge=0, le=3)
    price_correlation: Fraction = 0.5


AncillarySource = Annotated[
    SyntheticAncillary | HistoricalSeries | ConstantValue, Field(discriminator="kind")
]


class FourCp(Strict):
    """ERCOT 4CP transmission charge: demand in the four monthly system-peak intervals.

    The charge is ``rate_usd_per_kw_year * mean kW over the 4 intervals``, accrued a quarter
    per interval. Peaks fall in ``months``, on a hot weekday near ``peak_hour_local``.
    """

    enabled: bool = True
    rate_usd_per_kw_year: float = Field(55.0, ge=0)
    months: list[Annotated[int, Field(ge=1, le=12)]] = [6, 7, 8, 9]
    peak_hour_local: float = Field(16.75, ge=0, lt=24)


class GridEvent(Strict):
    """A demand-response / emergency event that asks flexible load to curtail.

    ``kind``: ``eea`` (ERCOT energy emergency), ``ers`` (Emergency Response Service),
    ``dr`` (utility demand response). During the event the controller curtails
    ``curtail_fraction`` of each facility's flexible load and earns
    ``payment_usd_per_mwh`` for the energy not drawn.
    """

    kind: Literal["eea", "ers", "dr"] = "eea"
    start: datetime
    duration_h: PositiveFloat
    curtail_fraction: Fraction = 1.0
    payment_usd_per_mwh: float = Field(0.0, ge=0)
    facilities: list[str] | None = None

    @field_validator("start")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return _require_timezone(value)


class Grid(Strict):
    """Grid signals: real-time prices per settlement point, ancillary prices, 4CP, events."""

    prices: PriceSource = SyntheticPrices()
    ancillary: AncillarySource = SyntheticAncillary()
    four_cp: FourCp = FourCp()
    events: list[GridEvent] = []
    synthetic_events_per_year: float = Field(0.0, ge=0, le=365)
    synthetic_event_payment_usd_per_mwh: float = Field(1000.0, ge=0)


class SyntheticBtc(Strict):
    """BTC price as geometric Brownian motion with Poisson jumps [USD]."""

    kind: Literal["synthetic"] = "synthetic"
    initial_usd: PositiveFloat = 90000.0
    drift_per_year: float = Field(0.0, ge=-5, le=5)
    volatility_per_year: float = Field(0.55, ge=0, le=5)
    jump_rate_per_year: float = Field(6.0, ge=0, le=365)
    jump_mean: float = Field(-0.01, ge=-1, le=1)
    jump_std: float = Field(0.07, ge=0, le=1)


class SyntheticHashrate(Strict):
    """Network hashrate [EH/s]: exponential growth with lognormal day-to-day noise."""

    kind: Literal["synthetic"] = "synthetic"
    initial_ehs: PositiveFloat = 850.0
    growth_per_year: float = Field(0.35, ge=-1, le=10)
    volatility_per_year: float = Field(0.15, ge=0, le=3)


class SyntheticFees(Strict):
    """Transaction fees per block [BTC]: lognormal around a mean with persistence."""

    kind: Literal["synthetic"] = "synthetic"
    mean_btc_per_block: float = Field(0.08, ge=0, le=100)
    volatility: float = Field(0.5, ge=0, le=3)


class SyntheticGpuRental(Strict):
    """GPU rental index multiplier [-] on each type's catalog rental price: a mean-reverting
    log process, so spot revenue moves with the market."""

    kind: Literal["synthetic"] = "synthetic"
    volatility_per_day: float = Field(0.03, ge=0, le=1)
    reversion_per_day: float = Field(0.2, gt=0, le=10)


BtcSource = Annotated[SyntheticBtc | HistoricalSeries | ConstantValue, Field(discriminator="kind")]
HashrateSource = Annotated[
    SyntheticHashrate | HistoricalSeries | ConstantValue, Field(discriminator="kind")
]
FeeSource = Annotated[SyntheticFees | HistoricalSeries | ConstantValue, Field(discriminator="kind")]
GpuRentalSource = Annotated[SyntheticGpuRental | ConstantValue, Field(discriminator="kind")]


class Market(Strict):
    """Bitcoin and GPU-rental economics.

    ``network_hashrate`` drives block production; difficulty retargets every 2016 blocks.
    ``block_height_at_start`` and ``difficulty_at_start`` default to estimates for the
    scenario start date (height from the halving calendar, difficulty from the hashrate).
    ``btc_price`` constants are in USD, ``network_hashrate`` constants in EH/s, ``fees``
    constants in BTC per block, ``gpu_rental`` constants are a multiplier.
    """

    btc_price: BtcSource = SyntheticBtc()
    network_hashrate: HashrateSource = SyntheticHashrate()
    fees: FeeSource = SyntheticFees()
    gpu_rental: GpuRentalSource = SyntheticGpuRental()
    block_height_at_start: int | None = Field(None, ge=0)
    difficulty_at_start: float | None = Field(None, gt=0)
    pool_fee_fraction: float = Field(0.02, ge=0, le=0.2)
    gpu_spot_fill_fraction: Fraction = 0.7
    """Share of the idle GPUs offered on the spot market that renters actually take [-]."""


# --------------------------------------------------------------------------- workloads


class SizeChoice(Strict):
    """A discrete distribution: ``values[i]`` with probability ``weights[i]``."""

    values: list[Annotated[float, Field(gt=0)]] = Field(min_length=1)
    weights: list[Annotated[float, Field(ge=0)]] | None = None

    @model_validator(mode="after")
    def _weights_match(self) -> SizeChoice:
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError("weights must have one entry per value")
            if sum(self.weights) <= 0:
                raise ValueError("weights must not all be 0")
        return self


class WorkloadDemand(Strict):
    """Arrivals and sizes of one workload type.

    Arrivals are a non-homogeneous Poisson process with ``per_day`` mean and a daily
    sinusoid of relative ``daily_amplitude`` (peak at ``peak_hour_local``). Durations are
    lognormal with median ``duration_median_s`` and log-std ``duration_sigma``. GPU jobs
    ask for ``gpus`` (a gang placed all-or-nothing in one facility's pool of one type) of one
    of ``gpu_types`` (any when empty);
    mining jobs ask for ``hashrate_ths``.
    """

    per_day: float = Field(ge=0)
    daily_amplitude: Fraction = 0.3
    peak_hour_local: float = Field(14.0, ge=0, lt=24)
    duration_median_s: PositiveFloat
    duration_sigma: float = Field(0.8, ge=0, le=4)
    gpus: SizeChoice = SizeChoice(values=[1])
    gpu_types: list[str] = []
    hashrate_ths: SizeChoice = SizeChoice(values=[1000])
    price_usd_per_gpu_hour: float = Field(2.50, ge=0)
    deadline_factor: float = Field(4.0, ge=1)
    checkpoint_interval_s: float = Field(1800.0, gt=0)
    data_gb: float = Field(0.0, ge=0, le=1e6)
    """Input data each job reads [GB]; moved to the site when it runs outside the
    customer's region."""

    @field_validator("gpu_types")
    @classmethod
    def _known_gpu_types(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if t not in GPU_CATALOG and not t.startswith("custom_")]
        if unknown:
            raise ValueError(f"unknown GPU type {unknown[0]!r}; known: {', '.join(GPU_CATALOG)}")
        return value


def _default_demand() -> dict[WorkloadType, WorkloadDemand]:
    return {
        "ai_inference_realtime": WorkloadDemand(
            per_day=20000, duration_median_s=60, duration_sigma=1.0
        ),
        "ai_inference_batch": WorkloadDemand(
            per_day=600,
            duration_median_s=1800,
            gpus=SizeChoice(values=[1, 2, 4], weights=[0.6, 0.3, 0.1]),
            data_gb=20.0,
        ),
        "model_training": WorkloadDemand(
            per_day=20,
            duration_median_s=6 * 3600,
            duration_sigma=1.0,
            daily_amplitude=0.0,
            gpus=SizeChoice(values=[8, 16, 32, 64], weights=[0.4, 0.3, 0.2, 0.1]),
            data_gb=200.0,
        ),
        "bitcoin_mining": WorkloadDemand(
            per_day=0, duration_median_s=86400, price_usd_per_gpu_hour=0.0
        ),
    }


class Workloads(Strict):
    """Customer demand: ``customers`` tenants (names made with faker) and rates per type."""

    customers: int = Field(20, ge=1, le=100000)
    residency_fraction: Fraction = 0.0
    """Share of customers whose data must stay in their home region [-]."""
    demand: dict[WorkloadType, WorkloadDemand] = Field(default_factory=_default_demand)


# --------------------------------------------------------------------------- policies


class AlwaysOnPolicy(Strict):
    """Mine with every ASIC at all times; GPUs serve jobs, idle GPUs are sold on spot."""

    name: Literal["always_on"] = "always_on"
    sell_idle_gpus_on_spot: bool = True
    respond_to_grid_events: bool = True


class StrikePolicy(Strict):
    """Curtail mining when the price is above each model's strike, with hysteresis.

    Each ASIC model's strike is its breakeven price (hashprice over energy per TH-day,
    plus the contract adder) times ``high_factor`` to curtail and ``low_factor`` to restore;
    a fixed ``strike_usd_per_mwh`` overrides the breakeven. A model curtails after
    ``intervals_above`` consecutive intervals above its high strike and restores after
    ``intervals_below`` consecutive intervals below its low strike. Least-efficient models
    are shed first and most-efficient restored first because their strikes are lower/higher.
    ``curtail_gpu_spot`` stops renting idle GPUs when energy costs more than the rental earns;
    ``avoid_four_cp`` sleeps the miners in known 4CP intervals; ``respond_to_grid_events``
    sheds load when a grid event asks.
    """

    name: Literal["strike"] = "strike"
    high_factor: float = Field(1.0, gt=0, le=10)
    low_factor: float = Field(0.9, gt=0, le=10)
    intervals_above: int = Field(2, ge=1, le=1000)
    intervals_below: int = Field(3, ge=1, le=1000)
    strike_usd_per_mwh: float | None = None
    curtail_gpu_spot: bool = True
    sell_idle_gpus_on_spot: bool = True
    respond_to_grid_events: bool = True
    avoid_four_cp: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> StrikePolicy:
        if self.low_factor > self.high_factor:
            raise ValueError("low_factor must be <= high_factor (hysteresis band)")
        return self


class GreedyPolicy(Strict):
    """Each interval, rank uses by profit per watt and fill the cap in that order: GPU
    work, then spot rentals and miner models while they earn more than the marginal energy
    price (4CP intervals count their transmission charge as energy cost). No look-ahead,
    no hysteresis."""

    name: Literal["greedy"] = "greedy"
    sell_idle_gpus_on_spot: bool = True
    respond_to_grid_events: bool = True


class LookAheadPolicy(Strict):
    """Rolling-horizon MILP dispatch (optimizer.dispatch): ``mpc`` on forecasts made only
    from the past, ``oracle`` on the true future (the upper bound; never usable live).

    ``forecaster``: ``boosted`` (gradient boosting on calendar and lags) or ``naive``
    (same time yesterday). The MILP is re-solved at least every ``resolve_every`` intervals
    (default: 3 for mpc, 1 for the oracle) and at once when a grid request, 4CP flag,
    device count or price octave changes.
    """

    name: Literal["mpc", "oracle"]
    horizon_h: float = Field(24.0, gt=0, le=168)
    resolve_every: int | None = Field(None, ge=1, le=288)
    time_limit_s: float = Field(2.0, gt=0, le=600)
    forecaster: Literal["boosted", "naive"] = "boosted"
    retrain_every_h: float = Field(24.0, gt=0, le=24 * 31)
    training_window_days: float = Field(28.0, ge=1, le=3660)


Policy = Annotated[
    AlwaysOnPolicy | StrikePolicy | GreedyPolicy | LookAheadPolicy,
    Field(discriminator="name"),
]


# --------------------------------------------------------------------------- scenario


class Scenario(Strict):
    """A complete what-if: when, how long, which sites, markets, demand and policy."""

    name: str = Field(min_length=1, max_length=80)
    description: str = ""
    start: datetime
    duration_days: float = Field(gt=0, le=3660)
    seed: int = Field(0, ge=0, le=2**63 - 1)
    dispatch_interval_s: int = Field(300, ge=60, le=3600)
    facilities: list[Facility] = Field(min_length=1)
    market: Market = Market()
    grid: Grid = Grid()
    workloads: Workloads = Workloads()
    scheduling: Scheduling = Scheduling()
    policy: Policy = StrikePolicy()
    faults: list[Fault] = []
    fault_rates: FaultRates = FaultRates()
    telemetry: Telemetry = Telemetry()
    detection: Detection = Detection()

    @field_validator("start")
    @classmethod
    def _aware_start(cls, value: datetime) -> datetime:
        return _require_timezone(value)

    @field_validator("facilities")
    @classmethod
    def _unique_facility_ids(cls, value: list[Facility]) -> list[Facility]:
        seen: set[str] = set()
        for index, facility in enumerate(value):
            if facility.id in seen:
                raise ValueError(f"[{index}].id {facility.id!r} appears twice")  # see _SUB_PATH
            seen.add(facility.id)
        return value

    @field_validator("dispatch_interval_s")
    @classmethod
    def _divides_hour(cls, value: int) -> int:
        if 3600 % value:
            raise ValueError("must divide 3600 (one hour) evenly")
        return value

    @model_validator(mode="after")
    def _events_name_known_facilities(self) -> Scenario:
        seen = {facility.id for facility in self.facilities}
        for event in self.grid.events:
            for site in event.facilities or []:
                if site not in seen:
                    raise ValueError(f"grid event names unknown facility {site!r}")
        for region, sites in self.scheduling.routing.latency_ms.items():
            for site in sites:
                if site not in seen:
                    raise ValueError(
                        f"scheduling.routing.latency_ms.{region}.{site}: no such facility "
                        f"(known: {', '.join(sorted(seen))})"
                    )
        return self

    @model_validator(mode="after")
    def _faults_name_known_devices(self) -> Scenario:
        sites: dict[str, tuple[dict[str, int], dict[str, tuple[int, int]]]] = {}
        for facility in self.facilities:
            asics: dict[str, int] = {}
            for group in facility.asics:
                model_id = group.spec().model_id
                asics[model_id] = asics.get(model_id, 0) + group.count
            gpus: dict[str, tuple[int, int]] = {}
            for gpu_group in facility.gpus:
                type_id = gpu_group.spec().type_id
                count, nodes = gpus.get(type_id, (0, 0))
                gpus[type_id] = (
                    count + gpu_group.count,
                    nodes + gpu_group.count // gpu_group.node_size,
                )
            sites[facility.id] = (asics, gpus)
        problems = fault_problems(self.faults, sites)
        for index, fault in enumerate(self.faults):
            offset_h = (
                (fault.start - self.start).total_seconds() / 3600.0
                if fault.start is not None
                else float(fault.start_offset_h or 0.0)
            )
            if offset_h < 0:  # one after the end never starts: a shortened run is fine
                problems.append(f"faults[{index}].start: {-offset_h:g} h before the run starts")
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    @property
    def duration_s(self) -> float:
        """Scenario length [s]."""
        return self.duration_days * 86400.0

    @property
    def interval_count(self) -> int:
        """Number of dispatch intervals in the run."""
        return round(self.duration_s / self.dispatch_interval_s)


def _require_timezone(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a UTC offset, e.g. 2024-06-01T00:00:00-05:00")
    return value


# --------------------------------------------------------------------------- loading


def load_scenario(
    path: str | Path,
    overrides: dict[str, Any] | None = None,
) -> Scenario:
    """Load, merge (``base:`` chain, then ``overrides`` by dotted path) and validate.

    Raises:
        ScenarioError: unreadable file, bad YAML, a ``base:`` cycle, or invalid fields.
    """
    path = Path(path)
    data = load_merged_mapping(path)
    for key, value in (overrides or {}).items():
        set_path(data, key, value, source=str(path))
    return validate_scenario(data, source=str(path), base_dir=path.parent)


def validate_scenario(
    data: dict[str, Any], source: str | None = None, base_dir: Path | None = None
) -> Scenario:
    """Validate a merged mapping; resolve relative data-file paths against ``base_dir``."""
    data = copy.deepcopy(data)
    data.pop("base", None)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as error:
        raise ScenarioError(format_validation_error(error), source) from None
    resolved, problems = _resolve_files(scenario, base_dir)
    if problems:
        raise ScenarioError(problems, source)
    if resolved:
        for dotted, file in resolved.items():
            set_path(data, dotted, file)
        scenario = Scenario.model_validate(data)
    return scenario


def load_merged_mapping(path: Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The YAML mapping of ``path`` merged over its ``base:`` chain (not yet validated)."""
    resolved = path.resolve()
    if resolved in _chain:
        cycle = " -> ".join(p.name for p in (*_chain, resolved))
        raise ScenarioError([f"base: cycle {cycle}"], str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError([f"cannot read file: {error.strerror or error}"], str(path)) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: safe
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ScenarioError([f"{where}not valid YAML ({problem})"], str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(["top level must be a mapping of fields"], str(path))
    base = data.get("base")
    if base is None:
        return data
    if not isinstance(base, str):
        raise ScenarioError(["base: must be a file path"], str(path))
    base_path = (path.parent / base) if not Path(base).is_absolute() else Path(base)
    if not base_path.exists():
        raise ScenarioError([f"base: file not found: {base}"], str(path))
    merged = load_merged_mapping(base_path, (*_chain, resolved))
    merged.pop("base", None)
    overlay = {k: v for k, v in data.items() if k != "base"}
    return deep_merge(merged, overlay)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key repeated in one mapping is an error.

    Plain PyYAML keeps the last of two equal keys silently, so a second ``power_cap_mw:``
    in a facility would override the first without a word.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *anchor" merges may legitimately be overridden
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # an unhashable key: the base loader reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def deep_merge(base: Any, overlay: Any) -> Any:
    """Merge ``overlay`` over ``base`` (see the module docstring for the rules)."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        if "kind" in base and "kind" in overlay and base["kind"] != overlay["kind"]:
            return copy.deepcopy(overlay)  # another kind of source: none of its keys carry over
        result = dict(base)
        for key, value in overlay.items():
            result[key] = deep_merge(base[key], value) if key in base else copy.deepcopy(value)
        return result
    if _is_id_list(base) and _is_id_list(overlay):
        by_id = {item["id"]: item for item in base}
        order = [item["id"] for item in base]
        for item in overlay:
            if item.get("remove") is True:
                by_id.pop(item["id"], None)
                continue
            if item.get("remove") is False:  # an explicit "keep": not a schema field
                item = {k: v for k, v in item.items() if k != "remove"}
            if item["id"] in by_id:
                by_id[item["id"]] = deep_merge(by_id[item["id"]], item)
            else:
                by_id[item["id"]] = copy.deepcopy(item)
                order.append(item["id"])
        return [by_id[i] for i in order if i in by_id]
    return copy.deepcopy(overlay)


def _is_id_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) and "id" in item for item in value)
    )


_PATH_PART = re.compile(r"([^.\[\]]+)|\[([^\]]+)\]")


def set_path(data: dict[str, Any], dotted: str, value: Any, source: str | None = None) -> None:
    """Set ``data`` at ``dotted`` (``market.btc_price.initial_usd``, ``facilities[0].power_cap_mw``
    or ``facilities[site-b].power_cap_mw`` by id), creating mappings on the way."""
    parts = [m.group(1) or m.group(2) for m in _PATH_PART.finditer(dotted)]
    if not parts:
        raise ScenarioError([f"{dotted}: empty override path"], source)
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            index = _list_index(node, part)
            if index is None:
                raise ScenarioError([f"{dotted}: no item {part!r} in the list"], source)
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise ScenarioError([f"{dotted}: {part!r} is inside a plain value"], source)


def _list_index(items: list[Any], part: str) -> int | None:
    if part.lstrip("-").isdigit():
        index = int(part)
        return index if -len(items) <= index < len(items) else None
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("id") == part:
            return i
    return None


_MESSAGES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "missing": "required field is missing",
    "extra_forbidden": "unknown field",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "string_too_short": "must have at least {min_length} character(s)",
    "string_too_long": "must have at most {max_length} character(s)",
    "string_pattern_mismatch": "must match {pattern}",
    "literal_error": "must be one of {expected}",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be a text string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping of fields",
    "model_attributes_type": "must be a mapping of fields",
    "datetime_type": "must be a date-time with UTC offset, e.g. 2024-06-01T00:00:00-05:00",
    "datetime_parsing": "must be a date-time with UTC offset, e.g. 2024-06-01T00:00:00-05:00",
    "datetime_from_date_parsing": (
        "must be a date-time with UTC offset, e.g. 2024-06-01T00:00:00-05:00"
    ),
}

_DICT_KEY = "[key]"  # pydantic's marker after a mapping key that failed validation


def format_validation_error(error: ValidationError) -> list[str]:
    """Turn pydantic errors into ``path: reason`` lines in the file's own terms.

    The path is the one a user writes in the YAML (``facilities[1].power_cap_mw``): pydantic's
    internal location parts (union tags, validator names) are dropped, see
    :func:`_format_location`. The model validated is found from the error's title, so this
    works for any schema block, not only :class:`Scenario`.
    """
    root = _schema_model(error.title)
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        kind = item["type"]
        context = {key: _format_number(value) for key, value in (item.get("ctx") or {}).items()}
        path, node = _resolve_location(loc, root, extra_key=kind == "extra_forbidden")
        template = _MESSAGES.get(kind)
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            field = str(context.get("discriminator", "kind")).strip("'\"")
            path = f"{path}.{field}" if path else field
            allowed = context.get("expected_tags") or _union_tags(node, field)
            got = f", not {context['tag']!r}" if "tag" in context else ""
            missing = "required field is missing; " if kind == "union_tag_not_found" else ""
            reason = f"{missing}must be one of {allowed}{got}"
        elif kind == "literal_error" and loc and loc[-1] == _DICT_KEY:
            reason = "unknown key; must be one of {expected}".format(**context)
        elif template is not None:
            reason = template.format(**context)
        else:
            reason = str(item["msg"])
            reason = reason.removeprefix("Value error, ").removeprefix("Assertion failed, ")
            # a validator may name a sub-path first: "[1].id 'a' appears twice"
            sub_path = _SUB_PATH.match(reason)
            if sub_path:
                path, reason = path + sub_path.group(1), sub_path.group(2)
        problems.append(f"{path}: {reason}" if path else reason)
    return problems


_SUB_PATH = re.compile(r"^((?:\[\d+\])(?:\.[a-z_]+)*) (.+)$", re.DOTALL)


def _format_location(loc: tuple[Any, ...], root: type[BaseModel] | None = None) -> str:
    """The user's path for a pydantic location, e.g. ``grid.prices.mean_usd_per_mwh``."""
    return _resolve_location(loc, root or Scenario)[0]


def _resolve_location(
    loc: tuple[Any, ...], root: type[BaseModel] | None, extra_key: bool = False
) -> tuple[str, Any]:
    """Walk ``loc`` through the schema types from ``root``; return the path and the last type.

    A location part is kept when it is a list index, a field of the model at that point, or a
    key of a mapping; anything else (a discriminated union's tag, a validator's name such as
    ``function-after[...]``, the ``[key]`` marker) is pydantic's and is dropped. With
    ``extra_key`` the last part is an unknown field the user wrote, so it is kept too.
    Without a known ``root`` the parts that look like names or indices are kept.
    """
    text = ""
    node: Any = root
    for position, part in enumerate(loc):
        node = _unwrap(node)
        is_last = position == len(loc) - 1
        if _union_members(node) and isinstance(part, str):
            member = _union_member_for(node, part)
            if member is not None:
                node = member
                continue  # the part was a tag
            node = next((m for m in _union_members(node) if _has_field(m, part)), None)
            if node is None:
                continue  # a plain union's member label, e.g. "float" in float | str
        if isinstance(part, int):
            text += f"[{part}]"
            node = _item_type(node)
        elif _is_model(node):
            if _has_field(node, part):
                text = _join(text, part)
                node = node.model_fields[part].annotation
            elif extra_key and is_last:
                text = _join(text, part)
        elif get_origin(node) is dict:
            if part != _DICT_KEY:
                text = _join(text, part)
                node = get_args(node)[1] if get_args(node) else None
        elif re.fullmatch(r"[A-Za-z0-9_-]+", str(part)):
            text = _join(text, part)
            node = None
    return text, node


def _join(text: str, part: Any) -> str:
    return f"{text}.{part}" if text else str(part)


def _unwrap(node: Any) -> Any:
    """Strip ``Annotated[...]`` and ``X | None`` down to the type that holds the data."""
    while get_origin(node) is Annotated:
        node = get_args(node)[0]
    members = _union_members(node, keep_none=True)
    if members:
        not_none = [m for m in members if m is not type(None)]
        if len(not_none) == 1:
            return _unwrap(not_none[0])
    return node


def _union_members(node: Any, keep_none: bool = False) -> tuple[Any, ...]:
    if get_origin(node) not in (Union, UnionType):
        return ()
    members = tuple(_unwrap_annotated(m) for m in get_args(node))
    return members if keep_none else tuple(m for m in members if m is not type(None))


def _unwrap_annotated(node: Any) -> Any:
    while get_origin(node) is Annotated:
        node = get_args(node)[0]
    return node


def _union_member_for(union: Any, tag: str) -> type[BaseModel] | None:
    """The union member whose ``Literal`` tag field (``kind``/``name``) equals ``tag``."""
    for member in _union_members(union):
        if not _is_model(member):
            continue
        for field in member.model_fields.values():
            if get_origin(field.annotation) is Literal and tag in get_args(field.annotation):
                return member
    return None


def _union_tags(union: Any, field: str) -> str:
    """``'a', 'b'`` for the tags of ``field`` over the members of a discriminated union."""
    tags = []
    for member in _union_members(union):
        if _is_model(member) and field in member.model_fields:
            tags += [repr(t) for t in get_args(member.model_fields[field].annotation)]
    return ", ".join(tags) or "(unknown)"


def _item_type(node: Any) -> Any:
    args = get_args(node)
    return args[0] if get_origin(node) in (list, tuple) and args else None


def _is_model(node: Any) -> bool:
    return isinstance(node, type) and issubclass(node, BaseModel)


def _has_field(node: Any, name: Any) -> bool:
    return _is_model(node) and isinstance(name, str) and name in node.model_fields


def _schema_model(title: str) -> type[BaseModel] | None:
    """The schema class named ``title`` (a pydantic error's title), if it is one of ours."""
    pending: list[type[BaseModel]] = [Strict]
    while pending:
        cls = pending.pop()
        if cls.__name__ == title:
            return cls
        pending += cls.__subclasses__()
    return None


def _format_number(value: Any) -> Any:
    """``0.0`` -> ``0`` so bounds read as the user wrote them; other values unchanged."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _resolve_files(scenario: Scenario, base_dir: Path | None) -> tuple[dict[str, str], list[str]]:
    """Resolved paths of historical data files (project-relative where possible), problems."""
    resolved: dict[str, str] = {}
    problems = []
    for path, source in _historical_sources(scenario):
        found = resolve_data_file(source.file, base_dir)
        if found is None:
            problems.append(f"{path}.file: file not found: {source.file}")
            continue
        try:
            text = str(found.relative_to(PROJECT_ROOT))
        except ValueError:
            text = str(found)
        if text != source.file:
            resolved[f"{path}.file"] = text
    return resolved, problems


def _historical_sources(scenario: Scenario) -> list[tuple[str, HistoricalSeries]]:
    candidates = {
        "grid.prices": scenario.grid.prices,
        "grid.ancillary": scenario.grid.ancillary,
        "market.btc_price": scenario.market.btc_price,
        "market.network_hashrate": scenario.market.network_hashrate,
        "market.fees": scenario.market.fees,
    }
    return [(k, v) for k, v in candidates.items() if isinstance(v, HistoricalSeries)]


def resolve_data_file(name: str, base_dir: Path | None = None) -> Path | None:
    """Find a data file: as given, next to the scenario, in the project, in datasets/real."""
    candidates = [Path(name)] if Path(name).is_absolute() else []
    if base_dir is not None:
        candidates.append(base_dir / name)
    candidates += [PROJECT_ROOT / name, PROJECT_ROOT / "datasets" / "real" / Path(name).name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    return None
