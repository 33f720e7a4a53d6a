"""Builds the operators' :class:`service.fleet_view.FleetView` on the twin's thread: keeps
the latest facility statuses, turns changes between ticks into alerts, and logs the device
commands a :class:`drivers.journal.JournaledAsicDriver` reports, with their switch times.

Alert rules compare a facility's status with the one before (so an alert fires once when a
condition starts, not at every tick):

- miners or GPUs newly failed (warning) or back in service (info);
- a grid event starts (critical: curtailment asked) or ends (info);
- a 4CP interval starts (warning: the coincident-peak charge is being set);
- the facility reaches 99.5 % of its interconnect cap (warning);
- the power price crosses ``PRICE_SPIKE_USD_PER_MWH`` upwards (warning).

A device pool changing health (:mod:`service.resource_health`) raises one too: offline
(critical), unhealthy (warning), back online (info). Callers add their own (the health
monitor's detections, a stale price feed in live mode) through ``extra_alerts``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from drivers.base import AsicCommand
from drivers.journal import AppliedBatch
from twin.live_health import LiveAlert
from twin.service.fleet_view import (
    EventKind,
    FacilityStatus,
    FleetEvent,
    FleetView,
    Severity,
    SwitchTimes,
)
from twin.service.resource_health import ResourceHealth

PRICE_SPIKE_USD_PER_MWH = 1000.0
"""Price above which an upward crossing raises an alert [USD/MWh]."""

AT_CAP_FRACTION = 0.995
"""Share of the interconnect cap at which a facility counts as at its cap [-]."""

EVENT_WINDOW = 500
"""Events kept for clients to page through (older ones drop off) [-]."""

LATENCY_WINDOW = 1000
"""Command batches the switch-time statistics cover [-]."""


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert before it is numbered: severity, facility (None: fleet-wide), message."""

    severity: Severity
    facility_id: str | None
    message: str


class FleetMonitor:
    """Facility statuses, alerts and the command log of one running twin.

    ``journal`` may be called during a tick (from the driver) and ``observe`` after it, both
    on the twin's thread; ``view`` may be called from any thread.

    Args:
        facility_ids: facility ids in scenario order (command facility indices map here).
        clock: wall clock for the events [s since the Unix epoch].
        window: events kept.
    """

    def __init__(
        self,
        facility_ids: Sequence[str],
        clock: Callable[[], float] = time.time,
        window: int = EVENT_WINDOW,
    ) -> None:
        self.facility_ids = tuple(facility_ids)
        self._clock = clock
        self._events: deque[FleetEvent] = deque(maxlen=window)
        self._latencies_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._statuses: tuple[FacilityStatus, ...] = ()
        self._resources: tuple[ResourceHealth, ...] = ()
        self._seq = 0
        self._t_s = 0.0
        self._commands_sent = 0
        self._command_failures = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ inputs

    def journal(self, batch: AppliedBatch) -> None:
        """Log each command of an applied batch (a :data:`drivers.journal.Journal`)."""
        latency_ms = batch.latency_s * 1000.0
        with self._lock:
            self._latencies_ms.append(latency_ms)
            for result in batch.results:
                command = result.command
                facility_id = self._facility_id(command.facility)
                self._commands_sent += 1
                self._command_failures += not result.verified
                message = _describe(command)
                if not result.verified:
                    message += f": not verified ({result.reason or 'read-back differs'})"
                self._append(
                    "command",
                    "info" if result.verified else "warning",
                    facility_id,
                    message,
                    t_s=batch.t_s,
                    latency_ms=latency_ms,
                    verified=result.verified,
                )

    def observe(
        self,
        t_s: float,
        statuses: Sequence[FacilityStatus],
        extra_alerts: Iterable[Alert] = (),
        resources: Sequence[ResourceHealth] | None = None,
    ) -> None:
        """Take the facility statuses (and pool health, None: unchanged) after a tick ending
        at ``t_s`` [s]; raise the alerts their changes call for, then ``extra_alerts``."""
        statuses = tuple(statuses)
        with self._lock:
            before = {s.facility_id: s for s in self._statuses}
            alerts = [
                alert
                for status in statuses
                for alert in facility_alerts(before.get(status.facility_id), status)
            ]
            if resources is not None:
                alerts += resource_alerts(self._resources, resources)
                self._resources = tuple(resources)
            alerts.extend(extra_alerts)
            self._t_s = float(t_s)
            for alert in alerts:
                self._append("alert", alert.severity, alert.facility_id, alert.message, t_s=t_s)
            self._statuses = statuses

    # ------------------------------------------------------------------ output

    def view(self) -> FleetView:
        """The fleet now: statuses, the event window and switch-time statistics."""
        with self._lock:
            latencies = np.fromiter(self._latencies_ms, dtype=float)
            return FleetView(
                facilities=self._statuses,
                events=tuple(self._events),
                switch_times=_switch_times(latencies),
                commands_sent=self._commands_sent,
                command_failures=self._command_failures,
                resources=self._resources,
            )

    # ------------------------------------------------------------------ helpers

    def _facility_id(self, index: int) -> str | None:
        return self.facility_ids[index] if 0 <= index < len(self.facility_ids) else None

    def _append(
        self,
        kind: EventKind,
        severity: Severity,
        facility_id: str | None,
        message: str,
        *,
        t_s: float,
        latency_ms: float | None = None,
        verified: bool | None = None,
    ) -> None:
        self._seq += 1
        self._events.append(
            FleetEvent(
                seq=self._seq,
                t_s=float(t_s),
                wall_time_s=self._clock(),
                kind=kind,
                severity=severity,
                facility_id=facility_id,
                message=message,
                latency_ms=latency_ms,
                verified=verified,
            )
        )


