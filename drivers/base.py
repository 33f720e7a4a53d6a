"""Driver contracts: the only way the controller touches hardware, simulated or real.

A driver has four verbs — ``discover()`` (what is there), ``read()`` (readings as
columns), ``apply(commands)`` (act, then read back and verify every command) and
``close()``. Commands address a *class* of identical devices at one facility — ASICs of one
model, GPUs of one type — because that is what the optimizer decides about; a real driver
picks which devices (strings such as an IP or a GPU UUID) carry out a class command, the
simulated driver picks rows of the fleet arrays. Capability flags say what a class of
devices supports (stock Antminer firmware cannot set a power limit; some firmware cannot
resume).

A driver never raises for a command the devices could not carry out: it reports
``verified=False`` with a reason, so the control loop goes on. It raises
:class:`DriverError` when it cannot talk to the hardware at all, and
:class:`DriverClosedError` after ``close()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


class DriverError(RuntimeError):
    """The driver could not reach or understand the hardware."""


class DriverClosedError(DriverError):
    """The driver was used after ``close()``."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the devices of a class support.

    Attributes:
        can_sleep: can stop work and idle at low power on command.
        can_resume: can be brought back from sleep on command.
        can_set_power_limit: accepts a power target / NVML power cap.
        can_read_power: reports its wall power.
        can_read_temperature: reports a chip temperature.
        can_assign_uses: the driver tracks what each GPU is used for (inference, batch,
            training, spot, off); real GPU drivers leave that to the scheduler.
        min_power_fraction: lowest power target it accepts, fraction of nameplate [-].
    """

    can_sleep: bool
    can_resume: bool
    can_set_power_limit: bool
    can_read_power: bool = True
    can_read_temperature: bool = True
    can_assign_uses: bool = False
    min_power_fraction: float = 1.0


@dataclass(frozen=True, slots=True)
class DeviceClass:
    """Identical devices at one facility that commands address together.

    Attributes:
        kind: ``"asic"`` or ``"gpu"``.
        facility: facility index (position in the scenario's facility list).
        model_id: ASIC ``model_id`` or GPU ``type_id`` of the hardware catalog.
        count: number of devices.
        capabilities: what they support.
        device_ids: device identifiers (IP, serial, UUID) on real hardware; empty where the
            driver addresses devices by class only (the simulated driver).
    """

    kind: str
    facility: int
    model_id: str
    count: int
    capabilities: Capabilities
    device_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AsicCommand:
    """Set how many miners of a class hash, and at what power target.

    Attributes:
        facility: facility index.
        model_id: ASIC model id.
        active_count: miners that should hash; the rest of the healthy ones sleep. None
            leaves the count as it is.
        power_fraction: power target as a fraction of nameplate [-]; None leaves it.
    """

    facility: int
    model_id: str
    active_count: int | None = None
    power_fraction: float | None = None


@dataclass(frozen=True, slots=True)
class GpuCommand:
    """Set what the GPUs of a pool are used for, and their power cap.

    Attributes:
        facility: facility index.
        type_id: GPU type id.
        uses: mean GPUs per use over the coming interval, keyed by ``models.fleet.GpuUse``
            values (int); the rest of the healthy GPUs idle. None leaves the labels.
        power_limit_fraction: NVML power cap as a fraction of TDP [-]; None leaves it.
    """

    facility: int
    type_id: str
    uses: Mapping[int, float] | None = None
    power_limit_fraction: float | None = None


@dataclass(frozen=True, slots=True)
class CommandResult:
    """One command after read-back: ``verified`` when the devices now match it."""

    command: AsicCommand | GpuCommand
    verified: bool
    reason: str = ""
    changed: int = 0
    """Devices whose state changed [-]."""


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """All commands of one ``apply`` call, in order, each verified by read-back."""

    results: tuple[CommandResult, ...]
    t_s: float

    @property
    def all_verified(self) -> bool:
        """True when every command was verified."""
        return all(r.verified for r in self.results)

    @property
    def failures(self) -> tuple[CommandResult, ...]:
        """The commands that were not verified."""
        return tuple(r for r in self.results if not r.verified)


@dataclass(frozen=True, slots=True)
class AsicReadings:
    """ASIC readings as columns, one row per miner.

    ``model[i]`` indexes ``model_ids``; ``state`` holds ``models.fleet.AsicState`` values.
    Float columns are NaN where a device cannot report them.
    """

    t_s: float
    model_ids: tuple[str, ...]
    facility: np.ndarray
    model: np.ndarray
    state: np.ndarray
    power_fraction: np.ndarray
    power_w: np.ndarray
    hashrate_ths: np.ndarray
    temp_c: np.ndarray
    device_ids: tuple[str, ...] = ()

    def count(self, facility: int, model_id: str, state: int) -> int:
        """Miners of (facility, model) in ``state``."""
        if model_id not in self.model_ids:
            return 0
        m = self.model_ids.index(model_id)
        mask = (self.facility == facility) & (self.model == m) & (self.state == state)
        return int(np.count_nonzero(mask))


@dataclass(frozen=True, slots=True)
class GpuReadings:
    """GPU readings as columns, one row per GPU.

    ``type[i]`` indexes ``type_ids``; ``state`` holds ``models.fleet.GpuHealth`` values and
    ``use`` ``models.fleet.GpuUse`` values; ``util`` is 0-1.
    """

    t_s: float
    type_ids: tuple[str, ...]
    facility: np.ndarray
    type: np.ndarray
    node: np.ndarray
    state: np.ndarray
    use: np.ndarray
    power_limit_fraction: np.ndarray
    power_w: np.ndarray
    util: np.ndarray
    temp_c: np.ndarray
    device_ids: tuple[str, ...] = field(default=())


@runtime_checkable
class AsicDriver(Protocol):
    """Hands on a set of ASIC miners."""

    def discover(self) -> tuple[DeviceClass, ...]:
        """The classes of miners this driver controls, with their capabilities."""
        ...

    def read(self) -> AsicReadings:
        """Current readings of every miner."""
        ...

    def apply(self, commands: Sequence[AsicCommand]) -> ApplyResult:
        """Carry out ``commands`` in order, read back, and verify each."""
        ...

    def close(self) -> None:
        """Release connections; later calls raise DriverClosedError."""
        ...


@runtime_checkable
class GpuDriver(Protocol):
    """Hands on a set of GPUs."""

    def discover(self) -> tuple[DeviceClass, ...]:
        """The pools of GPUs this driver controls, with their capabilities."""
        ...

    def read(self) -> GpuReadings:
        """Current readings of every GPU."""
        ...

    def apply(self, commands: Sequence[GpuCommand]) -> ApplyResult:
        """Carry out ``commands`` in order, read back, and verify each."""
        ...

    def close(self) -> None:
        """Release connections; later calls raise DriverClosedError."""
        ...


@runtime_checkable
class ClassCountingAsicDriver(Protocol):
    """An ASIC driver that can count miners per (facility, model, state) without a full
    read (the simulated driver keeps these counts as it applies commands)."""

    def state_counts(self) -> np.ndarray:
        """Miners per (facility, model, AsicState) now, shape ``[F, M, 4]``."""
        ...


@runtime_checkable
class FailureCountingGpuDriver(Protocol):
    """A GPU driver that can count failed GPUs per (facility, type) without a full read."""

    def failed_counts(self) -> tuple[np.ndarray, tuple[str, ...]]:
        """Failed GPUs per (facility, type), ``[F, T]``, and the T type ids in that order."""
        ...


@runtime_checkable
class QuarantiningAsicDriver(Protocol):
    """An ASIC driver that can take single miners out of service after a health alert."""

    def quarantine(self, device_ids: Sequence[str], hold_s: float, reason: str) -> dict[str, str]:
        """Put each miner named in ``device_ids`` to sleep and hold it out of commands
        (reported FAILED) for ``hold_s`` [s]; returns id -> "" when it sleeps, else why not
        (held out either way). Ids the driver does not hold are left out of the answer."""
        ...
