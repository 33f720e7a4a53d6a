"""Ground truth and scoring of the health monitor: ``faults.parquet`` and ``kpis.anomaly``.

Ground truth is one row per (fault, device) for device faults and one row per site fault
(``device = -1``), with when the fault really acted: from its onset to its declared end, its
repair, or the run's end, whichever comes first.

Scoring (definitions used in ``kpis.json``):

* an alert **matches** a ground-truth row when it names the same target and device (device
  faults) or the same facility with ``target = site`` (site faults), and its time lies in
  ``[start_s, end_s + grace_s]``; ``grace_s`` (one dispatch interval plus the heartbeat
  timeout) covers an alert raised by the last readings of a fault that just ended;
* **precision** = matched alerts / alerts; **recall** = faults (incidents, one per scenario
  entry or random draw) with at least one matched alert / faults that started at least
  ``grace_s`` before the run's end (later ones could not be seen in the run);
* **detection delay** of a detected fault = its first matched alert time - its onset [s];
  ``detection_delay_p50_s`` is the median over detected faults.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from models.faults import FaultEvent

FAULT_SCHEMA: dict[str, pl.DataType] = {
    "fault_id": pl.Int64(),
    "kind": pl.Utf8(),
    "source": pl.Utf8(),
    "facility": pl.Int64(),
    "facility_id": pl.Utf8(),
    "target": pl.Utf8(),
    "device": pl.Int64(),
    "start_s": pl.Float64(),
    "end_s": pl.Float64(),
    "start_utc": pl.Datetime("us", "UTC"),
}
"""Columns of ``faults.parquet`` (times in s since scenario start; ``start_utc`` for people)."""


def faults_frame(
    events: list[FaultEvent], facility_ids: list[str], start: datetime, run_end_s: float
) -> pl.DataFrame:
    """The ground truth of ``events`` as rows (see the module docstring)."""
    columns: dict[str, list[Any]] = {name: [] for name in FAULT_SCHEMA}
    for event in events:
        if event.target == "site":
            devices = [-1]
            ends = [min(event.end_s, run_end_s)]
        else:
            devices = event.devices.tolist()
            ends = np.minimum(event.device_end_s, run_end_s).tolist()
        for device, end_s in zip(devices, ends, strict=True):
            columns["fault_id"].append(event.fault_id)
            columns["kind"].append(event.kind)
            columns["source"].append(event.source)
            columns["facility"].append(event.facility)
            columns["facility_id"].append(facility_ids[event.facility])
            columns["target"].append(event.target)
            columns["device"].append(int(device))
            columns["start_s"].append(event.start_s)
            columns["end_s"].append(max(float(end_s), event.start_s))
            columns["start_utc"].append(start + timedelta(seconds=event.start_s))
    return pl.DataFrame(columns, schema=FAULT_SCHEMA)


def score_alerts(
    alerts: pl.DataFrame, faults: pl.DataFrame, run_end_s: float, grace_s: float
) -> dict[str, Any]:
    """``{precision, recall, detection_delay_p50_s, alerts, faults, by_kind}`` (see the
    module docstring); precision and recall are None when there is nothing to divide by."""
    key = ["target", "facility", "device"]
    alerts = alerts.with_row_index("alert")
    matched = alerts.join(faults, on=key, how="inner", suffix="_fault").filter(
        (pl.col("t_s") >= pl.col("start_s")) & (pl.col("t_s") <= pl.col("end_s") + grace_s)
    )
    observable = faults.filter(pl.col("start_s") <= run_end_s - grace_s)
    n_faults = observable["fault_id"].n_unique()
    first = matched.group_by("fault_id").agg(
        (pl.col("t_s").min() - pl.col("start_s").first()).alias("delay_s")
    )
    first = first.join(observable.select("fault_id").unique(), on="fault_id", how="inner")
    n_alerts = alerts.height
    true_alerts = matched["alert"].n_unique()
    delays = first["delay_s"].to_numpy()
    by_kind: dict[str, dict[str, int]] = {}
    kinds = observable.group_by("kind").agg(pl.col("fault_id").n_unique().alias("n"))
    detected = (
        first.join(observable.select("fault_id", "kind").unique(), on="fault_id", how="inner")
        .group_by("kind")
        .agg(pl.len().alias("n"))
    )
    found = dict(zip(detected["kind"].to_list(), detected["n"].to_list(), strict=True))
    for kind, count in sorted(zip(kinds["kind"].to_list(), kinds["n"].to_list(), strict=True)):
        by_kind[kind] = {"faults": int(count), "detected": int(found.get(kind, 0))}
    return {
        "precision": true_alerts / n_alerts if n_alerts else None,
        "recall": first.height / n_faults if n_faults else None,
        "detection_delay_p50_s": float(np.median(delays)) if delays.size else None,
        "alerts": int(n_alerts),
        "true_alerts": int(true_alerts),
        "faults": int(n_faults),
        "detected": int(first.height),
        "by_kind": by_kind,
        "grace_s": float(grace_s),
    }


def empty_score() -> dict[str, Any]:
    """The anomaly block of a run without a health monitor."""
    return {
        "precision": None,
        "recall": None,
        "detection_delay_p50_s": None,
        "alerts": 0,
        "true_alerts": 0,
        "faults": 0,
        "detected": 0,
        "by_kind": {},
        "grace_s": 0.0,
    }
