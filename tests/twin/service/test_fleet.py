"""The operators' fleet view: facility statuses, alerts and the device command log, from
the twin's ticks through ``GET /v1/fleet/status`` and ``GET /v1/fleet/events``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from drivers.base import AsicCommand, ClassCountingAsicDriver, CommandResult
from drivers.journal import AppliedBatch, JournaledAsicDriver
from drivers.sim import SimAsicDriver
from twin.engine import build
from twin.live_health import LiveAlert
from twin.scenario import load_scenario
from twin.service.api.app import ServiceConfig, create_app
from twin.service.fleet_monitor import (
    AT_CAP_FRACTION,
    Alert,
    FleetMonitor,
    detection_alert,
    facility_alerts,
    live_detection_alert,
)
from twin.service.fleet_view import FacilityStatus
from twin.service.keys import create_key
from twin.service.twin_bridge import TwinBridge

BASELINE = Path(__file__).resolve().parents[3] / "scenarios" / "baseline.yaml"


def _status(**changes: object) -> FacilityStatus:
    values: dict[str, object] = {
        "facility_id": "site-a",
        "price_usd_per_mwh": 40.0,
        "power_cap_mw": 100.0,
        "power_total_mw": 60.0,
        "power_by_use_mw": {"mining": 40.0, "overhead": 20.0},
        "curtailed_mw": 0.0,
        "hashrate_ths": 1e6,
        "asics": {"active": 900, "sleeping": 100, "failed": 0},
        "gpus": {"inference": 10, "idle": 6, "failed": 0},
        "running_jobs": 3,
        "grid_event_fraction": 0.0,
        "four_cp": False,
    }
    values.update(changes)
    return FacilityStatus(**values)  # type: ignore[arg-type]


def test_alerts_fire_once_when_a_condition_starts() -> None:
    """Failures, a grid event, a 4CP interval, the cap and a price spike each raise one
    alert when they start; the same state a tick later raises none."""
    calm = _status()
    stormy = _status(
        asics={"active": 880, "sleeping": 100, "failed": 20},
        gpus={"inference": 10, "idle": 4, "failed": 2},
        grid_event_fraction=0.5,
        four_cp=True,
        power_total_mw=AT_CAP_FRACTION * 100.0,
        price_usd_per_mwh=2500.0,
    )
    alerts = facility_alerts(calm, stormy)
    messages = " | ".join(a.message for a in alerts)
    assert len(alerts) == 6, messages
    assert "20 miner(s) failed" in messages and "2 GPU(s) failed" in messages
    assert {a.severity for a in alerts if "grid event" in a.message} == {"critical"}
    assert facility_alerts(stormy, stormy) == []
    recovered = facility_alerts(stormy, calm)
    assert {a.severity for a in recovered} == {"info"}
    assert any("back in service" in a.message for a in recovered)
    assert any(a.message == "grid event over" for a in recovered)


def test_the_monitor_numbers_events_and_keeps_a_window() -> None:
    """Events get increasing numbers; the oldest drop out of the window; switch-time
    statistics come from the journaled batches."""
    monitor = FleetMonitor(["site-a"], clock=lambda: 1.7e9, window=5)
    for step in range(4):
        monitor.observe(step * 300.0, [_status(price_usd_per_mwh=2000.0 * (step % 2))])
    command = AsicCommand(0, "s19xp", active_count=10)
    for latency_s in (0.010, 0.030, 0.020):
        monitor.journal(AppliedBatch((CommandResult(command, True),), latency_s, 900.0))
    view = monitor.view()
    seqs = [e.seq for e in view.events]
    assert seqs == sorted(seqs) and len(seqs) == 5 and seqs[-1] == 5
    assert view.switch_times.batches == 3
    assert view.switch_times.p50_ms == pytest.approx(20.0)
    assert view.switch_times.max_ms == pytest.approx(30.0)
    assert view.events_since(3, 10)[0].seq == 4
    monitor.observe(1200.0, [_status()], [Alert("critical", None, "feed stale")])
    assert monitor.view().events[-1].message == "feed stale"


def test_the_journaled_driver_times_commands_and_keeps_the_inner_drivers_abilities() -> None:
    """Commands through the wrapper reach the simulated fleet, come back verified with a
    latency, and capability checks still see the inner driver's counting."""
    scenario = load_scenario(BASELINE, {"duration_days": 0.05})
    twin = build(scenario)
    inner = twin.controller.asic_driver
    assert isinstance(inner, SimAsicDriver)
    batches: list[AppliedBatch] = []
    driver = JournaledAsicDriver(inner, batches.append)
    assert isinstance(driver, ClassCountingAsicDriver)
    model_id = twin.world.asic_fleet.models[0].model_id
    result = driver.apply([AsicCommand(0, model_id, active_count=0)])
    assert result.all_verified
    assert len(batches) == 1 and batches[0].latency_s >= 0
    assert batches[0].results[0].verified
    counts = driver.state_counts()
    assert counts[0, 0, 0] == 0  # no miner of that class hashes at facility 0


