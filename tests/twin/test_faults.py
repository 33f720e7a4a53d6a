"""Fault injection: the schema rejects bad declarations by field, every kind changes the world
and its telemetry as it should, jobs survive node failures, and the loop never stops."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
import pytest

from models.faults import FleetLayout, resolve_faults
from twin.engine import RunResult, Twin, build, fault_start_offsets_s
from twin.scenario import ScenarioError
from twin.scenario_faults import FaultRates

from .fault_scenarios import tiny

NO_DETECTION = {"detection": {"enabled": False}}


def _run(faults: list[dict[str, Any]], hours: float = 3.0, **fields: Any) -> tuple[Twin, RunResult]:
    twin = build(tiny(faults, hours=hours, **fields))
    return twin, twin.run()


def _rows(result: RunResult, facility: str) -> pl.DataFrame:
    return result.timeseries.filter(pl.col("facility_id") == facility).sort("t_s")


def _detail(twin: Twin, device: int, target: str = "asic") -> pl.DataFrame:
    table = twin.recorder.tables["telemetry"]
    return table.filter((pl.col("target") == target) & (pl.col("device") == device))


def _fault_devices(twin: Twin, fault_id: int = 0) -> list[int]:
    faults = twin.recorder.tables["faults"]
    return faults.filter(pl.col("fault_id") == fault_id)["device"].to_list()


# --------------------------------------------------------------------------- schema


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"kind": "fan_failure", "facility": "nope", "start_offset_h": 1}, "faults[0].facility"),
        (
            {"kind": "hashboard_failure", "facility": "ai", "model": "antminer_s21"},
            "faults[0]: give exactly one of start or start_offset_h",
        ),
        (
            {
                "kind": "hashboard_failure",
                "facility": "ai",
                "model": "antminer_s21",
                "start_offset_h": 1,
            },
            "faults[0].model: ai has no 'antminer_s21'",
        ),
        (
            {"kind": "gpu_xid", "facility": "mine", "count": 33, "start_offset_h": 1},
            "faults[0].count: 33 > the 32 GPUs there",
        ),
        (
            {
                "kind": "node_failure",
                "facility": "ai",
                "gpu_type": "b200",
                "nodes": 3,
                "start_offset_h": 1,
            },
            "faults[0].nodes: 3 > the 2 GPU nodes at ai",
        ),
        (
            {"kind": "fan_failure", "facility": "mine", "start": "2025-07-14T01:00:00"},
            "faults[0].start: needs a UTC offset",
        ),
        ({"kind": "meteor", "facility": "mine", "start_offset_h": 1}, "faults[0].kind"),
        (
            {"kind": "fan_failure", "facility": "mine", "start_offset_h": 1, "boards": 2},
            "faults[0].boards: unknown field",
        ),
        (
            {"kind": "hashboard_failure", "facility": "mine", "start_offset_h": 1, "boards": 4},
            "faults[0].boards",
        ),
        (
            {"kind": "pool_outage", "facility": "mine", "start_offset_h": 1, "duration_h": -1},
            "faults[0].duration_h",
        ),
        (
            {"kind": "pool_outage", "facility": "mine", "start": "2025-07-13T23:00:00-05:00"},
            "faults[0].start: 1 h before the run starts",
        ),
    ],
)
def test_bad_fault_declarations_name_the_field(fault: dict[str, Any], expected: str) -> None:
    """Each bad fault entry is rejected with a problem that starts with its path."""
    with pytest.raises(ScenarioError) as error:
        tiny([fault])
    assert any(problem.startswith(expected) for problem in error.value.problems), error.value


def test_fault_start_may_be_a_datetime_or_an_offset() -> None:
    """An aware ``start`` and ``start_offset_h`` both resolve to seconds after the start."""
    scenario = tiny(
        [
            {"kind": "pool_outage", "facility": "mine", "start": "2025-07-14T01:30:00-05:00"},
            {"kind": "pool_outage", "facility": "mine", "start_offset_h": 0.25},
        ]
    )
    assert fault_start_offsets_s(scenario) == [5400.0, 900.0]


def test_random_fault_rates_draw_more_faults_at_higher_rates() -> None:
    """Random faults come from the seeded stream: same seed same draw, and a higher rate
    gives more incidents (each on one device, starting inside the run)."""
    layout = FleetLayout(
        asic_facility=np.repeat([0, 1], 5000),
        asic_model=np.array(["antminer_s21"] * 10000),
        gpu_facility=np.repeat([0, 1], 400),
        gpu_type=np.array(["h100_sxm"] * 800),
        gpu_node=np.arange(800) // 8,
    )
    duration_s = 30 * 86400.0

    def draw(rate: float, seed: int) -> list[Any]:
        rates = FaultRates(hashboard_failure_per_device_year=rate, node_failure_per_node_year=rate)
        rng = np.random.default_rng(seed)
        return resolve_faults([], rates, [], ["a", "b"], layout, duration_s, rng)

    low, again, high = draw(0.5, 1), draw(0.5, 1), draw(5.0, 1)
    assert [(e.kind, e.start_s, e.devices.tolist()) for e in low] == [
        (e.kind, e.start_s, e.devices.tolist()) for e in again
    ]
    assert len(high) > len(low) > 0
    assert all(0.0 <= e.start_s < duration_s for e in high)
    nodes = [e for e in high if e.kind == "node_failure"]
    assert nodes and all(e.devices.size == 8 for e in nodes)


# --------------------------------------------------------------------------- device faults


def test_hashboard_failure_lowers_hashrate_by_a_third_per_board() -> None:
    """A miner with one failed board reads ~2/3 of its hashrate, with two ~1/3, at the same
    power; the site's recorded hashrate falls by the lost share."""
    faults = [
        {
            "kind": "hashboard_failure",
            "facility": "ai",
            "count": 1,
            "boards": 1,
            "start_offset_h": 1,
        },
        {
            "kind": "hashboard_failure",
            "facility": "ai",
            "count": 1,
            "boards": 2,
            "start_offset_h": 1,
        },
    ]
    telemetry = {"sample_per_class": 40}
    twin, result = _run(faults, telemetry=telemetry, **NO_DETECTION)
    for fault_id, boards in ((0, 1), (1, 2)):
        (device,) = _fault_devices(twin, fault_id)
        detail = _detail(twin, device)
        before = detail.filter(pl.col("t_s") < 3500)["hashrate_ths"].mean()
        after = detail.filter(pl.col("t_s") > 3700)["hashrate_ths"].mean()
        assert after / before == pytest.approx(1 - boards / 3, abs=0.02)
        power_before = detail.filter(pl.col("t_s") < 3500)["power_w"].mean()
        power_after = detail.filter(pl.col("t_s") > 3700)["power_w"].mean()
        assert power_after == pytest.approx(power_before, rel=0.01)
    site = _rows(result, "ai")
    nameplate_ths = 40 * 234.0
    late = site.filter(pl.col("t_s") >= 3600)["hashrate_ths"]
    assert late.max() == pytest.approx(nameplate_ths - 234.0 * (1 / 3 + 2 / 3), rel=1e-6)


