"""The health monitor: telemetry in bulk, anomaly detection, alerts and the controller's
response, once per dispatch interval.

Telemetry (:mod:`models.telemetry`): every reporting device's interval mean of its readings at
the PRD rates (ASIC every ``asic_interval_s``, GPU every ``gpu_interval_s``), one noise value
per device and field (from a seeded :class:`models.telemetry.NoisePool`); every reading of a
deterministic sample of devices (``sample_per_class`` per facility and class) for
``telemetry.parquet``; per facility and class sums, means and maxima for
``telemetry_summary.parquet``.

Detection (:mod:`models.anomaly`) on residuals against the healthy physics model:

* ``shewhart`` / ``ewma``: a miner's hashrate below, temperature above, or power away from
  the model; a GPU's temperature or power away from it. The alert is dated by a CUSUM over
  the device's individual readings (first crossing), or the interval's end;
* ``xid``: a GPU error counter moved (healthy GPUs log no uncorrectable errors), dated at the
  first error;
* ``unreachable``: a device silent for ``heartbeat_timeout_s``; ``site_unreachable`` /
  ``site_power_lost``: a whole site silent (the site meter says whether it still draws);
* ``price_feed_stale``: a price update missed by ``price_stale_after_s``;
* ``pool_no_shares``: a site hashing without an accepted share for ``share_timeout_s``;
* every residual alert carries ``iforest_score``: an IsolationForest trained on the healthy
  residual vectors of the first intervals scores the alerted device's vector (lower is more
  anomalous; for triage). The forest is not a detector of its own: its splits lie inside
  the training range, so scores saturate for vectors far outside it and a limit low enough
  to spare healthy devices misses the faults.

Response: an alerted device is excluded (out of service; a GPU's jobs are drained by the
scheduler's preemption path) until repaired ``repair_s`` later; a site whose pool stopped
accepting shares stops mining until the pool is back. Each site alert is raised once per
episode; each device alert once until the device is repaired.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from models.anomaly import Ewma, IsolationScorer, cusum_first_crossing, shewhart_flags
from models.asic_fleet import AsicFleet
from models.fleet_physics import ASIC_THERMAL_TIME_CONSTANT_S, GPU_THERMAL_TIME_CONSTANT_S
from models.gpu_fleet import GpuFleet
from models.telemetry import (
    NOISE,
    NoisePool,
    group_summary,
    lagged_mean,
    lagged_profile,
    noisy_readings,
    reading_offsets_s,
    sample_rows,
)
from twin.fault_injection import FaultInjector
from twin.scenario_faults import Detection, Telemetry

ASIC_FIELDS = ("hashrate_ths", "temp_c", "power_w")
ASIC_DIRECTIONS = np.array([-1, 1, 0])
"""Fault direction per ASIC field: hashrate falls, temperature rises, power either way."""
GPU_FIELDS = ("temp_c", "power_w")
GPU_DIRECTIONS = np.array([1, 0])
IFOREST_WARMUP_INTERVALS = 12
IFOREST_TRAINING_ROWS = 8192

NOISE_POOL_MIN = 1 << 20
NOISE_POOL_FACTOR = 8
"""The noise pool holds this many times the largest fleet's (devices x fields) values."""

ALERT_SCHEMA: dict[str, pl.DataType] = {
    "t_s": pl.Float64(),
    "facility": pl.Int64(),
    "target": pl.Utf8(),
    "device": pl.Int64(),
    "detector": pl.Utf8(),
    "signal": pl.Utf8(),
    "score": pl.Float64(),
    "iforest_score": pl.Float64(),
}
"""Columns of ``alerts.parquet``: when [s], where (facility index, ``asic``/``gpu``/``site``,
fleet row or -1 for a site), which detector, on which signal, its statistic, and the
IsolationForest score of the device's residual vector (NaN when not scored)."""


