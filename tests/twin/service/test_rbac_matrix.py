"""Authentication and role-based access of every endpoint, on SQLite and PostgreSQL.

Every route the app serves is listed in :data:`ENDPOINTS` with the action each kind of key
needs; a route that is missing from the table fails the test, so a new endpoint cannot ship
without a decision on who may call it. The expected answer of each (endpoint, caller) comes
from the permission table in ``twin.service.security.roles`` (``authorize``), not from
numbers copied here. Refused calls must change nothing, and one customer never sees,
lists, cancels or is billed for another customer's work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from twin.scenario import Scenario, load_scenario
from twin.service.api.app import ServiceConfig, create_app
from twin.service.db import repository
from twin.service.db.engine import make_engine, session_factory
from twin.service.keys import NewKey, create_key
from twin.service.security.api_keys import (
    API_KEY_PREFIX,
    KEY_BODY_CHARS,
    is_well_formed_api_key,
)
from twin.service.security.roles import AccessDecision, Action, Role, authorize
from twin.service.security.totp import STEP_S, totp_code
from twin.service.twin_bridge import TwinBridge

BASELINE = Path(__file__).resolve().parents[3] / "scenarios" / "baseline.yaml"

BATCH = {
    "workload_type": "ai_inference_batch",
    "requirements": {"gpu_count": 2, "gpu_type": "h100_sxm", "estimated_duration_s": 600},
}
"""A valid submission (two H100 GPUs for 600 s)."""


# ------------------------------------------------------------------ the expected table


@dataclass(frozen=True)
class Rule:
    """Who may call one endpoint.

    Attributes:
        customer_action: what a customer key needs (None: the endpoint is public).
        staff_action: what an operator or admin key needs (None: public).
        for_own_account: the endpoint acts on the caller's own customer account (submit);
            staff keys have none, so they get 403 even where their role allows the action.
    """

    customer_action: Action | None
    staff_action: Action | None
    for_own_account: bool = False

    @property
    def public(self) -> bool:
        """True if the endpoint answers without a key."""
        return self.customer_action is None and self.staff_action is None


PUBLIC = Rule(None, None)

ENDPOINTS: dict[tuple[str, str], Rule] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("POST", "/v1/workloads/submit"): Rule(
        Action.SUBMIT_WORKLOAD, Action.SUBMIT_WORKLOAD, for_own_account=True
    ),
    ("GET", "/v1/workloads/{workload_id}/status"): Rule(
        Action.READ_OWN_WORKLOAD, Action.READ_ANY_WORKLOAD
    ),
    ("POST", "/v1/workloads/{workload_id}/cancel"): Rule(Action.CANCEL_OWN, Action.CANCEL_ANY),
    ("GET", "/v1/workloads"): Rule(Action.LIST_OWN, Action.LIST_ANY),
    ("GET", "/v1/resources/availability"): Rule(Action.READ_RESOURCES, Action.READ_RESOURCES),
    ("GET", "/v1/billing/usage"): Rule(Action.READ_BILLING_OWN, Action.READ_BILLING_ANY),
    ("GET", "/v1/facilities"): Rule(Action.READ_RESOURCES, Action.READ_RESOURCES),
    ("GET", "/v1/market"): Rule(Action.READ_RESOURCES, Action.READ_RESOURCES),
    ("GET", "/v1/fleet/status"): Rule(Action.READ_FLEET, Action.READ_FLEET),
    ("GET", "/v1/fleet/events"): Rule(Action.READ_FLEET, Action.READ_FLEET),
    ("GET", "/v1/resources"): Rule(Action.READ_FLEET, Action.READ_FLEET),
}
"""Every (method, path template) the app serves and who may call it."""

DOCUMENTATION_ROUTES = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
"""FastAPI's own routes: served, but not operations of the OpenAPI spec."""


class Outcome(StrEnum):
    """What a call should get."""

    SUCCESS = "2xx"
    UNAUTHENTICATED = "401"
    MFA_REQUIRED = "401 mfa_required"
    FORBIDDEN = "403"


# ------------------------------------------------------------------ callers


@dataclass(frozen=True)
class Keys:
    """The keys of one test platform."""

    alice: NewKey
    bob: NewKey
    operator: NewKey
    admin: NewKey
    revoked: NewKey


@dataclass(frozen=True)
class Caller:
    """One kind of caller: its role once authenticated (None: it never is) and how it
    builds its headers from the platform's keys (TOTP codes are made at call time)."""

    name: str
    role: Role | None
    headers: Callable[[Keys], dict[str, str]]
    valid_totp: bool = False


