"""A fake NVML for machines without a GPU: build it, describe its GPUs, load it into pynvml.

``fake_nvml.c`` implements the part of the NVML C ABI that :mod:`drivers.nvml.driver` uses,
as a shared library with the soname ``libnvidia-ml.so.1``. Its GPUs live in a small state
file (header + one fixed-size record per GPU) that both the library and
:class:`FakeGpuState` map with ``MAP_SHARED``: the twin writes demand, utilization,
temperature and injected errors; the library writes the power limit that
``nvmlDeviceSetPowerManagementLimit`` sets, and reports power usage as
``min(demand, limit)``. The library reads the state path from ``HCP_FAKE_NVML_STATE`` at the
first ``nvmlInit``.

How the unmodified nvidia-ml-py loads it. pynvml opens the library with
``CDLL("libnvidia-ml.so.1")`` the first time ``nvmlInit`` runs. Two ways make that resolve
to the fake, neither touching pynvml:

- in this process, :func:`preload_fake_nvml` loads the fake by absolute path first; the
  dynamic loader then resolves pynvml's load by soname to the object already loaded. This
  holds for the life of the process: a process hosts one NVML library, the real or the fake.
- in a child process, :func:`fake_nvml_environment` gives ``LD_LIBRARY_PATH`` (the directory
  of the fake) and ``HCP_FAKE_NVML_STATE``.
"""

from __future__ import annotations

import ctypes
import hashlib
import mmap
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np
import pynvml

from drivers.nvml.driver import NVML_NAME_TO_TYPE_ID
from models.hardware import GPU_CATALOG, GpuSpec

STATE_ENV_VAR = "HCP_FAKE_NVML_STATE"
"""Environment variable with the path of the state file the fake library maps."""

SONAME = "libnvidia-ml.so.1"
"""The name pynvml loads on Linux; the fake is built with it as soname and file name."""

SOURCE_PATH = Path(__file__).with_name("fake_nvml.c")

LAYOUT_VERSION = 1
MAX_DEVICES = 1024
"""Most GPUs one fake library serves (``MAX_DEVICES`` in fake_nvml.c)."""
MAGIC = 0x4E504348
"""``"HCPN"``: first word of a state file."""

_COMPILE_FLAGS = ("-O2", "-Wall", "-Wextra", "-shared", "-fPIC", f"-Wl,-soname,{SONAME}")

HEADER_DTYPE = np.dtype(
    [
        ("magic", "=u4"),
        ("layout_version", "=u4"),
        ("record_size", "=u4"),
        ("device_count", "=u4"),
        ("init_error_code", "=u4"),
        ("reserved", "=u4"),
        ("driver_version", "S32"),
        ("nvml_version", "S32"),
    ]
)
"""State-file header; mirrors ``fake_header`` in fake_nvml.c (88 bytes, checked at load)."""

RECORD_DTYPE = np.dtype(
    [
        ("memory_total_bytes", "=u8"),
        ("memory_used_bytes", "=u8"),
        ("min_limit_mw", "=u4"),
        ("max_limit_mw", "=u4"),
        ("default_limit_mw", "=u4"),
        ("limit_mw", "=u4"),
        ("demand_mw", "=u4"),
        ("util_gpu_pct", "=u4"),
        ("util_memory_pct", "=u4"),
        ("temperature_c", "=u4"),
        ("clock_graphics_mhz", "=u4"),
        ("clock_sm_mhz", "=u4"),
        ("clock_memory_mhz", "=u4"),
        ("error_code", "=u4"),
        ("set_error_code", "=u4"),
        ("reserved", "=u4"),
        ("name", "S96"),
        ("uuid", "S96"),
        ("serial", "S32"),
    ]
)
"""One GPU of the state file; mirrors ``fake_record`` in fake_nvml.c (296 bytes, checked at
load). Power in mW, memory in bytes, clocks in MHz, utilization in %, temperature in °C."""

_UINT32_MAX = np.iinfo(np.uint32).max

GpuIndex = int | slice | Sequence[int] | np.ndarray
"""Which GPUs of the state a setter writes: an index, a slice, or indices."""

ALL_GPUS = slice(None)
"""Every GPU of the state (the setters' default)."""


class FakeNvmlError(RuntimeError):
    """The fake NVML could not be built or loaded."""


class FakeStateError(ValueError):
    """A value written to (or a file opened as) the fake NVML state is invalid."""


