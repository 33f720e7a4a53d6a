"""Bitcoin network and mining economics, and GPU rental rates.

Pure functions give the protocol arithmetic (subsidy by height, blocks per day, hashprice);
:class:`BitcoinNetwork` simulates block production and difficulty retargets as the network
hashrate moves; :class:`Market` combines both with the price, fee and rental signals into the
:class:`~optimizer.types.MarketState` the optimizer sees.

Units: hashrate in H/s unless a name says otherwise (``_ths`` = TH/s, ``_ehs`` = EH/s);
difficulty is Bitcoin's dimensionless difficulty (expected hashes per block =
``difficulty * 2**32``); times are ``t_s``, seconds since scenario start. The only calendar
in this module is :func:`estimate_block_height`, used once at construction to place the
scenario start on the chain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from datasets.signals import Signal
from models.hardware import GpuSpec
from optimizer.types import MarketState

if TYPE_CHECKING:
    from twin.scenario import Market as MarketConfig

HASHES_PER_DIFFICULTY = 2**32
"""Expected hashes per block at difficulty 1 [H]."""
TARGET_BLOCK_INTERVAL_S = 600.0
"""Block interval the difficulty retarget aims for [s]."""
SECONDS_PER_DAY = 86400.0
RETARGET_INTERVAL_BLOCKS = 2016
"""Blocks per difficulty epoch [-]."""
MAX_RETARGET_FACTOR = 4.0
"""Largest change of difficulty at one retarget, up or down [-] (consensus rule)."""
HALVING_INTERVAL_BLOCKS = 210_000
INITIAL_SUBSIDY_SAT = 50 * 100_000_000
"""Block subsidy of the first epoch [satoshi]."""
SATOSHI_PER_BTC = 100_000_000
EHS_TO_HS = 1e18
THS_TO_HS = 1e12
_MAX_CHUNKS_PER_DRAW = 4096
"""Chunks drawn at once by :meth:`BitcoinNetwork.advance`; bounds the draws discarded after a
retarget when one call spans many epochs."""

BLOCK_HEIGHT_ANCHORS: tuple[tuple[datetime, int], ...] = (
    (datetime(2009, 1, 3, 18, 15, 5, tzinfo=UTC), 0),
    (datetime(2012, 11, 28, 15, 24, 38, tzinfo=UTC), 210_000),
    (datetime(2016, 7, 9, 16, 46, 13, tzinfo=UTC), 420_000),
    (datetime(2020, 5, 11, 19, 23, 43, tzinfo=UTC), 630_000),
    (datetime(2024, 4, 20, 0, 9, 27, tzinfo=UTC), 840_000),
    (datetime(2025, 3, 9, 15, 58, 46, tzinfo=UTC), 887_040),
)
"""Known (block header time UTC, height) pairs: the genesis block and the four halving
blocks (public chain data), and the retarget of 2025-03-09 (mempool.space retarget history,
``datasets/real/btc_difficulty_adjustments_mempool_2009_2025.csv``)."""


class MarketInputError(ValueError):
    """A market input (argument or signal value) is outside its valid range."""


# --------------------------------------------------------------------------- protocol math


def block_subsidy_btc(height: int | np.ndarray) -> float | np.ndarray:
    """New coins paid to the miner of the block at ``height`` [BTC].

    50 BTC halved (integer right shift in satoshi, as the consensus code does) every 210,000
    blocks; 0 after 64 halvings (and in practice already after 33, when the shift reaches 0).
    Accepts a scalar or an integer array.
    """
    heights = np.asarray(height)
    if np.any(heights < 0):
        raise MarketInputError(f"height: must be >= 0, got {height}")
    halvings = heights.astype(np.int64) // HALVING_INTERVAL_BLOCKS
    shifted = np.right_shift(np.int64(INITIAL_SUBSIDY_SAT), np.minimum(halvings, 63))
    subsidy_sat = np.where(halvings >= 64, 0, shifted)
    return _scalar_or_array(subsidy_sat / SATOSHI_PER_BTC)


def expected_blocks_per_day(
    hashrate_hs: float | np.ndarray, difficulty: float | np.ndarray
) -> float | np.ndarray:
    """Blocks a miner of ``hashrate_hs`` [H/s] finds per day on average at ``difficulty`` [-].

    ``h * 86400 / (difficulty * 2**32)``: each block takes ``difficulty * 2**32`` hashes on
    average, whatever the rest of the network does.
    """
    _require_positive("difficulty", difficulty)
    return _scalar_or_array(
        np.asarray(hashrate_hs, dtype=float)
        * SECONDS_PER_DAY
        / (np.asarray(difficulty, dtype=float) * HASHES_PER_DIFFICULTY)
    )


def network_hashrate_hs_from_difficulty(difficulty: float | np.ndarray) -> float | np.ndarray:
    """Network hashrate [H/s] that finds one block per 600 s at ``difficulty`` [-]."""
    _require_positive("difficulty", difficulty)
    return _scalar_or_array(
        np.asarray(difficulty, dtype=float) * HASHES_PER_DIFFICULTY / TARGET_BLOCK_INTERVAL_S
    )


def difficulty_from_network_hashrate_hs(hashrate_hs: float | np.ndarray) -> float | np.ndarray:
    """Difficulty [-] at which ``hashrate_hs`` [H/s] finds one block per 600 s."""
    _require_positive("network hashrate", hashrate_hs)
    return _scalar_or_array(
        np.asarray(hashrate_hs, dtype=float) * TARGET_BLOCK_INTERVAL_S / HASHES_PER_DIFFICULTY
    )


def hashprice_usd_per_ths_day(
    btc_price_usd: float | np.ndarray,
    difficulty: float | np.ndarray,
    subsidy_btc: float | np.ndarray,
    fees_btc_per_block: float | np.ndarray,
    pool_fee_fraction: float = 0.0,
) -> float | np.ndarray:
    """Expected mining revenue of one TH/s for one day [USD/(TH/s)/day].

    ``(subsidy + fees per block) * blocks per day per TH/s * BTC price * (1 - pool fee)``,
    the FPPS payout a pool pays for that hashrate. Multiply by 1000 for USD/PH/day.
    """
    if not 0.0 <= pool_fee_fraction < 1.0:
        raise MarketInputError(f"pool_fee_fraction: must be in [0, 1), got {pool_fee_fraction}")
    _require_non_negative("btc_price_usd", btc_price_usd)
    _require_non_negative("subsidy_btc", subsidy_btc)
    _require_non_negative("fees_btc_per_block", fees_btc_per_block)
    blocks_per_day = expected_blocks_per_day(THS_TO_HS, difficulty)
    reward_btc = np.asarray(subsidy_btc, dtype=float) + np.asarray(fees_btc_per_block, dtype=float)
    revenue = reward_btc * blocks_per_day * np.asarray(btc_price_usd, dtype=float)
    return _scalar_or_array(revenue * (1.0 - pool_fee_fraction))


def estimate_block_height(when: datetime) -> int:
    """Approximate chain height at ``when`` (timezone-aware) from the halving calendar.

    Interpolates linearly between :data:`BLOCK_HEIGHT_ANCHORS` and extrapolates after the
    last one at the pace of the last span (~145.6 blocks/day; hashrate growth keeps blocks a
    little faster than 144/day). Before the genesis block the height is 0.

    Error against mempool.space's retarget history: exact at the anchors, so the halving
    epoch (and the subsidy) of any date up to the last anchor is right. In between, hashrate
    swings make it a few hundred blocks off (median ~480 blocks since 2016, ~100 since the
    2024 halving) and at worst ~2,000 blocks (two weeks, in 2016-2020). Beyond the last anchor
    it drifts by roughly 1 % of the blocks elapsed.
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise MarketInputError(f"when: needs a timezone, got naive {when.isoformat()}")
    anchor_s = np.array([t.timestamp() for t, _ in BLOCK_HEIGHT_ANCHORS])
    anchor_height = np.array([h for _, h in BLOCK_HEIGHT_ANCHORS], dtype=float)
    t = when.timestamp()
    if t <= anchor_s[-1]:
        return int(np.floor(np.interp(t, anchor_s, anchor_height, left=0.0)))
    blocks_per_s = (anchor_height[-1] - anchor_height[-2]) / (anchor_s[-1] - anchor_s[-2])
    return int(np.floor(anchor_height[-1] + (t - anchor_s[-1]) * blocks_per_s))


