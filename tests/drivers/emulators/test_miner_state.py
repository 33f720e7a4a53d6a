"""The physics table behind emulated miners: commands, ramps, clamping, heat and fans."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.emulators.errors import EmulatorConfigError
from drivers.emulators.miner_state import HASHBOARDS, MinerTable
from models.fleet_physics import (
    ACTIVE,
    ASIC_THERMAL_TIME_CONSTANT_S,
    OFF,
    SLEEPING,
    asic_hashrate_ths,
    steady_temp_c,
)
from models.hardware import ASIC_CATALOG
from tests.drivers.emulators.helpers import FakeClock

S21 = ASIC_CATALOG["antminer_s21"]
M50S = ASIC_CATALOG["whatsminer_m50s"]


def make_table(n: int = 2) -> tuple[MinerTable, FakeClock]:
    clock = FakeClock()
    return MinerTable([S21, M50S] * (n // 2) + [S21] * (n % 2), clock), clock


def test_miners_start_hashing_at_nameplate_warmed_up() -> None:
    """A fresh table hashes at nameplate power and hashrate, split evenly over the boards,
    at the steady temperature of that power."""
    table, _ = make_table()
    readings = table.read()
    assert readings.state.tolist() == [ACTIVE, ACTIVE]
    np.testing.assert_allclose(readings.power_w, [S21.power_w, M50S.power_w])
    np.testing.assert_allclose(readings.hashrate_ths, [S21.hashrate_ths, M50S.hashrate_ths])
    assert readings.board_hashrate_ths.shape == (2, HASHBOARDS)
    np.testing.assert_allclose(readings.board_hashrate_ths.sum(axis=1), readings.hashrate_ths)
    expected_temp = steady_temp_c(table.ambient_c, S21.power_w / 1000.0, S21.thermal_c_per_kw)
    assert readings.chip_temp_c[0] == pytest.approx(expected_temp)
    assert (readings.board_temp_c < readings.chip_temp_c).all()


def test_sleep_drops_to_sleep_power_and_wake_ramps_back() -> None:
    """Sleep is instant (sleep power, no hashrate); wake ramps linearly from the sleep
    level to the target over the spec's ramp_s, as the fleet physics says."""
    table, clock = make_table()
    table.sleep(0)
    asleep = table.read(0)
    assert asleep.state[0] == SLEEPING
    assert asleep.power_w[0] == pytest.approx(S21.sleep_power_w)
    assert asleep.hashrate_ths[0] == 0.0
    assert table.read(1).power_w[0] == pytest.approx(M50S.power_w), "only miner 0 sleeps"

    table.wake(0)
    clock.advance(S21.ramp_s / 2)
    halfway = table.read(0)
    assert halfway.power_w[0] == pytest.approx(
        S21.sleep_power_w + 0.5 * (S21.power_w - S21.sleep_power_w)
    )
    assert halfway.hashrate_ths[0] == pytest.approx(0.5 * S21.hashrate_ths)
    clock.advance(S21.ramp_s / 2)
    done = table.read(0)
    assert done.power_w[0] == pytest.approx(S21.power_w)
    assert done.hashrate_ths[0] == pytest.approx(S21.hashrate_ths)


def test_waking_a_hashing_miner_does_not_restart_its_ramp() -> None:
    """A wake command to a miner already hashing leaves it at full power."""
    table, clock = make_table()
    table.wake(0)
    clock.advance(1.0)
    assert table.read(0).power_w[0] == pytest.approx(S21.power_w)


def test_power_limit_is_clamped_and_hashrate_follows_the_efficiency_curve() -> None:
    """A power limit is clamped to [min_power_fraction, 1] of nameplate; the applied value
    is returned; hashrate follows asic_hashrate_ths, so J/TH improves when underclocked."""
    table, _ = make_table()
    applied = table.set_power_limit_w([0, 1], [10.0, 1e9])
    np.testing.assert_allclose(applied, [S21.min_power_fraction * S21.power_w, M50S.power_w])

    fraction = 0.8
    applied_w = table.set_power_limit_w(0, fraction * S21.power_w)
    readings = table.read(0)
    assert applied_w[0] == pytest.approx(fraction * S21.power_w)
    assert readings.power_w[0] == pytest.approx(fraction * S21.power_w)
    expected_ths = asic_hashrate_ths(S21.hashrate_ths, fraction, S21.efficiency_exponent)
    assert readings.hashrate_ths[0] == pytest.approx(expected_ths)
    efficiency_j_per_th = readings.power_w[0] / readings.hashrate_ths[0]
    assert efficiency_j_per_th < S21.efficiency_j_per_th


