"""What the scheduler is told about each site every interval: energy cost and deferral.

* **Energy cost** of one GPU-hour in each pool [USD/GPU-h]: the site's price times its AI
  PUE times the GPU type's board power. The router sends work that can go anywhere to the
  cheapest site.
* **Deferral**: deferrable work (batch inference, training) waits at a site while its price
  is above both ``min_price_usd_per_mwh`` and the ``price_quantile`` of the prices the site
  saw over the last ``lookback_h`` (the scheduler still starts a job whose deadline would
  otherwise be missed). Only prices already observed are used, so it works live as well.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from optimizer.pools import Pool
from optimizer.types import Snapshot
from twin.scenario_scheduling import Deferral

MIN_HISTORY = 12
"""Observed intervals needed before a site may defer work [-]."""


class SiteConditions:
    """Per-pool energy cost and deferral flags from the prices seen so far.

    Args:
        pools: the scheduler's pools.
        gpu_kw_by_type: board power per GPU type index [kW].
        deferral: the scenario's deferral rules.
        interval_s: dispatch interval [s].
    """

    def __init__(
        self,
        pools: Sequence[Pool],
        gpu_kw_by_type: dict[int, float],
        deferral: Deferral,
        interval_s: float,
    ) -> None:
        self.pools = list(pools)
        self.deferral = deferral
        self._gpu_kw = np.array(
            [gpu_kw_by_type.get(p.gpu_type, 0.0) if p.is_gpu else 0.0 for p in self.pools]
        )
        self._facility = np.array([p.facility for p in self.pools], dtype=np.int64)
        self._deferrable_pool = np.array([p.is_gpu for p in self.pools])
        window = max(1, round(deferral.lookback_h * 3600.0 / interval_s))
        self._history: list[deque[float]] = []
        self._window = window

    def update(self, snapshot: Snapshot) -> tuple[np.ndarray, np.ndarray]:
        """Record this interval's prices; return (energy cost per pool [USD/GPU-h],
        deferral flag per pool)."""
        facilities = snapshot.facilities
        if not self._history:
            self._history = [deque(maxlen=self._window) for _ in facilities]
        price = np.array([f.price_usd_per_mwh for f in facilities])
        pue = np.array([f.pue_ai for f in facilities])
        deferred_site = np.zeros(len(facilities), dtype=bool)
        for f, history in enumerate(self._history):
            if self.deferral.enabled and len(history) >= MIN_HISTORY:
                threshold = float(
                    np.quantile(np.fromiter(history, float), self.deferral.price_quantile)
                )
                deferred_site[f] = price[f] > max(threshold, self.deferral.min_price_usd_per_mwh)
            history.append(float(price[f]))
        energy = price[self._facility] * pue[self._facility] * self._gpu_kw / 1000.0
        deferred = deferred_site[self._facility] & self._deferrable_pool
        return energy, deferred