@dataclass(frozen=True, slots=True)
class FakeGpu:
    """One GPU of a fake NVML, as written into a new state file.

    Attributes:
        name: NVML product name (what ``nvmlDeviceGetName`` returns).
        uuid: NVML UUID, ``GPU-`` and 32 hex digits in 8-4-4-4-12 groups.
        serial: board serial number.
        default_limit_w: power limit at "driver load", also the initial limit [W].
        min_limit_w: lowest settable power limit [W].
        max_limit_w: highest settable power limit [W].
        memory_total_bytes: device memory [B].
        idle_w: demand until the twin writes one [W].
        clock_graphics_mhz: graphics clock [MHz].
        clock_sm_mhz: SM clock [MHz].
        clock_memory_mhz: memory clock [MHz].
    """

    name: str
    uuid: str
    serial: str
    default_limit_w: float
    min_limit_w: float
    max_limit_w: float
    memory_total_bytes: int
    idle_w: float
    clock_graphics_mhz: int = 1980
    clock_sm_mhz: int = 1980
    clock_memory_mhz: int = 2619

    @classmethod
    def from_spec(cls, spec: GpuSpec, index: int) -> FakeGpu:
        """A GPU of catalog type ``spec``, number ``index`` on its host: the NVML name
        :mod:`drivers.nvml.driver` maps to the type, limits ``[min_power_fraction, 1]``
        of TDP, a UUID and serial derived from ``index`` (deterministic)."""
        names = [name for name, type_id in NVML_NAME_TO_TYPE_ID.items() if type_id == spec.type_id]
        digits = hashlib.sha256(f"{spec.type_id}/{index}".encode()).hexdigest()[:32]
        uuid = "-".join(
            ("GPU", digits[:8], digits[8:12], digits[12:16], digits[16:20], digits[20:32])
        )
        return cls(
            name=names[0] if names else spec.name,
            uuid=uuid,
            serial=f"{1650000000000 + index:013d}",
            default_limit_w=spec.tdp_w,
            min_limit_w=spec.min_power_fraction * spec.tdp_w,
            max_limit_w=spec.tdp_w,
            memory_total_bytes=int(spec.memory_gb * 1e9),
            idle_w=spec.idle_w,
        )


def fake_gpus(
    type_ids: Sequence[str], catalog: Mapping[str, GpuSpec] = GPU_CATALOG
) -> tuple[FakeGpu, ...]:
    """One :class:`FakeGpu` per entry of ``type_ids`` (catalog type ids), indexed in order;
    FakeStateError naming an unknown type id."""
    gpus = []
    for index, type_id in enumerate(type_ids):
        if type_id not in catalog:
            raise FakeStateError(
                f"type_ids[{index}]: {type_id!r} is not a GPU type of the catalog "
                f"(known: {', '.join(sorted(catalog))})"
            )
        gpus.append(FakeGpu.from_spec(catalog[type_id], index))
    return tuple(gpus)


def build_fake_nvml(out_dir: Path | str, compiler: str | None = None) -> Path:
    """Compile fake_nvml.c into ``out_dir/<hash>/libnvidia-ml.so.1`` and return its path.

    The build is cached by a hash of the source, compiler and flags, and written atomically,
    so repeated and parallel calls are cheap and safe. The compiler is ``compiler``, else
    ``$CC``, else ``cc``/``gcc`` on the PATH.

    Raises:
        FakeNvmlError: no C compiler, or the compile failed (with the compiler's output).
    """
    chosen = compiler or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not chosen:
        raise FakeNvmlError(
            "no C compiler found to build the fake NVML library: install gcc "
            "(apt-get install gcc) or set CC"
        )
    source = SOURCE_PATH.read_bytes()
    key = hashlib.sha256(b"\0".join([source, chosen.encode(), *map(str.encode, _COMPILE_FLAGS)]))
    target_dir = Path(out_dir) / f"fake-nvml-{key.hexdigest()[:16]}"
    library = target_dir / SONAME
    if library.is_file():
        return library
    target_dir.mkdir(parents=True, exist_ok=True)
    partial = target_dir / f".{SONAME}.{os.getpid()}.partial"
    command = [chosen, *_COMPILE_FLAGS, "-o", str(partial), str(SOURCE_PATH)]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as error:
        raise FakeNvmlError(f"cannot run the C compiler {chosen!r}: {error}") from error
    if completed.returncode != 0:
        raise FakeNvmlError(
            f"building the fake NVML library failed ({' '.join(command)}):\n{completed.stderr}"
        )
    os.replace(partial, library)
    return library


