"""Streamlit AppTest of the policy lab: saved and new backtests, forecast skill."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from streamlit.testing.v1 import AppTest

from dashboards import results

from .conftest import APP, BACKTEST_NAME

RENDER_TIMEOUT_S = 30.0
RUN_TIMEOUT_S = 90.0
BACKTEST_CHARTS = {
    "chart:regret",
    "chart:net",
    "chart:cumulative",
    "chart:price_curtailment",
    "chart:day",
}
DAM_FILE = "ercot_dam_spp_hub_lz_hourly_2021_2023.csv"


def _policy_lab() -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=RENDER_TIMEOUT_S).run()
    app.switch_page("views/policy_lab.py").run()
    return app


def _texts(elements: object) -> list[str]:
    return [str(element.value) for element in elements]  # type: ignore[attr-defined]


def _charts(app: AppTest) -> set[str]:
    return {str(element.key) for element in app.get("plotly_chart")}


def test_saved_backtest_shows_regret_scatter_and_day(dashboard_env: Path) -> None:
    """A saved backtest with the oracle shows its KPI table with regret, the regret,
    net, cumulative, price-vs-curtailment and one-day charts; the day offered first is
    the one where the policies' daily nets differ most."""
    app = _policy_lab()
    assert not app.exception and not app.error
    assert _texts(app.title) == ["Policy lab"]
    assert app.selectbox(key="policy_lab:backtest").value == BACKTEST_NAME
    table = app.dataframe[0].value
    assert list(table.index) == ["always_on", "strike", "oracle"]
    assert table.loc["oracle", "regret_usd"] == 0
    assert _charts(app) == BACKTEST_CHARTS
    folder = dashboard_env / BACKTEST_NAME
    summary = results.read_backtest_summary(folder)
    fleet = results.policy_fleet(results.read_backtest_series(folder, summary))
    widest = results.largest_spread_day(fleet, summary["window"]["time_zone"])
    assert app.selectbox(key=f"policy_lab:day:{folder}").value == widest
    app.multiselect(key="policy_lab:scatter_policies").set_value(["oracle"]).run()
    assert not app.exception and "chart:price_curtailment" in _charts(app)


def test_new_backtest_runs_with_progress_and_opens(dashboard_env: Path) -> None:
    """Running always_on and strike on the small scenario writes backtest.json, selects
    the new folder and says regret needs the oracle."""
    app = _policy_lab()
    app.radio(key="policy_lab:source").set_value("Run a new backtest").run()
    app.selectbox(key="policy_lab:scenario").set_value("small.yaml")
    app.multiselect(key="policy_lab:policies").set_value(["always_on", "strike"])
    app.text_input(key="policy_lab:out").set_value("lab-backtest")
    app.run()
    app.button(key="policy_lab:run").click().run(timeout=RUN_TIMEOUT_S)
    assert not app.exception and not app.error
    assert app.get("progress")
    summary = json.loads((dashboard_env / "lab-backtest" / "backtest.json").read_text())
    assert list(summary["policies"]) == ["always_on", "strike"]
    assert app.selectbox(key="policy_lab:backtest").value == "lab-backtest"
    assert any("Regret needs the oracle" in text for text in _texts(app.info))
    assert "chart:regret" not in _charts(app) and "chart:day" in _charts(app)


def test_a_failed_backtest_shows_its_error(dashboard_env: Path) -> None:
    """Dates the price file does not cover end in the backtest's own message naming the
    option, no exception."""
    app = _policy_lab()
    app.radio(key="policy_lab:source").set_value("Run a new backtest").run()
    app.selectbox(key="policy_lab:scenario").set_value("small.yaml")
    app.selectbox(key="policy_lab:prices").set_value(DAM_FILE)
    app.date_input(key="policy_lab:start").set_value(date(2030, 1, 1))
    app.date_input(key="policy_lab:end").set_value(date(2030, 1, 2))
    app.text_input(key="policy_lab:out").set_value("lab-bad-backtest")
    app.run()
    app.button(key="policy_lab:run").click().run(timeout=RUN_TIMEOUT_S)
    assert not app.exception
    errors = _texts(app.error)
    assert len(errors) == 1 and errors[0].startswith("Backtest failed: --prices")
    assert "is not covered" in errors[0]


def test_forecast_skill_evaluates_and_shows_paths(dashboard_env: Path) -> None:
    """One day of hourly origins on real day-ahead prices gives skill per lead time for
    the learned model and persistence, and the forecasts from a chosen origin."""
    app = _policy_lab()
    app.radio(key="policy_lab:view").set_value("Forecast skill").run()
    assert not app.exception and not app.error
    app.selectbox(key="policy_lab:fc_file").set_value(DAM_FILE).run()
    app.date_input(key=f"policy_lab:fc_start:{DAM_FILE}").set_value(date(2023, 8, 1))
    app.number_input(key="policy_lab:fc_days").set_value(1)
    app.run()
    app.button(key="policy_lab:fc_run").click().run(timeout=RUN_TIMEOUT_S)
    assert not app.exception and not app.error
    skill = app.dataframe[0].value
    assert list(skill.columns) == ["boosted", "persistence"]
    assert list(skill.index) == ["15 min", "1 h", "4 h", "24 h"]
    assert _charts(app) == {"chart:skill", "chart:paths"}
    app.select_slider(key="policy_lab:fc_origin").set_value(5).run()
    assert not app.exception and "chart:paths" in _charts(app)


def test_forecast_over_a_gap_in_the_file_shows_its_error(dashboard_env: Path) -> None:
    """Origins whose history falls in a gap of the file name the gap."""
    app = _policy_lab()
    app.radio(key="policy_lab:view").set_value("Forecast skill").run()
    rtm = "ercot_rtm_spp_hub_lz_15min_january_2022_2023.csv"
    app.selectbox(key="policy_lab:fc_file").set_value(rtm).run()
    app.date_input(key=f"policy_lab:fc_start:{rtm}").set_value(date(2023, 1, 2))
    app.run()
    app.button(key="policy_lab:fc_run").click().run(timeout=RUN_TIMEOUT_S)
    assert not app.exception
    errors = _texts(app.error)
    assert len(errors) == 1 and "no data from" in errors[0]
