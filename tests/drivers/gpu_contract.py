"""The behaviour every GPU driver must have, as a test base class.

Subclass :class:`GpuDriverContract` in a test module under a ``Test...`` name and give it a
``driver`` fixture: a fresh, open driver per test (closing it at teardown must be safe after
the test closed it). Pytest then runs every contract test against that driver. Override
:meth:`GpuDriverContract.power_limit_fraction_to_try` where a driver must not change the
hardware's settings (a real GPU shared with others).
"""

from __future__ import annotations

import numpy as np
import pytest

from drivers.base import (
    DeviceClass,
    DriverClosedError,
    GpuCommand,
    GpuDriver,
    GpuReadings,
)
from models.fleet_physics import GpuHealth

FRACTION_TOLERANCE = 2e-3
"""Read-back tolerance on a power-limit fraction [-]: float32 in simulation, whole mW or W
in NVML (1 W of a 700 W TDP is 1.4e-3)."""


def _class_rows(readings: GpuReadings, device_class: DeviceClass) -> np.ndarray:
    """Rows of ``readings`` that belong to ``device_class`` (facility and type)."""
    if device_class.model_id not in readings.type_ids:
        return np.zeros(0, dtype=np.int64)
    type_index = readings.type_ids.index(device_class.model_id)
    mask = (readings.facility == device_class.facility) & (readings.type == type_index)
    return np.flatnonzero(mask)


class GpuDriverContract:
    """Contract tests for :class:`drivers.base.GpuDriver`; needs a ``driver`` fixture."""

    def power_limit_fraction_to_try(
        self, device_class: DeviceClass, readings: GpuReadings
    ) -> float:
        """The power-limit fraction [-] the read-back test sets on ``device_class``: by
        default halfway between its lowest allowed fraction and 1."""
        return (device_class.capabilities.min_power_fraction + 1.0) / 2.0

    def test_meets_the_protocol(self, driver: GpuDriver) -> None:
        """The driver satisfies the runtime-checkable GpuDriver Protocol."""
        assert isinstance(driver, GpuDriver)

    def test_discovered_counts_match_the_readings(self, driver: GpuDriver) -> None:
        """Every discovered pool has as many rows in ``read()`` as its count, the pools
        cover every row, and device ids (where given) are those of the pool's rows."""
        classes = driver.discover()
        readings = driver.read()
        assert classes, "a driver under contract test must have GPUs"
        assert all(c.kind == "gpu" for c in classes)
        assert sum(c.count for c in classes) == readings.facility.size
        for device_class in classes:
            rows = _class_rows(readings, device_class)
            assert rows.size == device_class.count, device_class
            if device_class.device_ids:
                assert len(device_class.device_ids) == device_class.count
                assert {readings.device_ids[i] for i in rows} == set(device_class.device_ids)

    def test_readings_are_columns_of_one_length(self, driver: GpuDriver) -> None:
        """Every column of ``read()`` has one row per GPU; utilization lies in [0, 1] and
        power limits are positive wherever they are known."""
        readings = driver.read()
        n = readings.facility.size
        columns = (
            readings.type,
            readings.node,
            readings.state,
            readings.use,
            readings.power_limit_fraction,
            readings.power_w,
            readings.util,
            readings.temp_c,
        )
        assert all(column.shape == (n,) for column in columns)
        assert readings.device_ids == () or len(readings.device_ids) == n
        util = readings.util[np.isfinite(readings.util)]
        assert np.all((util >= 0.0) & (util <= 1.0))
        limits = readings.power_limit_fraction[np.isfinite(readings.power_limit_fraction)]
        assert np.all(limits > 0.0)

    def test_empty_apply_is_verified(self, driver: GpuDriver) -> None:
        """Applying no commands gives no results and counts as all verified."""
        result = driver.apply([])
        assert result.results == ()
        assert result.all_verified

    def test_apply_gives_one_result_per_command_in_order(self, driver: GpuDriver) -> None:
        """``apply`` answers every command, in order, with the command itself; a command for
        a pool that does not exist is reported unverified with a reason, not raised."""
        classes = driver.discover()
        commands = [GpuCommand(c.facility, c.model_id) for c in classes]
        unknown = GpuCommand(classes[0].facility, "no_such_gpu_type")
        commands.insert(1, unknown)
        result = driver.apply(commands)
        assert [r.command for r in result.results] == commands
        by_command = {id(r.command): r for r in result.results}
        assert not by_command[id(unknown)].verified
        assert by_command[id(unknown)].reason
        assert result.failures == (by_command[id(unknown)],)

    def test_power_limit_is_read_back(self, driver: GpuDriver) -> None:
        """A power-limit command within a pool's capabilities is verified, and ``read()``
        then shows that limit on every healthy GPU of the pool."""
        settable = [c for c in driver.discover() if c.capabilities.can_set_power_limit]
        if not settable:
            pytest.skip("no pool of this driver can set a power limit")
        device_class = settable[0]
        fraction = self.power_limit_fraction_to_try(device_class, driver.read())
        result = driver.apply(
            [GpuCommand(device_class.facility, device_class.model_id, None, fraction)]
        )
        assert result.all_verified, result.failures
        readings = driver.read()
        rows = _class_rows(readings, device_class)
        healthy = rows[readings.state[rows] == GpuHealth.OK]
        assert healthy.size
        read_back = readings.power_limit_fraction[healthy]
        assert np.all(np.abs(read_back - fraction) <= FRACTION_TOLERANCE), read_back

    def test_use_after_close_raises(self, driver: GpuDriver) -> None:
        """After ``close()`` every verb raises DriverClosedError; closing again is harmless."""
        driver.close()
        with pytest.raises(DriverClosedError):
            driver.discover()
        with pytest.raises(DriverClosedError):
            driver.read()
        with pytest.raises(DriverClosedError):
            driver.apply([])
        driver.close()
