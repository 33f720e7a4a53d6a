"""The control loop in live mode: the same controller on a wall clock, real or emulated
devices, polled signals.

:class:`LiveController` is the simulation's :class:`twin.controller.Controller` with three
changes:

* **prices** come from background pollers (twin.signal_poller) instead of the world's
  signal; a stale price on any site switches the tick to the conservative policy
  (optimizer.conservative) until prices are fresh again;
* **the ASIC fleet is the devices**: miner counts by state come from the driver's
  readings, and what happened over a tick is *measured*
  (power, hashrate from the driver), not stepped by the simulated physics. GPU work still
  runs through the scheduler and the simulated GPU fleet unless a real GPU driver is given;
* each tick is logged as a :class:`LiveSample` with its loop lag, and exported as
  Prometheus metrics.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import simpy

from drivers.base import AsicDriver, AsicReadings, GpuDriver, QuarantiningAsicDriver
from models.fleet_physics import AsicState
from optimizer.policies import Policy
from optimizer.types import Snapshot
from twin.controller import Controller, World
from twin.live_health import LiveHealthCheck, LiveTelemetry
from twin.live_metrics import LiveMetrics
from twin.recorder import Recorder
from twin.signal_poller import CachedValue, SignalPoller

QUARANTINE_S = 4 * 3600.0
"""How long a miner flagged by the live health check stays asleep and out of service [s]
(as long as a repair takes in the simulation's health monitor)."""


@dataclass(frozen=True, slots=True)
class LiveSample:
    """One live tick at one facility.

    Attributes:
        tick: tick number from 0.
        t_s: live clock at the tick [s since start].
        lag_s: how late the tick started against its schedule [s].
        facility_id: the facility.
        price_usd_per_mwh: price the policy saw (the cached one).
        price_age_s: its age [s].
        stale: the price was stale (conservative policy ran).
        policy: name of the policy that planned the tick.
        power_cap_mw: interconnect cap [MW].
        planned_mw: miners' draw the plan allows for, by the optimizer's model, with PUE
            [MW].
        measured_mw: miners' draw measured from the devices after acting, with PUE [MW]
            (GPU draw is simulated in emulated mode and not part of it).
        hashrate_ths: measured hashrate [TH/s].
        miners_active / miners_sleeping / miners_failed: miners by state (read back).
        commands: device commands sent this tick; failed: not verified.
    """

    tick: int
    t_s: float
    lag_s: float
    facility_id: str
    price_usd_per_mwh: float
    price_age_s: float
    stale: bool
    policy: str
    power_cap_mw: float
    planned_mw: float
    measured_mw: float
    hashrate_ths: float
    miners_active: int
    miners_sleeping: int
    miners_failed: int
    commands: int
    failed: int


class LiveController(Controller):
    """The controller on live devices and polled prices (module docstring).

    Args:
        world: the world built from the live scenario (its ASIC groups match the devices).
        policy: the primary policy.
        conservative: the policy used while any price is stale.
        asic_driver, gpu_driver: device drivers.
        recorder: the recorder of the underlying controller (sized for the run).
        price_pollers: one poller per facility, in facility order.
        metrics: Prometheus metrics to update (None: none).
    """

    def __init__(
        self,
        world: World,
        policy: Policy,
        conservative: Policy,
        asic_driver: AsicDriver,
        gpu_driver: GpuDriver,
        recorder: Recorder,
        price_pollers: list[SignalPoller],
        metrics: LiveMetrics | None = None,
    ) -> None:
        super().__init__(world, policy, asic_driver, gpu_driver, recorder)
        if len(price_pollers) != len(self.facilities):
            raise ValueError(
                f"live: {len(price_pollers)} price pollers for {len(self.facilities)} facilities"
            )
        self.primary = policy
        self.conservative = conservative
        self.price_pollers = price_pollers
        self.metrics = metrics
        self.samples: list[LiveSample] = []
        self._prices: list[CachedValue] = []
        self._lag_s = 0.0
        self._commands_before = 0
        self._failures_before = 0
        self.overruns = 0
        """Slots skipped because a tick ran longer than its slot [-]."""
        self._scheduled_until_s = 0.0
        self.telemetry = LiveTelemetry()
        """The driver readings of every tick, summarised per class (twin.live_health)."""
        self.health_check = LiveHealthCheck()
        """Alerts on miners whose readings stand out from their class."""

    # ------------------------------------------------------------------ loop

    def live_loop(
        self,
        env: simpy.Environment,
        stop: threading.Event,
        wall_clock: Callable[[], float] = time.monotonic,
    ) -> Generator[simpy.Event, Any, None]:
        """The SimPy process on a real-time environment: one tick per slot of
        ``interval_s`` until ``stop`` is set or the run's slots are used up.

        A tick that overruns its slot does not make the loop fall ever further behind: the
        next tick takes the next free slot on the wall clock, and the skipped slots are
        counted in ``overruns``."""
        wall_start = wall_clock()
        slot = 0
        while slot < self.n_intervals and not stop.is_set():
            slot_s = slot * self.interval_s
            self._lag_s = max(0.0, wall_clock() - (wall_start + slot_s))
            self.step(slot, slot_s)
            elapsed_s = wall_clock() - wall_start
            next_slot = max(slot + 1, math.floor(elapsed_s / self.interval_s) + 1)
            self.overruns += next_slot - slot - 1
            slot = next_slot
            yield env.timeout(max(0.0, slot * self.interval_s - float(env.now)))

    def step(self, index: int, t0_s: float) -> None:
        """One tick: read prices, pick the policy, then the controller's step."""
        self._prices = [poller.latest() for poller in self.price_pollers]
        stale = any(p.stale for p in self._prices)
        self.policy = self.conservative if stale else self.primary
        self._commands_before = self.commands_sent
        self._failures_before = self.command_failures
        super().step(index, t0_s)

    # ------------------------------------------------------------------ observe

    def observe(self, index: int, t0_s: float) -> Snapshot:
        """The controller's snapshot with each facility's price from its poller (the last
        good value; the world's signal until a first value arrives)."""
        snapshot = super().observe(index, t0_s)
        facilities = []
        for state, cached in zip(snapshot.facilities, self._prices, strict=True):
            if math.isfinite(cached.value):
                state = replace(
                    state,
                    price_usd_per_mwh=cached.value,
                    marginal_energy_usd_per_mwh=cached.value,
                )
            facilities.append(state)
        return replace(snapshot, facilities=tuple(facilities))

    # ------------------------------------------------------------------ record

    def advance_and_record(
        self, index: int, snapshot: Snapshot, plan: Any, limits: np.ndarray
    ) -> None:
        """Run the scheduler over the tick, then measure the devices and log the tick."""
        world = self.world
        since_s = self._scheduled_until_s  # covers any slots skipped by an overrun
        until_s = snapshot.t_s + self.interval_s
        world.jobs.append(self.arrivals(since_s, until_s))
        energy, deferred = self._site_conditions.update(snapshot)
        self._last_result = world.scheduler.run_interval(since_s, until_s, limits, energy, deferred)
        self._scheduled_until_s = until_s
        readings = self.asic_driver.read()
        self._check_health(readings, until_s)
        commands = self.commands_sent - self._commands_before
        failed = self.command_failures - self._failures_before
        for f in range(len(snapshot.facilities)):
            sample = self._sample(index, snapshot, f, plan, readings, commands, failed)
            self._last_mw[f] = sample.measured_mw
            self.samples.append(sample)
            self._export(sample, readings, f)
        if self.metrics is not None:
            self.metrics.ticks.inc()
            self.metrics.loop_lag.observe(self._lag_s)
            self.metrics.last_lag.set(self._lag_s)
            self.metrics.conservative.set(float(self.policy is self.conservative))

    def _check_health(self, readings: AsicReadings, t_s: float) -> None:
        """Keep the readings as telemetry and raise the health check's alerts: counted in
        Prometheus (``hcp_health_alerts_total``), and each alerted miner put to sleep and
        held out of service for QUARANTINE_S (reported FAILED, so the loop plans without
        it) where the driver can do that."""
        self.telemetry.observe(readings, t_s, [f.id for f in self.facilities])
        alerts = self.health_check.observe(readings, t_s)
        if not alerts:
            return
        if self.metrics is not None:
            self.metrics.record_alerts(
                (self.facilities[a.facility].id, a.detector, "asic") for a in alerts
            )
        if isinstance(self.asic_driver, QuarantiningAsicDriver):
            by_reason: dict[str, list[str]] = {}
            for alert in alerts:
                by_reason.setdefault(f"{alert.signal} ({alert.detector})", []).append(
                    alert.device_id
                )
            for reason, device_ids in by_reason.items():  # one batch per kind of alert
                self.asic_driver.quarantine(device_ids, QUARANTINE_S, reason)

    def _sample(
        self,
        index: int,
        snapshot: Snapshot,
        f: int,
        plan: Any,
        readings: AsicReadings,
        commands: int,
        failed: int,
    ) -> LiveSample:
        state = snapshot.facilities[f]
        rows = readings.facility == f
        asic_w = float(np.nansum(readings.power_w[rows]))
        measured_mw = asic_w / 1e6 * state.pue_mining  # miners only: GPU draw is simulated
        planned = plan.facility(state.facility_id)
        planned_mw = (
            sum(
                planned.asic_active.get(c.model_id, 0)
                * c.power_w_each
                * planned.asic_power_fraction.get(c.model_id, 1.0)
                for c in state.asic_classes
            )
            / 1e6
            * state.pue_mining
        )
        cached = self._prices[f]
        return LiveSample(
            tick=index,
            t_s=snapshot.t_s,
            lag_s=self._lag_s,
            facility_id=state.facility_id,
            price_usd_per_mwh=state.price_usd_per_mwh,
            price_age_s=cached.age_s,
            stale=cached.stale,
            policy=str(getattr(self.policy, "name", type(self.policy).__name__)),
            power_cap_mw=state.power_cap_mw,
            planned_mw=planned_mw,
            measured_mw=measured_mw,
            hashrate_ths=float(np.nansum(readings.hashrate_ths[rows])),
            miners_active=int(np.count_nonzero(readings.state[rows] == AsicState.ACTIVE)),
            miners_sleeping=int(np.count_nonzero(readings.state[rows] == AsicState.SLEEPING)),
            miners_failed=int(np.count_nonzero(readings.state[rows] == AsicState.FAILED)),
            commands=commands,
            failed=failed,
        )

    def _export(self, sample: LiveSample, readings: AsicReadings, f: int) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        metrics.record_facility(
            sample.facility_id,
            sample.measured_mw,
            sample.power_cap_mw,
            sample.price_usd_per_mwh,
            sample.price_age_s,
            sample.stale,
            sample.hashrate_ths,
        )
        rows = readings.facility == f
        counts: dict[tuple[str, str], int] = {}
        for m, model_id in enumerate(readings.model_ids):
            for state in AsicState:
                mask = rows & (readings.model == m) & (readings.state == state)
                counts[(model_id, state.name.lower())] = int(np.count_nonzero(mask))
        metrics.record_miners(sample.facility_id, counts)
        if sample.commands:
            metrics.commands.labels("false").inc(sample.failed)
            metrics.commands.labels("true").inc(sample.commands - sample.failed)


def summarize(
    samples: list[LiveSample], health: Mapping[str, Any] | None = None, overruns: int = 0
) -> dict[str, Any]:
    """Figures of a live run: ticks, skipped slots, lag percentiles, stale ticks, cap
    excursions (measured draw above the cap), commands and failures."""
    if not samples:
        return {"ticks": 0}
    lags = np.array([s.lag_s for s in samples])
    first_facility = samples[0].facility_id
    first = [s for s in samples if s.facility_id == first_facility]  # one row per tick
    over = [s for s in samples if s.measured_mw > s.power_cap_mw + 1e-9]
    return {
        "ticks": len({s.tick for s in samples}),
        "overruns": overruns,
        "lag_p50_s": float(np.percentile(lags, 50)),
        "lag_p99_s": float(np.percentile(lags, 99)),
        "lag_max_s": float(lags.max()),
        "stale_ticks": len({s.tick for s in samples if s.stale}),
        "cap_exceeded_ticks": len({s.tick for s in over}),
        "commands": int(sum(s.commands for s in first)),
        "failed_commands": int(sum(s.failed for s in first)),
        "unhealthy_devices": len(health or {}),
    }
