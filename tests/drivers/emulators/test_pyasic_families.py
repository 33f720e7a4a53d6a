"""The unmodified pyasic client detects, reads and commands each emulated firmware, and
what it reads matches the miner table (the true state)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from drivers.emulators.farm import EmulatorFarm
from drivers.emulators.luxos import power_profiles
from models.fleet_physics import ACTIVE, SLEEPING
from tests.drivers.emulators.helpers import PYASIC_WARNINGS, FakeClock, import_pyasic

pyasic = import_pyasic()
pytestmark = PYASIC_WARNINGS
from pyasic.miners.backends import BOSer, BTMinerV2, LUXMiner  # noqa: E402


@dataclass(frozen=True)
class Family:
    """One firmware under test and what pyasic should make of it."""

    firmware: str
    model_id: str
    client_class: type
    model_name: str
    subnet: str


FAMILIES = [
    Family("luxos", "antminer_s19j_pro", LUXMiner, "S19j Pro", "127.2.10.0/29"),
    Family("whatsminer", "whatsminer_m50s", BTMinerV2, "M50S VH30", "127.2.11.0/29"),
    Family("braiins", "antminer_s21", BOSer, "S21", "127.2.12.0/29"),
]
FAMILY_IDS = [f.firmware for f in FAMILIES]


def run_on_farm(
    family: Family, scenario: Callable[[EmulatorFarm, FakeClock, Any], Awaitable[None]]
) -> None:
    """Start a one-miner farm of ``family`` on a fake clock, let pyasic find the miner,
    and run ``scenario(farm, clock, miner)``."""
    clock = FakeClock()
    farm = EmulatorFarm(
        1, family.subnet, firmware=(family.firmware,), models=(family.model_id,), clock=clock
    )

    async def main() -> None:
        async with farm:
            miner = await pyasic.get_miner(farm.addresses[0])
            await scenario(farm, clock, miner)

    asyncio.run(main())


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
def test_get_miner_finds_the_family_and_model(family: Family) -> None:
    """pyasic's factory picks the firmware's client class and the emulated model."""

    async def scenario(farm: EmulatorFarm, clock: FakeClock, miner: Any) -> None:
        assert isinstance(miner, family.client_class)
        assert family.model_name in str(miner.model)

    run_on_farm(family, scenario)


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
def test_get_data_matches_the_miner_table(family: Family) -> None:
    """Hashrate, wattage, limit, temperature and fans read through pyasic equal the
    table's values (to the firmware's rounding)."""

    async def scenario(farm: EmulatorFarm, clock: FakeClock, miner: Any) -> None:
        farm.table.set_power_limit_w(0, 0.8 * farm.table.nameplate_w[0])
        clock.advance(30.0)
        data = await miner.get_data()
        truth = farm.table.read(0)
        assert float(data.hashrate) == pytest.approx(truth.hashrate_ths[0], rel=1e-4)
        assert data.wattage == round(truth.power_w[0])
        assert data.wattage_limit == round(truth.power_limit_w[0])
        assert data.temperature_avg == pytest.approx(truth.board_temp_c[0], abs=1.0)
        assert [fan.speed for fan in data.fans] == [round(truth.fan_rpm[0])] * len(data.fans)
        assert len(data.fans) == farm.miners[0].identity.fans

    run_on_farm(family, scenario)


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
def test_stop_and_resume_mining_follow_the_physics(family: Family) -> None:
    """stop_mining puts the miner to sleep (sleep power, no hashrate); resume_mining wakes
    it and it is back at its target once the ramp is over."""

    async def scenario(farm: EmulatorFarm, clock: FakeClock, miner: Any) -> None:
        spec = farm.miners[0].spec
        assert await miner.stop_mining() is True
        assert farm.table.state[0] == SLEEPING
        asleep = await miner.get_data(include=["hashrate", "hashboards", "wattage"])
        assert asleep.wattage == round(spec.sleep_power_w)
        assert float(asleep.hashrate) == 0.0

        assert await miner.resume_mining() is True
        assert farm.table.state[0] == ACTIVE
        clock.advance(spec.ramp_s)
        awake = await miner.get_data(include=["hashrate", "hashboards", "wattage"])
        assert awake.wattage == round(spec.power_w)
        assert float(awake.hashrate) == pytest.approx(spec.hashrate_ths, rel=1e-4)

    run_on_farm(family, scenario)


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
def test_set_power_limit_moves_the_wattage(family: Family) -> None:
    """set_power_limit lowers the miner's power: exactly to the request where the firmware
    takes watts, to the highest profile at or below it on LuxOS."""
    request_w = 2600

    async def scenario(farm: EmulatorFarm, clock: FakeClock, miner: Any) -> None:
        assert await miner.set_power_limit(request_w) is True
        if family.firmware == "luxos":
            fitting = [p.watts for p in power_profiles(farm.miners[0]) if p.watts <= request_w]
            expected_w = max(fitting)
        else:
            expected_w = request_w
        assert farm.table.power_limit_w(0)[0] == pytest.approx(expected_w)
        data = await miner.get_data(include=["wattage", "wattage_limit"])
        assert data.wattage == expected_w
        assert data.wattage_limit == expected_w

    run_on_farm(family, scenario)
