"""Live signals: a background poller per feed, with a cached value, its age and a stale flag.

In live mode the control loop must never block on a price feed. Each :class:`SignalPoller`
fetches its source on its own thread every ``period_s`` and caches the last good value with
the wall time it was fetched; the loop reads :meth:`SignalPoller.latest` instantly. A value
older than ``max_age_s`` (the feed stopped answering, or returned garbage) is *stale*: the
controller then switches to its conservative policy. Without a live feed configured, the
source is the scenario's own signal replayed in real time (``t_s`` of the live clock).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CachedValue:
    """The last good value of a feed.

    Attributes:
        value: the value (NaN before the first good fetch).
        age_s: wall seconds since it was fetched (inf before the first) [s].
        stale: older than the poller's ``max_age_s``.
        error: the last fetch error ("" if the last fetch was good).
    """

    value: float
    age_s: float
    stale: bool
    error: str = ""


class SignalPoller:
    """Polls ``fetch()`` on a daemon thread and caches the result.

    Args:
        name: feed name (thread name and messages).
        fetch: returns the current value; may raise or return a non-finite number, which
            counts as a failed fetch (the old value is kept and ages).
        period_s: time between fetches [s].
        max_age_s: a value older than this is stale [s].
        clock: wall clock [s].
    """

    def __init__(
        self,
        name: str,
        fetch: Callable[[], float],
        period_s: float,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (period_s > 0 and max_age_s > 0):
            raise ValueError(f"poller {name}: period_s and max_age_s must be > 0")
        self.name = name
        self.fetch = fetch
        self.period_s = period_s
        self.max_age_s = max_age_s
        self.clock = clock
        self._lock = threading.Lock()
        self._value = math.nan
        self._fetched_at = -math.inf
        self._error = ""
        self._paused = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"poll-{name}", daemon=True)

    def start(self) -> SignalPoller:
        """Fetch once now (so the first tick has a value when the feed works), then poll in
        the background; returns self."""
        self.poll_once()
        self._thread.start()
        return self

    def poll_once(self) -> None:
        """One fetch; a failure keeps the old value and records the error."""
        if self._paused.is_set():
            return
        try:
            value = float(self.fetch())
            if not math.isfinite(value):
                raise ValueError(f"not a finite number: {value}")
        except Exception as error:  # any feed failure: keep the last good value
            with self._lock:
                self._error = f"{type(error).__name__}: {error}"
            return
        with self._lock:
            self._value = value
            self._fetched_at = self.clock()
            self._error = ""

    def latest(self) -> CachedValue:
        """The cached value, its age and whether it is stale (never blocks on the feed)."""
        with self._lock:
            age = self.clock() - self._fetched_at
            return CachedValue(self._value, age, not age <= self.max_age_s, self._error)

    def pause(self, paused: bool = True) -> None:
        """Stop (or restart) fetching, as when a feed goes silent (for drills and tests)."""
        if paused:
            self._paused.set()
        else:
            self._paused.clear()

    def stop(self) -> None:
        """Stop the thread (waits up to one period)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.period_s + 1.0)

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self.poll_once()
