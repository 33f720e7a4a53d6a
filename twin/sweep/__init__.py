"""Parameter sweeps and Monte Carlo over seeds, locally or on Dask distributed.

``python run.py sweep SCENARIO --grid PATH=V1,V2 --seeds N`` (twin.cli_sweep) runs every
grid point (twin.sweep.grid) with N seeds (twin.sweep.plan), skips runs finished before
(twin.sweep.store), runs the rest (twin.sweep.execute) and writes ``sweep.parquet``,
``summary.md`` and ``sweep.html`` (twin.sweep.aggregate, twin.sweep.plots) — all driven by
:func:`twin.sweep.runner.run_sweep`.
"""

from twin.sweep.aggregate import SUMMARY_KPIS, flatten, percentile_table, results_frame
from twin.sweep.execute import DaskExecutor, RunOutcome, SerialExecutor, simulate_run
from twin.sweep.grid import GridAxis, SweepInputError, parse_grid_args
from twin.sweep.plan import RunSpec, SweepPlan, build_plan
from twin.sweep.runner import SweepResult, run_sweep
from twin.sweep.store import RunStore

__all__ = [
    "SUMMARY_KPIS",
    "DaskExecutor",
    "GridAxis",
    "RunOutcome",
    "RunSpec",
    "RunStore",
    "SerialExecutor",
    "SweepInputError",
    "SweepPlan",
    "SweepResult",
    "build_plan",
    "flatten",
    "parse_grid_args",
    "percentile_table",
    "results_frame",
    "run_sweep",
    "simulate_run",
]
