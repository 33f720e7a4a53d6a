"""The pyasic driver end to end: real pyasic over real TCP on loopback, against emulated
LuxOS, Whatsminer and Braiins OS miners whose miner table holds the true state.

Each firmware gets a farm of three miners. The farm's clock is the wall clock plus an
offset the tests move forward (:class:`SteppableWallClock`): time flows, so a woken miner
really starts its 120 s ramp (the driver's wake check must pass on the first instants of
it), and a test can jump to the end of the ramp instead of waiting. The driver's own clock
(health bookkeeping: when to retry an unhealthy miner) is a :class:`FakeClock`, so
backoff times are exact.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pytest

from drivers.asic_pyasic import SLEEP_POWER_MARGIN, PyasicAsicDriver, PyasicSettings
from drivers.async_runner import AsyncRunner
from drivers.base import AsicCommand, CommandResult
from drivers.emulators import EmulatorFarm, FaultKind
from drivers.emulators.farm import loopback_hosts
from drivers.emulators.luxos import power_profiles
from models.fleet_physics import AsicState
from models.hardware import ASIC_CATALOG
from tests.drivers.asic_contract import AsicDriverContract
from tests.drivers.emulators.helpers import FakeClock, import_pyasic

import_pyasic()  # pyasic warns at import; import it once with those warnings silenced

FIRMWARES = ("luxos", "whatsminer", "braiins")
FIRMWARE_MODEL = {
    "luxos": "antminer_s19j_pro",
    "whatsminer": "whatsminer_m50s",
    "braiins": "antminer_s21",
}
"""Catalog model each firmware's farm runs (one per firmware, so each maps differently)."""

FIRMWARE_SUBNET = {
    "luxos": "127.60.1.0/29",
    "whatsminer": "127.60.2.0/29",
    "braiins": "127.60.3.0/29",
}
SCAN_SUBNET = "127.60.9.0/29"
OVERRIDE_SUBNET = "127.60.10.0/29"
MINERS_PER_FARM = 3

SETTINGS = PyasicSettings(timeout_s=1.0, retries=0, retry_backoff_s=0.05, unhealthy_backoff_s=0.5)
"""Short timeouts and backoff so faults show within a second."""

RAMP_OVER_S = max(spec.ramp_s for spec in ASIC_CATALOG.values()) + 1.0
"""Farm clock step that takes any woken miner past its wake-up ramp [s]."""

FARM_START_TIMEOUT_S = 30.0

NO_LEAKED_SOCKET_WARNINGS = pytest.mark.filterwarnings("ignore:unclosed:ResourceWarning")
"""pyasic leaves the socket of a call cancelled by a timeout to the garbage collector,
which warns; the warning is pyasic's, and the teardown collects it within the test."""


class SteppableWallClock:
    """The wall clock (``time.monotonic``) plus an offset that only grows [s]."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset_s

    def advance(self, dt_s: float) -> None:
        """Jump ``dt_s`` [s] ahead (time keeps flowing from there)."""
        self.offset_s += dt_s


FamilyFarm = tuple[EmulatorFarm, SteppableWallClock]
"""A running farm of one firmware and its clock."""


@dataclass
class Rig:
    """A running farm and a fresh driver on it.

    Attributes:
        farm: the emulated miners; ``farm.table`` is the truth.
        farm_clock: the physics clock of the farm [s].
        driver: the driver under test, on ``farm.addresses``.
        health_clock: the driver's clock (retry times) [s].
    """

    farm: EmulatorFarm
    farm_clock: SteppableWallClock
    driver: PyasicAsicDriver
    health_clock: FakeClock

    @property
    def model_id(self) -> str:
        """Catalog model of the farm's miners."""
        return self.farm.model_ids[0]

    @property
    def firmware(self) -> str:
        """Firmware of the farm's miners."""
        return self.farm.firmwares[0]


@contextmanager
def running(farm: EmulatorFarm) -> Iterator[EmulatorFarm]:
    """Serve ``farm`` on its own event-loop thread; stop it and the thread afterwards."""
    runner = AsyncRunner("emulator-farm")
    try:
        runner.run(farm.start(), timeout_s=FARM_START_TIMEOUT_S)
        try:
            yield farm
        finally:
            runner.run(farm.stop(), timeout_s=FARM_START_TIMEOUT_S)
    finally:
        runner.close()