# --------------------------------------------------------------------------- network


@dataclass(frozen=True, slots=True)
class Retarget:
    """One difficulty adjustment: at ``t_s`` [s], when the chain reached ``height``, the
    difficulty became ``difficulty`` [-], ``adjustment`` [-] times the previous one."""

    t_s: float
    height: int
    difficulty: float
    adjustment: float


class BitcoinNetwork:
    """Block production and difficulty epochs driven by a network hashrate signal.

    Blocks arrive as a Poisson process with rate ``hashrate_hs(t) / (difficulty * 2**32)``
    [1/s]. Time is cut into chunks of at most ``substep_s`` [s]; within each chunk the
    hashrate holds its value at the chunk start, and one Poisson count is drawn per chunk
    (all chunks of a call at once). When the counts reach the next multiple of 2016 blocks,
    the time of that block is drawn as the matching order statistic of the chunk's arrivals,
    the difficulty retargets to ``old * (2016 * 600 s) / epoch duration`` (clamped to
    ``[1/4, 4]`` times the old value, as in Bitcoin), and the draws after that block are
    discarded and redrawn at the new difficulty (the process is memoryless).

    Args:
        network_hashrate_ehs: total network hashrate [EH/s].
        rng: the subsystem's random generator.
        height: chain height at ``t_s = 0`` [blocks].
        difficulty: difficulty at ``t_s = 0``; default: the one at which the hashrate at
            ``t_s = 0`` finds a block every 600 s.
        epoch_start_s: when the current epoch began [s] (usually negative); default: as if
            the epoch's blocks so far (``height % 2016``) came every 600 s.
        substep_s: longest stretch over which the hashrate is held constant [s].
    """

    def __init__(
        self,
        network_hashrate_ehs: Signal,
        rng: np.random.Generator,
        height: int,
        difficulty: float | None = None,
        epoch_start_s: float | None = None,
        substep_s: float = 300.0,
    ) -> None:
        if height < 0:
            raise MarketInputError(f"height: must be >= 0, got {height}")
        if not substep_s > 0:
            raise MarketInputError(f"substep_s: must be > 0, got {substep_s}")
        self._hashrate_ehs = network_hashrate_ehs
        self._rng = rng
        self._substep_s = float(substep_s)
        if difficulty is None:
            hashrate_ehs = self._hashrate_ehs_at(0.0)
            if hashrate_ehs <= 0:
                raise MarketInputError(
                    f"{network_hashrate_ehs.name}: network hashrate at t=0 must be > 0 EH/s to "
                    "derive the starting difficulty"
                )
            difficulty = float(difficulty_from_network_hashrate_hs(hashrate_ehs * EHS_TO_HS))
        elif not difficulty > 0:
            raise MarketInputError(f"difficulty: must be > 0, got {difficulty}")
        blocks_into_epoch = height % RETARGET_INTERVAL_BLOCKS
        if epoch_start_s is None:
            epoch_start_s = -blocks_into_epoch * TARGET_BLOCK_INTERVAL_S
        self._height = int(height)
        self._difficulty = float(difficulty)
        self._epoch_start_s = float(epoch_start_s)
        self._t_s = 0.0
        self._retargets: list[Retarget] = []

    @property
    def t_s(self) -> float:
        """Time the chain has been advanced to [s]."""
        return self._t_s

    @property
    def height(self) -> int:
        """Height of the chain tip [blocks]."""
        return self._height

    @property
    def difficulty(self) -> float:
        """Current difficulty [-]."""
        return self._difficulty

    @property
    def epoch_start_s(self) -> float:
        """When the current difficulty epoch began [s]."""
        return self._epoch_start_s

    @property
    def retargets(self) -> tuple[Retarget, ...]:
        """Every retarget so far, in order, for reporting."""
        return tuple(self._retargets)

    def advance(self, t_s: float) -> None:
        """Move the chain forward to ``t_s`` [s], finding blocks and retargeting on the way.

        Raises:
            MarketInputError: ``t_s`` is earlier than the time already reached, or the
                hashrate signal holds a negative or non-finite value.
        """
        if t_s < self._t_s:
            raise MarketInputError(
                f"t_s: the chain is at {self._t_s:.0f} s and cannot go back to {t_s:.0f} s"
            )
        while self._t_s < t_s:
            self._advance_to_retarget_or(t_s)

    def _advance_to_retarget_or(self, t_end_s: float) -> None:
        """Advance towards ``t_end_s``: to it, to the next retarget block, or by at most
        ``_MAX_CHUNKS_PER_DRAW`` chunks, whichever comes first."""
        t0 = self._t_s
        chunk_count = int(np.ceil((t_end_s - t0) / self._substep_s - 1e-9))
        if chunk_count <= 0:
            self._t_s = float(t_end_s)
            return
        to_retarget = RETARGET_INTERVAL_BLOCKS - self._height % RETARGET_INTERVAL_BLOCKS
        hashes_per_block = self._difficulty * HASHES_PER_DIFFICULTY
        if chunk_count == 1:
            # The usual case (one call per dispatch interval): plain floats are much cheaper.
            hashrate_hs = self._hashrate_ehs_at(t0) * EHS_TO_HS
            count = int(self._rng.poisson(hashrate_hs * (t_end_s - t0) / hashes_per_block))
            if count < to_retarget:
                self._height += count
                self._t_s = float(t_end_s)
            else:
                self._retarget_inside(t0, t_end_s, to_retarget, count)
            return
        if chunk_count > _MAX_CHUNKS_PER_DRAW:
            chunk_count = _MAX_CHUNKS_PER_DRAW
            t_end_s = t0 + chunk_count * self._substep_s
        chunk_start_s = t0 + self._substep_s * np.arange(chunk_count)
        chunk_end_s = np.minimum(chunk_start_s + self._substep_s, t_end_s)
        chunk_hashrate_hs = self._hashrate_over(t0, t_end_s, chunk_count) * EHS_TO_HS
        counts = self._rng.poisson(
            chunk_hashrate_hs * (chunk_end_s - chunk_start_s) / hashes_per_block
        )
        found = np.cumsum(counts)
        chunk = int(np.searchsorted(found, to_retarget))
        if chunk == found.size:
            self._height += int(found[-1])
            self._t_s = float(t_end_s)
            return
        before = int(found[chunk - 1]) if chunk > 0 else 0
        self._height += before
        self._retarget_inside(
            float(chunk_start_s[chunk]),
            float(chunk_end_s[chunk]),
            to_retarget - before,
            int(counts[chunk]),
        )

    def _retarget_inside(
        self, chunk_start_s: float, chunk_end_s: float, needed: int, in_chunk: int
    ) -> None:
        """The ``needed``-th of ``in_chunk`` uniform arrivals in the chunk closes the epoch:
        its time is the matching order statistic, ``Beta(needed, in_chunk - needed + 1)``."""
        position = self._rng.beta(needed, in_chunk - needed + 1)
        t_block = chunk_start_s + float(position) * (chunk_end_s - chunk_start_s)
        self._height += needed
        self._retarget(t_block)
        self._t_s = t_block

    def _retarget(self, t_block_s: float) -> None:
        duration_s = t_block_s - self._epoch_start_s
        target_s = RETARGET_INTERVAL_BLOCKS * TARGET_BLOCK_INTERVAL_S
        adjustment = target_s / duration_s if duration_s > 0 else MAX_RETARGET_FACTOR
        adjustment = float(np.clip(adjustment, 1.0 / MAX_RETARGET_FACTOR, MAX_RETARGET_FACTOR))
        self._difficulty *= adjustment
        self._epoch_start_s = t_block_s
        self._retargets.append(Retarget(t_block_s, self._height, self._difficulty, adjustment))

    def _hashrate_over(self, t0_s: float, t1_s: float, count: int) -> np.ndarray:
        values = np.asarray(self._hashrate_ehs.over(t0_s, t1_s, self._substep_s), dtype=float)
        values = values[:count]
        if values.size != count:
            raise MarketInputError(
                f"{self._hashrate_ehs.name}: expected {count} values on [{t0_s:.0f}, "
                f"{t1_s:.0f}) s, got {values.size}"
            )
        if not np.all(np.isfinite(values) & (values >= 0)):
            bad = int(np.flatnonzero(~(np.isfinite(values) & (values >= 0)))[0])
            raise MarketInputError(
                f"{self._hashrate_ehs.name}: network hashrate must be finite and >= 0 EH/s, "
                f"got {values[bad]} at t={t0_s + bad * self._substep_s:.0f} s"
            )
        return values

    def _hashrate_ehs_at(self, t_s: float) -> float:
        value = float(self._hashrate_ehs.at(t_s))
        if not (math.isfinite(value) and value >= 0):
            raise MarketInputError(
                f"{self._hashrate_ehs.name}: network hashrate must be finite and >= 0 EH/s, "
                f"got {value} at t={t_s:.0f} s"
            )
        return value


