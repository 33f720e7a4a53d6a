"""Forecast skill on real ERCOT prices: the boosted forecaster against seasonal naive.

Two cases, both on the 300 s dispatch grid the twin uses (hourly and 15-min prices are held
over their interval, as the twin replays them):

* ``dam_hb_west_aug2023``: day-ahead hourly HB_WEST, origins every hour through August 2023
  (heat-wave spikes to 4,207 USD/MWh);
* ``rtm_hb_north_jan2023``: real-time 15-min HB_NORTH, origins every hour from 2023-01-10
  to the end of January 2023 (the file has January 2022 and January 2023 only).

Two ways to train, each case: ``fixed`` trains once on data before the evaluation (before
2023-07-01 for the DAM case; January 2022 for the RTM case) and never again; ``rolling``
refits every simulated day on the trailing window before the origin (what a rolling
policy does; for RTM the window grows through January 2023). Every forecast sees only
values before its origin. Persistence (hold the last value) is shown as a second reference.

Prints a JSON document and a markdown table per case; ``--json``/``--markdown`` also write
them to files. Usage: python benchmarks/forecast_skill.py [--json F] [--markdown F]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from datasets.replay import epoch_seconds, grid_epoch_seconds, interval_means  # noqa: E402
from datasets.sources import load_price_table  # noqa: E402
from optimizer.forecast import (  # noqa: E402
    DAY_S,
    DEFAULT_HORIZONS_S,
    BacktestResult,
    BoostedForecaster,
    Calendar,
    FittedForecaster,
    History,
    Persistence,
    backtest,
)

STEP_S = 300.0
CPT = ZoneInfo("America/Chicago")
DAM_FILE = "datasets/real/ercot_dam_spp_hub_lz_hourly_2021_2023.csv"
RTM_FILE = "datasets/real/ercot_rtm_spp_hub_lz_15min_january_2022_2023.csv"


@dataclass(frozen=True)
class Case:
    """One evaluation: a price column, the grid it is put on, where evaluation starts and
    where the fixed model's training data comes from (a separate grid when ``train_*``)."""

    name: str
    file: str
    column: str
    grid_start: datetime
    grid_end: datetime
    eval_start: datetime
    train_start: datetime
    train_end: datetime


CASES = (
    Case(
        "dam_hb_west_aug2023",
        DAM_FILE,
        "HB_WEST",
        grid_start=datetime(2023, 5, 1, tzinfo=CPT),
        grid_end=datetime(2023, 9, 1, tzinfo=CPT),
        eval_start=datetime(2023, 8, 1, tzinfo=CPT),
        train_start=datetime(2023, 5, 6, tzinfo=CPT),
        train_end=datetime(2023, 7, 1, tzinfo=CPT),
    ),
    Case(
        "rtm_hb_north_jan2023",
        RTM_FILE,
        "HB_NORTH",
        grid_start=datetime(2023, 1, 1, tzinfo=CPT),
        grid_end=datetime(2023, 2, 1, tzinfo=CPT),
        eval_start=datetime(2023, 1, 10, tzinfo=CPT),
        train_start=datetime(2022, 1, 1, tzinfo=CPT),
        train_end=datetime(2022, 2, 1, tzinfo=CPT),
    ),
)


class Prefitted:
    """A method whose ``fit`` returns a model trained beforehand (the ``fixed`` variant)."""

    def __init__(self, model: FittedForecaster) -> None:
        self.model = model

    @property
    def name(self) -> str:
        return f"{self.model.name}_fixed"

    def fit(self, history: History) -> FittedForecaster:
        return self.model


def grid_values(file: str, column: str, start: datetime, end: datetime) -> np.ndarray:
    """Prices of ``column`` on the 300 s grid over ``[start, end)`` [USD/MWh]."""
    table = load_price_table(file)
    n_steps = round((end - start).total_seconds() / STEP_S)
    grid_s = grid_epoch_seconds(start, n_steps, STEP_S)
    starts_s = epoch_seconds(pd.DatetimeIndex(table.frame.index))
    values = table.frame[column].to_numpy(dtype=float)
    return interval_means(starts_s, values, table.interval_s, grid_s, STEP_S, f"{file} {column}")


