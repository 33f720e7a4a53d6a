"""The control loop: the cheap sim-driver counts give the same run as full readings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import simpy

from drivers.base import (
    ApplyResult,
    AsicCommand,
    AsicReadings,
    ClassCountingAsicDriver,
    DeviceClass,
    FailureCountingGpuDriver,
    GpuCommand,
    GpuReadings,
)
from drivers.sim import SimAsicDriver, SimGpuDriver
from optimizer.policies import make_policy
from twin.controller import Controller
from twin.engine import build_world
from twin.recorder import Recorder
from twin.scenario import load_scenario

BASELINE = Path(__file__).resolve().parents[2] / "scenarios" / "baseline.yaml"


class _ReadOnlyAsicDriver:
    """A simulated ASIC driver that offers only the Protocol verbs (like a real one)."""

    def __init__(self, inner: SimAsicDriver) -> None:
        self._inner = inner

    def discover(self) -> tuple[DeviceClass, ...]:
        return self._inner.discover()

    def read(self) -> AsicReadings:
        return self._inner.read()

    def apply(self, commands: Sequence[AsicCommand]) -> ApplyResult:
        return self._inner.apply(commands)

    def close(self) -> None:
        self._inner.close()


class _ReadOnlyGpuDriver:
    """A simulated GPU driver that offers only the Protocol verbs (like a real one)."""

    def __init__(self, inner: SimGpuDriver) -> None:
        self._inner = inner

    def discover(self) -> tuple[DeviceClass, ...]:
        return self._inner.discover()

    def read(self) -> GpuReadings:
        return self._inner.read()

    def apply(self, commands: Sequence[GpuCommand]) -> ApplyResult:
        return self._inner.apply(commands)

    def close(self) -> None:
        self._inner.close()


def _run(plain_drivers: bool) -> np.ndarray:
    """Run half a day of the baseline scenario with a few failed devices; return the
    recorder's whole value block."""
    scenario = load_scenario(BASELINE, {"duration_days": 0.5})
    world = build_world(scenario)
    world.asic_fleet.fail([3, 2500, 4000])
    world.gpu_fleet.fail([5, 600])
    env = simpy.Environment()

    def clock() -> float:
        return float(env.now)

    asic = SimAsicDriver(world.asic_fleet, clock)
    gpu = SimGpuDriver(world.gpu_fleet, clock)
    recorder = Recorder(
        world.facility_ids,
        scenario.interval_count,
        float(scenario.dispatch_interval_s),
        scenario.start,
    )
    policy = make_policy(scenario.policy.name, scenario.policy.model_dump(exclude={"name"}))
    if plain_drivers:
        controller = Controller(
            world, policy, _ReadOnlyAsicDriver(asic), _ReadOnlyGpuDriver(gpu), recorder
        )
    else:
        controller = Controller(world, policy, asic, gpu, recorder)
    env.process(controller.loop(env))
    env.run(until=scenario.duration_s)
    return np.array([recorder.column(name) for name in ("power_total_mw", "asics_failed")])


def test_sim_drivers_offer_counts_that_plain_drivers_lack() -> None:
    """The simulated drivers have the counting shortcuts; a Protocol-only driver does not."""
    scenario = load_scenario(BASELINE, {"duration_days": 0.1})
    world = build_world(scenario)
    asic = SimAsicDriver(world.asic_fleet, lambda: 0.0)
    gpu = SimGpuDriver(world.gpu_fleet, lambda: 0.0)
    assert isinstance(asic, ClassCountingAsicDriver)
    assert isinstance(gpu, FailureCountingGpuDriver)
    assert not isinstance(_ReadOnlyAsicDriver(asic), ClassCountingAsicDriver)
    assert not isinstance(_ReadOnlyGpuDriver(gpu), FailureCountingGpuDriver)


def test_counting_shortcuts_give_the_same_run_as_full_readings() -> None:
    """With failed devices in the fleet, a run observing through read() and one using the
    sim drivers' counts record identical values."""
    shortcut, plain = _run(plain_drivers=False), _run(plain_drivers=True)
    assert np.all(shortcut[1].sum(axis=1) == 3)
    assert np.array_equal(shortcut, plain, equal_nan=True)


def test_read_based_counts_follow_the_controllers_model_order() -> None:
    """A driver may list models in another order than the world (or list extra ones):
    counts come out in the controller's order, unknown models left out."""
    import numpy as np

    from twin.controller import _class_state_counts

    readings = AsicReadings(
        t_s=0.0,
        model_ids=("antminer_s9", "antminer_s21", "mystery"),
        facility=np.array([0, 0, 1, 0], dtype=np.int16),
        model=np.array([0, 1, 1, 2], dtype=np.int16),
        state=np.array([1, 0, 0, 0], dtype=np.int8),
        power_fraction=np.ones(4),
        power_w=np.zeros(4),
        hashrate_ths=np.zeros(4),
        temp_c=np.zeros(4),
    )
    counts = _class_state_counts(readings, 2, ["antminer_s21", "antminer_s9"])
    assert counts.shape == (2, 2, 4)
    assert counts[0, 0].tolist() == [1, 0, 0, 0]  # the S21 at facility 0, active
    assert counts[0, 1].tolist() == [0, 1, 0, 0]  # the S9, sleeping
    assert counts[1, 0].tolist() == [1, 0, 0, 0]
    assert counts.sum() == 3  # the unknown model is left out
