"""Streamlit AppTest of the scenario lab: renders, edits, runs, saves and compares."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboards.settings import ENV_RESULTS_DIR
from dashboards.widgets import widget_key
from twin.scenario import load_scenario

from .conftest import APP, RUN_NAMES, SMALL_DAYS

RENDER_TIMEOUT_S = 30.0
RUN_TIMEOUT_S = 60.0
PREFIX = "form:small.yaml"


def _app() -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=RENDER_TIMEOUT_S)
    return app.run()


def _texts(elements: object) -> list[str]:
    return [str(element.value) for element in elements]  # type: ignore[attr-defined]


def _charts(app: AppTest) -> set[str]:
    return {str(element.key) for element in app.get("plotly_chart")}


def test_renders_the_schema_form_with_the_real_scenarios(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With the project's scenarios and no results yet, the lab opens on baseline.yaml
    with the generated form (bounded number inputs, blocks in expanders) and the compare
    view says there is nothing to compare."""
    monkeypatch.setenv(ENV_RESULTS_DIR, str(tmp_path))
    app = _app()
    assert not app.exception
    assert _texts(app.title) == ["Scenario lab"]
    assert app.selectbox(key="scenario_lab:file").value == "baseline.yaml"
    duration = app.number_input(key="form:baseline.yaml:duration_days")
    assert duration.value == 7.0 and duration.max == 3660.0
    assert len(app.number_input) > 50
    labels = [str(e.label) for e in app.expander]
    assert any(label.startswith("facilities[west-mine]") for label in labels)
    assert any(label.startswith("policy (strike)") for label in labels)
    assert app.button(key="scenario_lab:run").label == "Run 7 simulated days"
    app.radio(key="scenario_lab:view").set_value("Compare runs").run()
    assert not app.exception
    assert any("No saved runs" in text for text in _texts(app.info))


def test_an_edited_run_completes_with_progress(dashboard_env: Path) -> None:
    """Halving the duration in the form shows the --set line, runs with a progress bar,
    writes the run folder and puts the run first in the comparison."""
    app = _app()
    assert app.selectbox(key="scenario_lab:file").value == "small.yaml"
    app.number_input(key=f"{PREFIX}:duration_days").set_value(SMALL_DAYS / 2)
    app.text_input(key="scenario_lab:run_name").set_value("lab-half")
    app.run()
    assert any("--set duration_days=0.125" in text for text in _texts(app.code))
    app.button(key="scenario_lab:run").click().run(timeout=RUN_TIMEOUT_S)
    assert not app.exception and not app.error
    assert any("lab-half" in text for text in _texts(app.success))
    assert app.get("progress")
    kpis = json.loads((dashboard_env / "lab-half" / "kpis.json").read_text())
    assert kpis["sim_days"] == SMALL_DAYS / 2
    app.radio(key="scenario_lab:view").set_value("Compare runs").run()
    assert app.multiselect(key="scenario_lab:compare_runs").value[0] == "lab-half"


def test_invalid_edits_show_the_problem_and_no_run(dashboard_env: Path) -> None:
    """A free-form override breaking the schema is reported with its field; there is
    nothing to run."""
    app = _app()
    app.text_area(key=f"{PREFIX}:free").set_value("facilities[west-mine].power_cap_mw=-1")
    app.run()
    assert not app.exception
    errors = " ".join(_texts(app.error))
    assert "facilities[0].power_cap_mw: must be > 0" in errors
    with pytest.raises(KeyError):
        app.button(key="scenario_lab:run")
    app.text_area(key=f"{PREFIX}:free").set_value("this line has no equals sign")
    app.run()
    assert any("expected PATH=VALUE" in text for text in _texts(app.error))


