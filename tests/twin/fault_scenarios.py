"""Tiny scenarios for the fault, telemetry and anomaly tests: two sites, a few hundred
devices, hours rather than days, demand sized to the GPUs."""

from __future__ import annotations

from typing import Any

from twin.scenario import Scenario, validate_scenario

START = "2025-07-14T00:00:00-05:00"


def tiny(faults: list[dict[str, Any]] | None = None, hours: float = 3.0, **fields: Any) -> Scenario:
    """A validated two-site scenario: ``mine`` (S21 x 120, S19 XP x 60, H100 x 32) and ``ai``
    (S21 Pro x 40, H100 x 64, B200 x 16), ``hours`` long from 2025-07-14 00:00 CDT (night:
    the miners hash), with ``faults`` and any other top-level ``fields``."""
    data: dict[str, Any] = {
        "name": "tiny",
        "start": START,
        "duration_days": hours / 24.0,
        "seed": 7,
        "facilities": [
            {
                "id": "mine",
                "settlement_point": "HB_WEST",
                "power_cap_mw": 1.0,
                "asics": [
                    {"model": "antminer_s21", "count": 120},
                    {"model": "antminer_s19_xp", "count": 60},
                ],
                "gpus": [{"type": "h100_sxm", "count": 32, "node_size": 8}],
            },
            {
                "id": "ai",
                "settlement_point": "HB_HOUSTON",
                "power_cap_mw": 0.35,
                "asics": [{"model": "antminer_s21_pro", "count": 40}],
                "gpus": [
                    {"type": "h100_sxm", "count": 64, "node_size": 8},
                    {"type": "b200", "count": 16, "node_size": 8},
                ],
            },
        ],
        "grid": {"prices": {"kind": "constant", "value": 30.0}},
        "workloads": {
            "customers": 5,
            "demand": {
                "ai_inference_realtime": {"per_day": 2000, "duration_median_s": 60},
                "ai_inference_batch": {
                    "per_day": 100,
                    "duration_median_s": 1800,
                    "gpus": {"values": [1, 2]},
                },
                "model_training": {
                    "per_day": 40,
                    "duration_median_s": 4 * 3600,
                    "daily_amplitude": 0.0,
                    "gpus": {"values": [8]},
                    "checkpoint_interval_s": 900,
                },
                "bitcoin_mining": {"per_day": 0, "duration_median_s": 86400},
            },
        },
        "faults": faults or [],
        **fields,
    }
    return validate_scenario(data)
