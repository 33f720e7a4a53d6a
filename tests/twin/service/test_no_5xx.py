"""No input makes the API answer 5xx: random bodies, query strings and ids (hypothesis)."""

from __future__ import annotations

import urllib.parse

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin.service.api.app import ServiceConfig, create_app
from twin.service.keys import create_key

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
REQUIREMENT_KEYS = st.sampled_from(
    [
        "estimated_duration_s",
        "gpu_count",
        "gpu_type",
        "hashrate_ths",
        "max_latency_ms",
        "interruptible",
        "checkpoint_interval_s",
        "data_residency",
        "data_gb",
        "other",
    ]
)
BODIES = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {"requirements": st.dictionaries(REQUIREMENT_KEYS, JSON, max_size=6)},
        optional={
            "workload_type": JSON,
            "deadline": JSON,
            "pricing": JSON,
            "callback_url": JSON,
            "metadata": JSON,
        },
    ),
)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """A service on a SQLite file with one customer key."""
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'hcp.db'}"
    key = create_key(url, "customer", "Fuzz").key
    app = create_app(ServiceConfig(db_url=url, rate_per_s=1e6, burst=1e6))
    with TestClient(app) as test_client:
        test_client.headers["X-API-Key"] = key
        yield test_client


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES)
def test_random_submissions_never_answer_5xx(client, body) -> None:
    """Any JSON body gets 201 or a 4xx problem document naming fields, never 5xx."""
    reply = client.post("/v1/workloads/submit", json=body)
    assert reply.status_code < 500, (body, reply.text)
    if reply.status_code >= 400:
        assert {"title", "status", "errors"} <= set(reply.json())


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    status=st.text(max_size=12),
    limit=st.text(max_size=6),
    cursor=st.text(max_size=40),
    workload_id=st.text(min_size=1, max_size=40),
)
def test_random_queries_and_ids_never_answer_5xx(
    client, status, limit, cursor, workload_id
) -> None:
    """Random list parameters and workload ids get 2xx or 4xx."""
    quoted = urllib.parse.quote(workload_id, safe="")
    listing = client.get(
        "/v1/workloads", params={"status": status, "limit": limit, "cursor": cursor}
    )
    assert listing.status_code < 500, listing.text
    for reply in (
        client.get(f"/v1/workloads/{quoted}/status"),
        client.post(f"/v1/workloads/{quoted}/cancel"),
        client.get("/v1/billing/usage", params={"period_start": cursor}),
        client.get("/v1/resources/availability", params={"min_gpus": limit}),
    ):
        assert reply.status_code < 500, reply.text
