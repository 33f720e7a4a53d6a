"""GPU driver over NVML (nvidia-ml-py): the GPUs of one host, commanded by power cap.

:class:`NvmlGpuDriver` implements :class:`drivers.base.GpuDriver` for the GPUs that NVML
sees on this host. They all belong to one facility (and, by default, one node). Discovery
groups them by hardware-catalog type: the NVML product name (``nvmlDeviceGetName``) is
looked up in :data:`NVML_NAME_TO_TYPE_ID` (plus the catalog's own display names and type
ids, plus a caller's ``type_map``). An unknown name is an error naming the GPU and the name,
not a guess: a power fraction is relative to the catalog TDP, and a wrong type would cap
the GPU at the wrong wattage.

Commands: ``power_limit_fraction`` (fraction of the catalog TDP) is clamped to the NVML
limit constraints, set with ``nvmlDeviceSetPowerManagementLimit`` on every GPU of the pool,
read back with ``nvmlDeviceGetPowerManagementLimit`` and verified against what was asked.
``uses`` are accepted and not applied: on real hardware the scheduler decides what runs
where, so a GPU's use is not a device setting (``Capabilities.can_assign_uses`` is False).
NVML cannot sleep or wake a GPU either.

Failures: a GPU that answers with an error (``NVML_ERROR_GPU_IS_LOST`` ...) is marked
``GpuHealth.FAILED`` in ``read()`` and named in the reason of an unverified command; the
other GPUs go on. Errors that mean NVML itself is unusable (uninitialized, driver not
loaded, library missing, version mismatch) raise :class:`drivers.base.DriverError` with the
NVML error string. Setting a power limit needs root; without it each command reports
``Insufficient Permissions``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pynvml

from drivers.base import (
    ApplyResult,
    Capabilities,
    CommandResult,
    DeviceClass,
    DriverClosedError,
    DriverError,
    GpuCommand,
    GpuReadings,
)
from models.fleet_physics import GpuHealth, GpuUse
from models.hardware import GPU_CATALOG, GpuSpec

NVML_NAME_TO_TYPE_ID: Mapping[str, str] = MappingProxyType(
    {
        "NVIDIA H100 80GB HBM3": "h100_sxm",
        "NVIDIA H200": "h200",
        "NVIDIA A100-SXM4-80GB": "a100_sxm",
        "NVIDIA L40S": "l40s",
        "NVIDIA B200": "b200",
    }
)
"""NVML product names (as ``nvidia-smi`` prints them) of the catalog's GPU types. PCIe and
NVL variants have other TDPs and are deliberately absent: map them with ``type_map``."""

READBACK_TOLERANCE_W = 1.0
"""A power limit reads back as set when within this of the asked wattage [W]; NVML works in
integer mW and some boards round to whole watts."""

_FATAL_NVML_ERRORS = frozenset(
    {
        pynvml.NVML_ERROR_UNINITIALIZED,
        pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
        pynvml.NVML_ERROR_LIBRARY_NOT_FOUND,
        pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
    }
)
"""NVML return codes that mean the library as a whole is unusable (not one GPU)."""

_UNAVAILABLE_NVML_ERRORS = frozenset(
    {pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND}
)
"""NVML return codes that mean "this board or library cannot report that" (NaN, not failed)."""

_CLOCKS = (pynvml.NVML_CLOCK_GRAPHICS, pynvml.NVML_CLOCK_SM, pynvml.NVML_CLOCK_MEM)
"""NVML clock types read by ``read_details``: graphics, SM, memory."""


class NvmlTypeMapError(ValueError):
    """A ``type_map`` entry names a GPU type the catalog does not have."""


def nvml_error_text(error: pynvml.NVMLError) -> str:
    """``"<NVML error string> (NVML error <code>)"`` for messages and reasons."""
    return f"{error} (NVML error {error.value})"


@dataclass(frozen=True, slots=True)
class NvmlGpu:
    """One GPU as found at open; fixed for the life of the driver.

    Attributes:
        index: NVML device index.
        uuid: NVML UUID (``GPU-...``), the device id in ``DeviceClass.device_ids``.
        name: NVML product name.
        type_id: hardware-catalog type id.
        tdp_w: catalog TDP, the reference of power fractions [W].
        min_limit_w: lowest settable power limit, NaN where NVML does not say [W].
        max_limit_w: highest settable power limit, NaN where NVML does not say [W].
        default_limit_w: power limit at driver load, NaN where NVML does not say [W].
        handle: the NVML device handle.
    """

    index: int
    uuid: str
    name: str
    type_id: str
    tdp_w: float
    min_limit_w: float
    max_limit_w: float
    default_limit_w: float
    handle: Any

    @property
    def can_set_power_limit(self) -> bool:
        """True when NVML reported usable limit constraints."""
        return math.isfinite(self.min_limit_w) and self.max_limit_w > self.min_limit_w


@dataclass(frozen=True, slots=True)
class GpuDetails:
    """Everything one read of one GPU gave; None/NaN where the board cannot say.

    Attributes:
        index: NVML device index.
        uuid: NVML UUID.
        type_id: hardware-catalog type id.
        healthy: False when the GPU answered with an error (then ``error`` says which).
        error: the NVML error of an unhealthy GPU, else "".
        power_w: board power draw [W].
        power_limit_w: current NVML power limit [W].
        util_gpu: fraction of time a kernel ran over the last sample period [-] (0-1).
        util_memory: fraction of time device memory was read or written [-] (0-1).
        temp_c: GPU die temperature [°C].
        memory_total_bytes: device memory [B].
        memory_used_bytes: allocated device memory [B].
        clock_graphics_mhz: graphics clock [MHz].
        clock_sm_mhz: SM clock [MHz].
        clock_memory_mhz: memory clock [MHz].
    """

    index: int
    uuid: str
    type_id: str
    healthy: bool
    error: str
    power_w: float
    power_limit_w: float
    util_gpu: float
    util_memory: float
    temp_c: float
    memory_total_bytes: int | None
    memory_used_bytes: int | None
    clock_graphics_mhz: int | None
    clock_sm_mhz: int | None
    clock_memory_mhz: int | None


class _GpuFailed(Exception):
    """One GPU answered with an error that marks it failed (internal)."""

    def __init__(self, error: pynvml.NVMLError) -> None:
        super().__init__(nvml_error_text(error))


def _resolve_type_map(
    type_map: Mapping[str, str] | None, catalog: Mapping[str, GpuSpec]
) -> dict[str, str]:
    """NVML name -> type id: the defaults, the catalog's own names and ids, then
    ``type_map``; NvmlTypeMapError for a ``type_map`` value the catalog lacks."""
    resolved = {
        name: type_id for name, type_id in NVML_NAME_TO_TYPE_ID.items() if type_id in catalog
    }
    resolved.update({spec.name: type_id for type_id, spec in catalog.items()})
    resolved.update({type_id: type_id for type_id in catalog})
    for name, type_id in (type_map or {}).items():
        if type_id not in catalog:
            raise NvmlTypeMapError(
                f"type_map[{name!r}]: {type_id!r} is not a GPU type of the catalog "
                f"(known: {', '.join(sorted(catalog))})"
            )
        resolved[name] = type_id
    return resolved


class NvmlGpuDriver:
    """The GPUs NVML sees on this host, at one facility and node (see the module doc).

    Opening calls ``nvmlInit`` and takes the inventory (names, UUIDs, limit constraints);
    ``close()`` calls ``nvmlShutdown``. Per-GPU NVML calls are unavoidable (NVML has no
    batch query), which is fine for the 1-8 GPUs of a host.

    Attributes:
        facility: facility index of every GPU of this host.
        node: global node id of this host.
        gpus: the inventory, in NVML index order.
        unavailable: GPUs NVML enumerated but that failed at open (index and error); they
            are left out of the inventory.
        last_set_verify_s: wall time of set + read-back per GPU UUID in the last ``apply``
            [s] (also for GPUs whose set failed).
    """

    def __init__(
        self,
        facility: int = 0,
        type_map: Mapping[str, str] | None = None,
        *,
        node: int = 0,
        catalog: Mapping[str, GpuSpec] = GPU_CATALOG,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Open NVML and take the inventory.

        Args:
            facility: facility index these GPUs belong to.
            type_map: NVML product name -> catalog type id, on top of the defaults.
            node: global node id reported in ``read().node``.
            catalog: GPU specs by type id (a scenario's catalog with its custom types).
            clock: time for ``ApplyResult.t_s`` and readings [s]; default: seconds since
                the driver was opened (pass ``env.now``-like clocks in live mode).

        Raises:
            NvmlTypeMapError: a ``type_map`` value is not in ``catalog``.
            DriverError: NVML cannot be opened, or a GPU's name is not mapped to a type.
        """
        self.facility = int(facility)
        self.node = int(node)
        self._names_to_type = _resolve_type_map(type_map, catalog)
        self._catalog = dict(catalog)
        opened_at = time.monotonic()
        self._clock = clock or (lambda: time.monotonic() - opened_at)
        self._closed = False
        self.last_set_verify_s: dict[str, float] = {}
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as error:
            raise DriverError(f"NVML: cannot initialise: {nvml_error_text(error)}") from error
        try:
            self.gpus: tuple[NvmlGpu, ...] = self._take_inventory()
        except Exception:
            pynvml.nvmlShutdown()  # do not leave NVML initialised by a driver that never opened
            raise
        self.type_ids: tuple[str, ...] = tuple(dict.fromkeys(gpu.type_id for gpu in self.gpus))
        self._type_index = np.array(
            [self.type_ids.index(gpu.type_id) for gpu in self.gpus], dtype=np.int16
        )

    # ----- the GpuDriver protocol -----

    def discover(self) -> tuple[DeviceClass, ...]:
        """One :class:`DeviceClass` per GPU type on this host; ``device_ids`` are UUIDs.

        A pool can set a power limit when every GPU reported limit constraints; its
        ``min_power_fraction`` is the highest minimum limit over the catalog TDP.
        """
        self._check_open()
        classes = []
        for type_id in self.type_ids:
            pool = self._pool(type_id)
            can_set = all(gpu.can_set_power_limit for gpu in pool)
            lowest = max(gpu.min_limit_w for gpu in pool) / pool[0].tdp_w if can_set else 1.0
            capabilities = Capabilities(
                can_sleep=False,
                can_resume=False,
                can_set_power_limit=can_set,
                can_assign_uses=False,
                min_power_fraction=float(lowest),
            )
            classes.append(
                DeviceClass(
                    "gpu",
                    self.facility,
                    type_id,
                    len(pool),
                    capabilities,
                    tuple(gpu.uuid for gpu in pool),
                )
            )
        return tuple(classes)

    def read(self) -> GpuReadings:
        """Power, utilization, temperature and power limit of every GPU, in NVML index
        order. A GPU that answers with an error reads as FAILED (use OFF, NaN values)."""
        self._check_open()
        t_s = float(self._clock())
        details = [self._sample(gpu, full=False) for gpu in self.gpus]
        healthy = np.array([d.healthy for d in details], dtype=bool)
        tdp_w = np.array([gpu.tdp_w for gpu in self.gpus], dtype=np.float64)
        n = len(self.gpus)
        return GpuReadings(
            t_s=t_s,
            type_ids=self.type_ids,
            facility=np.full(n, self.facility, dtype=np.int16),
            type=self._type_index.copy(),
            node=np.full(n, self.node, dtype=np.int32),
            state=np.where(healthy, GpuHealth.OK, GpuHealth.FAILED).astype(np.int8),
            use=np.where(healthy, GpuUse.IDLE, GpuUse.OFF).astype(np.int8),
            power_limit_fraction=np.array([d.power_limit_w for d in details]) / tdp_w,
            power_w=np.array([d.power_w for d in details], dtype=np.float64),
            util=np.array([d.util_gpu for d in details], dtype=np.float64),
            temp_c=np.array([d.temp_c for d in details], dtype=np.float64),
            device_ids=tuple(gpu.uuid for gpu in self.gpus),
        )

    def read_details(self) -> tuple[GpuDetails, ...]:
        """Everything ``read()`` gives plus memory and clocks, one entry per GPU."""
        self._check_open()
        return tuple(self._sample(gpu, full=True) for gpu in self.gpus)

    def apply(self, commands: Sequence[GpuCommand]) -> ApplyResult:
        """Carry out each command in order: set the power limit of every GPU of the pool,
        read it back and verify it; ``uses`` are accepted and not applied (module doc).
        Per-GPU set + read-back times land in ``last_set_verify_s``."""
        self._check_open()
        t_s = float(self._clock())
        self.last_set_verify_s = {}
        return ApplyResult(tuple(self._apply_one(command) for command in commands), t_s)

    def close(self) -> None:
        """Shut NVML down (once); later calls raise DriverClosedError."""
        if self._closed:
            return
        self._closed = True
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError as error:
            raise DriverError(f"NVML: shutdown failed: {nvml_error_text(error)}") from error

    # ----- inventory -----

    def _take_inventory(self) -> tuple[NvmlGpu, ...]:
        """Every GPU NVML enumerates, typed by name. A GPU that answers with an error is
        left out and named in ``unavailable``; an unmapped name is a DriverError."""
        count = _nvml("count GPUs", pynvml.nvmlDeviceGetCount)
        gpus = []
        unavailable = []
        for index in range(count):
            try:
                gpus.append(self._inventory_entry(index))
            except _GpuFailed as failure:
                unavailable.append(f"GPU {index}: {failure}")
        self.unavailable: tuple[str, ...] = tuple(unavailable)
        return tuple(gpus)

    def _inventory_entry(self, index: int) -> NvmlGpu:
        """GPU ``index``: identity, catalog type and power-limit constraints."""
        handle = _device_call(pynvml.nvmlDeviceGetHandleByIndex, index)
        name = _device_call(pynvml.nvmlDeviceGetName, handle)
        uuid = _device_call(pynvml.nvmlDeviceGetUUID, handle)
        type_id = self._names_to_type.get(name)
        if type_id is None:
            raise DriverError(
                f"GPU {index} ({uuid}): NVML name {name!r} is not a known GPU type; pass "
                f"type_map={{{name!r}: <type id>}} (types: {', '.join(sorted(self._catalog))})"
            )
        constraints_mw = _optional_call(pynvml.nvmlDeviceGetPowerManagementLimitConstraints, handle)
        min_mw, max_mw = constraints_mw if constraints_mw is not None else (None, None)
        default_mw = _optional_call(pynvml.nvmlDeviceGetPowerManagementDefaultLimit, handle)
        return NvmlGpu(
            index=index,
            uuid=uuid,
            name=name,
            type_id=type_id,
            tdp_w=self._catalog[type_id].tdp_w,
            min_limit_w=_scaled(min_mw, 1e-3),
            max_limit_w=_scaled(max_mw, 1e-3),
            default_limit_w=_scaled(default_mw, 1e-3),
            handle=handle,
        )

    def _pool(self, type_id: str) -> list[NvmlGpu]:
        return [gpu for gpu in self.gpus if gpu.type_id == type_id]

    # ----- reading -----

    def _sample(self, gpu: NvmlGpu, full: bool) -> GpuDetails:
        """One GPU's readings (``full``: memory and clocks too); unhealthy on a GPU error."""
        handle = gpu.handle
        try:
            power_mw = _optional_call(pynvml.nvmlDeviceGetPowerUsage, handle)
            limit_mw = _optional_call(pynvml.nvmlDeviceGetPowerManagementLimit, handle)
            rates = _optional_call(pynvml.nvmlDeviceGetUtilizationRates, handle)
            temp_c = _optional_call(
                pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU
            )
            memory = _optional_call(pynvml.nvmlDeviceGetMemoryInfo, handle) if full else None
            clocks = [
                _optional_call(pynvml.nvmlDeviceGetClockInfo, handle, clock) if full else None
                for clock in _CLOCKS
            ]
        except _GpuFailed as failure:
            return _failed_details(gpu, str(failure))
        return GpuDetails(
            index=gpu.index,
            uuid=gpu.uuid,
            type_id=gpu.type_id,
            healthy=True,
            error="",
            power_w=_scaled(power_mw, 1e-3),
            power_limit_w=_scaled(limit_mw, 1e-3),
            util_gpu=_scaled(None if rates is None else rates.gpu, 1e-2),
            util_memory=_scaled(None if rates is None else rates.memory, 1e-2),
            temp_c=_scaled(temp_c, 1.0),
            memory_total_bytes=None if memory is None else int(memory.total),
            memory_used_bytes=None if memory is None else int(memory.used),
            clock_graphics_mhz=clocks[0],
            clock_sm_mhz=clocks[1],
            clock_memory_mhz=clocks[2],
        )

    # ----- commands -----

    def _apply_one(self, command: GpuCommand) -> CommandResult:
        """One command: check it addresses this host, then set + verify the power limit."""
        if command.facility != self.facility or command.type_id not in self.type_ids:
            return CommandResult(
                command,
                False,
                f"no {command.type_id!r} GPUs at facility {command.facility} on this host "
                f"(facility {self.facility}: {', '.join(self.type_ids) or 'no GPUs'})",
            )
        fraction = command.power_limit_fraction
        if fraction is None:
            return CommandResult(command, True)
        if not math.isfinite(fraction) or fraction <= 0.0:
            return CommandResult(
                command,
                False,
                f"power_limit_fraction must be a finite number > 0, got {fraction!r}",
            )
        pool = self._pool(command.type_id)
        if not all(gpu.can_set_power_limit for gpu in pool):
            return CommandResult(
                command, False, f"{command.type_id}: NVML reports no settable power limit"
            )
        asked_w = fraction * pool[0].tdp_w
        reasons = []
        low_w = max(gpu.min_limit_w for gpu in pool)
        high_w = min(gpu.max_limit_w for gpu in pool)
        if not low_w <= asked_w <= high_w:
            reasons.append(
                f"asked for power_limit_fraction {fraction} ({asked_w:.1f} W of TDP "
                f"{pool[0].tdp_w:.0f} W), outside the NVML limits [{low_w:.1f}, {high_w:.1f}] W: "
                f"clamped"
            )
        changed = 0
        for gpu in pool:
            outcome = self._set_and_verify(gpu, asked_w)
            changed += outcome.changed
            if outcome.reason:
                reasons.append(outcome.reason)
        return CommandResult(command, not reasons, "; ".join(reasons), changed)

    def _set_and_verify(self, gpu: NvmlGpu, asked_w: float) -> _SetOutcome:
        """Set one GPU's limit to ``asked_w`` [W] clamped to its constraints and read it
        back; the outcome says whether the limit changed and, if it does not now hold the
        clamped target, why. The set + read-back time goes to ``last_set_verify_s``."""
        target_mw = round(min(max(asked_w, gpu.min_limit_w), gpu.max_limit_w) * 1000.0)
        stage = "reading the power limit"
        started = time.perf_counter()
        try:
            before_mw = _device_call(pynvml.nvmlDeviceGetPowerManagementLimit, gpu.handle)
            stage = "setting the power limit"
            started = time.perf_counter()
            _device_call(pynvml.nvmlDeviceSetPowerManagementLimit, gpu.handle, target_mw)
            stage = "reading the power limit back"
            after_mw = _device_call(pynvml.nvmlDeviceGetPowerManagementLimit, gpu.handle)
        except _GpuFailed as failure:
            return _SetOutcome(0, f"GPU {gpu.index} ({gpu.uuid}): {failure} while {stage}")
        finally:
            self.last_set_verify_s[gpu.uuid] = time.perf_counter() - started
        changed = int(after_mw != before_mw)
        if abs(after_mw - target_mw) / 1000.0 > READBACK_TOLERANCE_W:
            return _SetOutcome(
                changed,
                f"GPU {gpu.index} ({gpu.uuid}): set {target_mw / 1000.0:.3f} W, reads back "
                f"{after_mw / 1000.0:.3f} W",
            )
        return _SetOutcome(changed, "")

    def _check_open(self) -> None:
        if self._closed:
            raise DriverClosedError(f"{type(self).__name__}: used after close()")