@contextmanager
def closing(driver: PyasicAsicDriver) -> Iterator[PyasicAsicDriver]:
    """Close ``driver`` afterwards and collect what its cancelled calls left behind."""
    try:
        yield driver
    finally:
        driver.close()
        gc.collect()


def reset(farm: EmulatorFarm, clock: SteppableWallClock) -> None:
    """Every miner hashing at nameplate, past its ramp, without faults."""
    every = np.arange(farm.count)
    farm.faults.clear()
    farm.table.wake(every)
    farm.table.set_power_limit_w(every, farm.table.nameplate_w)
    clock.advance(RAMP_OVER_S)


@pytest.fixture(scope="module", params=FIRMWARES)
def family_farm(request: pytest.FixtureRequest) -> Iterator[FamilyFarm]:
    """Three miners of one firmware, served for the whole module."""
    firmware: str = request.param
    clock = SteppableWallClock()
    farm = EmulatorFarm(
        MINERS_PER_FARM,
        FIRMWARE_SUBNET[firmware],
        firmware=(firmware,),
        models=(FIRMWARE_MODEL[firmware],),
        clock=clock,
    )
    with running(farm):
        yield farm, clock


@pytest.fixture
def rig(family_farm: FamilyFarm) -> Iterator[Rig]:
    """The module's farm reset to all hashing, and a fresh driver that has found it."""
    farm, farm_clock = family_farm
    reset(farm, farm_clock)
    health_clock = FakeClock()
    driver = PyasicAsicDriver(addresses=farm.addresses, settings=SETTINGS, clock=health_clock)
    with closing(driver):
        driver.discover()  # in service before any fault: discovery runs once
        try:
            yield Rig(farm, farm_clock, driver, health_clock)
        finally:
            farm.faults.clear()


def truth_states(farm: EmulatorFarm) -> np.ndarray:
    """The table's miner states (int8 AsicState codes)."""
    return farm.table.read().state


def apply_one(
    rig: Rig, active_count: int | None = None, power_fraction: float | None = None
) -> CommandResult:
    """Apply one command to the rig's class and return its result."""
    command = AsicCommand(0, rig.model_id, active_count, power_fraction)
    return rig.driver.apply([command]).results[0]


def retry_in_s(rig: Rig, address: str) -> float:
    """How long the driver waits before trying ``address`` again [s]."""
    return rig.driver.health()[address].retry_at_s - rig.health_clock()


def expected_limit_w(farm: EmulatorFarm, index: int, power_fraction: float) -> float:
    """The power limit [W] miner ``index`` should apply for ``power_fraction`` of nameplate:
    the request itself, or on LuxOS the highest power profile at or below it."""
    request_w = round(power_fraction * farm.table.nameplate_w[index])
    if farm.firmwares[index] == "luxos":
        return max(p.watts for p in power_profiles(farm.miners[index]) if p.watts <= request_w)
    return float(request_w)


# ---------------------------------------------------------------------- contract


class TestPyasicDriverContract(AsicDriverContract):
    """The shared ASIC driver contract, on each emulated firmware."""

    farm_clock: SteppableWallClock

    @pytest.fixture
    def driver(self, rig: Rig) -> PyasicAsicDriver:
        """The rig's driver; its farm clock is kept for :meth:`settle`."""
        self.farm_clock = rig.farm_clock
        return rig.driver

    def settle(self, driver: PyasicAsicDriver) -> None:
        """Jump the farm past the wake-up ramp: a woken miner then draws its target."""
        self.farm_clock.advance(RAMP_OVER_S)


# ---------------------------------------------------------------------- normal operation


def test_discover_maps_the_firmware_model_to_the_catalog(rig: Rig) -> None:
    """Discovery finds one class: the farm's catalog model, every address in order, with
    the firmware's capabilities (all three set power limits)."""
    (device_class,) = rig.driver.discover()
    assert device_class.model_id == FIRMWARE_MODEL[rig.firmware]
    assert device_class.count == MINERS_PER_FARM
    assert device_class.device_ids == rig.farm.addresses
    assert device_class.capabilities.can_set_power_limit
    assert device_class.capabilities.can_sleep and device_class.capabilities.can_resume
    spec = ASIC_CATALOG[device_class.model_id]
    assert device_class.capabilities.min_power_fraction == spec.min_power_fraction
    assert rig.driver.unsupported == {}


