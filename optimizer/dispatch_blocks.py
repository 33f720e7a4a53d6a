"""Time aggregation of dispatch inputs: input steps -> model blocks, and per-block parameters.

The first ``fine_steps`` input steps stay one block each (the first block is the interval
the plan is for); the rest are merged into blocks of ``block_steps`` (the last may be
shorter), broken early where the 4CP probability or a grid request changes. Decisions are
constant inside a block, so a block parameter is whatever makes the block's money exact
for a constant decision:

* prices, hashprice, GPU demand and rental prices: time means over the block;
* PUE: the mean for energy, the maximum for the cap (the cap must hold at every step);
* 4CP: the sum over steps of ``probability x rate / 4 x 1000 x min(1, step / 900 s)``
  [USD per facility MW] (twin.accounting pro-rates the 15-minute window);
* grid requests: the largest requested share in the block sets the shortfall constraint
  (blocks break where the share changes, so within a merged block it is constant); the
  credit ``sum(payment x share x dt)`` and the shortfall price ``sum(payment x dt)``
  over the event steps are summed (twin.accounting: shed energy is paid, a shortfall is
  charged at the same rate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optimizer.dispatch_inputs import FOUR_CP_WINDOW_S, DispatchInputs
from optimizer.dispatch_types import LOAD_GROUPS, DispatchOptions

MW_PER_W = 1e-6
MINUTES_PER_HOUR = 60.0


@dataclass(frozen=True, eq=False)
class BlockData:
    """Per-block parameters of one solve (shapes: ``B`` blocks, ``F`` facilities, ``C``
    classes, ``K`` tiers, ``P`` pools, ``S`` services, ``L`` load groups).

    Attributes:
        inputs: the inputs these blocks come from (static specs are read there).
        options: the model options.
        block_start_step: first input step of each block [B].
        block_of_step: block of each input step [T].
        duration_h: block length [h], [B].
        price_usd_per_mwh: mean real-time price [USD/MWh], [B, F].
        pue_mining, pue_ai: mean PUE (energy) [-], [B, F].
        pue_mining_cap, pue_ai_cap: largest PUE in the block (cap) [-], [B, F].
        four_cp_usd_per_mw: expected 4CP charge per MW of facility draw [USD/MW], [B, F].
        curtail_fraction: largest requested share [0-1], [B, F].
        dr_credit_usd_per_mw: payment per MW of flexible baseline for the requested share
            [USD/MW], [B, F].
        dr_shortfall_usd_per_mw: money per MW of shortfall (weighted) [USD/MW], [B, F].
        dr_payment_usd_per_mw: unweighted money per MW of shortfall [USD/MW], [B, F].
        flexible_baseline_mw: facility draw of mining with every healthy miner at nameplate
            [MW], [B, F].
        hashprice_usd_per_ths_day: [B].
        ancillary_usd_per_mw_h: mean capacity price per service [USD/MW-h], [B, S]
            (0 where the inputs have no price for the service).
        service_names: the services of the last axis [S].
        service_offered: whether the service has a price in the inputs [S].
        eligible: load group may back the service (fast enough) [S, L].
        deploy_probability: [S].
        deploy_cost_usd_per_mwh: expected value lost per MWh of load shed when deployed,
            ``max(0, value of the cheapest load of the group - marginal energy price)``
            [USD/MWh], [B, F, L].
        must_serve_gpus, reserved_gpus, batch_gpus, training_gpus: mean demand [GPUs], [B, P].
        spot_usd_per_gpu_hour: mean spot price [USD/GPU-h], [B, P].
        tiers: power tiers [K]; tier_allowed: tier >= class minimum [C, K];
        hashrate_factor: ``tier ** exponent`` [K].
        buy_usd_per_mwh: price of energy above a fixed block (index: of all energy) [B, F].
        sell_usd_per_mwh: price unused block energy earns (0 without sell-back) [B, F].
        nonconvex_block: the fixed-block split needs a binary (buying above the block is
            cheaper than selling back) [B, F].
        is_fixed_block: [F]; block_mw, block_price_usd_per_mwh: [F].
    """

    inputs: DispatchInputs
    options: DispatchOptions
    block_start_step: np.ndarray
    block_of_step: np.ndarray
    duration_h: np.ndarray
    price_usd_per_mwh: np.ndarray
    pue_mining: np.ndarray
    pue_ai: np.ndarray
    pue_mining_cap: np.ndarray
    pue_ai_cap: np.ndarray
    four_cp_usd_per_mw: np.ndarray
    curtail_fraction: np.ndarray
    dr_credit_usd_per_mw: np.ndarray
    dr_shortfall_usd_per_mw: np.ndarray
    dr_payment_usd_per_mw: np.ndarray
    flexible_baseline_mw: np.ndarray
    hashprice_usd_per_ths_day: np.ndarray
    ancillary_usd_per_mw_h: np.ndarray
    service_names: tuple[str, ...]
    service_offered: np.ndarray
    eligible: np.ndarray
    deploy_probability: np.ndarray
    deploy_cost_usd_per_mwh: np.ndarray
    must_serve_gpus: np.ndarray
    reserved_gpus: np.ndarray
    batch_gpus: np.ndarray
    training_gpus: np.ndarray
    spot_usd_per_gpu_hour: np.ndarray
    tiers: np.ndarray
    tier_allowed: np.ndarray
    hashrate_factor: np.ndarray
    buy_usd_per_mwh: np.ndarray
    sell_usd_per_mwh: np.ndarray
    nonconvex_block: np.ndarray
    is_fixed_block: np.ndarray
    block_mw: np.ndarray
    block_price_usd_per_mwh: np.ndarray

    @property
    def n_blocks(self) -> int:
        """Number of blocks ``B``."""
        return int(self.duration_h.size)


def integer_block_count(blocks: BlockData) -> int:
    """How many leading blocks keep integer miner counts (options.integer_miners and
    options.integer_blocks)."""
    options = blocks.options
    if not options.integer_miners:
        return 0
    if options.integer_blocks is None:
        return blocks.n_blocks
    return min(blocks.n_blocks, options.integer_blocks)


def block_starts(inputs: DispatchInputs, options: DispatchOptions) -> np.ndarray:
    """First input step of each block: ``fine_steps`` singles, then ``block_steps`` groups,
    also broken wherever the 4CP probability or a grid request changes (so a 15-minute
    peak window or an event is a block of its own, not spread over an hour)."""
    n_steps = inputs.n_steps
    fine = min(n_steps, options.fine_steps)
    regular = np.arange(fine, n_steps, options.block_steps)
    events = np.concatenate([inputs.four_cp_probability, inputs.curtail_request_fraction], axis=1)
    changes = np.flatnonzero(np.any(np.diff(events, axis=0) != 0, axis=1)) + 1
    coarse = np.union1d(regular, changes[changes > fine])
    return np.concatenate([np.arange(fine), coarse]).astype(np.int64)


def build_blocks(inputs: DispatchInputs, options: DispatchOptions) -> BlockData:
    """Aggregate ``inputs`` into model blocks (see the module docstring)."""
    n_steps = inputs.n_steps
    starts = block_starts(inputs, options)
    counts = np.diff(np.append(starts, n_steps))
    block_of_step = np.repeat(np.arange(starts.size), counts)
    step_h = inputs.step_s / 3600.0
    duration_h = counts * step_h

    def mean(array: np.ndarray) -> np.ndarray:
        sums = np.add.reduceat(array, starts, axis=0)
        return sums / counts.reshape((-1,) + (1,) * (array.ndim - 1))

    def total(array: np.ndarray) -> np.ndarray:
        return np.add.reduceat(array, starts, axis=0)

    def peak(array: np.ndarray) -> np.ndarray:
        return np.maximum.reduceat(array, starts, axis=0)

    pue_mining = mean(inputs.pue_mining)
    pue_ai = mean(inputs.pue_ai)
    four_cp_share = min(1.0, inputs.step_s / FOUR_CP_WINDOW_S)
    four_cp = (
        total(inputs.four_cp_probability * inputs.four_cp_rate_usd_per_kw_year / 4.0 * 1000.0)
        * four_cp_share
    )

    request = inputs.curtail_request_fraction
    in_event = (request > 0).astype(float)
    payment = inputs.curtail_payment_usd_per_mwh
    credit = total(payment * request * step_h)
    payment_per_mw = total(in_event * payment * step_h)
    extra_per_mw = total(in_event * options.grid_shortfall_usd_per_mwh * step_h)
    shortfall = 2.0 * options.grid_support_weight * payment_per_mw + extra_per_mw

    n_facilities = len(inputs.facility_ids)
    full_mining_it_mw = np.bincount(
        inputs.class_facility,
        weights=inputs.healthy_miners * inputs.power_w_each * MW_PER_W,
        minlength=n_facilities,
    )
    baseline = full_mining_it_mw[None, :] * pue_mining

    names = tuple(s.name for s in options.services)
    offered = np.array([n in inputs.ancillary_usd_per_mw_h for n in names], dtype=bool)
    ancillary = np.zeros((starts.size, len(names)))
    for s, name in enumerate(names):
        if offered[s]:
            ancillary[:, s] = mean(inputs.ancillary_usd_per_mw_h[name])
    response = {"mining": options.mining_response_s, "gpu": options.gpu_response_s}
    eligible = np.array(
        [[response[group] <= s.response_s for group in LOAD_GROUPS] for s in options.services],
        dtype=bool,
    ).reshape(len(names), len(LOAD_GROUPS))

    contracts = inputs.contracts
    is_fixed = np.array([c.is_fixed_block for c in contracts], dtype=bool)
    adder = np.array([c.adder_usd_per_mwh for c in contracts])
    sellback = np.array([c.sellback for c in contracts], dtype=bool)
    price = mean(inputs.price_usd_per_mwh)
    buy = price + adder[None, :]
    sell = np.where(sellback[None, :], price, 0.0)
    nonconvex = is_fixed[None, :] & (buy < sell)
    marginal = np.where(is_fixed[None, :], sell, buy)

    tiers = np.asarray(options.power_tiers, dtype=float)
    tier_allowed = tiers[None, :] >= inputs.min_power_fraction[:, None] - 1e-12
    hashprice = mean(inputs.hashprice_usd_per_ths_day)
    spot = mean(inputs.spot_usd_per_gpu_hour)
    deploy_cost = _deploy_cost(
        inputs, options, hashprice, pue_mining, pue_ai, spot, marginal, n_facilities
    )
    return BlockData(
        inputs=inputs,
        options=options,
        block_start_step=starts,
        block_of_step=block_of_step,
        duration_h=duration_h,
        price_usd_per_mwh=price,
        pue_mining=pue_mining,
        pue_ai=pue_ai,
        pue_mining_cap=peak(inputs.pue_mining),
        pue_ai_cap=peak(inputs.pue_ai),
        four_cp_usd_per_mw=four_cp,
        curtail_fraction=peak(request),
        dr_credit_usd_per_mw=credit,
        dr_shortfall_usd_per_mw=shortfall,
        dr_payment_usd_per_mw=2.0 * payment_per_mw,
        flexible_baseline_mw=baseline,
        hashprice_usd_per_ths_day=hashprice,
        ancillary_usd_per_mw_h=ancillary,
        service_names=names,
        service_offered=offered,
        eligible=eligible,
        deploy_probability=np.array([s.deploy_probability for s in options.services]),
        deploy_cost_usd_per_mwh=deploy_cost,
        must_serve_gpus=mean(inputs.must_serve_gpus),
        reserved_gpus=mean(inputs.reserved_gpus),
        batch_gpus=mean(inputs.batch_gpus),
        training_gpus=mean(inputs.training_gpus),
        spot_usd_per_gpu_hour=spot,
        tiers=tiers,
        tier_allowed=tier_allowed,
        hashrate_factor=tiers**options.hashrate_exponent,
        buy_usd_per_mwh=buy,
        sell_usd_per_mwh=sell,
        nonconvex_block=nonconvex,
        is_fixed_block=is_fixed,
        block_mw=np.array([c.block_mw for c in contracts]),
        block_price_usd_per_mwh=np.array([c.block_price_usd_per_mwh for c in contracts]),
    )


def _deploy_cost(
    inputs: DispatchInputs,
    options: DispatchOptions,
    hashprice: np.ndarray,
    pue_mining: np.ndarray,
    pue_ai: np.ndarray,
    spot: np.ndarray,
    marginal: np.ndarray,
    n_facilities: int,
) -> np.ndarray:
    """Value lost per facility MWh shed when a reserve is deployed, net of the energy not
    bought [USD/MWh], [B, F, L].

    The operator sheds the cheapest load of a group first: for mining the least efficient
    class at nameplate (``hashprice / (J/TH x 24 / 1e6) / PUE``); for GPUs the cheapest of
    batch, training and spot work per MWh freed (a GPU going idle frees ``load - idle``).
    """
    n_blocks = hashprice.size
    value = np.zeros((n_blocks, n_facilities, len(LOAD_GROUPS)))
    if inputs.class_facility.size:
        j_per_th = inputs.power_w_each / inputs.hashrate_ths_each
        mwh_per_ths_day = j_per_th * 24.0 * MW_PER_W
        per_class = (
            hashprice[:, None] / mwh_per_ths_day[None, :] / pue_mining[:, inputs.class_facility]
        )
        lowest = np.full((n_blocks, n_facilities), np.inf)
        np.minimum.at(lowest.T, inputs.class_facility, per_class.T)
        value[:, :, 0] = np.where(np.isfinite(lowest), lowest, 0.0)
    if inputs.pool_facility.size:
        prices = inputs.gpu_price_usd_per_gpu_hour
        lam = options.spot_load_fraction
        freed_mw = np.maximum(inputs.tdp_w - inputs.idle_w, 1e-9) * MW_PER_W
        spot_freed_mw = np.maximum(lam * inputs.tdp_w - inputs.idle_w, 1e-9) * MW_PER_W
        pue = pue_ai[:, inputs.pool_facility]
        per_pool = np.minimum.reduce(
            [
                np.broadcast_to(prices[:, 2] / freed_mw, spot.shape) / pue,
                np.broadcast_to(prices[:, 3] / freed_mw, spot.shape) / pue,
                spot / spot_freed_mw / pue,
            ]
        )
        lowest = np.full((n_blocks, n_facilities), np.inf)
        np.minimum.at(lowest.T, inputs.pool_facility, per_pool.T)
        value[:, :, 1] = np.where(np.isfinite(lowest), lowest, 0.0)
    return np.maximum(0.0, value - marginal[:, :, None])