@pytest.fixture
def fleet_service(db_url: str):
    """A service over an in-process twin of a short baseline with a grid event in its
    second interval; the twin is stepped by hand."""
    scenario = load_scenario(
        BASELINE,
        {
            "duration_days": 0.1,
            "grid.events": [
                {
                    "kind": "eea",
                    "start": "2025-07-14T00:05:00-05:00",
                    "duration_h": 0.25,
                    "curtail_fraction": 1.0,
                    "payment_usd_per_mwh": 1000,
                }
            ],
        },
    )
    bridge = TwinBridge(scenario, speed=600.0, background_demand=True)
    operator = create_key(db_url, "operator")
    customer = create_key(db_url, "customer", "Alice Corp")
    app = create_app(ServiceConfig(db_url=db_url, bridge=bridge, rate_per_s=1e4, burst=1e4))
    with TestClient(app) as client:
        yield client, bridge, {"X-API-Key": operator.key}, {"X-API-Key": customer.key}


def test_fleet_status_matches_what_the_twin_recorded(fleet_service) -> None:
    """Each facility's power by use adds up to its total, device counts cover the fleet,
    and the figures are the recorder's for the last tick."""
    client, bridge, operator, customer = fleet_service
    for _ in range(3):
        bridge.step()
    reply = client.get("/v1/fleet/status", headers=operator)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["sim_time_s"] == pytest.approx(3 * 300.0)
    recorder = bridge.controller.recorder
    world = bridge.world
    assert [f["facility_id"] for f in body["facilities"]] == list(world.facility_ids)
    for f, facility in enumerate(body["facilities"]):
        assert sum(facility["power_by_use_mw"].values()) == pytest.approx(
            facility["power_total_mw"], rel=1e-9
        )
        assert facility["power_total_mw"] == pytest.approx(
            float(recorder.column("power_total_mw")[2, f])
        )
        miners = int((world.asic_fleet.facility == f).sum())
        assert sum(facility["asics"].values()) == pytest.approx(miners, abs=3)
    assert body["commands_sent"] >= 1
    assert client.get("/v1/fleet/status", headers=customer).status_code == 403


def test_fleet_events_page_through_commands_and_alerts(fleet_service) -> None:
    """The grid event raises a critical alert per facility; commands carry their switch
    time; ``since`` and ``limit`` page through without repeats or gaps."""
    client, bridge, operator, _ = fleet_service
    for _ in range(4):
        bridge.step()
    everything = client.get("/v1/fleet/events", params={"limit": 500}, headers=operator).json()
    events = everything["events"]
    critical = [e for e in events if e["severity"] == "critical"]
    assert {e["facility_id"] for e in critical} == set(bridge.world.facility_ids)
    assert all(e["sim_time_s"] == pytest.approx(600.0) for e in critical)
    commands = [e for e in events if e["kind"] == "command"]
    assert commands and all(e["latency_ms"] >= 0 and e["verified"] for e in commands)
    seen: list[int] = []
    since = 0
    while True:
        page = client.get(
            "/v1/fleet/events", params={"since": since, "limit": 3}, headers=operator
        ).json()
        if not page["events"]:
            break
        seen += [e["seq"] for e in page["events"]]
        since = page["next_since"]
    assert seen == [e["seq"] for e in events]
    alerts = client.get("/v1/fleet/events", params={"kind": "alert"}, headers=operator).json()
    assert {e["kind"] for e in alerts["events"]} == {"alert"}
    bad = client.get("/v1/fleet/events", params={"since": -1}, headers=operator)
    assert bad.status_code == 422 and "since" in bad.text


def test_fleet_endpoints_answer_503_without_a_twin(db_url: str) -> None:
    """A service with no twin says so rather than showing an empty fleet."""
    operator = create_key(db_url, "operator")
    with TestClient(create_app(ServiceConfig(db_url=db_url))) as client:
        reply = client.get("/v1/fleet/status", headers={"X-API-Key": operator.key})
    assert reply.status_code == 503
    assert "no twin" in reply.json()["title"]


