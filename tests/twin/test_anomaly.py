"""Anomaly detection: the statistical detectors, the scoring against ground truth, and the
monitor end to end (alerts name the faulted devices, the controller takes them out)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from models.anomaly import Ewma, IsolationScorer, cusum_first_crossing, shewhart_flags
from twin.anomaly_score import FAULT_SCHEMA, score_alerts
from twin.engine import build
from twin.health import ALERT_SCHEMA

from .fault_scenarios import tiny


def test_shewhart_flags_respect_the_fault_direction() -> None:
    """One-sided limits flag only their side; two-sided either."""
    z = np.array([-9.0, -1.0, 0.0, 8.0])
    assert shewhart_flags(z, 7, -1).tolist() == [True, False, False, False]
    assert shewhart_flags(z, 7, 1).tolist() == [False, False, False, True]
    assert shewhart_flags(z, 7, 0).tolist() == [True, False, False, True]


def test_ewma_of_healthy_noise_has_its_stated_sigma_and_skips_masked_rows() -> None:
    """Fed standard normal noise, the EWMA divided by its sigma is ~standard normal; rows
    outside the mask keep their statistic."""
    rng = np.random.default_rng(11)
    ewma = Ewma(20_000, 1, 0.2)
    for _ in range(60):
        value = ewma.update(None, rng.standard_normal((1, 20_000)))
    scaled = value / ewma.sigma
    assert abs(float(scaled.std()) - 1.0) < 0.05
    before = ewma.value.copy()
    mask = np.zeros(20_000, dtype=bool)
    mask[:10] = True
    ewma.update(mask, np.full((1, 20_000), 5.0))
    assert np.array_equal(ewma.value[:, 10:], before[:, 10:])
    assert (ewma.value[:, :10] != before[:, :10]).all()


def test_cusum_dates_a_step_at_or_just_after_it() -> None:
    """A shift of 3 sigma from reading 40 is caught within a few readings of 40; pure noise
    of the same length is not caught."""
    rng = np.random.default_rng(5)
    noise = rng.standard_normal((200, 100))
    shifted = noise.copy()
    shifted[:, 40:] += 3.0
    first = cusum_first_crossing(shifted, 0.5, 8.0)
    assert (first >= 40).mean() > 0.99
    assert np.median(first) <= 45
    assert (cusum_first_crossing(noise, 0.5, 8.0) < 0).mean() > 0.95


def test_isolation_forest_ranks_far_vectors_as_more_anomalous() -> None:
    """Trained on healthy residuals, the forest scores a far vector below 99 % of its
    training points, flags it, and flags about its quantile of the training points."""
    rng = np.random.default_rng(2)
    healthy = rng.standard_normal((4000, 3))
    scorer = IsolationScorer(seed=1, quantile=0.01)
    scorer.fit(healthy)
    flags, scores = scorer.outliers(np.array([[-40.0, 30.0, 0.0], [0.1, -0.2, 0.3]]))
    assert flags.tolist() == [True, False]
    assert scores[0] < np.quantile(scorer.scores(healthy), 0.01) < scores[1]
    assert 0.005 < scorer.outliers(healthy)[0].mean() < 0.02


def _frame(rows: list[tuple], schema: dict) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema, orient="row")


def test_scoring_follows_its_definitions() -> None:
    """Matched alerts over alerts is precision; faults with a matched alert over faults that
    started early enough is recall; the delay is the first matched alert after onset."""
    from datetime import UTC, datetime

    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    nan = math.nan
    faults = _frame(
        [
            (0, "hashboard_failure", "declared", 0, "a", "asic", 5, 100.0, 900.0, t0),
            (0, "hashboard_failure", "declared", 0, "a", "asic", 6, 100.0, 900.0, t0),
            (1, "pool_outage", "declared", 1, "b", "site", -1, 1000.0, 2000.0, t0),
            (2, "fan_failure", "declared", 0, "a", "asic", 9, 3000.0, 3600.0, t0),
            (3, "fan_failure", "declared", 0, "a", "asic", 1, 9900.0, 9999.0, t0),  # too late
        ],
        FAULT_SCHEMA,
    )
    alerts = _frame(
        [
            (130.0, 0, "asic", 6, "shewhart", "hashrate_ths", 50.0, -0.6),  # fault 0, delay 30
            (160.0, 0, "asic", 5, "shewhart", "hashrate_ths", 50.0, -0.6),  # fault 0
            (1060.0, 1, "site", -1, "pool_no_shares", "accepted_shares", 0.0, nan),  # delay 60
            (1500.0, 0, "asic", 7, "ewma", "temp_c", 7.0, -0.5),  # no fault on device 7
            (2500.0, 1, "site", -1, "pool_no_shares", "accepted_shares", 0.0, nan),  # late
        ],
        ALERT_SCHEMA,
    )
    score = score_alerts(alerts, faults, run_end_s=10_000.0, grace_s=330.0)
    assert score["precision"] == pytest.approx(3 / 5)
    assert score["recall"] == pytest.approx(2 / 3)
    assert score["detection_delay_p50_s"] == pytest.approx(45.0)
    assert score["by_kind"]["fan_failure"] == {"faults": 1, "detected": 0}


def test_no_faults_no_alerts_over_a_day() -> None:
    """A healthy fleet for a day raises no alert (no false positives at the default
    limits), so detection never changes a healthy run."""
    twin = build(tiny(hours=24, telemetry={"sample_per_class": 2}))
    result = twin.run()
    assert twin.recorder.tables["alerts"].height == 0
    assert result.kpis["anomaly"]["precision"] is None


def test_monitor_finds_injected_faults_and_takes_devices_out() -> None:
    """Device and site faults on the tiny fleet are detected with precision and recall of at
    least 0.9 and a median delay within 5 simulated minutes (computed from the run's alerts
    against its ground truth); alerted devices are out of service until repaired."""
    faults = [
        {"kind": "hashboard_failure", "facility": "mine", "count": 4, "start_offset_h": 0.52},
        {
            "kind": "fan_failure",
            "facility": "mine",
            "model": "antminer_s21",
            "count": 3,
            "start_offset_h": 1.13,
        },
        {"kind": "thermal_runaway", "facility": "ai", "count": 1, "start_offset_h": 1.4},
        {"kind": "gpu_xid", "facility": "ai", "count": 2, "start_offset_h": 1.7},
        {
            "kind": "node_failure",
            "facility": "ai",
            "nodes": 1,
            "start_offset_h": 2.1,
            "duration_h": 0.5,
        },
        {"kind": "network_partition", "facility": "mine", "start_offset_h": 2.6, "duration_h": 0.3},
        {"kind": "pool_outage", "facility": "ai", "start_offset_h": 3.1, "duration_h": 0.3},
    ]
    twin = build(tiny(faults, hours=4, telemetry={"sample_per_class": 2}))
    result = twin.run()
    score = result.kpis["anomaly"]
    assert score["faults"] == len(faults)
    assert score["precision"] >= 0.9
    assert score["recall"] >= 0.9
    assert score["detection_delay_p50_s"] <= 300.0
    alerts = twin.recorder.tables["alerts"]
    hashboards = twin.recorder.tables["faults"].filter(pl.col("fault_id") == 0)
    asic_alerts = alerts.filter(pl.col("target") == "asic")
    alerted = asic_alerts["device"].to_list()
    scored = asic_alerts.filter(pl.col("t_s") >= 3600)  # the forest trains for an hour
    assert scored.height and scored["iforest_score"].is_not_nan().all()
    assert set(hashboards["device"].to_list()) <= set(alerted)
    injector = twin.health.injector
    assert injector.asic_excluded[hashboards["device"].to_numpy()].all()
    ends = hashboards["end_s"].to_numpy()
    assert np.isfinite(ends).all() and (ends <= 4 * 3600).all()
    assert not math.isnan(score["detection_delay_p50_s"])


def test_live_metrics_count_alerts_by_detector() -> None:
    """The Prometheus counter of health alerts adds up per facility, detector and target."""
    from prometheus_client import generate_latest

    from twin.live_metrics import LiveMetrics

    metrics = LiveMetrics()
    metrics.record_alerts([("mine", "xid", "gpu"), ("mine", "xid", "gpu"), ("ai", "ewma", "asic")])
    text = generate_latest(metrics.registry).decode()
    assert 'hcp_health_alerts_total{detector="xid",facility="mine",target="gpu"} 2.0' in text
    assert 'hcp_health_alerts_total{detector="ewma",facility="ai",target="asic"} 1.0' in text