def test_a_failed_run_shows_its_error_not_a_trace(dashboard_env: Path) -> None:
    """A scenario that validates but cannot run (price history that does not cover its
    dates) ends in an error message, no exception, no results folder."""
    app = _app()
    app.text_area(key=f"{PREFIX}:free").set_value(
        "grid.prices={kind: historical, file: ercot_rtm_spp_hub_lz_15min_january_2022_2023.csv}"
    )
    app.text_input(key="scenario_lab:run_name").set_value("lab-fails")
    app.run()
    assert not app.error
    app.button(key="scenario_lab:run").click().run(timeout=RUN_TIMEOUT_S)
    assert not app.exception
    errors = _texts(app.error)
    assert len(errors) == 1 and errors[0].startswith("Run failed: ")
    assert "Traceback" not in errors[0]
    assert not (dashboard_env / "lab-fails" / "kpis.json").exists()


def test_saves_a_derived_scenario_that_loads(dashboard_env: Path, tmp_path: Path) -> None:
    """Saving writes base: + the edits; the file loads with the edited value."""
    app = _app()
    btc_key = widget_key(PREFIX, "market.btc_price.initial_usd", "synthetic")
    app.number_input(key=btc_key).set_value(59925.0)
    app.text_input(key="scenario_lab:save_name").set_value("small cheap btc")
    app.text_input(key="scenario_lab:save_folder").set_value(str(tmp_path))
    app.run()
    app.button(key="scenario_lab:save").click().run()
    assert not app.exception and not app.error
    saved = tmp_path / "small_cheap_btc.yaml"
    assert saved.is_file()
    scenario = load_scenario(saved)
    assert scenario.name == "small cheap btc"
    assert scenario.market.btc_price.initial_usd == 59925.0  # type: ignore[union-attr]
    assert scenario.duration_days == SMALL_DAYS


def test_compares_runs_with_deltas_and_overlaid_series(dashboard_env: Path) -> None:
    """Two saved runs give a KPI table with a delta column and both charts; changing the
    series and facility redraws without error."""
    app = _app()
    app.radio(key="scenario_lab:view").set_value("Compare runs").run()
    app.multiselect(key="scenario_lab:compare_runs").set_value(list(RUN_NAMES)).run()
    assert not app.exception and not app.error
    table = app.dataframe[0].value
    assert f"Δ {RUN_NAMES[1]}" in table.columns
    assert table.loc["revenue_usd.mining", f"Δ {RUN_NAMES[1]}"] < 0
    assert _charts(app) == {"chart:streams", "chart:overlay"}
    app.selectbox(key="scenario_lab:series").set_value("price_usd_per_mwh")
    app.selectbox(key="scenario_lab:facility").set_value("west-mine")
    app.radio(key="scenario_lab:x_axis").set_value("time").run()
    assert not app.exception and not app.error
    assert "chart:overlay" in _charts(app)


def test_switching_the_policy_shows_its_fields(dashboard_env: Path) -> None:
    """Choosing another policy in the form shows that policy's fields and the whole
    policy block as one override."""
    app = _app()
    app.selectbox(key=widget_key(PREFIX, "policy.name")).set_value("mpc").run()
    assert not app.exception and not app.error
    horizon = app.number_input(key=widget_key(PREFIX, "policy.horizon_h", "mpc"))
    assert horizon.value == 24.0 and horizon.max == 168.0
    assert any("--set 'policy={name: mpc" in text for text in _texts(app.code))
    assert app.button(key="scenario_lab:run")  # the edited scenario validates


def test_every_project_scenario_renders_in_the_form(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each scenario file of the project opens in the form without an error (every
    loaded value fits its widget's bounds and options)."""
    monkeypatch.setenv(ENV_RESULTS_DIR, str(tmp_path))
    app = _app()
    names = app.selectbox(key="scenario_lab:file").options
    assert "baseline.yaml" in names and len(names) >= 2
    for name in names:
        app.selectbox(key="scenario_lab:file").set_value(name).run()
        assert not app.exception, name
        assert not app.error, (name, _texts(app.error))
        assert app.number_input(key=f"form:{name}:duration_days")
