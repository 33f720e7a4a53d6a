"""The GPU fleet: every GPU one row of numpy columns, labelled with uses per pool.

A pool is the GPUs of one (facility, type); its devices sit in one contiguous slice. The
scheduler's busy time becomes use labels (inference, batch, training, spot, idle, off) and a
step turns labels, busy time and power caps into power and temperature over
``[t0_s, t0_s + dt_s)``. Physics: :mod:`models.fleet_physics`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from models.fleet_physics import (
    GPU_THERMAL_C_PER_KW,
    GPU_THERMAL_TIME_CONSTANT_S,
    N_GPU_USES,
    SPOT_LOAD_FRACTION,
    WORK_COLUMNS,
    WORK_USES,
    ClampResult,
    FleetError,
    GpuHealth,
    GpuUse,
    check_interval,
    checked_ambient,
    clamp_fraction,
    device_indices,
    lagged_temp_c,
    read_only,
    steady_temp_c,
)
from models.fleet_table import GroupTable, group_slice, merge_groups, spec_column, spec_index
from models.hardware import GpuSpec


@dataclass(frozen=True, slots=True)
class UseAssignment:
    """Outcome of :meth:`GpuFleet.apply_uses`: GPUs per use asked for and labelled [-].

    ``requested`` and ``applied`` are indexed by :class:`GpuUse`; ``applied[IDLE]`` is every
    healthy GPU left over. ``shortfall`` counts non-idle GPUs asked for but not available.
    """

    requested: tuple[int, ...]
    applied: tuple[int, ...]
    shortfall: int


@dataclass(frozen=True, slots=True)
class GpuStepResult:
    """GPU fleet over one interval, per pool (arrays ``[n_pools, N_GPU_USES]`` by GpuUse).

    Attributes:
        t0_s, dt_s: interval start and length [s].
        pool_facility: facility index of each pool.
        n_facilities: rows of the per-facility sums.
        gpus_by_use: healthy GPUs labelled with each use during the interval [-].
        failed: failed GPUs per pool [-].
        busy_gpu_s: GPU-seconds of work counted per use, after clipping to the labelled
            GPUs; the SPOT column is the whole rented time [GPU-s].
        clipped_busy_gpu_s: busy GPU-seconds reported beyond what the labelled GPUs could
            do, not counted [GPU-s].
        mean_power_kw_by_use: mean IT power per use [kW].
        energy_kwh_by_use: IT energy per use [kWh].
    """

    t0_s: float
    dt_s: float
    pool_facility: np.ndarray
    n_facilities: int
    gpus_by_use: np.ndarray
    failed: np.ndarray
    busy_gpu_s: np.ndarray
    clipped_busy_gpu_s: np.ndarray
    mean_power_kw_by_use: np.ndarray
    energy_kwh_by_use: np.ndarray

    @property
    def mean_power_kw(self) -> np.ndarray:
        """Mean IT power per pool [kW]."""
        return self.mean_power_kw_by_use.sum(axis=1)

    @property
    def energy_kwh(self) -> np.ndarray:
        """IT energy per pool [kWh]."""
        return self.energy_kwh_by_use.sum(axis=1)

    def by_facility(self, per_pool: np.ndarray) -> np.ndarray:
        """Sum a per-pool array (``[n_pools]`` or ``[n_pools, k]``) per facility."""
        values = np.asarray(per_pool, dtype=np.float64)
        out = np.zeros((self.n_facilities, *values.shape[1:]), dtype=np.float64)
        np.add.at(out, self.pool_facility, values)
        return out


_SERVE_ORDER = np.array([*WORK_USES, GpuUse.SPOT, GpuUse.OFF], dtype=np.int64)
"""Uses in the order they get GPUs when a pool is short (IDLE takes what is left)."""

_LABEL_LAYOUT = np.array([*WORK_USES, GpuUse.SPOT, GpuUse.IDLE, GpuUse.OFF], dtype=np.int8)
"""Order of the labels along a pool's healthy GPUs: work first, OFF on the last ones."""
_LABEL_ORDER = _LABEL_LAYOUT.astype(np.int64)


