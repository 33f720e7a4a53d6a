"""The Grafana dashboard (dashboards/grafana/hcp_fleet.json) queries only metrics the
service's ``/metrics`` or the live loop's exporter really serve, and lays out its panels
without overlaps."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from twin.live_metrics import LiveMetrics
from twin.scenario import PROJECT_ROOT, load_scenario
from twin.service.api.app import ServiceConfig, create_app
from twin.service.twin_bridge import TwinBridge

DASHBOARD = PROJECT_ROOT / "dashboards" / "grafana" / "hcp_fleet.json"
METRIC_NAME = re.compile(r"\bhcp_[a-z_]+\b")


def _served_sample_names(tmp_path: Path) -> set[str]:
    """Sample names (``_bucket``, ``_total`` included) of a service with a twin after two
    ticks and of the live loop's registry."""
    scenario = load_scenario(PROJECT_ROOT / "scenarios" / "baseline.yaml", {"duration_days": 0.05})
    bridge = TwinBridge(scenario, speed=600.0, background_demand=True)
    for _ in range(2):
        bridge.step()
    app = create_app(ServiceConfig(db_url=f"sqlite:///{tmp_path / 'g.db'}", bridge=bridge))
    with TestClient(app) as client:
        text = client.get("/metrics").text
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    for family in LiveMetrics().registry.collect():
        names |= {sample.name for sample in family.samples}
        names.add(family.name)  # labelled gauges show no samples until set
    return names


def test_every_query_names_a_served_metric(tmp_path: Path) -> None:
    """Each metric a panel's query uses is served by the platform or the live loop."""
    dashboard = json.loads(DASHBOARD.read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in METRIC_NAME.findall(target["expr"])
    }
    assert len(used) >= 10
    missing = used - _served_sample_names(tmp_path)
    assert not missing, f"queries name metrics nobody serves: {sorted(missing)}"


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    """Panel ids are unique and no two panels share a grid cell (24 columns wide)."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24
        mine = {
            (x, y)
            for x in range(box["x"], box["x"] + box["w"])
            for y in range(box["y"], box["y"] + box["h"])
        }
        assert not cells & mine, f"panel {panel['title']!r} overlaps another"
        cells |= mine