def _key(key: NewKey) -> dict[str, str]:
    return {"X-API-Key": key.key}


def _with_totp(key: NewKey) -> dict[str, str]:
    assert key.totp_secret is not None
    return {**_key(key), "X-TOTP": totp_code(key.totp_secret, time.time())}


def _with_wrong_totp(key: NewKey) -> dict[str, str]:
    """A six-digit code that matches none of the steps the server may accept now."""
    assert key.totp_secret is not None
    now_s = time.time()
    near = {totp_code(key.totp_secret, now_s + k * STEP_S) for k in range(-3, 4)}
    wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in near)
    return {**_key(key), "X-TOTP": wrong}


UNKNOWN_KEY = API_KEY_PREFIX + "Q" * KEY_BODY_CHARS
"""Well formed (``hcp_`` + 40 URL-safe characters) but never issued."""

CALLERS = (
    Caller("no key", None, lambda keys: {}),
    Caller("malformed key", None, lambda keys: {"X-API-Key": "not-a-key"}),
    Caller("malformed bearer", None, lambda keys: {"Authorization": "Bearer " + "x" * 12}),
    Caller("unknown key", None, lambda keys: {"X-API-Key": UNKNOWN_KEY}),
    Caller("revoked key", None, lambda keys: _key(keys.revoked)),
    Caller("customer", Role.CUSTOMER, lambda keys: _key(keys.alice)),
    Caller(
        "customer (bearer)",
        Role.CUSTOMER,
        lambda keys: {"Authorization": f"Bearer {keys.alice.key}"},
    ),
    Caller("operator", Role.OPERATOR, lambda keys: _key(keys.operator)),
    Caller("operator wrong TOTP", Role.OPERATOR, lambda keys: _with_wrong_totp(keys.operator)),
    Caller("operator TOTP", Role.OPERATOR, lambda keys: _with_totp(keys.operator), True),
    Caller("admin", Role.ADMIN, lambda keys: _key(keys.admin)),
    Caller("admin TOTP", Role.ADMIN, lambda keys: _with_totp(keys.admin), True),
)


def expected_outcome(rule: Rule, caller: Caller) -> Outcome:
    """What ``caller`` should get from an endpoint with ``rule``, by the permission table."""
    if rule.public:
        return Outcome.SUCCESS
    if caller.role is None:
        return Outcome.UNAUTHENTICATED
    action = rule.customer_action if caller.role is Role.CUSTOMER else rule.staff_action
    assert action is not None
    decision = authorize(caller.role, action, mfa_verified=caller.valid_totp)
    if decision is AccessDecision.FORBIDDEN:
        return Outcome.FORBIDDEN
    if decision is AccessDecision.MFA_REQUIRED:
        return Outcome.MFA_REQUIRED
    if rule.for_own_account and caller.role is not Role.CUSTOMER:
        return Outcome.FORBIDDEN
    return Outcome.SUCCESS


def outcome_of(reply: httpx.Response) -> Outcome | str:
    """The outcome a reply shows (a string naming anything else, e.g. ``404``)."""
    if 200 <= reply.status_code < 300:
        return Outcome.SUCCESS
    title = str(reply.json().get("title", ""))
    if reply.status_code == 401:
        return Outcome.MFA_REQUIRED if title.startswith("mfa_required") else Outcome.UNAUTHENTICATED
    if reply.status_code == 403:
        return Outcome.FORBIDDEN
    return f"{reply.status_code} {title}"


# ------------------------------------------------------------------ the platform


@dataclass
class Platform:
    """A running service, its keys and its database URL."""

    app: FastAPI
    client: TestClient
    keys: Keys
    db_url: str

    def submit(self, key: NewKey, body: dict[str, Any] | None = None, **headers: str) -> str:
        """Submit ``body`` (default :data:`BATCH`) as ``key``; the new workload's id."""
        reply = self.client.post(
            "/v1/workloads/submit", json=body or BATCH, headers={**_key(key), **headers}
        )
        assert reply.status_code == 201, reply.text
        return str(reply.json()["workload_id"])

    def status_of(self, workload_id: str, key: NewKey) -> str:
        """The workload's status as ``key`` (its owner) reads it."""
        reply = self.client.get(f"/v1/workloads/{workload_id}/status", headers=_key(key))
        assert reply.status_code == 200, reply.text
        return str(reply.json()["status"])

    def workload_counts(self) -> str:
        """The workload counts by status (the public metrics text)."""
        return self.client.get("/metrics").text


