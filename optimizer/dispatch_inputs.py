"""Typed inputs of the dispatch MILP: a snapshot plus horizon arrays, checked once.

:class:`HorizonData` is what the caller knows about the next ``T`` steps (the mpc policy
fills it from forecasts, the oracle from the true signals); :func:`inputs_from_snapshot`
joins it with the snapshot (fleet state now), the facilities' contracts and the previous
plan into a frozen :class:`DispatchInputs` whose arrays are all validated, read-only and in
one fixed order: facilities as in the snapshot, ASIC classes and GPU pools facility by
facility (see :func:`class_keys` and :func:`pool_keys`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from optimizer.dispatch_types import DispatchInputError
from optimizer.types import Plan, Snapshot
from twin.scenario import FixedBlockContract, IndexContract

DEFAULT_GPU_PRICES_USD_PER_GPU_HOUR = {
    "realtime": 2.50,
    "reserved": 1200.0 / 730.0,
    "batch": 2.50,
    "training": 2.50,
}
"""Billing models of the seed PRD: pay per use 2.50 USD/GPU-h; reserved 1,200 USD/GPU-month
(730 h) [USD/GPU-h]."""

FOUR_CP_WINDOW_S = 900.0
"""Length of one 4CP settlement interval [s] (twin.accounting pro-rates by it)."""


@dataclass(frozen=True, slots=True)
class ContractTerms:
    """A facility's power contract as the dispatch model needs it.

    Attributes:
        adder_usd_per_mwh: paid on top of the real-time price for index energy [USD/MWh].
        block_mw: fixed-price block (take-or-pay) [MW]; 0 for an index contract.
        block_price_usd_per_mwh: price of the block [USD/MWh].
        sellback: unused block energy is sold back at the real-time price.
    """

    adder_usd_per_mwh: float = 0.0
    block_mw: float = 0.0
    block_price_usd_per_mwh: float = 0.0
    sellback: bool = False

    @property
    def is_fixed_block(self) -> bool:
        """True for a fixed-price block contract."""
        return self.block_mw > 0

    @classmethod
    def from_contract(cls, contract: IndexContract | FixedBlockContract) -> ContractTerms:
        """The terms of a scenario contract (twin.scenario)."""
        if isinstance(contract, FixedBlockContract):
            return cls(
                contract.adder_usd_per_mwh,
                contract.block_mw,
                contract.price_usd_per_mwh,
                contract.sellback,
            )
        return cls(adder_usd_per_mwh=contract.adder_usd_per_mwh)


@dataclass(frozen=True, eq=False)
class HorizonData:
    """What is known (or forecast) about the next ``T`` steps of ``step_s`` each.

    Facility arrays are ``[T, F]`` in the snapshot's facility order; pool arrays ``[T, P]``
    in :func:`pool_keys` order. ``None`` holds the snapshot's value over the horizon (zero
    for demand and backlog, no 4CP and no grid request after step 0).

    Attributes:
        step_s: step length [s], > 0.
        price_usd_per_mwh: real-time settlement point price [USD/MWh], [T, F].
        hashprice_usd_per_ths_day: hashprice after pool fee [USD/(TH/s)/day], [T].
        pue_mining, pue_ai: hall PUE [-], [T, F].
        four_cp_probability: probability that a step is a 4CP interval [-], [T, F] or [T].
        curtail_request_fraction: share of flexible load a grid event asks to shed [0-1],
            [T, F].
        curtail_payment_usd_per_mwh: payment for energy shed in an event (and penalty per
            MWh of shortfall) [USD/MWh], [T, F].
        ancillary_usd_per_mw_h: capacity price per service [USD/MW-h], each [T].
        must_serve_gpus: realtime inference GPUs that must run [GPUs], [T, P].
        reserved_gpus: GPUs held for reserved customers [GPUs], [T, P].
        batch_gpus, training_gpus: GPUs wanted by arriving batch / training work [GPUs],
            [T, P]; the work may be deferred within the horizon.
        spot_usd_per_gpu_hour: spot rental price [USD/GPU-h], [T, P].
        batch_backlog_gpu_h, training_backlog_gpu_h: work already waiting [GPU-h], [P].
    """

    step_s: float
    price_usd_per_mwh: np.ndarray
    hashprice_usd_per_ths_day: np.ndarray
    pue_mining: np.ndarray | None = None
    pue_ai: np.ndarray | None = None
    four_cp_probability: np.ndarray | None = None
    curtail_request_fraction: np.ndarray | None = None
    curtail_payment_usd_per_mwh: np.ndarray | None = None
    ancillary_usd_per_mw_h: Mapping[str, np.ndarray] | None = None
    must_serve_gpus: np.ndarray | None = None
    reserved_gpus: np.ndarray | None = None
    batch_gpus: np.ndarray | None = None
    training_gpus: np.ndarray | None = None
    spot_usd_per_gpu_hour: np.ndarray | None = None
    batch_backlog_gpu_h: np.ndarray | None = None
    training_backlog_gpu_h: np.ndarray | None = None

    @property
    def n_steps(self) -> int:
        """Number of horizon steps ``T`` (the length of the price path)."""
        shape = np.shape(self.price_usd_per_mwh)
        return int(shape[0]) if shape else 0


@dataclass(frozen=True, eq=False)
class DispatchInputs:
    """Everything one dispatch solve needs, validated; arrays are read-only.

    Shapes: ``T`` steps, ``F`` facilities, ``C`` ASIC classes, ``P`` GPU pools.

    Attributes:
        snapshot: the state now (plans are checked against its caps and PUEs).
        step_s: horizon step [s].
        facility_ids: facility order [F].
        power_cap_mw: interconnect cap [MW], [F].
        contracts: contract terms [F].
        ramp_up_mw_per_min: limit on the rise of mining IT power [MW/min], [F] (inf: none).
        four_cp_rate_usd_per_kw_year: transmission rate on 4CP demand [USD/kW-year].
        price_usd_per_mwh, pue_mining, pue_ai, four_cp_probability,
        curtail_request_fraction, curtail_payment_usd_per_mwh: [T, F] (HorizonData).
        hashprice_usd_per_ths_day: [T]; ancillary_usd_per_mw_h: service -> [T].
        class_keys: (facility_id, model_id) [C]; class_facility: facility index [C].
        hashrate_ths_each, power_w_each, sleep_w_each, min_power_fraction: specs [C].
        healthy_miners: miners that can run (count - failed) [C].
        active_now: miners hashing now [C]; power_fraction_now: their target now [C].
        pool_keys: (facility_id, type_id) [P]; pool_facility: facility index [P].
        tdp_w, idle_w: GPU powers [W], [P]; healthy_gpus: count - failed [P].
        must_serve_gpus, reserved_gpus, batch_gpus, training_gpus, spot_usd_per_gpu_hour:
            [T, P] (HorizonData).
        gpu_price_usd_per_gpu_hour: price of realtime, reserved, batch, training work
            [USD/GPU-h], [P, 4].
        backlog_gpu_h: batch and training work waiting now [GPU-h], [P, 2].
    """

    snapshot: Snapshot
    step_s: float
    facility_ids: tuple[str, ...]
    power_cap_mw: np.ndarray
    contracts: tuple[ContractTerms, ...]
    ramp_up_mw_per_min: np.ndarray
    four_cp_rate_usd_per_kw_year: float
    price_usd_per_mwh: np.ndarray
    pue_mining: np.ndarray
    pue_ai: np.ndarray
    four_cp_probability: np.ndarray
    curtail_request_fraction: np.ndarray
    curtail_payment_usd_per_mwh: np.ndarray
    hashprice_usd_per_ths_day: np.ndarray
    ancillary_usd_per_mw_h: dict[str, np.ndarray]
    class_keys: tuple[tuple[str, str], ...]
    class_facility: np.ndarray
    hashrate_ths_each: np.ndarray
    power_w_each: np.ndarray
    sleep_w_each: np.ndarray
    min_power_fraction: np.ndarray
    healthy_miners: np.ndarray
    active_now: np.ndarray
    power_fraction_now: np.ndarray
    pool_keys: tuple[tuple[str, str], ...]
    pool_facility: np.ndarray
    tdp_w: np.ndarray
    idle_w: np.ndarray
    healthy_gpus: np.ndarray
    must_serve_gpus: np.ndarray
    reserved_gpus: np.ndarray
    batch_gpus: np.ndarray
    training_gpus: np.ndarray
    spot_usd_per_gpu_hour: np.ndarray
    gpu_price_usd_per_gpu_hour: np.ndarray
    backlog_gpu_h: np.ndarray
    previous_plan: Plan | None = field(default=None)

    @property
    def n_steps(self) -> int:
        """Horizon steps ``T`` (the length of the price path)."""
        shape = np.shape(self.price_usd_per_mwh)
        return int(shape[0]) if shape else 0

    def __post_init__(self) -> None:
        t, f = self.n_steps, len(self.facility_ids)
        c, p = len(self.class_keys), len(self.pool_keys)
        if t < 1:
            raise DispatchInputError("horizon: needs at least one step")
        if not (np.isfinite(self.step_s) and self.step_s > 0):
            raise DispatchInputError(f"horizon.step_s: must be > 0, got {self.step_s}")
        shapes: dict[str, tuple[int, ...]] = {
            "power_cap_mw": (f,),
            "ramp_up_mw_per_min": (f,),
            "price_usd_per_mwh": (t, f),
            "pue_mining": (t, f),
            "pue_ai": (t, f),
            "four_cp_probability": (t, f),
            "curtail_request_fraction": (t, f),
            "curtail_payment_usd_per_mwh": (t, f),
            "hashprice_usd_per_ths_day": (t,),
            "class_facility": (c,),
            "hashrate_ths_each": (c,),
            "power_w_each": (c,),
            "sleep_w_each": (c,),
            "min_power_fraction": (c,),
            "healthy_miners": (c,),
            "active_now": (c,),
            "power_fraction_now": (c,),
            "pool_facility": (p,),
            "tdp_w": (p,),
            "idle_w": (p,),
            "healthy_gpus": (p,),
            "must_serve_gpus": (t, p),
            "reserved_gpus": (t, p),
            "batch_gpus": (t, p),
            "training_gpus": (t, p),
            "spot_usd_per_gpu_hour": (t, p),
            "gpu_price_usd_per_gpu_hour": (p, 4),
            "backlog_gpu_h": (p, 2),
        }
        for name, shape in shapes.items():
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.shape != shape:
                got = getattr(value, "shape", type(value).__name__)
                raise DispatchInputError(f"{name}: expected shape {shape}, got {got}")
            array = np.array(value, dtype=value.dtype, copy=True)
            array.flags.writeable = False
            object.__setattr__(self, name, array)
            finite = np.isfinite(array) | (name == "ramp_up_mw_per_min")
            if not np.all(finite) or np.any(np.isnan(array)):
                bad = np.argwhere(~finite | np.isnan(array))[0].tolist()
                raise DispatchInputError(f"{name}: value at index {bad} is not finite")
        ancillary = {}
        for name, value in self.ancillary_usd_per_mw_h.items():
            array = np.array(value, dtype=float, copy=True)
            if array.shape != (t,) or not np.all(np.isfinite(array)):
                raise DispatchInputError(
                    f"ancillary_usd_per_mw_h[{name}]: need {t} finite values, got shape "
                    f"{array.shape}"
                )
            array.flags.writeable = False
            ancillary[name] = array
        object.__setattr__(self, "ancillary_usd_per_mw_h", ancillary)
        self._check_ranges()

    def _check_ranges(self) -> None:
        def at_least(name: str, low: float) -> None:
            array = getattr(self, name)
            if np.any(array < low):
                bad = np.argwhere(array < low)[0].tolist()
                raise DispatchInputError(f"{name}: must be >= {low}, index {bad} is lower")

        for name in ("pue_mining", "pue_ai"):
            at_least(name, 1.0)
        for name in (
            "power_cap_mw",
            "ramp_up_mw_per_min",
            "curtail_payment_usd_per_mwh",
            "power_w_each",
            "sleep_w_each",
            "hashrate_ths_each",
            "hashprice_usd_per_ths_day",
            "healthy_miners",
            "active_now",
            "tdp_w",
            "idle_w",
            "healthy_gpus",
            "must_serve_gpus",
            "reserved_gpus",
            "batch_gpus",
            "training_gpus",
            "spot_usd_per_gpu_hour",
            "gpu_price_usd_per_gpu_hour",
            "backlog_gpu_h",
            "four_cp_probability",
            "curtail_request_fraction",
        ):
            at_least(name, 0.0)
        for name in ("four_cp_probability", "curtail_request_fraction"):
            if np.any(getattr(self, name) > 1):
                raise DispatchInputError(f"{name}: must be <= 1")
        if np.any(self.idle_w > self.tdp_w):
            raise DispatchInputError("idle_w: a GPU's idle power must not exceed its TDP")
        if np.any((self.min_power_fraction <= 0) | (self.min_power_fraction > 1)):
            raise DispatchInputError("min_power_fraction: must be in (0, 1]")
        if (
            not np.isfinite(self.four_cp_rate_usd_per_kw_year)
            or self.four_cp_rate_usd_per_kw_year < 0
        ):
            raise DispatchInputError("four_cp_rate_usd_per_kw_year: must be finite and >= 0")
        if len(self.contracts) != len(self.facility_ids):
            raise DispatchInputError("contracts: need one per facility")
        # The twin checks a plan against the snapshot's cap and PUEs (optimizer.power), so
        # the first step may not assume a larger cap or a smaller PUE than those.
        now = self.snapshot.facilities
        if tuple(f.facility_id for f in now) != self.facility_ids:
            raise DispatchInputError("facility_ids: must follow the snapshot's facilities")
        tolerance = 1e-12
        for name, snapshot_values in (
            ("pue_mining", [f.pue_mining for f in now]),
            ("pue_ai", [f.pue_ai for f in now]),
        ):
            if np.any(getattr(self, name)[0] < np.array(snapshot_values) - tolerance):
                raise DispatchInputError(f"{name}[0]: must not be below the snapshot's PUE")
        if np.any(self.power_cap_mw > np.array([f.power_cap_mw for f in now]) + tolerance):
            raise DispatchInputError("power_cap_mw: must not exceed the snapshot's caps")


def class_keys(snapshot: Snapshot) -> tuple[tuple[str, str], ...]:
    """The ``(facility_id, model_id)`` of every ASIC class, in dispatch order."""
    return tuple((f.facility_id, c.model_id) for f in snapshot.facilities for c in f.asic_classes)


def pool_keys(snapshot: Snapshot) -> tuple[tuple[str, str], ...]:
    """The ``(facility_id, type_id)`` of every GPU pool, in dispatch (``[T, P]``) order."""
    return tuple((f.facility_id, p.type_id) for f in snapshot.facilities for p in f.gpu_pools)


def inputs_from_snapshot(
    snapshot: Snapshot,
    horizon: HorizonData,
    contracts: Mapping[str, IndexContract | FixedBlockContract | ContractTerms],
    *,
    four_cp_rate_usd_per_kw_year: float = 55.0,
    ramp_up_mw_per_min: Mapping[str, float] | None = None,
    gpu_prices_usd_per_gpu_hour: Mapping[str, float] | None = None,
    previous_plan: Plan | None = None,
) -> DispatchInputs:
    """Join a snapshot, horizon arrays and contracts into validated :class:`DispatchInputs`.

    Step 0 always uses the snapshot's PUEs (the twin checks the plan against them); the
    caller's price path is used as given (forecast or truth). Missing horizon arrays hold
    the snapshot's values (see :class:`HorizonData`).

    Args:
        snapshot: the state now.
        horizon: the next ``T`` steps.
        contracts: contract of every facility, by facility id.
        four_cp_rate_usd_per_kw_year: 4CP transmission rate [USD/kW-year].
        ramp_up_mw_per_min: mining IT ramp-up limit per facility id [MW/min]; absent: none.
        gpu_prices_usd_per_gpu_hour: price of ``realtime``, ``reserved``, ``batch`` and
            ``training`` work [USD/GPU-h] (defaults: :data:`DEFAULT_GPU_PRICES_USD_PER_GPU_HOUR`).
        previous_plan: the plan in force now (its power targets are the current ones).

    Raises:
        DispatchInputError: a missing contract, a wrong shape or a bad value (named).
    """
    facilities = snapshot.facilities
    facility_ids = tuple(f.facility_id for f in facilities)
    t = horizon.n_steps
    f_count = len(facilities)
    if t < 1:
        raise DispatchInputError("horizon.price_usd_per_mwh: needs at least one step")

    def facility_array(name: str, default_row: list[float], first_only: bool = False) -> np.ndarray:
        value = getattr(horizon, name)
        if value is None:
            array = np.zeros((t, f_count))
            if first_only:
                array[0] = default_row
            else:
                array[:] = default_row
            return array
        array = np.array(value, dtype=float)
        if array.ndim == 1 and name == "four_cp_probability" and array.shape == (t,):
            array = np.repeat(array[:, None], f_count, axis=1)
        if array.shape != (t, f_count):
            raise DispatchInputError(
                f"horizon.{name}: expected shape {(t, f_count)}, got {array.shape}"
            )
        return array

    price = facility_array("price_usd_per_mwh", [0.0] * f_count)
    pue_mining = facility_array("pue_mining", [f.pue_mining for f in facilities])
    pue_ai = facility_array("pue_ai", [f.pue_ai for f in facilities])
    pue_mining[0] = [f.pue_mining for f in facilities]
    pue_ai[0] = [f.pue_ai for f in facilities]
    four_cp = facility_array(
        "four_cp_probability", [float(f.four_cp_interval) for f in facilities], first_only=True
    )
    curtail = facility_array(
        "curtail_request_fraction",
        [f.curtail_request_fraction for f in facilities],
        first_only=True,
    )
    payment = facility_array("curtail_payment_usd_per_mwh", [0.0] * f_count)
    hashprice = np.array(horizon.hashprice_usd_per_ths_day, dtype=float)
    if hashprice.shape != (t,):
        raise DispatchInputError(
            f"horizon.hashprice_usd_per_ths_day: expected shape {(t,)}, got {hashprice.shape}"
        )

    terms = []
    for facility_id in facility_ids:
        if facility_id not in contracts:
            raise DispatchInputError(f"contracts: no contract for facility {facility_id!r}")
        contract = contracts[facility_id]
        terms.append(
            contract
            if isinstance(contract, ContractTerms)
            else ContractTerms.from_contract(contract)
        )
    ramps = ramp_up_mw_per_min or {}
    unknown = sorted(set(ramps) - set(facility_ids))
    if unknown:
        raise DispatchInputError(f"ramp_up_mw_per_min: unknown facility {unknown[0]!r}")
    ramp = np.array([ramps.get(i, np.inf) for i in facility_ids], dtype=float)

    if horizon.ancillary_usd_per_mw_h is None:
        ancillary = {k: np.full(t, float(v)) for k, v in snapshot.ancillary_usd_per_mw_h.items()}
    else:
        ancillary = {k: np.array(v, dtype=float) for k, v in horizon.ancillary_usd_per_mw_h.items()}

    classes = [(i, f, c) for i, f in enumerate(facilities) for c in f.asic_classes]
    previous_fraction = {}
    if previous_plan is not None:
        for plan in previous_plan.facilities:
            for model_id, fraction in plan.asic_power_fraction.items():
                previous_fraction[(plan.facility_id, model_id)] = fraction
    healthy_miners = np.array([max(0, c.count - c.failed) for _, _, c in classes], dtype=float)
    pools = [(i, f, p) for i, f in enumerate(facilities) for p in f.gpu_pools]
    p_count = len(pools)

    def pool_array(name: str, default_row: list[float]) -> np.ndarray:
        value = getattr(horizon, name)
        if value is None:
            return np.tile(np.array(default_row, dtype=float), (t, 1)).reshape(t, p_count)
        array = np.array(value, dtype=float)
        if array.shape != (t, p_count):
            raise DispatchInputError(
                f"horizon.{name}: expected shape {(t, p_count)}, got {array.shape}"
            )
        return array

    def backlog(name: str) -> np.ndarray:
        value = getattr(horizon, name)
        if value is None:
            return np.zeros(p_count)
        array = np.array(value, dtype=float)
        if array.shape != (p_count,):
            raise DispatchInputError(
                f"horizon.{name}: expected shape {(p_count,)}, got {array.shape}"
            )
        return array

    prices = dict(DEFAULT_GPU_PRICES_USD_PER_GPU_HOUR)
    unknown_uses = sorted(set(gpu_prices_usd_per_gpu_hour or {}) - set(prices))
    if unknown_uses:
        raise DispatchInputError(
            f"gpu_prices_usd_per_gpu_hour: unknown use {unknown_uses[0]!r}; known: "
            + ", ".join(prices)
        )
    prices.update(gpu_prices_usd_per_gpu_hour or {})
    zeros = [0.0] * p_count
    return DispatchInputs(
        snapshot=snapshot,
        step_s=float(horizon.step_s),
        facility_ids=facility_ids,
        power_cap_mw=np.array([f.power_cap_mw for f in facilities], dtype=float),
        contracts=tuple(terms),
        ramp_up_mw_per_min=ramp,
        four_cp_rate_usd_per_kw_year=float(four_cp_rate_usd_per_kw_year),
        price_usd_per_mwh=price,
        pue_mining=pue_mining,
        pue_ai=pue_ai,
        four_cp_probability=four_cp,
        curtail_request_fraction=curtail,
        curtail_payment_usd_per_mwh=payment,
        hashprice_usd_per_ths_day=hashprice,
        ancillary_usd_per_mw_h=ancillary,
        class_keys=class_keys(snapshot),
        class_facility=np.array([i for i, _, _ in classes], dtype=np.int64),
        hashrate_ths_each=np.array([c.hashrate_ths_each for _, _, c in classes], dtype=float),
        power_w_each=np.array([c.power_w_each for _, _, c in classes], dtype=float),
        sleep_w_each=np.array([c.sleep_power_w_each for _, _, c in classes], dtype=float),
        min_power_fraction=np.array([c.min_power_fraction for _, _, c in classes], dtype=float),
        healthy_miners=healthy_miners,
        active_now=np.minimum(
            healthy_miners, np.array([c.active for _, _, c in classes], dtype=float)
        ),
        power_fraction_now=np.array(
            [previous_fraction.get((f.facility_id, c.model_id), 1.0) for _, f, c in classes],
            dtype=float,
        ),
        pool_keys=pool_keys(snapshot),
        pool_facility=np.array([i for i, _, _ in pools], dtype=np.int64),
        tdp_w=np.array([p.tdp_w for _, _, p in pools], dtype=float),
        idle_w=np.array([p.idle_w for _, _, p in pools], dtype=float),
        healthy_gpus=np.array([max(0, p.count - p.failed) for _, _, p in pools], dtype=float),
        must_serve_gpus=pool_array("must_serve_gpus", zeros),
        reserved_gpus=pool_array("reserved_gpus", zeros),
        batch_gpus=pool_array("batch_gpus", zeros),
        training_gpus=pool_array("training_gpus", zeros),
        spot_usd_per_gpu_hour=pool_array(
            "spot_usd_per_gpu_hour", [p.rental_usd_per_gpu_hour for _, _, p in pools]
        ),
        gpu_price_usd_per_gpu_hour=np.tile(
            np.array([prices["realtime"], prices["reserved"], prices["batch"], prices["training"]]),
            (p_count, 1),
        ).reshape(p_count, 4),
        backlog_gpu_h=np.stack(
            [backlog("batch_backlog_gpu_h"), backlog("training_backlog_gpu_h")], axis=1
        ).reshape(p_count, 2),
        previous_plan=previous_plan,
    )
