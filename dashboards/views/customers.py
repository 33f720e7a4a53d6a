"""Customer view: usage, bill and SLA per customer of one saved run.

``kpis.json`` carries SLA per workload type and a fairness index, not per customer, so
the per-customer table is built from the run's ``jobs.parquet``
(dashboards.results.customer_table): workloads, GPU-hours served, what each was billed,
SLA met and waits. A bar chart shows one column of it for the largest customers.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboards import cache, charts, results
from dashboards.settings import DashboardSettings
from dashboards.widgets import pick_run
from twin.recorder import JOBS_FILE

RUN_KEY = "customers:run"
COLUMN_KEY = "customers:column"
BAR_COLUMNS = {
    "billed_usd": "Billed per customer",
    "gpu_hours": "GPU-hours served per customer",
    "workloads": "Workloads per customer",
    "sla_met_fraction": "SLA met per customer",
    "wait_p99_s": "p99 wait per customer",
}


@st.cache_data(max_entries=16, show_spinner=False)
def customer_table(run_dir: str, stamp: float) -> pd.DataFrame:
    """The per-customer table of a run, read again only when ``jobs.parquet`` changes."""
    return results.customer_table(results.read_jobs(Path(run_dir)))


def main() -> None:
    """Pick a run and show its customers."""
    settings = DashboardSettings.from_env()
    st.title("Customers")
    run = pick_run(settings.results_dir, RUN_KEY)
    if run is None:
        return
    try:
        kpis = cache.kpis(run.path)
        table = customer_table(str(run.path), cache.file_stamp(run.path / JOBS_FILE))
    except results.ResultsError as error:
        st.error(str(error))
        return
    fairness = kpis.get("fairness", {})
    top = st.columns(4)
    top[0].metric("customers", f"{len(table):,}")
    top[1].metric("billed", f"{table['billed_usd'].sum():,.0f} USD")
    top[2].metric("GPU-hours", f"{table['gpu_hours'].sum():,.0f}")
    jain = fairness.get("jain")
    top[3].metric("fairness (Jain)", "n/a" if jain is None else f"{jain:.3f}")
    column = st.selectbox(
        "Chart", list(BAR_COLUMNS), format_func=BAR_COLUMNS.__getitem__, key=COLUMN_KEY
    )
    ordered = table.sort_values(column, ascending=False, kind="stable")
    st.plotly_chart(
        charts.customer_bar_figure(ordered, column, BAR_COLUMNS[column]), key="chart:customers"
    )
    st.dataframe(table, key="table:customers")
    sla = pd.DataFrame.from_dict(kpis.get("sla", {}), orient="index").rename_axis("workload type")
    if not sla.empty:
        st.subheader("SLA by workload type")
        st.dataframe(sla, key="table:sla")


main()
