"""Keeps the ``resources`` table in step with the twin: every few seconds the pools' health
in the twin's latest snapshot (:mod:`service.resource_health`) is compared with what was
last written, and the changed pools are upserted through the service's writer.

Status and counts live in the row (``status``; ``capacity.devices``;
``metadata.out_of_service`` and ``metadata.reason``), so the table answers "what is
unhealthy now" after a restart too.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from sqlalchemy.orm import Session

from twin.service.db import repository
from twin.service.db.write_queue import Writes
from twin.service.resource_health import ResourceHealth
from twin.service.twin_snapshot import TwinLink

LOG = logging.getLogger("hcp.service")
SYNC_PERIOD_S = 2.0
"""How often the snapshot's pool health is compared with the table [s]."""


def resource_rows(resources: tuple[ResourceHealth, ...]) -> list[repository.ResourceInfo]:
    """Table rows of ``resources``."""
    return [
        repository.ResourceInfo(
            id=r.resource_id,
            facility_id=r.facility_id,
            type=r.type,
            subtype=r.subtype,
            status=r.status,
            capacity={"devices": r.devices},
            metadata={"out_of_service": r.out_of_service, "reason": r.reason},
        )
        for r in resources
    ]


def _upsert(rows: list[repository.ResourceInfo], session: Session) -> None:
    repository.upsert_resources(session, rows)


async def sync_resources(twin: TwinLink, writes: Writes, period_s: float = SYNC_PERIOD_S) -> None:
    """Upsert the pools whose health changed, every ``period_s`` [s], until cancelled."""
    written: dict[str, ResourceHealth] = {}
    while True:
        fleet = twin.snapshot().fleet if twin.alive else None
        changed = tuple(
            r for r in (fleet.resources if fleet else ()) if written.get(r.resource_id) != r
        )
        if changed:
            try:
                await writes.call(functools.partial(_upsert, resource_rows(changed)))
            except repository.UnknownReference as error:  # a facility not in the table
                LOG.warning("resources not written: %s", error)
            else:
                written.update({r.resource_id: r for r in changed})
        await asyncio.sleep(period_s)
