"""Prometheus metrics of a live run: loop lag, power against caps, prices and their age,
miners by state, commands and their verification, unhealthy devices, health alerts.

One registry per live run (so tests and several runs in one process do not collide),
served over HTTP by :meth:`LiveMetrics.serve` at ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LAG_BUCKETS_S: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LiveMetrics:
    """The live loop's metrics (names prefixed ``hcp_``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.loop_lag = Histogram(
            "hcp_loop_lag_seconds",
            "Delay of each tick behind its wall-clock schedule",
            buckets=LAG_BUCKETS_S,
            registry=r,
        )
        self.last_lag = Gauge("hcp_loop_lag_last_seconds", "Lag of the latest tick", registry=r)
        self.ticks = Counter("hcp_ticks", "Control loop ticks run", registry=r)
        self.power = Gauge(
            "hcp_facility_power_mw", "Measured facility draw", ["facility"], registry=r
        )
        self.cap = Gauge("hcp_facility_power_cap_mw", "Interconnect cap", ["facility"], registry=r)
        self.price = Gauge(
            "hcp_price_usd_per_mwh", "Last known power price", ["facility"], registry=r
        )
        self.price_age = Gauge(
            "hcp_price_age_seconds", "Age of the last known price", ["facility"], registry=r
        )
        self.price_stale = Gauge(
            "hcp_price_stale", "1 while the price feed is stale", ["facility"], registry=r
        )
        self.conservative = Gauge(
            "hcp_conservative_policy", "1 while the conservative policy runs", registry=r
        )
        self.miners = Gauge(
            "hcp_miners", "Miners by state", ["facility", "model", "state"], registry=r
        )
        self.hashrate = Gauge("hcp_hashrate_ths", "Measured hashrate", ["facility"], registry=r)
        self.commands = Counter("hcp_commands", "Device commands sent", ["verified"], registry=r)
        self.unhealthy = Gauge(
            "hcp_unhealthy_devices", "Devices marked unhealthy by their driver", registry=r
        )
        self.alerts = Counter(
            "hcp_health_alerts",
            "Health monitor alerts (twin.health), by detector and target",
            ["facility", "detector", "target"],
            registry=r,
        )

    def serve(self, port: int, address: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on ``address:port`` from a daemon thread."""
        start_http_server(port, addr=address, registry=self.registry)

    def record_facility(
        self,
        facility_id: str,
        power_mw: float,
        cap_mw: float,
        price: float,
        price_age_s: float,
        stale: bool,
        hashrate_ths: float,
    ) -> None:
        """One facility's state this tick."""
        self.power.labels(facility_id).set(power_mw)
        self.cap.labels(facility_id).set(cap_mw)
        self.price.labels(facility_id).set(price)
        self.price_age.labels(facility_id).set(min(price_age_s, 1e9))
        self.price_stale.labels(facility_id).set(float(stale))
        self.hashrate.labels(facility_id).set(hashrate_ths)

    def record_miners(self, facility_id: str, counts: Mapping[tuple[str, str], int]) -> None:
        """Miners per (model, state name) at one facility."""
        for (model, state), count in counts.items():
            self.miners.labels(facility_id, model, state).set(count)

    def record_alerts(self, alerts: Iterable[tuple[str, str, str]]) -> None:
        """Count alerts given as (facility id, detector, target) triples (``alerts.parquet``
        rows of this tick)."""
        for facility_id, detector, target in alerts:
            self.alerts.labels(facility_id, detector, target).inc()
