"""Failure bookkeeping of one device: back-off after failures and holds after alerts."""

from __future__ import annotations

from drivers.device_health import DeviceHealth


def test_a_hold_keeps_the_device_out_until_its_time_then_a_success_clears_it() -> None:
    """A held device is unhealthy and not due before the hold ends, due after; a later
    failure's shorter back-off does not shorten the hold; a success makes it healthy."""
    health = DeviceHealth()
    health.hold(100.0, "quarantined: hashrate_low")
    assert not health.healthy and health.last_error.startswith("quarantined")
    assert not health.due(99.9) and health.due(100.0)
    health.hold(50.0, "again")
    assert not health.due(99.0)  # an earlier hold never shortens the current one
    health.succeeded()
    assert health.healthy and health.due(0.0) and health.last_error == ""


def test_failures_back_off_exponentially_up_to_the_cap() -> None:
    """Each failure in a row doubles the wait, capped at max_s."""
    health = DeviceHealth()
    waits = []
    for _ in range(5):
        health.failed(0.0, "timeout", base_s=1.0, max_s=5.0)
        waits.append(health.retry_at_s)
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