def test_metrics_expose_the_fleet_in_prometheus_format(fleet_service) -> None:
    """``/metrics`` parses as Prometheus text; per facility the power by use adds up to the
    fleet status's total, and command counters match the status."""
    client, bridge, operator, _ = fleet_service
    for _ in range(2):
        bridge.step()
    text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    status = client.get("/v1/fleet/status", headers=operator).json()
    power = families["hcp_facility_power_mw"].samples
    for facility in status["facilities"]:
        mine = [s.value for s in power if s.labels["facility"] == facility["facility_id"]]
        assert sum(mine) == pytest.approx(facility["power_total_mw"], rel=1e-9)
    commands = {s.labels["result"]: s.value for s in families["hcp_device_commands"].samples}
    assert commands["verified"] + commands["failed"] == status["commands_sent"]
    assert families["hcp_twin_time_seconds"].samples[0].value == status["sim_time_s"]
    assert {s.labels["state"] for s in families["hcp_miners"].samples} == {
        "active",
        "sleeping",
        "failed",
    }


def test_faults_reach_operators_as_alerts_pool_health_and_the_resources_table(
    db_url: str,
) -> None:
    """In a served twin with an outage at one site, the
    detections and pool changes come out as alerts, the site's pools go offline in the
    fleet view, and the resources table (synced in the background) says so too; when the
    outage ends the pools come back."""
    scenario = load_scenario(
        BASELINE,
        {
            "duration_days": 0.1,
            "faults": [
                {
                    "kind": "facility_outage",
                    "facility": "houston-ai",
                    "start": "2025-07-14T00:10:00-05:00",
                    "duration_h": 0.5,
                },
            ],
        },
    )
    bridge = TwinBridge(scenario, speed=600.0, background_demand=True)
    operator = {"X-API-Key": create_key(db_url, "operator").key}
    app = create_app(ServiceConfig(db_url=db_url, bridge=bridge, rate_per_s=1e4, burst=1e4))
    with TestClient(app) as client:
        for _ in range(4):  # past the outage's start (600 s)
            bridge.step()
        fleet = bridge.snapshot().fleet
        assert fleet is not None
        houston = [r for r in fleet.resources if r.facility_id == "houston-ai"]
        assert houston and {r.status for r in houston} == {"offline"}
        assert {r.status for r in fleet.resources if r.facility_id != "houston-ai"} == {"online"}
        events = client.get("/v1/fleet/events", params={"limit": 500}, headers=operator).json()
        offline = [e for e in events["events"] if "offline" in e["message"]]
        assert {e["severity"] for e in offline} == {"critical"}
        assert {e["facility_id"] for e in offline} == {"houston-ai"}
        rows = _wait_for_resources(client, operator, "offline")
        assert {r["id"] for r in rows} == {r.resource_id for r in houston}
        assert all(r["devices"] > 0 and "cut off" in r["reason"] for r in rows)
        for _ in range(7):  # the outage ends at 2,400 s
            bridge.step()
        assert not _wait_for_resources(client, operator, "offline", expect_none=True)
        back = [
            e
            for e in client.get("/v1/fleet/events", params={"limit": 500}, headers=operator).json()[
                "events"
            ]
            if "houston-ai" in e["message"] and " online" in e["message"]
        ]
        assert back and {e["severity"] for e in back} == {"info"}
        bad = client.get("/v1/resources", params={"status": "sleepy"}, headers=operator)
        assert bad.status_code == 422 and "status" in bad.text


def _wait_for_resources(
    client: TestClient, headers: dict[str, str], status: str, expect_none: bool = False
) -> list[dict]:
    """The resources in ``status`` once the background sync has written them (or, with
    ``expect_none``, once none are left), within 10 s."""
    deadline = time.monotonic() + 10.0
    while True:
        rows = client.get("/v1/resources", params={"status": status}, headers=headers).json()
        if bool(rows) != expect_none or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_health_monitor_detections_read_as_alerts() -> None:
    """A device detection is a warning naming the device, its signal and detector; a site
    detection is critical; the facility index maps to its id."""
    ids = ["west", "east"]
    device = detection_alert((60.0, 1, "asic", 42, "cusum", "hashrate_ths", 9.5, 0.1), ids)
    assert device.severity == "warning" and device.facility_id == "east"
    assert "asic #42" in device.message and "hashrate_ths" in device.message
    assert "cusum" in device.message
    site = detection_alert((90.0, 0, "site", -1, "heartbeat", "silent", 1.0, float("nan")), ids)
    assert site.severity == "critical" and site.facility_id == "west"
    live = live_detection_alert(
        LiveAlert(5.0, 1, "10.0.0.7", "class_median", "hashrate_low", 0.5), ids
    )
    assert live.severity == "warning" and live.facility_id == "east"
    assert "10.0.0.7" in live.message and "hashrate_low" in live.message