@pytest.fixture
def platform(db_url: str) -> Iterator[Platform]:
    """A service on a fresh database with two customers, an operator, an admin and a
    revoked customer key."""
    keys = Keys(
        alice=create_key(db_url, "customer", "Alice Corp"),
        bob=create_key(db_url, "customer", "Bob Labs"),
        operator=create_key(db_url, "operator"),
        admin=create_key(db_url, "admin"),
        revoked=create_key(db_url, "customer", "Carol Revoked"),
    )
    engine = make_engine(db_url)
    with session_factory(engine)() as session:
        repository.revoke_api_key(session, keys.revoked.key_id)
    engine.dispose()
    bridge = TwinBridge(_small_scenario(), speed=600.0, background_demand=False)
    bridge.step()  # the fleet endpoints answer from the twin's first tick
    config = ServiceConfig(db_url=db_url, rate_per_s=1e6, burst=1e6, bridge=bridge)
    app = create_app(config)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Platform(app, client, keys, db_url)


def _small_scenario() -> Scenario:
    return load_scenario(BASELINE, {"duration_days": 0.05})


def _served_endpoints(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every route of the app; a route without methods (a
    mount, a websocket) shows as ``*``. HEAD is left out: Starlette answers it with the
    GET handler, so it needs no entry of its own."""
    return {
        (method, getattr(route, "path", repr(route)))
        for route in app.routes
        for method in (getattr(route, "methods", None) or {"*"}) - {"HEAD"}
    }


def _request(
    platform: Platform, endpoint: tuple[str, str], headers: dict[str, str], workload_id: str
) -> httpx.Response:
    """Call ``endpoint`` with a real body, id and query, so that an allowed call succeeds."""
    method, template = endpoint
    path = template.format(workload_id=workload_id)
    now = datetime.now(UTC)
    params = {}
    if template == "/v1/billing/usage":
        params = {
            "customer_id": platform.keys.alice.customer_id,
            "period_start": (now - timedelta(days=1)).isoformat(),
            "period_end": (now + timedelta(hours=1)).isoformat(),
        }
    body = BATCH if template == "/v1/workloads/submit" else None
    return platform.client.request(method, path, headers=headers, params=params, json=body)


# ------------------------------------------------------------------ tests


def test_every_served_route_and_spec_operation_has_an_access_rule(platform: Platform) -> None:
    """The routes the app serves, and the operations of the spec it serves, are exactly
    the endpoints of the expected table (a new endpoint fails here until it is added)."""
    served = _served_endpoints(platform.app)
    assert served == set(ENDPOINTS), {
        "served but not in the table": sorted(served - set(ENDPOINTS)),
        "in the table but not served": sorted(set(ENDPOINTS) - served),
    }
    spec = platform.client.get("/openapi.json").json()
    operations = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    documented = {e for e in ENDPOINTS if e[1] not in DOCUMENTATION_ROUTES}
    assert operations == documented


def test_every_endpoint_answers_every_caller_as_the_permission_table_says(
    platform: Platform,
) -> None:
    """Each endpoint, called by each kind of caller with a real id and body, answers 2xx,
    401, 401 mfa_required or 403 as ``authorize`` decides from roles.py; errors are problem
    documents; a refused call changes no workload."""
    mismatches = []
    for endpoint, rule in ENDPOINTS.items():
        for caller in CALLERS:
            workload_id = (
                platform.submit(platform.keys.alice) if "{workload_id}" in endpoint[1] else ""
            )
            before = platform.workload_counts()
            reply = _request(platform, endpoint, caller.headers(platform.keys), workload_id)
            want, got = expected_outcome(rule, caller), outcome_of(reply)
            if got != want:
                mismatches.append((endpoint, caller.name, f"want {want}", f"got {got}"))
                continue
            if want is not Outcome.SUCCESS:
                body = reply.json()
                assert {"title", "status", "errors"} <= set(body), (endpoint, caller.name, body)
                assert body["status"] == reply.status_code
                assert platform.workload_counts() == before, (endpoint, caller.name)
            if endpoint[1].endswith("/cancel"):
                after = platform.status_of(workload_id, platform.keys.alice)
                assert (after == "cancelled") == (want is Outcome.SUCCESS), (caller.name, after)
    assert not mismatches, "\n".join(" | ".join(map(str, m)) for m in mismatches)


def test_the_matrix_covers_every_outcome() -> None:
    """The callers and endpoints reach success, 401, 401 mfa_required and 403 each, so the
    matrix test exercises every branch of the access decision."""
    seen = {expected_outcome(rule, caller) for rule in ENDPOINTS.values() for caller in CALLERS}
    assert seen == set(Outcome)


def test_another_customer_cannot_see_list_cancel_or_bill_a_customers_work(
    platform: Platform,
) -> None:
    """Bob gets 404 for Alice's workload (status and cancel; it stays queued), an empty
    list (also with Alice's status filter and page cursor), his own empty bill when he asks
    for Alice's, and a new workload of his own (never Alice's, and no 409 telling him that
    Alice used the key) when he reuses one of Alice's Idempotency-Keys."""
    client, keys = platform.client, platform.keys
    alice_id = keys.alice.customer_id
    assert alice_id is not None and keys.bob.customer_id is not None
    first = platform.submit(keys.alice, **{"Idempotency-Key": "order-1"})
    second = platform.submit(keys.alice, **{"Idempotency-Key": "order-2"})
    _bill_alice(platform, first)
    bob = _key(keys.bob)

    for reply in (
        client.get(f"/v1/workloads/{first}/status", headers=bob),
        client.post(f"/v1/workloads/{first}/cancel", headers=bob),
    ):
        assert reply.status_code == 404, reply.text
        assert alice_id not in reply.text
    assert platform.status_of(first, keys.alice) == "queued"

    alice_page = client.get("/v1/workloads", params={"limit": 1}, headers=_key(keys.alice))
    assert alice_page.json()["items"][0]["workload_id"] == second
    cursor = alice_page.json()["next_cursor"]
    assert cursor is not None
    for params in ({}, {"status": "queued"}, {"cursor": cursor}, {"limit": 500}):
        listed = client.get("/v1/workloads", params=params, headers=bob)
        assert listed.status_code in (200, 422), listed.text
        assert alice_id not in listed.text and first not in listed.text

    period = {
        "period_start": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
        "period_end": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    }
    own = client.get("/v1/billing/usage", params=period, headers=_key(keys.alice)).json()
    assert own["customer_id"] == alice_id and own["total_usd"] > 0
    asked = client.get("/v1/billing/usage", params={**period, "customer_id": alice_id}, headers=bob)
    assert asked.status_code == 200, asked.text
    assert asked.json()["customer_id"] == keys.bob.customer_id
    assert asked.json()["lines"] == [] and asked.json()["total_usd"] == 0

    reused = platform.submit(keys.bob, **{"Idempotency-Key": "order-2"})
    assert reused not in (first, second)
    assert platform.status_of(reused, keys.bob) == "queued"
    other_body = {**BATCH, "requirements": {**BATCH["requirements"], "gpu_count": 1}}
    no_conflict = client.post(
        "/v1/workloads/submit", json=other_body, headers={**bob, "Idempotency-Key": "order-1"}
    )
    assert no_conflict.status_code == 201, no_conflict.text
    assert no_conflict.json()["workload_id"] not in (first, second, reused)
    assert platform.status_of(first, keys.alice) == "queued"


def test_staff_see_every_customers_work(platform: Platform) -> None:
    """An operator lists and reads both customers' workloads (the other side of tenancy:
    the scoping is by role, not a blanket filter)."""
    keys = platform.keys
    alices, bobs = platform.submit(keys.alice), platform.submit(keys.bob)
    listed = platform.client.get("/v1/workloads", headers=_key(keys.operator)).json()["items"]
    assert {alices, bobs} <= {w["workload_id"] for w in listed}
    for workload_id in (alices, bobs):
        reply = platform.client.get(
            f"/v1/workloads/{workload_id}/status", headers=_key(keys.operator)
        )
        assert reply.status_code == 200 and reply.json()["workload_id"] == workload_id


def _bill_alice(platform: Platform, workload_id: str) -> None:
    """One priced hour of GPU time for Alice's workload, metered an hour ago."""
    customer_id = platform.keys.alice.customer_id
    assert customer_id is not None
    ended = datetime.now(UTC)
    engine = make_engine(platform.db_url)
    with session_factory(engine)() as session:
        repository.add_usage_records(
            session,
            [
                repository.NewUsageRecord(
                    customer_id=customer_id,
                    resource_type="gpu:h100_sxm",
                    quantity=3600.0,
                    unit="gpu_s",
                    started_at=ended - timedelta(hours=1),
                    ended_at=ended,
                    price_usd=2.5,
                    pricing="pay_per_use",
                    workload_id=workload_id,
                )
            ],
        )
    engine.dispose()


def test_the_unknown_key_passes_the_shape_check() -> None:
    """The unknown key of the matrix is well formed, so its 401 comes from the database
    lookup, while the malformed ones are refused by the shape check: both paths run."""
    assert is_well_formed_api_key(UNKNOWN_KEY)
    assert not is_well_formed_api_key("not-a-key")
