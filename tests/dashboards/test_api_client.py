"""The platform API client against a real ``serve`` process: typed reads of every
endpoint the operations page uses, and errors that name the endpoint and status."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from dashboards.api_client import (
    WORKLOAD_STATUSES,
    ApiError,
    ApiKeyRefused,
    ApiUnreachable,
    PlatformClient,
)
from twin.service.local_server import free_port
from twin.service.sdk import Client

from .conftest import running_platform

SERVE_ARGS = ["--speed", "300", "--no-background-demand"]


@dataclass(frozen=True)
class Platform:
    """A running server: its base URL, an operator and a customer key and the id of one
    workload."""

    url: str
    operator_key: str
    customer_key: str
    workload_id: str


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """``serve`` on a fresh SQLite database with one workload submitted by a customer."""
    with running_platform(tmp_path_factory.mktemp("api"), SERVE_ARGS) as running:
        submitted = Client(running.url, running.customer_key).submit(
            {"gpu_count": 2, "estimated_duration_s": 3600}
        )
        yield Platform(
            running.url, running.operator_key, running.customer_key, str(submitted["workload_id"])
        )


def test_reads_facilities_prices_and_availability(platform: Platform) -> None:
    """Facilities, market prices and availability name the same facilities; free GPUs
    never exceed the total and busy is their difference."""
    client = PlatformClient(platform.url, platform.operator_key)
    assert client.health()["status"] == "ok"
    facility_ids = {f.facility_id for f in client.facilities()}
    assert facility_ids
    market = client.market()
    assert set(market.prices_usd_per_mwh) == facility_ids
    assert market.sim_time_s >= 0
    availability = client.availability()
    assert set(availability["facility_id"]) <= facility_ids
    assert (availability["available"] <= availability["total"]).all()
    assert (availability["busy"] == availability["total"] - availability["available"]).all()


def test_operator_sees_the_customers_workload_in_list_and_gauge(platform: Platform) -> None:
    """The workload a customer submitted is in the operator's list with its GPU count, and
    the hcp_workloads gauge counts it under some status."""
    client = PlatformClient(platform.url, platform.operator_key)
    recent = client.workloads()
    row = recent[recent["workload_id"] == platform.workload_id]
    assert len(row) == 1 and row["gpus"].iloc[0] == 2
    assert row["status"].iloc[0] in WORKLOAD_STATUSES
    counts = client.workload_counts()
    assert set(counts) == set(WORKLOAD_STATUSES)
    assert sum(counts.values()) >= 1
    assert client.workloads(status="rejected", limit=5)["status"].isin(["rejected"]).all()


def test_fleet_status_and_events_for_staff_only(platform: Platform) -> None:
    """After a few ticks the fleet has one row per facility with power by use adding up
    to its total, the twin's device commands come back newest first, and a customer key
    is refused."""
    client = PlatformClient(platform.url, platform.operator_key)
    deadline = time.monotonic() + 30.0
    fleet = client.fleet_status()
    while not (len(fleet.power_by_use) and fleet.commands_sent) and time.monotonic() < deadline:
        time.sleep(0.5)
        fleet = client.fleet_status()
    facility_ids = [f.facility_id for f in client.facilities()]
    assert list(fleet.power_by_use.index) == facility_ids
    uses = fleet.power_by_use.drop(columns=["power_cap_mw", "power_total_mw"])
    assert uses.sum(axis=1).to_numpy() == pytest.approx(
        fleet.power_by_use["power_total_mw"].to_numpy(), rel=1e-9
    )
    assert set(fleet.asics.columns) == {"active", "sleeping", "failed"}
    commands = client.fleet_events(fleet.last_event_seq, kind="command", limit=5)
    assert 1 <= len(commands) <= 5
    assert list(commands["seq"]) == sorted(commands["seq"], reverse=True)
    assert set(commands["kind"]) == {"command"} and (commands["latency_ms"] >= 0).all()
    with pytest.raises(ApiKeyRefused) as error:
        PlatformClient(platform.url, platform.customer_key).fleet_status()
    assert error.value.status == 403


def test_refused_key_names_endpoint_and_status(platform: Platform) -> None:
    """An unknown key is ApiKeyRefused with status 401 and the endpoint in the message."""
    with pytest.raises(ApiKeyRefused) as error:
        PlatformClient(platform.url, "not-a-key").facilities()
    assert error.value.status == 401 and error.value.endpoint == "/v1/facilities"
    assert "/v1/facilities: HTTP 401" in str(error.value)


def test_bad_request_is_an_api_error_with_its_status(platform: Platform) -> None:
    """A status the API rejects (422) is an ApiError carrying that status, not a refusal."""
    with pytest.raises(ApiError) as error:
        PlatformClient(platform.url, platform.operator_key).workloads(status="sleeping")
    assert error.value.status == 422 and not isinstance(error.value, ApiKeyRefused)


def test_no_server_is_unreachable_without_status() -> None:
    """A port nobody listens on gives ApiUnreachable naming the endpoint, status None."""
    client = PlatformClient(f"http://127.0.0.1:{free_port()}", "key", timeout_s=2.0)
    with pytest.raises(ApiUnreachable) as error:
        client.market()
    assert error.value.status is None and str(error.value).startswith("/v1/market: no answer")
