"""Small snapshots for optimizer tests: plain functions that build the frozen inputs a
policy, the dispatch MILP or the economic optimizer reads.

Every value a test does not name gets a fixed, documented default so that the expected
figures in a test stay plain arithmetic. Test files wrap these with their own defaults.
"""

from __future__ import annotations

from dataclasses import replace

from optimizer.types import AsicClassState, FacilityState, GpuPoolState, MarketState, Snapshot

BTC_PRICE_USD = 90_000.0
"""Bitcoin price of :func:`market_state` [USD]."""


def asic_class(
    model_id: str,
    ths: float,
    watts: float,
    count: int,
    *,
    active: int | None = None,
    failed: int = 0,
    sleep_w: float = 25.0,
) -> AsicClassState:
    """``count`` miners of one model at nameplate ``ths`` [TH/s] and ``watts`` [W], asleep at
    ``sleep_w`` [W], accepting power targets down to 0.6 [-].

    ``active`` miners hash (default: every healthy one), ``failed`` are down and the rest
    sleep.
    """
    active = count - failed if active is None else active
    return AsicClassState(
        model_id=model_id,
        efficiency_j_per_th=watts / ths,
        hashrate_ths_each=ths,
        power_w_each=watts,
        sleep_power_w_each=sleep_w,
        min_power_fraction=0.6,
        count=count,
        active=active,
        sleeping=count - failed - active,
        failed=failed,
    )


def facility_state(
    asics: tuple[AsicClassState, ...],
    pools: tuple[GpuPoolState, ...],
    *,
    price_usd_per_mwh: float,
    cap_mw: float,
    pue_mining: float,
    pue_ai: float,
    ambient_c: float = 25.0,
    facility_id: str = "site",
    **changes: object,
) -> FacilityState:
    """A facility on an index contract without adder (marginal energy price = real-time
    ``price_usd_per_mwh`` [USD/MWh]) under ``cap_mw`` [MW], at ``ambient_c`` [°C].

    ``changes`` replace any other field (``curtail_request_fraction``, ``four_cp_interval``
    ...).
    """
    state = FacilityState(
        facility_id=facility_id,
        price_usd_per_mwh=price_usd_per_mwh,
        marginal_energy_usd_per_mwh=price_usd_per_mwh,
        power_cap_mw=cap_mw,
        pue_mining=pue_mining,
        pue_ai=pue_ai,
        ambient_c=ambient_c,
        asic_classes=asics,
        gpu_pools=pools,
    )
    return replace(state, **changes)  # type: ignore[arg-type]


def market_state(
    hashprice_usd_per_ths_day: float,
    *,
    network_hashrate_ehs: float = 700.0,
    fees_btc_per_block: float = 0.05,
) -> MarketState:
    """Market at :data:`BTC_PRICE_USD`, difficulty 1e14, a 3.125 BTC subsidy and GPU rental
    at the catalog index (multiplier 1)."""
    return MarketState(
        BTC_PRICE_USD,
        hashprice_usd_per_ths_day,
        1e14,
        network_hashrate_ehs,
        3.125,
        fees_btc_per_block,
        1.0,
    )


def snapshot(
    facilities: tuple[FacilityState, ...],
    market: MarketState,
    ancillary_usd_per_mw_h: dict[str, float] | None = None,
) -> Snapshot:
    """A snapshot at ``t_s = 0`` of one 300-s dispatch interval."""
    return Snapshot(0.0, 300.0, market, facilities, dict(ancillary_usd_per_mw_h or {}))
