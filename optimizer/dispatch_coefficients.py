"""Per-variable coefficients of the dispatch model, shared by the matrix build and read-back.

Each array is what one unit of a decision adds to a facility quantity in one block, e.g.
``energy_per_miner[b, c, k]`` is the facility MW one miner of class ``c`` adds at tier
``k`` in block ``b`` over sleeping. The constant parts (sleeping miners, idle GPUs) are
separate, so every facility power is ``constant + sum(coefficient x decision)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optimizer.dispatch_blocks import MW_PER_W, BlockData

USE_REALTIME, USE_RESERVED, USE_BATCH, USE_TRAINING, USE_SPOT = range(5)
INTERRUPTIBLE_USES = (USE_BATCH, USE_TRAINING, USE_SPOT)


@dataclass(frozen=True, eq=False)
class Coefficients:
    """Linear coefficients of one solve (shapes as in :class:`BlockData`; ``U`` = 5 uses).

    Attributes:
        it_per_miner: IT MW of one hashing miner over a sleeping one, [C, K].
        energy_per_miner: facility MW (mean PUE), [B, C, K].
        cap_per_miner: facility MW as the cap counts it (peak PUE), [B, C, K].
        ths_per_miner: hashrate of one miner [TH/s], [C, K].
        gpu_it_per_gpu: IT MW of one busy GPU over idle (spot at its mean load), [P, U].
        energy_per_gpu: facility MW (mean PUE), [B, P, U].
        cap_per_gpu: facility MW as the cap counts it (TDP, peak PUE), [B, P, U].
        spot_flexible_per_gpu: facility MW of one spot GPU's whole draw (accounting's
            flexible load), [B, P].
        sleep_it_mw, idle_it_mw: IT MW of all miners asleep / all GPUs idle, [F].
        energy_floor_mw, cap_floor_mw: facility MW with every miner asleep and every GPU
            idle (mean / peak PUE), [B, F].
        energy_usd_per_mw: what one facility MW held for the block costs in index energy
            and expected 4CP charges [USD/MW], [B, F] (fixed blocks: 4CP only; their
            energy is priced on the resale / above-block variables).
        mining_revenue_per_miner: [USD], [B, C, K].
        gpu_revenue_per_gpu: money per busy GPU for the block [USD], [B, P, U].
        active_it_now_mw: IT MW above the sleep floor of the miners hashing now, [F].
    """

    it_per_miner: np.ndarray
    energy_per_miner: np.ndarray
    cap_per_miner: np.ndarray
    ths_per_miner: np.ndarray
    gpu_it_per_gpu: np.ndarray
    energy_per_gpu: np.ndarray
    cap_per_gpu: np.ndarray
    spot_flexible_per_gpu: np.ndarray
    sleep_it_mw: np.ndarray
    idle_it_mw: np.ndarray
    energy_floor_mw: np.ndarray
    cap_floor_mw: np.ndarray
    energy_usd_per_mw: np.ndarray
    mining_revenue_per_miner: np.ndarray
    gpu_revenue_per_gpu: np.ndarray
    active_it_now_mw: np.ndarray


def coefficients(blocks: BlockData) -> Coefficients:
    """The coefficients of ``blocks`` (see :class:`Coefficients`)."""
    x = blocks.inputs
    o = blocks.options
    n_facilities = len(x.facility_ids)
    cf, pf = x.class_facility, x.pool_facility
    it_per_miner = (
        x.power_w_each[:, None] * blocks.tiers[None, :] - x.sleep_w_each[:, None]
    ) * MW_PER_W
    energy_per_miner = blocks.pue_mining[:, cf][:, :, None] * it_per_miner[None]
    cap_per_miner = blocks.pue_mining_cap[:, cf][:, :, None] * it_per_miner[None]
    ths_per_miner = x.hashrate_ths_each[:, None] * blocks.hashrate_factor[None, :]

    load = np.ones(5)
    load[USE_SPOT] = o.spot_load_fraction
    gpu_it = (load[None, :] * x.tdp_w[:, None] - x.idle_w[:, None]) * MW_PER_W
    gpu_cap_it = np.repeat(((x.tdp_w - x.idle_w) * MW_PER_W)[:, None], 5, axis=1)
    energy_per_gpu = blocks.pue_ai[:, pf][:, :, None] * gpu_it[None]
    cap_per_gpu = blocks.pue_ai_cap[:, pf][:, :, None] * gpu_cap_it[None]
    spot_flexible = blocks.pue_ai[:, pf] * (o.spot_load_fraction * x.tdp_w * MW_PER_W)[None, :]

    sleep_it = np.bincount(
        cf, weights=x.healthy_miners * x.sleep_w_each * MW_PER_W, minlength=n_facilities
    )
    idle_it = np.bincount(pf, weights=x.healthy_gpus * x.idle_w * MW_PER_W, minlength=n_facilities)
    energy_floor = blocks.pue_mining * sleep_it + blocks.pue_ai * idle_it
    cap_floor = blocks.pue_mining_cap * sleep_it + blocks.pue_ai_cap * idle_it

    index_price = np.where(blocks.is_fixed_block[None, :], 0.0, blocks.buy_usd_per_mwh)
    energy_usd_per_mw = index_price * blocks.duration_h[:, None] + blocks.four_cp_usd_per_mw

    dt = blocks.duration_h
    mining_revenue = (
        dt[:, None, None]
        * blocks.hashprice_usd_per_ths_day[:, None, None]
        / 24.0
        * ths_per_miner[None]
    )
    n_blocks, n_pools = dt.size, x.tdp_w.size
    gpu_price = np.empty((n_blocks, n_pools, 5))
    gpu_price[:, :, :4] = x.gpu_price_usd_per_gpu_hour[None, :, :]
    gpu_price[:, :, USE_SPOT] = blocks.spot_usd_per_gpu_hour
    gpu_revenue = dt[:, None, None] * gpu_price

    active_it_now = np.bincount(
        cf,
        weights=x.active_now * (x.power_w_each * x.power_fraction_now - x.sleep_w_each) * MW_PER_W,
        minlength=n_facilities,
    )
    return Coefficients(
        it_per_miner=it_per_miner,
        energy_per_miner=energy_per_miner,
        cap_per_miner=cap_per_miner,
        ths_per_miner=ths_per_miner,
        gpu_it_per_gpu=gpu_it,
        energy_per_gpu=energy_per_gpu,
        cap_per_gpu=cap_per_gpu,
        spot_flexible_per_gpu=spot_flexible,
        sleep_it_mw=sleep_it,
        idle_it_mw=idle_it,
        energy_floor_mw=energy_floor,
        cap_floor_mw=cap_floor,
        energy_usd_per_mw=energy_usd_per_mw,
        mining_revenue_per_miner=mining_revenue,
        gpu_revenue_per_gpu=gpu_revenue,
        active_it_now_mw=active_it_now,
    )
