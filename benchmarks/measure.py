"""Shared measurement for the simulation benchmarks: wall time, peak memory, a profile.

Each benchmark runs one scenario once in this process (after building it), and prints a
JSON line with: sim_days, wall_s (run only), build_s, peak_rss_gib (whole process, from
getrusage), device-hours simulated per wall second, and the top functions of a cProfile
when ``--profile`` is given. Figures vary with the machine; targets are in each script.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin.engine import build  # noqa: E402
from twin.scenario import load_scenario  # noqa: E402


def run_benchmark(
    scenario_path: Path, days: float, targets: dict[str, float], argv: list[str] | None = None
) -> dict[str, Any]:
    """Build and run ``scenario_path`` for ``days``; print and return the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=float, default=days)
    parser.add_argument("--profile", action="store_true", help="print the top 25 functions")
    parser.add_argument("--out", type=Path, help="also write the run's results here")
    args = parser.parse_args(argv)

    scenario = load_scenario(scenario_path, {"duration_days": args.days})
    t0 = time.perf_counter()
    twin = build(scenario)
    build_s = time.perf_counter() - t0
    profiler = cProfile.Profile() if args.profile else None
    t1 = time.perf_counter()
    if profiler:
        profiler.enable()
    result = twin.run()
    if profiler:
        profiler.disable()
    wall_s = time.perf_counter() - t1
    if args.out:
        result.write(args.out)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    devices = twin.world.asic_fleet.n_devices + twin.world.gpu_fleet.n_devices
    figures: dict[str, Any] = {
        "scenario": scenario.name,
        "sim_days": args.days,
        "build_s": round(build_s, 2),
        "wall_s": round(wall_s, 2),
        "peak_rss_gib": round(peak_gib, 3),
        "devices": devices,
        "workloads": result.kpis["workloads"]["submitted"],
        "device_hours_per_wall_s": round(devices * args.days * 24 / (build_s + wall_s)),
        "targets": targets,
    }
    print(json.dumps(figures, indent=2))
    if profiler:
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(25)
        print(stream.getvalue())
    return figures
