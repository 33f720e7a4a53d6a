"""Each injected fault gives the failure pyasic would see from a real miner, and clearing
it brings the miner back."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from drivers.emulators.farm import EmulatorFarm
from drivers.emulators.faults import FaultKind
from models.fleet_physics import ACTIVE
from tests.drivers.emulators.helpers import PYASIC_WARNINGS, FakeClock, import_pyasic

pyasic = import_pyasic()
from pyasic.errors import APIError  # noqa: E402

pytestmark = PYASIC_WARNINGS

FIRMWARES = ["luxos", "whatsminer", "braiins"]
SUBNETS = {"luxos": "127.2.20.0/29", "whatsminer": "127.2.21.0/29", "braiins": "127.2.22.0/29"}
CLIENT_TIMEOUT_S = 1.0


def run_on_farm(firmware: str, scenario: Callable[[EmulatorFarm, Any], Awaitable[None]]) -> None:
    """Start a one-miner farm, let pyasic find the (healthy) miner, run the scenario."""
    farm = EmulatorFarm(1, SUBNETS[firmware], firmware=(firmware,), clock=FakeClock())

    async def main() -> None:
        async with farm:
            miner = await pyasic.get_miner(farm.addresses[0])
            assert miner is not None
            await scenario(farm, miner)

    asyncio.run(main())


@pytest.mark.parametrize("firmware", FIRMWARES)
def test_timeout_fault_never_answers(firmware: str) -> None:
    """A ``timeout`` miner accepts and never replies: the client's deadline expires; once
    cleared, data flows again. (pyasic's cgminer client leaves the socket of a cancelled
    call to the garbage collector, which warns; that warning is the client's, not ours.)"""

    async def scenario(farm: EmulatorFarm, miner: Any) -> None:
        farm.faults.inject(0, FaultKind.TIMEOUT)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(miner.get_data(include=["wattage"]), CLIENT_TIMEOUT_S)
        farm.faults.clear(0)
        data = await asyncio.wait_for(miner.get_data(include=["wattage"]), CLIENT_TIMEOUT_S)
        assert data.wattage == round(farm.table.read(0).power_w[0])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        run_on_farm(firmware, scenario)
        gc.collect()


@pytest.mark.parametrize("firmware", FIRMWARES)
def test_malformed_fault_fails_every_command(firmware: str) -> None:
    """A ``malformed`` miner's replies do not parse: commands raise APIError; get_data
    comes back without readings (Braiins OS: raises APIError, as pyasic's gRPC login fails
    first); once cleared, readings return."""

    async def scenario(farm: EmulatorFarm, miner: Any) -> None:
        farm.faults.inject(farm.addresses[0], "malformed")
        with pytest.raises(APIError):
            await miner.rpc.summary()
        if firmware == "braiins":
            with pytest.raises(APIError):
                await miner.get_data(include=["wattage"])
        else:
            broken = await miner.get_data(include=["wattage"])
            assert broken.wattage is None
        farm.faults.clear(farm.addresses[0])
        healthy = await miner.get_data(include=["wattage"])
        assert healthy.wattage == round(farm.table.read(0).power_w[0])

    run_on_farm(firmware, scenario)


@pytest.mark.parametrize("firmware", FIRMWARES)
def test_refuse_fault_blocks_control_but_not_readings(firmware: str) -> None:
    """A ``refuse`` miner reports as usual but refuses control: stop_mining returns False
    (the miner keeps hashing) and set_power_limit fails (False or APIError); once cleared,
    stop_mining works."""

    async def scenario(farm: EmulatorFarm, miner: Any) -> None:
        limit_before_w = farm.table.power_limit_w(0)[0]
        farm.faults.inject(0, "refuse")
        data = await miner.get_data(include=["wattage"])
        assert data.wattage == round(farm.table.read(0).power_w[0])
        assert await miner.stop_mining() is False
        assert farm.table.state[0] == ACTIVE
        try:
            accepted = await miner.set_power_limit(2500)
        except APIError:
            accepted = False
        assert accepted is False
        assert farm.table.power_limit_w(0)[0] == limit_before_w
        farm.faults.clear()
        assert await miner.stop_mining() is True
        assert farm.table.state[0] != ACTIVE

    run_on_farm(firmware, scenario)


@pytest.mark.parametrize("firmware", FIRMWARES)
def test_wrong_reading_fault_scales_hashrate_and_power(firmware: str) -> None:
    """A ``wrong_reading`` miner reports hashrate and power off by the fault's factor while
    the table keeps the truth."""
    factor = 0.5

    async def scenario(farm: EmulatorFarm, miner: Any) -> None:
        farm.faults.inject(0, "wrong_reading", reading_factor=factor)
        data = await miner.get_data(include=["hashrate", "hashboards", "wattage"])
        truth = farm.table.read(0)
        assert data.wattage == round(factor * truth.power_w[0])
        assert float(data.hashrate) == pytest.approx(factor * truth.hashrate_ths[0], rel=1e-4)

    run_on_farm(firmware, scenario)
