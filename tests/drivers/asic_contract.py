"""The contract every ASIC driver passes (simulated, pyasic on emulators, pyasic on miners).

Subclass :class:`AsicDriverContract` and provide a ``driver`` fixture yielding a fresh,
discovered-able driver with at least two miners of one model that can sleep and resume,
all awake and healthy; the fixture closes it afterwards. Optionally override
:meth:`settle` when read-back needs time (real firmware ramps).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from drivers.base import AsicCommand, AsicDriver, DriverClosedError
from models.fleet_physics import AsicState


class AsicDriverContract:
    """Protocol behaviour shared by all ASIC drivers."""

    def settle(self, driver: Any) -> None:
        """Wait for commanded changes to show in readings (nothing for instant drivers)."""

    def _class_with_room(self, driver: AsicDriver) -> tuple[int, str, int]:
        for device_class in driver.discover():
            if device_class.count >= 2 and device_class.capabilities.can_sleep:
                return device_class.facility, device_class.model_id, device_class.count
        pytest.fail("the driver fixture must offer a class of >= 2 miners that can sleep")

    def test_meets_the_protocol(self, driver: AsicDriver) -> None:
        """The driver is an AsicDriver (runtime-checkable Protocol)."""
        assert isinstance(driver, AsicDriver)

    def test_discovered_counts_match_the_readings(self, driver: AsicDriver) -> None:
        """Every discovered class has as many rows in ``read()`` as its count."""
        readings = driver.read()
        for device_class in driver.discover():
            rows = sum(
                readings.count(device_class.facility, device_class.model_id, int(state))
                for state in AsicState
            )
            assert rows == device_class.count
        assert readings.state.size == sum(c.count for c in driver.discover())

    def test_empty_apply_is_verified(self, driver: AsicDriver) -> None:
        """Nothing asked, nothing failed."""
        result = driver.apply([])
        assert result.results == () and result.all_verified

    def test_sleep_then_resume_is_verified_and_read_back(self, driver: AsicDriver) -> None:
        """Asking one fewer miner to hash puts exactly one to sleep (read back); asking for
        all again wakes it; each command comes back verified, in order."""
        facility, model_id, count = self._class_with_room(driver)
        sleep = AsicCommand(facility, model_id, active_count=count - 1)
        result = driver.apply([sleep])
        assert [r.command for r in result.results] == [sleep]
        assert result.all_verified, result.failures
        self.settle(driver)
        readings = driver.read()
        assert readings.count(facility, model_id, int(AsicState.SLEEPING)) == 1
        assert readings.count(facility, model_id, int(AsicState.ACTIVE)) == count - 1
        wake = AsicCommand(facility, model_id, active_count=count)
        assert driver.apply([wake]).all_verified
        self.settle(driver)
        assert driver.read().count(facility, model_id, int(AsicState.ACTIVE)) == count

    def test_impossible_request_is_reported_not_raised(self, driver: AsicDriver) -> None:
        """More miners than exist, or a model that is not there: verified=False with a
        reason, and the driver keeps working."""
        facility, model_id, count = self._class_with_room(driver)
        too_many = AsicCommand(facility, model_id, active_count=count + 5)
        missing = AsicCommand(facility, "no_such_model", active_count=1)
        result = driver.apply([too_many, missing])
        assert [r.verified for r in result.results] == [False, False]
        assert all(r.reason for r in result.results)
        assert np.all(np.isin(driver.read().state, [int(s) for s in AsicState]))

    def test_closed_driver_refuses_calls(self, driver: AsicDriver) -> None:
        """After close(), every verb raises DriverClosedError."""
        driver.discover()
        driver.close()
        for call in (driver.read, driver.discover, lambda: driver.apply([])):
            with pytest.raises(DriverClosedError):
                call()
