"""Injected faults as data, and the physics of ASIC device faults over the healthy fleet.

A :class:`FaultEvent` is one incident: a kind, a facility, the fleet rows it hits (none for
a site fault) and when it starts and ends [s since scenario start]. :func:`resolve_faults`
turns the scenario's declared faults and random fault rates into events, choosing devices
with the seeded ``faults`` generator.

:class:`AsicFaultPhysics` computes what a miner with device faults reads at given instants,
from what the healthy fleet model says it would read (the fleet arrays stay the healthy
model; faults are an overlay, so a run without faults is untouched):

* hashboard failure: hashrate x ``(1 - boards / 3)`` at unchanged power;
* fan failure: temperature rise per kW x ``thermal_multiplier``; at :data:`THROTTLE_C` the
  firmware throttles to :data:`THROTTLE_POWER_FRACTION` of its power (latched while the
  fault lasts), hashrate by ``fraction ** efficiency_exponent``;
* thermal runaway: temperature climbs by ``rise_c_per_min`` from the onset; at ``trip_c``
  the miner trips (no power, no hashrate) and the caller takes it out of the fleet.

Temperatures relax with :data:`models.fleet_physics.ASIC_THERMAL_TIME_CONSTANT_S`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from models.fleet_physics import ASIC_THERMAL_TIME_CONSTANT_S

Target = Literal["asic", "gpu", "site"]

THROTTLE_C = 90.0
"""Chip temperature at which miner firmware throttles [°C]."""
THROTTLE_POWER_FRACTION = 0.5
"""Power a throttled miner keeps, as a fraction of its power before throttling [-]."""

HASHBOARD = "hashboard_failure"
FAN = "fan_failure"
RUNAWAY = "thermal_runaway"
ASIC_KINDS = (HASHBOARD, FAN, RUNAWAY)
TARGETS: dict[str, Target] = {
    HASHBOARD: "asic",
    FAN: "asic",
    RUNAWAY: "asic",
    "gpu_xid": "gpu",
    "node_failure": "gpu",
    "network_partition": "site",
    "facility_outage": "site",
    "price_feed_gap": "site",
    "pool_outage": "site",
}


@dataclass(slots=True)
class FaultEvent:
    """One injected incident (ground truth).

    Attributes:
        fault_id: position in the run's event list.
        kind: the scenario ``kind`` (``hashboard_failure`` ...).
        facility: facility index.
        target: what it hits: ``asic`` / ``gpu`` rows of the fleets, or the ``site``.
        devices: fleet rows hit (int64, sorted; empty for a site fault).
        start_s: onset [s since scenario start].
        end_s: declared end [s]; ``inf`` until repaired (device) or the run's end (site).
        params: kind-specific numbers (``boards``, ``thermal_multiplier``, ``rise_c_per_min``,
            ``trip_c``, ``errors_per_hour``).
        source: ``declared`` (scenario ``faults:``) or ``random`` (``fault_rates:``).
        device_end_s: per device, when its fault really ended (repair or declared end) [s];
            kept up to date by the injector, ``inf`` while it lasts.
    """

    fault_id: int
    kind: str
    facility: int
    target: Target
    devices: np.ndarray
    start_s: float
    end_s: float
    params: dict[str, float] = field(default_factory=dict)
    source: str = "declared"
    device_end_s: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        if self.device_end_s.size != self.devices.size:
            self.device_end_s = np.full(self.devices.size, self.end_s)


@dataclass(frozen=True, slots=True)
class FleetLayout:
    """Where devices are, for choosing fault targets (copies of fleet columns).

    Attributes:
        asic_facility, asic_model: per miner, facility index and model id.
        gpu_facility, gpu_type, gpu_node: per GPU, facility index, type id, global node id.
    """

    asic_facility: np.ndarray
    asic_model: np.ndarray
    gpu_facility: np.ndarray
    gpu_type: np.ndarray
    gpu_node: np.ndarray


_PARAMS = ("boards", "thermal_multiplier", "rise_c_per_min", "trip_c", "errors_per_hour")
"""Kind-specific numbers a fault entry may carry."""


def resolve_faults(
    faults: Sequence[Any],
    rates: Any,
    start_offsets_s: Sequence[float],
    facility_ids: Sequence[str],
    layout: FleetLayout,
    duration_s: float,
    rng: np.random.Generator,
) -> list[FaultEvent]:
    """Events for the declared ``faults`` (scenario entries, ``start_offsets_s`` their onsets
    [s]) then random ones from ``rates`` (:class:`twin.scenario_faults.FaultRates`), in that
    order; devices are drawn from ``rng`` without replacement per incident."""
    events: list[FaultEvent] = []
    for fault, start_s in zip(faults, start_offsets_s, strict=True):
        facility = facility_ids.index(fault.facility)
        duration_h = fault.duration_h
        end_s = math.inf if duration_h is None else start_s + duration_h * 3600.0
        target = TARGETS[fault.kind]
        devices = _choose_devices(fault, facility, layout, rng)
        params = {name: float(getattr(fault, name)) for name in _PARAMS if hasattr(fault, name)}
        events.append(
            FaultEvent(len(events), fault.kind, facility, target, devices, start_s, end_s, params)
        )
    events += _random_events(rates, layout, duration_s, rng, first_id=len(events))
    return events


def _choose_devices(
    fault: Any, facility: int, layout: FleetLayout, rng: np.random.Generator
) -> np.ndarray:
    """Fleet rows a declared fault hits (empty for a site fault)."""
    target = TARGETS[fault.kind]
    if target == "site":
        return np.zeros(0, dtype=np.int64)
    if fault.kind == "node_failure":
        rows = np.flatnonzero(layout.gpu_facility == facility)
        if fault.gpu_type is not None:
            rows = rows[layout.gpu_type[rows] == fault.gpu_type]
        nodes = np.unique(layout.gpu_node[rows])
        chosen = rng.choice(nodes, size=fault.nodes, replace=False)
        return np.sort(rows[np.isin(layout.gpu_node[rows], chosen)]).astype(np.int64)
    if target == "asic":
        rows = np.flatnonzero(layout.asic_facility == facility)
        if fault.model is not None:
            rows = rows[layout.asic_model[rows] == fault.model]
    else:
        rows = np.flatnonzero(layout.gpu_facility == facility)
        if fault.gpu_type is not None:
            rows = rows[layout.gpu_type[rows] == fault.gpu_type]
    if fault.count is not None:
        size = fault.count
    elif fault.fraction is not None:
        size = max(1, round(fault.fraction * rows.size))
    else:
        size = 1
    return np.sort(rng.choice(rows, size=size, replace=False)).astype(np.int64)


_RANDOM_DEFAULTS: dict[str, dict[str, float]] = {
    HASHBOARD: {"boards": 1.0},
    FAN: {"thermal_multiplier": 1.6},
    RUNAWAY: {"rise_c_per_min": 3.0, "trip_c": 105.0},
    "gpu_xid": {"errors_per_hour": 30.0},
}


def _random_events(
    rates: Any, layout: FleetLayout, duration_s: float, rng: np.random.Generator, first_id: int
) -> list[FaultEvent]:
    """One event per device for each Poisson draw of the per-device-year rates."""
    years = duration_s / (365.0 * 86400.0)
    events: list[FaultEvent] = []
    per_device = [
        (HASHBOARD, rates.hashboard_failure_per_device_year, layout.asic_facility),
        (FAN, rates.fan_failure_per_device_year, layout.asic_facility),
        (RUNAWAY, rates.thermal_runaway_per_device_year, layout.asic_facility),
        ("gpu_xid", rates.gpu_xid_per_device_year, layout.gpu_facility),
    ]
    for kind, rate, facility_of in per_device:
        if rate <= 0 or facility_of.size == 0:
            continue
        count = int(rng.poisson(rate * facility_of.size * years))
        devices = rng.integers(0, facility_of.size, size=count)
        starts = np.sort(rng.uniform(0.0, duration_s, size=count))
        for device, start_s in zip(devices.tolist(), starts.tolist(), strict=True):
            events.append(
                FaultEvent(
                    first_id + len(events),
                    kind,
                    int(facility_of[device]),
                    TARGETS[kind],
                    np.array([device], dtype=np.int64),
                    float(start_s),
                    math.inf,
                    dict(_RANDOM_DEFAULTS[kind]),
                    source="random",
                )
            )
    node_rate = rates.node_failure_per_node_year
    nodes = np.unique(layout.gpu_node)
    if node_rate > 0 and nodes.size:
        count = int(rng.poisson(node_rate * nodes.size * years))
        chosen = rng.choice(nodes, size=count)
        starts = np.sort(rng.uniform(0.0, duration_s, size=count))
        for node, start_s in zip(chosen.tolist(), starts.tolist(), strict=True):
            rows = np.flatnonzero(layout.gpu_node == node).astype(np.int64)
            events.append(
                FaultEvent(
                    first_id + len(events),
                    "node_failure",
                    int(layout.gpu_facility[rows[0]]),
                    "gpu",
                    rows,
                    float(start_s),
                    float(start_s) + rates.node_failure_duration_h * 3600.0,
                    source="random",
                )
            )
    return events


@dataclass(frozen=True, slots=True)
class AsicFaultReadings:
    """True (noise-free) readings of impaired miners at instants ``t_s``.

    Arrays are ``[devices, instants]``: ``power_w`` [W], ``hashrate_ths`` [TH/s], ``temp_c``
    [°C]. ``tripped_at_s``: per device, when a thermal runaway tripped it in the window, NaN
    if it did not [s].
    """

    power_w: np.ndarray
    hashrate_ths: np.ndarray
    temp_c: np.ndarray
    tripped_at_s: np.ndarray


class AsicFaultPhysics:
    """State and physics of ASIC device faults (one entry per (event, device) pair).

    ``thermal_c_per_w`` and ``efficiency_exponent`` are per fleet row. Call :meth:`readings`
    once per interval, in time order: it advances each pair's temperature offset over the
    healthy model and its throttle latch to the end of the window.
    """

    def __init__(
        self,
        events: Sequence[FaultEvent],
        thermal_c_per_w: np.ndarray,
        efficiency_exponent: np.ndarray,
    ) -> None:
        asic = [e for e in events if e.kind in ASIC_KINDS]
        sizes = [e.devices.size for e in asic]
        self.event_index = np.repeat(np.array([e.fault_id for e in asic], np.int64), sizes)
        self.position = np.concatenate([np.arange(n) for n in sizes]) if asic else np.zeros(0)
        self.position = self.position.astype(np.int64)
        self.device = np.concatenate([e.devices for e in asic]) if asic else np.zeros(0, np.int64)
        self.kind = np.repeat(np.array([ASIC_KINDS.index(e.kind) for e in asic], np.int64), sizes)
        self.start_s = np.repeat(np.array([e.start_s for e in asic]), sizes)

        def param(name: str, default: float) -> np.ndarray:
            return np.repeat(np.array([e.params.get(name, default) for e in asic]), sizes)

        self.boards = param("boards", 0.0)
        self.thermal_multiplier = param("thermal_multiplier", 1.0)
        self.rise_c_per_s = param("rise_c_per_min", 0.0) / 60.0
        self.trip_c = param("trip_c", math.inf)
        self.offset_c = np.zeros(self.device.size)
        """Temperature over the healthy model at the end of the last window [°C]."""
        self.throttled = np.zeros(self.device.size, dtype=bool)
        self.tripped = np.zeros(self.device.size, dtype=bool)
        self.ended = np.zeros(self.device.size, dtype=bool)
        """Pairs whose fault is over (declared end or repair): no effect any more."""
        self._thermal_c_per_w = thermal_c_per_w
        self._exponent = efficiency_exponent

    def active_pairs(self, t0_s: float, t1_s: float) -> np.ndarray:
        """Pairs whose fault acts somewhere in ``[t0_s, t1_s)``."""
        return np.flatnonzero((self.start_s < t1_s) & ~self.ended)

    def end_pairs(self, pairs: np.ndarray) -> None:
        """The faults of ``pairs`` are over (repaired or at their declared end)."""
        self.ended[pairs] = True
        self.offset_c[pairs] = 0.0

    def readings(
        self,
        pairs: np.ndarray,
        t_s: np.ndarray,
        power_w: np.ndarray,
        hashrate_ths: np.ndarray,
        temp_c: np.ndarray,
        dt_s: float,
    ) -> AsicFaultReadings:
        """Readings of the devices of ``pairs`` at instants ``t_s`` (``[n]``, ascending,
        spanning one interval of ``dt_s`` [s]) from their healthy values ``[pairs, n]``.

        Each pair is one (event, device); several pairs may share a device, and the caller
        combines them (:func:`combine_by_device`). Advances the pairs' state.
        """
        k, n = pairs.size, t_s.size
        on = t_s[None, :] >= self.start_s[pairs][:, None]
        kind = self.kind[pairs][:, None]
        hash_factor = np.where(on & (kind == 0), 1.0 - self.boards[pairs][:, None] / 3.0, 1.0)
        power_factor = np.ones((k, n))
        thermal = self._thermal_c_per_w[self.device[pairs]][:, None]
        step_s = dt_s / n
        decay = math.exp(-step_s / ASIC_THERMAL_TIME_CONSTANT_S)
        offset = np.empty((k, n))
        current = self.offset_c[pairs].copy()
        throttled = self.throttled[pairs].copy()
        tripped = self.tripped[pairs].copy()
        tripped_at = np.full(k, np.nan)
        multiplier = self.thermal_multiplier[pairs]
        rise = self.rise_c_per_s[pairs]
        is_fan = self.kind[pairs] == 1
        is_runaway = self.kind[pairs] == 2
        exponent = self._exponent[self.device[pairs]]
        # n is the readings per interval (tens to hundreds): a loop over instants, vectorized
        # over devices, keeps the latch and trip logic exact and cheap
        for i in range(n):
            active = on[:, i] & ~tripped
            level = np.where(throttled, THROTTLE_POWER_FRACTION, 1.0)
            fan_target = thermal[:, 0] * power_w[:, i] * (multiplier * level - 1.0)
            target = np.where(is_fan & active, fan_target, 0.0)
            current = target + (current - target) * decay
            runaway_c = np.where(
                is_runaway & active, rise * np.maximum(0.0, t_s[i] - self.start_s[pairs]), 0.0
            )
            current = np.where(is_runaway & active, runaway_c, current)
            offset[:, i] = current
            total_c = temp_c[:, i] + current
            newly = is_fan & active & ~throttled & (total_c >= THROTTLE_C)
            throttled |= newly
            trip = is_runaway & active & (total_c >= self.trip_c[pairs])
            tripped_at = np.where(trip & np.isnan(tripped_at), t_s[i], tripped_at)
            tripped |= trip
            power_factor[:, i] = np.where(
                throttled & is_fan & on[:, i], THROTTLE_POWER_FRACTION, 1.0
            )
            power_factor[:, i] = np.where(tripped, 0.0, power_factor[:, i])
        hash_factor = hash_factor * np.power(power_factor, exponent[:, None])
        self.offset_c[pairs] = current
        self.throttled[pairs] = throttled
        self.tripped[pairs] = tripped
        return AsicFaultReadings(
            power_w=power_w * power_factor,
            hashrate_ths=hashrate_ths * hash_factor,
            temp_c=np.where(power_factor > 0, temp_c + offset, temp_c),
            tripped_at_s=tripped_at,
        )


def combine_by_device(
    devices: np.ndarray, healthy: np.ndarray, impaired: np.ndarray, additive: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-pair readings ``[pairs, n]`` of possibly repeated ``devices`` into one row
    per unique device: factors multiply (``additive=False``: ratios to ``healthy``) or
    offsets add (``additive=True``: differences). Returns (unique devices, values)."""
    unique, inverse = np.unique(devices, return_inverse=True)
    first = np.zeros(unique.size, dtype=np.int64)
    first[inverse[::-1]] = np.arange(devices.size)[::-1]
    base = healthy[first]
    if additive:
        out = base.copy()
        np.add.at(out, inverse, impaired - healthy)
        return unique, out
    ratio = np.divide(impaired, healthy, out=np.ones_like(impaired), where=healthy != 0)
    factor = np.ones_like(base)
    np.multiply.at(factor, inverse, ratio)
    return unique, base * factor
