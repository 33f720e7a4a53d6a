"""The fleet in Prometheus text format, appended to the service's ``/metrics``: computed
from the twin's latest snapshot when scraped, so requests pay nothing for it.

Names (all prefixed ``hcp_``, labels in braces):
  hcp_twin_time_seconds                      the twin's time [s since its start]
  hcp_facility_power_mw{facility,use}        draw by use (mining, inference, ..., overhead)
  hcp_facility_power_cap_mw{facility}        interconnect cap
  hcp_price_usd_per_mwh{facility}            power price the last tick planned with
  hcp_hashrate_ths{facility}                 hashrate
  hcp_miners{facility,state}                 miners by state (active, sleeping, failed)
  hcp_gpus{facility,state}                   GPUs by use or state
  hcp_gpus_free{facility,gpu_type}           GPUs free for new work
  hcp_device_commands_total{result}          device commands sent (verified / failed)
  hcp_switch_time_ms{quantile}               send-to-verified time of recent command batches
  hcp_fleet_events_total                     events logged so far (alerts and commands)
  hcp_fleet_alerts{severity}                 alerts in the recent event window
"""

from __future__ import annotations

from collections import Counter

from twin.service.twin_snapshot import TwinSnapshot


def fleet_metrics_lines(snapshot: TwinSnapshot) -> list[str]:
    """Prometheus exposition lines for the fleet in ``snapshot`` (none when it carries no
    fleet view)."""
    lines = [
        "# TYPE hcp_twin_time_seconds gauge",
        f"hcp_twin_time_seconds {snapshot.sim_time_s}",
        "# TYPE hcp_gpus_free gauge",
    ]
    lines += [
        f'hcp_gpus_free{{facility="{p.facility_id}",gpu_type="{p.gpu_type}"}} {p.available}'
        for p in snapshot.pools
    ]
    fleet = snapshot.fleet
    if fleet is None:
        return lines
    gauges: dict[str, list[str]] = {
        "hcp_facility_power_mw": [],
        "hcp_facility_power_cap_mw": [],
        "hcp_price_usd_per_mwh": [],
        "hcp_hashrate_ths": [],
        "hcp_miners": [],
        "hcp_gpus": [],
    }
    for f in fleet.facilities:
        where = f'facility="{f.facility_id}"'
        gauges["hcp_facility_power_mw"] += [
            f'hcp_facility_power_mw{{{where},use="{use}"}} {mw}'
            for use, mw in f.power_by_use_mw.items()
        ]
        gauges["hcp_facility_power_cap_mw"].append(
            f"hcp_facility_power_cap_mw{{{where}}} {f.power_cap_mw}"
        )
        gauges["hcp_price_usd_per_mwh"].append(
            f"hcp_price_usd_per_mwh{{{where}}} {f.price_usd_per_mwh}"
        )
        gauges["hcp_hashrate_ths"].append(f"hcp_hashrate_ths{{{where}}} {f.hashrate_ths}")
        gauges["hcp_miners"] += [
            f'hcp_miners{{{where},state="{state}"}} {count}' for state, count in f.asics.items()
        ]
        gauges["hcp_gpus"] += [
            f'hcp_gpus{{{where},state="{state}"}} {count}' for state, count in f.gpus.items()
        ]
    for name, samples in gauges.items():
        lines += [f"# TYPE {name} gauge", *samples]
    verified = fleet.commands_sent - fleet.command_failures
    lines += [
        "# TYPE hcp_device_commands_total counter",
        f'hcp_device_commands_total{{result="verified"}} {verified}',
        f'hcp_device_commands_total{{result="failed"}} {fleet.command_failures}',
        "# TYPE hcp_switch_time_ms gauge",
    ]
    switch = fleet.switch_times
    for quantile, value in (("0.5", switch.p50_ms), ("0.99", switch.p99_ms), ("1", switch.max_ms)):
        if value is not None:
            lines.append(f'hcp_switch_time_ms{{quantile="{quantile}"}} {value}')
    alerts = Counter(e.severity for e in fleet.events if e.kind == "alert")
    lines += [
        "# TYPE hcp_fleet_events_total counter",
        f"hcp_fleet_events_total {fleet.events[-1].seq if fleet.events else 0}",
        "# TYPE hcp_fleet_alerts gauge",
        *(
            f'hcp_fleet_alerts{{severity="{s}"}} {alerts.get(s, 0)}'
            for s in ("info", "warning", "critical")
        ),
    ]
    return lines