def run_case(case: Case) -> dict[str, Any]:
    """Backtests of the fixed and rolling boosted model, seasonal naive and persistence."""
    series = grid_values(case.file, case.column, case.grid_start, case.grid_end)
    calendar = Calendar.from_start(case.grid_start)
    first_origin = int((case.eval_start - case.grid_start).total_seconds() / STEP_S)
    origin_every = int(3600 / STEP_S)

    train_values = grid_values(case.file, case.column, case.train_start, case.train_end)
    train_t_end_s = (case.train_end - case.grid_start).total_seconds()
    train_history = History(train_values, train_t_end_s, STEP_S, calendar, case.column)
    t_fit = time.perf_counter()
    fixed_model = BoostedForecaster().fit(train_history)
    fit_s = time.perf_counter() - t_fit

    runs: dict[str, BacktestResult] = {}
    wall: dict[str, float] = {}
    for label, method in (
        ("fixed", Prefitted(fixed_model)),
        ("rolling", BoostedForecaster()),
        ("persistence", Persistence()),
    ):
        t0 = time.perf_counter()
        runs[label] = backtest(
            series,
            STEP_S,
            calendar,
            method,
            first_origin=first_origin,
            origin_every=origin_every,
            name=case.column,
        )
        wall[label] = time.perf_counter() - t0

    predict_ms = _predict_ms(fixed_model, series, first_origin, calendar, case.column)
    rows = []
    for horizon_s in DEFAULT_HORIZONS_S:
        rows.append(_row(_label(horizon_s), {k: r.score(horizon_s) for k, r in runs.items()}))
    rows.append(_row("all leads 0-24 h", {k: r.score_all_leads() for k, r in runs.items()}))
    evaluated = series[first_origin:]
    return {
        "case": case.name,
        "file": case.file,
        "column": case.column,
        "step_s": STEP_S,
        "origins": int(runs["fixed"].origins_s.size),
        "evaluation_mean_usd_per_mwh": round(float(evaluated.mean()), 2),
        "evaluation_max_usd_per_mwh": round(float(evaluated.max()), 2),
        "fixed_trained_on": f"{case.train_start.date()} .. {case.train_end.date()} (excl.)",
        "rolling_fallbacks": runs["rolling"].fallbacks,
        "timing": {
            "fit_s": round(fit_s, 3),
            "predict_288_steps_ms": round(predict_ms, 2),
            "backtest_wall_s": {k: round(v, 1) for k, v in wall.items()},
        },
        "rows": rows,
    }


def _predict_ms(
    model: FittedForecaster, series: np.ndarray, origin: int, calendar: Calendar, name: str
) -> float:
    """Median wall time of one 288-step prediction at ``origin`` [ms]."""
    history = History(series[:origin], origin * STEP_S, STEP_S, calendar, name)
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        model.predict(history, int(DAY_S / STEP_S))
        times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times))


def _label(horizon_s: float) -> str:
    return f"{horizon_s / 60:.0f} min" if horizon_s < 3600 else f"{horizon_s / 3600:.0f} h"


def _row(label: str, scores: dict[str, Any]) -> dict[str, Any]:
    return {
        "horizon": label,
        "mae_seasonal_naive": round(scores["fixed"].mae_baseline, 2),
        "mae_persistence": round(scores["persistence"].mae_model, 2),
        "mae_boosted_fixed": round(scores["fixed"].mae_model, 2),
        "mae_boosted_rolling": round(scores["rolling"].mae_model, 2),
        "skill_fixed": round(scores["fixed"].skill, 3),
        "skill_rolling": round(scores["rolling"].skill, 3),
        "skill_persistence": round(scores["persistence"].skill, 3),
    }


def markdown(result: dict[str, Any]) -> str:
    """One case as a markdown table (MAE in USD/MWh; skill vs seasonal naive)."""
    lines = [
        f"### {result['case']} ({result['column']}, {result['origins']} hourly origins, "
        f"mean {result['evaluation_mean_usd_per_mwh']} / max "
        f"{result['evaluation_max_usd_per_mwh']} USD/MWh)",
        "",
        "| horizon | MAE naive | MAE persistence | MAE boosted fixed | MAE boosted rolling "
        "| skill fixed | skill rolling | skill persistence |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['horizon']} | {row['mae_seasonal_naive']} | {row['mae_persistence']} "
            f"| {row['mae_boosted_fixed']} | {row['mae_boosted_rolling']} "
            f"| {row['skill_fixed']} | {row['skill_rolling']} | {row['skill_persistence']} |"
        )
    timing = result["timing"]
    lines.append("")
    lines.append(
        f"fit {timing['fit_s']} s, predict 288 steps {timing['predict_288_steps_ms']} ms, "
        f"fixed model trained on {result['fixed_trained_on']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, help="also write the JSON document here")
    parser.add_argument("--markdown", type=Path, help="also write the markdown tables here")
    args = parser.parse_args(argv)
    results = [run_case(case) for case in CASES]
    document = {"benchmark": "forecast_skill", "cases": results}
    text = json.dumps(document, indent=2)
    tables = "\n\n".join(markdown(result) for result in results)
    print(text)
    print()
    print(tables)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(tables + "\n", encoding="utf-8")
    return document


if __name__ == "__main__":
    main()
