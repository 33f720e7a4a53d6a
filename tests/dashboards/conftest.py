"""Shared fixtures of the dashboard tests: small scenarios and a results folder written by
the twin itself (two runs and a backtest with the oracle), all in temporary folders."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from dashboards.settings import ENV_RESULTS_DIR, ENV_SCENARIOS_DIR
from twin.backtest import prepare_scenario, run_backtest
from twin.engine import build
from twin.scenario import PROJECT_ROOT, load_scenario
from twin.service.keys import create_key
from twin.service.local_server import free_port, start_server

BASELINE = PROJECT_ROOT / "scenarios" / "baseline.yaml"
APP = PROJECT_ROOT / "dashboards" / "app.py"
SMALL_DAYS = 0.25
BACKTEST_NAME = "small-backtest"
RUN_NAMES = ("small", "small-cheap-btc")


@dataclass(frozen=True)
class RunningPlatform:
    """A ``serve`` process on a fresh SQLite database: its base URL, an operator key and a
    customer key (customer ``Ada``)."""

    url: str
    operator_key: str
    customer_key: str


@contextlib.contextmanager
def running_platform(folder: Path, serve_args: Sequence[str]) -> Iterator[RunningPlatform]:
    """``serve`` with ``serve_args`` and its database and log in ``folder``; stopped with
    SIGTERM afterwards."""
    db_url = f"sqlite:///{folder / 'platform.sqlite'}"
    operator_key = create_key(db_url, "operator").key
    customer_key = create_key(db_url, "customer", "Ada").key
    port = free_port()
    server = start_server(db_url, port, list(serve_args), log=folder / "serve.log")
    try:
        yield RunningPlatform(f"http://127.0.0.1:{port}", operator_key, customer_key)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(20)


@pytest.fixture(scope="session")
def scenario_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scenarios folder with ``small.yaml`` (the baseline over 6 h, strike policy) and
    ``small_oracle.yaml`` (the same world with a quick oracle: few re-solves)."""
    folder = tmp_path_factory.mktemp("scenarios")
    small = {
        "base": str(BASELINE),
        "name": "small",
        "description": "The baseline over its first six hours.",
        "duration_days": SMALL_DAYS,
    }
    (folder / "small.yaml").write_text(yaml.safe_dump(small), encoding="utf-8")
    oracle = {
        "base": "small.yaml",
        "name": "small_oracle",
        "policy": {"name": "oracle", "horizon_h": 6, "resolve_every": 12},
    }
    (folder / "small_oracle.yaml").write_text(yaml.safe_dump(oracle), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory: pytest.TempPathFactory, scenario_dir: Path) -> Path:
    """A results folder with two runs of ``small`` (the second with BTC at half price)
    and a backtest of always_on, strike and the oracle on ``small_oracle``."""
    folder = tmp_path_factory.mktemp("results")
    small = scenario_dir / "small.yaml"
    for name, overrides in zip(
        RUN_NAMES, ({}, {"market.btc_price.initial_usd": 59925}), strict=True
    ):
        build(load_scenario(small, overrides)).run().write(folder / name)
    scenario = prepare_scenario(scenario_dir / "small_oracle.yaml", {})
    run_backtest(scenario, ("always_on", "strike", "oracle"), folder / BACKTEST_NAME)
    return folder


@pytest.fixture()
def dashboard_env(monkeypatch: pytest.MonkeyPatch, scenario_dir: Path, results_dir: Path) -> Path:
    """Point the pages at the test folders (as ``run.py dashboard --results --scenarios``
    does); returns the results folder."""
    monkeypatch.setenv(ENV_SCENARIOS_DIR, str(scenario_dir))
    monkeypatch.setenv(ENV_RESULTS_DIR, str(results_dir))
    return results_dir