# --------------------------------------------------------------------------- market


class Market:
    """Bitcoin and GPU-rental conditions over a scenario.

    Owns a :class:`BitcoinNetwork` started at ``cfg.block_height_at_start`` (default: the
    estimate for ``start``) and ``cfg.difficulty_at_start`` (default: from the hashrate at
    ``t_s = 0``). :meth:`state_at` must be called with non-decreasing times because it
    advances the chain.

    Args:
        cfg: the scenario's ``market`` block.
        start: scenario start (timezone-aware), only to place the chain on the calendar.
        btc_price: BTC price [USD].
        network_hashrate_ehs: network hashrate [EH/s].
        fees_btc_per_block: mean transaction fees per block [BTC].
        gpu_rental_multiplier: multiplier on each GPU type's rental index [-].
        rng: the market's random generator (block arrivals).
    """

    def __init__(
        self,
        cfg: MarketConfig,
        start: datetime,
        btc_price: Signal,
        network_hashrate_ehs: Signal,
        fees_btc_per_block: Signal,
        gpu_rental_multiplier: Signal,
        rng: np.random.Generator,
    ) -> None:
        height = cfg.block_height_at_start
        if height is None:
            height = estimate_block_height(start)
        self.cfg = cfg
        self.btc_price = btc_price
        self.network_hashrate_ehs = network_hashrate_ehs
        self.fees_btc_per_block = fees_btc_per_block
        self.gpu_rental_multiplier = gpu_rental_multiplier
        self.network = BitcoinNetwork(
            network_hashrate_ehs, rng, height=height, difficulty=cfg.difficulty_at_start
        )

    def state_at(self, t_s: float) -> MarketState:
        """Market conditions at ``t_s`` [s]; advances the chain to ``t_s``.

        The hashprice is what the next block pays (subsidy at ``height + 1`` plus fees) per
        TH/s and day at the current difficulty, after the pool fee.

        Raises:
            MarketInputError: ``t_s`` earlier than a previous call, or a signal value out of
                range (negative price or fees).
        """
        self.network.advance(t_s)
        btc_price_usd = _signal_value(self.btc_price, t_s, "BTC price [USD]", positive=True)
        fees_btc = _signal_value(self.fees_btc_per_block, t_s, "fees [BTC/block]")
        multiplier = _signal_value(self.gpu_rental_multiplier, t_s, "GPU rental multiplier [-]")
        hashrate_ehs = _signal_value(self.network_hashrate_ehs, t_s, "network hashrate [EH/s]")
        subsidy_btc = _subsidy_btc(self.network.height + 1)
        difficulty = self.network.difficulty
        # hashprice_usd_per_ths_day on already validated floats, without its array checks
        blocks_per_ths_day = THS_TO_HS * SECONDS_PER_DAY / (difficulty * HASHES_PER_DIFFICULTY)
        hashprice = (
            (subsidy_btc + fees_btc)
            * blocks_per_ths_day
            * btc_price_usd
            * (1.0 - self.cfg.pool_fee_fraction)
        )
        return MarketState(
            btc_price_usd=btc_price_usd,
            hashprice_usd_per_ths_day=hashprice,
            difficulty=difficulty,
            network_hashrate_ehs=hashrate_ehs,
            block_subsidy_btc=subsidy_btc,
            fees_btc_per_block=fees_btc,
            gpu_rental_multiplier=multiplier,
        )

    def gpu_rental_usd_per_gpu_hour(self, spec: GpuSpec, t_s: float) -> float:
        """Spot rental price of one GPU of ``spec`` at ``t_s`` [USD/GPU-h]:
        the type's rental index times the market multiplier."""
        multiplier = _signal_value(self.gpu_rental_multiplier, t_s, "GPU rental multiplier [-]")
        return spec.rental_index_usd_per_gpu_hour * multiplier


