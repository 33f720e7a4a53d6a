"""Capacity planning: headroom and runway computed from a run's timeseries, the report
files, and clear errors for bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.capacity import CapacityError, plan_capacity, years_until
from twin.capacity_report import write_capacity_report
from twin.cli import main
from twin.engine import build
from twin.recorder import GPU_STATE_COLUMNS, POWER_USE_COLUMNS
from twin.scenario import PROJECT_ROOT, load_scenario


def _timeseries(busy: list[float], installed: int, cap_mw: float, it_mw_per_gpu: float):
    """One facility: ``busy`` GPUs per interval doing inference, the rest idle."""
    n = len(busy)
    busy_array = np.asarray(busy, dtype=float)
    columns: dict[str, object] = {
        "facility_id": ["site"] * n,
        "power_cap_mw": np.full(n, cap_mw),
        "pue_ai": np.full(n, 1.25),
    }
    for name in POWER_USE_COLUMNS:
        columns[name] = np.zeros(n)
    for name in GPU_STATE_COLUMNS:
        columns[name] = np.zeros(n)
    columns["power_inference_mw"] = busy_array * it_mw_per_gpu
    columns["power_mining_mw"] = np.full(n, cap_mw / 2)
    columns["power_total_mw"] = columns["power_mining_mw"] + busy_array * it_mw_per_gpu * 1.25
    columns["gpus_inference"] = busy_array
    columns["gpus_idle"] = installed - busy_array
    return pl.DataFrame(columns)


def test_runway_follows_compound_growth() -> None:
    """With demand at 100 of 400 GPUs growing 100 % a year, GPUs run out in 2 years; firm
    AI power is busy IT power x PUE and runs out when it reaches the cap."""
    frame = _timeseries([100.0] * 10, installed=400, cap_mw=10.0, it_mw_per_gpu=0.01)
    plan = plan_capacity(frame, growth_per_year=1.0)
    site = plan.facilities[0]
    assert site.gpus_installed == 400 and site.gpus_busy == pytest.approx(100.0)
    assert site.gpus_run_out_years == pytest.approx(2.0)
    assert site.firm_ai_power_mw == pytest.approx(100 * 0.01 * 1.25)
    assert site.power_runs_out_years == pytest.approx(math.log2(10.0 / 1.25))
    assert site.power_headroom_mw == pytest.approx(10.0 - 1.25)
    last = plan.projection.filter(pl.col("years") == plan.projection["years"].max())
    assert last["gpus_needed"].item() == pytest.approx(100.0 * 2.0**5)
    assert last["mining_room_mw"].item() == 0.0


def test_the_percentile_ignores_a_lone_spike() -> None:
    """One interval at 390 busy GPUs among 99 at 100 does not set P95 demand; P100 does."""
    frame = _timeseries([100.0] * 99 + [390.0], installed=400, cap_mw=10.0, it_mw_per_gpu=0.01)
    assert plan_capacity(frame, 0.5).facilities[0].gpus_busy == pytest.approx(100.0)
    assert plan_capacity(frame, 0.5, percentile=100).facilities[0].gpus_busy == 390.0


@given(
    demand=st.floats(0.1, 1e4),
    capacity=st.floats(0.1, 1e4),
    growth=st.floats(0.01, 5.0),
)
def test_years_until_meets_capacity(demand: float, capacity: float, growth: float) -> None:
    """Demand grown for the computed years equals the capacity (or is there already)."""
    years = years_until(demand, capacity, growth)
    assert years is not None
    if demand >= capacity:
        assert years == 0.0
    else:
        assert demand * (1 + growth) ** years == pytest.approx(capacity, rel=1e-9)


def test_no_growth_or_no_demand_never_runs_out() -> None:
    """Flat or shrinking demand below capacity, or no demand at all, never runs out."""
    assert years_until(10.0, 20.0, 0.0) is None
    assert years_until(10.0, 20.0, -0.2) is None
    assert years_until(0.0, 20.0, 0.5) is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"growth_per_year": -1.0}, "growth"),
        ({"growth_per_year": 0.3, "percentile": 101.0}, "percentile"),
        ({"growth_per_year": 0.3, "horizon_years": 0.0}, "horizon"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict, field: str) -> None:
    """Out-of-range arguments are refused with the argument's name."""
    frame = _timeseries([1.0], installed=2, cap_mw=1.0, it_mw_per_gpu=0.01)
    with pytest.raises(CapacityError, match=field):
        plan_capacity(frame, **kwargs)


def test_a_timeseries_without_the_columns_is_refused() -> None:
    """A table that is not a run's timeseries names the missing columns."""
    with pytest.raises(CapacityError, match=r"missing columns .*gpus_idle"):
        plan_capacity(pl.DataFrame({"facility_id": ["a"], "power_cap_mw": [1.0]}), 0.3)


def test_report_of_a_simulated_run(tmp_path: Path) -> None:
    """On a real run: one row per facility, installed GPUs as the scenario declares, files
    written, and the CLI prints the table (exit 0) or names a missing folder (exit 2)."""
    scenario = load_scenario(PROJECT_ROOT / "scenarios" / "baseline.yaml", {"duration_days": 0.25})
    run_dir = build(scenario).run().write(tmp_path / "run")
    plan, markdown, page = write_capacity_report(run_dir, growth_per_year=0.4)
    declared = {f.id: sum(g.count for g in f.gpus) for f in scenario.facilities}
    assert {f.facility_id: f.gpus_installed for f in plan.facilities} == declared
    for facility in plan.facilities:
        assert 0 <= facility.gpus_busy <= facility.gpus_installed
        assert facility.firm_ai_power_mw <= facility.power_now_mw + 1e-9
    text = markdown.read_text()
    assert all(f"| {f.id} |" in text for f in scenario.facilities)
    assert "fig-capacity" in page.read_text()
    assert main(["capacity", str(run_dir), "--growth", "0.2"]) == 0
    assert main(["capacity", str(tmp_path / "missing")]) == 2
