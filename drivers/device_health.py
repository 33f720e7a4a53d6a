"""Health of one device as a driver sees it: failures in a row, and when to try again.

A device that fails a call (timeout, refused command, malformed reply) is *unhealthy*: the
driver leaves it out of commands until ``retry_at_s``, which backs off exponentially with
the failures in a row (``base_s * 2**(failures - 1)``, capped at ``max_s``). The next call
after that time is the retry; a success makes it healthy again. The control loop never
stops on a device fault: it sees the device as failed and plans without it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class DeviceHealth:
    """Failure bookkeeping for one device.

    Attributes:
        failures: consecutive failed calls [-].
        retry_at_s: earliest time to try an unhealthy device again [s, driver clock].
        last_error: text of the last failure ("" when healthy).
    """

    failures: int = 0
    retry_at_s: float = 0.0
    last_error: str = ""

    @property
    def healthy(self) -> bool:
        """No failure since the last success."""
        return self.failures == 0

    def due(self, now_s: float) -> bool:
        """Whether the device may be called now: healthy, or its retry time has come."""
        return self.failures == 0 or now_s >= self.retry_at_s

    def succeeded(self) -> None:
        """A call went through: healthy again."""
        self.failures = 0
        self.retry_at_s = 0.0
        self.last_error = ""

    def hold(self, until_s: float, reason: str) -> None:
        """Keep the device out of calls until ``until_s`` [s] (quarantined after a health
        alert); the first call after that is its retry, as after a failure."""
        self.failures = max(1, self.failures)
        self.retry_at_s = max(self.retry_at_s, until_s)
        self.last_error = reason

    def failed(self, now_s: float, error: str, base_s: float, max_s: float) -> None:
        """A call failed at ``now_s`` [s]: back off before the next try."""
        self.failures += 1
        self.last_error = error
        self.retry_at_s = now_s + min(max_s, base_s * 2.0 ** (self.failures - 1))
