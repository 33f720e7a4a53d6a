"""Live-mode figures: command latency to 1,000 emulated miners, GPU power-limit latency
through the fake NVML library, and loop lag of a live run.

1. **Curtail / resume, 1,000 miners.** An emulator farm of 1,000 LuxOS Antminer S19j Pro
   (a subprocess, as real miners are other machines) read and commanded through the pyasic
   driver. Latency of ``apply`` from the command to every miner verified by read-back: all
   to sleep, then all awake. Target each way <= 2 s.
2. **GPU power limit.** ``NvmlGpuDriver.apply`` of a new power cap to 8 GPUs through the
   unmodified nvidia-ml-py on the fake ``libnvidia-ml.so.1``, set + read-back. Target
   <= 100 ms.
3. **Loop lag.** ``run live scenarios/live_demo.yaml`` (1,000 emulated miners) at a 1 s
   tick for ``--live-s`` seconds with prices replayed 60x: lag p50 / p99 / max.

Usage: python benchmarks/live_latency.py [--miners N] [--live-s S] [--skip-live]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drivers.asic_pyasic import PyasicAsicDriver, PyasicSettings  # noqa: E402
from drivers.base import AsicCommand, GpuCommand  # noqa: E402
from twin.live import LiveOptions, _start_farm, run_live  # noqa: E402
from twin.scenario import load_scenario  # noqa: E402

MODEL = "antminer_s19j_pro"


def miner_commands(count: int, rounds: int = 3) -> dict[str, object]:
    """Curtail-all and resume-all latency over ``rounds`` [s]."""
    import ipaddress

    subnet = "127.70.0.0/21"
    farm = _start_farm(count, subnet, MODEL, ("luxos",), ())
    try:
        farm.wait_ready()
        hosts = ipaddress.ip_network(subnet).hosts()
        addresses = [str(next(hosts)) for _ in range(count)]
        driver = PyasicAsicDriver(
            addresses=addresses,
            model_overrides=dict.fromkeys(addresses, MODEL),
            settings=PyasicSettings(timeout_s=5.0),
        )
        began = time.perf_counter()
        driver.discover()
        discover_s = time.perf_counter() - began
        began = time.perf_counter()
        driver.read()
        read_s = time.perf_counter() - began
        curtail, resume, verified = [], [], True
        for _ in range(rounds):
            began = time.perf_counter()
            result = driver.apply([AsicCommand(0, MODEL, active_count=0)])
            curtail.append(time.perf_counter() - began)
            verified &= result.all_verified
            began = time.perf_counter()
            result = driver.apply([AsicCommand(0, MODEL, active_count=count)])
            resume.append(time.perf_counter() - began)
            verified &= result.all_verified
        driver.close()
    finally:
        farm.stop()
    return {
        "miners": count,
        "discover_s": round(discover_s, 2),
        "read_all_s": round(read_s, 2),
        "curtail_s": [round(x, 3) for x in curtail],
        "resume_s": [round(x, 3) for x in resume],
        "all_verified": verified,
        "target_each_way_s": 2.0,
    }


def gpu_power_limit(repeats: int = 200) -> dict[str, object]:
    """Set + read-back latency of a power cap on 8 fake H100s [ms]."""
    from drivers.nvml import NvmlGpuDriver
    from drivers.nvml.fake_library import (
        FakeGpuState,
        build_fake_nvml,
        fake_gpus,
        preload_fake_nvml,
    )

    work = Path(tempfile.mkdtemp(prefix="hcp-nvml-"))
    library = build_fake_nvml(work)
    state = FakeGpuState.create(work / "state.bin", fake_gpus(["h100_sxm"] * 8))
    import os

    os.environ["HCP_FAKE_NVML_STATE"] = str(work / "state.bin")
    preload_fake_nvml(library)
    driver = NvmlGpuDriver()
    times = []
    for i in range(repeats):
        fraction = 0.6 + 0.3 * (i % 2)
        began = time.perf_counter()
        result = driver.apply([GpuCommand(0, "h100_sxm", power_limit_fraction=fraction)])
        times.append((time.perf_counter() - began) * 1000.0)
        assert result.all_verified, result.failures
    driver.close()
    state.close()
    times.sort()
    return {
        "gpus": 8,
        "apply_median_ms": round(statistics.median(times), 3),
        "apply_p99_ms": round(times[int(0.99 * (len(times) - 1))], 3),
        "target_ms": 100.0,
    }


def live_lag(seconds: float) -> dict[str, object]:
    """Loop lag of a live run of the demo scenario at a 1 s tick."""
    scenario = load_scenario(ROOT / "scenarios" / "live_demo.yaml")
    options = LiveOptions(tick_s=1.0, duration_s=seconds, speed=60.0, timeout_s=5.0)
    result = run_live(scenario, options)
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.summary.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miners", type=int, default=1000)
    parser.add_argument("--live-s", type=float, default=60.0)
    parser.add_argument("--skip-live", action="store_true")
    args = parser.parse_args()
    figures: dict[str, object] = {"miner_commands": miner_commands(args.miners)}
    figures["gpu_power_limit"] = gpu_power_limit()
    if not args.skip_live:
        figures["live_loop"] = live_lag(args.live_s)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