@dataclass(slots=True)
class _Fleet:
    """Per-target constants and state of the monitor (ASICs or GPUs)."""

    target: str
    fields: tuple[str, ...]
    directions: np.ndarray
    offsets_s: np.ndarray
    tau_s: float
    sigma: np.ndarray
    """Noise of one reading per field and device, ``[fields, devices]`` (fields first: each
    field's row is contiguous for the whole-fleet arithmetic)."""
    group_start: np.ndarray
    """First row of each (facility, class) group, plus the device count at the end."""
    group_names: list[tuple[int, str]]
    temp_prev: np.ndarray
    ewma: Ewma
    sample: np.ndarray
    scorer: IsolationScorer | None
    training: list[np.ndarray] = field(default_factory=list)
    se: np.ndarray = field(init=False)
    """Noise of a device's interval mean per field, ``sigma / sqrt(readings)``."""
    signs: np.ndarray = field(init=False)
    """Fault direction per field with 0 read as +1 (orients ``z`` for ranking)."""

    def __post_init__(self) -> None:
        self.se = (self.sigma / math.sqrt(self.offsets_s.size)).astype(np.float32)
        self.signs = np.where(self.directions == 0, 1, self.directions).astype(np.float32)

    def beyond(self, values: np.ndarray, limit: float) -> np.ndarray:
        """Devices where any field of ``values`` (``[fields, devices]``) passes ``limit`` in
        its fault direction (both ways for two-sided fields)."""
        flags = np.zeros(values.shape[1], dtype=bool)
        for i, direction in enumerate(self.directions.tolist()):
            flags |= shewhart_flags(values[i], limit, direction)
        return flags