def test_fan_failure_raises_temperature_then_throttles_power() -> None:
    """A miner whose fan stopped runs hotter than before, then its firmware cuts its power to
    about half once the chip passes the throttle temperature."""
    faults = [
        {
            "kind": "fan_failure",
            "facility": "mine",
            "model": "antminer_s21",
            "count": 1,
            "start_offset_h": 1,
            "thermal_multiplier": 1.8,
        }
    ]
    twin, _ = _run(faults, telemetry={"sample_per_class": 120}, **NO_DETECTION)
    (device,) = _fault_devices(twin)
    detail = _detail(twin, device).sort("t_s")
    before = detail.filter(pl.col("t_s") < 3600)
    after = detail.filter(pl.col("t_s") > 3600)
    assert after["temp_c"].max() > before["temp_c"].max() + 10.0
    hottest_at = after.filter(pl.col("temp_c") >= 89.0)["t_s"].min()
    assert hottest_at is not None
    late_power = after.filter(pl.col("t_s") > hottest_at + 60)["power_w"].mean()
    assert late_power == pytest.approx(0.5 * before["power_w"].mean(), rel=0.05)


def test_thermal_runaway_heats_until_the_miner_trips() -> None:
    """A runaway miner's temperature climbs past its trip point, then it stops reporting and
    the fleet holds it failed."""
    faults = [
        {
            "kind": "thermal_runaway",
            "facility": "ai",
            "count": 1,
            "start_offset_h": 0.5,
            "rise_c_per_min": 5.0,
            "trip_c": 100.0,
        }
    ]
    twin, _ = _run(faults, hours=2, telemetry={"sample_per_class": 40}, **NO_DETECTION)
    (device,) = _fault_devices(twin)
    detail = _detail(twin, device).sort("t_s")
    assert detail["temp_c"].max() > 95.0
    assert detail["t_s"].max() < 2 * 3600 - 600  # silent after the trip
    assert twin.world.asic_fleet.state[device] == 3  # FAILED


