"""Farm setup: addresses from the subnet, firmware and models round-robin, clear errors."""

from __future__ import annotations

import asyncio
import socket

import pytest

from drivers.emulators.errors import EmulatorConfigError
from drivers.emulators.farm import EmulatorFarm, loopback_hosts
from drivers.emulators.identities import DEFAULT_MODEL, identity_for
from tests.drivers.emulators.helpers import FakeClock


def test_miners_take_the_host_addresses_in_order() -> None:
    """Miner i gets the i-th host address; the network address is skipped."""
    assert loopback_hosts("127.2.1.0/29", 3) == ("127.2.1.1", "127.2.1.2", "127.2.1.3")
    assert loopback_hosts("127.2.1.8/29", 6)[-1] == "127.2.1.14"


@pytest.mark.parametrize(
    ("subnet", "count", "reason"),
    [
        ("10.0.0.0/24", 1, "not loopback"),
        ("127.2.1.0/29", 7, "too few"),
        ("127.2.1.1/24", 1, "not an IPv4 CIDR"),
        ("banana", 1, "not an IPv4 CIDR"),
    ],
)
def test_bad_subnets_are_rejected_with_the_reason(subnet: str, count: int, reason: str) -> None:
    """A subnet that is not loopback, too small or malformed raises a ValueError saying
    so."""
    with pytest.raises(EmulatorConfigError, match=reason):
        EmulatorFarm(count, subnet)
    with pytest.raises(ValueError, match="subnet"):
        EmulatorFarm(count, subnet)


def test_firmware_and_models_are_assigned_round_robin() -> None:
    """Firmware cycles through its list; without models each firmware runs its default
    model; the table holds one row per miner of that model."""
    farm = EmulatorFarm(5, "127.2.2.0/29", firmware=("luxos", "whatsminer"), clock=FakeClock())
    assert farm.firmwares == ("luxos", "whatsminer", "luxos", "whatsminer", "luxos")
    assert farm.model_ids[:2] == (DEFAULT_MODEL["luxos"], DEFAULT_MODEL["whatsminer"])
    assert farm.table.n_miners == 5
    assert farm.index_of("127.2.2.4") == 3
    assert farm.miners[3].identity == identity_for("whatsminer", DEFAULT_MODEL["whatsminer"])


def test_models_must_suit_their_firmware() -> None:
    """An Antminer model on Whatsminer firmware (or an unknown model) is rejected, naming
    the models the firmware runs on."""
    with pytest.raises(EmulatorConfigError, match="whatsminer_m50s"):
        EmulatorFarm(2, "127.2.3.0/29", firmware=("whatsminer",), models=("antminer_s21",))
    with pytest.raises(EmulatorConfigError, match="unknown model_id"):
        EmulatorFarm(1, "127.2.3.0/29", models=("antminer_s99",))
    with pytest.raises(EmulatorConfigError, match="unknown firmware"):
        EmulatorFarm(1, "127.2.3.0/29", firmware=("vnish",))
    with pytest.raises(EmulatorConfigError, match="count"):
        EmulatorFarm(0, "127.2.3.0/29")


def test_a_taken_address_fails_start_and_releases_the_others() -> None:
    """When one miner's address is taken, start raises an OSError naming it and the
    listeners already bound are released (the farm can start once the address is free)."""
    farm = EmulatorFarm(3, "127.2.4.0/29", rpc_port=24028, clock=FakeClock())
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.2.4.2", 24028))
    blocker.listen()
    try:
        with pytest.raises(OSError, match=r"127\.2\.4\.2:24028"):
            asyncio.run(farm.start())
    finally:
        blocker.close()

    async def start_and_stop() -> None:
        async with farm:
            _, writer = await asyncio.open_connection("127.2.4.1", 24028)
            writer.close()
            await writer.wait_closed()

    asyncio.run(start_and_stop())
