"""Scenario lab (planners): edit a scenario, run it, save it as a what-if, compare runs.

"Edit and run": pick a scenario file, change its parameters in a form generated from the
schema (plus free ``PATH=VALUE`` overrides for lists and deeper fields), run it with a
progress bar into the results folder, or save it as a derived scenario (``base:`` + what
changed). "Compare runs": KPIs of saved runs side by side with deltas against a reference
run, revenue and cost by stream, and any time series overlaid.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import streamlit as st
import yaml

from dashboards import cache, charts, results, runner
from dashboards.scenario_files import (
    DerivedScenarioError,
    complete_document,
    derived_document,
    file_stem,
    list_scenarios,
    write_scenario,
)
from dashboards.scenario_form import (
    FormInputError,
    form_sections,
    overrides_from_form,
    parse_set_lines,
    set_arguments,
)
from dashboards.settings import DashboardSettings
from dashboards.widgets import render_form
from twin.scenario import Scenario, ScenarioError, load_scenario

LOGGER = logging.getLogger(__name__)
COMPARE_KEY = "scenario_lab:compare_runs"
VIEWS = ("Edit and run", "Compare runs")
DEFAULT_SERIES = "power_total_mw"
HEADLINE_KPIS = (
    ("net", "net_usd", "{:,.0f} USD"),
    ("energy", "energy_mwh", "{:,.1f} MWh"),
    ("curtailed", "curtailment.mwh", "{:,.1f} MWh"),
    ("GPU utilization", "utilization.gpu", "{:.1%}"),
)


def edit_and_run(settings: DashboardSettings) -> None:
    """Pick, edit, run and save a scenario."""
    files = list_scenarios(settings.scenarios_dir)
    if not files:
        st.warning(f"No scenario files (*.yaml) in {settings.scenarios_dir}.")
        return
    names = [p.name for p in files]
    default = names.index("baseline.yaml") if "baseline.yaml" in names else 0
    chosen_name = st.selectbox("Scenario file", names, index=default, key="scenario_lab:file")
    scenario_file = files[names.index(str(chosen_name))]
    try:
        scenario = cache.scenario(scenario_file)
    except ScenarioError as error:
        st.error(str(error))
        return
    st.caption(scenario.description or scenario.name)

    prefix = f"form:{scenario_file.name}"
    sections = form_sections(scenario)
    shown, entered = render_form(sections, prefix)
    skipped = [path for section in sections for path in section.skipped]
    free_text = st.text_area(
        "More overrides: one PATH=VALUE per line, as `--set` takes them",
        key=f"{prefix}:free",
        placeholder="facilities[houston-ai].gpus[0].count=3072\ngrid.four_cp.months=[7, 8]",
        help="Fields not in the form: " + ", ".join(skipped),
    )
    try:
        overrides = overrides_from_form(shown, entered) | parse_set_lines(free_text)
    except FormInputError as error:
        st.error(f"More overrides: {error}")
        return
    edited = _validated(scenario_file, overrides)
    if overrides:
        st.code(
            f"python run.py simulate {scenario_file} {set_arguments(overrides)}", language="bash"
        )
    if edited is None:
        return
    _run_section(settings, edited, overrides)
    _save_section(settings, scenario_file, edited, overrides)


def _validated(scenario_file: Path, overrides: dict[str, Any]) -> Scenario | None:
    """The edited scenario, or None after showing why it is invalid."""
    try:
        return load_scenario(scenario_file, overrides)
    except ScenarioError as error:
        st.error(
            "The edited scenario is not valid:\n\n"
            + "\n".join(f"- `{problem}`" for problem in error.problems)
        )
        return None


def _run_section(
    settings: DashboardSettings, scenario: Scenario, overrides: dict[str, Any]
) -> None:
    st.subheader("Run")
    default_name = runner.run_name(scenario.name, overrides)
    name = (
        st.text_input(
            "Run name (results folder)",
            key="scenario_lab:run_name",
            placeholder=default_name,
            help=f"written to {settings.results_dir}/<name>/; empty: {default_name}",
        ).strip()
        or default_name
    )
    days = scenario.duration_days
    if not st.button(f"Run {days:g} simulated days", type="primary", key="scenario_lab:run"):
        return
    bar = st.progress(0.0, text="building the twin")
    try:
        out_dir = runner.run_folder(settings.results_dir, name)
        kpis = runner.simulate(scenario, out_dir, lambda f, text: bar.progress(f, text=text))
    except Exception as error:  # a UI boundary: show the message, log the traceback
        LOGGER.exception("run %s failed", name)
        bar.empty()
        st.error(f"Run failed: {runner.failure_message(error)}")
        return
    bar.progress(1.0, text="done")
    st.success(f"Run `{name}` written to {out_dir}")
    flat = results.flatten_kpis(kpis)
    for column, (label, key, text) in zip(
        st.columns(len(HEADLINE_KPIS)), HEADLINE_KPIS, strict=True
    ):
        value = flat.get(key)
        column.metric(label, "n/a" if value is None else text.format(value))
    selected = list(st.session_state.get(COMPARE_KEY, []))
    st.session_state[COMPARE_KEY] = [name, *[run for run in selected if run != name]]


def _save_section(
    settings: DashboardSettings, scenario_file: Path, edited: Scenario, overrides: dict[str, Any]
) -> None:
    with st.expander("Save as a derived scenario (base: + what changed)"):
        name = st.text_input(
            "Scenario name", value=f"{edited.name}_whatif", key="scenario_lab:save_name"
        ).strip()
        folder = st.text_input(
            "Folder", value=str(settings.scenarios_dir), key="scenario_lab:save_folder"
        ).strip()
        overwrite = st.checkbox("Overwrite an existing file", key="scenario_lab:overwrite")
        if not st.button("Save scenario", key="scenario_lab:save"):
            return
        changes = {k: v for k, v in overrides.items() if k != "name"}
        note = ""
        try:
            out_file = Path(folder).expanduser() / f"{file_stem(name)}.yaml"
            try:
                document = derived_document(scenario_file, changes, name=name, out_file=out_file)
            except DerivedScenarioError as error:
                note = f" as a complete scenario: {error}"
                document = complete_document(scenario_file, changes, name=name)
            write_scenario(document, out_file, overwrite=overwrite)
        except (ScenarioError, DerivedScenarioError, OSError) as error:
            st.error(f"Not saved: {error}")
            return
        st.success(f"Saved {out_file}{note}")
        st.code(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), language="yaml")


def compare_runs(settings: DashboardSettings) -> None:
    """KPI table with deltas, revenue/cost by stream and overlaid series of saved runs."""
    runs = results.list_runs(settings.results_dir)
    if not runs:
        st.info(
            f"No saved runs under {settings.results_dir} yet: run a scenario in "
            "'Edit and run' or with `python run.py simulate`."
        )
        return
    by_name = {run.name: run for run in runs}
    kept = [name for name in st.session_state.get(COMPARE_KEY, []) if name in by_name]
    st.session_state[COMPARE_KEY] = kept or [run.name for run in runs[:2]]
    selected = st.multiselect("Runs to compare", list(by_name), key=COMPARE_KEY)
    if not selected:
        st.info("Choose at least one run.")
        return
    reference = st.selectbox(
        "Reference run (deltas are against it)", selected, key="scenario_lab:reference"
    )
    try:
        kpis = {name: cache.kpis(by_name[name].path) for name in selected}
    except results.ResultsError as error:
        st.error(str(error))
        return
    table = results.kpi_comparison(kpis, str(reference))
    st.dataframe(
        table,
        column_config={c: st.column_config.NumberColumn(format="localized") for c in table},
        height=420,
    )
    st.plotly_chart(charts.stream_figure(results.stream_frame(kpis)), key="chart:streams")

    controls = st.columns(3)
    column = controls[0].selectbox(
        "Series",
        results.SERIES_COLUMNS,
        index=results.SERIES_COLUMNS.index(DEFAULT_SERIES),
        key="scenario_lab:series",
    )
    frames = {}
    for name in selected:
        try:
            frames[name] = cache.timeseries(by_name[name].path, (str(column),))
        except results.ResultsError as error:
            st.warning(f"{name}: {error}")
    facilities = list(
        dict.fromkeys(f for frame in frames.values() for f in results.facility_ids(frame))
    )
    facility = controls[1].selectbox(
        "Facility", [results.ALL_FACILITIES, *facilities], key="scenario_lab:facility"
    )
    axis = controls[2].radio(
        "Time axis",
        ("elapsed_days", "time"),
        format_func=lambda v: "days since start" if v == "elapsed_days" else "calendar (UTC)",
        horizontal=True,
        key="scenario_lab:x_axis",
    )
    x_axis: charts.XAxis = "time" if axis == "time" else "elapsed_days"
    series = {
        name: results.fleet_series(frame, str(column), str(facility))
        for name, frame in frames.items()
        if facility == results.ALL_FACILITIES or facility in set(frame["facility_id"])
    }
    st.plotly_chart(charts.overlay_figure(series, str(column), x_axis), key="chart:overlay")


settings = DashboardSettings.from_env()
st.title("Scenario lab")
view = st.radio(
    "View", VIEWS, horizontal=True, key="scenario_lab:view", label_visibility="collapsed"
)
if view == VIEWS[0]:
    edit_and_run(settings)
else:
    compare_runs(settings)