@dataclass(frozen=True, slots=True)
class _SetOutcome:
    """One GPU's set + read-back: 1 if its limit changed, and why it does not hold ("")."""

    changed: int
    reason: str


def _nvml(what: str, function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``; DriverError naming ``what`` and the NVML error on failure."""
    try:
        return function(*args)
    except pynvml.NVMLError as error:
        raise DriverError(f"NVML: {what}: {nvml_error_text(error)}") from error


def _device_call(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` for one GPU: _GpuFailed for an error of that GPU (including
    NOT_SUPPORTED), DriverError when NVML as a whole is unusable."""
    try:
        return function(*args)
    except pynvml.NVMLError as error:
        if error.value in _FATAL_NVML_ERRORS:
            raise DriverError(f"NVML: {function.__name__}: {nvml_error_text(error)}") from error
        raise _GpuFailed(error) from error


def _optional_call(function: Callable[..., Any], *args: Any) -> Any:
    """As :func:`_device_call`, but None where the board or library cannot report it."""
    try:
        return function(*args)
    except pynvml.NVMLError as error:
        if error.value in _UNAVAILABLE_NVML_ERRORS:
            return None
        if error.value in _FATAL_NVML_ERRORS:
            raise DriverError(f"NVML: {function.__name__}: {nvml_error_text(error)}") from error
        raise _GpuFailed(error) from error


def _failed_details(gpu: NvmlGpu, error: str) -> GpuDetails:
    """The readings of a GPU that answered with ``error``: unhealthy, no values."""
    nan = float("nan")
    return GpuDetails(
        index=gpu.index,
        uuid=gpu.uuid,
        type_id=gpu.type_id,
        healthy=False,
        error=error,
        power_w=nan,
        power_limit_w=nan,
        util_gpu=nan,
        util_memory=nan,
        temp_c=nan,
        memory_total_bytes=None,
        memory_used_bytes=None,
        clock_graphics_mhz=None,
        clock_sm_mhz=None,
        clock_memory_mhz=None,
    )


def _scaled(value: float | None, factor: float) -> float:
    """``value * factor`` as a float; NaN for None (not reported)."""
    return float("nan") if value is None else float(value) * factor
