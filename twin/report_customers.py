"""The report's view of customers: GPU work each received against what it asked for.

Shows whether fair sharing held: under saturation the customers who asked for more than an
equal share should receive about the same (Jain's index in the title, see
twin.kpis.fairness); those who asked for less should receive what they asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go
import polars as pl

from twin.kpis import FAIR_SHARE_TYPES
from twin.report import as_float32, empty_figure, format_number

TOP_CUSTOMERS = 25
"""Customers shown, by GPU work asked for [-]."""


def customer_service_figure(jobs: pl.DataFrame, kpis: Mapping[str, Any]) -> go.Figure:
    """Bars per customer: GPU-hours of batch and training work asked for and received."""
    figure = go.Figure()
    title = "GPU work per customer (batch inference and training)"
    rows = jobs.filter(
        pl.col("type").is_in(list(FAIR_SHARE_TYPES)) & (pl.col("status") != "rejected")
    )
    if rows.height == 0:
        return empty_figure(figure, title, "no batch or training jobs")
    per_customer = (
        rows.group_by("customer")
        .agg(
            asked=(pl.col("gpus").cast(pl.Float64) * pl.col("work_s")).sum() / 3600.0,
            served=(pl.col("gpus").cast(pl.Float64) * pl.col("served_s")).sum() / 3600.0,
        )
        .sort(["asked", "customer"], descending=[True, False])
        .head(TOP_CUSTOMERS)
    )
    names = per_customer["customer"].to_list()
    figure.add_bar(x=names, y=as_float32(per_customer["asked"].to_numpy()), name="asked for")
    figure.add_bar(x=names, y=as_float32(per_customer["served"].to_numpy()), name="received")
    fairness = kpis.get("fairness") or {}
    jain = fairness.get("jain")
    if jain is not None:
        title += (
            f" — Jain's index {format_number(jain, 3)} over "
            f"{fairness.get('customers')} saturated customers"
        )
    figure.update_layout(
        title=title,
        barmode="group",
        yaxis_title="GPU-hours",
        xaxis_tickangle=-35,
        legend={"orientation": "h", "y": -0.35},
    )
    return figure
