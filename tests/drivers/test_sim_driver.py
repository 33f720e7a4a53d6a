"""Simulated drivers: they meet the driver Protocols and verify every command by read-back."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.base import (
    AsicCommand,
    AsicDriver,
    DriverClosedError,
    GpuCommand,
    GpuDriver,
)
from drivers.sim import SimAsicDriver, SimGpuDriver
from models.fleet import ACTIVE, SLEEPING, AsicFleet, GpuFleet, GpuHealth, GpuUse
from models.hardware import ASIC_CATALOG, GPU_CATALOG
from tests.drivers.asic_contract import AsicDriverContract
from tests.drivers.gpu_contract import GpuDriverContract


class Clock:
    """A settable simulation clock [s]."""

    def __init__(self, t_s: float = 0.0) -> None:
        self.t_s = t_s

    def __call__(self) -> float:
        return self.t_s


def _asic_driver(clock: Clock | None = None) -> SimAsicDriver:
    fleet = AsicFleet.from_groups(
        [
            (0, ASIC_CATALOG["antminer_s21"], 20, 1.0),
            (0, ASIC_CATALOG["antminer_s9"], 10, 1.0),
            (1, ASIC_CATALOG["antminer_s21"], 5, 1.0),
        ]
    )
    return SimAsicDriver(fleet, clock or Clock())


def _gpu_driver(clock: Clock | None = None) -> SimGpuDriver:
    fleet = GpuFleet.from_groups(
        [(0, GPU_CATALOG["h100_sxm"], 16, 8), (1, GPU_CATALOG["l40s"], 8, 4)]
    )
    return SimGpuDriver(fleet, clock or Clock())


def test_sim_drivers_meet_the_protocols() -> None:
    """Both simulated drivers satisfy the runtime-checkable driver Protocols."""
    assert isinstance(_asic_driver(), AsicDriver)
    assert isinstance(_gpu_driver(), GpuDriver)


def test_discover_lists_classes_with_capabilities() -> None:
    """Discovery returns one entry per (facility, model) with its size and capabilities."""
    classes = _asic_driver().discover()
    assert [(c.facility, c.model_id, c.count) for c in classes] == [
        (0, "antminer_s21", 20),
        (0, "antminer_s9", 10),
        (1, "antminer_s21", 5),
    ]
    assert all(c.capabilities.can_sleep and c.capabilities.can_set_power_limit for c in classes)
    assert classes[0].capabilities.min_power_fraction == 0.6
    pools = _gpu_driver().discover()
    assert [(p.kind, p.model_id, p.count) for p in pools] == [
        ("gpu", "h100_sxm", 16),
        ("gpu", "l40s", 8),
    ]
    assert pools[0].capabilities.can_assign_uses


@settings(max_examples=40, deadline=None)
@given(
    active=st.lists(st.integers(0, 20), min_size=3, max_size=3),
    fractions=st.lists(st.floats(0.6, 1.0), min_size=3, max_size=3),
)
def test_apply_then_read_back_gives_the_requested_state(
    active: list[int], fractions: list[float]
) -> None:
    """Commands within the healthy fleet verify, and read() shows exactly what was asked."""
    driver = _asic_driver()
    sizes = {(c.facility, c.model_id): c.count for c in driver.discover()}
    commands = [
        AsicCommand(f, m, min(n, sizes[(f, m)]), fraction)
        for (f, m), n, fraction in zip(sizes, active, fractions, strict=True)
    ]
    result = driver.apply(commands)
    assert result.all_verified and not result.failures
    readings = driver.read()
    for command in commands:
        assert readings.count(command.facility, command.model_id, ACTIVE) == command.active_count
        rows = (readings.facility == command.facility) & (
            readings.model == readings.model_ids.index(command.model_id)
        )
        np.testing.assert_allclose(readings.power_fraction[rows], command.power_fraction, rtol=1e-6)


def test_asking_for_more_than_healthy_is_not_verified() -> None:
    """More hashing miners than healthy ones: all healthy hash, verified=False with counts."""
    driver = _asic_driver()
    driver.fleet.fail([0, 1, 2])
    result = driver.apply([AsicCommand(0, "antminer_s21", active_count=20)])
    (outcome,) = result.results
    assert not outcome.verified
    assert "17 healthy of 20" in outcome.reason and "3 failed" in outcome.reason
    assert driver.read().count(0, "antminer_s21", ACTIVE) == 17


def test_clamped_power_target_is_not_verified() -> None:
    """A power target below the firmware minimum is applied clamped and reported."""
    driver = _asic_driver()
    result = driver.apply([AsicCommand(0, "antminer_s9", power_fraction=0.3)])
    assert not result.all_verified and "allowed [0.6, 1]" in result.results[0].reason
    assert np.all(driver.read().power_fraction[driver.fleet.model == 1] == np.float32(0.6))


def test_unknown_class_is_reported_not_raised() -> None:
    """A command for a model the facility does not have fails verification; others apply."""
    driver = _asic_driver()
    result = driver.apply(
        [AsicCommand(1, "antminer_s9", active_count=1), AsicCommand(1, "antminer_s21", 2)]
    )
    assert [r.verified for r in result.results] == [False, True]
    assert "antminer_s9" in result.results[0].reason
    assert result.results[1].changed == 3


def test_commands_act_at_the_clock_time() -> None:
    """Woken miners start their ramp at clock() and readings carry the clock time."""
    clock = Clock(600.0)
    driver = _asic_driver(clock)
    driver.apply([AsicCommand(0, "antminer_s21", active_count=0)])
    clock.t_s = 900.0
    result = driver.apply([AsicCommand(0, "antminer_s21", active_count=5)])
    assert result.t_s == 900.0 and driver.read().t_s == 900.0
    woken = driver.fleet.state == ACTIVE
    assert np.all(driver.fleet.ramp_start_s[woken & (driver.fleet.model == 0)][:5] == 900.0)
    assert driver.read().count(0, "antminer_s21", SLEEPING) == 15


def test_readings_are_copies() -> None:
    """A reading is a snapshot: later commands do not change it."""
    driver = _asic_driver()
    before = driver.read()
    driver.apply([AsicCommand(0, "antminer_s21", active_count=0)])
    assert before.count(0, "antminer_s21", ACTIVE) == 20
    assert not np.shares_memory(before.state, driver.fleet.state)


def test_gpu_uses_and_power_limit_read_back() -> None:
    """GPU commands label uses and cap power; read-back matches and verifies."""
    driver = _gpu_driver()
    result = driver.apply(
        [
            GpuCommand(
                0,
                "h100_sxm",
                uses={GpuUse.INFERENCE: 4, GpuUse.TRAINING: 8},
                power_limit_fraction=0.75,
            )
        ]
    )
    assert result.all_verified and result.results[0].changed == 12
    readings = driver.read()
    pool = readings.facility == 0
    assert np.count_nonzero(readings.use[pool] == GpuUse.TRAINING) == 8
    assert np.count_nonzero(readings.use[pool] == GpuUse.IDLE) == 4
    assert np.all(readings.power_limit_fraction[pool] == np.float32(0.75))


def test_gpu_shortfall_and_clamp_are_not_verified() -> None:
    """More GPUs than healthy, or a cap below the minimum, fail verification with reasons."""
    driver = _gpu_driver()
    driver.fleet.fail([16, 17])
    short = driver.apply([GpuCommand(1, "l40s", uses={GpuUse.SPOT: 8})]).results[0]
    assert not short.verified and "short by 2" in short.reason
    assert driver.read().state[16] == GpuHealth.FAILED
    capped = driver.apply([GpuCommand(0, "h100_sxm", power_limit_fraction=0.1)]).results[0]
    assert not capped.verified and "power_limit_fraction" in capped.reason
    missing = driver.apply([GpuCommand(0, "b200", uses={})]).results[0]
    assert not missing.verified and "b200" in missing.reason


def test_closed_driver_refuses_calls() -> None:
    """After close() every call raises DriverClosedError."""
    asic, gpu = _asic_driver(), _gpu_driver()
    asic.close()
    gpu.close()
    with pytest.raises(DriverClosedError):
        asic.read()
    with pytest.raises(DriverClosedError):
        gpu.apply([])


def test_class_counts_equal_counting_the_readings() -> None:
    """state_counts() and failed_counts() equal what counting read() gives, after commands
    and failures, without copying the columns."""
    asic, gpu = _asic_driver(), _gpu_driver()
    asic.apply([AsicCommand(0, "antminer_s21", active_count=7)])
    asic.fleet.fail([0, 21, 30])
    gpu.fleet.fail([1, 17, 18])
    readings = asic.read()
    expected = np.zeros((2, len(readings.model_ids), 4), dtype=np.int64)
    np.add.at(expected, (readings.facility, readings.model, readings.state), 1)
    assert np.array_equal(asic.state_counts(), expected)
    failed, type_ids = gpu.failed_counts()
    gpu_readings = gpu.read()
    assert type_ids == gpu_readings.type_ids
    down = gpu_readings.state != GpuHealth.OK
    expected_failed = np.zeros((2, len(type_ids)), dtype=np.int64)
    np.add.at(expected_failed, (gpu_readings.facility[down], gpu_readings.type[down]), 1)
    assert np.array_equal(failed, expected_failed) and failed.sum() == 3
    asic.close()
    with pytest.raises(DriverClosedError):
        asic.state_counts()


class TestSimAsicDriverContract(AsicDriverContract):
    """The simulated ASIC driver passes the shared contract."""

    @pytest.fixture
    def driver(self):
        driver = _asic_driver()
        yield driver
        driver.close()


class TestSimGpuDriverContract(GpuDriverContract):
    """The simulated GPU driver passes the shared GPU contract."""

    @pytest.fixture
    def driver(self):
        driver = _gpu_driver()
        yield driver
        driver.close()
