"""Executive view: revenue, net, utilization and efficiency of one saved run.

Headline figures from the run's ``kpis.json`` (dashboards.results.executive_kpis), revenue
and cost by stream, and the same per facility. Pick a run folder under the results folder.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import cache, charts, results
from dashboards.settings import DashboardSettings
from dashboards.widgets import metric_row, pick_run

RUN_KEY = "executive:run"
MONEY_KPIS = (
    ("revenue", "revenue_usd", "{:,.0f} USD"),
    ("cost", "cost_usd", "{:,.0f} USD"),
    ("net", "net_usd", "{:,.0f} USD"),
    ("margin", "margin_fraction", "{:.1%}"),
)
EFFICIENCY_KPIS = (
    ("net per day", "net_per_day_usd", "{:,.0f} USD"),
    ("revenue per MWh", "revenue_per_mwh_usd", "{:,.1f} USD"),
    ("net per MWh", "net_per_mwh_usd", "{:,.1f} USD"),
    ("energy", "energy_mwh", "{:,.1f} MWh"),
)
UTILIZATION_KPIS = (
    ("GPU utilization", "gpu_utilization_fraction", "{:.1%}"),
    ("ASIC utilization", "asic_utilization_fraction", "{:.1%}"),
    ("power utilization", "power_utilization_fraction", "{:.1%}"),
)


def main() -> None:
    """Pick a run and show its executive summary."""
    settings = DashboardSettings.from_env()
    st.title("Executive")
    run = pick_run(settings.results_dir, RUN_KEY)
    if run is None:
        return
    try:
        kpis = cache.kpis(run.path)
    except results.ResultsError as error:
        st.error(str(error))
        return
    headline = results.executive_kpis(kpis)
    st.caption(f"{kpis.get('sim_days', 'n/a')} simulated days")
    metric_row(headline, MONEY_KPIS)
    metric_row(headline, EFFICIENCY_KPIS)
    metric_row(headline, UTILIZATION_KPIS)
    streams = results.stream_frame({run.name: kpis})
    left, right = st.columns(2)
    left.plotly_chart(charts.stream_figure(streams), key="chart:streams")
    per_facility = pd.DataFrame.from_dict(kpis.get("per_facility", {}), orient="index")
    if not per_facility.empty and "net_usd" in per_facility.columns:
        right.plotly_chart(
            charts.policy_bar_figure(per_facility, "net_usd", "Net per facility", "facility"),
            key="chart:facility_net",
        )
        st.dataframe(per_facility.rename_axis("facility"), key="table:facilities")
    table = streams.pivot_table(index="stream", columns="kind", values="usd", aggfunc="sum")
    st.dataframe(table, key="table:streams")


main()
