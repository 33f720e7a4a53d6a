"""``sweep.html``: the distribution of each headline KPI per grid point (works offline).

One figure per KPI of :data:`twin.sweep.aggregate.SUMMARY_KPIS`: every finished run as a
dot, and per grid point a marker at P50 with a bar from P10 to P90. plotly.js is inlined
once, as in the run report (twin.report), so the page opens without a network. Below the
figures, the percentile table and the failed runs.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go
import polars as pl

from twin.recorder import atomic_output
from twin.report import FIGURE_HEIGHT_PX, PAGE_TEMPLATE, grid_table
from twin.sweep.aggregate import PARAM_PREFIX, STATUS_FAILED, STATUS_OK

SWEEP_HTML = "sweep.html"
JITTER_WIDTH = 0.25
"""Horizontal spread of the run dots around their grid point [category widths]."""


def kpi_figure(frame: pl.DataFrame, table: pl.DataFrame, kpi: str) -> go.Figure:
    """Runs and P10/P50/P90 of ``kpi`` per grid point (x: grid point index)."""
    figure = go.Figure()
    ok = frame.filter(pl.col("status") == STATUS_OK).drop_nulls(kpi)
    # a fixed jitter by seed order keeps the page identical from one writing to the next
    spread = ok.select(
        (pl.col("seed").rank("ordinal").over("point") - 0.5) / pl.len().over("point") - 0.5
    ).to_series()
    points = ok["point"].to_numpy()
    figure.add_trace(
        go.Scatter(
            x=points + JITTER_WIDTH * spread.to_numpy(),
            y=ok[kpi].cast(pl.Float64).to_numpy(),
            mode="markers",
            name="runs",
            marker={"size": 5, "opacity": 0.45, "color": "#7f7f7f"},
            text=[f"seed {seed}" for seed in ok["seed"].to_list()],
            hovertemplate="%{text}: %{y:,.4g}<extra></extra>",
        )
    )
    rows = table.filter((pl.col("kpi") == kpi) & pl.col("p50").is_not_null())
    p10, p50, p90 = (rows[name].to_numpy() for name in ("p10", "p50", "p90"))
    figure.add_trace(
        go.Scatter(
            x=rows["point"].to_numpy(),
            y=p50,
            mode="markers",
            name="P50 (bar: P10-P90)",
            marker={"size": 11, "symbol": "diamond", "color": "#1f77b4"},
            error_y={"type": "data", "array": p90 - p50, "arrayminus": p50 - p10, "width": 8},
            text=rows["label"].to_list(),
            hovertemplate="%{text}<br>P50 %{y:,.4g}<extra></extra>",
        )
    )
    paths, ticks = tick_labels(frame)
    figure.update_layout(
        title=kpi,
        xaxis={
            "title": " / ".join(paths) or "grid point",
            "tickmode": "array",
            "tickvals": list(range(len(ticks))),
            "ticktext": ticks,
        },
        yaxis={"title": kpi},
        template="plotly_white",
        margin={"t": 50, "b": 80},
    )
    return figure


def tick_labels(frame: pl.DataFrame) -> tuple[list[str], list[str]]:
    """The grid axes' paths, and per grid point its values joined by `` / `` (``base``
    without axes), in grid point order."""
    columns = [name for name in frame.columns if name.startswith(PARAM_PREFIX)]
    points = frame.select("point", *columns).unique("point", maintain_order=True).sort("point")
    ticks = [" / ".join(_short(str(v), 24) for v in row[1:]) or "base" for row in points.rows()]
    return [name.removeprefix(PARAM_PREFIX) for name in columns], ticks


def render_sweep_html(
    frame: pl.DataFrame, table: pl.DataFrame, kpis: Sequence[str], title: str
) -> str:
    """The complete page (see the module docstring)."""
    present = [kpi for kpi in kpis if kpi in table["kpi"].to_list()]
    divs = [
        kpi_figure(frame, table, kpi).to_html(
            full_html=False,
            include_plotlyjs=position == 0,
            div_id=f"fig-{position}",
            default_height=f"{FIGURE_HEIGHT_PX}px",
            config={"displaylogo": False, "responsive": True},
        )
        for position, kpi in enumerate(present)
    ]
    finished = frame.filter(pl.col("status") == STATUS_OK).height
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{frame.height} runs, {finished} finished; "
        f"{frame['point'].n_unique()} grid points.</p>",
        *divs,
        "<h2>Percentiles per grid point</h2>",
        grid_table(
            [name for name in table.columns if name != "point"],
            [[_cell(v) for v in row[1:]] for row in table.iter_rows()],
        ),
    ]
    failed = frame.filter(pl.col("status") == STATUS_FAILED)
    if failed.height:
        body.append("<h2>Failed runs</h2>")
        body.append(
            grid_table(
                ["grid point", "seed", "error"], failed.select("label", "seed", "error").rows()
            )
        )
    return PAGE_TEMPLATE.format(title=html.escape(title), body="\n".join(body))


def write_sweep_html(
    out_dir: Path, frame: pl.DataFrame, table: pl.DataFrame, kpis: Sequence[str], title: str
) -> Path:
    """Write ``sweep.html`` into ``out_dir`` atomically; returns its path."""
    path = Path(out_dir) / SWEEP_HTML
    with atomic_output(path) as handle:
        handle.write(render_sweep_html(frame, table, kpis, title))
    return path


def _short(label: str, limit: int = 40) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _cell(value: object) -> object:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4g}"
    return value