def facility_alerts(before: FacilityStatus | None, now: FacilityStatus) -> list[Alert]:
    """The alerts raised by the change from ``before`` (None: the first tick) to ``now``."""
    fid = now.facility_id
    alerts: list[Alert] = []
    for devices, was, count in (
        ("miner", before.asics.get("failed", 0) if before else 0, now.asics.get("failed", 0)),
        ("GPU", before.gpus.get("failed", 0) if before else 0, now.gpus.get("failed", 0)),
    ):
        if count > was:
            alerts.append(
                Alert("warning", fid, f"{count - was} {devices}(s) failed ({count} down in all)")
            )
        elif count < was:
            alerts.append(
                Alert("info", fid, f"{was - count} {devices}(s) back in service ({count} down)")
            )
    event_before = before.grid_event_fraction if before else 0.0
    if now.grid_event_fraction > 0 and event_before == 0:
        alerts.append(
            Alert(
                "critical",
                fid,
                f"grid event: curtail {now.grid_event_fraction:.0%} of flexible load",
            )
        )
    elif now.grid_event_fraction == 0 and event_before > 0:
        alerts.append(Alert("info", fid, "grid event over"))
    if now.four_cp and not (before and before.four_cp):
        alerts.append(Alert("warning", fid, "4CP interval: coincident-peak charge being set"))
    if _at_cap(now) and not (before is not None and _at_cap(before)):
        alerts.append(
            Alert(
                "warning",
                fid,
                f"at its power cap ({now.power_total_mw:.1f} of {now.power_cap_mw:.1f} MW)",
            )
        )
    spiked = now.price_usd_per_mwh >= PRICE_SPIKE_USD_PER_MWH
    if spiked and not (before and before.price_usd_per_mwh >= PRICE_SPIKE_USD_PER_MWH):
        alerts.append(Alert("warning", fid, f"price spike: {now.price_usd_per_mwh:,.0f} USD/MWh"))
    return alerts


def detection_alert(
    row: tuple[float, int, str, int, str, str, float, float], facility_ids: Sequence[str]
) -> Alert:
    """An alert of the health monitor (a row of ``twin.health.ALERT_SCHEMA``) in words: a
    device's anomaly is a warning, a site's a critical alert."""
    _t_s, facility, target, device, detector, signal, score, _forest = row
    facility_id = facility_ids[facility] if 0 <= facility < len(facility_ids) else None
    if target == "site":
        return Alert("critical", facility_id, f"site: {signal} ({detector}, score {score:.3g})")
    return Alert(
        "warning",
        facility_id,
        f"{target} #{device}: {signal} anomalous ({detector}, score {score:.3g}); "
        "held out of service",
    )


def live_detection_alert(alert: LiveAlert, facility_ids: Sequence[str]) -> Alert:
    """An alert of the live health check (:mod:`twin.live_health`) in words: a warning
    naming the miner, its signal, the detector and its statistic."""
    return Alert(
        "warning",
        facility_ids[alert.facility] if 0 <= alert.facility < len(facility_ids) else None,
        f"miner {alert.device_id}: {alert.signal} ({alert.detector}, {alert.score:.3g})",
    )


def resource_alerts(before: Sequence[ResourceHealth], now: Sequence[ResourceHealth]) -> list[Alert]:
    """One alert per pool whose status changed (a pool first seen online raises none)."""
    severity: dict[str, Severity] = {"offline": "critical", "unhealthy": "warning"}
    was = {r.resource_id: r.status for r in before}
    alerts = []
    for resource in now:
        old = was.get(resource.resource_id, "online")
        if resource.status != old:
            detail = f": {resource.reason}" if resource.reason else ""
            alerts.append(
                Alert(
                    severity.get(resource.status, "info"),
                    resource.facility_id,
                    f"{resource.resource_id} {resource.status}{detail}",
                )
            )
    return alerts


def _at_cap(status: FacilityStatus) -> bool:
    return status.power_total_mw >= AT_CAP_FRACTION * status.power_cap_mw


def _describe(command: AsicCommand | object) -> str:
    """A device command in words."""
    if isinstance(command, AsicCommand):
        parts = [command.model_id]
        if command.active_count is not None:
            parts.append(f"{command.active_count:,} hashing")
        if command.power_fraction is not None:
            parts.append(f"at {command.power_fraction:.0%} power")
        return " ".join(parts)
    type_id = getattr(command, "type_id", "GPU")
    limit = getattr(command, "power_limit_fraction", None)
    return f"{type_id} pool" + (f" power limit {limit:.0%}" if limit is not None else "")


def _switch_times(latencies_ms: np.ndarray) -> SwitchTimes:
    if latencies_ms.size == 0:
        return SwitchTimes(0, None, None, None)
    p50, p99 = np.percentile(latencies_ms, [50, 99])
    return SwitchTimes(int(latencies_ms.size), float(p50), float(p99), float(latencies_ms.max()))
