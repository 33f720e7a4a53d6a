"""Accounting of one facility-interval: exact arithmetic on hand-made inputs."""

from __future__ import annotations

import dataclasses

import pytest

from twin.accounting import IntervalInputs, settle_interval
from twin.scenario import FixedBlockContract, IndexContract

BASE = IntervalInputs(
    dt_s=900.0,
    price_usd_per_mwh=40.0,
    contract=IndexContract(adder_usd_per_mwh=5.0),
    pue_mining=1.1,
    pue_ai=1.25,
    it_mining_mw=10.0,
    it_inference_mw=1.0,
    it_batch_mw=0.5,
    it_training_mw=2.0,
    it_spot_mw=0.4,
    it_gpu_idle_mw=0.1,
    hashrate_ths=300_000.0,
    hashprice_usd_per_ths_day=0.048,
    revenue_ai_inference_usd=700.0,
    revenue_training_usd=1200.0,
    gpus_spot=100.0,
    spot_usd_per_gpu_hour=2.0,
    flexible_baseline_mw=11.0,
    curtail_fraction=0.0,
    curtail_payment_usd_per_mwh=0.0,
    four_cp=False,
    four_cp_rate_usd_per_kw_year=55.0,
)


def test_power_energy_and_index_cost() -> None:
    """Facility draw is IT x PUE by hall; energy and index cost follow from it."""
    row = settle_interval(BASE)
    total = 10.0 * 1.1 + 4.0 * 1.25
    assert row["power_total_mw"] == pytest.approx(total)
    assert row["power_overhead_mw"] == pytest.approx(total - 14.0)
    assert row["energy_mwh"] == pytest.approx(total * 0.25)
    assert row["cost_energy_usd"] == pytest.approx(total * 0.25 * 45.0)
    assert row["revenue_resale_usd"] == 0.0


def test_revenue_streams() -> None:
    """Mining from hashrate x hashprice, spot from GPUs x rate, AI passed through."""
    row = settle_interval(BASE)
    assert row["revenue_mining_usd"] == pytest.approx(300_000 * 0.048 * 900 / 86400)
    assert row["revenue_spot_usd"] == pytest.approx(100 * 2.0 * 0.25)
    assert row["revenue_ai_inference_usd"] == 700.0
    assert row["revenue_training_usd"] == 1200.0


def test_fixed_block_sells_back_unused_power() -> None:
    """Under a 20 MW block the 4 MW not drawn are sold at the real-time price."""
    inputs = dataclasses.replace(
        BASE, contract=FixedBlockContract(block_mw=20.0, price_usd_per_mwh=30.0)
    )
    row = settle_interval(inputs)
    total = 16.0
    assert row["cost_energy_usd"] == pytest.approx(20.0 * 0.25 * 30.0)
    assert row["revenue_resale_usd"] == pytest.approx((20.0 - total) * 0.25 * 40.0)


def test_four_cp_accrues_a_quarter_of_the_annual_rate_pro_rata() -> None:
    """A 300 s slice of a 15-minute 4CP window accrues a third of rate/4 per kW."""
    inputs = dataclasses.replace(BASE, dt_s=300.0, four_cp=True)
    row = settle_interval(inputs)
    assert row["cost_transmission_4cp_usd"] == pytest.approx(55.0 / 4 * 16.0 * 1000 / 3)


def test_demand_response_pays_shed_load_and_penalises_shortfall() -> None:
    """Asked to shed half of 22 MW, shedding all mining earns 11 MW; shedding none costs."""
    asked = dataclasses.replace(
        BASE,
        flexible_baseline_mw=22.0,
        curtail_fraction=0.5,
        curtail_payment_usd_per_mwh=1000.0,
        it_mining_mw=0.0,
    )
    row = settle_interval(asked)
    assert row["revenue_demand_response_usd"] == pytest.approx(11.0 * 0.25 * 1000.0)
    assert row["cost_penalties_usd"] == 0.0
    ignored = dataclasses.replace(asked, it_mining_mw=20.0)
    row = settle_interval(ignored)
    assert row["revenue_demand_response_usd"] == 0.0
    assert row["cost_penalties_usd"] == pytest.approx(11.0 * 0.25 * 1000.0)


def test_data_transfer_cost_scales_with_the_routing_price() -> None:
    """In a twin run, moving batch and training data to out-of-region sites costs exactly in
    proportion to ``transfer_usd_per_gb`` (same seed, same routing, same jobs)."""
    from pathlib import Path

    from twin.engine import build
    from twin.scenario import load_scenario

    baseline = Path(__file__).resolve().parents[2] / "scenarios" / "baseline.yaml"

    def transfer_cost(usd_per_gb: float) -> float:
        scenario = load_scenario(
            baseline,
            {"duration_days": 0.5, "scheduling.routing.transfer_usd_per_gb": usd_per_gb},
        )
        return float(build(scenario).run().timeseries["cost_data_transfer_usd"].sum())

    cheap, dear = transfer_cost(0.01), transfer_cost(0.03)
    assert cheap > 0.0
    assert dear == pytest.approx(3.0 * cheap, rel=1e-9)