def test_gpu_xid_errors_show_in_the_pool_summary() -> None:
    """GPUs with an XID fault move the error counter of their pool, and only after onset."""
    faults = [
        {
            "kind": "gpu_xid",
            "facility": "ai",
            "gpu_type": "b200",
            "count": 2,
            "errors_per_hour": 120,
            "start_offset_h": 1,
        }
    ]
    twin, _ = _run(faults, **NO_DETECTION)
    summary = twin.recorder.tables["telemetry_summary"]
    b200 = summary.filter((pl.col("class") == "b200") & (pl.col("facility_id") == "ai"))
    assert b200.filter(pl.col("t_s") < 3600)["errors"].sum() == 0
    assert b200.filter(pl.col("t_s") >= 3600)["errors"].sum() > 10
    others = summary.filter(pl.col("class") == "h100_sxm")
    assert others["errors"].sum() == 0


# --------------------------------------------------------------------------- nodes and sites


def test_jobs_on_a_failed_node_resume_from_their_last_checkpoint() -> None:
    """Failing most H100 nodes at ``ai`` mid-run preempts training jobs there; each loses at
    most one checkpoint interval of work per preemption, and the GPUs come back after it."""
    workloads = tiny().workloads.model_dump()
    workloads["demand"]["model_training"]["per_day"] = 200
    faults = [
        {
            "kind": "node_failure",
            "facility": "ai",
            "gpu_type": "h100_sxm",
            "nodes": 6,
            "start_offset_h": 1.5,
            "duration_h": 0.75,
        }
    ]
    twin, result = _run(faults, hours=4, workloads=workloads, **NO_DETECTION)
    checkpoint_s = twin.scenario.workloads.demand["model_training"].checkpoint_interval_s
    jobs = result.jobs.filter(pl.col("type") == "model_training")
    preempted = jobs.filter(pl.col("preemptions") > 0)
    assert preempted.height > 0
    limit = preempted["preemptions"] * checkpoint_s + 1e-6
    assert (preempted["lost_work_s"] <= limit).all()
    site = _rows(result, "ai")
    during = site.filter((pl.col("t_s") >= 5400) & (pl.col("t_s") < 8100))
    assert (during["gpus_failed"] == 48).all()
    assert site.filter(pl.col("t_s") >= 8400)["gpus_failed"].max() == 0


def test_facility_outage_darkens_the_site_and_moves_its_jobs() -> None:
    """During an outage the site draws nothing and holds every device failed; the loop goes
    on and power returns after it."""
    faults = [{"kind": "facility_outage", "facility": "ai", "start_offset_h": 1, "duration_h": 1}]
    _, result = _run(faults, **NO_DETECTION)
    site = _rows(result, "ai")
    during = site.filter((pl.col("t_s") >= 3600) & (pl.col("t_s") < 7200))
    assert (during["power_mining_mw"] == 0).all()
    assert (during["gpus_failed"] == 80).all()
    assert (during["asics_failed"] == 40).all()
    after = site.filter(pl.col("t_s") >= 7800)
    assert after["power_total_mw"].min() > 0
    assert result.timeseries.height == 2 * 36  # every interval recorded


