"""Anomaly detectors on device residuals: Shewhart limits, EWMA, CUSUM and IsolationForest.

A residual is a reading minus what the healthy physics model predicts for it, divided by
the reading noise: ``z`` is standard normal for a healthy device. Per dispatch interval the
health monitor feeds each device's interval-mean ``z``:

* **Shewhart**: ``|z|`` beyond ``limit`` (one-sided where the fault direction is known) —
  catches steps (a hashboard lost, a fan stopped);
* **EWMA** across intervals, ``e = lambda z + (1 - lambda) e``, beyond
  ``limit * sqrt(lambda / (2 - lambda))`` — catches slow drifts;
* **CUSUM** over one flagged device's individual readings dates the onset: the first reading
  where ``S = max(0, S + z - k)`` passes ``h``;
* **IsolationForest** (scikit-learn) on per-device feature vectors, trained on healthy
  intervals, scores how isolated a vector is. Its splits are drawn inside the training
  range, so the score saturates for vectors far outside it: a good ranking near the healthy
  cloud, not a limit for extreme residuals (Shewhart and EWMA are).

Pure numpy apart from the forest; no state beyond what the classes hold.
"""

from __future__ import annotations

import math

import numpy as np


def shewhart_flags(z: np.ndarray, limit: float, direction: int = 0) -> np.ndarray:
    """Out-of-control flags: ``z > limit`` (direction 1), ``z < -limit`` (-1), or ``|z| >
    limit`` (0)."""
    if direction > 0:
        return z > limit
    if direction < 0:
        return z < -limit
    return np.abs(z) > limit


class Ewma:
    """EWMA of per-device ``z`` across intervals, one statistic per field and device
    (``[fields, devices]``)."""

    def __init__(self, n_devices: int, n_fields: int, weight: float) -> None:
        self.value = np.zeros((n_fields, n_devices), dtype=np.float32)
        self.weight = float(weight)
        self.sigma = math.sqrt(weight / (2.0 - weight))
        """Standard deviation of the statistic of a healthy device [-]."""

    def update(self, mask: np.ndarray | None, z: np.ndarray) -> np.ndarray:
        """Fold ``z`` (``[fields, devices]``) into the devices where ``mask`` is True (None:
        all; the others keep their statistic); return the statistics (a view, in ``z``
        units: divide by :attr:`sigma` for standard units)."""
        step = z - self.value
        step *= np.float32(self.weight)
        if mask is not None:
            step[:, ~mask] = 0.0
        self.value += step
        return self.value

    def reset(self, rows: np.ndarray) -> None:
        """Forget ``rows`` (a repaired device starts afresh)."""
        self.value[:, rows] = 0.0


def cusum_first_crossing(z: np.ndarray, k: float, h: float) -> np.ndarray:
    """Index of the first reading where the one-sided CUSUM of each row of ``z``
    (``[devices, readings]``, oriented so that the fault direction is positive) exceeds
    ``h``; -1 where it never does."""
    stat = np.zeros(z.shape[0])
    first = np.full(z.shape[0], -1, dtype=np.int64)
    for i in range(z.shape[1]):
        stat = np.maximum(0.0, stat + z[:, i] - k)
        first = np.where((first < 0) & (stat > h), i, first)
    return first


class IsolationScorer:
    """IsolationForest on healthy feature vectors.

    The outlier threshold is the ``quantile`` of the training scores (``score_samples``:
    lower is more anomalous), so about that share of healthy vectors is flagged.
    """

    def __init__(self, seed: int, quantile: float = 0.001, n_estimators: int = 50) -> None:
        self.seed = int(seed)
        self.quantile = float(quantile)
        self.n_estimators = int(n_estimators)
        self.threshold: float | None = None
        self._forest: object | None = None

    @property
    def fitted(self) -> bool:
        """True once :meth:`fit` has run."""
        return self._forest is not None

    def fit(self, features: np.ndarray) -> None:
        """Train on ``[samples, features]`` of healthy devices."""
        from sklearn.ensemble import IsolationForest  # heavy import: only when used

        forest = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed)
        forest.fit(features)
        self._forest = forest
        self.threshold = float(np.quantile(forest.score_samples(features), self.quantile))

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Anomaly score per row (lower is more anomalous); needs :meth:`fit` first."""
        if self._forest is None:
            raise RuntimeError("IsolationScorer.scores: call fit first")
        return np.asarray(self._forest.score_samples(features))  # type: ignore[attr-defined]

    def outliers(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(flags, scores) for ``features``; flags are scores below the threshold."""
        scores = self.scores(features)
        return scores < float(self.threshold or -math.inf), scores
