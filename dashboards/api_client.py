"""A small typed client of the platform REST API for the operations page.

Reads what a running ``python run.py serve`` (or ``live``) instance exposes: health,
facilities, current prices, free GPUs, workloads, the ``hcp_workloads`` gauge of
``/metrics`` and, for staff keys, the fleet (power by use, device states, alerts, device
commands and their switch times). Standard library only (urllib), so the dashboards need
no HTTP package. Every failure is an :class:`ApiError` naming the endpoint and, when the
server answered, the HTTP status: :class:`ApiUnreachable` (no answer),
:class:`ApiKeyRefused` (401/403).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_args

import pandas as pd

from twin.service.api.schemas import WorkloadStatus

DEFAULT_TIMEOUT_S = 5.0
MAX_WORKLOADS_PAGE = 100
"""Most workloads one ``GET /v1/workloads`` call asks for."""

MAX_EVENTS_KEPT = 500
"""Events the service keeps in its window (``/v1/fleet/events`` pages through them)."""

EVENT_COLUMNS: tuple[str, ...] = (
    "seq",
    "at",
    "sim_time_s",
    "kind",
    "severity",
    "facility_id",
    "message",
    "latency_ms",
    "verified",
)

RESOURCE_COLUMNS: tuple[str, ...] = (
    "id",
    "facility_id",
    "type",
    "subtype",
    "status",
    "devices",
    "out_of_service",
    "reason",
    "updated_at",
)

WORKLOAD_STATUSES: tuple[str, ...] = get_args(WorkloadStatus)
"""Workload statuses of the API (WorkloadView.status), in lifecycle order."""

_GAUGE_LINE = re.compile(r'^hcp_workloads\{status="(?P<status>[a-z_]+)"\}\s+(?P<value>\S+)\s*$')


class ApiError(RuntimeError):
    """A request to the platform API failed.

    Attributes:
        endpoint: the path asked for (``/v1/market``).
        status: the HTTP status the server answered, None when it did not answer.
        detail: the server's problem title or the connection error.
    """

    def __init__(self, endpoint: str, status: int | None, detail: str) -> None:
        self.endpoint = endpoint
        self.status = status
        self.detail = detail
        answered = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"{endpoint}: {answered} ({detail})")


class ApiUnreachable(ApiError):
    """The server did not answer (refused connection, timeout, bad URL)."""


class ApiKeyRefused(ApiError):
    """The server refused the API key (401: missing or unknown; 403: not allowed)."""


@dataclass(frozen=True)
class Facility:
    """A facility as ``GET /v1/facilities`` lists it.

    Attributes:
        facility_id: its id (``west-mine``).
        region: cloud region name it is offered in.
        settlement_point: ERCOT settlement point its power is priced at.
        power_cap_mw: its grid interconnection limit [MW].
    """

    facility_id: str
    region: str
    settlement_point: str
    power_cap_mw: float


@dataclass(frozen=True)
class Market:
    """``GET /v1/market``: the twin's current prices.

    Attributes:
        sim_time_s: simulated time of the prices [s since scenario start].
        prices_usd_per_mwh: power price per facility [USD/MWh].
        gpu_rental_multiplier: current multiplier on list GPU rental prices [-].
    """

    sim_time_s: float
    prices_usd_per_mwh: Mapping[str, float]
    gpu_rental_multiplier: float


@dataclass(frozen=True)
class FleetState:
    """``GET /v1/fleet/status`` as frames.

    Attributes:
        sim_time_s: the twin's time of the figures [s since its start].
        power_by_use: one row per facility (index ``facility``), one column per use
            (``mining``, ``inference`` ...) [MW], plus ``power_cap_mw`` and
            ``power_total_mw``.
        asics: miners per facility (rows) and state (columns: active, sleeping, failed).
        gpus: GPUs per facility (rows) and use or state (columns).
        switch_times: ``batches``, ``p50_ms``, ``p99_ms``, ``max_ms`` of recent command
            batches (send to verified read-back).
        commands_sent / command_failures: device commands since the twin started.
        last_event_seq: number of the newest fleet event (0: none yet).
    """

    sim_time_s: float
    power_by_use: pd.DataFrame
    asics: pd.DataFrame
    gpus: pd.DataFrame
    switch_times: Mapping[str, float | None]
    commands_sent: int
    command_failures: int
    last_event_seq: int


class PlatformClient:
    """Reads the platform API at ``base_url`` with ``api_key`` (sent as ``X-API-Key``;
    operator and admin keys see every customer's workloads)."""

    def __init__(
        self, base_url: str, api_key: str | None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or None
        self.timeout_s = timeout_s

    # ------------------------------------------------------------------ endpoints

    def health(self) -> dict[str, Any]:
        """``GET /healthz``: ``status`` and ``sim_time_s`` [s] (no key needed)."""
        return _mapping(self._json("/healthz"), "/healthz")

    def facilities(self) -> list[Facility]:
        """``GET /v1/facilities``: every facility of the running scenario."""
        rows = self._json("/v1/facilities")
        if not isinstance(rows, list):
            raise ApiError("/v1/facilities", 200, "expected a JSON array")
        try:
            return [
                Facility(
                    facility_id=str(row["id"]),
                    region=str(row.get("region", "")),
                    settlement_point=str(row.get("settlement_point", "")),
                    power_cap_mw=float(row.get("power_cap_mw", float("nan"))),
                )
                for row in rows
            ]
        except (KeyError, TypeError, ValueError) as error:
            raise ApiError("/v1/facilities", 200, f"unexpected item ({error})") from None

    def market(self) -> Market:
        """``GET /v1/market``: current power price per facility and GPU price multiplier."""
        data = _mapping(self._json("/v1/market"), "/v1/market")
        try:
            return Market(
                sim_time_s=float(data["sim_time_s"]),
                prices_usd_per_mwh={
                    str(k): float(v) for k, v in data["prices_usd_per_mwh"].items()
                },
                gpu_rental_multiplier=float(data["gpu_rental_multiplier"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ApiError("/v1/market", 200, f"unexpected body ({error})") from None

    def availability(self) -> pd.DataFrame:
        """``GET /v1/resources/availability`` as a frame, one row per facility and GPU type:
        ``facility_id``, ``region``, ``gpu_type``, ``total``, ``available``, ``busy``,
        ``price_usd_per_gpu_hour``, ``power_price_usd_per_mwh``."""
        endpoint = "/v1/resources/availability"
        data = _mapping(self._json(endpoint), endpoint)
        columns = [
            "facility_id",
            "region",
            "gpu_type",
            "total",
            "available",
            "price_usd_per_gpu_hour",
            "power_price_usd_per_mwh",
        ]
        rows = data.get("facilities")
        if not isinstance(rows, list):
            raise ApiError(endpoint, 200, "expected a 'facilities' array")
        frame = pd.DataFrame(rows, columns=columns)
        frame["busy"] = frame["total"] - frame["available"]
        return frame

    def workloads(self, status: str | None = None, limit: int = MAX_WORKLOADS_PAGE) -> pd.DataFrame:
        """The first page of ``GET /v1/workloads`` (newest first as the API orders them;
        ``status`` filters), one row per workload with the WorkloadView fields, GPU count
        (``gpus``) and type from its requirements."""
        query: dict[str, str | int] = {"limit": max(1, min(limit, MAX_WORKLOADS_PAGE))}
        if status is not None:
            query["status"] = status
        endpoint = "/v1/workloads"
        page = _mapping(self._json(endpoint, query), endpoint)
        items = page.get("items")
        if not isinstance(items, list):
            raise ApiError(endpoint, 200, "expected an 'items' array")
        columns = [
            "workload_id",
            "customer_id",
            "workload_type",
            "status",
            "facility_id",
            "created_at",
            "started_at",
            "completed_at",
            "cost_usd",
        ]
        frame = pd.DataFrame([{c: item.get(c) for c in columns} for item in items], columns=columns)
        requirements = [item.get("requirements") or {} for item in items]
        frame["gpus"] = [r.get("gpu_count") for r in requirements]
        frame["gpu_type"] = [r.get("gpu_type") for r in requirements]
        return frame

    def workload_counts(self) -> dict[str, float]:
        """Workloads per status from the ``hcp_workloads`` gauge of ``GET /metrics``, every
        status of :data:`WORKLOAD_STATUSES` present (0 when the gauge omits it)."""
        text = self._text("/metrics")
        counts = dict.fromkeys(WORKLOAD_STATUSES, 0.0)
        for line in text.splitlines():
            match = _GAUGE_LINE.match(line.strip())
            if match:
                counts[match["status"]] = float(match["value"])
        return counts

    def fleet_status(self) -> FleetState:
        """``GET /v1/fleet/status`` (staff keys): each facility after the twin's last tick."""
        endpoint = "/v1/fleet/status"
        data = _mapping(self._json(endpoint), endpoint)
        try:
            rows = data["facilities"]
            ids = pd.Index([str(row["facility_id"]) for row in rows], name="facility")
            power = pd.DataFrame([row["power_by_use_mw"] for row in rows], index=ids).fillna(0.0)
            power["power_cap_mw"] = [float(row["power_cap_mw"]) for row in rows]
            power["power_total_mw"] = [float(row["power_total_mw"]) for row in rows]
            return FleetState(
                sim_time_s=float(data["sim_time_s"]),
                power_by_use=power,
                asics=pd.DataFrame([row["asics"] for row in rows], index=ids),
                gpus=pd.DataFrame([row["gpus"] for row in rows], index=ids),
                switch_times=dict(data["switch_times"]),
                commands_sent=int(data["commands_sent"]),
                command_failures=int(data["command_failures"]),
                last_event_seq=int(data["last_event_seq"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ApiError(endpoint, 200, f"unexpected body ({error})") from None

    def fleet_events(
        self, last_seq: int, kind: str | None = None, limit: int = 100
    ) -> pd.DataFrame:
        """The fleet events up to ``last_seq`` (see :attr:`FleetState.last_event_seq`),
        newest first, at most ``limit`` (``GET /v1/fleet/events``, staff keys): ``seq``,
        ``at``, ``sim_time_s``, ``kind``, ``severity``, ``facility_id``, ``message``,
        ``latency_ms``, ``verified``; ``kind`` filters (command or alert)."""
        endpoint = "/v1/fleet/events"
        since = max(0, last_seq - MAX_EVENTS_KEPT)
        query: dict[str, str | int] = {"since": since, "limit": MAX_EVENTS_KEPT}
        if kind is not None:
            query["kind"] = kind
        page = _mapping(self._json(endpoint, query), endpoint)
        events = page.get("events")
        if not isinstance(events, list):
            raise ApiError(endpoint, 200, "expected an 'events' array")
        columns = list(EVENT_COLUMNS)
        frame = pd.DataFrame([{c: e.get(c) for c in columns} for e in events], columns=columns)
        return frame.iloc[::-1].head(limit).reset_index(drop=True)

    def resources(self) -> pd.DataFrame:
        """``GET /v1/resources`` (staff keys): one row per device pool with ``id``,
        ``facility_id``, ``type``, ``subtype``, ``status``, ``devices``,
        ``out_of_service``, ``reason`` and ``updated_at``."""
        endpoint = "/v1/resources"
        rows = self._json(endpoint)
        if not isinstance(rows, list):
            raise ApiError(endpoint, 200, "expected a JSON array")
        return pd.DataFrame(rows, columns=list(RESOURCE_COLUMNS))

    # ------------------------------------------------------------------ transport

    def _json(self, endpoint: str, query: Mapping[str, str | int] | None = None) -> Any:
        body = self._get(endpoint, query)
        try:
            return json.loads(body)
        except ValueError as error:
            raise ApiError(endpoint, 200, f"not JSON ({error})") from None

    def _text(self, endpoint: str) -> str:
        return self._get(endpoint, None).decode("utf-8", errors="replace")

    def _get(self, endpoint: str, query: Mapping[str, str | int] | None) -> bytes:
        url = self.base_url + endpoint
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        request = urllib.request.Request(url, headers=headers, method="GET")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as error:
            detail = _problem_title(error)
            if error.code in (401, 403):
                raise ApiKeyRefused(endpoint, error.code, detail) from None
            raise ApiError(endpoint, error.code, detail) from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise ApiUnreachable(endpoint, None, f"{self.base_url}: {reason}") from None


def _mapping(data: Any, endpoint: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ApiError(endpoint, 200, "expected a JSON object")
    return data


def _problem_title(error: urllib.error.HTTPError) -> str:
    """The ``title`` of a problem+json body, else the HTTP reason phrase."""
    try:
        body = json.loads(error.read() or b"{}")
    except (ValueError, OSError):
        body = {}
    title = body.get("title") if isinstance(body, dict) else None
    return str(title or error.reason)
