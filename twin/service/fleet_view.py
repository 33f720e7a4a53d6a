"""What operators see of the fleet: each facility's power by use and device states after the
last tick, and a numbered log of events (alerts and verified device commands with their
switch times).

These are plain, immutable, picklable values: the twin builds them on its own thread (or
in its own process, :mod:`service.twin_process`) and they travel inside the
:class:`service.twin_snapshot.TwinSnapshot`; the API only reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from twin.service.resource_health import ResourceHealth

EventKind = Literal["command", "alert"]
Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True, slots=True)
class FacilityStatus:
    """One facility after the last tick.

    Attributes:
        facility_id: the facility.
        price_usd_per_mwh: power price the tick planned with [USD/MWh].
        power_cap_mw: interconnect cap [MW].
        power_total_mw: facility draw, PUE overhead included [MW] (live mode: the miners'
            measured draw with PUE; GPU draw is simulated there).
        power_by_use_mw: the parts of the draw by use (``mining``, ``inference``,
            ``batch``, ``training``, ``spot``, ``gpu_idle``, ``overhead``) [MW].
        curtailed_mw: mining IT power not drawn against running every miner [MW].
        hashrate_ths: hashrate [TH/s].
        asics: miners by state (``active``, ``sleeping``, ``failed``) [-].
        gpus: GPUs by use or state (``inference``, ``batch``, ``training``, ``spot``,
            ``idle``, ``failed``) [-].
        running_jobs: jobs running at the facility [-].
        grid_event_fraction: share of flexible load a grid event asks to curtail [-].
        four_cp: the interval is a 4CP (coincident peak) interval.
    """

    facility_id: str
    price_usd_per_mwh: float
    power_cap_mw: float
    power_total_mw: float
    power_by_use_mw: dict[str, float]
    curtailed_mw: float
    hashrate_ths: float
    asics: dict[str, int]
    gpus: dict[str, int]
    running_jobs: int
    grid_event_fraction: float
    four_cp: bool


@dataclass(frozen=True, slots=True)
class FleetEvent:
    """One entry of the fleet's event log.

    Attributes:
        seq: position in the log, from 1, strictly increasing (clients ask for
            ``since=seq``).
        t_s: the twin's time [s since its start].
        wall_time_s: wall clock when it happened [s since the Unix epoch].
        kind: ``command`` (a verified or failed device command) or ``alert``.
        severity: ``info``, ``warning`` or ``critical``.
        facility_id: the facility concerned (None: the whole fleet).
        message: what happened, in words.
        latency_ms: for commands: send to verified read-back of its batch, the switch time
            [ms]; None for alerts.
        verified: for commands: whether the read-back matched.
    """

    seq: int
    t_s: float
    wall_time_s: float
    kind: EventKind
    severity: Severity
    facility_id: str | None
    message: str
    latency_ms: float | None = None
    verified: bool | None = None


@dataclass(frozen=True, slots=True)
class SwitchTimes:
    """Switch times of the recent command batches [ms]: send to verified read-back."""

    batches: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


@dataclass(frozen=True, slots=True)
class FleetView:
    """The fleet as of the twin's last tick, with its recent events.

    Attributes:
        facilities: one status per facility, in scenario order.
        events: the most recent events, oldest first (a bounded window of the log).
        switch_times: statistics of the recent command batches.
        commands_sent: device commands sent since the twin started [-].
        command_failures: of those, not verified [-].
        resources: health of every device pool (:mod:`service.resource_health`).
    """

    facilities: tuple[FacilityStatus, ...]
    events: tuple[FleetEvent, ...] = ()
    switch_times: SwitchTimes = field(default_factory=lambda: SwitchTimes(0, None, None, None))
    commands_sent: int = 0
    command_failures: int = 0
    resources: tuple[ResourceHealth, ...] = ()

    def events_since(self, seq: int, limit: int) -> tuple[FleetEvent, ...]:
        """Events with ``seq`` above ``seq``, oldest first, at most ``limit``."""
        return tuple(event for event in self.events if event.seq > seq)[:limit]
