"""The NVML GPU driver, end to end through the unmodified nvidia-ml-py.

Without a GPU, pynvml runs against the fake ``libnvidia-ml.so.1`` (drivers/nvml/fake_nvml.c)
built once per session and preloaded into this process; its GPUs live in a state file the
tests write through :class:`FakeGpuState`. Tests marked ``gpu`` run the same driver against
the real NVML; they need a process where the fake was never loaded (``pytest -m gpu``) and
fail, rather than pass, anywhere else.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pynvml
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.base import DeviceClass, DriverError, GpuCommand, GpuReadings
from drivers.nvml.driver import NvmlGpuDriver, NvmlTypeMapError
from drivers.nvml.fake_library import (
    RECORD_DTYPE,
    STATE_ENV_VAR,
    FakeGpuState,
    FakeNvmlError,
    FakeStateError,
    build_fake_nvml,
    fake_gpus,
    fake_nvml_environment,
    is_fake_nvml_loaded,
    preload_fake_nvml,
)
from models.fleet_physics import GpuHealth, GpuUse
from models.hardware import GPU_CATALOG
from tests.drivers.gpu_contract import GpuDriverContract

HOST_TYPES = ["h100_sxm"] * 4 + ["l40s"] * 2
"""The fake host: four H100 SXM (700 W TDP) and two L40S (350 W)."""

FACILITY = 1


@pytest.fixture(scope="session")
def fake_nvml_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake NVML built once per session and preloaded, so pynvml loads it."""
    try:
        library = build_fake_nvml(tmp_path_factory.mktemp("fake_nvml"))
    except FakeNvmlError as error:
        if "no C compiler" in str(error):
            pytest.skip(str(error))
        raise
    preload_fake_nvml(library)
    return library


@pytest.fixture
def state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_nvml_library: Path
) -> Iterator[FakeGpuState]:
    """A fresh fake host (HOST_TYPES) that the next nvmlInit maps."""
    with FakeGpuState.create(tmp_path / "gpus.state", fake_gpus(HOST_TYPES)) as fake_state:
        monkeypatch.setenv(STATE_ENV_VAR, str(fake_state.path))
        yield fake_state


@pytest.fixture
def nvml_driver(state: FakeGpuState) -> Iterator[NvmlGpuDriver]:
    """An open driver over the fake host, closed at teardown (before the state unmaps)."""
    driver = NvmlGpuDriver(facility=FACILITY)
    yield driver
    driver.close()


class TestNvmlDriverContract(GpuDriverContract):
    """The shared GPU driver contract, against the fake NVML."""

    @pytest.fixture
    def driver(self, nvml_driver: NvmlGpuDriver) -> NvmlGpuDriver:
        return nvml_driver


def test_unmodified_pynvml_talks_to_the_fake_library(state: FakeGpuState) -> None:
    """pynvml's own calls see the state file: count, names, UUIDs, versions, memory (v1 and
    v2 structs), clocks; before init it reports Uninitialized; the library's record layout
    is the one the Python side writes."""
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        pynvml.nvmlDeviceGetCount()
    state.set_memory_used_bytes(12_000_000_000, gpus=2)
    state.set_clocks_mhz(1755, 1755, 2619, gpus=2)
    pynvml.nvmlInit()
    try:
        assert is_fake_nvml_loaded()
        assert pynvml.nvmlLib.hcpFakeNvmlRecordSize() == RECORD_DTYPE.itemsize
        assert pynvml.nvmlDeviceGetCount() == len(HOST_TYPES)
        assert pynvml.nvmlSystemGetDriverVersion() == "550.54.15"
        handle = pynvml.nvmlDeviceGetHandleByIndex(2)
        assert pynvml.nvmlDeviceGetName(handle) == state.names[2] == "NVIDIA H100 80GB HBM3"
        assert pynvml.nvmlDeviceGetUUID(handle) == state.uuids[2]
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        assert (memory.used, memory.total - memory.free) == (12_000_000_000, 12_000_000_000)
        memory_v2 = pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
        assert memory_v2.used == memory.used and memory_v2.total == memory.total
        assert pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM) == 1755
        with pytest.raises(pynvml.NVMLError_InvalidArgument):
            pynvml.nvmlDeviceGetHandleByIndex(len(HOST_TYPES))
        with pytest.raises(pynvml.NVMLError_InvalidArgument):
            pynvml.nvmlDeviceSetPowerManagementLimit(handle, 100_000)
    finally:
        pynvml.nvmlShutdown()


