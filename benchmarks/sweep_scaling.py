"""Sweep scaling: 8 runs of scenarios/baseline.yaml on a local Dask cluster of 1, then 2,
worker processes.

Each run simulates ``--days`` (default 10 days, about 5-10 s of simulation per run on the
2-core reference machine). Every timing starts a fresh cluster and writes into a fresh
folder (no resume), so it includes the cluster start and the workers' imports; the
speedup is wall(1 worker) / wall(2 workers). Target on the 2-core reference machine:
speedup >= 1.6 on an otherwise quiet machine (the load average is printed alongside).
The two sweeps' tables are also compared: they must be identical.

Usage: python benchmarks/sweep_scaling.py [--days D] [--runs N] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin.sweep import DaskExecutor, build_plan, run_sweep  # noqa: E402

TARGET_SPEEDUP = 1.6


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Time the sweep for each worker count; print and return the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=float, default=10.0, help="simulated days per run")
    parser.add_argument("--runs", type=int, default=8, help="Monte Carlo runs (seeds)")
    parser.add_argument("--workers", default="1,2", help="worker counts to time")
    args = parser.parse_args(argv)
    worker_counts = [int(text) for text in args.workers.split(",")]

    plan = build_plan(
        ROOT / "scenarios" / "baseline.yaml", (), args.runs, {"duration_days": args.days}
    )
    wall_s: dict[int, float] = {}
    load: dict[int, tuple[float, float]] = {}
    frames = []
    for workers in worker_counts:
        with tempfile.TemporaryDirectory(prefix="sweep-scaling-") as out:
            load_before = os.getloadavg()[0]
            start = time.perf_counter()
            result = run_sweep(plan, Path(out), DaskExecutor(workers=workers))
            wall_s[workers] = time.perf_counter() - start
            frames.append(result.frame)
            if result.failures:
                raise SystemExit(f"{len(result.failures)} run(s) failed: {result.failures[0][1]}")
        load[workers] = (round(load_before, 2), round(os.getloadavg()[0], 2))
        print(
            f"{workers} worker(s): {wall_s[workers]:.1f} s wall for {args.runs} runs of "
            f"{args.days:g} days (1-min load average before/after: {load[workers]})",
            file=sys.stderr,
        )
    figures: dict[str, object] = {
        "runs": args.runs,
        "sim_days_per_run": args.days,
        "cpus": os.cpu_count(),
        "wall_s": {str(k): round(v, 2) for k, v in wall_s.items()},
        "load_average_1m_before_after": {str(k): v for k, v in load.items()},
        "identical_results": all(frame.equals(frames[0]) for frame in frames),
        "differing_columns": differing_columns(frames),
    }
    if 1 in wall_s and 2 in wall_s:
        speedup = wall_s[1] / wall_s[2]
        figures["speedup_2_vs_1"] = round(speedup, 2)
        figures["target_speedup"] = TARGET_SPEEDUP
        figures["meets_target"] = speedup >= TARGET_SPEEDUP
    print(json.dumps(figures))
    return figures


def differing_columns(frames: list[pl.DataFrame]) -> list[str]:
    """Columns whose values (or presence) differ between the first table and any other."""
    first = frames[0]
    names: set[str] = set()
    for frame in frames[1:]:
        for name in set(frame.columns) | set(first.columns):
            present = name in frame.columns and name in first.columns
            if not present or not frame[name].equals(first[name]):
                names.add(name)
    return sorted(names)


if __name__ == "__main__":
    main()
