"""REST API v1 end to end on SQLite and PostgreSQL: submit, status, list, cancel, roles,
tenancy, idempotency, validation, limits, audit chain, and the twin running the work."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from twin.scenario import load_scenario
from twin.service.api.app import ServiceConfig, create_app
from twin.service.audit import verify
from twin.service.db.engine import make_engine, session_factory
from twin.service.keys import KeyError_, create_key, revoke_key
from twin.service.security.totp import totp_code
from twin.service.twin_bridge import TwinBridge

BASELINE = Path(__file__).resolve().parents[3] / "scenarios" / "baseline.yaml"

BATCH = {
    "workload_type": "ai_inference_batch",
    "requirements": {"gpu_count": 2, "gpu_type": "h100_sxm", "estimated_duration_s": 600},
}


WRITERS = pytest.mark.parametrize("service", ["thread", "process"], indirect=True)
"""Run a test with the writes on a thread of the app's process and in a writer process."""


@pytest.fixture
def service(db_url, request):
    """A client on a fresh service and one key per role (two customers); its writes are
    committed on a thread, or in a writer process with ``request.param == "process"``."""
    keys = {
        "alice": create_key(db_url, "customer", "Alice Corp"),
        "bob": create_key(db_url, "customer", "Bob Labs"),
        "operator": create_key(db_url, "operator"),
        "admin": create_key(db_url, "admin"),
    }
    writer_process = getattr(request, "param", "thread") == "process"
    app = create_app(
        ServiceConfig(db_url=db_url, rate_per_s=1000, burst=1000, writer_process=writer_process)
    )
    with TestClient(app) as client:
        yield client, keys, db_url


def _headers(key, totp: bool = False) -> dict[str, str]:
    headers = {"X-API-Key": key.key}
    if totp and key.totp_secret:
        headers["X-TOTP"] = totp_code(key.totp_secret, time.time())
    return headers


@WRITERS
def test_submit_status_list_cancel_round_trip(service) -> None:
    """A customer submits (A.1 reply with id, status, estimate, SLA), reads it back, finds it
    in its list, cancels it; a second cancel is a no-op; the audit chain verifies."""
    client, keys, db_url = service
    reply = client.post("/v1/workloads/submit", json=BATCH, headers=_headers(keys["alice"]))
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert body["status"] == "queued" and body["workload_id"].startswith("wl_")
    assert body["sla"]["workload_type"] == "ai_inference_batch"
    assert body["estimated_cost"]["usd"] == pytest.approx(2 * 600 / 3600 * 2.5)
    workload_id = body["workload_id"]
    status = client.get(f"/v1/workloads/{workload_id}/status", headers=_headers(keys["alice"]))
    assert status.status_code == 200 and status.json()["status"] == "queued"
    listed = client.get("/v1/workloads", headers=_headers(keys["alice"])).json()
    assert [w["workload_id"] for w in listed["items"]] == [workload_id]
    for _ in range(2):
        cancelled = client.post(
            f"/v1/workloads/{workload_id}/cancel", headers=_headers(keys["alice"])
        )
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    engine = make_engine(db_url)
    with session_factory(engine)() as session:
        report = verify(session)
    engine.dispose()
    assert report.ok and report.count >= 4 + 1 + 2  # keys, submit, cancels
    metrics = client.get("/metrics").text
    assert 'hcp_workloads{status="cancelled"} 1' in metrics
    assert 'hcp_workloads{status="queued"} 0' in metrics


