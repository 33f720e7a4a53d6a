"""End-to-end test of the dashboards in a real browser.

``python run.py dashboard`` runs as a process on a results folder written by the twin
(tests/dashboards/conftest.py); Debian's headless chromium opens every page of
dashboards.navigation.PAGES, driven through the Chrome DevTools Protocol over its websocket
(no driver or browser download). For each page the DOM must show the expected number of
plotly charts with drawn traces and no Streamlit exception box, and a screenshot must show
coloured pixels (the traces) inside every chart's box. The screenshots are kept under the
test's tmp_path (their paths are printed: ``pytest -s`` shows them).

Chromium comes from scripts/system_packages.sh (``make test`` runs it).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from websockets.sync.client import ClientConnection, connect

from dashboards.navigation import PAGES, PageEntry
from twin.scenario import PROJECT_ROOT
from twin.service.local_server import free_port
from twin.service.sdk import Client

from .conftest import running_platform

CHROMIUM = "chromium"
APP_START_TIMEOUT_S = 45.0
BROWSER_START_TIMEOUT_S = 20.0
RENDER_TIMEOUT_S = 45.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.25
STABLE_POLLS = 4
"""Consecutive polls (of POLL_INTERVAL_S) that must see the same drawn charts before the
page counts as rendered: Streamlit streams elements in, so one early look can be partial."""
VIEWPORT_WIDTH_PX = 1400
VIEWPORT_HEIGHT_PX = 1000
MAX_VIEWPORT_HEIGHT_PX = 8000
COLOURED_SPREAD = 60
"""A pixel counts as coloured when its largest and smallest RGB channels differ by more
than this (0-255). Streamlit's page, plotly's background, grid lines and text are white,
greys or black (spread near 0); the traces are drawn in saturated colours."""
MIN_COLOURED_PIXELS = 300
"""Coloured pixels a chart's box must hold: a blank or axes-only chart has none, one thin
line across a chart already gives over a thousand."""
pytestmark = pytest.mark.slow

DEVTOOLS_LINE = re.compile(r"DevTools listening on (ws://\S+)")


@dataclass(frozen=True)
class PageCheck:
    """What one page must show in the browser.

    Attributes:
        view: label of the page's view radio to click first (None: the page's default view).
        min_charts: plotly charts with drawn traces the view shows on the test's results.
        expect_text: text the page must show before it counts as rendered.
    """

    view: str | None
    min_charts: int
    expect_text: str | None = None


PAGE_CHECKS: dict[str, PageCheck] = {
    # the default view edits a scenario (no chart); "Compare runs" shows the two saved runs:
    # revenue/cost by stream and the overlaid series
    "views/scenario_lab.py": PageCheck(view="Compare runs", min_charts=2),
    # the saved backtest: net per policy, cumulative net, price vs curtailment, one day:
    # 4 charts (net, cumulative net, price vs curtailment, one day); the regret chart is a
    # fifth only when the backtest shown has an oracle run, and other tests in the session
    # add backtests without one to the shared results folder.
    "views/policy_lab.py": PageCheck(view=None, min_charts=4),
    # no platform API answers at the app's --api URL: the page says so instead of failing
    "views/operations.py": PageCheck(view=None, min_charts=5, expect_text="Recent device commands"),
    # revenue/cost by stream and net per facility
    "views/executive.py": PageCheck(view=None, min_charts=2),
    # billed (or another column) per customer
    "views/customers.py": PageCheck(view=None, min_charts=1),
    # power by use, PUE, curtailment and price
    "views/energy.py": PageCheck(view=None, min_charts=3),
}
DEFAULT_CHECK = PageCheck(view=None, min_charts=1)

CHART_STATE_JS = """
(() => {
  const main = document.querySelector('[data-testid="stMain"]');
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  // svg traces draw as g.trace groups, WebGL ones (Scattergl) into the plot's canvas
  const drawn = plots.filter(p => p.querySelector('.main-svg')
    && (p.querySelector('g.trace') || p.querySelector('canvas.gl-canvas')));
  return {
    text: document.body ? document.body.innerText : "",
    exceptions: [...document.querySelectorAll('[data-testid="stException"]')]
      .map(e => e.innerText.slice(0, 400)),
    plots: plots.length,
    boxes: drawn.map(p => {
      const r = p.getBoundingClientRect();
      return [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height];
    }),
    content_height_px: Math.max(  // the document is missing while a navigation starts
      document.documentElement ? document.documentElement.scrollHeight : 0,
      main ? main.scrollHeight : 0),
  };
})()
"""

CLICK_VIEW_JS = """
((label) => {
  const options = [...document.querySelectorAll('[data-testid="stRadio"] label')];
  const option = options.find(o => o.innerText.trim() === label);
  if (!option) return false;
  option.click();
  return true;
})(%s)
"""


class DevToolsError(RuntimeError):
    """A DevTools Protocol call failed or timed out (names the method)."""


class DevToolsPage:
    """A minimal Chrome DevTools Protocol client for one page target: send a command, wait
    for its reply (events the browser sends meanwhile are ignored)."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._last_id = 0

    def call(
        self, method: str, params: dict[str, Any] | None = None, timeout_s: float = 30.0
    ) -> dict[str, Any]:
        """The ``result`` of ``method`` called with ``params``.

        Raises:
            DevToolsError: the browser answered with an error or not within timeout_s.
        """
        self._last_id += 1
        call_id = self._last_id
        self._socket.send(json.dumps({"id": call_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout_s
        while (remaining_s := deadline - time.monotonic()) > 0:
            try:
                message = json.loads(self._socket.recv(timeout=remaining_s))
            except TimeoutError:
                break
            if message.get("id") != call_id:
                continue
            if "error" in message:
                raise DevToolsError(f"{method}: {message['error']}")
            return dict(message.get("result", {}))
        raise DevToolsError(f"{method}: no answer within {timeout_s:g} s")

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression evaluated in the page.

        Raises:
            DevToolsError: the expression threw.
        """
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise DevToolsError(f"Runtime.evaluate threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def set_viewport(self, width_px: int, height_px: int) -> None:
        """Lay the page out at width_px x height_px CSS pixels, one device pixel each (so
        DOM boxes are screenshot pixels)."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width_px, "height": height_px, "deviceScaleFactor": 1, "mobile": False},
        )

    def screenshot(self) -> Image.Image:
        """A PNG screenshot of the viewport, decoded."""
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


def _stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a process started in its own session and everything it started (streamlit under
    ``run.py dashboard``, chromium's renderer and GPU processes): SIGTERM to the group,
    SIGKILL for what is left after STOP_TIMEOUT_S."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)  # members of the group still alive?
        except ProcessLookupError:
            return
        time.sleep(POLL_INTERVAL_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _tail(path: Path, chars: int = 2000) -> str:
    """The last ``chars`` characters of a process log (empty before it exists)."""
    return path.read_text(encoding="utf-8", errors="replace")[-chars:] if path.exists() else ""


def _http_ok(url: str) -> bool:
    """Whether ``url`` answers 200 now (False while the server is still starting)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@pytest.fixture(scope="module")
def platform_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A ``serve`` process (sandbox twin, background demand) with two workloads submitted:
    its URL and an operator key, for the operations page."""
    with running_platform(tmp_path_factory.mktemp("platform"), ["--speed", "300"]) as running:
        customer = Client(running.url, running.customer_key)
        for gpus in (2, 4):
            customer.submit({"gpu_count": gpus, "estimated_duration_s": 3600})
        yield running.url, running.operator_key


@pytest.fixture(scope="module")
def dashboard_url(
    tmp_path_factory: pytest.TempPathFactory,
    scenario_dir: Path,
    results_dir: Path,
    platform_api: tuple[str, str],
) -> Iterator[str]:
    """Base URL of ``python run.py dashboard`` serving the test results folder and reading
    the platform API with an operator key; the app (and streamlit under it) is stopped
    afterwards."""
    port = free_port()
    log = tmp_path_factory.mktemp("dashboard_log") / "dashboard.log"
    api_url, operator_key = platform_api
    command = [
        *(sys.executable, "run.py", "dashboard", "--port", str(port)),
        *("--results", str(results_dir), "--scenarios", str(scenario_dir)),
        *("--api", api_url),
    ]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "HCP_API_KEY": operator_key},
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + APP_START_TIMEOUT_S
        while not _http_ok(f"{base}/_stcore/health"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the dashboard did not start on {base}:\n{_tail(log)}")
            time.sleep(POLL_INTERVAL_S)  # polling a starting server
        yield base
    finally:
        _stop_process_group(process)


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevToolsPage]:
    """A page of a headless chromium (its own profile in a temporary folder), driven over
    the DevTools websocket; chromium is stopped afterwards."""
    chromium = shutil.which(CHROMIUM)
    if chromium is None:
        pytest.fail(
            "Debian's chromium is not installed (no `chromium` on PATH): run "
            "scripts/system_packages.sh as root (`make test` does) or apt-get install chromium"
        )
    folder = tmp_path_factory.mktemp("chromium")
    log = folder / "chromium.log"
    command = [
        chromium,
        "--headless=new",
        "--remote-debugging-port=0",  # any free port; chromium prints the one it took
        f"--user-data-dir={folder / 'profile'}",
        # the page is the test's own local app; containers (CI) usually cannot set up
        # chromium's sandbox, least of all as root
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",  # /dev/shm is small in containers
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--hide-scrollbars",
        "--mute-audio",
        f"--window-size={VIEWPORT_WIDTH_PX},{VIEWPORT_HEIGHT_PX}",
        "about:blank",
    ]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + BROWSER_START_TIMEOUT_S
        while (found := DEVTOOLS_LINE.search(_tail(log, 100_000))) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chromium did not open its DevTools port:\n{_tail(log)}")
            time.sleep(POLL_INTERVAL_S)
        http_base = "http://" + found.group(1).split("/")[2]  # ws://host:port/devtools/...
        with urllib.request.urlopen(f"{http_base}/json/list", timeout=5) as reply:
            targets = json.load(reply)
        page_target = next(t for t in targets if t.get("type") == "page")
        with connect(page_target["webSocketDebuggerUrl"], max_size=None) as socket:
            yield DevToolsPage(socket)
    finally:
        _stop_process_group(process)


def _page_url(base: str, entry: PageEntry) -> str:
    """The page's address: the default page at the root, the others at their script's
    name (Streamlit's url path for an ``st.Page`` given a file)."""
    return base + "/" + ("" if entry.default else Path(entry.script).stem)


def _poll(page: DevToolsPage, what: str, expression: str, done: Any) -> Any:
    """Evaluate ``expression`` until ``done(value)`` holds (up to RENDER_TIMEOUT_S)."""
    deadline = time.monotonic() + RENDER_TIMEOUT_S
    value = None
    while time.monotonic() < deadline:
        value = page.evaluate(expression)
        if done(value):
            return value
        time.sleep(POLL_INTERVAL_S)
    if isinstance(value, dict) and "text" in value:  # the page's text goes last, shortened
        value = {**{k: v for k, v in value.items() if k != "text"}, "text": value["text"][-1500:]}
    pytest.fail(f"{what}: not within {RENDER_TIMEOUT_S:g} s (last state: {value})")


def _wait_for_charts(page: DevToolsPage, title: str, check: PageCheck) -> dict[str, Any]:
    """The page's state once it shows ``check.expect_text`` and at least
    ``check.min_charts`` drawn charts, unchanged over STABLE_POLLS polls; fails at once on
    a Streamlit exception box."""
    history: list[list[list[float]]] = []

    def settled(state: dict[str, Any]) -> bool:
        if state["exceptions"]:
            pytest.fail(f"{title}: Streamlit shows an exception: {state['exceptions']}")
        history.append(state["boxes"])
        recent = history[-STABLE_POLLS:]
        return (
            len(state["boxes"]) >= check.min_charts
            and (check.expect_text is None or check.expect_text in state["text"])
            and len(recent) == STABLE_POLLS
            and all(boxes == recent[0] for boxes in recent)
        )

    what = f"{title}: {check.min_charts} drawn charts and text {check.expect_text!r}"
    return dict(_poll(page, what, CHART_STATE_JS, settled))


def _coloured_pixels(image: Image.Image, box: list[float]) -> int:
    """Pixels inside ``box`` ([left, top, width, height] in px) whose RGB channels spread
    by more than COLOURED_SPREAD."""
    left, top, width, height = (round(v) for v in box)
    pixels = np.asarray(image.crop((left, top, left + width, top + height)), dtype=np.int16)
    spread = pixels.max(axis=2) - pixels.min(axis=2)
    return int(np.count_nonzero(spread > COLOURED_SPREAD))


@pytest.mark.parametrize("entry", PAGES, ids=[page.title for page in PAGES])
def test_page_renders_its_charts_in_chromium(
    entry: PageEntry, dashboard_url: str, browser_page: DevToolsPage, tmp_path: Path
) -> None:
    """Opened in headless chromium on saved runs and a saved backtest, the page draws its
    plotly charts (DOM: plot containers with an svg and traces), shows no exception, and
    a screenshot has coloured trace pixels inside every chart's box."""
    check = PAGE_CHECKS.get(entry.script, DEFAULT_CHECK)
    started_s = time.monotonic()
    browser_page.set_viewport(VIEWPORT_WIDTH_PX, VIEWPORT_HEIGHT_PX)
    browser_page.call("Page.navigate", {"url": _page_url(dashboard_url, entry)})
    if check.view is not None:
        _poll(
            browser_page,
            f"{entry.title}: the view option {check.view!r}",
            CLICK_VIEW_JS % json.dumps(check.view),
            bool,
        )
    state = _wait_for_charts(browser_page, entry.title, check)
    render_s = time.monotonic() - started_s

    # a viewport as tall as the page, so one screenshot holds every chart
    height_px = min(int(state["content_height_px"]), MAX_VIEWPORT_HEIGHT_PX)
    browser_page.set_viewport(VIEWPORT_WIDTH_PX, max(height_px, VIEWPORT_HEIGHT_PX))
    state = _wait_for_charts(browser_page, entry.title, check)
    image = browser_page.screenshot()
    shot = tmp_path / f"{Path(entry.script).stem}.png"
    image.save(shot)
    coloured = [_coloured_pixels(image, box) for box in state["boxes"]]
    print(
        f"{entry.title}: charts drawn {render_s:.1f} s after opening; "
        f"coloured pixels per chart {coloured}; screenshot {shot}"
    )

    assert len(state["boxes"]) >= check.min_charts
    for index, (box, count) in enumerate(zip(state["boxes"], coloured, strict=True)):
        _left, top, width, height = box
        assert width > 100 and height > 100, f"{entry.title}: chart {index} box {box}"
        assert top + height <= image.height, (
            f"{entry.title}: chart {index} at {box} lies below the screenshot "
            f"({image.width}x{image.height} px); see {shot}"
        )
        assert count >= MIN_COLOURED_PIXELS, (
            f"{entry.title}: chart {index} at {box} looks blank ({count} coloured pixels); "
            f"see {shot}"
        )


def test_blank_or_grey_chart_box_counts_no_coloured_pixels() -> None:
    """The screenshot criterion: a white box with grey grid lines and black text-like
    marks has no coloured pixels, one 2 px coloured line across it has enough."""
    image = Image.new("RGB", (600, 400), "white")
    pixels = np.asarray(image).copy()
    pixels[::40, :] = (220, 220, 220)  # grid lines
    pixels[380:390, 50:550] = (40, 40, 40)  # axis text
    box = [0.0, 0.0, 600.0, 400.0]
    assert _coloured_pixels(Image.fromarray(pixels), box) == 0
    pixels[200:202, :] = (99, 110, 250)  # a trace in plotly's first colour
    assert _coloured_pixels(Image.fromarray(pixels), box) >= MIN_COLOURED_PIXELS
