"""Policy lab (engineers): backtests of dispatch policies and the skill of price forecasts.

"Backtests": run policies on one world (a scenario, optionally on a real ERCOT price file
over chosen dates) or open a saved backtest folder; see net, regret against the
perfect-foresight oracle, cumulative net, curtailed power against price, and drill into
one day at full resolution. "Forecast skill": evaluate the model-predictive policy's price
forecaster against seasonal naive and persistence on real prices, by lead time, and look
at the forecasts from any origin.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from dashboards import cache, charts, results, runner
from dashboards.scenario_files import list_scenarios
from dashboards.settings import DashboardSettings
from datasets.errors import DataFileError
from datasets.sources import load_price_table
from twin.backtest import KNOWN_POLICIES, PRICE_FORMATS
from twin.scenario import PROJECT_ROOT, LookAheadPolicy

LOGGER = logging.getLogger(__name__)
VIEWS = ("Backtests", "Forecast skill")
SOURCES = ("Saved backtest", "Run a new backtest")
BACKTEST_KEY = "policy_lab:backtest"
FORECAST_KEY = "policy_lab:forecast_result"
SCENARIO_PRICES = "the scenario's own prices"
REAL_DATA_DIR = PROJECT_ROOT / "datasets" / "real"
DEFAULT_POLICIES = ("always_on", "strike", "greedy")
DEFAULT_ZONE = "America/Chicago"
DEFAULT_HISTORY_DAYS = round(LookAheadPolicy.model_fields["training_window_days"].default)


def price_files() -> list[Path]:
    """ERCOT settlement point price files bundled under datasets/real."""
    return sorted(REAL_DATA_DIR.glob("ercot_*spp*.csv"))


def backtests(settings: DashboardSettings) -> None:
    """Run or open a backtest, then show it."""
    source = st.radio("Source", SOURCES, horizontal=True, key="policy_lab:source")
    if source == SOURCES[1]:
        _new_backtest(settings)
    saved = results.list_backtests(settings.results_dir)
    if not saved:
        st.info(
            f"No backtests under {settings.results_dir} yet: run one here or with "
            "`python run.py backtest`."
        )
        return
    names = [folder.name for folder in saved]
    if st.session_state.get(BACKTEST_KEY) not in names:
        st.session_state[BACKTEST_KEY] = names[0]
    chosen = st.selectbox("Backtest folder", names, key=BACKTEST_KEY)
    show_backtest(saved[names.index(str(chosen))].path)


def _new_backtest(settings: DashboardSettings) -> None:
    scenarios = list_scenarios(settings.scenarios_dir)
    if not scenarios:
        st.warning(f"No scenario files in {settings.scenarios_dir}.")
        return
    with st.container(border=True):
        names = [p.name for p in scenarios]
        top = st.columns(2)
        scenario_name = top[0].selectbox(
            "Scenario",
            names,
            index=names.index("baseline.yaml") if "baseline.yaml" in names else 0,
            key="policy_lab:scenario",
        )
        policies = top[1].multiselect(
            "Policies",
            KNOWN_POLICIES,
            default=list(DEFAULT_POLICIES),
            key="policy_lab:policies",
            help="Regret needs the oracle. mpc and oracle solve a MILP: about 10-20 s per "
            "simulated day each; the others about 1 s.",
        )
        files = price_files()
        middle = st.columns(2)
        prices = middle[0].selectbox(
            "Prices",
            [SCENARIO_PRICES, *(f.name for f in files)],
            key="policy_lab:prices",
        )
        point = (
            middle[1]
            .text_input(
                "Settlement point for every facility (optional)",
                key="policy_lab:settlement_point",
                placeholder="HB_WEST",
            )
            .strip()
        )
        bottom = st.columns(3)
        start = bottom[0].date_input("First day (optional)", value=None, key="policy_lab:start")
        end = bottom[1].date_input(
            "Day after the last (optional)", value=None, key="policy_lab:end"
        )
        stem = Path(str(scenario_name)).stem
        out_name = (
            bottom[2]
            .text_input("Results folder", key="policy_lab:out", placeholder=f"{stem}-backtest")
            .strip()
            or f"{stem}-backtest"
        )
        if not st.button("Run backtest", type="primary", key="policy_lab:run"):
            return
        if not policies:
            st.error("Choose at least one policy.")
            return
        bar = st.progress(0.0, text="preparing the scenario")
        try:
            out_dir = runner.backtest(
                scenarios[names.index(str(scenario_name))],
                [str(p) for p in policies],
                runner.run_folder(settings.results_dir, out_name),
                lambda fraction, text: bar.progress(fraction, text=text),
                prices_file=None if prices == SCENARIO_PRICES else REAL_DATA_DIR / str(prices),
                settlement_point=point or None,
                start=start if isinstance(start, date) else None,
                end=end if isinstance(end, date) else None,
            )
        except Exception as error:  # a UI boundary: show the message, log the traceback
            LOGGER.exception("backtest %s failed", out_name)
            bar.empty()
            st.error(f"Backtest failed: {runner.failure_message(error)}")
            return
        bar.progress(1.0, text="done")
        st.success(f"Backtest written to {out_dir}")
        st.session_state[BACKTEST_KEY] = out_dir.relative_to(settings.results_dir).as_posix()


def show_backtest(folder: Path) -> None:
    """KPI table, regret, cumulative net, price vs curtailment and a day drill-down."""
    try:
        summary = cache.backtest_summary(folder)
        series = cache.backtest_series(folder)
    except results.ResultsError as error:
        st.error(str(error))
        return
    window = summary.get("window", {})
    time_zone = str(window.get("time_zone", DEFAULT_ZONE))
    source = summary.get("prices", {})
    price_text = source.get("file") or source.get("kind", "?")
    st.caption(
        f"{summary['scenario']['name']} · {window.get('start', '?')} to {window.get('end', '?')}"
        f" · prices: {price_text} · best: {summary.get('best_policy')}"
    )
    table = results.backtest_table(summary)
    st.dataframe(
        table,
        column_config={c: st.column_config.NumberColumn(format="localized") for c in table},
    )
    left, right = st.columns(2)
    with left:
        if table["regret_usd"].notna().any():
            st.plotly_chart(
                charts.policy_bar_figure(table, "regret_usd", "Regret against the oracle"),
                key="chart:regret",
            )
        else:
            st.info("Regret needs the oracle: run the backtest with the oracle policy too.")
    with right:
        st.plotly_chart(
            charts.policy_bar_figure(table, "net_usd", "Net revenue per policy"), key="chart:net"
        )
    fleet = results.policy_fleet(series)
    st.plotly_chart(charts.cumulative_net_figure(fleet), key="chart:cumulative")
    shown = st.multiselect(
        "Policies in the scatter",
        list(table.index),
        default=list(table.index),
        key="policy_lab:scatter_policies",
    )
    st.plotly_chart(
        charts.price_curtailment_figure(series[series["policy"].isin(shown)]),
        key="chart:price_curtailment",
    )

    st.subheader("One day")
    days = results.local_days(fleet, time_zone)
    if not days:
        st.info("No intervals recorded.")
        return
    widest = results.largest_spread_day(fleet, time_zone)
    day = st.selectbox(
        f"Day ({time_zone}); preselected: where the policies' daily nets differ most",
        days,
        index=days.index(widest) if widest in days else 0,
        key=f"policy_lab:day:{folder}",
    )
    rows = results.day_rows(fleet, str(day), time_zone)
    st.plotly_chart(charts.day_figure(rows, f"{day}: mining power, price and net"), key="chart:day")
    day_net = rows.groupby("policy", sort=False)["net_usd"].sum().rename("net of the day [USD]")
    st.dataframe(
        day_net.to_frame(),
        column_config={day_net.name: st.column_config.NumberColumn(format="localized")},
    )


def forecast_skill() -> None:
    """Evaluate the price forecaster on a real ERCOT file and show its skill."""
    files = price_files()
    if not files:
        st.warning(f"No ERCOT price files in {REAL_DATA_DIR}.")
        return
    top = st.columns(2)
    file_name = top[0].selectbox("Price file", [f.name for f in files], key="policy_lab:fc_file")
    path = REAL_DATA_DIR / str(file_name)
    try:
        table = load_price_table(path)
    except DataFileError as error:
        st.error(str(error))
        return
    if table.kind not in PRICE_FORMATS:
        st.error(f"{path.name}: not an energy price file")
        return
    columns = table.columns
    point = top[1].selectbox(
        "Settlement point",
        columns,
        index=columns.index("HB_WEST") if "HB_WEST" in columns else 0,
        key="policy_lab:fc_point",
    )
    first_day = table.covered_start.tz_convert(DEFAULT_ZONE).date()
    last_day = table.covered_end.tz_convert(DEFAULT_ZONE).date()
    controls = st.columns(4)
    history_days = int(
        controls[2].number_input(
            "History before the first origin [days]",
            min_value=8,
            max_value=90,
            value=DEFAULT_HISTORY_DAYS,
            key="policy_lab:fc_history",
            help="The learned model needs more than a week of history; the mpc policy "
            f"trains on {DEFAULT_HISTORY_DAYS} days by default.",
        )
    )
    default_start = min(first_day + timedelta(days=history_days + 1), last_day)
    start = controls[0].date_input(
        "First origin day",
        value=default_start,
        min_value=first_day,
        max_value=last_day,
        key=f"policy_lab:fc_start:{file_name}",
    )
    eval_days = int(
        controls[1].number_input(
            "Days of origins", min_value=1, max_value=31, value=2, key="policy_lab:fc_days"
        )
    )
    every_h = int(
        controls[3].number_input(
            "Origin every [h]", min_value=1, max_value=24, value=1, key="policy_lab:fc_every"
        )
    )
    st.caption(
        f"{path.name}: {PRICE_FORMATS[table.kind]}, {first_day} to {last_day}. Each origin "
        "forecasts 24 h ahead from the prices before it only; the learned model is refitted "
        "daily. About 1 s per day of origins."
    )
    first_origin = start if isinstance(start, date) else default_start
    if st.button("Evaluate forecasts", type="primary", key="policy_lab:fc_run"):
        try:
            with st.spinner("fitting and forecasting"):
                evaluation = runner.forecast_skill(
                    path,
                    str(point),
                    first_origin,
                    eval_days,
                    history_days=history_days,
                    origin_every_h=every_h,
                )
        except Exception as error:  # a UI boundary: show the message, log the traceback
            LOGGER.exception("forecast evaluation failed")
            st.session_state.pop(FORECAST_KEY, None)
            st.error(f"Evaluation failed: {runner.failure_message(error)}")
            return
        label = f"{path.name} {point}, {eval_days} day(s) of origins from {first_origin}"
        st.session_state[FORECAST_KEY] = (label, evaluation)
    shown = st.session_state.get(FORECAST_KEY)
    if shown is not None:
        _show_forecast_skill(*shown)


def _show_forecast_skill(label: str, evaluation: runner.ForecastSkill) -> None:
    st.markdown(f"**Skill on {label}**")
    scores = evaluation.scores
    st.dataframe(
        scores.pivot_table(index="horizon", columns="method", values="skill", sort=False),
        column_config={"horizon": "lead time"},
    )
    st.plotly_chart(charts.skill_figure(scores), key="chart:skill")
    if evaluation.fallbacks:
        st.caption(
            f"The learned model fell back to seasonal naive at {evaluation.fallbacks} origins."
        )
    origins = evaluation.origin_times
    index = st.select_slider(
        "Forecast origin",
        options=list(range(len(origins))),
        value=0,
        format_func=lambda i: origins[i].strftime("%Y-%m-%d %H:%M %Z"),
        key="policy_lab:fc_origin",
    )
    steps = evaluation.actual.shape[1]
    times = pd.date_range(
        origins[index], periods=steps, freq=pd.Timedelta(seconds=evaluation.step_s)
    )
    forecasts = {name: np.asarray(paths[index]) for name, paths in evaluation.paths.items()}
    st.plotly_chart(
        charts.forecast_paths_figure(times, evaluation.actual[index], forecasts), key="chart:paths"
    )


settings = DashboardSettings.from_env()
st.title("Policy lab")
view = st.radio("View", VIEWS, horizontal=True, key="policy_lab:view", label_visibility="collapsed")
if view == VIEWS[0]:
    backtests(settings)
else:
    forecast_skill()