@WRITERS
def test_tenants_see_only_their_own_and_roles_are_enforced(service) -> None:
    """Bob cannot read or cancel Alice's workload (404, not 403: no existence leak);
    staff read any; cancelling another's workload needs MFA; customers cannot list all."""
    client, keys, _ = service
    workload_id = client.post(
        "/v1/workloads/submit", json=BATCH, headers=_headers(keys["alice"])
    ).json()["workload_id"]
    bob = _headers(keys["bob"])
    assert client.get(f"/v1/workloads/{workload_id}/status", headers=bob).status_code == 404
    assert client.post(f"/v1/workloads/{workload_id}/cancel", headers=bob).status_code == 404
    assert client.get("/v1/workloads", headers=bob).json()["items"] == []
    operator = keys["operator"]
    assert (
        client.get(f"/v1/workloads/{workload_id}/status", headers=_headers(operator)).status_code
        == 200
    )
    no_mfa = client.post(f"/v1/workloads/{workload_id}/cancel", headers=_headers(operator))
    assert no_mfa.status_code == 401 and "mfa" in no_mfa.json()["title"]
    with_mfa = client.post(
        f"/v1/workloads/{workload_id}/cancel", headers=_headers(operator, totp=True)
    )
    assert with_mfa.status_code == 200
    assert (
        client.post("/v1/workloads/submit", json=BATCH, headers=_headers(operator)).status_code
        == 403
    )
    assert client.get("/v1/workloads").status_code == 401
    assert client.get("/v1/workloads", headers={"X-API-Key": "hcp_" + "x" * 40}).status_code == 401


@WRITERS
def test_idempotency_key_makes_retries_safe(service) -> None:
    """The same Idempotency-Key and body returns the first workload; another body with the
    same key is a conflict."""
    client, keys, _ = service
    headers = {**_headers(keys["alice"]), "Idempotency-Key": "retry-1"}
    first = client.post("/v1/workloads/submit", json=BATCH, headers=headers).json()
    again = client.post("/v1/workloads/submit", json=BATCH, headers=headers).json()
    assert again["workload_id"] == first["workload_id"]
    other = {**BATCH, "requirements": {**BATCH["requirements"], "gpu_count": 4}}
    conflict = client.post("/v1/workloads/submit", json=other, headers=headers)
    assert (
        conflict.status_code == 409 and conflict.json()["errors"][0]["field"] == "Idempotency-Key"
    )
    listed = client.get("/v1/workloads", headers=_headers(keys["alice"])).json()["items"]
    assert len(listed) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"requirements": {"gpu_count": 1}}, "requirements.estimated_duration_s"),
        ({"requirements": {"gpu_count": -1, "estimated_duration_s": 60}}, "requirements.gpu_count"),
        (
            {"requirements": {"gpu_count": 1, "estimated_duration_s": 60, "gpu_type": "tpu9"}},
            "gpu_type",
        ),
        (
            {
                "workload_type": "bitcoin_mining",
                "requirements": {"gpu_count": 2, "estimated_duration_s": 60},
            },
            "gpu_count",
        ),
        ({"requirements": {"estimated_duration_s": 60}, "colour": "red"}, "colour"),
    ],
)
def test_bad_bodies_name_the_field_and_never_crash(service, body, field) -> None:
    """Invalid submissions answer 422 naming the field; nothing is stored."""
    client, keys, _ = service
    reply = client.post("/v1/workloads/submit", json=body, headers=_headers(keys["alice"]))
    assert reply.status_code == 422, reply.text
    assert any(e["field"] == field for e in reply.json()["errors"]), reply.json()
    assert client.get("/v1/workloads", headers=_headers(keys["alice"])).json()["items"] == []