class HealthMonitor:
    """Telemetry, detection and response for one simulated world."""

    def __init__(
        self,
        asic_fleet: AsicFleet,
        gpu_fleet: GpuFleet,
        injector: FaultInjector,
        telemetry: Telemetry,
        detection: Detection,
        rng: np.random.Generator,
        interval_s: float,
    ) -> None:
        self.asic_fleet = asic_fleet
        self.gpu_fleet = gpu_fleet
        self.injector = injector
        self.telemetry = telemetry
        self.detection = detection
        self.rng = rng
        self.interval_s = interval_s
        n_facilities = injector.n_facilities
        self.mining_paused = np.zeros(n_facilities, dtype=bool)
        self._site_open: set[tuple[str, int]] = set()
        self._alerts: list[tuple[float, int, str, int, str, str, float, float]] = []
        self._detail: list[dict[str, np.ndarray]] = []
        self._summary: list[dict[str, Any]] = []
        seeds = rng.integers(0, 2**31 - 1, size=2).tolist()
        model = asic_fleet.model.astype(np.int64)
        nameplate_w = np.array([m.power_w for m in asic_fleet.models])[model]
        nameplate_ths = np.array([m.hashrate_ths for m in asic_fleet.models])[model]
        self.asic = _Fleet(
            target="asic",
            fields=ASIC_FIELDS,
            directions=ASIC_DIRECTIONS,
            offsets_s=reading_offsets_s(interval_s, telemetry.asic_interval_s),
            tau_s=ASIC_THERMAL_TIME_CONSTANT_S,
            sigma=np.vstack(
                [
                    NOISE.hashrate_fraction * nameplate_ths,
                    np.full(model.size, NOISE.temp_c),
                    NOISE.power_fraction * nameplate_w,
                ]
            ),
            group_start=np.asarray(asic_fleet.class_start, dtype=np.int64),
            group_names=[
                (int(f), asic_fleet.models[int(m)].model_id)
                for f, m in zip(asic_fleet.class_facility, asic_fleet.class_model, strict=True)
            ],
            temp_prev=asic_fleet.temp_c.copy(),
            ewma=Ewma(model.size, len(ASIC_FIELDS), detection.ewma_lambda),
            sample=sample_rows(np.asarray(asic_fleet.class_start), telemetry.sample_per_class),
            scorer=self._scorer(seeds[0]),
        )
        gpu_type = gpu_fleet.type.astype(np.int64)
        tdp_w = np.array([t.tdp_w for t in gpu_fleet.types])[gpu_type]
        self.gpu = _Fleet(
            target="gpu",
            fields=GPU_FIELDS,
            directions=GPU_DIRECTIONS,
            offsets_s=reading_offsets_s(interval_s, telemetry.gpu_interval_s),
            tau_s=GPU_THERMAL_TIME_CONSTANT_S,
            sigma=np.vstack([np.full(gpu_type.size, NOISE.temp_c), NOISE.power_fraction * tdp_w]),
            group_start=np.asarray(gpu_fleet.pool_start, dtype=np.int64),
            group_names=[
                (int(f), gpu_fleet.types[int(t)].type_id)
                for f, t in zip(gpu_fleet.pool_facility, gpu_fleet.pool_type, strict=True)
            ],
            temp_prev=gpu_fleet.temp_c.copy(),
            ewma=Ewma(gpu_type.size, len(GPU_FIELDS), detection.ewma_lambda),
            sample=sample_rows(np.asarray(gpu_fleet.pool_start), telemetry.sample_per_class),
            scorer=self._scorer(seeds[1]),
        )
        self._intervals = 0
        largest = max(self.asic.sigma.size, self.gpu.sigma.size)
        self.noise = NoisePool(rng, max(NOISE_POOL_MIN, NOISE_POOL_FACTOR * largest))

    def _scorer(self, seed: int) -> IsolationScorer | None:
        wanted = self.detection.enabled and self.detection.isolation_forest
        return IsolationScorer(seed) if wanted else None

    # ---------------------------------------------------------------- the interval

    def end_interval(self, t0_s: float, dt_s: float, site_hashrate_ths: np.ndarray) -> None:
        """Telemetry and detection for ``[t0_s, t0_s + dt_s)`` after the world stepped;
        ``site_hashrate_ths`` is each facility's mean hashrate in it [TH/s]."""
        t1_s = t0_s + dt_s
        site_silent = np.array(
            [self.injector.site_silent_since(f, t1_s) for f in range(self.injector.n_facilities)]
        )
        if self.telemetry.enabled:
            asic_out, gpu_out = self.injector.out_of_service()
            self._devices(self.asic, t0_s, dt_s, asic_out, site_silent)
            self._devices(self.gpu, t0_s, dt_s, gpu_out, site_silent)
        if self.detection.enabled:
            self._sites(t0_s, t1_s, site_silent, site_hashrate_ths)
        self._intervals += 1

    def _readings_now(self, fleet: _Fleet) -> tuple[np.ndarray, ...]:
        """End-of-interval healthy readings per field of ``fleet`` (read-only float32 views
        of the fleet's columns)."""
        if fleet.target == "asic":
            f = self.asic_fleet
            return f.hashrate_ths, f.temp_c, f.power_w
        g = self.gpu_fleet
        return g.temp_c, g.power_w

    def _devices(
        self,
        fleet: _Fleet,
        t0_s: float,
        dt_s: float,
        out: np.ndarray,
        site_silent: np.ndarray,
    ) -> None:
        """One fleet's interval: means, summary, detection, sampled detail. Whole-fleet
        arrays with a ``reporting`` mask (no gathers over the fleet)."""
        t1_s = t0_s + dt_s
        end = self._readings_now(fleet)
        temp_index = fleet.fields.index("temp_c")
        expected = np.empty(fleet.sigma.shape, dtype=np.float32)
        for i in range(len(fleet.fields)):
            expected[i] = end[i]
        expected[temp_index] = lagged_mean(
            fleet.temp_prev, end[temp_index], fleet.offsets_s, dt_s, fleet.tau_s
        )
        facility = (self.asic_fleet if fleet.target == "asic" else self.gpu_fleet).facility
        silent_since = (
            self.injector.asic_silent_since_s
            if fleet.target == "asic"
            else self.injector.gpu_silent_since_s
        )
        site_cut = ~np.isnan(site_silent)
        silent_all_interval = silent_since <= t0_s  # NaN compares False: still reporting
        reporting = ~out & ~silent_all_interval
        if site_cut.any():
            reporting &= ~site_cut[facility]
        z = self.noise.draw(expected.shape)
        window = self.injector.window if fleet.target == "asic" else None
        if window is not None:
            rows = window.devices
            true_mean = np.vstack(
                [window.hashrate_ths.mean(1), window.temp_c.mean(1), window.power_w.mean(1)]
            )
            z[:, rows] += (true_mean - expected[:, rows]) / fleet.se[:, rows]
        everyone = bool(reporting.all())
        if not everyone:
            z[:, ~reporting] = 0.0
        errors = np.zeros(reporting.size)
        first_error = np.full(reporting.size, np.nan)
        if fleet.target == "gpu":
            self._xid(reporting, errors, first_error, t0_s, t1_s)
        self._summarise(fleet, t0_s, reporting, expected + z * fleet.se, errors)
        if self.detection.enabled:
            self._detect(fleet, t0_s, dt_s, reporting, z, everyone)
            if fleet.target == "gpu":
                self._xid_alerts(errors, first_error, facility)
            self._unreachable(fleet, t1_s, facility, silent_since, site_cut)
        if fleet.sample.size:
            rows = fleet.sample[reporting[fleet.sample]]
            self._record_detail(fleet, t0_s, dt_s, rows, end, silent_since[rows])
        fleet.temp_prev = end[temp_index].copy()

    # ---------------------------------------------------------------- telemetry

    def _profiles(
        self, fleet: _Fleet, rows: np.ndarray, dt_s: float, end: tuple[np.ndarray, ...]
    ) -> tuple[np.ndarray, np.ndarray]:
        """True and healthy readings ``[rows, fields, n]`` of ``rows`` in the interval."""
        n = fleet.offsets_s.size
        healthy = np.empty((rows.size, len(fleet.fields), n))
        for i, name in enumerate(fleet.fields):
            if name == "temp_c":
                healthy[:, i] = lagged_profile(
                    fleet.temp_prev[rows], end[i][rows], fleet.offsets_s, dt_s, fleet.tau_s
                )
            else:
                healthy[:, i] = end[i][rows][:, None]
        true = healthy.copy()
        window = self.injector.window if fleet.target == "asic" else None
        if window is not None and rows.size:
            position = np.searchsorted(window.devices, rows)
            position = np.minimum(position, max(window.devices.size - 1, 0))
            hit = window.devices[position] == rows if window.devices.size else position < 0
            at = position[hit]
            true[hit, 0] = window.hashrate_ths[at]
            true[hit, 1] = window.temp_c[at]
            true[hit, 2] = window.power_w[at]
        return true, healthy

    def _record_detail(
        self,
        fleet: _Fleet,
        t0_s: float,
        dt_s: float,
        rows: np.ndarray,
        end: tuple[np.ndarray, ...],
        silent_since: np.ndarray,
    ) -> None:
        """Every reading of the sampled ``rows`` (those reporting) in the interval, up to
        when a device fell silent (``silent_since``, NaN: it did not) [s]."""
        if not rows.size:
            return
        true, _ = self._profiles(fleet, rows, dt_s, end)
        readings = noisy_readings(
            self.rng,
            true.reshape(rows.size, -1),
            np.repeat(fleet.sigma[:, rows].T, fleet.offsets_s.size, axis=1),
        ).reshape(true.shape)
        n = fleet.offsets_s.size
        chunk = {
            "t_s": np.tile(t0_s + fleet.offsets_s, rows.size),
            "target": np.full(rows.size * n, fleet.target),
            "device": np.repeat(rows, n),
        }
        for i, name in enumerate(fleet.fields):
            chunk[name] = readings[:, i].ravel().astype(np.float32)
        if fleet.target == "gpu":
            chunk["util"] = np.repeat(self.gpu_fleet.util[rows], n).astype(np.float32)
        cutoff = np.repeat(np.where(np.isnan(silent_since), np.inf, silent_since), n)
        keep = chunk["t_s"] < cutoff
        self._detail.append({name: values[keep] for name, values in chunk.items()})

    def _summarise(
        self,
        fleet: _Fleet,
        t0_s: float,
        reporting: np.ndarray,
        means: np.ndarray,
        errors: np.ndarray,
    ) -> None:
        """Per (facility, class) sums, means and maxima of the interval means."""
        values = {name: means[i] for i, name in enumerate(fleet.fields)}
        values["errors"] = errors
        summary = group_summary(fleet.group_start, reporting, **values)
        self._summary.append(
            {"t_s": t0_s, "target": fleet.target, "names": fleet.group_names, **summary}
        )

    # ---------------------------------------------------------------- detection

    def _detect(
        self,
        fleet: _Fleet,
        t0_s: float,
        dt_s: float,
        reporting: np.ndarray,
        z: np.ndarray,
        everyone: bool,
    ) -> None:
        """Shewhart and EWMA on the interval means (``everyone``: all devices report);
        flagged devices are alerted, dated by CUSUM; in the first intervals the forest
        collects its training vectors."""
        cfg = self.detection
        ewma = fleet.ewma.update(None if everyone else reporting, z)
        flagged = fleet.beyond(z, cfg.shewhart_sigma)
        flagged |= fleet.beyond(ewma, cfg.ewma_sigma * fleet.ewma.sigma)
        if not everyone:
            flagged &= reporting
        if flagged.any():
            rows = np.flatnonzero(flagged)
            shewhart = np.column_stack(
                [
                    shewhart_flags(z[i, rows], cfg.shewhart_sigma, direction)
                    for i, direction in enumerate(fleet.directions.tolist())
                ]
            )
            self._alert_devices(fleet, t0_s, dt_s, rows, z[:, rows].T, shewhart)
        if fleet.scorer is not None and self._intervals < IFOREST_WARMUP_INTERVALS:
            self._forest(fleet, reporting & ~flagged, z)

    def _alert_devices(
        self,
        fleet: _Fleet,
        t0_s: float,
        dt_s: float,
        rows: np.ndarray,
        z: np.ndarray,
        shewhart: np.ndarray,
    ) -> None:
        """Alert ``rows`` (interval-mean residuals ``z``, Shewhart flags per field), dated by
        a CUSUM over their readings of the worst field; take them out of service."""
        oriented = z * fleet.signs
        end = self._readings_now(fleet)
        true, healthy = self._profiles(fleet, rows, dt_s, end)
        sigma = fleet.sigma[:, rows].T[:, :, None]
        noise = self.rng.standard_normal(true.shape)
        readings_z = (true - healthy) / sigma + noise
        signs = np.where(fleet.directions == 0, 1, fleet.directions)
        worst = np.argmax(np.abs(oriented), axis=1)
        pick = np.arange(rows.size)
        series = readings_z[pick, worst] * signs[worst][:, None]
        if (fleet.directions[worst] == 0).any():
            both = fleet.directions[worst] == 0
            series[both] = np.abs(readings_z[pick[both], worst[both]])
        first = cusum_first_crossing(series, self.detection.cusum_k, self.detection.cusum_h)
        t_alert = np.where(first >= 0, t0_s + fleet.offsets_s[np.maximum(first, 0)], t0_s + dt_s)
        facility = (self.asic_fleet if fleet.target == "asic" else self.gpu_fleet).facility
        detector = np.where(shewhart[pick, worst], "shewhart", "ewma")
        forest = self._forest_scores(fleet, z)
        for row, at, sig, det, score, iforest in zip(
            rows.tolist(),
            t_alert.tolist(),
            worst.tolist(),
            detector.tolist(),
            oriented[pick, worst].tolist(),
            forest.tolist(),
            strict=True,
        ):
            field_name = fleet.fields[sig]
            self._raise(at, int(facility[row]), fleet.target, row, det, field_name, score, iforest)
        self.injector.exclude(fleet.target, rows, t_alert, self.detection.repair_s)
        fleet.ewma.reset(rows)

    def _forest(self, fleet: _Fleet, healthy: np.ndarray, z: np.ndarray) -> None:
        """Collect the first intervals' residual vectors of devices not flagged (a subsample
        of the fleet) as the forest's training set; it is fitted when first needed."""
        rows = np.flatnonzero(healthy)
        per_interval = IFOREST_TRAINING_ROWS // IFOREST_WARMUP_INTERVALS
        if rows.size > per_interval:
            rows = np.sort(self.rng.choice(rows, per_interval, replace=False))
        fleet.training.append(z[:, rows].T)

    def _forest_scores(self, fleet: _Fleet, z: np.ndarray) -> np.ndarray:
        """IsolationForest scores of residual vectors ``z`` (NaN while still training); the
        forest is fitted on first use, so a run without alerts never pays for it."""
        scorer = fleet.scorer
        if scorer is None or self._intervals < IFOREST_WARMUP_INTERVALS:
            return np.full(z.shape[0], np.nan)
        if not scorer.fitted:
            data = np.concatenate(fleet.training) if fleet.training else np.zeros((0, 1))
            fleet.training = []
            if data.shape[0] < 2:
                fleet.scorer = None
                return np.full(z.shape[0], np.nan)
            scorer.fit(data)
        return scorer.scores(z)

    def _xid(
        self,
        reporting: np.ndarray,
        errors: np.ndarray,
        first: np.ndarray,
        t0_s: float,
        t1_s: float,
    ) -> None:
        """XID/ECC error counts of the reporting GPUs in the interval into ``errors``, and the
        time of each one's first error into ``first`` (left NaN when none) [s]."""
        devices, rate, since = self.injector.xid_sources(t0_s, t1_s)
        present = reporting[devices]
        devices, rate, since = devices[present], rate[present], since[present]
        if not devices.size:
            return
        first_at = since + self.rng.exponential(1.0 / rate)
        erred = first_at < t1_s
        counts = np.where(erred, 1 + self.rng.poisson(rate * np.maximum(t1_s - first_at, 0)), 0)
        np.add.at(errors, devices, counts)
        first[devices[erred]] = np.fmin(first[devices[erred]], first_at[erred])

    def _xid_alerts(self, errors: np.ndarray, first: np.ndarray, facility: np.ndarray) -> None:
        """Alert every GPU whose error counter moved (not already out of service)."""
        hit = np.flatnonzero((errors > 0) & ~self.injector.gpu_excluded)
        for row in hit.tolist():
            self._raise(
                float(first[row]), int(facility[row]), "gpu", row, "xid", "errors", errors[row]
            )
        if hit.size:
            self.injector.exclude("gpu", hit, first[hit], self.detection.repair_s)

    def _unreachable(
        self,
        fleet: _Fleet,
        t1_s: float,
        facility: np.ndarray,
        silent_since: np.ndarray,
        site_cut: np.ndarray,
    ) -> None:
        """Devices silent for the heartbeat timeout (not at a site that is cut off)."""
        if not self.injector.any_silent(fleet.target):
            return
        excluded = (
            self.injector.asic_excluded if fleet.target == "asic" else self.injector.gpu_excluded
        )
        due = silent_since + self.detection.heartbeat_timeout_s
        hit = np.flatnonzero((due <= t1_s) & ~excluded & ~site_cut[facility])
        for row in hit.tolist():
            self._raise(
                float(due[row]),
                int(facility[row]),
                fleet.target,
                row,
                "unreachable",
                "heartbeat",
                math.nan,
            )
        if hit.size:
            self.injector.exclude(fleet.target, hit, due[hit], self.detection.repair_s)

    def _sites(
        self, t0_s: float, t1_s: float, site_silent: np.ndarray, hashrate: np.ndarray
    ) -> None:
        """Site alerts: cut off, stale price feed, pool accepting no shares."""
        cfg = self.detection
        injector = self.injector
        for f in range(injector.n_facilities):
            since = float(site_silent[f])
            at = since + cfg.heartbeat_timeout_s
            if math.isnan(since):
                self._site_open.discard(("silent", f))
            elif at <= t1_s and ("silent", f) not in self._site_open:
                dark = injector.site_active("facility_outage", f, at)
                kind = "site_power_lost" if dark else "site_unreachable"
                self._raise(at, f, "site", -1, kind, "heartbeat", math.nan)
                self._site_open.add(("silent", f))
            if injector.site_active("price_feed_gap", f, t0_s):
                if ("price", f) not in self._site_open:
                    at = t0_s + cfg.price_stale_after_s
                    self._raise(at, f, "site", -1, "price_feed_stale", "price_age", math.nan)
                    self._site_open.add(("price", f))
            else:
                self._site_open.discard(("price", f))
            pool_since = injector.site_since("pool_outage", f, t1_s - 1e-6)
            if math.isnan(pool_since):
                self._site_open.discard(("pool", f))
                self.mining_paused[f] = False
                continue
            at = max(pool_since, t0_s) if ("pool_wait", f) in self._site_open else pool_since
            at += cfg.share_timeout_s
            if ("pool", f) in self._site_open:
                continue
            if hashrate[f] <= 0:
                self._site_open.add(("pool_wait", f))
            elif at <= t1_s:
                self._raise(at, f, "site", -1, "pool_no_shares", "accepted_shares", 0.0)
                self._site_open.add(("pool", f))
                self._site_open.discard(("pool_wait", f))
                self.mining_paused[f] = True

    def _raise(
        self,
        t_s: float,
        facility: int,
        target: str,
        device: int,
        detector: str,
        signal: str,
        score: float,
        iforest_score: float = math.nan,
    ) -> None:
        self._alerts.append(
            (t_s, facility, target, device, detector, signal, float(score), float(iforest_score))
        )

    # ---------------------------------------------------------------- results

    @property
    def alert_count(self) -> int:
        """Alerts raised so far (:meth:`alerts_since` reads on from such a count)."""
        return len(self._alerts)

    def alerts_since(self, count: int) -> list[tuple[float, int, str, int, str, str, float, float]]:
        """The alerts raised after the first ``count``, in the order raised, as rows of
        ``ALERT_SCHEMA`` (for a running twin's operators; :meth:`alerts` for results)."""
        return self._alerts[count:]

    def alerts(self) -> pl.DataFrame:
        """Every alert raised (``ALERT_SCHEMA``), in time order."""
        frame = pl.DataFrame(self._alerts, schema=ALERT_SCHEMA, orient="row")
        return frame.sort(["t_s", "facility", "target", "device"])

    def telemetry_detail(self) -> pl.DataFrame:
        """Every reading of the sampled devices: t_s, target, device, the fields, util."""
        if not self._detail:
            return pl.DataFrame(
                {"t_s": [], "target": [], "device": []},
                schema={"t_s": pl.Float64, "target": pl.Utf8, "device": pl.Int64},
            )
        frames = [pl.DataFrame(chunk) for chunk in self._detail]
        return pl.concat(frames, how="diagonal_relaxed").sort(["target", "device", "t_s"])

    def telemetry_summary(self, facility_ids: list[str]) -> pl.DataFrame:
        """Per interval and (facility, class): devices reporting, power, hashrate, temps."""
        rows: dict[str, list[Any]] = {}
        for item in self._summary:
            names = item["names"]
            count = len(names)
            columns = {
                "t_s": [item["t_s"]] * count,
                "facility_id": [facility_ids[f] for f, _ in names],
                "target": [item["target"]] * count,
                "class": [name for _, name in names],
                "devices_reporting": item["devices_reporting"].tolist(),
                "power_kw": (item["power_w_sum"] / 1000.0).tolist(),
                "hashrate_ths": item.get("hashrate_ths_sum", np.full(count, np.nan)).tolist(),
                "temp_c_mean": item["temp_c_mean"].tolist(),
                "temp_c_max": item["temp_c_max"].tolist(),
                "errors": item["errors_sum"].tolist(),
            }
            for key, values in columns.items():
                rows.setdefault(key, []).extend(values)
        schema = {
            "t_s": pl.Float64,
            "facility_id": pl.Utf8,
            "target": pl.Utf8,
            "class": pl.Utf8,
            "devices_reporting": pl.Float64,
            "power_kw": pl.Float64,
            "hashrate_ths": pl.Float64,
            "temp_c_mean": pl.Float64,
            "temp_c_max": pl.Float64,
            "errors": pl.Float64,
        }
        return pl.DataFrame(rows or {k: [] for k in schema}, schema=schema)
