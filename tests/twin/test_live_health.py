"""Health checks and telemetry on live driver readings (twin.live_health)."""

from __future__ import annotations

import numpy as np

from drivers.base import AsicReadings
from models.fleet_physics import AsicState
from twin.live_health import (
    CONSECUTIVE_TICKS,
    SILENT_TICKS,
    LiveHealthCheck,
    LiveTelemetry,
    class_median_ratio,
)

N = 6


def _readings(hashrate: list[float], power: list[float] | None = None) -> AsicReadings:
    """Six miners of one class at one facility, all hashing."""
    power_w = np.asarray(power if power is not None else [3000.0] * N, dtype=float)
    return AsicReadings(
        t_s=0.0,
        model_ids=("antminer_s19j_pro",),
        facility=np.zeros(N, dtype=np.int16),
        model=np.zeros(N, dtype=np.int16),
        state=np.full(N, AsicState.ACTIVE, dtype=np.int8),
        power_fraction=np.ones(N),
        power_w=power_w,
        hashrate_ths=np.asarray(hashrate, dtype=float),
        temp_c=np.full(N, 60.0),
        device_ids=tuple(f"10.0.0.{i}" for i in range(N)),
    )


def test_a_low_miner_alerts_once_after_consecutive_ticks_and_again_after_recovering() -> None:
    """Miner 2 at 60 % of its class for CONSECUTIVE_TICKS ticks alerts once; back to normal
    and low again, it alerts a second time; its healthy neighbours never do."""
    check = LiveHealthCheck()
    low = _readings([100, 100, 60, 100, 100, 100])
    fired = [check.observe(low, float(t)) for t in range(CONSECUTIVE_TICKS + 3)]
    assert [len(f) for f in fired].count(1) == 1 and sum(len(f) for f in fired) == 1
    assert fired[CONSECUTIVE_TICKS - 1][0].device_id == "10.0.0.2"
    assert fired[CONSECUTIVE_TICKS - 1][0].score == 0.6
    check.observe(_readings([100.0] * N), 10.0)
    again = [check.observe(low, 11.0 + t) for t in range(CONSECUTIVE_TICKS)]
    assert sum(len(f) for f in again) == 1 and len(check.alerts) == 2


def test_miners_ramping_together_are_not_anomalies() -> None:
    """The whole class at 10 %, then 50 %, then full hashrate (a wake-up ramp) raises
    nothing: each is compared with its class median."""
    check = LiveHealthCheck()
    for level in (10.0, 50.0, 100.0, 100.0):
        assert not check.observe(_readings([level] * N), 0.0)


def test_a_silent_miner_alerts_after_silent_ticks() -> None:
    """A miner reporting neither power nor hashrate alerts once after SILENT_TICKS ticks."""
    check = LiveHealthCheck()
    nan = float("nan")
    silent = _readings([100, 100, 100, nan, 100, 100], [3000, 3000, 3000, nan, 3000, 3000])
    fired = [a for t in range(SILENT_TICKS + 2) for a in check.observe(silent, float(t))]
    assert [(a.device_id, a.signal) for a in fired] == [("10.0.0.3", "silent")]


def test_small_classes_have_no_reference() -> None:
    """With fewer than three hashing miners in a class no ratio is computed."""
    readings = _readings([100, 50, 100, 100, 100, 100])
    state = np.full(N, AsicState.SLEEPING, dtype=np.int8)
    state[:2] = AsicState.ACTIVE
    sparse = AsicReadings(
        **{**{f: getattr(readings, f) for f in readings.__slots__}, "state": state}
    )
    assert np.isnan(class_median_ratio(sparse)).all()


def test_telemetry_summarises_each_tick_and_keeps_a_sample() -> None:
    """Per tick and class: miners, hashing, summed power and hashrate; one sampled miner's
    readings in full."""
    telemetry = LiveTelemetry(sample_per_class=1)
    for t in range(3):
        telemetry.observe(_readings([100.0 + t] * N), float(t), ["lab"])
    summary = telemetry.summary()
    assert summary.height == 3 and set(summary["miners"]) == {N}
    assert summary["hashrate_ths"].to_list() == [600.0, 606.0, 612.0]
    assert summary["power_w"].to_list() == [3000.0 * N] * 3
    detail = telemetry.detail()
    assert detail.height == 3 and set(detail["device_id"]) == {"10.0.0.0"}
