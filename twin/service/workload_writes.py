"""The API's workload writes, as functions of a session that the writer (a thread or a
process of its own, :mod:`service.db.writer_process`) runs in a write batch: module-level
and over picklable arguments, so they can cross to the writer process."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from twin.service import audit
from twin.service.db import repository
from twin.service.db.repository import WorkloadRow


@dataclass(frozen=True, slots=True)
class NewWorkload:
    """A validated, classified and priced submission, and who sent it.

    Attributes:
        customer_id: the submitting key's customer.
        actor: the submitting key's id (for the audit log).
        workload_type: the PRD type it was classified as.
        requirements: the request's requirements plus pricing (JSON object).
        estimated_cost_usd: the quote [USD].
        idempotency_key: the request's Idempotency-Key header, if any.
        request_hash: SHA-256 of the canonical request body (for idempotent retries).
    """

    customer_id: str
    actor: str
    workload_type: str
    gpu_count: int | None
    gpu_type: str | None
    hashrate_ths: float | None
    requirements: dict[str, Any]
    deadline_at: datetime | None
    callback_url: str | None
    sla: dict[str, Any]
    estimated_start_at: datetime
    estimated_cost_usd: Decimal | float
    idempotency_key: str | None
    request_hash: str


def persist_submission(new: NewWorkload, session: Session) -> tuple[WorkloadRow, bool]:
    """The workload and its audit entry; returns ``(workload, created)`` (False: an
    idempotent retry, answered with the first workload and not audited again)."""
    workload, created = repository.create_workload(
        session,
        new.customer_id,
        workload_type=new.workload_type,
        gpu_count=new.gpu_count,
        gpu_type=new.gpu_type,
        hashrate_ths=new.hashrate_ths,
        requirements=new.requirements,
        deadline_at=new.deadline_at,
        callback_url=new.callback_url,
        sla=new.sla,
        estimated_start_at=new.estimated_start_at,
        estimated_cost_usd=new.estimated_cost_usd,
        idempotency_key=new.idempotency_key,
        request_hash=new.request_hash,
        customer_known=True,  # the authenticated key's customer
    )
    if created:
        audit.append(
            session,
            new.actor,
            "submit_workload",
            workload.id,
            {"type": new.workload_type, "gpus": new.gpu_count or 0},
        )
    return workload, created


def persist_cancel(
    workload_id: str, customer_id: str | None, actor: str, session: Session
) -> WorkloadRow:
    """Cancel the workload (only ``customer_id``'s, if given) and audit it."""
    workload = repository.cancel_workload(session, workload_id, customer_id=customer_id)
    audit.append(session, actor, "cancel_workload", workload_id, {})
    return workload
