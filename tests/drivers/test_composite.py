"""The composite ASIC driver: several drivers seen as one, passing the same contract."""

from __future__ import annotations

import pytest

from drivers.base import AsicCommand
from drivers.composite import CompositeAsicDriver
from drivers.sim import SimAsicDriver
from models.fleet import AsicFleet, AsicState
from models.hardware import ASIC_CATALOG
from tests.drivers.asic_contract import AsicDriverContract


def _two_drivers() -> CompositeAsicDriver:
    """Facility 0's S21s split over two drivers, plus facility 1's S9s on the second."""
    first = SimAsicDriver(AsicFleet.from_groups([(0, ASIC_CATALOG["antminer_s21"], 3, 1.0)]), float)
    second = SimAsicDriver(
        AsicFleet.from_groups(
            [
                (0, ASIC_CATALOG["antminer_s21"], 2, 1.0),
                (1, ASIC_CATALOG["antminer_s9"], 4, 1.0),
            ]
        ),
        float,
    )
    return CompositeAsicDriver([first, second])


class TestCompositeDriverContract(AsicDriverContract):
    """Two simulated drivers behind the composite pass the shared contract."""

    @pytest.fixture
    def driver(self):
        driver = _two_drivers()
        yield driver
        driver.close()


def test_readings_union_models_and_keep_every_miner() -> None:
    """Readings list every miner once with model indices into the union of models."""
    readings = _two_drivers().read()
    assert readings.state.size == 9
    assert set(readings.model_ids) == {"antminer_s21", "antminer_s9"}
    assert readings.count(0, "antminer_s21", int(AsicState.ACTIVE)) == 5
    assert readings.count(1, "antminer_s9", int(AsicState.ACTIVE)) == 4


def test_a_split_class_is_commanded_across_its_drivers() -> None:
    """Asking 4 of the 5 S21s (3 + 2 across drivers) to hash sleeps exactly one; asking
    for 7 is reported as not verified."""
    driver = _two_drivers()
    result = driver.apply([AsicCommand(0, "antminer_s21", active_count=4)])
    assert result.all_verified
    readings = driver.read()
    assert readings.count(0, "antminer_s21", int(AsicState.SLEEPING)) == 1
    too_many = driver.apply([AsicCommand(0, "antminer_s21", active_count=7)])
    assert not too_many.all_verified and too_many.results[0].reason