def test_discover_groups_gpus_by_catalog_type(
    nvml_driver: NvmlGpuDriver, state: FakeGpuState
) -> None:
    """Discovery gives one pool per type at the driver's facility, in NVML index order,
    with the GPUs' UUIDs and what NVML can do: power caps down to the NVML minimum, no
    sleep, no use labels."""
    classes = nvml_driver.discover()
    assert [(c.facility, c.model_id, c.count) for c in classes] == [
        (FACILITY, "h100_sxm", 4),
        (FACILITY, "l40s", 2),
    ]
    assert classes[0].device_ids == state.uuids[:4]
    assert classes[1].device_ids == state.uuids[4:]
    for device_class in classes:
        capabilities = device_class.capabilities
        assert capabilities.can_set_power_limit
        assert not (capabilities.can_sleep or capabilities.can_resume)
        assert not capabilities.can_assign_uses
        spec = GPU_CATALOG[device_class.model_id]
        assert capabilities.min_power_fraction == pytest.approx(spec.min_power_fraction)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    demand_w=st.lists(st.floats(0.0, 1200.0), min_size=6, max_size=6),
    util_pct=st.lists(st.integers(0, 100), min_size=6, max_size=6),
    temp_c=st.lists(st.integers(20, 95), min_size=6, max_size=6),
)
def test_read_returns_what_the_twin_wrote(
    nvml_driver: NvmlGpuDriver,
    state: FakeGpuState,
    demand_w: list[float],
    util_pct: list[int],
    temp_c: list[int],
) -> None:
    """``read()`` reports the twin's utilization and temperature, and power as the demand
    capped at each GPU's limit (never above it), with limits as fractions of catalog TDP."""
    state.set_demand_w(demand_w)
    state.set_utilization(util_pct)
    state.set_temperature_c(temp_c)
    readings = nvml_driver.read()
    limit_w = state.limit_w()
    tdp_w = np.array([GPU_CATALOG[t].tdp_w for t in HOST_TYPES])
    np.testing.assert_allclose(
        readings.power_w, np.minimum(np.round(np.array(demand_w) * 1000) / 1000, limit_w)
    )
    assert np.all(readings.power_w <= limit_w)
    np.testing.assert_allclose(readings.util, np.array(util_pct) / 100.0)
    np.testing.assert_array_equal(readings.temp_c, temp_c)
    np.testing.assert_allclose(readings.power_limit_fraction, limit_w / tdp_w)
    assert readings.device_ids == state.uuids
    assert np.all(readings.facility == FACILITY)
    assert np.all(readings.state == GpuHealth.OK)


def test_read_details_give_memory_and_clocks(
    nvml_driver: NvmlGpuDriver, state: FakeGpuState
) -> None:
    """``read_details()`` adds memory use and clocks per GPU to what ``read()`` gives."""
    state.set_memory_used_bytes([5_000_000_000, 0, 0, 0, 0, 40_000_000_000])
    state.set_clocks_mhz(1410, 1410, 1593, gpus=[4, 5])
    state.set_utilization(0, memory_pct=35, gpus=5)
    details = nvml_driver.read_details()
    assert [d.uuid for d in details] == list(state.uuids)
    assert details[0].memory_used_bytes == 5_000_000_000
    assert details[5].memory_used_bytes == 40_000_000_000
    assert details[5].memory_total_bytes == int(GPU_CATALOG["l40s"].memory_gb * 1e9)
    assert (details[5].clock_graphics_mhz, details[5].clock_memory_mhz) == (1410, 1593)
    assert details[5].util_memory == pytest.approx(0.35)
    assert all(d.healthy and d.error == "" for d in details)