@pytest.mark.parametrize("watts", [0.0, -5.0, math.nan, math.inf])
def test_bad_power_limits_are_rejected_by_name(watts: float) -> None:
    """A power limit that is not finite and positive raises an error naming ``watts``."""
    table, _ = make_table()
    with pytest.raises(EmulatorConfigError, match="watts"):
        table.set_power_limit_w(0, watts)


def test_unknown_miner_indices_are_rejected() -> None:
    """Commands to a row outside the table raise a clear error."""
    table, _ = make_table()
    with pytest.raises(EmulatorConfigError, match="indices"):
        table.sleep(2)


def test_temperature_relaxes_with_the_thermal_time_constant() -> None:
    """After sleeping, the chip temperature moves towards the sleep steady state, closing
    1 - 1/e of the gap in one thermal time constant."""
    table, clock = make_table()
    hot_c = float(table.read(0).chip_temp_c[0])
    table.sleep(0)
    cold_c = steady_temp_c(table.ambient_c, S21.sleep_power_w / 1000.0, S21.thermal_c_per_kw)
    clock.advance(ASIC_THERMAL_TIME_CONSTANT_S)
    now_c = float(table.read(0).chip_temp_c[0])
    assert now_c == pytest.approx(cold_c + (hot_c - cold_c) * math.exp(-1.0))


def test_power_off_draws_nothing_and_stops_the_fans() -> None:
    """An off miner draws 0 W with fans stopped; a wake starts it again through the ramp."""
    table, clock = make_table()
    table.power_off(0)
    off = table.read(0)
    assert off.state[0] == OFF
    assert off.power_w[0] == 0.0 and off.fan_rpm[0] == 0.0
    table.wake(0)
    clock.advance(S21.ramp_s)
    assert table.read(0).power_w[0] == pytest.approx(S21.power_w)


def test_ambient_temperature_must_be_finite() -> None:
    """A non-finite ambient temperature is rejected by name."""
    with pytest.raises(EmulatorConfigError, match="ambient_c"):
        MinerTable([S21], FakeClock(), ambient_c=math.nan)


@settings(max_examples=60, deadline=None)
@given(
    commands=st.lists(
        st.tuples(
            st.sampled_from(["sleep", "wake", "limit", "off", "wait"]),
            st.integers(0, 3),
            st.floats(1.0, 5000.0),
        ),
        max_size=25,
    )
)
def test_readings_stay_physical_under_any_command_sequence(
    commands: list[tuple[str, int, float]],
) -> None:
    """Whatever the commands, power lies in [0, max(sleep, limit)], hashrate in [0,
    nameplate], and fans spin faster at higher power."""
    table, clock = make_table(4)
    for verb, index, value in commands:
        if verb == "sleep":
            table.sleep(index)
        elif verb == "wake":
            table.wake(index)
        elif verb == "limit":
            table.set_power_limit_w(index, value)
        elif verb == "off":
            table.power_off(index)
        else:
            clock.advance(value / 50.0)
        readings = table.read()
        ceiling_w = np.maximum(table.sleep_power_w, readings.power_limit_w)
        assert (readings.power_w >= 0).all()
        assert (readings.power_w <= ceiling_w + 1e-9).all()
        assert (readings.hashrate_ths >= 0).all()
        assert (readings.hashrate_ths <= table.nameplate_ths + 1e-9).all()
        load = readings.power_w / table.nameplate_w
        powered = readings.state != OFF
        order = np.argsort(load[powered])
        assert (np.diff(readings.fan_rpm[powered][order]) >= -1e-9).all()