def test_oversized_bodies_and_rate_limits_are_refused(db_url) -> None:
    """A body over the limit gets 413; a key past its burst gets 429 with Retry-After."""
    key = create_key(db_url, "customer", "Carol")
    client = TestClient(
        create_app(ServiceConfig(db_url=db_url, rate_per_s=0.5, burst=3, max_body_bytes=512))
    )
    big = {**BATCH, "metadata": {"blob": "x" * 2000}}
    assert client.post("/v1/workloads/submit", json=big, headers=_headers(key)).status_code == 413
    chunks = iter([b'{"requirements": {', b" " * 600, b"}}"])  # no Content-Length: streamed
    streamed = client.post("/v1/workloads/submit", content=chunks, headers=_headers(key))
    assert streamed.status_code == 413, streamed.text
    codes = [client.get("/v1/workloads", headers=_headers(key)).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[-1] == 429
    limited = client.get("/v1/workloads", headers=_headers(key))
    assert int(limited.headers["Retry-After"]) >= 1


def test_submitted_work_runs_in_the_twin_and_its_status_comes_back(db_url) -> None:
    """With a twin attached, a submitted batch job enters the scheduler on the next tick,
    runs, completes, and the API reports it completed with a facility and a cost."""
    scenario = load_scenario(BASELINE, {"duration_days": 1})
    bridge = TwinBridge(scenario, speed=600.0, background_demand=False)
    key = create_key(db_url, "customer", "Dana")
    with TestClient(create_app(ServiceConfig(db_url=db_url, bridge=bridge))) as client:
        _runs_in_the_twin(client, bridge, key)


def _runs_in_the_twin(client, bridge, key) -> None:
    workload_id = client.post("/v1/workloads/submit", json=BATCH, headers=_headers(key)).json()[
        "workload_id"
    ]
    statuses = []
    for _ in range(4):
        bridge.step()
        statuses.append(
            client.get(f"/v1/workloads/{workload_id}/status", headers=_headers(key)).json()
        )
    assert statuses[0]["status"] == "running" and statuses[0]["facility_id"]
    assert statuses[-1]["status"] == "completed" and statuses[-1]["cost_usd"] > 0
    available = client.get("/v1/resources/availability?gpu_type=h100_sxm", headers=_headers(key))
    assert available.status_code == 200
    assert all(f["gpu_type"] == "h100_sxm" for f in available.json()["facilities"])


def test_the_openapi_spec_in_the_repository_is_the_one_served() -> None:
    """twin/service/openapi.json equals what the app serves (regenerate it with
    ``python -m twin.service.openapi`` after changing the API)."""
    from twin.service.openapi import SPEC_FILE, current_spec, spec_text

    assert SPEC_FILE.read_text() == spec_text(current_spec())
    paths = current_spec()["paths"]
    assert {"/v1/workloads/submit", "/v1/workloads", "/v1/resources/availability"} <= set(paths)


def test_billing_reconciles_with_the_work_done(db_url) -> None:
    """Completed workloads are metered in GPU-seconds and priced by their billing model;
    the invoice lines add up to the workloads' costs; another customer sees nothing."""
    scenario = load_scenario(BASELINE, {"duration_days": 1})
    bridge = TwinBridge(scenario, speed=600.0, background_demand=False)
    key = create_key(db_url, "customer", "Hank")
    other = create_key(db_url, "customer", "Ivy")
    with TestClient(create_app(ServiceConfig(db_url=db_url, bridge=bridge))) as client:
        ids = [
            client.post("/v1/workloads/submit", json=body, headers=_headers(key)).json()[
                "workload_id"
            ]
            for body in (
                BATCH,
                {**BATCH, "pricing": "spot"},
                {**BATCH, "pricing": "reserved"},
            )
        ]
        for _ in range(4):
            bridge.step()
        costs = [
            client.get(f"/v1/workloads/{w}/status", headers=_headers(key)).json()["cost_usd"]
            for w in ids
        ]
        invoice = client.get("/v1/billing/usage", headers=_headers(key)).json()
        assert client.get("/v1/billing/usage", headers=_headers(other)).json()["lines"] == []
    gpu_hours = 2 * 600 / 3600
    assert {line["unit"] for line in invoice["lines"]} == {"gpu_s", "kwh"}
    assert all(line["usd"] == 0 for line in invoice["lines"] if line["unit"] == "kwh")
    invoice_lines = invoice["lines"]
    invoice["lines"] = [line for line in invoice_lines if line["unit"] == "gpu_s"]
    by_pricing = {line["pricing"]: line for line in invoice["lines"]}
    assert by_pricing["pay_per_use"]["usd"] == pytest.approx(gpu_hours * 2.5)
    assert by_pricing["reserved"]["usd"] == pytest.approx(gpu_hours * 1200 * 0.7 / 730)
    assert all(line["quantity"] == pytest.approx(2 * 600) for line in invoice["lines"])
    assert invoice["total_usd"] == pytest.approx(sum(line["usd"] for line in invoice_lines))
    assert sum(costs) == pytest.approx(invoice["total_usd"], rel=1e-6)


def test_a_revoked_key_stops_working_within_the_key_memory(db_url) -> None:
    """A key works, is revoked (keys revoke), keeps working only while remembered, then
    answers 401; forget() ends it at once for a key revoked through this process."""
    key = create_key(db_url, "customer", "Gina")
    other = create_key(db_url, "customer", "Hugo")
    app = create_app(ServiceConfig(db_url=db_url, principal_ttl_s=0.5))
    with TestClient(app) as client:
        assert client.get("/v1/workloads", headers=_headers(key)).status_code == 200
        assert client.get("/v1/workloads", headers=_headers(other)).status_code == 200
        revoke_key(db_url, key.key_id)
        revoke_key(db_url, other.key_id)
        app.state.auth.forget(other.key[:12])
        assert client.get("/v1/workloads", headers=_headers(other)).status_code == 401
        time.sleep(0.6)
        assert client.get("/v1/workloads", headers=_headers(key)).status_code == 401
    with pytest.raises(KeyError_, match="no API key"):
        revoke_key(db_url, "key_missing")


def test_a_burst_of_requests_on_a_new_key_checks_it_once(db_url) -> None:
    """Fifty concurrent first requests of one key cost one database lookup and one scrypt,
    not fifty (single flight); all fifty are answered."""
    key = create_key(db_url, "customer", "Ivy")
    app = create_app(ServiceConfig(db_url=db_url, rate_per_s=1000, burst=1000))

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            replies = await asyncio.gather(
                *[
                    client.get("/v1/workloads/wl_missing/status", headers=_headers(key))
                    for _ in range(50)
                ]
            )
        return [reply.status_code for reply in replies]

    assert asyncio.run(burst()) == [404] * 50
    assert app.state.auth.lookups == 1


def test_usage_lines_cover_gpu_time_requests_storage_and_energy(db_url) -> None:
    """An inference workload that declares its requests and data is metered in GPU-seconds,
    requests, GB-hours and attributed kWh; the invoice adds up to the workload's cost."""
    scenario = load_scenario(BASELINE, {"duration_days": 1})
    bridge = TwinBridge(scenario, speed=600.0, background_demand=False)
    key = create_key(db_url, "customer", "Jo")
    body = {**BATCH, "requirements": {**BATCH["requirements"], "requests": 4000, "data_gb": 73}}
    with TestClient(create_app(ServiceConfig(db_url=db_url, bridge=bridge))) as client:
        workload_id = client.post("/v1/workloads/submit", json=body, headers=_headers(key)).json()[
            "workload_id"
        ]
        for _ in range(4):
            bridge.step()
        cost = client.get(f"/v1/workloads/{workload_id}/status", headers=_headers(key)).json()[
            "cost_usd"
        ]
        invoice = client.get("/v1/billing/usage", headers=_headers(key)).json()
    lines = {line["unit"]: line for line in invoice["lines"]}
    assert set(lines) == {"gpu_s", "requests", "gb_h", "kwh"}
    assert lines["requests"]["quantity"] == 4000 and lines["requests"]["usd"] == pytest.approx(4.0)
    assert lines["gb_h"]["quantity"] == pytest.approx(73 * 600 / 3600)
    assert lines["kwh"]["quantity"] > 0 and lines["kwh"]["usd"] == 0
    assert invoice["total_usd"] == pytest.approx(cost, abs=1e-6)


def test_a_caller_without_a_valid_key_learns_nothing_about_the_request(service) -> None:
    """Authentication comes before validation: without a valid key, a malformed query or
    body gets 401 with a WWW-Authenticate challenge, not a 422 describing the fields."""
    client, _, _ = service
    for headers in ({}, {"X-API-Key": "hcp_" + "x" * 40}):
        listing = client.get("/v1/workloads?limit=abc", headers=headers)
        submit = client.post("/v1/workloads/submit", json={"requirements": 7}, headers=headers)
        for reply in (listing, submit):
            assert reply.status_code == 401, reply.text
            assert reply.headers["WWW-Authenticate"].startswith("Bearer")
            assert reply.json()["errors"] == []