def _serve_uses(requested: np.ndarray, healthy: np.ndarray) -> np.ndarray:
    """GPUs each use gets per pool: requests served in :data:`_SERVE_ORDER` until a pool's
    ``healthy`` GPUs run out; IDLE gets the rest.

    Args:
        requested: ``[pools, N_GPU_USES]`` whole GPUs asked for per use (IDLE ignored) [-].
        healthy: ``[pools]`` healthy GPUs per pool [-].

    Returns:
        ``[pools, N_GPU_USES]`` GPUs labelled per use [-].
    """
    served = np.minimum(requested[:, _SERVE_ORDER].cumsum(axis=1), healthy[:, None])
    gained = served.copy()
    gained[:, 1:] -= served[:, :-1]
    applied = np.empty_like(requested)
    applied[:, _SERVE_ORDER] = gained
    applied[:, GpuUse.IDLE] = healthy - served[:, -1]
    return applied


def _use_labels(applied: np.ndarray) -> np.ndarray:
    """The labels of all pools' healthy GPUs in row order (:data:`_LABEL_LAYOUT` per pool)."""
    counts = applied[:, _LABEL_ORDER]
    layout = np.broadcast_to(_LABEL_LAYOUT, counts.shape).ravel()
    return layout.repeat(counts.ravel())


def _checked_node_size(where: str, spec: GpuSpec, count: int, node_size: int) -> int:
    """A group's GPUs per node [-]; FleetError naming ``where`` unless it is a whole number
    >= 1 that divides the group's ``count``."""
    if int(node_size) != node_size or node_size < 1:
        raise FleetError(f"{where}: node_size must be an integer >= 1, got {node_size}")
    if count % node_size:
        raise FleetError(f"{where}: count {count} is not a multiple of node_size")
    return int(node_size)


