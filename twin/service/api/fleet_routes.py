"""Operators' fleet endpoints: ``GET /v1/fleet/status`` (each facility's power by use and
device states after the twin's last tick, with command switch times) and
``GET /v1/fleet/events?since=SEQ`` (alerts and device commands, numbered, oldest first).

Both read the :class:`service.fleet_view.FleetView` in the twin's latest snapshot; they
answer 503 when the service runs no twin or the twin does not track its fleet.
``GET /v1/resources?status=`` lists the ``resources`` table: each device pool's health,
kept in step with the twin by :mod:`service.resource_sync`. Staff only (``read_fleet``:
operators and admins).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query, Request
from sqlalchemy.orm import Session, sessionmaker

from twin.service.api.auth import Authenticator, Caller
from twin.service.api.schemas import (
    FleetEvents,
    FleetEventView,
    FleetFacility,
    FleetStatus,
    ResourceView,
    SwitchTimesView,
)
from twin.service.db import repository
from twin.service.fleet_view import FleetEvent, FleetView
from twin.service.security.roles import Action
from twin.service.twin_snapshot import TwinLink, TwinSnapshot

MAX_EVENTS_PER_PAGE = 500


def add_fleet_routes(
    app: FastAPI,
    auth: Authenticator,
    twin: TwinLink | None,
    sessions: sessionmaker[Session],
) -> None:
    """Add the fleet endpoints to ``app``, reading ``twin``'s snapshots and the
    ``resources`` table."""

    @app.get("/v1/resources", response_model=list[ResourceView])
    def resources(
        principal: Caller,
        request: Request,
        status: Annotated[
            str | None, Query(pattern="^(online|offline|maintenance|unhealthy)$")
        ] = None,
    ) -> list[ResourceView]:
        """Every device pool with its health (``status`` filters)."""
        auth.require(principal, Action.READ_FLEET, request)
        with sessions() as session:
            rows = repository.list_resources(session, status)
            return [
                ResourceView(
                    id=row.id,
                    facility_id=row.facility_id,
                    type=row.type,  # type: ignore[arg-type]
                    subtype=row.subtype,
                    status=row.status,  # type: ignore[arg-type]
                    devices=int((row.capacity or {}).get("devices", 0)),
                    out_of_service=int((row.metadata_ or {}).get("out_of_service", 0)),
                    reason=str((row.metadata_ or {}).get("reason", "")),
                    updated_at=row.updated_at,
                )
                for row in rows
            ]

    @app.get("/v1/fleet/status", response_model=FleetStatus)
    def fleet_status(principal: Caller, request: Request) -> FleetStatus:
        """Each facility's power by use and device states after the twin's last tick."""
        auth.require(principal, Action.READ_FLEET, request)
        snapshot, fleet = _fleet(twin)
        return FleetStatus(
            sim_time_s=snapshot.sim_time_s,
            as_of=_twin_time(twin, snapshot),
            facilities=[FleetFacility(**_fields(status)) for status in fleet.facilities],
            switch_times=SwitchTimesView(**_fields(fleet.switch_times)),
            commands_sent=fleet.commands_sent,
            command_failures=fleet.command_failures,
            last_event_seq=fleet.events[-1].seq if fleet.events else 0,
        )

    @app.get("/v1/fleet/events", response_model=FleetEvents)
    def fleet_events(
        principal: Caller,
        request: Request,
        since: Annotated[int, Query(ge=0, description="last seq already seen")] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_EVENTS_PER_PAGE)] = 100,
        kind: Annotated[str | None, Query(pattern="^(command|alert)$")] = None,
    ) -> FleetEvents:
        """Alerts and device commands after ``since``, oldest first (a window of the most
        recent events is kept)."""
        auth.require(principal, Action.READ_FLEET, request)
        _, fleet = _fleet(twin)
        newer = [e for e in fleet.events if e.seq > since and (kind is None or e.kind == kind)]
        page = newer[:limit]
        last_seq = fleet.events[-1].seq if fleet.events else since
        next_since = page[-1].seq if len(newer) > limit else max(since, last_seq)
        return FleetEvents(events=[_event(e) for e in page], next_since=next_since)


def _fleet(twin: TwinLink | None) -> tuple[TwinSnapshot, FleetView]:
    if twin is None:
        raise HTTPException(503, "this service runs no twin")
    snapshot = twin.snapshot()
    if snapshot.fleet is None:
        raise HTTPException(503, "the twin does not report its fleet")
    return snapshot, snapshot.fleet


def _twin_time(twin: TwinLink | None, snapshot: TwinSnapshot) -> datetime:
    start = twin.scenario.start if twin is not None else datetime.now(UTC)
    return (start + timedelta(seconds=snapshot.sim_time_s)).astimezone(UTC)


def _fields(value: object) -> dict[str, object]:
    return {name: getattr(value, name) for name in value.__slots__}  # type: ignore[attr-defined]


def _event(event: FleetEvent) -> FleetEventView:
    return FleetEventView(
        seq=event.seq,
        at=datetime.fromtimestamp(event.wall_time_s, UTC),
        sim_time_s=event.t_s,
        kind=event.kind,
        severity=event.severity,
        facility_id=event.facility_id,
        message=event.message,
        latency_ms=event.latency_ms,
        verified=event.verified,
    )