# --------------------------------------------------------------------------- helpers


def _subsidy_btc(height: int) -> float:
    """:func:`block_subsidy_btc` for one non-negative height, in plain integers."""
    halvings = height // HALVING_INTERVAL_BLOCKS
    return 0.0 if halvings >= 64 else (INITIAL_SUBSIDY_SAT >> halvings) / SATOSHI_PER_BTC


def _signal_value(signal: Signal, t_s: float, what: str, positive: bool = False) -> float:
    value = float(signal.at(t_s))
    valid = math.isfinite(value) and (value > 0 if positive else value >= 0)
    if not valid:
        bound = "> 0" if positive else ">= 0"
        raise MarketInputError(
            f"{signal.name}: {what} must be finite and {bound}, got {value} at t={t_s:.0f} s"
        )
    return value


def _require_positive(name: str, value: float | np.ndarray) -> None:
    array = np.asarray(value, dtype=float)
    if not np.all(array > 0):
        raise MarketInputError(f"{name}: must be > 0, got {array[~(array > 0)].flat[0]}")


def _require_non_negative(name: str, value: float | np.ndarray) -> None:
    array = np.asarray(value, dtype=float)
    if not np.all(array >= 0):
        raise MarketInputError(f"{name}: must be >= 0, got {array[~(array >= 0)].flat[0]}")


def _scalar_or_array(value: np.ndarray) -> float | np.ndarray:
    array = np.asarray(value, dtype=float)
    return float(array) if array.ndim == 0 else array
