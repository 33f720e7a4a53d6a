"""Token-bucket rate limiting per key (API key prefix, client address ...), thread-safe.

Each key has a bucket of up to `burst` tokens that refills at `rate_per_s` tokens per second;
a request takes `cost` tokens (1 by default) or is refused with the time until it would fit.

Memory stays bounded: a bucket idle long enough to be full again is indistinguishable
from a fresh one, so it is dropped (lossless); beyond `max_keys` live buckets the least
recently used one is dropped too (that key then starts again with a full bucket).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass


class RateLimitConfigError(ValueError):
    """A rate limiter parameter is out of range."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated_at_s: float


class RateLimiter:
    """Token bucket per key: `allow(key)` -> (allowed, retry_after_s)."""

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        """`rate_per_s` [tokens/s] > 0, `burst` [tokens] >= 1, `clock` [s], `max_keys` >= 1."""
        if not (math.isfinite(rate_per_s) and rate_per_s > 0):
            raise RateLimitConfigError(f"rate_per_s must be finite and > 0, got {rate_per_s}")
        if not (math.isfinite(burst) and burst >= 1):
            raise RateLimitConfigError(f"burst must be finite and >= 1, got {burst}")
        if max_keys < 1:
            raise RateLimitConfigError(f"max_keys must be >= 1, got {max_keys}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        self._refill_full_s = burst / rate_per_s
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()

    def allow(self, key: Hashable, cost: float = 1.0) -> tuple[bool, float]:
        """Take `cost` tokens from `key`'s bucket if it holds them.

        Returns ``(True, 0.0)`` if allowed, else ``(False, retry_after_s)`` with the seconds
        until enough tokens will have refilled. A refused request takes nothing.
        """
        if not (math.isfinite(cost) and 0 < cost <= self.burst):
            raise RateLimitConfigError(f"cost must be in (0, burst={self.burst}], got {cost}")
        with self._lock:
            now_s = self._clock()
            self._evict_idle(now_s)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = _Bucket(tokens=self.burst, updated_at_s=now_s)
                self._buckets[key] = bucket
                while len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
            else:
                elapsed_s = max(0.0, now_s - bucket.updated_at_s)  # a clock step back adds 0
                bucket.tokens = min(self.burst, bucket.tokens + elapsed_s * self.rate_per_s)
                bucket.updated_at_s = max(bucket.updated_at_s, now_s)
                self._buckets.move_to_end(key)
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                return True, 0.0
            return False, (cost - bucket.tokens) / self.rate_per_s

    def _evict_idle(self, now_s: float) -> None:
        """Drop least-recently-used buckets that have refilled completely (amortised O(1))."""
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if now_s - oldest.updated_at_s < self._refill_full_s:
                return
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        """Number of buckets held in memory."""
        with self._lock:
            return len(self._buckets)
