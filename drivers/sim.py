"""Simulated drivers backed by the fleet arrays of :mod:`models.fleet`.

They implement :class:`drivers.base.AsicDriver` and :class:`drivers.base.GpuDriver` the way
a real driver would: carry out each command, read the arrays back, and mark a command
verified only when the devices now match it (for example, asking for more hashing miners
than are healthy leaves ``verified=False`` with the reason). Commands take effect at
``clock()`` [s], the simulation time (``env.now``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import numpy as np

from drivers.base import (
    ApplyResult,
    AsicCommand,
    AsicReadings,
    Capabilities,
    CommandResult,
    DeviceClass,
    DriverClosedError,
    GpuCommand,
    GpuReadings,
)
from models.fleet import (
    ACTIVE,
    FAILED,
    N_GPU_USES,
    AsicFleet,
    FleetError,
    GpuFleet,
    GpuHealth,
    GpuUse,
)

FRACTION_TOLERANCE = 1e-6
"""Relative tolerance when reading back a power fraction stored as float32 [-]."""


def _all_close(read_back: np.ndarray, asked: float) -> bool:
    """True when every read-back value is within FRACTION_TOLERANCE (relative) of ``asked``
    (``np.allclose`` with ``atol=0``, without its overhead); True for no values."""
    return bool((np.abs(read_back - np.float64(asked)) <= FRACTION_TOLERANCE * abs(asked)).all())


def _device_class(
    kind: str,
    facility: int,
    spec_id: str,
    rows: slice,
    min_power_fraction: float,
    can_assign_uses: bool = False,
) -> DeviceClass:
    """The :class:`DeviceClass` of simulated devices in fleet ``rows``: they can all sleep,
    resume and take a power target down to ``min_power_fraction`` of nameplate [-]."""
    capabilities = Capabilities(
        can_sleep=True,
        can_resume=True,
        can_set_power_limit=True,
        can_assign_uses=can_assign_uses,
        min_power_fraction=min_power_fraction,
    )
    return DeviceClass(kind, facility, spec_id, rows.stop - rows.start, capabilities)


FleetT = TypeVar("FleetT", AsicFleet, GpuFleet)
CommandT = TypeVar("CommandT", AsicCommand, GpuCommand)


class _SimDriver(Generic[FleetT, CommandT]):
    """What both simulated drivers share: the fleet, the clock, ``apply`` and ``close``.

    A subclass carries out one command in ``_apply_one(command, t_s)`` and reads it back.
    """

    def __init__(self, fleet: FleetT, clock: Callable[[], float]) -> None:
        self.fleet: FleetT = fleet
        self.clock = clock
        self._closed = False

    def apply(self, commands: Sequence[CommandT]) -> ApplyResult:
        """Carry out each command, in order, at ``clock()`` [s]; read back and verify each
        (the order within one command: see the subclass's ``_apply_one``)."""
        self._check_open()
        t_s = float(self.clock())
        return ApplyResult(tuple(self._apply_one(c, t_s) for c in commands), t_s)

    def close(self) -> None:
        """Mark the driver closed (nothing to release in simulation)."""
        self._closed = True

    def _apply_one(self, command: CommandT, t_s: float) -> CommandResult:
        """Carry out one command at ``t_s`` [s], read it back and say whether it holds."""
        raise NotImplementedError

    def _check_open(self) -> None:
        if self._closed:
            raise DriverClosedError(f"{type(self).__name__}: used after close()")


class SimAsicDriver(_SimDriver[AsicFleet, AsicCommand]):
    """ASIC driver over an :class:`models.fleet.AsicFleet`; commands address classes."""

    def discover(self) -> tuple[DeviceClass, ...]:
        """One :class:`DeviceClass` per (facility, model) class of the fleet."""
        self._check_open()
        fleet = self.fleet
        classes = []
        for class_id in range(fleet.n_classes):
            spec = fleet.models[fleet.class_model[class_id]]
            classes.append(
                _device_class(
                    "asic",
                    int(fleet.class_facility[class_id]),
                    spec.model_id,
                    fleet.class_slice(class_id),
                    spec.min_power_fraction,
                )
            )
        return tuple(classes)

    def read(self) -> AsicReadings:
        """A copy of the fleet's columns at ``clock()``."""
        self._check_open()
        fleet = self.fleet
        return AsicReadings(
            t_s=float(self.clock()),
            model_ids=tuple(spec.model_id for spec in fleet.models),
            facility=fleet.facility.copy(),
            model=fleet.model.copy(),
            state=fleet.state.copy(),
            power_fraction=fleet.power_fraction.copy(),
            power_w=fleet.power_w.copy(),
            hashrate_ths=fleet.hashrate_ths.copy(),
            temp_c=fleet.temp_c.copy(),
        )

    def state_counts(self) -> np.ndarray:
        """Miners per (facility, model, AsicState) now, ``[F, M, 4]`` (models in the order
        of ``read().model_ids``): what counting ``read()`` gives, without copying columns."""
        self._check_open()
        return self.fleet.state_counts()

    def _apply_one(self, command: AsicCommand, t_s: float) -> CommandResult:
        """Power target first (so waking miners ramp to it), then the active count, at
        ``t_s`` [s]; then read both back."""
        fleet = self.fleet
        changed = 0
        try:
            class_id = fleet.class_index(command.facility, command.model_id)
            if command.power_fraction is not None:
                fleet.set_power_fraction(
                    command.facility, command.model_id, command.power_fraction, t_s
                )
            if command.active_count is not None:
                changed = fleet.set_active_count(
                    command.facility, command.model_id, command.active_count, t_s
                )
        except FleetError as error:
            return CommandResult(command, False, str(error), changed)

        rows = fleet.class_slice(class_id)
        reasons = []
        if command.active_count is not None:
            state = fleet.state[rows]
            active = int(np.count_nonzero(state == ACTIVE))
            if active != command.active_count:
                failed = int(np.count_nonzero(state == FAILED))
                reasons.append(
                    f"asked for {command.active_count} hashing, {active} are: "
                    f"{state.size - failed} healthy of {state.size} ({failed} failed)"
                )
        if command.power_fraction is not None:
            fractions = fleet.power_fraction[rows]
            if not _all_close(fractions, command.power_fraction):
                reasons.append(
                    f"asked for power_fraction {command.power_fraction}, reads back "
                    f"{float(fractions.min()):.6g}-{float(fractions.max()):.6g} "
                    f"(allowed [{fleet.models[fleet.class_model[class_id]].min_power_fraction}, 1])"
                )
        return CommandResult(command, not reasons, "; ".join(reasons), changed)


class SimGpuDriver(_SimDriver[GpuFleet, GpuCommand]):
    """GPU driver over a :class:`models.fleet.GpuFleet`; commands address pools."""

    def discover(self) -> tuple[DeviceClass, ...]:
        """One :class:`DeviceClass` per (facility, type) pool of the fleet."""
        self._check_open()
        fleet = self.fleet
        pools = []
        for pool in range(fleet.n_pools):
            spec = fleet.types[fleet.pool_type[pool]]
            pools.append(
                _device_class(
                    "gpu",
                    int(fleet.pool_facility[pool]),
                    spec.type_id,
                    fleet.pool_slice(pool),
                    spec.min_power_fraction,
                    can_assign_uses=True,
                )
            )
        return tuple(pools)

    def read(self) -> GpuReadings:
        """A copy of the fleet's columns at ``clock()``."""
        self._check_open()
        fleet = self.fleet
        return GpuReadings(
            t_s=float(self.clock()),
            type_ids=tuple(spec.type_id for spec in fleet.types),
            facility=fleet.facility.copy(),
            type=fleet.type.copy(),
            node=fleet.node.copy(),
            state=fleet.state.copy(),
            use=fleet.use.copy(),
            power_limit_fraction=fleet.power_limit_fraction.copy(),
            power_w=fleet.power_w.copy(),
            util=fleet.util.copy(),
            temp_c=fleet.temp_c.copy(),
        )

    def failed_counts(self) -> tuple[np.ndarray, tuple[str, ...]]:
        """Failed GPUs per (facility, type) now, ``[F, T]``, and the T type ids in that
        order (those of ``read().type_ids``), without copying columns."""
        self._check_open()
        fleet = self.fleet
        failed = np.zeros((fleet.n_facilities, len(fleet.types)), dtype=np.int64)
        failed[fleet.pool_facility, fleet.pool_type] = fleet.failed_by_pool()
        return failed, tuple(spec.type_id for spec in fleet.types)

    def _apply_one(self, command: GpuCommand, t_s: float) -> CommandResult:
        """Power cap, then use labels (both take effect at once, whatever ``t_s`` [s]);
        then read both back."""
        fleet = self.fleet
        try:
            pool = fleet.pool_index(command.facility, command.type_id)
            rows = fleet.pool_slice(pool)
            uses_before = fleet.use[rows].copy()
            if command.power_limit_fraction is not None:
                fleet.set_power_limit(pool, command.power_limit_fraction)
            assignment = None
            if command.uses is not None:
                assignment = fleet.apply_uses(pool, command.uses)
        except FleetError as error:
            return CommandResult(command, False, str(error))

        reasons = []
        changed = int(np.count_nonzero(fleet.use[rows] != uses_before))
        if assignment is not None:
            healthy = fleet.state[rows] == GpuHealth.OK
            read_back = np.bincount(fleet.use[rows][healthy], minlength=N_GPU_USES)
            asked = np.array(assignment.requested)
            labelled = np.arange(N_GPU_USES) != GpuUse.IDLE
            if np.any(read_back[labelled] != asked[labelled]):
                reasons.append(
                    f"asked for {int(asked.sum())} GPUs in uses, {int(healthy.sum())} healthy "
                    f"of {healthy.size}: short by {assignment.shortfall}"
                )
        if command.power_limit_fraction is not None:
            limits = fleet.power_limit_fraction[rows]
            if not _all_close(limits, command.power_limit_fraction):
                spec = fleet.types[fleet.pool_type[pool]]
                reasons.append(
                    f"asked for power_limit_fraction {command.power_limit_fraction}, reads "
                    f"back {float(limits.min()):.6g} (allowed [{spec.min_power_fraction}, 1])"
                )
        return CommandResult(command, not reasons, "; ".join(reasons), changed)