def test_power_limit_lands_in_the_state_and_in_read(
    nvml_driver: NvmlGpuDriver, state: FakeGpuState
) -> None:
    """A power cap on one pool is set on each of its GPUs (the twin sees it in the state
    file), verified by read-back, caps the reported power, and leaves the other pool alone;
    setting it again is verified and changes no GPU."""
    state.set_demand_w(650.0)
    result = nvml_driver.apply([GpuCommand(FACILITY, "h100_sxm", power_limit_fraction=0.6)])
    assert result.all_verified, result.failures
    assert result.results[0].changed == 4
    np.testing.assert_allclose(state.limit_w(), [420.0] * 4 + [350.0] * 2)
    readings = nvml_driver.read()
    np.testing.assert_allclose(readings.power_limit_fraction, [0.6] * 4 + [1.0] * 2)
    np.testing.assert_allclose(readings.power_w, [420.0] * 4 + [350.0] * 2)
    assert set(nvml_driver.last_set_verify_s) == set(state.uuids[:4])
    assert all(np.isfinite(s) and s >= 0.0 for s in nvml_driver.last_set_verify_s.values())
    again = nvml_driver.apply([GpuCommand(FACILITY, "h100_sxm", power_limit_fraction=0.6)])
    assert again.all_verified and again.results[0].changed == 0


@pytest.mark.parametrize(("fraction", "expected_w"), [(0.2, 350.0), (1.3, 700.0)])
def test_out_of_range_limit_is_clamped_and_reported(
    nvml_driver: NvmlGpuDriver, state: FakeGpuState, fraction: float, expected_w: float
) -> None:
    """A cap outside the NVML constraints is set at the nearest bound and reported
    unverified, with the asked and allowed wattages in the reason."""
    if fraction > 1.0:
        nvml_driver.apply([GpuCommand(FACILITY, "h100_sxm", power_limit_fraction=0.8)])
    result = nvml_driver.apply([GpuCommand(FACILITY, "h100_sxm", power_limit_fraction=fraction)])
    outcome = result.results[0]
    assert not outcome.verified
    assert "clamped" in outcome.reason and "[350.0, 700.0] W" in outcome.reason
    np.testing.assert_allclose(state.limit_w()[:4], expected_w)


@pytest.mark.parametrize("fraction", [float("nan"), -0.5, 0.0])
def test_invalid_fraction_is_reported_and_changes_nothing(
    nvml_driver: NvmlGpuDriver, state: FakeGpuState, fraction: float
) -> None:
    """A non-finite or non-positive fraction is reported unverified and no limit moves."""
    before = state.limit_w()
    result = nvml_driver.apply([GpuCommand(FACILITY, "l40s", power_limit_fraction=fraction)])
    assert not result.results[0].verified
    assert "power_limit_fraction" in result.results[0].reason
    np.testing.assert_array_equal(state.limit_w(), before)


def test_lost_gpu_is_reported_and_the_rest_keep_working(
    nvml_driver: NvmlGpuDriver, state: FakeGpuState
) -> None:
    """A GPU that fell off the bus leaves its pool's command unverified with a reason that
    names the GPU and the error; the other GPUs take the cap, read() marks only that GPU
    failed, and the other pool's command is verified."""
    state.inject_error(pynvml.NVML_ERROR_GPU_IS_LOST, gpus=1)
    result = nvml_driver.apply(
        [
            GpuCommand(FACILITY, "h100_sxm", power_limit_fraction=0.8),
            GpuCommand(FACILITY, "l40s", power_limit_fraction=0.9),
        ]
    )
    lost, other = result.results
    assert not lost.verified
    assert "GPU is lost" in lost.reason and state.uuids[1] in lost.reason
    assert lost.changed == 3
    assert other.verified, other.reason
    np.testing.assert_allclose(state.limit_w(), [560.0, 700.0, 560.0, 560.0, 315.0, 315.0])
    readings = nvml_driver.read()
    assert readings.state.tolist() == [GpuHealth.OK, GpuHealth.FAILED, *[GpuHealth.OK] * 4]
    assert readings.use[1] == GpuUse.OFF
    assert np.isnan(readings.power_w[1]) and np.all(np.isfinite(np.delete(readings.power_w, 1)))
    assert "GPU is lost" in nvml_driver.read_details()[1].error
    state.inject_error(0, gpus=1)
    assert nvml_driver.read().state[1] == GpuHealth.OK


