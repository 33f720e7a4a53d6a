"""A driver decorator that times every ``apply`` and hands each command's outcome to a
journal: what operators see as "recent commands" and "switch times".

A switch time is the wall time from sending a batch of commands to having every device's
state read back and verified (the driver's ``apply`` does both), so it is what the seed
PRD's "workload switch < 100 ms" target measures. The wrapped driver is otherwise
untouched: any other attribute (``state_counts``, ``start_polling`` ...) is the inner
driver's, so capability checks such as ``isinstance(driver, ClassCountingAsicDriver)`` see
what the inner driver offers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from drivers.base import ApplyResult, AsicCommand, AsicDriver, CommandResult


@dataclass(frozen=True, slots=True)
class AppliedBatch:
    """One ``apply`` call as the journal sees it.

    Attributes:
        results: each command with its read-back outcome, in order.
        latency_s: wall time from sending to verified read-back, for the whole batch [s].
        t_s: the driver's clock when the batch was applied [s since the loop started].
    """

    results: tuple[CommandResult, ...]
    latency_s: float
    t_s: float


Journal = Callable[[AppliedBatch], None]
"""Receives every applied batch (called on the control loop's thread; keep it short)."""


class JournaledAsicDriver:
    """``inner`` with every ``apply`` timed and reported to ``journal`` (module docstring).

    Args:
        inner: the driver that does the work.
        journal: receives each batch after it is verified.
        clock: wall clock for the latency [s] (monotonic by default).
    """

    def __init__(
        self, inner: AsicDriver, journal: Journal, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.inner = inner
        self._journal = journal
        self._clock = clock

    def apply(self, commands: Sequence[AsicCommand]) -> ApplyResult:
        """The inner driver's ``apply``, timed; the batch goes to the journal."""
        started = self._clock()
        result = self.inner.apply(commands)
        latency_s = self._clock() - started
        self._journal(AppliedBatch(result.results, latency_s, result.t_s))
        return result

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found on the wrapper: the inner driver's.
        return getattr(self.inner, name)
