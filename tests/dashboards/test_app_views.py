"""Streamlit AppTest of the executive, customers and energy pages on saved runs, and the
results and chart functions behind them."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from dashboards import charts, results

from .conftest import APP, RUN_NAMES

RENDER_TIMEOUT_S = 30.0


def _page(script: str) -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=RENDER_TIMEOUT_S).run()
    app.switch_page(script).run()
    return app


def _charts(app: AppTest) -> set[str]:
    return {str(element.key) for element in app.get("plotly_chart")}


def _metrics(app: AppTest) -> dict[str, str]:
    return {str(m.label): str(m.value) for m in app.metric}


def test_executive_shows_kpis_and_streams_of_the_chosen_run(dashboard_env: Path) -> None:
    """The executive page offers every saved run, shows net as in kpis.json, utilization,
    and the stream and per-facility charts; switching runs changes the net shown."""
    app = _page("views/executive.py")
    assert not app.exception and not app.error
    assert set(RUN_NAMES) <= set(app.selectbox(key="executive:run").options)
    shown = {}
    for run in RUN_NAMES:
        app.selectbox(key="executive:run").set_value(run).run()
        assert not app.exception
        assert {"chart:streams", "chart:facility_net"} <= _charts(app)
        kpis = results.read_kpis(dashboard_env / run)
        metrics = _metrics(app)
        assert metrics["net"] == f"{kpis['net_usd']:,.0f} USD"
        assert metrics["GPU utilization"] == f"{kpis['utilization']['gpu']:.1%}"
        shown[run] = metrics["net"]
    assert shown[RUN_NAMES[0]] != shown[RUN_NAMES[1]]


def test_customers_table_matches_the_jobs_of_the_run(dashboard_env: Path) -> None:
    """The customers page lists one row per customer of jobs.parquet with the bills summing
    to the workload revenue, and its bar chart follows the column chosen."""
    app = _page("views/customers.py")
    assert not app.exception and not app.error
    app.selectbox(key="customers:run").set_value(RUN_NAMES[0]).run()
    jobs = results.read_jobs(dashboard_env / RUN_NAMES[0])
    table = app.dataframe[0].value
    assert set(table.index) == set(jobs["customer"])
    assert math.isclose(table["billed_usd"].sum(), jobs["revenue_usd"].sum(), rel_tol=1e-9)
    assert "chart:customers" in _charts(app)
    app.selectbox(key="customers:column").set_value("sla_met_fraction").run()
    assert not app.exception
    figure = app.get("plotly_chart")[0].proto.spec
    assert "SLA met per customer" in figure


def test_energy_shows_power_by_use_pue_and_4cp(dashboard_env: Path) -> None:
    """The energy page shows consumption equal to the run's kpis.json energy, the power
    by use, PUE and curtailment charts, and renders for one facility too."""
    app = _page("views/energy.py")
    assert not app.exception and not app.error
    app.selectbox(key="energy:run").set_value(RUN_NAMES[0]).run()
    kpis = results.read_kpis(dashboard_env / RUN_NAMES[0])
    assert _metrics(app)["energy"] == f"{kpis['energy_mwh']:,.1f} MWh"
    assert _charts(app) == {"chart:power_by_use", "chart:pue", "chart:curtailment"}
    facility = app.selectbox(key="energy:facility").options[1]
    app.selectbox(key="energy:facility").set_value(facility).run()
    assert not app.exception and not app.error


def test_customer_table_sums_and_sla_fraction() -> None:
    """customer_table counts workloads, GPU-hours (served s x GPUs / 3600) and bills per
    customer, and the SLA fraction ignores workloads without an outcome."""
    jobs = pd.DataFrame(
        {
            "customer": ["a", "a", "b"],
            "type": ["model_training"] * 3,
            "status": ["completed", "queued", "completed"],
            "gpus": [8, 8, 2],
            "served_s": [3600.0, 0.0, 1800.0],
            "wait_s": [10.0, None, 0.0],
            "sla_met": [True, None, False],
            "revenue_usd": [100.0, 0.0, 5.0],
        }
    )
    table = results.customer_table(jobs)
    assert list(table.index) == ["a", "b"]
    assert table.loc["a", "workloads"] == 2 and table.loc["a", "completed"] == 1
    assert table.loc["a", "gpu_hours"] == 8.0 and table.loc["b", "gpu_hours"] == 1.0
    assert table.loc["a", "sla_met_fraction"] == 1.0 and table.loc["b", "sla_met_fraction"] == 0


def test_executive_kpis_ratios_and_missing_values() -> None:
    """executive_kpis divides net by revenue and energy, and gives None, not an error,
    for a zero denominator or a missing KPI."""
    kpis = {"net_usd": 50.0, "revenue_usd": {"total": 200.0}, "energy_mwh": 0.0}
    headline = results.executive_kpis(kpis)
    assert headline["margin_fraction"] == 0.25
    assert headline["net_per_mwh_usd"] is None
    assert headline["gpu_utilization_fraction"] is None


def test_flagged_4cp_spans_are_shaded() -> None:
    """power_by_use_figure shades one rectangle per run of consecutive 4CP intervals."""
    time = pd.date_range("2025-08-01", periods=6, freq="5min", tz="UTC")
    flags = pd.DataFrame({"t_s": range(6), "time": time, "value": [0, 1, 1, 0, 1, 0]})
    power = flags.assign(value=1.0)
    figure = charts.power_by_use_figure({"power_mining_mw": power}, flags)
    assert len(figure.layout.shapes) == 2
    assert pd.Timestamp(figure.layout.shapes[0].x1) == time[3]
