"""Live mode: ``python run.py live SCENARIO --drivers emulated|real``.

Runs the simulation's controller, optimizer and scheduler on ``simpy.rt.RealtimeEnvironment``
against devices: emulated miners (started here as a subprocess per ASIC group, speaking the
firmware APIs pyasic uses) or real ones (``--subnet`` / ``--miners``), read and commanded
through the pyasic driver. Prices come from background pollers replaying the scenario's
price signal in real time (``--speed`` signal-seconds per wall second); a stale price
switches the controller to the conservative policy. The loop reports its lag, serves
Prometheus metrics (``--metrics-port``), and stops cleanly on SIGINT/SIGTERM or after
``--duration``, writing ``live.parquet`` (one row per tick and facility) and
``summary.json``. ``serve --mode live`` runs the same loop with the API's workloads among
the scheduler's arrivals (a ``controller_factory``, see :mod:`twin.service.live_bridge`).

Emulated farms are started in their own session (a terminal's Ctrl-C goes to the loop,
which stops them) and die with the thread that started them if it is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import polars as pl
import simpy.rt

from drivers.asic_pyasic import PyasicAsicDriver, PyasicSettings
from drivers.base import AsicDriver
from drivers.composite import CompositeAsicDriver
from drivers.sim import SimGpuDriver
from optimizer.conservative import DEFAULT_ASSUMED_PRICE_USD_PER_MWH, AssumeHighPrice
from optimizer.policies import PolicyContext, Strike, make_policy
from twin.engine import build_world
from twin.live_controller import LiveController, LiveSample, summarize
from twin.live_metrics import LiveMetrics
from twin.recorder import Recorder
from twin.scenario import PROJECT_ROOT, Scenario
from twin.signal_poller import SignalPoller

READY_TIMEOUT_S = 120.0
"""Longest wait for an emulator farm to print ``ready N miners`` [s]."""

PR_SET_PDEATHSIG = 1
"""Linux prctl option: the signal a process gets when its parent dies."""

ControllerFactory = Callable[..., LiveController]
"""Builds the live controller from :class:`twin.live_controller.LiveController`'s arguments
(world, policy, conservative, asic_driver, gpu_driver, recorder, price_pollers, metrics):
``LiveController`` itself, or a subclass that adds to the loop (the service's adds the API's
workloads to the scheduler's arrivals and reports their status after each tick)."""


class LiveError(RuntimeError):
    """Live mode could not start (bad options, devices not found, emulators failed)."""


@dataclass(frozen=True)
class LiveOptions:
    """How a live run talks to devices and the clock.

    Attributes:
        drivers: ``emulated`` (start emulated miners for the scenario's ASIC groups) or
            ``real`` (the miners at ``subnet`` / ``addresses``, all at facility 0).
        tick_s: control loop period [wall s].
        duration_s: stop after this long (None: until SIGINT/SIGTERM, at most a day) [s].
        speed: signal seconds replayed per wall second [-].
        price_period_s: how often the price pollers fetch [s].
        price_max_age_s: a price older than this is stale [s].
        assumed_price_usd_per_mwh: price the conservative policy plans with.
        metrics_port: serve Prometheus metrics here (None: do not serve).
        subnet, addresses: where the real miners are.
        firmware: emulated firmware families, round-robin over each group's miners.
        faults: emulated faults, ``KIND:FRACTION`` (timeout, malformed, refuse,
            wrong_reading), for drills.
        timeout_s: pyasic call timeout [s].
    """

    drivers: str = "emulated"
    tick_s: float = 1.0
    duration_s: float | None = None
    speed: float = 1.0
    price_period_s: float = 1.0
    price_max_age_s: float = 10.0
    assumed_price_usd_per_mwh: float = DEFAULT_ASSUMED_PRICE_USD_PER_MWH
    metrics_port: int | None = None
    subnet: str | None = None
    addresses: tuple[str, ...] = ()
    firmware: tuple[str, ...] = ("luxos",)
    faults: tuple[str, ...] = ()
    timeout_s: float = 3.0

    def check(self) -> None:
        """Raise LiveError naming the option that is wrong."""
        if self.drivers not in ("emulated", "real"):
            raise LiveError(f"--drivers: must be emulated or real, not {self.drivers!r}")
        if not self.tick_s > 0:
            raise LiveError(f"--tick-s: must be > 0, got {self.tick_s}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise LiveError(f"--duration: must be > 0, got {self.duration_s}")
        if not self.speed > 0:
            raise LiveError(f"--speed: must be > 0, got {self.speed}")
        if self.drivers == "real" and not (self.subnet or self.addresses):
            raise LiveError("--drivers real needs --subnet CIDR or --miners ADDRESSES")


@dataclass
class LiveResult:
    """What a live run produced."""

    samples: list[LiveSample]
    summary: dict[str, Any]
    out_dir: Path | None = None
    health: dict[str, str] = field(default_factory=dict)
    telemetry_summary: pl.DataFrame = field(default_factory=pl.DataFrame)
    telemetry: pl.DataFrame = field(default_factory=pl.DataFrame)
    alerts: pl.DataFrame = field(default_factory=pl.DataFrame)


def live_scenario(scenario: Scenario, options: LiveOptions) -> Scenario:
    """The scenario on the live tick: one dispatch interval per tick, for the run's length
    (schema limits on the interval do not apply to live ticks)."""
    duration_s = options.duration_s or 86400.0
    return scenario.model_copy(
        update={"dispatch_interval_s": options.tick_s, "duration_days": duration_s / 86400.0}
    )


@contextlib.contextmanager
def emulated_miners(
    scenario: Scenario,
    firmware: Sequence[str],
    faults: Sequence[str] = (),
    subnet_base: int = 40,
) -> Iterator[list[tuple[int, str, list[str]]]]:
    """Start one emulator farm subprocess per (facility, ASIC group); yield
    ``(facility, model_id, addresses)`` per group; stop them all on exit."""
    farms: list[_Farm] = []
    groups: list[tuple[int, str, list[str]]] = []
    try:
        for f, facility in enumerate(scenario.facilities):
            for g, group in enumerate(facility.asics):
                model_id = group.spec().model_id
                subnet = f"127.{subnet_base + f}.{g}.0/{_prefix_for(group.count)}"
                farms.append(_start_farm(group.count, subnet, model_id, firmware, faults))
                hosts = ipaddress.ip_network(subnet).hosts()
                groups.append((f, model_id, [str(next(hosts)) for _ in range(group.count)]))
        for farm in farms:
            farm.wait_ready()
        yield groups
    finally:
        for farm in farms:
            farm.stop()


def _prefix_for(count: int) -> int:
    """The longest prefix length whose subnet has ``count`` host addresses."""
    for prefix in range(30, 7, -1):
        if 2 ** (32 - prefix) - 2 >= count:
            return prefix
    raise LiveError(f"{count} emulated miners do not fit one loopback subnet")


@dataclass
class _Farm:
    """An emulator farm subprocess and the file its errors go to (a file, not a pipe,
    so it never fills up and blocks the farm)."""

    process: subprocess.Popen[str]
    errors: IO[str]

    def wait_ready(self) -> None:
        """Block until the farm prints ``ready N miners``."""
        stdout = self.process.stdout
        assert stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            line = stdout.readline()
            if line.startswith("ready "):
                return
            if not line and self.process.poll() is not None:
                self.errors.seek(0)
                text = self.errors.read().strip()[-500:]
                raise LiveError(f"emulated miners failed to start: {text}")
        raise LiveError(f"emulated miners not ready after {READY_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        """SIGTERM, wait (kill if it hangs), close the streams."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(15.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5.0)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.errors.close()


def _start_farm(
    count: int, subnet: str, model_id: str, firmware: Sequence[str], faults: Sequence[str]
) -> _Farm:
    command = [
        sys.executable,
        "-m",
        "drivers.emulators",
        "--miners",
        str(count),
        "--subnet",
        subnet,
        "--model",
        model_id,
        "--firmware",
        ",".join(firmware),
        *(part for fault in faults for part in ("--fault", fault)),
    ]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed by _Farm.stop)
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        start_new_session=True,  # a terminal's Ctrl-C reaches the owner, which stops it
        preexec_fn=_die_with_owner(),
    )
    return _Farm(process, errors)


def _die_with_owner() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGKILL the farm when the thread that starts it
    dies (Linux ``PR_SET_PDEATHSIG``), so a killed live run or service leaves no emulators
    behind; None where prctl is missing (the farm is then stopped only by ``_Farm.stop``).

    prctl is looked up here, before the fork, so that the hook only makes the system call
    (a forked child of a threaded process must not take locks). The live loop starts its
    farms from the thread that runs it, which lives as long as they should."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None
    owner_pid = os.getpid()

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != owner_pid:  # the owner died before prctl took effect
            os._exit(1)

    return hook


def run_live(
    scenario: Scenario,
    options: LiveOptions,
    stop: threading.Event | None = None,
    out_dir: Path | None = None,
    on_tick: Callable[[LiveController], None] | None = None,
    controller_factory: ControllerFactory = LiveController,
) -> LiveResult:
    """Run the live loop until ``stop`` is set or the duration ends; write results to
    ``out_dir`` when given.

    Args:
        scenario: the scenario (its ASIC groups are the emulated miners).
        options: devices and clock.
        stop: set it to end the loop after its current tick.
        out_dir: where to write ``live.parquet`` and ``summary.json`` (None: nowhere).
        on_tick: called with the controller half a tick after each tick (drills, tests).
        controller_factory: builds the controller (see :data:`ControllerFactory`).
    """
    options.check()
    stop = stop or threading.Event()
    live = live_scenario(scenario, options)
    with contextlib.ExitStack() as stack:
        if options.drivers == "emulated":
            groups = stack.enter_context(
                emulated_miners(scenario, options.firmware, options.faults)
            )
            settings = PyasicSettings(timeout_s=options.timeout_s)
            asic_driver: AsicDriver = CompositeAsicDriver(
                [
                    PyasicAsicDriver(
                        addresses=addresses,
                        facility=f,
                        model_overrides=dict.fromkeys(addresses, model_id),
                        settings=settings,
                    )
                    for f, model_id, addresses in groups
                ]
            )
        else:
            asic_driver = PyasicAsicDriver(
                addresses=list(options.addresses) or None,
                subnet=options.subnet if not options.addresses else None,
                facility=0,
                settings=PyasicSettings(timeout_s=options.timeout_s),
            )
        result = _run_loop(live, scenario, options, asic_driver, stop, on_tick, controller_factory)
    if out_dir is not None:
        result.out_dir = write_live(result, out_dir)
    return result


def _run_loop(
    live: Scenario,
    scenario: Scenario,
    options: LiveOptions,
    asic_driver: AsicDriver,
    stop: threading.Event,
    on_tick: Callable[[LiveController], None] | None,
    controller_factory: ControllerFactory,
) -> LiveResult:
    world = build_world(live)
    signals = build_world(
        scenario.model_copy(
            update={"duration_days": live.duration_days * options.speed + 1.0 / 24.0}
        )
    )
    wall_start = time.monotonic()
    pollers = [
        SignalPoller(
            f"price-{facility.id}",
            _price_fetch(signals, facility.settlement_point, wall_start, options.speed),
            options.price_period_s,
            options.price_max_age_s,
        ).start()
        for facility in live.facilities
    ]
    metrics = LiveMetrics()
    if options.metrics_port is not None:
        metrics.serve(options.metrics_port)
    context = PolicyContext(
        contracts={f.id: f.contract for f in live.facilities},
        four_cp_rate_usd_per_kw_year=live.grid.four_cp.rate_usd_per_kw_year,
    )
    policy = make_policy(live.policy.name, live.policy.model_dump(exclude={"name"}), context)
    recorder = Recorder(world.facility_ids, live.interval_count, options.tick_s, live.start)
    controller = controller_factory(
        world,
        policy,
        AssumeHighPrice(Strike(intervals_above=1), options.assumed_price_usd_per_mwh),
        asic_driver,
        SimGpuDriver(world.gpu_fleet, lambda: float(env.now)),
        recorder,
        pollers,
        metrics,
    )
    start_polling = getattr(asic_driver, "start_polling", None)
    if start_polling is not None:
        start_polling(options.tick_s)  # the loop reads the latest sweep, never waits
    env = simpy.rt.RealtimeEnvironment(factor=1.0, strict=False)
    if on_tick is not None:
        env.process(_watch(env, controller, on_tick, options.tick_s))
    try:
        env.run(until=env.process(controller.live_loop(env, stop)))
    finally:
        health = _unhealthy(asic_driver)
        controller.finish(float(env.now))
        for poller in pollers:
            poller.stop()
    summary = summarize(controller.samples, health, controller.overruns)
    alerts = controller.health_check.frame()
    summary["alerts"] = alerts.height
    return LiveResult(
        controller.samples,
        summary,
        health=health,
        telemetry_summary=controller.telemetry.summary(),
        telemetry=controller.telemetry.detail(),
        alerts=alerts,
    )


def _watch(
    env: simpy.Environment,
    controller: LiveController,
    on_tick: Callable[[LiveController], None],
    tick_s: float,
) -> Any:
    """Call ``on_tick`` half a tick after each tick (tests and drills inject events here)."""
    yield env.timeout(tick_s / 2.0)
    while True:
        on_tick(controller)
        yield env.timeout(tick_s)


def _price_fetch(
    signals: Any, settlement_point: str, wall_start: float, speed: float
) -> Callable[[], float]:
    def fetch() -> float:
        t_s = (time.monotonic() - wall_start) * speed
        return float(signals.grid.price_usd_per_mwh(settlement_point, t_s))

    return fetch


def _unhealthy(driver: AsicDriver) -> dict[str, str]:
    """Address -> last error of every unhealthy miner the driver knows."""
    drivers = driver.drivers if isinstance(driver, CompositeAsicDriver) else [driver]
    found: dict[str, str] = {}
    for inner in drivers:
        if isinstance(inner, PyasicAsicDriver):
            found.update({a: h.last_error for a, h in inner.health().items() if not h.healthy})
    return found


def write_live(result: LiveResult, out_dir: Path) -> Path:
    """``live.parquet`` (one row per tick and facility), the driver readings
    (``telemetry_summary.parquet``, ``telemetry.parquet``), ``alerts.parquet`` and
    ``summary.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [asdict(s) for s in result.samples]
    pl.DataFrame(rows).write_parquet(out_dir / "live.parquet")
    result.telemetry_summary.write_parquet(out_dir / "telemetry_summary.parquet")
    result.telemetry.write_parquet(out_dir / "telemetry.parquet")
    result.alerts.write_parquet(out_dir / "alerts.parquet")
    summary = {**result.summary, "unhealthy": result.health}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return out_dir
