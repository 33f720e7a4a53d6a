"""Money and energy for one facility over one dispatch interval (pure arithmetic).

Inputs are interval means of IT power by use [MW] and the prices in force; the output is
the row of revenue, cost and energy columns the recorder stores. Conventions:

* facility draw = mining IT x PUE_mining + GPU IT x PUE_ai; overhead = draw - IT;
* mining revenue = mean hashrate [TH/s] x hashprice [USD/TH/s/day] x dt / 1 day
  (hashprice already net of the pool fee);
* spot revenue = mean GPUs rented x rental price [USD/GPU-h] x dt / 1 h;
* energy cost and resale follow the contract (models.facility.settle_energy);
* 4CP: in a 4CP interval the facility accrues ``rate_usd_per_kw_year / 4`` per kW of its
  draw, pro rata over the 15-minute peak window;
* data transfer: moving a job's data into the facility from another region, at the
  routing's USD/GB;
* demand response: during a grid event the facility is paid for the flexible load it shed
  (up to the requested share) and pays the same rate for any shortfall as a penalty.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.facility import settle_energy
from twin.scenario import FixedBlockContract, IndexContract

FOUR_CP_WINDOW_S = 900.0
"""Length of one 4CP settlement interval [s]."""


@dataclass(frozen=True, slots=True)
class IntervalInputs:
    """What happened at one facility in one interval (means over the interval)."""

    dt_s: float
    price_usd_per_mwh: float
    contract: IndexContract | FixedBlockContract
    pue_mining: float
    pue_ai: float
    it_mining_mw: float
    it_inference_mw: float
    it_batch_mw: float
    it_training_mw: float
    it_spot_mw: float
    it_gpu_idle_mw: float
    hashrate_ths: float
    hashprice_usd_per_ths_day: float
    revenue_ai_inference_usd: float
    revenue_training_usd: float
    gpus_spot: float
    spot_usd_per_gpu_hour: float
    flexible_baseline_mw: float
    """Facility draw of mining and spot GPUs had nothing been curtailed [MW]."""
    curtail_fraction: float
    curtail_payment_usd_per_mwh: float
    four_cp: bool
    four_cp_rate_usd_per_kw_year: float
    ancillary_offer_mw: float = 0.0
    ancillary_price_usd_per_mw_h: float = 0.0
    data_transfer_usd: float = 0.0
    """Moving job data into the facility from other regions [USD]."""


def settle_interval(x: IntervalInputs) -> dict[str, float]:
    """Revenue, cost, power and energy columns for one facility-interval."""
    dt_h = x.dt_s / 3600.0
    it_ai = x.it_inference_mw + x.it_batch_mw + x.it_training_mw + x.it_spot_mw + x.it_gpu_idle_mw
    mining_mw = x.it_mining_mw * x.pue_mining
    ai_mw = it_ai * x.pue_ai
    total_mw = mining_mw + ai_mw
    energy = settle_energy(x.contract, total_mw, x.price_usd_per_mwh, dt_h)

    flexible_now_mw = mining_mw + x.it_spot_mw * x.pue_ai
    shed_mw = max(0.0, x.flexible_baseline_mw - flexible_now_mw)
    requested_mw = x.curtail_fraction * x.flexible_baseline_mw
    dr_revenue = min(shed_mw, requested_mw) * dt_h * x.curtail_payment_usd_per_mwh
    shortfall_mw = max(0.0, requested_mw - shed_mw)
    penalty = shortfall_mw * dt_h * x.curtail_payment_usd_per_mwh
    four_cp_cost = 0.0
    if x.four_cp:
        share = min(1.0, x.dt_s / FOUR_CP_WINDOW_S)
        four_cp_cost = x.four_cp_rate_usd_per_kw_year / 4.0 * total_mw * 1000.0 * share

    return {
        "power_mining_mw": x.it_mining_mw,
        "power_inference_mw": x.it_inference_mw,
        "power_batch_mw": x.it_batch_mw,
        "power_training_mw": x.it_training_mw,
        "power_spot_mw": x.it_spot_mw,
        "power_gpu_idle_mw": x.it_gpu_idle_mw,
        "power_overhead_mw": total_mw - x.it_mining_mw - it_ai,
        "power_total_mw": total_mw,
        "energy_mwh": energy.energy_mwh,
        "revenue_mining_usd": x.hashrate_ths * x.hashprice_usd_per_ths_day * x.dt_s / 86400.0,
        "revenue_ai_inference_usd": x.revenue_ai_inference_usd,
        "revenue_training_usd": x.revenue_training_usd,
        "revenue_spot_usd": x.gpus_spot * x.spot_usd_per_gpu_hour * dt_h,
        "revenue_ancillary_usd": x.ancillary_offer_mw * x.ancillary_price_usd_per_mw_h * dt_h,
        "revenue_resale_usd": energy.revenue_resale_usd,
        "revenue_demand_response_usd": dr_revenue,
        "cost_energy_usd": energy.cost_energy_usd,
        "cost_transmission_4cp_usd": four_cp_cost,
        "cost_penalties_usd": penalty,
        "cost_data_transfer_usd": x.data_transfer_usd,
    }
