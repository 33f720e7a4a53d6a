"""The capacity-planning report of a run: ``capacity.md`` (a table per facility, headroom and
runway) and ``capacity.html`` (projected GPU demand against installed GPUs and firm AI power
against the cap, per facility), written into the run's folder.

``python run.py capacity RUN_DIR [--growth 0.4] [--percentile 95] [--horizon-years 5]``
"""

from __future__ import annotations

import html
from datetime import date, datetime, timedelta
from pathlib import Path

import plotly.graph_objects as go
import polars as pl
import yaml
from plotly.subplots import make_subplots

from twin.capacity import CapacityError, CapacityPlan, FacilityCapacity, plan_capacity
from twin.recorder import METADATA_FILE, TIMESERIES_FILE, atomic_output

MARKDOWN_FILE = "capacity.md"
HTML_FILE = "capacity.html"
DAYS_PER_YEAR = 365.25


def write_capacity_report(
    run_dir: Path, growth_per_year: float, percentile: float = 95.0, horizon_years: float = 5.0
) -> tuple[CapacityPlan, Path, Path]:
    """Plan the capacity of the run in ``run_dir`` and write both report files there.

    Returns:
        the plan, the markdown path and the HTML path.

    Raises:
        twin.capacity.CapacityError: bad arguments, or the folder holds no readable run.
    """
    run_dir = Path(run_dir)
    timeseries_path = run_dir / TIMESERIES_FILE
    try:
        timeseries = pl.read_parquet(timeseries_path)
    except (OSError, pl.exceptions.PolarsError) as error:
        message = f"{timeseries_path}: cannot read a run's timeseries ({error})"
        raise CapacityError(message) from None
    plan = plan_capacity(
        timeseries, growth_per_year, percentile=percentile, horizon_years=horizon_years
    )
    start = _run_start(run_dir / METADATA_FILE)
    markdown_path = run_dir / MARKDOWN_FILE
    with atomic_output(markdown_path) as handle:
        handle.write(render_markdown(plan, start))
    html_path = run_dir / HTML_FILE
    with atomic_output(html_path) as handle:
        handle.write(render_html(plan, start))
    return plan, markdown_path, html_path


def render_markdown(plan: CapacityPlan, start: date | None) -> str:
    """The plan as a markdown page: assumptions, then one table row per facility."""
    lines = [
        "# Capacity plan",
        "",
        f"AI demand growing {plan.growth_per_year:+.0%} a year; demand is the "
        f"P{plan.percentile:g} of the run's intervals. Mining is curtailable and yields "
        "its power to AI; busy GPUs never exceed the installed ones, so a facility whose "
        "GPUs are all busy has unserved demand now. Runway counts from the run's start"
        + (f" ({start.isoformat()})." if start else "."),
        "",
        "| facility | cap MW | draw MW | firm AI MW | power headroom MW | GPUs | busy GPUs "
        "| GPU headroom | GPUs run out | power runs out |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for f in plan.facilities:
        lines.append(
            f"| {f.facility_id} | {f.power_cap_mw:,.1f} | {f.power_now_mw:,.1f} "
            f"| {f.firm_ai_power_mw:,.2f} | {f.power_headroom_mw:,.2f} | {f.gpus_installed:,} "
            f"| {f.gpus_busy:,.0f} | {f.gpu_headroom:,.0f} "
            f"| {runway_text(f.gpus_run_out_years, start)} "
            f"| {runway_text(f.power_runs_out_years, start)} |"
        )
    first = _first_limit(plan.facilities)
    if first:
        lines += ["", first]
    return "\n".join(lines) + "\n"


def render_html(plan: CapacityPlan, start: date | None) -> str:
    """A self-contained page: the markdown table's figures and the projection charts."""
    figure = projection_figure(plan)
    chart = figure.to_html(full_html=False, include_plotlyjs=True, div_id="fig-capacity")
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(cell)}</td>"
            for cell in (
                f.facility_id,
                f"{f.power_headroom_mw:,.2f} MW",
                f"{f.gpu_headroom:,.0f}",
                runway_text(f.gpus_run_out_years, start),
                runway_text(f.power_runs_out_years, start),
            )
        )
        + "</tr>"
        for f in plan.facilities
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Capacity plan</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;"
        "border-bottom:1px solid #ddd}</style></head><body>"
        f"<h1>Capacity plan</h1><p>AI demand {plan.growth_per_year:+.0%} a year, "
        f"P{plan.percentile:g} of the run's intervals.</p>"
        "<table><tr><th>facility</th><th>power headroom</th><th>GPU headroom</th>"
        f"<th>GPUs run out</th><th>power runs out</th></tr>{rows}</table>{chart}"
        "</body></html>"
    )


def projection_figure(plan: CapacityPlan) -> go.Figure:
    """Per facility (a column each): GPUs needed against installed (top) and firm AI power
    against the cap (bottom), over the horizon."""
    ids = [f.facility_id for f in plan.facilities]
    figure = make_subplots(
        rows=2, cols=len(ids), subplot_titles=ids, shared_xaxes=True, vertical_spacing=0.12
    )
    for column, facility_id in enumerate(ids, start=1):
        rows = plan.projection.filter(pl.col("facility_id") == facility_id)
        years = rows["years"].to_list()
        first = column == 1
        for row, (need, have, unit) in enumerate(
            (("gpus_needed", "gpus_installed", "GPUs"), ("ai_power_mw", "power_cap_mw", "MW")),
            start=1,
        ):
            for column_name, name, line in (
                (need, "demand", {"color": "#1f77b4"}),
                (have, "capacity", {"color": "#d62728", "dash": "dash"}),
            ):
                figure.add_trace(
                    go.Scatter(
                        x=years,
                        y=rows[column_name].to_list(),
                        name=name,
                        legendgroup=name,
                        showlegend=first and row == 1,
                        line=line,
                    ),
                    row=row,
                    col=column,
                )
            if first:
                figure.update_yaxes(title_text=unit, row=row, col=column)
        figure.update_xaxes(title_text="years from the run's start", row=2, col=column)
    figure.update_layout(
        title="GPUs needed vs installed (top), firm AI power vs cap (bottom)",
        height=620,
        template="plotly_white",
    )
    return figure


def runway_text(years: float | None, start: date | None) -> str:
    """``never``, ``now`` or ``in 2.3 years`` (with the date when the start is known)."""
    if years is None:
        return "never"
    if years < 1.0 / 12.0:
        return "now" if years == 0.0 else "within a month"
    text = f"in {years:,.1f} years"
    if start is not None and years < 200:
        text += f" ({(start + timedelta(days=years * DAYS_PER_YEAR)).isoformat()})"
    return text


def _first_limit(facilities: tuple[FacilityCapacity, ...]) -> str:
    limits = [
        (years, f.facility_id, what)
        for f in facilities
        for years, what in ((f.gpus_run_out_years, "GPUs"), (f.power_runs_out_years, "power"))
        if years is not None
    ]
    if not limits:
        return "No facility runs out of GPUs or power at this growth."
    years, facility_id, what = min(limits)
    when = "already" if years == 0 else f"first, in {years:,.1f} years"
    return f"**{facility_id}** runs out of {what} {when}."


def _run_start(metadata_path: Path) -> date | None:
    """The scenario start of the run (None when metadata.yaml is missing or has none)."""
    try:
        metadata = yaml.safe_load(metadata_path.read_text(encoding="utf-8")) or {}
        start = (metadata.get("scenario") or {}).get("start")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    if isinstance(start, datetime):
        return start.date()
    try:
        return datetime.fromisoformat(str(start)).date() if start else None
    except ValueError:
        return None