def test_read_matches_the_miner_table(rig: Rig) -> None:
    """With one miner asleep and one at 80 % power (set in the table), read() reports each
    miner's state, power, hashrate, power fraction and temperature as the table holds them
    (to the firmware's rounding)."""
    table = rig.farm.table
    table.sleep(2)
    table.set_power_limit_w(1, 0.8 * table.nameplate_w[1])
    readings = rig.driver.read()
    truth = table.read()
    assert readings.device_ids == rig.farm.addresses
    assert readings.model_ids == (rig.model_id,)
    np.testing.assert_array_equal(readings.model, 0)
    np.testing.assert_array_equal(readings.facility, 0)
    np.testing.assert_array_equal(readings.state, truth.state)
    np.testing.assert_allclose(readings.power_w, truth.power_w, atol=1.0)
    np.testing.assert_allclose(readings.hashrate_ths, truth.hashrate_ths, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(readings.power_fraction, table.power_fraction, atol=1e-3)
    np.testing.assert_allclose(readings.temp_c, truth.board_temp_c, atol=1.0)
    assert readings.state[1] == AsicState.ACTIVE and readings.state[2] == AsicState.SLEEPING


def test_details_report_fans_and_errors_of_every_miner(rig: Rig) -> None:
    """A plain read() also fetches fans and errors: details() lists every miner with fan
    speeds near the table's (a sleeping miner's fans slow down) and no firmware errors."""
    rig.farm.table.sleep(0)
    rig.driver.read()
    details = rig.driver.details()
    truth = rig.farm.table.read()
    assert [d.address for d in details] == list(rig.farm.addresses)
    for index, detail in enumerate(details):
        assert detail.fans_rpm, detail
        assert np.mean(detail.fans_rpm) == pytest.approx(truth.fan_rpm[index], rel=0.05)
        assert detail.errors == () and detail.healthy
    assert np.mean(details[0].fans_rpm) < np.mean(details[1].fans_rpm)


def test_sleep_and_wake_change_the_table_and_read_back(rig: Rig) -> None:
    """Asking one of three to hash sleeps two (true in the table, read back as SLEEPING);
    asking all three wakes them, verified at once although the wall-clock ramp has just
    begun (the driver sees the hashrate rise); past the ramp they draw their target."""
    sleep = apply_one(rig, active_count=1)
    assert sleep.verified, sleep.reason
    assert sleep.changed == 2
    truth = truth_states(rig.farm)
    assert np.count_nonzero(truth == AsicState.SLEEPING) == 2
    np.testing.assert_array_equal(rig.driver.read().state, truth)

    wake = apply_one(rig, active_count=MINERS_PER_FARM)
    ramping_w = rig.farm.table.read().power_w
    assert wake.verified, wake.reason
    assert wake.changed == 2
    np.testing.assert_array_equal(truth_states(rig.farm), AsicState.ACTIVE)
    woken = truth == AsicState.SLEEPING
    assert np.all(ramping_w[woken] < 0.1 * rig.farm.table.nameplate_w[woken]), (
        "the wake was verified early in the ramp"
    )

    rig.farm_clock.advance(RAMP_OVER_S)
    readings = rig.driver.read()
    np.testing.assert_array_equal(readings.state, AsicState.ACTIVE)
    np.testing.assert_allclose(readings.power_w, rig.farm.table.nameplate_w, atol=1.0)


def test_power_fraction_sets_the_limit_in_the_table(rig: Rig) -> None:
    """A power target of 83 % reaches every miner's table limit (LuxOS: the highest
    profile at or below the request), comes back verified, and the miners draw it."""
    fraction = 0.83
    result = apply_one(rig, power_fraction=fraction)
    assert result.verified, result.reason
    assert result.changed == MINERS_PER_FARM
    expected_w = [expected_limit_w(rig.farm, i, fraction) for i in range(MINERS_PER_FARM)]
    np.testing.assert_allclose(
        rig.farm.table.power_limit_w(np.arange(MINERS_PER_FARM)), expected_w, atol=0.5
    )
    readings = rig.driver.read()
    nameplate_w = rig.farm.table.nameplate_w
    expected_fraction = np.divide(expected_w, nameplate_w)
    np.testing.assert_allclose(readings.power_fraction, expected_fraction, atol=1e-3)
    np.testing.assert_allclose(readings.power_w, expected_w, atol=1.0)
    assert np.all(readings.power_w < fraction * nameplate_w + 1.0)


def test_power_target_below_the_floor_is_not_verified(rig: Rig) -> None:
    """30 % is below every model's floor: the firmware refuses or clamps it, the command
    is not verified and names the miners, and no table limit goes under the floor."""
    result = apply_one(rig, power_fraction=0.3)
    assert not result.verified
    assert rig.farm.addresses[0] in result.reason
    table = rig.farm.table
    floor_w = table.min_power_fraction * table.nameplate_w
    assert np.all(table.power_limit_w(np.arange(MINERS_PER_FARM)) >= floor_w - 0.5)


# ---------------------------------------------------------------------- faults


@NO_LEAKED_SOCKET_WARNINGS
def test_timeout_fails_the_miner_backs_off_and_recovers(rig: Rig) -> None:
    """A miner that never answers reads as FAILED with a timeout error while the others
    read true; commands that need it are not verified (with the reason), commands the
    others can carry out are; each failure in a row doubles the wait before the next try;
    once it answers again and its retry time has come, it is healthy and ACTIVE."""
    address = rig.farm.addresses[0]
    rig.farm.faults.inject(0, FaultKind.TIMEOUT)
    readings = rig.driver.read()
    health = rig.driver.health()[address]
    assert not health.healthy and "Timeout" in health.last_error
    assert readings.state[0] == AsicState.FAILED
    np.testing.assert_array_equal(readings.state[1:], AsicState.ACTIVE)
    np.testing.assert_allclose(readings.power_w[1:], rig.farm.table.read([1, 2]).power_w, atol=1.0)
    assert retry_in_s(rig, address) == pytest.approx(SETTINGS.unhealthy_backoff_s)

    need_all = apply_one(rig, active_count=MINERS_PER_FARM)
    assert not need_all.verified and "unhealthy" in need_all.reason
    fewer = apply_one(rig, active_count=1)
    assert fewer.verified, fewer.reason
    truth = truth_states(rig.farm)
    assert truth[0] == AsicState.ACTIVE, "the unhealthy miner is left alone"
    assert np.count_nonzero(truth[1:] == AsicState.SLEEPING) == 1

    rig.health_clock.advance(retry_in_s(rig, address))
    assert rig.driver.read().state[0] == AsicState.FAILED
    assert rig.driver.health()[address].failures == 2
    assert retry_in_s(rig, address) == pytest.approx(2 * SETTINGS.unhealthy_backoff_s)

    rig.farm.faults.clear(0)
    assert rig.driver.read().state[0] == AsicState.FAILED, "not retried before its time"
    rig.health_clock.advance(retry_in_s(rig, address))
    assert rig.driver.read().state[0] == AsicState.ACTIVE
    assert rig.driver.health()[address].healthy
    assert rig.driver.health()[address].last_error == ""


def test_malformed_reply_to_a_command_fails_the_miner(rig: Rig) -> None:
    """A miner whose replies do not parse fails the sleep asked of it: not verified, the
    miner unhealthy (FAILED in readings) and still hashing in the table, the others
    unaffected; cleared and past its retry time, it sleeps on command."""
    address = rig.farm.addresses[-1]
    rig.farm.faults.inject(address, FaultKind.MALFORMED)
    result = apply_one(rig, active_count=MINERS_PER_FARM - 1)
    assert not result.verified and address in result.reason
    health = rig.driver.health()[address]
    assert not health.healthy and health.last_error
    assert truth_states(rig.farm)[-1] == AsicState.ACTIVE
    readings = rig.driver.read()
    assert readings.state[-1] == AsicState.FAILED
    np.testing.assert_array_equal(readings.state[:-1], AsicState.ACTIVE)

    rig.farm.faults.clear(address)
    rig.health_clock.advance(retry_in_s(rig, address))
    assert rig.driver.read().state[-1] == AsicState.ACTIVE
    again = apply_one(rig, active_count=MINERS_PER_FARM - 1)
    assert again.verified, again.reason
    assert truth_states(rig.farm)[-1] == AsicState.SLEEPING


def test_malformed_reading_fails_the_miner(rig: Rig) -> None:
    """A miner whose replies do not parse should read as FAILED and unhealthy (after a
    good read, so that Braiins OS's gRPC session is already open)."""
    address = rig.farm.addresses[0]
    assert rig.driver.read().state[0] == AsicState.ACTIVE
    rig.farm.faults.inject(address, FaultKind.MALFORMED)
    readings = rig.driver.read()
    assert not rig.driver.health()[address].healthy
    assert readings.state[0] == AsicState.FAILED


def test_refused_command_fails_the_miner_until_it_reads_again(rig: Rig) -> None:
    """A miner that refuses control but still reports: its sleep is not verified ("refused
    by the firmware"), it is unhealthy and keeps hashing in the table; a power target for
    the class then reaches the other miners only (verified: the driver plans without a
    failed miner); at its retry time a good read makes it healthy again, and once the
    fault is cleared it sleeps on command."""
    address = rig.farm.addresses[-1]
    rig.farm.faults.inject(address, FaultKind.REFUSE)
    assert rig.driver.read().state[-1] == AsicState.ACTIVE, "readings still work"
    assert rig.driver.health()[address].healthy

    refused = apply_one(rig, active_count=MINERS_PER_FARM - 1)
    assert not refused.verified and f"{address} sleep: refused" in refused.reason
    assert rig.driver.health()[address].last_error == "refused by the firmware"
    assert truth_states(rig.farm)[-1] == AsicState.ACTIVE
    assert rig.driver.read().state[-1] == AsicState.FAILED

    nameplate_w = rig.farm.table.nameplate_w[-1]
    limited = apply_one(rig, power_fraction=0.8)
    assert limited.verified, limited.reason
    assert limited.changed == MINERS_PER_FARM - 1
    limits_w = rig.farm.table.power_limit_w(np.arange(MINERS_PER_FARM))
    assert np.all(limits_w[:-1] < nameplate_w) and limits_w[-1] == nameplate_w

    rig.health_clock.advance(retry_in_s(rig, address))
    assert rig.driver.read().state[-1] == AsicState.ACTIVE
    assert rig.driver.health()[address].healthy
    rig.farm.faults.clear(address)
    slept = apply_one(rig, active_count=MINERS_PER_FARM - 1)
    assert slept.verified, slept.reason
    assert truth_states(rig.farm)[-1] == AsicState.SLEEPING


def test_failed_call_is_retried_with_growing_waits(
    family_farm: FamilyFarm,
) -> None:
    """With two retries and a 0.1 s backoff, a refused command is tried three times,
    waiting 0.1 s then 0.2 s, before the miner counts one failure."""
    farm, farm_clock = family_farm
    reset(farm, farm_clock)
    settings = dataclasses.replace(SETTINGS, retries=2, retry_backoff_s=0.1)
    waits_s = settings.retry_backoff_s * (1 + 2)
    driver = PyasicAsicDriver(addresses=farm.addresses, settings=settings, clock=FakeClock())
    with closing(driver):
        driver.discover()
        farm.faults.inject(0, FaultKind.REFUSE)
        started_s = time.monotonic()
        result = driver.apply([AsicCommand(0, farm.model_ids[0], power_fraction=0.8)])
        elapsed_s = time.monotonic() - started_s
        farm.faults.clear()
        assert not result.results[0].verified
        assert elapsed_s >= waits_s
        assert driver.health()[farm.addresses[0]].failures == 1


def test_wrong_reading_is_taken_at_face_value(rig: Rig) -> None:
    """A miner reporting half its true power and hashrate cannot be told from a healthy
    one: healthy, ACTIVE, and its readings are the wrong ones."""
    rig.farm.faults.inject(0, FaultKind.WRONG_READING, reading_factor=0.5)
    readings = rig.driver.read()
    truth = rig.farm.table.read(0)
    assert rig.driver.health()[rig.farm.addresses[0]].healthy
    assert readings.state[0] == AsicState.ACTIVE
    assert readings.power_w[0] == pytest.approx(0.5 * truth.power_w[0], abs=1.0)
    assert readings.hashrate_ths[0] == pytest.approx(0.5 * truth.hashrate_ths[0], rel=1e-3)


def test_wrong_reading_that_contradicts_a_sleep_fails_the_command(rig: Rig) -> None:
    """A wrong reading shows only where it contradicts a command: a miner reporting three
    times its true power really sleeps (table) but seems to draw more than a sleeping
    miner may, so the sleep is not verified; the miner answered, so it stays healthy, and
    it reads as ACTIVE — the driver cannot know the reading is the wrong part."""
    address = rig.farm.addresses[-1]
    factor = 3.0
    rig.farm.faults.inject(address, FaultKind.WRONG_READING, reading_factor=factor)
    spec = ASIC_CATALOG[rig.model_id]
    assert factor * spec.sleep_power_w > SLEEP_POWER_MARGIN * spec.sleep_power_w
    result = apply_one(rig, active_count=MINERS_PER_FARM - 1)
    assert not result.verified and "still drawing" in result.reason
    assert truth_states(rig.farm)[-1] == AsicState.SLEEPING
    assert rig.driver.health()[address].healthy
    assert rig.driver.read().state[-1] == AsicState.ACTIVE


# ---------------------------------------------------------------------- discovery


@NO_LEAKED_SOCKET_WARNINGS
def test_miner_silent_at_discovery_stays_unsupported(family_farm: FamilyFarm) -> None:
    """Discovery runs once: a miner that does not answer then is listed in
    ``unsupported`` and stays out of the classes and readings after it answers again."""
    farm, farm_clock = family_farm
    reset(farm, farm_clock)
    farm.faults.inject(0, FaultKind.TIMEOUT)
    driver = PyasicAsicDriver(addresses=farm.addresses, settings=SETTINGS, clock=FakeClock())
    with closing(driver):
        (device_class,) = driver.discover()
        farm.faults.clear()
        assert device_class.device_ids == farm.addresses[1:]
        assert "no miner answered" in driver.unsupported[farm.addresses[0]]
        assert driver.read().device_ids == farm.addresses[1:]


def test_subnet_scan_finds_every_miner_of_a_mixed_farm() -> None:
    """A driver given only a subnet finds a LuxOS, a Whatsminer and a Braiins OS miner,
    each in its catalog class at its address, and reads them all."""
    clock = SteppableWallClock()
    models = tuple(FIRMWARE_MODEL[f] for f in FIRMWARES)
    farm = EmulatorFarm(3, SCAN_SUBNET, firmware=FIRMWARES, models=models, clock=clock)
    with running(farm), closing(PyasicAsicDriver(subnet=SCAN_SUBNET, settings=SETTINGS)) as driver:
        found = {c.model_id: c.device_ids for c in driver.discover()}
        assert found == {m: (a,) for m, a in zip(models, farm.addresses, strict=True)}
        assert driver.unsupported == {}
        readings = driver.read()
        np.testing.assert_array_equal(readings.state, AsicState.ACTIVE)
        np.testing.assert_allclose(readings.power_w, farm.table.read().power_w, atol=1.0)


def test_model_overrides_route_and_unknown_models_are_left_alone() -> None:
    """Two Whatsminers report an M30S+ (not in the catalog): the one named in
    ``model_overrides`` joins the M50S class, the other lands in ``unsupported`` (as does
    an address where nothing answers) and no command touches it."""
    hosts = loopback_hosts(OVERRIDE_SUBNET, 4)
    farm = EmulatorFarm(3, OVERRIDE_SUBNET, firmware=("whatsminer",), clock=SteppableWallClock())
    unknown = dataclasses.replace(farm.miners[0].identity, reported_model="M30S+_VE40")
    # Before start: the first two miners present an identity the catalog does not know.
    farm.miners = tuple(
        dataclasses.replace(m, identity=unknown) if m.index < 2 else m for m in farm.miners
    )
    overridden, unknown_address, plain = farm.addresses
    silent = hosts[3]
    driver = PyasicAsicDriver(
        addresses=[*farm.addresses, silent],
        model_overrides={overridden: "whatsminer_m50s"},
        settings=SETTINGS,
    )
    with running(farm), closing(driver):
        (device_class,) = driver.discover()
        assert device_class.model_id == "whatsminer_m50s"
        assert device_class.device_ids == (overridden, plain)
        assert set(driver.unsupported) == {unknown_address, silent}
        assert "not in the catalog" in driver.unsupported[unknown_address]
        assert "no miner answered" in driver.unsupported[silent]
        assert driver.read().device_ids == (overridden, plain)
        result = driver.apply([AsicCommand(0, "whatsminer_m50s", active_count=0)])
        assert result.all_verified, result.failures
        np.testing.assert_array_equal(
            truth_states(farm), [AsicState.SLEEPING, AsicState.ACTIVE, AsicState.SLEEPING]
        )
