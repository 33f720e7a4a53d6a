"""Signal pollers: a cached value with its age, stale when the feed stops or fails."""

from __future__ import annotations

import math

import pytest

from twin.signal_poller import SignalPoller


class Clock:
    """A settable wall clock [s]."""

    def __init__(self) -> None:
        self.t_s = 0.0

    def __call__(self) -> float:
        return self.t_s


def test_value_ages_and_goes_stale_when_the_feed_stops() -> None:
    """A good fetch is fresh; with the feed paused it ages with the clock and turns stale
    past max_age_s; resuming refreshes it."""
    clock = Clock()
    values = iter([40.0, 55.0])
    poller = SignalPoller("p", lambda: next(values), 1.0, 5.0, clock)
    poller.poll_once()
    assert poller.latest().value == 40.0 and not poller.latest().stale
    poller.pause()
    clock.t_s = 4.0
    poller.poll_once()
    assert poller.latest().age_s == pytest.approx(4.0) and not poller.latest().stale
    clock.t_s = 6.0
    assert poller.latest().stale and poller.latest().value == 40.0
    poller.pause(False)
    poller.poll_once()
    latest = poller.latest()
    assert latest.value == 55.0 and latest.age_s == 0.0 and not latest.stale


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "x"])
def test_a_failed_fetch_keeps_the_last_good_value_and_says_why(bad) -> None:
    """Garbage or an exception is a failed fetch: the old value stays (and ages), the
    error is reported."""
    clock = Clock()
    replies = iter([30.0, bad])
    poller = SignalPoller("p", lambda: next(replies), 1.0, 5.0, clock)
    poller.poll_once()
    clock.t_s = 2.0
    poller.poll_once()
    latest = poller.latest()
    assert latest.value == 30.0 and latest.age_s == pytest.approx(2.0)
    assert latest.error


def test_before_any_good_fetch_the_value_is_stale_nan() -> None:
    """A feed that never answered is stale with no value."""

    def broken() -> float:
        raise ConnectionError("feed down")

    poller = SignalPoller("p", broken, 1.0, 5.0, Clock())
    poller.poll_once()
    latest = poller.latest()
    assert math.isnan(latest.value) and latest.stale and "feed down" in latest.error


def test_background_thread_polls_until_stopped() -> None:
    """start() fetches at once and keeps fetching on its thread; stop() ends it."""
    calls = []

    def fetch() -> float:
        calls.append(1)
        return 1.0

    poller = SignalPoller("p", fetch, 0.01, 1.0).start()
    try:
        import time

        deadline = time.monotonic() + 2.0
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(calls) >= 3
    finally:
        poller.stop()
    assert not poller._thread.is_alive()


def test_bad_periods_are_rejected() -> None:
    """Non-positive period or age is an error naming the poller."""
    with pytest.raises(ValueError, match="poller q"):
        SignalPoller("q", lambda: 1.0, 0.0, 1.0)
