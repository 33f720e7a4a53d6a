"""A network scan finds the whole farm; the command line serves until told to stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from drivers.emulators.farm import EmulatorFarm
from tests.drivers.emulators.helpers import PYASIC_WARNINGS, FakeClock, import_pyasic

pyasic = import_pyasic()
from pyasic.miners.backends import BOSer, BTMinerV2, LUXMiner  # noqa: E402
from pyasic.network import MinerNetwork  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[3]
CLI_START_TIMEOUT_S = 30.0


@PYASIC_WARNINGS
def test_network_scan_finds_every_miner_of_a_mixed_farm() -> None:
    """MinerNetwork.from_subnet(...).scan() finds all six miners (two of each firmware)
    at their addresses, each as its firmware's client."""
    farm = EmulatorFarm(
        6, "127.2.30.0/29", firmware=("luxos", "whatsminer", "braiins"), clock=FakeClock()
    )

    async def main() -> list:
        async with farm:
            return await MinerNetwork.from_subnet("127.2.30.0/29").scan()

    found = asyncio.run(main())
    by_address = {str(miner.ip): miner for miner in found}
    assert sorted(by_address) == sorted(farm.addresses)
    client_class = {"luxos": LUXMiner, "whatsminer": BTMinerV2, "braiins": BOSer}
    for address, firmware in zip(farm.addresses, farm.firmwares, strict=True):
        assert isinstance(by_address[address], client_class[firmware]), address


def start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "drivers.emulators", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


def test_cli_prints_ready_and_exits_cleanly_on_sigterm() -> None:
    """``python -m drivers.emulators`` prints exactly ``ready N miners`` once all listen,
    answers on the miners' port, and exits 0 on SIGTERM."""
    process = start_cli("--miners", "3", "--subnet", "127.2.31.0/29", "--fault", "refuse:0.34")
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line == "ready 3 miners\n"

        async def ask_version() -> bytes:
            reader, writer = await asyncio.open_connection("127.2.31.3", 4028)
            writer.write(b'{"command": "version"}')
            await writer.drain()
            reply = await reader.read()
            writer.close()
            await writer.wait_closed()
            return reply

        assert b"LUXminer" in asyncio.run(ask_version())
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=CLI_START_TIMEOUT_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_cli_rejects_a_subnet_that_is_too_small() -> None:
    """Too many miners for the subnet: exit status 2 and a message naming the subnet."""
    process = start_cli("--miners", "9", "--subnet", "127.2.32.0/29")
    _, stderr = process.communicate(timeout=CLI_START_TIMEOUT_S)
    assert process.returncode == 2
    assert "subnet" in stderr and "too few" in stderr
