"""Operations (operators): the live state of a running ``serve`` or ``live`` instance.

Reads the platform API (dashboards.api_client) at the URL of the dashboard settings with an
API key typed in the sidebar or taken from ``HCP_API_KEY`` (an operator key sees every
customer's workloads): facilities and their current power prices, free GPUs per facility
and type, workloads by status (the ``hcp_workloads`` gauge of ``/metrics``) and the most
recent workloads; with a staff key also the fleet: power by use per facility against its
cap, miners and GPUs by state, device pools not online, alerts, recent device commands and
their switch times (send to verified read-back). The status part refreshes itself every
few seconds while auto-refresh is on. An unreachable server or a refused key is a warning,
never a stack trace.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pandas as pd
import streamlit as st

from dashboards import charts
from dashboards.api_client import ApiError, ApiKeyRefused, ApiUnreachable, PlatformClient
from dashboards.settings import DashboardSettings

ENV_API_KEY = "HCP_API_KEY"
URL_KEY = "operations:url"
API_KEY_KEY = "operations:api_key"
AUTO_KEY = "operations:auto_refresh"
EVERY_KEY = "operations:refresh_s"
REFRESH_CHOICES_S = (5, 10, 30, 60)
DEFAULT_REFRESH_S = 10
RECENT_WORKLOADS = 25
RECENT_EVENTS = 50
ALERT_COLUMNS = ["at", "sim_time_s", "severity", "facility_id", "message"]
COMMAND_COLUMNS = ["at", "facility_id", "message", "latency_ms", "verified"]
POOL_COLUMNS = ["id", "status", "devices", "out_of_service", "reason", "updated_at"]


def sidebar(settings: DashboardSettings) -> tuple[PlatformClient, int | None]:
    """URL, key and refresh controls; returns the client and the refresh period [s]
    (None when auto-refresh is off)."""
    with st.sidebar:
        st.subheader("Platform API")
        url = st.text_input("API URL", value=settings.api_url, key=URL_KEY)
        api_key = st.text_input(
            "API key",
            value=os.environ.get(ENV_API_KEY, ""),
            type="password",
            key=API_KEY_KEY,
            help=f"An operator key; empty uses ${ENV_API_KEY}.",
        )
        auto = st.toggle("Auto-refresh", value=True, key=AUTO_KEY)
        every_s = st.selectbox(
            "Every [s]",
            REFRESH_CHOICES_S,
            index=REFRESH_CHOICES_S.index(DEFAULT_REFRESH_S),
            key=EVERY_KEY,
            disabled=not auto,
        )
    client = PlatformClient(str(url), str(api_key) or os.environ.get(ENV_API_KEY))
    return client, (int(every_s) if auto else None)


def show_status(client: PlatformClient) -> None:
    """Everything the API says about the fleet now; a warning when it cannot be read."""
    try:
        health = client.health()
        facilities = client.facilities()
        market = client.market()
        availability = client.availability()
        counts = client.workload_counts()
        recent = client.workloads(limit=RECENT_WORKLOADS)
    except ApiUnreachable as error:
        st.warning(f"The platform API at {client.base_url} does not answer: {error}")
        return
    except ApiKeyRefused as error:
        st.warning(
            "The platform API refused the key; enter an operator key in the sidebar or set "
            f"${ENV_API_KEY}. ({error})"
        )
        return
    except ApiError as error:
        st.warning(f"The platform API answered with an error: {error}")
        return
    sim_days = market.sim_time_s / 86400.0
    st.caption(
        f"{client.base_url} · status {health.get('status', '?')} · simulated day "
        f"{sim_days:,.2f} · GPU price multiplier {market.gpu_rental_multiplier:.3f}"
    )
    top = st.columns(4)
    top[0].metric("facilities", f"{len(facilities)}")
    top[1].metric("free GPUs", f"{int(availability['available'].sum()):,}")
    top[2].metric("queued", f"{counts.get('queued', 0.0):,.0f}")
    top[3].metric("running", f"{counts.get('running', 0.0):,.0f}")
    table = pd.DataFrame(
        {
            "region": [f.region for f in facilities],
            "settlement_point": [f.settlement_point for f in facilities],
            "power_cap_mw": [f.power_cap_mw for f in facilities],
            "price_usd_per_mwh": [market.prices_usd_per_mwh.get(f.facility_id) for f in facilities],
        },
        index=pd.Index([f.facility_id for f in facilities], name="facility"),
    )
    st.subheader("Facilities and current prices")
    st.dataframe(table, key="table:facilities")
    left, right = st.columns(2)
    left.plotly_chart(charts.availability_figure(availability), key="chart:availability")
    right.plotly_chart(charts.workload_status_figure(counts), key="chart:workload_status")
    st.dataframe(availability, key="table:availability")
    show_fleet(client)
    st.subheader("Recent workloads")
    if recent.empty:
        st.info("No workloads yet.")
    else:
        st.dataframe(recent, key="table:workloads")


def show_fleet(client: PlatformClient) -> None:
    """Power by use, device states, switch times, alerts and recent commands (staff keys);
    a note when the key or the server cannot show them."""
    st.subheader("Fleet")
    try:
        fleet = client.fleet_status()
        alerts = client.fleet_events(fleet.last_event_seq, kind="alert", limit=RECENT_EVENTS)
        pools = client.resources()
        commands = client.fleet_events(fleet.last_event_seq, kind="command", limit=RECENT_EVENTS)
    except ApiKeyRefused:
        st.info("Fleet status needs an operator or admin key.")
        return
    except ApiError as error:
        st.info(f"No fleet status from this server: {error.detail}")
        return
    switch = fleet.switch_times
    cells = st.columns(4)
    cells[0].metric("power now", f"{fleet.power_by_use['power_total_mw'].sum():,.1f} MW")
    cells[1].metric("miners failed", f"{int(fleet.asics.get('failed', pd.Series()).sum()):,}")
    cells[2].metric(
        "switch time p50 / p99",
        _ms(switch.get("p50_ms")) + " / " + _ms(switch.get("p99_ms")),
        help="Send to verified read-back of each device command batch",
    )
    cells[3].metric("commands (failed)", f"{fleet.commands_sent:,} ({fleet.command_failures:,})")
    st.plotly_chart(charts.facility_power_figure(fleet.power_by_use), key="chart:fleet_power")
    left, right = st.columns(2)
    left.plotly_chart(
        charts.device_states_figure(fleet.asics, "Miners by state"), key="chart:asic_states"
    )
    right.plotly_chart(
        charts.device_states_figure(fleet.gpus, "GPUs by use"), key="chart:gpu_states"
    )
    _event_table(
        "Device pools not online",
        pools[pools["status"] != "online"],
        POOL_COLUMNS,
        f"All {len(pools)} device pools online.",
        "table:pools",
    )
    _event_table("Alerts", alerts, ALERT_COLUMNS, "No alerts.", "table:alerts")
    _event_table(
        "Recent device commands",
        commands,
        COMMAND_COLUMNS,
        "No device commands yet.",
        "table:commands",
    )


def _event_table(
    title: str, events: pd.DataFrame, columns: list[str], empty_text: str, key: str
) -> None:
    st.subheader(title)
    if events.empty:
        st.info(empty_text)
    else:
        st.dataframe(events[columns], key=key)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f} ms"


def main() -> None:
    """The operations page: controls in the sidebar, the status in a refreshing fragment."""
    settings = DashboardSettings.from_env()
    st.title("Operations")
    client, every_s = sidebar(settings)
    run_every = timedelta(seconds=every_s) if every_s else None
    st.fragment(run_every=run_every)(show_status)(client)


main()
