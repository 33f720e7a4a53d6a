"""REST API v1 of the platform (FastAPI): workloads, availability, usage, facilities,
market signals, health and metrics.

``create_app(config)`` builds the app on a database (migrated to head at start-up) and,
when given, a :class:`service.twin_bridge.TwinBridge`: submitted workloads are committed
first, then handed to the twin's scheduler; the bridge's status changes flow back into the
database. Errors are problem documents (``title``, ``status``, ``errors`` by field); no
stack trace reaches a client. Requests larger than ``max_body_bytes`` are refused with 413.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.telemetry import TelemetryConfig
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.workload_types import TYPE_NAMES, WORKLOAD_SPECS
from optimizer.classify import Submission, classify, validate_submission
from twin.service.api.auth import Authenticator, Caller, Principal
from twin.service.api.fleet_routes import add_fleet_routes
from twin.service.api.schemas import (
    Availability,
    EstimatedCost,
    FacilityAvailability,
    ProblemDetail,
    Sla,
    UtcDatetime,
    WorkloadAccepted,
    WorkloadPage,
    WorkloadRequest,
    WorkloadView,
)
from twin.service.billing import quote
from twin.service.callbacks import CallbackSender
from twin.service.db import repository
from twin.service.db.engine import make_engine, session_factory
from twin.service.db.migrate import upgrade
from twin.service.db.models import Customer
from twin.service.db.repository import WorkloadRow
from twin.service.db.workload_reader import WorkloadReader
from twin.service.db.write_queue import WriteQueue, WriteQueueClosedError, Writes
from twin.service.db.writer_process import WriterProcess, WriterProcessError
from twin.service.fleet_metrics import fleet_metrics_lines
from twin.service.resource_sync import sync_resources
from twin.service.security.rate_limit import RateLimiter
from twin.service.security.roles import Action
from twin.service.status_sync import (
    StatusFeedHandler,
    apply_updates,
    callback_secret,
    notify,
)
from twin.service.twin_bridge import BridgeJob
from twin.service.twin_snapshot import TwinLink
from twin.service.workload_writes import NewWorkload, persist_cancel, persist_submission

LOG = logging.getLogger("hcp.service")


@dataclass
class ServiceConfig:
    """How the service runs.

    Attributes:
        db_url: SQLAlchemy URL (None: the default SQLite file).
        bridge: the twin that runs submitted workloads (None: API and database only).
        rate_per_s: sustained requests per second per API key.
        burst: requests a key may send at once.
        max_body_bytes: largest request body accepted [bytes].
    """

    db_url: str | None = None
    bridge: TwinLink | None = None
    rate_per_s: float = 200.0
    burst: float = 400.0
    max_body_bytes: int = 64 * 1024
    principal_ttl_s: float = 5.0
    """How long a resolved API key is remembered [s]: a revoked key stops working within
    this time."""
    callback_secret: bytes | None = None
    """HMAC key of status callbacks (None: $HCP_CALLBACK_SECRET, else a random key for
    this process, logged as a warning since receivers cannot know it)."""
    request_threads: int = 24
    """Threads that run blocking request handlers (database reads) at once; fewer than
    the connection pool holds (db.engine.POOL_SIZE), so requests never wait on a
    connection being opened."""
    writer_process: bool = False
    """Commit writes in a process of their own (service.db.writer_process) rather than on
    a thread of this one: what ``serve`` does, so writes never hold the event loop's GIL."""
    status_feed: Connection | None = None
    """The receiving end of the twin process's status changes
    (service.status_sync.StatusFeed): the writer process applies them (needs
    ``writer_process``)."""
    extra: dict[str, Any] = field(default_factory=dict)


NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""FastAPI's OpenTelemetry hooks, off: the service exports Prometheus metrics instead, and
the hooks' per-request check for configured providers is measurable at hundreds of
requests a second."""

WRITE_FUNCTION_MODULES = (
    "twin.service.workload_writes",
    "twin.service.status_sync",
    "twin.service.resource_sync",
)
"""Modules defining the writes the service hands its writer (loaded by a writer process
before it starts taking them)."""


def create_app(config: ServiceConfig) -> FastAPI:
    """The FastAPI app (see the module docstring)."""
    upgrade(config.db_url)
    engine = make_engine(config.db_url)
    sessions = session_factory(engine)
    auth = Authenticator(
        sessions,
        RateLimiter(config.rate_per_s, config.burst),
        principal_ttl_s=config.principal_ttl_s,
    )
    if config.status_feed is not None and not config.writer_process:
        raise ValueError("status_feed: needs writer_process")
    # One key for every signed callback, whichever process sends it (a random key, when
    # none is configured, is drawn once).
    signing_key = config.callback_secret or callback_secret()
    writes: Writes = (
        WriterProcess(
            engine.url.render_as_string(hide_password=False),
            preload=WRITE_FUNCTION_MODULES,
            feed=config.status_feed,
            feed_handler=functools.partial(StatusFeedHandler, signing_key)
            if config.status_feed is not None
            else None,
        )
        if config.writer_process
        else WriteQueue(sessions)
    )
    reader = WorkloadReader(engine) if engine.dialect.name == "sqlite" else None

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        to_thread.current_default_thread_limiter().total_tokens = config.request_threads
        sync = (
            asyncio.create_task(sync_resources(config.bridge, writes))
            if config.bridge is not None
            else None
        )
        yield
        if sync is not None:
            sync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sync
        if config.bridge is not None:
            config.bridge.on_update = None
        writes.close()
        callbacks.close()
        if reader is not None:
            reader.close()
        engine.dispose()

    app = FastAPI(
        title="HCP platform API",
        version="1.0.0",
        lifespan=lifespan,
        telemetry=NO_TELEMETRY,
    )
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.auth = auth
    app.state.writes = writes
    app.state.reader = reader
    app.state.config = config
    callbacks = CallbackSender(signing_key)
    app.state.callbacks = callbacks
    _install_error_handlers(app, config.max_body_bytes)
    if config.bridge is not None:
        with sessions() as session:
            repository.upsert_facilities(
                session,
                [
                    repository.FacilityInfo(
                        f.id,
                        f.name or f.id,
                        f.settlement_point,
                        f.power_cap_mw,
                        {"region": f.region},
                    )
                    for f in config.bridge.scenario.facilities
                ],
            )
        config.bridge.on_update = lambda updates: apply_updates(writes, updates, callbacks)
        _resume(sessions, config.bridge)
    _routes(app, sessions, writes, auth, config, callbacks)
    add_fleet_routes(app, auth, config.bridge, sessions)
    _document_problems(app)
    return app


ERROR_DESCRIPTIONS = {
    "401": "no, malformed, unknown or revoked API key; or mfa_required (X-TOTP)",
    "403": "the key's role may not do this",
    "404": "no such object for this caller",
    "409": "conflicts with the object's state or an earlier Idempotency-Key use",
    "413": "request body too large",
    "422": "invalid request; errors name each field",
    "429": "rate limit exceeded; see Retry-After",
    "503": "the twin or the database writer has stopped",
}


def _error_codes(path: str, method: str) -> list[str]:
    """The error statuses an operation can answer."""
    if path == "/healthz":
        return ["503"]
    if not path.startswith("/v1/"):
        return []
    codes = ["401", "403", "422", "429"]
    if path.startswith("/v1/fleet/"):
        codes.append("503")
    if "{" in path:
        codes.append("404")
    if method == "post":
        codes += ["409", "413"]
    return sorted(codes)


def _document_problems(app: FastAPI) -> None:
    """Make the OpenAPI document describe the errors the API really sends: problem
    documents (``application/problem+json``, :class:`ProblemDetail`) for each status an
    operation can answer, in place of FastAPI's default validation error model."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=app.version, routes=app.routes)
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for default in ("HTTPValidationError", "ValidationError"):
            schemas.pop(default, None)
        schemas["ProblemDetail"] = ProblemDetail.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        problem = {"$ref": "#/components/schemas/ProblemDetail"}
        for path, operations in spec["paths"].items():
            for method, operation in operations.items():
                responses = operation["responses"]
                for code in [c for c in responses if c[0] in "45"]:
                    del responses[code]
                for code in _error_codes(path, method):
                    responses[code] = {
                        "description": ERROR_DESCRIPTIONS[code],
                        "content": {"application/problem+json": {"schema": problem}},
                    }
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


# ---------------------------------------------------------------------- routes


