"""Solve time of the dispatch MILP on the three-facility baseline at a 24 h horizon.

Builds the baseline world (scenarios/baseline.yaml: 3 facilities, 5 ASIC classes, 6 GPU
pools), takes controller snapshots at successive dispatch intervals and solves the rolling
24 h / 300 s horizon (288 steps; 2 h at 5 min then hourly blocks by default) with the true
price, ancillary, 4CP and grid-event signals and a synthetic GPU demand (realtime 15 %,
reserved 5 %, batch 15 %, training 40 % of each pool, with a daily shape). Prints one JSON
object with the median and p90 solve time over the runs (build + solve + read-back; the
time to build the inputs from the snapshot is reported apart).

Target on the 2-core reference machine: median <= 250 ms.
Usage: python benchmarks/mpc_solve.py [--solves 20] [--backend highspy|pyomo]
       [--fine-steps 24] [--block-steps 12] [--integer-blocks 1 | --all-integer]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.facility import pue  # noqa: E402
from optimizer.dispatch import (  # noqa: E402
    DispatchOptions,
    DispatchSolver,
    HorizonData,
    inputs_from_snapshot,
    pool_keys,
)
from twin.controller import ambient_table  # noqa: E402
from twin.engine import build  # noqa: E402
from twin.scenario import load_scenario  # noqa: E402

TARGET_MEDIAN_MS = 250.0
DEMAND_SHARES = {"realtime": 0.15, "reserved": 0.05, "batch": 0.15, "training": 0.40}


def _signal_tables(twin, n_total: int, step_s: float) -> dict[str, np.ndarray]:
    """True signals on the dispatch grid for ``n_total`` steps from t = 0."""
    scenario = twin.scenario
    grid = twin.world.grid
    t_s = np.arange(n_total) * step_s
    facilities = scenario.facilities
    price = np.array(
        [[grid.price_usd_per_mwh(f.settlement_point, t) for f in facilities] for t in t_s]
    )
    ambient = ambient_table(scenario)[:n_total]
    pue_mining = np.column_stack(
        [
            pue(f.pue.mining, f.pue.temp_coeff_per_c, f.pue.reference_ambient_c, ambient[:, i])
            for i, f in enumerate(facilities)
        ]
    )
    pue_ai = np.column_stack(
        [
            pue(f.pue.ai, f.pue.temp_coeff_per_c, f.pue.reference_ambient_c, ambient[:, i])
            for i, f in enumerate(facilities)
        ]
    )
    four_cp = np.array([float(grid.is_four_cp(t)) for t in t_s])
    requests = [[grid.curtail_request(f.id, t) for f in facilities] for t in t_s]
    fraction = np.array([[r.fraction for r in row] for row in requests])
    payment = np.array([[r.payment_usd_per_mwh for r in row] for row in requests])
    ancillary_rows = [grid.ancillary_usd_per_mw_h(t) for t in t_s]
    services = sorted(set().union(*ancillary_rows))
    ancillary = {s: np.array([row.get(s, 0.0) for row in ancillary_rows]) for s in services}
    return {
        "price": price,
        "pue_mining": pue_mining,
        "pue_ai": pue_ai,
        "four_cp": four_cp,
        "fraction": fraction,
        "payment": payment,
        **{f"anc:{s}": v for s, v in ancillary.items()},
    }


def _gpu_demand(snapshot, n_steps: int, step_s: float, t0_s: float) -> dict[str, np.ndarray]:
    """Synthetic GPU demand per pool [GPUs], [T, P], peaking in the afternoon."""
    keys = pool_keys(snapshot)
    healthy = np.array(
        [p.count - p.failed for f in snapshot.facilities for p in f.gpu_pools], dtype=float
    )
    hours = (t0_s + np.arange(n_steps) * step_s) / 3600.0
    shape = 1.0 + 0.3 * np.cos(2 * np.pi * (hours - 14.0) / 24.0)
    trainable = np.array([type_id in ("h100_sxm", "h200", "b200") for _, type_id in keys])
    demand = {}
    for use, share in DEMAND_SHARES.items():
        gpus = share * healthy[None, :] * shape[:, None]
        if use == "training":
            gpus = gpus * trainable[None, :]
        demand[use] = np.floor(gpus)
    return demand


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Run the benchmark and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--solves", type=int, default=20)
    parser.add_argument("--horizon-steps", type=int, default=288)
    parser.add_argument("--backend", choices=("highspy", "pyomo"), default="highspy")
    parser.add_argument("--fine-steps", type=int, default=24)
    parser.add_argument("--block-steps", type=int, default=12)
    parser.add_argument(
        "--integer-blocks", type=int, default=1, help="leading blocks with integer miner counts"
    )
    parser.add_argument("--all-integer", action="store_true", help="integer counts in all blocks")
    args = parser.parse_args(argv)

    scenario = load_scenario(ROOT / "scenarios" / "baseline.yaml", {"duration_days": 3})
    twin = build(scenario)
    step_s = float(scenario.dispatch_interval_s)
    tables = _signal_tables(twin, args.horizon_steps + args.solves, step_s)
    contracts = {f.id: f.contract for f in scenario.facilities}
    options = DispatchOptions(
        fine_steps=args.fine_steps,
        block_steps=args.block_steps,
        integer_blocks=None if args.all_integer else args.integer_blocks,
    )
    solver = DispatchSolver(options, backend=args.backend)
    times_ms, inputs_ms, statuses, objectives = [], [], [], []
    previous = None
    for i in range(args.solves):
        t0 = i * step_s
        snapshot = twin.controller.observe(i, t0)
        window = slice(i, i + args.horizon_steps)
        demand = _gpu_demand(snapshot, args.horizon_steps, step_s, t0)
        horizon = HorizonData(
            step_s=step_s,
            price_usd_per_mwh=tables["price"][window],
            hashprice_usd_per_ths_day=np.full(
                args.horizon_steps, snapshot.market.hashprice_usd_per_ths_day
            ),
            pue_mining=tables["pue_mining"][window],
            pue_ai=tables["pue_ai"][window],
            four_cp_probability=tables["four_cp"][window],
            curtail_request_fraction=tables["fraction"][window],
            curtail_payment_usd_per_mwh=tables["payment"][window],
            ancillary_usd_per_mw_h={
                key[4:]: value[window] for key, value in tables.items() if key.startswith("anc:")
            },
            must_serve_gpus=demand["realtime"],
            reserved_gpus=demand["reserved"],
            batch_gpus=demand["batch"],
            training_gpus=demand["training"],
        )
        started = time.perf_counter()
        inputs = inputs_from_snapshot(
            snapshot,
            horizon,
            contracts,
            four_cp_rate_usd_per_kw_year=scenario.grid.four_cp.rate_usd_per_kw_year,
            previous_plan=previous,
        )
        inputs_ms.append((time.perf_counter() - started) * 1000.0)
        started = time.perf_counter()
        result = solver.solve(inputs)
        times_ms.append((time.perf_counter() - started) * 1000.0)
        statuses.append(result.status)
        objectives.append(result.objective_usd)
        previous = result.plan
    figures: dict[str, object] = {
        "backend": args.backend,
        "solves": args.solves,
        "horizon_steps": args.horizon_steps,
        "blocks": int(result.schedule.block_duration_s.size) if result.schedule else None,
        "median_ms": round(float(np.median(times_ms)), 1),
        "p90_ms": round(float(np.percentile(times_ms, 90)), 1),
        "max_ms": round(float(np.max(times_ms)), 1),
        "inputs_median_ms": round(float(np.median(inputs_ms)), 2),
        "integer_blocks": "all" if args.all_integer else args.integer_blocks,
        "statuses": {s: statuses.count(s) for s in sorted(set(statuses))},
        "mean_objective_usd": round(float(np.nanmean(objectives)), 2),
        "target_median_ms": TARGET_MEDIAN_MS,
    }
    print(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
