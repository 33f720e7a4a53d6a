"""Streamlit AppTest of the operations page against a real ``serve`` process: the live
status with a good key, and warnings (not stack traces) for a refused key or no server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from dashboards.api_client import PlatformClient
from dashboards.settings import ENV_API_URL
from twin.service.local_server import free_port

from .conftest import APP, running_platform

RENDER_TIMEOUT_S = 30.0
SERVE_ARGS = ["--speed", "300", "--no-background-demand"]
ENV_API_KEY = "HCP_API_KEY"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """``serve`` on a fresh SQLite database: its base URL, an operator key and a customer
    key."""
    with running_platform(tmp_path_factory.mktemp("operations"), SERVE_ARGS) as running:
        yield running.url, running.operator_key, running.customer_key


def _operations(monkeypatch: pytest.MonkeyPatch, url: str, key: str | None) -> AppTest:
    monkeypatch.setenv(ENV_API_URL, url)
    if key is None:
        monkeypatch.delenv(ENV_API_KEY, raising=False)
    else:
        monkeypatch.setenv(ENV_API_KEY, key)
    app = AppTest.from_file(str(APP), default_timeout=RENDER_TIMEOUT_S).run()
    app.switch_page("views/operations.py").run()
    return app


def _charts(app: AppTest) -> set[str]:
    return {str(element.key) for element in app.get("plotly_chart")}


def test_live_status_with_an_operator_key(
    monkeypatch: pytest.MonkeyPatch, server: tuple[str, str, str]
) -> None:
    """With the key from HCP_API_KEY the page lists the server's facilities with prices,
    shows free GPUs as the API counts them and the availability and status charts."""
    url, key, _ = server
    app = _operations(monkeypatch, url, key)
    assert not app.exception and not app.error and not app.warning
    assert app.text_input(key="operations:url").value == url
    facilities = app.dataframe[0].value
    client = PlatformClient(url, key)
    assert list(facilities.index) == [f.facility_id for f in client.facilities()]
    assert facilities["price_usd_per_mwh"].notna().all()
    free = {str(m.label): str(m.value) for m in app.metric}["free GPUs"]
    assert free == f"{int(client.availability()['available'].sum()):,}"
    assert _charts(app) == {
        "chart:availability",
        "chart:workload_status",
        "chart:fleet_power",
        "chart:asic_states",
        "chart:gpu_states",
    }
    metrics = {str(m.label): str(m.value) for m in app.metric}
    assert metrics["power now"].endswith(" MW") and "switch time p50 / p99" in metrics
    app.toggle(key="operations:auto_refresh").set_value(False).run()
    assert not app.exception and app.selectbox(key="operations:refresh_s").disabled


def test_refused_key_is_a_warning(
    monkeypatch: pytest.MonkeyPatch, server: tuple[str, str, str]
) -> None:
    """A wrong key typed in the sidebar gives a warning that the key was refused, no
    exception and no charts; the right key brings the charts back."""
    url, key, _ = server
    app = _operations(monkeypatch, url, None)
    assert not app.exception and "refused the key" in app.warning[0].value
    app.text_input(key="operations:api_key").set_value("wrong").run()
    assert not app.exception and "HTTP 401" in app.warning[0].value
    assert not _charts(app)
    app.text_input(key="operations:api_key").set_value(key).run()
    assert not app.exception and not app.warning
    assert "chart:availability" in _charts(app)


def test_unreachable_server_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """No server at the URL gives a warning that it does not answer, no exception."""
    app = _operations(monkeypatch, f"http://127.0.0.1:{free_port()}", "key")
    assert not app.exception and not app.error
    assert "does not answer" in app.warning[0].value


def test_a_customer_key_sees_no_fleet(
    monkeypatch: pytest.MonkeyPatch, server: tuple[str, str, str]
) -> None:
    """A customer's key shows the public status but says the fleet needs a staff key."""
    url, _, customer_key = server
    app = _operations(monkeypatch, url, customer_key)
    assert not app.exception and not app.warning
    assert any("operator or admin key" in info.value for info in app.info)
    assert "chart:fleet_power" not in _charts(app)