def _routes(
    app: FastAPI,
    sessions: sessionmaker[Session],
    writes: Writes,
    auth: Authenticator,
    config: ServiceConfig,
    callbacks: CallbackSender,
) -> None:
    # A SQLite read of one row by key takes microseconds and, in WAL mode, never waits for
    # the writer: it runs on the event loop, through the driver (service.db.workload_reader),
    # since a session or a hop to a thread costs far more than the read. Reads over a
    # network (PostgreSQL) go to the thread pool.
    reader = app.state.reader

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        """Liveness: the database answers and the twin (if any) runs; 503 otherwise."""
        with sessions() as session:
            session.execute(text("SELECT 1"))
        if not writes.alive:
            return JSONResponse({"status": "writer stopped", "sim_time_s": None}, status_code=503)
        bridge = config.bridge
        if bridge is not None and not bridge.alive:
            return JSONResponse({"status": "twin stopped", "sim_time_s": None}, status_code=503)
        sim_time_s = bridge.snapshot().sim_time_s if bridge is not None else None
        return JSONResponse({"status": "ok", "sim_time_s": sim_time_s})

    @app.post("/v1/workloads/submit", status_code=201, response_model=WorkloadAccepted)
    async def submit(
        principal: Caller, body: WorkloadRequest, request: Request
    ) -> WorkloadAccepted:
        """Submit a workload (A.1): validated, classified, committed (group commit), then
        scheduled. Runs on the event loop; only the commit is waited for."""
        auth.require(principal, Action.SUBMIT_WORKLOAD, request)
        customer_id = _customer_of(principal)
        req = body.requirements
        deadline_s = (body.deadline - datetime.now(UTC)).total_seconds() if body.deadline else None
        submission = Submission(
            estimated_duration_s=req.estimated_duration_s,
            workload_type=body.workload_type,
            gpu_count=req.gpu_count,
            gpu_type=req.gpu_type,
            hashrate_ths=req.hashrate_ths,
            max_latency_ms=req.max_latency_ms,
            interruptible=req.interruptible,
            deadline_s=deadline_s,
            checkpoint_interval_s=req.checkpoint_interval_s,
            data_residency=req.data_residency,
            data_gb=req.data_gb,
        )
        problems = validate_submission(submission)
        if problems:
            raise HTTPException(422, [{"field": p.field, "reason": p.reason} for p in problems])
        classification = classify(submission)
        spec = WORKLOAD_SPECS[classification.type_code]
        hours = req.estimated_duration_s / 3600.0
        price = quote(body.pricing, max(req.gpu_count, 0), hours, _spot_multiplier(config))
        now = datetime.now(UTC)
        estimated_start = now + timedelta(seconds=_expected_wait_s(config))
        sla = {
            "workload_type": classification.type_name,
            "priority": spec.priority,
            "max_latency_ms": None
            if spec.max_latency_s == float("inf")
            else spec.max_latency_s * 1000,
            "deadline": body.deadline.isoformat() if body.deadline else None,
            "interruptible": spec.interruptible,
        }
        idempotency_key = request.headers.get("Idempotency-Key")
        request_hash = hashlib.sha256(
            json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()
        ).hexdigest()

        new = NewWorkload(
            customer_id=customer_id,
            actor=principal.key_id,
            workload_type=classification.type_name,
            gpu_count=req.gpu_count or None,
            gpu_type=req.gpu_type,
            hashrate_ths=req.hashrate_ths or None,
            requirements={
                **req.model_dump(mode="json"),
                "pricing": body.pricing,
                "usd_per_gpu_hour": price.usd_per_gpu_hour,
            },
            deadline_at=body.deadline,
            callback_url=str(body.callback_url) if body.callback_url else None,
            sla=sla,
            estimated_start_at=estimated_start,
            estimated_cost_usd=price.usd,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
        )
        try:
            workload, created = await writes.call(functools.partial(persist_submission, new))
        except repository.IdempotencyConflict as conflict:
            raise HTTPException(
                409, [{"field": "Idempotency-Key", "reason": str(conflict)}]
            ) from None
        view = _accepted(workload, price.usd_per_gpu_hour, body.pricing)
        if created and config.bridge is not None:
            config.bridge.submit(_bridge_job(workload))
        return view

    @app.get("/v1/workloads/{workload_id}/status", response_model=WorkloadView)
    async def status(principal: Caller, workload_id: str, request: Request) -> WorkloadView:
        """One workload (customers see only their own)."""
        scope = _read_scope(
            auth, principal, request, Action.READ_OWN_WORKLOAD, Action.READ_ANY_WORKLOAD
        )

        def read() -> WorkloadRow | None:
            with sessions() as session:
                return repository.get_workload(session, workload_id, scope)

        if not _is_id(workload_id):
            workload = None
        elif reader is not None:
            workload = reader.get(workload_id, scope)
        else:
            workload = await run_in_threadpool(read)
        if workload is None:
            raise HTTPException(404, f"no workload {workload_id}")
        return _view(workload)

    @app.post("/v1/workloads/{workload_id}/cancel", response_model=WorkloadView)
    def cancel(principal: Caller, workload_id: str, request: Request) -> WorkloadView:
        """Cancel a queued or running workload."""
        if principal.role == "customer":
            auth.require(principal, Action.CANCEL_OWN, request)
            scope: str | None = principal.customer_id
        else:
            auth.require(principal, Action.CANCEL_ANY, request)
            scope = None

        if not _is_id(workload_id):
            raise HTTPException(404, f"no workload {workload_id}")

        try:
            workload = writes.run(
                functools.partial(persist_cancel, workload_id, scope, principal.key_id)
            )
        except repository.WorkloadNotFound:
            raise HTTPException(404, f"no workload {workload_id}") from None
        except repository.InvalidTransition as error:
            raise HTTPException(409, [{"field": "status", "reason": str(error)}]) from None
        notify(callbacks, workload)
        return _view(workload)

    @app.get("/v1/workloads", response_model=WorkloadPage)
    def list_workloads(
        principal: Caller,
        request: Request,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> WorkloadPage:
        """Workloads, newest first, keyset-paginated (``next_cursor``)."""
        scope = _read_scope(auth, principal, request, Action.LIST_OWN, Action.LIST_ANY)
        with sessions() as session:
            try:
                items, next_cursor = repository.list_workloads(
                    session, scope, status=status, limit=limit, cursor=cursor
                )
            except repository.InvalidField as error:
                raise HTTPException(422, [{"field": error.field, "reason": error.reason}]) from None
            return WorkloadPage(items=[_view(w) for w in items], next_cursor=next_cursor)

    @app.get("/v1/resources/availability", response_model=Availability)
    def availability(
        principal: Caller,
        request: Request,
        gpu_type: str | None = None,
        region: str | None = None,
        min_gpus: int = 0,
    ) -> Availability:
        """Free GPUs per facility and type now (A.2), with prices."""
        auth.require(principal, Action.READ_RESOURCES, request)
        return Availability(
            as_of=datetime.now(UTC),
            facilities=[
                f
                for f in _availability(config)
                if (gpu_type is None or f.gpu_type == gpu_type)
                and (region is None or f.region == region)
                and f.available >= min_gpus
            ],
        )

    @app.get("/v1/billing/usage")
    def usage(
        principal: Caller,
        request: Request,
        customer_id: str | None = None,
        period_start: UtcDatetime | None = None,
        period_end: UtcDatetime | None = None,
    ) -> dict[str, Any]:
        """Metered usage and charges of a customer over a period (default: this month so
        far); customers see their own. One line per (resource, unit, pricing)."""
        if principal.role == "customer":
            auth.require(principal, Action.READ_BILLING_OWN, request)
            customer_id = principal.customer_id
        else:
            auth.require(principal, Action.READ_BILLING_ANY, request)
        if customer_id is None:
            raise HTTPException(422, [{"field": "customer_id", "reason": "required"}])
        if not _is_id(customer_id):
            raise HTTPException(422, [{"field": "customer_id", "reason": "not a customer id"}])
        now = datetime.now(UTC)
        start = period_start or now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = period_end or now + timedelta(seconds=1)
        with sessions() as session:
            try:
                totals = repository.usage_totals(session, customer_id, start, end)
            except repository.InvalidField as error:
                raise HTTPException(422, [{"field": error.field, "reason": error.reason}]) from None
        lines: list[dict[str, Any]] = [
            {
                "resource_type": t.resource_type,
                "unit": t.unit,
                "pricing": t.pricing,
                "quantity": t.quantity,
                "usd": float(t.price_usd),
                "records": t.records,
            }
            for t in totals
        ]
        return {
            "customer_id": customer_id,
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
            "lines": lines,
            "total_usd": round(sum(float(line["usd"]) for line in lines), 6),
        }

    @app.get("/v1/facilities")
    def facilities(principal: Caller, request: Request) -> list[dict[str, Any]]:
        """The sandbox's facilities."""
        auth.require(principal, Action.READ_RESOURCES, request)
        bridge = config.bridge
        if bridge is None:
            return []
        return [
            {
                "id": f.id,
                "region": f.region,
                "settlement_point": f.settlement_point,
                "power_cap_mw": f.power_cap_mw,
            }
            for f in bridge.scenario.facilities
        ]

    @app.get("/v1/market")
    def market(principal: Caller, request: Request) -> dict[str, Any]:
        """Current market signals of the sandbox."""
        auth.require(principal, Action.READ_RESOURCES, request)
        bridge = config.bridge
        if bridge is None:
            return {}
        snapshot = bridge.snapshot()
        return {
            "sim_time_s": snapshot.sim_time_s,
            "prices_usd_per_mwh": snapshot.prices_usd_per_mwh,
            "gpu_rental_multiplier": snapshot.gpu_rental_multiplier,
        }

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> str:
        """Prometheus metrics of the service: workloads by status and, with a twin, its
        fleet (service.fleet_metrics)."""
        with sessions() as session:
            counts = repository.status_counts(session)
        lines = ["# TYPE hcp_workloads gauge"]
        lines += [f'hcp_workloads{{status="{k}"}} {v}' for k, v in sorted(counts.items())]
        if config.bridge is not None:
            lines += fleet_metrics_lines(config.bridge.snapshot())
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- helpers


def _is_id(value: str) -> bool:
    """Whether ``value`` has the shape of a stored id (letters, digits, ``_`` and ``-``, at
    most 64): anything else cannot exist, so it is refused before the database sees it
    (PostgreSQL rejects a NUL byte in text with an error rather than a miss)."""
    bare = value.replace("_", "").replace("-", "")
    return 0 < len(value) <= 64 and value.isascii() and bare.isalnum()


def _customer_of(principal: Principal) -> str:
    if principal.customer_id is None:
        raise HTTPException(403, "only customer keys submit workloads")
    return principal.customer_id


def _read_scope(
    auth: Authenticator, principal: Principal, request: Request, own: Action, any_: Action
) -> str | None:
    """The customer to scope a read to (None: staff may read all)."""
    if principal.role == "customer":
        auth.require(principal, own, request)
        return principal.customer_id
    auth.require(principal, any_, request)
    return None


def _spot_multiplier(config: ServiceConfig) -> float:
    """The market's GPU rental multiplier now (1 without a twin)."""
    bridge = config.bridge
    return bridge.snapshot().gpu_rental_multiplier if bridge is not None else 1.0


def _expected_wait_s(config: ServiceConfig) -> float:
    """A start estimate: the next tick of the twin (wall seconds)."""
    bridge = config.bridge
    return bridge.snapshot().tick_wall_s if bridge is not None else 0.0


def _availability(config: ServiceConfig) -> list[FacilityAvailability]:
    """Free GPUs per facility and type as of the twin's last tick."""
    bridge = config.bridge
    if bridge is None:
        return []
    return list(bridge.snapshot().pools)


def _accepted(workload: WorkloadRow, usd_per_gpu_hour: float, pricing: str) -> WorkloadAccepted:
    sla = workload.sla or {}
    return WorkloadAccepted(
        workload_id=workload.id,
        status="queued",
        estimated_start=workload.estimated_start_at or workload.created_at,
        estimated_cost=EstimatedCost(
            usd=float(workload.estimated_cost_usd or 0),
            pricing=pricing,  # type: ignore[arg-type]
            usd_per_gpu_hour=usd_per_gpu_hour,
        ),
        sla=Sla(
            workload_type=sla.get("workload_type", workload.workload_type),
            priority=int(sla.get("priority", workload.priority)),
            max_latency_ms=sla.get("max_latency_ms"),
            deadline=workload.deadline_at,
            interruptible=bool(sla.get("interruptible", True)),
        ),
    )


def _view(workload: WorkloadRow) -> WorkloadView:
    return WorkloadView(
        workload_id=workload.id,
        customer_id=workload.customer_id,
        workload_type=workload.workload_type,
        status=workload.status,  # type: ignore[arg-type]
        created_at=workload.created_at,
        started_at=workload.started_at,
        completed_at=workload.completed_at,
        facility_id=workload.facility_id,
        cost_usd=float(workload.cost_usd) if workload.cost_usd is not None else None,
        requirements=workload.requirements or {},
    )


def _bridge_job(workload: WorkloadRow) -> BridgeJob:
    """What the twin needs of a stored workload (its requirements, deadline and rate)."""
    req = workload.requirements or {}
    deadline_s = (
        (workload.deadline_at - datetime.now(UTC)).total_seconds() if workload.deadline_at else None
    )
    return BridgeJob(
        workload_id=workload.id,
        customer=workload.customer_id,
        workload_type=workload.workload_type,
        gpus=int(req.get("gpu_count") or 0),
        gpu_type=req.get("gpu_type"),
        hashrate_ths=float(req.get("hashrate_ths") or 0.0),
        work_s=float(req["estimated_duration_s"]),
        deadline_s=deadline_s,
        checkpoint_interval_s=req.get("checkpoint_interval_s"),
        price_usd_per_gpu_hour=float(req.get("usd_per_gpu_hour", 0.0)),
    )


def _resume(sessions: sessionmaker[Session], bridge: TwinLink) -> int:
    """Hand the twin every workload the database holds as queued or running (after a
    restart, or a crash: nothing acknowledged is lost). Running ones start again from the
    beginning, since the sandbox twin's state was not kept; they go back to queued."""
    resumed = 0
    with sessions() as session:
        for workload in repository.active_workloads(session):
            if workload.status == "running":
                repository.set_status(
                    session, workload.id, "queued", reason="service restarted; requeued"
                )
            bridge.submit(_bridge_job(workload))
            resumed += 1
    if resumed:
        LOG.warning("resumed %d queued or running workloads from the database", resumed)
    return resumed


def _install_error_handlers(app: FastAPI, max_body_bytes: int) -> None:
    app.add_middleware(BodySizeLimit, max_body_bytes=max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "field": ".".join(
                    str(p) for p in e["loc"] if p != "body" and not isinstance(p, int)
                )
                or "body",
                "reason": e["msg"],
            }
            for e in error.errors()
        ]
        return _problem(422, "invalid request", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        detail = error.detail
        problems: list[dict[str, str]] = detail if isinstance(detail, list) else []
        title = detail if isinstance(detail, str) else "invalid request"
        return _problem(error.status_code, title, problems, dict(error.headers or {}))

    @app.exception_handler(WriteQueueClosedError)
    @app.exception_handler(WriterProcessError)
    async def writer_stopped(request: Request, error: Exception) -> JSONResponse:
        LOG.error("%s %s: %s", request.method, request.url.path, error)
        return _problem(
            503, "the database writer has stopped; retry with the same Idempotency-Key", []
        )

    @app.exception_handler(Exception)
    async def crashed(request: Request, error: Exception) -> JSONResponse:
        LOG.exception("unhandled error on %s %s", request.method, request.url.path)
        return _problem(500, "internal error", [])


class BodySizeLimit:
    """ASGI middleware: a request whose body is larger than ``max_body_bytes`` gets 413,
    whether it says so in Content-Length or streams more than it said (chunked)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        too_large = False

        async def counted_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                too_large = True
                raise _BodyTooLargeError
            return message

        async def send_unless_refused(message: Message) -> None:
            if not too_large:  # the app's answer to a cut-off body is replaced by 413
                await send(message)

        with contextlib.suppress(_BodyTooLargeError):
            await self.app(scope, counted_receive, send_unless_refused)
        if too_large:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = _problem(
            413,
            "request body too large",
            [{"field": "body", "reason": f"larger than {self.max_body_bytes} bytes"}],
        )
        await response(scope, receive, send)


class _BodyTooLargeError(Exception):
    """Raised inside the app when a streamed body passes the limit."""


def _problem(
    status: int,
    title: str,
    errors: list[dict[str, str]],
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"title": title, "status": status, "errors": errors},
        status_code=status,
        headers=headers,
        media_type="application/problem+json",
    )


__all__ = ["TYPE_NAMES", "Customer", "ServiceConfig", "create_app"]