def test_refused_set_is_reported(nvml_driver: NvmlGpuDriver, state: FakeGpuState) -> None:
    """Without root, NVML refuses the set: the command is unverified and says so."""
    state.inject_set_error(pynvml.NVML_ERROR_NO_PERMISSION, gpus=[4, 5])
    result = nvml_driver.apply([GpuCommand(FACILITY, "l40s", power_limit_fraction=0.7)])
    assert not result.results[0].verified
    assert result.results[0].reason.count("Insufficient Permissions") == 2
    np.testing.assert_allclose(state.limit_w()[4:], 350.0)


def test_commands_for_other_facilities_are_not_verified(nvml_driver: NvmlGpuDriver) -> None:
    """A command for a pool at another facility does not touch this host's GPUs."""
    result = nvml_driver.apply([GpuCommand(FACILITY + 1, "h100_sxm", power_limit_fraction=0.6)])
    assert not result.results[0].verified
    assert f"facility {FACILITY + 1}" in result.results[0].reason
    assert np.all(nvml_driver.read().power_limit_fraction == 1.0)


def test_uses_are_accepted_and_not_applied(nvml_driver: NvmlGpuDriver) -> None:
    """Use labels are the scheduler's business: a command with uses is verified on its
    power cap alone, and ``read()`` labels no GPU with a use."""
    uses = {int(GpuUse.TRAINING): 3.0, int(GpuUse.INFERENCE): 1.0}
    result = nvml_driver.apply([GpuCommand(FACILITY, "h100_sxm", uses, 0.75)])
    assert result.all_verified, result.failures
    assert np.all(nvml_driver.read().use == GpuUse.IDLE)


