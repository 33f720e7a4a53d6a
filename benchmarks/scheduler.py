"""Scheduler figures: decisions per second, realtime SLA with capacity, fairness in saturation.

1. **Throughput.** One simulated day of scenarios/prd_scale.yaml's demand (about a million
   workloads) through the scheduler alone, every pool at full capacity, routing costs and
   deferral flags set each interval as the twin does. A *decision* is an admission
   (accept or reject), a start or a preemption. Prints decisions per wall second.
2. **Realtime SLA with capacity sufficient**: the same run's realtime inference
   ``met_fraction`` (started within 100 ms of submission). Target >= 0.999.
3. **Fairness in saturation**: one 64-GPU pool, 8 equal-weight customers submitting 1-GPU
   batch jobs at rates 1x..8x, together about twice the pool, for two days; Jain's index
   of the GPU work served to saturated customers (twin.kpis.fairness). Target >= 0.95.

Usage: python benchmarks/scheduler.py [--days D]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.customers import Customer  # noqa: E402
from models.job_table import JobBatch, JobTable  # noqa: E402
from models.workload_types import BATCH, REALTIME  # noqa: E402
from optimizer.pools import Pool, PoolKind  # noqa: E402
from optimizer.scheduler import Scheduler  # noqa: E402
from twin.engine import build_world  # noqa: E402
from twin.kpis import fairness  # noqa: E402
from twin.scenario import load_scenario  # noqa: E402


def throughput(days: float) -> dict[str, float]:
    """Decisions per second and realtime met fraction on prd_scale demand."""
    scenario = load_scenario(ROOT / "scenarios" / "prd_scale.yaml", {"duration_days": days})
    world = build_world(scenario)
    step_s = float(scenario.dispatch_interval_s)
    rng = np.random.default_rng(0)
    pools = world.scheduler.pools
    energy = rng.uniform(0.02, 0.2, len(pools))
    decisions = 0
    wall_s = 0.0
    for index in range(scenario.interval_count):
        t0 = index * step_s
        world.jobs.append(world.generator.arrivals(t0, t0 + step_s))
        deferred = rng.random(len(pools)) < 0.1
        began = time.perf_counter()
        result = world.scheduler.run_interval(t0, t0 + step_s, None, energy, deferred)
        wall_s += time.perf_counter() - began
        decisions += int(result.submitted_by_type.sum() + result.started.sum())
        decisions += int(result.preempted.sum())
    jobs = world.jobs
    met = jobs.sla_met(scenario.interval_count * step_s)
    realtime = (jobs.type == REALTIME) & ~np.isnan(met)
    return {
        "workloads": len(jobs),
        "scheduler_wall_s": round(wall_s, 2),
        "decisions": decisions,
        "decisions_per_s": round(decisions / wall_s),
        "realtime_met_fraction": round(float(met[realtime].mean()), 6),
    }


def saturated_fairness(customers: int = 8, days: float = 2.0) -> dict[str, object]:
    """Jain's index between equal-weight customers sharing one saturated pool."""
    pool_gpus = 64
    work_s = 1800.0
    step_s = 300.0
    rng = np.random.default_rng(1)
    capacity_jobs_per_s = pool_gpus / work_s
    rates = np.arange(1, customers + 1, dtype=float)
    rates *= 2.0 * capacity_jobs_per_s / rates.sum()  # twice what the pool can serve
    horizon_s = days * 86400.0
    submit, who = [], []
    for customer, rate in enumerate(rates):
        count = rng.poisson(rate * horizon_s)
        submit.append(np.sort(rng.uniform(0.0, horizon_s, count)))
        who.append(np.full(count, customer))
    order = np.argsort(np.concatenate(submit), kind="stable")
    times = np.concatenate(submit)[order]
    owners = np.concatenate(who)[order]
    n = times.size
    table = JobTable()
    batch = JobBatch.from_columns(
        type=np.full(n, BATCH),
        customer=owners,
        submit_s=times,
        work_s=np.full(n, work_s),
        gpus=np.ones(n),
        gpu_type=np.zeros(n),
        hashrate_ths=np.zeros(n),
        deadline_s=times + 30 * 86400.0,
        checkpoint_interval_s=np.full(n, 600.0),
        price_usd_per_gpu_hour=np.full(n, 2.5),
    )
    people = [Customer(i, f"customer-{i}", "us-central", 1.0 / customers) for i in range(customers)]
    pool = Pool(0, "site", PoolKind.GPU, 0, float(pool_gpus), 8)
    scheduler = Scheduler([pool], table, people)
    cursor = 0
    for index in range(int(horizon_s // step_s)):
        t0 = index * step_s
        hi = int(np.searchsorted(times, t0 + step_s, side="left"))
        table.append(batch.rows(cursor, hi))
        cursor = hi
        scheduler.run_interval(t0, t0 + step_s)
    frame = table.to_polars(horizon_s, [c.name for c in people], ["site"], ["h100"])
    result = fairness(frame)
    served = frame.group_by("customer").agg(pl.col("served_s").sum())
    result["served_gpu_h_by_customer"] = {
        row["customer"]: round(row["served_s"] / 3600.0, 1)
        for row in served.sort("customer").iter_rows(named=True)
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=1.0, help="simulated days of prd_scale")
    args = parser.parse_args()
    figures = {
        "throughput": throughput(args.days),
        "fairness_saturated": saturated_fairness(),
        "targets": {"realtime_met_fraction": 0.999, "jain": 0.95},
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