def test_network_partition_keeps_the_last_setpoints() -> None:
    """While the controller cannot reach a site its miners keep their last setpoint (all
    hashing, as built) although prices are so high that the policy wants them asleep; once
    contact is back the command gets through."""
    grid = {"prices": {"kind": "constant", "value": 4000.0}}
    faults = [
        {"kind": "network_partition", "facility": "mine", "start_offset_h": 0, "duration_h": 1}
    ]
    _, cut = _run(faults, grid=grid, **NO_DETECTION)
    _, reachable = _run([], grid=grid, **NO_DETECTION)
    assert _rows(reachable, "mine").filter(pl.col("t_s") >= 600)["asics_active"].max() == 0
    site = _rows(cut, "mine")
    assert (site.filter(pl.col("t_s") < 3600)["asics_active"] == 180).all()
    assert site.filter(pl.col("t_s") >= 4200)["asics_active"].max() == 0


def test_price_feed_gap_settles_at_the_true_price_and_alerts() -> None:
    """A stale feed changes what the controller sees, not what energy costs: the recorded
    price is the real one, and the monitor raises a stale-feed alert at the site."""
    faults = [{"kind": "price_feed_gap", "facility": "mine", "start_offset_h": 1, "duration_h": 1}]
    twin, result = _run(faults)
    assert (_rows(result, "mine")["price_usd_per_mwh"] == 30.0).all()
    alerts = twin.recorder.tables["alerts"].filter(pl.col("detector") == "price_feed_stale")
    assert alerts["facility"].to_list() == [0]
    assert 3600 <= alerts["t_s"][0] <= 3600 + 300


def test_pool_outage_earns_nothing_and_pauses_mining() -> None:
    """While the pool is down the site's mining earns nothing; once the monitor sees no
    accepted shares the site stops mining until the pool is back."""
    faults = [{"kind": "pool_outage", "facility": "mine", "start_offset_h": 1, "duration_h": 1}]
    twin, result = _run(faults)
    site = _rows(result, "mine")
    during = site.filter((pl.col("t_s") >= 3600) & (pl.col("t_s") < 7200))
    assert (during["revenue_mining_usd"] == 0).all()
    assert site.filter(pl.col("t_s") < 3600)["revenue_mining_usd"].min() > 0
    assert during.filter(pl.col("t_s") >= 3900)["asics_active"].max() == 0
    assert site.filter(pl.col("t_s") >= 7500)["asics_active"].min() > 0
    alerts = twin.recorder.tables["alerts"]
    assert alerts.filter(pl.col("detector") == "pool_no_shares").height == 1


def test_the_loop_runs_to_the_end_through_every_fault_kind() -> None:
    """Every kind at once, overlapping: the run records every interval and the ground truth
    lists every incident with its devices."""
    faults = [
        {"kind": "hashboard_failure", "facility": "mine", "count": 3, "start_offset_h": 0.2},
        {"kind": "fan_failure", "facility": "mine", "count": 2, "start_offset_h": 0.4},
        {"kind": "thermal_runaway", "facility": "ai", "count": 1, "start_offset_h": 0.6},
        {"kind": "gpu_xid", "facility": "mine", "count": 2, "start_offset_h": 0.8},
        {
            "kind": "node_failure",
            "facility": "ai",
            "nodes": 2,
            "start_offset_h": 1.0,
            "duration_h": 1,
        },
        {"kind": "network_partition", "facility": "mine", "start_offset_h": 1.2, "duration_h": 0.5},
        {"kind": "facility_outage", "facility": "ai", "start_offset_h": 1.4, "duration_h": 0.5},
        {"kind": "price_feed_gap", "facility": "ai", "start_offset_h": 1.6, "duration_h": 0.5},
        {"kind": "pool_outage", "facility": "mine", "start_offset_h": 1.8, "duration_h": 0.5},
    ]
    twin, result = _run(faults)
    assert result.timeseries.height == 2 * 36
    faults_table = twin.recorder.tables["faults"]
    assert faults_table["fault_id"].n_unique() == len(faults)
    devices = faults_table.group_by("kind").agg(pl.len()).sort("kind")
    counts = dict(zip(devices["kind"], devices["len"], strict=True))
    assert counts["hashboard_failure"] == 3
    assert counts["node_failure"] == 16
    assert counts["facility_outage"] == 1
    assert (faults_table["end_s"] >= faults_table["start_s"]).all()
    assert math.isfinite(faults_table["end_s"].max())