def test_nvml_that_cannot_start_is_a_driver_error(
    state: FakeGpuState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When NVML cannot initialise, opening the driver raises DriverError with the NVML
    error string: an injected init error, then no state file at all."""
    state.inject_init_error(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    with pytest.raises(DriverError, match="Driver Not Loaded"):
        NvmlGpuDriver()
    state.inject_init_error(0)
    monkeypatch.delenv(STATE_ENV_VAR)
    with pytest.raises(DriverError, match="NVML error 9"):
        NvmlGpuDriver()


def test_unknown_gpu_name_needs_a_type_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_nvml_library: Path
) -> None:
    """A GPU whose NVML name is not in the catalog is an error naming the GPU and the name;
    a type_map entry makes it known; a type_map to an unknown type is a ValueError."""
    pcie = replace(fake_gpus(["h100_sxm"])[0], name="NVIDIA H100 PCIe")
    with FakeGpuState.create(tmp_path / "pcie.state", [pcie]) as fake_state:
        monkeypatch.setenv(STATE_ENV_VAR, str(fake_state.path))
        with pytest.raises(DriverError, match=r"GPU 0 \(GPU-.*'NVIDIA H100 PCIe'"):
            NvmlGpuDriver()
        driver = NvmlGpuDriver(type_map={"NVIDIA H100 PCIe": "h100_sxm"})
        try:
            assert [c.model_id for c in driver.discover()] == ["h100_sxm"]
        finally:
            driver.close()
    with pytest.raises(NvmlTypeMapError, match="'h100_pcie'"):
        NvmlGpuDriver(type_map={"NVIDIA H100 PCIe": "h100_pcie"})


def test_fake_state_rejects_bad_values(state: FakeGpuState, tmp_path: Path) -> None:
    """The twin's writes are validated with the field named, and a file that is not a
    state file is refused."""
    with pytest.raises(FakeStateError, match="demand_w"):
        state.set_demand_w(-1.0)
    with pytest.raises(FakeStateError, match="gpu_pct"):
        state.set_utilization(101.0)
    with pytest.raises(FakeStateError, match="util_gpu_pct"):
        state.set_utilization(10.0, gpus=len(HOST_TYPES))
    other = tmp_path / "not_a_state.bin"
    other.write_bytes(b"\0" * 200)
    with pytest.raises(FakeStateError, match="bad magic"):
        FakeGpuState.open(other)


def test_child_process_loads_the_fake_through_its_environment(
    state: FakeGpuState, fake_nvml_library: Path
) -> None:
    """With fake_nvml_environment, a fresh interpreter's pynvml loads the fake by name,
    sees the same GPUs, and its power-limit change reaches this process's state."""
    program = (
        "import pynvml; pynvml.nvmlInit(); h = pynvml.nvmlDeviceGetHandleByIndex(5); "
        "pynvml.nvmlDeviceSetPowerManagementLimit(h, 200000); "
        "print(pynvml.nvmlDeviceGetCount(), pynvml.nvmlDeviceGetUUID(h)); pynvml.nvmlShutdown()"
    )
    env = {**os.environ, **fake_nvml_environment(fake_nvml_library, state.path)}
    completed = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, check=True
    )
    assert completed.stdout.split() == [str(len(HOST_TYPES)), state.uuids[5]]
    assert state.limit_w()[5] == 200.0


# ----- real NVML (deselect with -m "not gpu" where there is no GPU) -----


@pytest.fixture
def real_nvml_driver() -> Iterator[NvmlGpuDriver]:
    """A driver over this host's real GPUs; fails when the fake owns this process."""
    if is_fake_nvml_loaded():
        pytest.fail("the fake NVML is loaded in this process; run the gpu tests alone: -m gpu")
    driver = NvmlGpuDriver()
    yield driver
    driver.close()


@pytest.mark.gpu
class TestRealNvmlDriverContract(GpuDriverContract):
    """The shared GPU driver contract against the real NVML. The read-back test sets each
    pool's limit to the value it already has, so the GPU's settings stay as they were."""

    @pytest.fixture
    def driver(self, real_nvml_driver: NvmlGpuDriver) -> NvmlGpuDriver:
        return real_nvml_driver

    def power_limit_fraction_to_try(
        self, device_class: DeviceClass, readings: GpuReadings
    ) -> float:
        """The pool's current limit of its first GPU [-]: a set that changes nothing."""
        row = readings.device_ids.index(device_class.device_ids[0])
        return float(readings.power_limit_fraction[row])


@pytest.mark.gpu
def test_real_gpu_readings_are_plausible(real_nvml_driver: NvmlGpuDriver) -> None:
    """On real GPUs: every GPU is healthy, draws power below its limit plus margin, runs
    between 0 and 110 °C, and has memory and clocks."""
    readings = real_nvml_driver.read()
    assert readings.facility.size >= 1
    assert np.all(readings.state == GpuHealth.OK)
    tdp_w = np.array([gpu.tdp_w for gpu in real_nvml_driver.gpus])
    assert np.all(
        (readings.power_w > 0) & (readings.power_w <= 1.1 * readings.power_limit_fraction * tdp_w)
    )
    assert np.all((readings.temp_c > 0) & (readings.temp_c < 110))
    for details in real_nvml_driver.read_details():
        assert details.memory_total_bytes and details.memory_total_bytes > 0
        assert details.clock_memory_mhz and details.clock_memory_mhz > 0
