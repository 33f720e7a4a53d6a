"""Energy view: consumption, PUE, curtailment and 4CP of one saved run.

KPIs from the time series and ``kpis.json`` (dashboards.results.energy_summary), fleet
power stacked by use with the intervals flagged as likely 4CP peaks shaded, PUE of the
mining and AI halls, curtailed power against the price, and the 4CP intervals as a table.
"""

from __future__ import annotations

import streamlit as st

from dashboards import cache, charts, results
from dashboards.settings import DashboardSettings
from dashboards.widgets import metric_row, pick_run
from twin.recorder import POWER_USE_COLUMNS

RUN_KEY = "energy:run"
FACILITY_KEY = "energy:facility"
SUMMARY = (
    ("energy", "energy_mwh", "{:,.1f} MWh"),
    ("mean power", "mean_power_mw", "{:,.2f} MW"),
    ("peak power", "peak_power_mw", "{:,.2f} MW"),
    ("PUE mining", "pue_mining", "{:.3f}"),
    ("PUE AI", "pue_ai", "{:.3f}"),
)
COSTS = (
    ("curtailed", "curtailment_mwh", "{:,.1f} MWh"),
    ("curtailed hours", "curtailment_h", "{:,.1f} h"),
    ("4CP intervals", "four_cp_intervals", "{:,.0f}"),
    ("energy cost", "energy_cost_usd", "{:,.0f} USD"),
    ("4CP transmission cost", "transmission_4cp_cost_usd", "{:,.0f} USD"),
)


def main() -> None:
    """Pick a run (and optionally one facility) and show its energy figures."""
    settings = DashboardSettings.from_env()
    st.title("Energy")
    run = pick_run(settings.results_dir, RUN_KEY)
    if run is None:
        return
    try:
        kpis = cache.kpis(run.path)
        frame = cache.timeseries(run.path, results.ENERGY_COLUMNS)
    except results.ResultsError as error:
        st.error(str(error))
        return
    facility = st.selectbox(
        "Facility", [results.ALL_FACILITIES, *results.facility_ids(frame)], key=FACILITY_KEY
    )
    if facility != results.ALL_FACILITIES:
        frame = frame[frame["facility_id"] == facility]
    interval_s = results.dispatch_interval_s(frame)
    if facility != results.ALL_FACILITIES:  # kpis.json has curtailment for the fleet only
        interval_h = interval_s / 3600.0
        curtailed = frame["curtailed_mw"].fillna(0.0)
        kpis = {
            "curtailment": {
                "mwh": float(curtailed.sum()) * interval_h,
                "hours": float((curtailed > 0).sum()) * interval_h,
            }
        }
    summary = results.energy_summary(frame, kpis, interval_s)
    metric_row(summary, SUMMARY)
    metric_row(summary, COSTS)
    four_cp = results.fleet_series(frame, "four_cp")
    by_use = {column: results.fleet_series(frame, column) for column in POWER_USE_COLUMNS}
    st.plotly_chart(charts.power_by_use_figure(by_use, four_cp), key="chart:power_by_use")
    left, right = st.columns(2)
    pue = {
        "mining": results.fleet_series(frame, "pue_mining"),
        "AI": results.fleet_series(frame, "pue_ai"),
    }
    left.plotly_chart(charts.series_lines_figure(pue, "PUE", "PUE [-]"), key="chart:pue")
    curtailed = {
        "curtailed power [MW]": results.fleet_series(frame, "curtailed_mw"),
        "price [USD/MWh]": results.fleet_series(frame, "price_usd_per_mwh"),
    }
    right.plotly_chart(
        charts.series_lines_figure(curtailed, "Curtailment and price", "MW / USD/MWh"),
        key="chart:curtailment",
    )
    st.subheader("4CP intervals")
    intervals = results.four_cp_intervals(frame)
    if intervals.empty:
        st.info("No interval of this run was flagged as a likely 4CP peak.")
    else:
        st.dataframe(intervals, key="table:four_cp")


main()
