"""The look-ahead policies inside the twin: the oracle sees the truth, plans fit the caps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optimizer.lookahead import LookAhead, LookAheadError
from twin.engine import build
from twin.scenario import load_scenario

BASELINE = Path(__file__).resolve().parents[2] / "scenarios" / "baseline.yaml"


def test_oracle_runs_in_the_twin_within_caps() -> None:
    """A short oracle run solves the MILP, never falls back, and never exceeds a cap."""
    scenario = load_scenario(BASELINE, {"duration_days": 0.25, "policy": {"name": "oracle"}})
    twin = build(scenario)
    result = twin.run()
    policy = twin.controller.policy
    assert isinstance(policy, LookAhead)
    assert policy.solves > 0 and policy.fallbacks == 0
    ts = result.timeseries
    assert np.all(ts["power_total_mw"].to_numpy() <= ts["power_cap_mw"].to_numpy() + 1e-6)
    assert twin.controller.cap_guard_trims == 0


def test_look_ahead_without_horizon_is_an_error() -> None:
    """A look-ahead policy given a plain snapshot says what is missing."""
    scenario = load_scenario(BASELINE, {"duration_days": 0.01})
    twin = build(scenario)
    snapshot = twin.controller.observe(0, 0.0)
    policy = LookAhead(name="mpc", horizon_source="forecast", contracts={})
    with pytest.raises(LookAheadError, match="no horizon"):
        policy.decide(snapshot)
