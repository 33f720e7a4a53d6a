"""Whole-twin invariants as properties: the power cap holds and energy balances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin.engine import build
from twin.scenario import load_scenario

BASELINE = Path(__file__).resolve().parent.parent / "scenarios" / "baseline.yaml"


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31),
    cap_scale=st.floats(0.4, 1.3),
    price_mean=st.floats(5.0, 400.0),
    policy=st.sampled_from(["always_on", "strike"]),
)
def test_cap_and_energy_balance_hold_in_every_interval(
    seed: int, cap_scale: float, price_mean: float, policy: str
) -> None:
    """For random seeds, caps (40-130 % of the baseline caps), price levels and policies:
    facility power never exceeds its cap, energy equals power x time, and facility power
    equals IT power by hall times that hall's PUE."""
    base = load_scenario(BASELINE)
    overrides: dict[str, object] = {
        "seed": seed,
        "duration_days": 0.15,
        "policy.name": policy,
        "grid.prices.mean_usd_per_mwh": price_mean,
    }
    for facility in base.facilities:
        overrides[f"facilities[{facility.id}].power_cap_mw"] = facility.power_cap_mw * cap_scale
    result = build(load_scenario(BASELINE, overrides)).run()
    ts = result.timeseries
    dt_h = base.dispatch_interval_s / 3600
    total = ts["power_total_mw"].to_numpy()
    assert np.all(total <= ts["power_cap_mw"].to_numpy() + 1e-6)
    assert np.allclose(ts["energy_mwh"].to_numpy(), total * dt_h)
    gpu_it = sum(
        ts[c].to_numpy()
        for c in (
            "power_inference_mw",
            "power_batch_mw",
            "power_training_mw",
            "power_spot_mw",
            "power_gpu_idle_mw",
        )
    )
    expected = (
        ts["power_mining_mw"].to_numpy() * ts["pue_mining"].to_numpy()
        + gpu_it * ts["pue_ai"].to_numpy()
    )
    assert np.allclose(total, expected)
    kpis = result.kpis
    assert abs(kpis["energy_mwh"] - float(ts["energy_mwh"].sum())) < 1e-2