def check_layout(library: ctypes.CDLL) -> None:
    """FakeNvmlError unless ``library`` is a fake NVML whose state layout matches
    HEADER_DTYPE / RECORD_DTYPE (guards against a stale build)."""
    try:
        probes = (
            library.hcpFakeNvmlLayoutVersion(),
            library.hcpFakeNvmlHeaderSize(),
            library.hcpFakeNvmlRecordSize(),
            library.hcpFakeNvmlMaxDevices(),
        )
    except AttributeError as error:
        raise FakeNvmlError(f"{library._name} is not the fake NVML library") from error
    expected = (LAYOUT_VERSION, HEADER_DTYPE.itemsize, RECORD_DTYPE.itemsize, MAX_DEVICES)
    if probes != expected:
        raise FakeNvmlError(
            f"{library._name}: state layout (version, header bytes, record bytes, max GPUs) "
            f"{probes} does not match this module's {expected}; rebuild it with build_fake_nvml"
        )


def is_fake_nvml_loaded() -> bool:
    """True when pynvml in this process is bound to the fake library."""
    library = pynvml.nvmlLib
    return library is not None and hasattr(library, "hcpFakeNvmlLayoutVersion")


def preload_fake_nvml(library_path: Path | str) -> ctypes.CDLL:
    """Make this process's pynvml use the fake library at ``library_path``.

    Loads it by absolute path before pynvml loads ``libnvidia-ml.so.1`` by name, then
    checks that the name now resolves to the fake (and its layout matches). Idempotent.

    Raises:
        FakeNvmlError: another NVML library (the real one) is already loaded in this
            process, or the file is not a matching fake.
    """
    path = Path(library_path).resolve()
    if pynvml.nvmlLib is not None and not is_fake_nvml_loaded():
        raise FakeNvmlError(
            f"pynvml already loaded another NVML library ({pynvml.nvmlLib._name}) in this "
            "process; use the fake in a fresh process or through fake_nvml_environment"
        )
    library = ctypes.CDLL(str(path))
    check_layout(library)
    by_name = ctypes.CDLL(SONAME)
    if not hasattr(by_name, "hcpFakeNvmlLayoutVersion"):
        raise FakeNvmlError(
            f"{SONAME} resolves to another library already loaded in this process; "
            "use the fake in a fresh process or through fake_nvml_environment"
        )
    return library


def fake_nvml_environment(library_path: Path | str, state_path: Path | str) -> dict[str, str]:
    """Environment variables that make a child process's pynvml load the fake library
    at ``library_path`` with GPUs from ``state_path`` (merge into ``os.environ``)."""
    library_dir = str(Path(library_path).resolve().parent)
    inherited = os.environ.get("LD_LIBRARY_PATH", "")
    return {
        "LD_LIBRARY_PATH": f"{library_dir}:{inherited}" if inherited else library_dir,
        STATE_ENV_VAR: str(Path(state_path).resolve()),
    }


