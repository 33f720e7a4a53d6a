"""The conservative policy: plan as if prices were high while they are stale."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from optimizer.conservative import AssumeHighPrice
from optimizer.policies import Strike
from twin.engine import build
from twin.scenario import load_scenario

BASELINE = Path(__file__).resolve().parents[2] / "scenarios" / "baseline.yaml"


def test_assumed_high_price_curtails_what_strike_would_run() -> None:
    """At a cheap hour strike keeps miners hashing; the conservative wrapper, assuming
    1,000 USD/MWh, puts every miner to sleep and leaves the snapshot untouched."""
    scenario = load_scenario(BASELINE, {"duration_days": 0.01})
    twin = build(scenario)
    snapshot = twin.controller.observe(0, 0.0)
    cheap = replace(
        snapshot,
        facilities=tuple(
            replace(f, price_usd_per_mwh=5.0, marginal_energy_usd_per_mwh=5.0)
            for f in snapshot.facilities
        ),
    )
    normal = Strike().decide(cheap)
    careful = AssumeHighPrice(Strike(intervals_above=1), 1000.0).decide(cheap)
    for state in cheap.facilities:
        running = sum(normal.facility(state.facility_id).asic_active.values())
        assert running > 0
        assert sum(careful.facility(state.facility_id).asic_active.values()) == 0
    assert all(f.price_usd_per_mwh == 5.0 for f in cheap.facilities)
