"""Fault injection: what the scenario's faults do to the simulated world, interval by interval.

The injector holds the ground truth (:class:`models.faults.FaultEvent` list) and applies it:

* device faults (hashboard, fan, thermal runaway) change a miner's readings through
  :class:`models.faults.AsicFaultPhysics`; the interval's ASIC step result is corrected by
  the difference, so revenue and energy see it; a tripped miner goes out of the fleet;
* GPU XID/ECC faults make error counters tick (:meth:`xid_errors`);
* node failures and facility outages take devices out of the fleet (``fail``) at the first
  dispatch tick at or after their onset and back (``repair``) at the first tick after their
  end; the scheduler then sees fewer healthy GPUs and preempts the jobs that no longer fit,
  which resume from their last checkpoint at another site;
* site faults (network partition, price-feed gap, pool outage) are conditions the
  controller asks about (:meth:`site_active`, :meth:`site_share`).

The controller's own decisions enter through :meth:`exclude`: an alerted device is out of
service until ``repair_s`` later, when it comes back repaired (its device faults end). A
device is out of the fleet while any fault holds it down or the controller excludes it.
Devices stop reporting (are *silent*) from the exact onset of what silences them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from models.asic_fleet import AsicFleet, AsicStepResult
from models.faults import (
    ASIC_KINDS,
    AsicFaultPhysics,
    FaultEvent,
    combine_by_device,
)
from models.fleet_physics import FAILED
from models.gpu_fleet import GpuFleet
from models.hardware import AsicSpec
from models.telemetry import lagged_profile

SILENCING_SITE_KINDS = ("network_partition", "facility_outage")


@dataclass(frozen=True, slots=True)
class AsicWindow:
    """Impaired miners over one interval, at the ASIC reading offsets.

    ``devices`` (unique fleet rows) with true readings ``[devices, n]``: ``power_w``,
    ``hashrate_ths``, ``temp_c``, and what the healthy model predicts for the same instants
    (``healthy_*``).
    """

    devices: np.ndarray
    power_w: np.ndarray
    hashrate_ths: np.ndarray
    temp_c: np.ndarray
    healthy_power_w: np.ndarray
    healthy_hashrate_ths: np.ndarray
    healthy_temp_c: np.ndarray


class FaultInjector:
    """Applies fault events to the fleets, one dispatch interval at a time."""

    def __init__(
        self,
        events: list[FaultEvent],
        asic_fleet: AsicFleet,
        gpu_fleet: GpuFleet,
        n_facilities: int,
        asic_offsets_s: np.ndarray,
    ) -> None:
        self.events = events
        self.asic_fleet = asic_fleet
        self.gpu_fleet = gpu_fleet
        self.n_facilities = n_facilities
        self.asic_offsets_s = asic_offsets_s
        models: list[AsicSpec] = asic_fleet.models
        model = asic_fleet.model.astype(np.int64)
        thermal = np.array([m.thermal_c_per_kw for m in models])[model] / 1000.0
        exponent = np.array([m.efficiency_exponent for m in models])[model]
        self.physics = AsicFaultPhysics(events, thermal, exponent)
        n_asic, n_gpu = asic_fleet.n_devices, gpu_fleet.n_devices
        self.asic_down = np.zeros(n_asic, dtype=bool)
        self.gpu_down = np.zeros(n_gpu, dtype=bool)
        self.asic_excluded = np.zeros(n_asic, dtype=bool)
        self.gpu_excluded = np.zeros(n_gpu, dtype=bool)
        self._asic_out = np.zeros(n_asic, dtype=bool)
        self._gpu_out = np.zeros(n_gpu, dtype=bool)
        self.asic_repair_at_s = np.full(n_asic, math.inf)
        self.gpu_repair_at_s = np.full(n_gpu, math.inf)
        self.asic_silent_since_s = np.full(n_asic, np.nan)
        self.gpu_silent_since_s = np.full(n_gpu, np.nan)
        """When each device stopped reporting [s]; NaN while it reports."""
        self._applied = np.zeros(len(events), dtype=bool)
        self._ended = np.zeros(len(events), dtype=bool)
        self._pair_temp_start = np.zeros(self.physics.device.size)
        self._class_of_asic = (
            np.searchsorted(asic_fleet.class_start, np.arange(n_asic), side="right") - 1
        )
        self.window: AsicWindow | None = None
        self._any_silent: dict[str, bool] = {}
        """Per target, whether any device is silent; an entry is dropped when silences
        change (see :meth:`any_silent`)."""
        self.tripped: list[tuple[int, float]] = []
        """(device, trip time [s]) of thermal runaways so far."""

    # ---------------------------------------------------------------- ticks

    def begin_interval(self, t0_s: float, t1_s: float) -> None:
        """Bring the world to tick ``t0_s``: repairs due, faults ending or starting, and the
        silence of whatever stops reporting inside ``[t0_s, t1_s)``."""
        self._repairs_due(t0_s)
        for event in self.events:
            i = event.fault_id
            if not self._ended[i] and event.end_s <= t0_s:
                self._end(event, event.end_s)
            elif not self._applied[i] and event.start_s <= t0_s and not self._ended[i]:
                self._apply(event)
            if not self._ended[i] and event.start_s < t1_s:
                self._silence(event)
        self._sync_service()
        self._pair_temp_start = self.asic_fleet.temp_c[self.physics.device].astype(np.float64)

    def _apply(self, event: FaultEvent) -> None:
        self._applied[event.fault_id] = True
        if event.kind == "node_failure":
            self.gpu_down[event.devices] = True
        elif event.kind == "facility_outage":
            self.asic_down[self.asic_fleet.facility == event.facility] = True
            self.gpu_down[self.gpu_fleet.facility == event.facility] = True

    def _silence(self, event: FaultEvent) -> None:
        if event.kind == "node_failure":
            rows = event.devices[np.isnan(self.gpu_silent_since_s[event.devices])]
            self.gpu_silent_since_s[rows] = event.start_s
            self._any_silent.clear()

    def _end(self, event: FaultEvent, t_s: float) -> None:
        """The event is over at ``t_s`` for all its devices still under it."""
        self._ended[event.fault_id] = True
        event.device_end_s = np.minimum(event.device_end_s, t_s)
        if event.kind in ASIC_KINDS:
            self.physics.end_pairs(np.flatnonzero(self.physics.event_index == event.fault_id))
        elif event.kind == "node_failure":
            self.gpu_down[event.devices] = False
            self.gpu_silent_since_s[event.devices] = np.nan
            self._any_silent.clear()
        elif event.kind == "facility_outage":
            self.asic_down[self.asic_fleet.facility == event.facility] = False
            self.gpu_down[self.gpu_fleet.facility == event.facility] = False
            self._restore_tripped()

    def _restore_tripped(self) -> None:
        """Miners tripped by a runaway stay down after an outage ends."""
        for device, _ in self.tripped:
            self.asic_down[device] |= not self.asic_excluded[device]

    def _repairs_due(self, t0_s: float) -> None:
        for target in ("asic", "gpu"):
            repair_at = self.asic_repair_at_s if target == "asic" else self.gpu_repair_at_s
            due = np.flatnonzero(repair_at <= t0_s)
            if not due.size:
                continue
            repair_at[due] = math.inf
            self._repair(target, due, t0_s)

    def _repair(self, target: str, devices: np.ndarray, t_s: float) -> None:
        """Devices come back repaired at ``t_s``: every device fault on them ends."""
        excluded = self.asic_excluded if target == "asic" else self.gpu_excluded
        down = self.asic_down if target == "asic" else self.gpu_down
        silent = self.asic_silent_since_s if target == "asic" else self.gpu_silent_since_s
        excluded[devices] = False
        for event in self.events:
            if event.target != target or not event.devices.size:
                continue
            hit = np.isin(event.devices, devices)
            if not hit.any() or event.start_s > t_s:
                continue
            event.device_end_s[hit] = np.minimum(event.device_end_s[hit], t_s)
            if event.kind in ASIC_KINDS:
                pairs = np.flatnonzero(
                    (self.physics.event_index == event.fault_id)
                    & np.isin(self.physics.device, devices)
                )
                self.physics.end_pairs(pairs)
                self.physics.tripped[pairs] = False
            if np.all(np.isfinite(event.device_end_s)) and event.kind != "facility_outage":
                self._ended[event.fault_id] = True
        outage = self._outage_facilities(t_s)
        owner = (self.asic_fleet if target == "asic" else self.gpu_fleet).facility[devices]
        keep_down = np.isin(owner, outage)
        down[devices[~keep_down]] = False
        silent[devices[~keep_down]] = np.nan
        self._any_silent.clear()
        self.tripped = [(d, t) for d, t in self.tripped if d not in set(devices.tolist())]

    def _outage_facilities(self, t_s: float) -> list[int]:
        return [
            e.facility
            for e in self.events
            if e.kind == "facility_outage" and e.start_s <= t_s < e.end_s
        ]

    def exclude(
        self, target: str, devices: np.ndarray, t_s: float | np.ndarray, repair_s: float
    ) -> None:
        """The controller takes ``devices`` out of service at ``t_s`` (one time, or one per
        device) [s] until ``t_s + repair_s`` (applied to the fleet at the next tick)."""
        if target == "asic":
            self.asic_excluded[devices] = True
            self.asic_repair_at_s[devices] = np.minimum(
                self.asic_repair_at_s[devices], t_s + repair_s
            )
        else:
            self.gpu_excluded[devices] = True
            self.gpu_repair_at_s[devices] = np.minimum(
                self.gpu_repair_at_s[devices], t_s + repair_s
            )

    def _sync_service(self) -> None:
        """Fail devices newly held out, repair those no longer held (fleet commands)."""
        for fleet, out, down, excluded in (
            (self.asic_fleet, self._asic_out, self.asic_down, self.asic_excluded),
            (self.gpu_fleet, self._gpu_out, self.gpu_down, self.gpu_excluded),
        ):
            wanted = down | excluded
            newly = np.flatnonzero(wanted & ~out)
            back = np.flatnonzero(out & ~wanted)
            if newly.size:
                fleet.fail(newly)
            if back.size:
                fleet.repair(back)
            out[:] = wanted

    def any_silent(self, target: str) -> bool:
        """Whether any miner (``asic``) or GPU (``gpu``) has stopped reporting; rescans only
        after a silence changed (cheap in the common case of none)."""
        if target not in self._any_silent:
            silent = self.asic_silent_since_s if target == "asic" else self.gpu_silent_since_s
            self._any_silent[target] = not bool(np.isnan(silent).all())
        return self._any_silent[target]

    # ---------------------------------------------------------------- sites

    def site_active(self, kind: str, facility: int, t_s: float) -> bool:
        """Whether a site fault of ``kind`` holds ``facility`` at ``t_s``."""
        return any(
            e.kind == kind and e.facility == facility and e.start_s <= t_s < e.end_s
            for e in self.events
        )

    def site_since(self, kind: str, facility: int, t_s: float) -> float:
        """Onset [s] of the site fault of ``kind`` holding ``facility`` at ``t_s``; NaN if
        none."""
        onsets = [
            e.start_s
            for e in self.events
            if e.kind == kind and e.facility == facility and e.start_s <= t_s < e.end_s
        ]
        return min(onsets) if onsets else math.nan

    def site_share(self, kind: str, facility: int, t0_s: float, t1_s: float) -> float:
        """Share of ``[t0_s, t1_s)`` during which a site fault of ``kind`` holds
        ``facility`` [-] (overlaps counted once only approximately: capped at 1)."""
        covered = sum(
            max(0.0, min(t1_s, e.end_s) - max(t0_s, e.start_s))
            for e in self.events
            if e.kind == kind and e.facility == facility
        )
        return min(1.0, covered / (t1_s - t0_s))

    def site_silent_since(self, facility: int, t1_s: float) -> float:
        """Onset [s] of a partition or outage cutting ``facility`` off before ``t1_s``;
        NaN if none."""
        onsets = [
            e.start_s
            for e in self.events
            if e.kind in SILENCING_SITE_KINDS
            and e.facility == facility
            and e.start_s < t1_s
            and e.end_s > e.start_s
            and not self._ended[e.fault_id]
        ]
        return min(onsets) if onsets else math.nan

    # ---------------------------------------------------------------- devices

    def asic_step(self, step: AsicStepResult, t0_s: float, dt_s: float) -> AsicStepResult:
        """The fleet's (healthy) step corrected for impaired miners; keeps the interval's
        :class:`AsicWindow` in :attr:`window` and notes runaway trips."""
        t1_s = t0_s + dt_s
        pairs = self.physics.active_pairs(t0_s, t1_s)
        if not pairs.size:
            self.window = None
            return step
        fleet = self.asic_fleet
        devices = self.physics.device[pairs]
        offsets = self.asic_offsets_s
        n = offsets.size
        power = np.repeat(fleet.power_w[devices].astype(np.float64)[:, None], n, axis=1)
        hashrate = np.repeat(fleet.hashrate_ths[devices].astype(np.float64)[:, None], n, axis=1)
        temp = lagged_profile(
            self._pair_temp_start[pairs],
            fleet.temp_c[devices].astype(np.float64),
            offsets,
            dt_s,
            180.0,
        )
        result = self.physics.readings(pairs, t0_s + offsets, power, hashrate, temp, dt_s)
        unique, power_i = combine_by_device(devices, power, result.power_w, additive=False)
        _, hash_i = combine_by_device(devices, hashrate, result.hashrate_ths, additive=False)
        _, temp_i = combine_by_device(devices, temp, result.temp_c, additive=True)
        first = np.searchsorted(devices[np.argsort(devices, kind="stable")], unique)
        order = np.argsort(devices, kind="stable")[first]
        self.window = AsicWindow(
            unique, power_i, hash_i, temp_i, power[order], hashrate[order], temp[order]
        )
        for pair, at in zip(pairs.tolist(), result.tripped_at_s.tolist(), strict=True):
            if not math.isnan(at):
                device = int(self.physics.device[pair])
                self.tripped.append((device, at))
                self.asic_down[device] = True
                self.asic_silent_since_s[device] = at
                self._any_silent.clear()
        return self._corrected(step, unique, power_i - power[order], hash_i - hashrate[order])

    def _corrected(
        self,
        step: AsicStepResult,
        devices: np.ndarray,
        delta_power_w: np.ndarray,
        delta_ths: np.ndarray,
    ) -> AsicStepResult:
        """``step`` with the mean power and hashrate differences of ``devices`` added."""
        fleet = self.asic_fleet
        classes = self._class_of_asic[devices]
        facility = fleet.class_facility[classes].astype(np.int64)
        model = fleet.class_model[classes].astype(np.int64)
        power_kw = step.mean_power_kw.copy()
        hashrate = step.mean_hashrate_ths.copy()
        np.add.at(power_kw, (facility, model), delta_power_w.mean(axis=1) / 1000.0)
        np.add.at(hashrate, (facility, model), delta_ths.mean(axis=1))
        power_kw = np.maximum(power_kw, 0.0)
        return replace(
            step,
            mean_power_kw=power_kw,
            energy_kwh=power_kw * (step.dt_s / 3600.0),
            mean_hashrate_ths=np.maximum(hashrate, 0.0),
        )

    def xid_sources(self, t0_s: float, t1_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """GPUs with an XID/ECC fault acting in ``[t0_s, t1_s)``: (devices, error rate
        [1/s], time from which they err in the window [s])."""
        devices, rates, since = [], [], []
        for e in self.events:
            if e.kind != "gpu_xid" or e.start_s >= t1_s:
                continue
            live = e.device_end_s > t0_s
            if not live.any():
                continue
            rows = e.devices[live]
            devices.append(rows)
            rates.append(np.full(rows.size, e.params["errors_per_hour"] / 3600.0))
            since.append(np.full(rows.size, max(t0_s, e.start_s)))
        if not devices:
            empty = np.zeros(0)
            return empty.astype(np.int64), empty, empty
        return np.concatenate(devices), np.concatenate(rates), np.concatenate(since)

    def out_of_service(self) -> tuple[np.ndarray, np.ndarray]:
        """Masks of miners and GPUs the fleet holds FAILED now."""
        return self.asic_fleet.state == FAILED, self._gpu_out.copy()

    def close(self, t_end_s: float) -> None:
        """At the run's end, faults still going end there (for the ground-truth record)."""
        for event in self.events:
            event.device_end_s = np.minimum(event.device_end_s, max(t_end_s, event.start_s))