class FakeGpuState:
    """The GPUs of a fake NVML as a state file mapped into this process.

    Create one with :meth:`create` (new file) or :meth:`open` (existing file); close it
    (or use it as a context manager) when done. Setters write through at once: the next
    NVML call sees the value. Values are validated: a negative or non-finite one is a
    FakeStateError naming the field.
    """

    def __init__(self, path: Path, buffer: mmap.mmap) -> None:
        """Use :meth:`create` or :meth:`open`."""
        self.path = path
        self._buffer = buffer
        self._header = np.frombuffer(buffer, dtype=HEADER_DTYPE, count=1)
        count = int(self._header["device_count"][0])
        self._records = np.frombuffer(
            buffer, dtype=RECORD_DTYPE, count=count, offset=HEADER_DTYPE.itemsize
        )

    @classmethod
    def create(
        cls,
        path: Path | str,
        gpus: Sequence[FakeGpu],
        driver_version: str = "550.54.15",
        nvml_version: str = "12.550.54.15",
    ) -> Self:
        """Write a new state file at ``path`` describing ``gpus`` (limits at their
        defaults, demand at idle, utilization 0, 30 °C) and map it."""
        if len(gpus) > MAX_DEVICES:
            raise FakeStateError(f"gpus: at most {MAX_DEVICES} GPUs, got {len(gpus)}")
        header = np.zeros(1, dtype=HEADER_DTYPE)
        header["magic"] = MAGIC
        header["layout_version"] = LAYOUT_VERSION
        header["record_size"] = RECORD_DTYPE.itemsize
        header["device_count"] = len(gpus)
        header["driver_version"] = driver_version.encode()
        header["nvml_version"] = nvml_version.encode()
        records = np.zeros(len(gpus), dtype=RECORD_DTYPE)
        for field in ("name", "uuid", "serial"):
            values = [getattr(gpu, field).encode() for gpu in gpus]
            too_long = [v for v in values if len(v) >= RECORD_DTYPE[field].itemsize]
            if too_long:
                raise FakeStateError(
                    f"gpus.{field}: {too_long[0]!r} is longer than "
                    f"{RECORD_DTYPE[field].itemsize - 1} bytes"
                )
            records[field] = values
        limits = {
            name: _milliwatts(f"gpus.{name}", [getattr(gpu, name) for gpu in gpus])
            for name in ("default_limit_w", "min_limit_w", "max_limit_w", "idle_w")
        }
        bad = np.flatnonzero(
            (limits["min_limit_w"] > limits["default_limit_w"])
            | (limits["default_limit_w"] > limits["max_limit_w"])
        )
        if bad.size:
            raise FakeStateError(
                f"gpus[{bad[0]}]: limits must satisfy min <= default <= max, got "
                f"{gpus[bad[0]].min_limit_w}, {gpus[bad[0]].default_limit_w}, "
                f"{gpus[bad[0]].max_limit_w} W"
            )
        records["default_limit_mw"] = limits["default_limit_w"]
        records["limit_mw"] = limits["default_limit_w"]
        records["min_limit_mw"] = limits["min_limit_w"]
        records["max_limit_mw"] = limits["max_limit_w"]
        records["demand_mw"] = limits["idle_w"]
        records["memory_total_bytes"] = [gpu.memory_total_bytes for gpu in gpus]
        records["temperature_c"] = 30
        for field in ("clock_graphics_mhz", "clock_sm_mhz", "clock_memory_mhz"):
            records[field] = [getattr(gpu, field) for gpu in gpus]
        target = Path(path)
        target.write_bytes(header.tobytes() + records.tobytes())
        return cls.open(target)

    @classmethod
    def open(cls, path: Path | str) -> Self:
        """Map an existing state file; FakeStateError if it is not one of this layout."""
        target = Path(path)
        with target.open("r+b") as file:
            size = os.fstat(file.fileno()).st_size
            if size < HEADER_DTYPE.itemsize:
                raise FakeStateError(f"{target}: {size} bytes is too short for a state file")
            buffer = mmap.mmap(file.fileno(), size)
        header = np.frombuffer(buffer, dtype=HEADER_DTYPE, count=1).copy()[0]
        expected_size = HEADER_DTYPE.itemsize + int(header["device_count"]) * RECORD_DTYPE.itemsize
        problem = ""
        if header["magic"] != MAGIC:
            problem = "not a fake NVML state file (bad magic)"
        elif header["layout_version"] != LAYOUT_VERSION:
            problem = f"layout version {header['layout_version']}, expected {LAYOUT_VERSION}"
        elif header["record_size"] != RECORD_DTYPE.itemsize or size < expected_size:
            problem = f"{size} bytes does not hold {header['device_count']} records"
        if problem:
            buffer.close()
            raise FakeStateError(f"{target}: {problem}")
        return cls(target, buffer)

    # ----- what the twin writes -----

    def set_demand_w(
        self, watts: float | Sequence[float] | np.ndarray, gpus: GpuIndex = ALL_GPUS
    ) -> None:
        """Power the workload would draw uncapped [W]; NVML reports ``min(demand, limit)``."""
        self._write("demand_mw", gpus, _milliwatts("demand_w", watts))

    def set_utilization(
        self,
        gpu_pct: float | Sequence[float] | np.ndarray,
        memory_pct: float | Sequence[float] | np.ndarray = 0.0,
        gpus: GpuIndex = ALL_GPUS,
    ) -> None:
        """GPU and memory utilization [%] (0-100)."""
        self._write("util_gpu_pct", gpus, _bounded("gpu_pct", gpu_pct, 100.0))
        self._write("util_memory_pct", gpus, _bounded("memory_pct", memory_pct, 100.0))

    def set_temperature_c(
        self, temp_c: float | Sequence[float] | np.ndarray, gpus: GpuIndex = ALL_GPUS
    ) -> None:
        """GPU die temperature [°C] (whole degrees, as NVML reports)."""
        self._write("temperature_c", gpus, _bounded("temp_c", temp_c, 200.0))

    def set_memory_used_bytes(
        self, used_bytes: int | Sequence[int] | np.ndarray, gpus: GpuIndex = ALL_GPUS
    ) -> None:
        """Allocated device memory [B] (NVML reports at most the total)."""
        values = np.asarray(used_bytes, dtype=np.float64)
        if not np.all(np.isfinite(values) & (values >= 0)):
            raise FakeStateError(f"used_bytes: must be finite and >= 0, got {used_bytes!r}")
        self._write("memory_used_bytes", gpus, values.astype(np.uint64))

    def set_clocks_mhz(
        self, graphics: int, sm: int, memory: int, gpus: GpuIndex = ALL_GPUS
    ) -> None:
        """Current graphics, SM and memory clocks [MHz]."""
        for field, value in (
            ("clock_graphics_mhz", graphics),
            ("clock_sm_mhz", sm),
            ("clock_memory_mhz", memory),
        ):
            self._write(field, gpus, _bounded(field, value, 100_000.0))

    def inject_error(self, nvml_code: int, gpus: GpuIndex = ALL_GPUS) -> None:
        """Make every NVML call on these GPUs return ``nvml_code`` (e.g.
        ``pynvml.NVML_ERROR_GPU_IS_LOST``); 0 clears it."""
        self._write("error_code", gpus, _bounded("nvml_code", nvml_code, _UINT32_MAX))

    def inject_set_error(self, nvml_code: int, gpus: GpuIndex = ALL_GPUS) -> None:
        """Make ``nvmlDeviceSetPowerManagementLimit`` on these GPUs return ``nvml_code``
        (e.g. ``pynvml.NVML_ERROR_NO_PERMISSION``); 0 clears it."""
        self._write("set_error_code", gpus, _bounded("nvml_code", nvml_code, _UINT32_MAX))

    def inject_init_error(self, nvml_code: int) -> None:
        """Make the next first ``nvmlInit`` return ``nvml_code``; 0 clears it."""
        self._header["init_error_code"] = _bounded("nvml_code", nvml_code, _UINT32_MAX)

    # ----- what the library wrote -----

    @property
    def n_gpus(self) -> int:
        """GPUs in the state [-]."""
        return int(self._records.size)

    @property
    def uuids(self) -> tuple[str, ...]:
        """NVML UUID of each GPU, in index order."""
        return tuple(value.decode() for value in self._records["uuid"])

    @property
    def names(self) -> tuple[str, ...]:
        """NVML product name of each GPU, in index order."""
        return tuple(value.decode() for value in self._records["name"])

    def limit_w(self) -> np.ndarray:
        """Current power limit of each GPU [W] (a copy)."""
        return self._records["limit_mw"] / 1000.0

    def power_w(self) -> np.ndarray:
        """What NVML reports as power usage, ``min(demand, limit)`` per GPU [W] (a copy)."""
        return np.minimum(self._records["demand_mw"], self._records["limit_mw"]) / 1000.0

    def close(self) -> None:
        """Unmap the state file (the file stays); idempotent."""
        if self._buffer.closed:
            return
        del self._header, self._records
        self._buffer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _write(self, field: str, gpus: GpuIndex, values: np.ndarray) -> None:
        """Write ``values`` into ``field`` of the ``gpus`` records;
        FakeStateError naming the field for an index outside the state."""
        if self._buffer.closed:
            raise FakeStateError(f"{self.path}: state is closed")
        column = self._records[field]
        try:
            column[gpus] = values
        except (IndexError, ValueError) as error:
            raise FakeStateError(f"{field}: cannot write GPUs {gpus!r}: {error}") from error


def _milliwatts(field: str, watts: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """``watts`` [W] as uint32 milliwatts; FakeStateError naming ``field`` if a value is
    negative, not finite, or above what NVML can hold."""
    checked = _bounded(field, watts, _UINT32_MAX / 1000.0, round_to_int=False)
    return np.rint(checked * 1000.0).astype(np.uint32)


def _bounded(field: str, values: object, upper: float, round_to_int: bool = True) -> np.ndarray:
    """``values`` after checking each lies in ``[0, upper]`` (FakeStateError naming
    ``field`` otherwise): rounded to uint32, or as float64 with ``round_to_int=False``."""
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array) & (array >= 0) & (array <= upper)):
        raise FakeStateError(f"{field}: every value must lie in [0, {upper:g}], got {values!r}")
    return np.rint(array).astype(np.uint32) if round_to_int else array