class GpuFleet:
    """All GPUs as columns; build with :meth:`from_groups`.

    Public columns (read-only views): ``facility`` (int16), ``type`` (int16 index into
    ``types``), ``node`` (int32 global node id), ``state`` (int8 :class:`GpuHealth`),
    ``power_limit_fraction`` (float32 NVML cap, fraction of TDP), ``use`` (int8
    :class:`GpuUse`), readings ``power_w``, ``util`` (0-1), ``temp_c`` (float32, end of the
    last step). Pool ``p`` covers devices ``pool_start[p]:pool_start[p + 1]`` at facility
    ``pool_facility[p]`` of type ``pool_type[p]``.

    A failed GPU is always labelled OFF, and a power cap is set per pool, so every GPU of one
    (pool, use) cell draws the same power: a step computes a ``[n_pools, N_GPU_USES]`` table
    and gathers it onto the devices. Use counts and failure counts are kept by the commands.
    Change state only through the command methods.
    """

    def __init__(
        self,
        types: list[GpuSpec],
        table: GroupTable,
        node: np.ndarray,
        ambient_c: float,
    ) -> None:
        """Use :meth:`from_groups`; this takes the already sorted pool table."""
        self.types = list(types)
        self.n_facilities = int(table.n_facilities)
        self.pool_facility = read_only(table.facility.astype(np.int16))
        self.pool_type = read_only(table.spec.astype(np.int16))
        self.pool_start = read_only(table.start.astype(np.int64))
        sizes = np.diff(self.pool_start)
        n = int(self.pool_start[-1])
        tdp_w = spec_column(self.types, "tdp_w")
        idle_w = spec_column(self.types, "idle_w")
        self._type_min_fraction = spec_column(self.types, "min_power_fraction")
        self._facility = np.repeat(self.pool_facility, sizes).astype(np.int16)
        self._type = np.repeat(self.pool_type, sizes).astype(np.int16)
        self._node = node.astype(np.int32)
        self._state = np.full(n, GpuHealth.OK, dtype=np.int8)
        self._power_limit_fraction = np.ones(n, dtype=np.float32)
        self._use = np.full(n, GpuUse.IDLE, dtype=np.int8)
        self._tdp_w = tdp_w[self._type].astype(np.float32)
        self._idle_w = idle_w[self._type].astype(np.float32)
        self._pool_key = np.repeat(np.arange(len(sizes)) * N_GPU_USES, sizes).astype(np.int32)
        self._pool_sizes = sizes
        self._pool_facility_i64 = self.pool_facility.astype(np.int64)
        self._pool_tdp_w = tdp_w[self.pool_type].astype(np.float32)
        self._pool_idle_w = idle_w[self.pool_type].astype(np.float32)
        self._pool_limit_fraction = np.ones(len(sizes), dtype=np.float32)
        # kept current by the commands (None: recount on next use)
        self._counts: np.ndarray | None = None
        self._failed: np.ndarray | None = None
        self._power_w = self._idle_w.copy()
        self._util = np.zeros(n, dtype=np.float32)
        self._temp_c = (ambient_c + GPU_THERMAL_C_PER_KW * self._power_w / 1000.0).astype(
            np.float32
        )

        self.facility = read_only(self._facility)
        self.type = read_only(self._type)
        self.node = read_only(self._node)
        self.state = read_only(self._state)
        self.power_limit_fraction = read_only(self._power_limit_fraction)
        self.use = read_only(self._use)
        self.power_w = read_only(self._power_w)
        self.util = read_only(self._util)
        self.temp_c = read_only(self._temp_c)

    @classmethod
    def from_groups(
        cls,
        groups: Sequence[tuple[int, GpuSpec, int, int]],
        n_facilities: int | None = None,
        ambient_c: float = 25.0,
    ) -> GpuFleet:
        """Build a fleet from ``(facility_index, spec, count, node_size)`` groups.

        Groups of one (facility, type) merge into one pool; pools are ordered by facility,
        then by first appearance of the type. Nodes of ``node_size`` consecutive GPUs get
        global ids in that order. Every GPU starts healthy, IDLE, uncapped.

        Raises:
            FleetError: negative facility or count, node_size < 1, count not a multiple of
                node_size, or two different specs with one type id.
        """
        merged = merge_groups(groups, "gpu", "type_id", _checked_node_size, n_facilities)
        nodes = [np.zeros(0, dtype=np.int64)]
        next_node = 0
        for _, _, count, node_size in merged.rows:
            nodes.append(next_node + np.arange(count) // node_size)
            next_node += count // node_size
        return cls(merged.specs, merged.table, np.concatenate(nodes), ambient_c)

    # ---------------------------------------------------------------- lookup

    @property
    def n_devices(self) -> int:
        """Number of GPUs."""
        return int(self.pool_start[-1])

    @property
    def n_pools(self) -> int:
        """Number of (facility, type) pools."""
        return int(self.pool_facility.shape[0])

    def type_index(self, gpu_type: int | str) -> int:
        """Index into ``types`` of a type given by index or ``type_id``."""
        return spec_index(self.types, gpu_type, "type_id")

    def pool_index(self, facility: int, gpu_type: int | str) -> int:
        """The pool of (facility, type); FleetError if the facility has no such GPUs."""
        t = self.type_index(gpu_type)
        hits = np.flatnonzero((self.pool_facility == facility) & (self.pool_type == t))
        if hits.size == 0:
            raise FleetError(f"facility {facility} has no GPUs of type {self.types[t].type_id}")
        return int(hits[0])

    def pool_slice(self, pool_index: int) -> slice:
        """Device rows of one pool."""
        return group_slice(self.pool_start, pool_index, "pool_index")

    def counts_by_use(self) -> np.ndarray:
        """Healthy GPUs per pool and use now, ``[n_pools, N_GPU_USES]``."""
        if self._counts is None:
            healthy = (self._state == GpuHealth.OK).astype(np.float64)
            counts = np.bincount(
                self._pool_key + self._use, weights=healthy, minlength=self.n_pools * N_GPU_USES
            )
            self._counts = counts.reshape(self.n_pools, N_GPU_USES).astype(np.int64)
        return self._counts.copy()

    def failed_by_pool(self) -> np.ndarray:
        """Failed GPUs per pool now."""
        if self._failed is None:
            failed = self._state == GpuHealth.FAILED
            self._failed = np.bincount(
                self._pool_key[failed] // N_GPU_USES, minlength=self.n_pools
            ).astype(np.int64)
        return self._failed.copy()

    # ---------------------------------------------------------------- commands

    def apply_uses(self, pool_index: int, gpus_by_use: Mapping[int, float]) -> UseAssignment:
        """Label the healthy GPUs of a pool so each use has its (rounded) count.

        Labels go on the first healthy GPUs in the order INFERENCE, BATCH, TRAINING, SPOT,
        then IDLE for the rest, with OFF on the last ones. When the pool is short, uses are
        served in the order INFERENCE, BATCH, TRAINING, SPOT, OFF. An IDLE entry is ignored:
        idle is whatever is left.

        Args:
            pool_index: the pool.
            gpus_by_use: mean GPUs per use over the interval (GpuUse or int keys) [-].
        """
        rows = self.pool_slice(pool_index)
        requested = np.zeros((1, N_GPU_USES), dtype=np.int64)
        for key, value in gpus_by_use.items():
            try:
                use = GpuUse(int(key))
            except ValueError:
                raise FleetError(f"gpus_by_use: unknown use {key!r}") from None
            if not (np.isfinite(value) and value >= 0):
                raise FleetError(f"gpus_by_use[{use.name}]: must be >= 0, got {value}")
            requested[0, use] = int(np.rint(value))
        requested[0, GpuUse.IDLE] = 0
        healthy = np.flatnonzero(self._state[rows] == GpuHealth.OK) + rows.start
        applied = _serve_uses(requested, np.array([healthy.size]))
        self._use[healthy] = _use_labels(applied)
        self._counts = None
        shortfall = int(requested.sum() - (applied.sum() - applied[0, GpuUse.IDLE]))
        return UseAssignment(tuple(requested[0].tolist()), tuple(applied[0].tolist()), shortfall)

    def apply_uses_all(self, gpus_by_pool_and_use: np.ndarray) -> np.ndarray:
        """:meth:`apply_uses` for every pool at once (one vectorized pass over the labels).

        Args:
            gpus_by_pool_and_use: ``[n_pools, N_GPU_USES]`` mean GPUs per use over the
                interval [-]; the IDLE column is ignored (idle is whatever is left).

        Returns:
            GPUs labelled per pool and use, ``[n_pools, N_GPU_USES]`` (IDLE: the rest of the
            healthy GPUs).
        """
        values = self._pool_use_table(gpus_by_pool_and_use, "gpus_by_pool_and_use")
        if not (np.isfinite(values) & (values >= 0)).all():
            bad = ~(np.isfinite(values) & (values >= 0))
            pool, use = np.argwhere(bad)[0]
            raise FleetError(
                f"gpus_by_pool_and_use[{pool}, {GpuUse(int(use)).name}]: must be >= 0, "
                f"got {values[pool, use]}"
            )
        requested = np.rint(values).astype(np.int64)
        requested[:, GpuUse.IDLE] = 0
        failed = self.failed_by_pool()
        applied = _serve_uses(requested, self._pool_sizes - failed)
        labels = _use_labels(applied)
        if failed.any():
            self._use[np.flatnonzero(self._state == GpuHealth.OK)] = labels
        else:
            self._use[:] = labels
        self._counts = applied.copy()
        return applied

    def set_power_limit(self, pool_index: int, fraction: float) -> ClampResult:
        """Set the NVML power cap of every GPU of a pool, clamped to
        ``[spec.min_power_fraction, 1]`` of TDP; the result says whether it was clamped."""
        rows = self.pool_slice(pool_index)
        lowest = self._type_min_fraction[self.pool_type[pool_index]]
        result = clamp_fraction(fraction, lowest, "power_limit_fraction")
        self._power_limit_fraction[rows] = result.applied
        self._pool_limit_fraction[pool_index] = result.applied
        return result

    def fail(self, indices: Iterable[int] | np.ndarray) -> None:
        """Mark GPUs failed: they draw nothing and get no use label until repaired."""
        rows = device_indices(indices, self.n_devices)
        self._state[rows] = GpuHealth.FAILED
        self._use[rows] = GpuUse.OFF
        self._counts = self._failed = None

    def repair(self, indices: Iterable[int] | np.ndarray) -> None:
        """Return failed GPUs to service as IDLE; healthy GPUs are left alone."""
        rows = device_indices(indices, self.n_devices)
        rows = rows[self._state[rows] == GpuHealth.FAILED]
        self._state[rows] = GpuHealth.OK
        self._use[rows] = GpuUse.IDLE
        self._counts = self._failed = None

    def _pool_use_table(self, values: np.ndarray, field: str) -> np.ndarray:
        """``values`` as a float64 ``[n_pools, N_GPU_USES]`` table (units as the caller's);
        FleetError naming ``field`` for any other shape."""
        table = np.asarray(values, dtype=np.float64)
        if table.shape != (self.n_pools, N_GPU_USES):
            raise FleetError(
                f"{field}: shape must be ({self.n_pools}, {N_GPU_USES}), got {table.shape}"
            )
        return table

    # ---------------------------------------------------------------- physics

    def _cell_power_w(self, util_cell: np.ndarray) -> np.ndarray:
        """Draw of one GPU per (pool, use) cell [W], float32 ``[n_pools, N_GPU_USES]``.

        ``util * tdp_w * cap + (1 - util) * idle_w`` with the spot load capping spot GPUs
        and 0 for OFF; ``util_cell`` is the busy share per cell [-] (0 for OFF).
        """
        limit = np.repeat(self._pool_limit_fraction[:, None], N_GPU_USES, axis=1)
        limit[:, GpuUse.SPOT] = np.minimum(
            self._pool_limit_fraction, np.float32(SPOT_LOAD_FRACTION)
        )
        busy_w = self._pool_tdp_w[:, None] * limit
        on = np.ones(util_cell.shape, dtype=bool)
        on[:, GpuUse.OFF] = False
        idle_w = self._pool_idle_w[:, None]
        return (util_cell * busy_w + (1 - util_cell) * idle_w) * on

    def step(
        self,
        t0_s: float,
        dt_s: float,
        busy_gpu_s_by_pool_and_use: np.ndarray,
        ambient_c_by_facility: np.ndarray,
    ) -> GpuStepResult:
        """Advance the fleet over ``[t0_s, t0_s + dt_s)``; update readings; return pool means.

        Args:
            t0_s: interval start [s].
            dt_s: interval length [s], > 0.
            busy_gpu_s_by_pool_and_use: ``[n_pools, N_GPU_USES]`` GPU-seconds of customer
                work per use in the interval [GPU-s]. Only INFERENCE, BATCH and TRAINING
                columns are read; each is clipped to ``labelled GPUs * dt_s``. Spot-rented
                GPUs count busy all interval.
            ambient_c_by_facility: outdoor temperature per facility index [°C].

        A busy GPU draws ``tdp_w * power_limit_fraction``; a labelled GPU not busy draws
        ``idle_w``; a spot GPU ``tdp_w * min(SPOT_LOAD_FRACTION, power_limit_fraction)``;
        IDLE draws ``idle_w``; OFF and failed draw 0. Which GPUs of a use are busy is not
        known, so every GPU of a use gets the use's busy share as ``util``.
        """
        check_interval(t0_s, dt_s)
        ambient = checked_ambient(ambient_c_by_facility, self.n_facilities)
        busy = self._pool_use_table(busy_gpu_s_by_pool_and_use, "busy_gpu_s_by_pool_and_use")
        if not (np.isfinite(busy) & (busy >= 0)).all():
            raise FleetError("busy_gpu_s_by_pool_and_use: values must be finite and >= 0")

        counts = self.counts_by_use()
        capacity_s = counts * dt_s
        work = WORK_COLUMNS
        counted = np.zeros_like(busy)
        counted[:, work] = np.minimum(busy[:, work], capacity_s[:, work])
        counted[:, GpuUse.SPOT] = capacity_s[:, GpuUse.SPOT]
        clipped = np.zeros_like(busy)
        clipped[:, work] = busy[:, work] - counted[:, work]
        util_cell = np.divide(
            counted, capacity_s, out=np.zeros_like(counted), where=capacity_s > 0
        ).astype(np.float32)
        util_cell[:, GpuUse.OFF] = 0.0
        power_cell = self._cell_power_w(util_cell)

        # n equal float32 draws add up exactly in float64, so count x draw is the exact sum
        mean_power_kw = counts * power_cell.astype(np.float64) / 1000.0
        key = self._pool_key + self._use
        ambient_cell = ambient[self.pool_facility][:, None]
        steady_cell = steady_temp_c(ambient_cell, power_cell / 1000.0, GPU_THERMAL_C_PER_KW)
        steady = np.asarray(steady_cell).ravel().take(key)
        self._temp_c[:] = lagged_temp_c(self._temp_c, steady, dt_s, GPU_THERMAL_TIME_CONSTANT_S)
        self._power_w[:] = power_cell.ravel().take(key)
        self._util[:] = util_cell.ravel().take(key)

        return GpuStepResult(
            t0_s=float(t0_s),
            dt_s=float(dt_s),
            pool_facility=self._pool_facility_i64,
            n_facilities=int(ambient.shape[0]),
            gpus_by_use=counts,
            failed=self.failed_by_pool(),
            busy_gpu_s=counted,
            clipped_busy_gpu_s=clipped,
            mean_power_kw_by_use=mean_power_kw,
            energy_kwh_by_use=mean_power_kw * (dt_s / 3600.0),
        )
