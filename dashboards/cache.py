"""Cached reads for the pages (Streamlit's data cache), keyed by file and modification time.

A page reruns on every interaction; these wrappers keep reruns cheap by reading a results
file again only when it changed. Each returns a copy the caller may modify.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboards import results
from twin.backtest import BACKTEST_JSON
from twin.recorder import KPIS_FILE, TIMESERIES_FILE
from twin.scenario import Scenario, load_scenario


def file_stamp(path: Path) -> float:
    """Modification time of ``path`` [s since the Unix epoch]; 0 when it does not exist
    (the read that follows reports the missing file)."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def scenario(path: Path) -> Scenario:
    """The validated scenario of a file (raises twin.scenario.ScenarioError)."""
    return _scenario(str(path), file_stamp(path))


@st.cache_data(max_entries=32, show_spinner=False)
def _scenario(path: str, stamp: float) -> Scenario:
    return load_scenario(path)


def kpis(run_dir: Path) -> dict[str, Any]:
    """``kpis.json`` of a run folder."""
    return _kpis(str(run_dir), file_stamp(run_dir / KPIS_FILE))


@st.cache_data(max_entries=128, show_spinner=False)
def _kpis(run_dir: str, stamp: float) -> dict[str, Any]:
    return results.read_kpis(Path(run_dir))


def timeseries(run_dir: Path, columns: Sequence[str]) -> pd.DataFrame:
    """The key columns and ``columns`` of a run's time series."""
    return _timeseries(str(run_dir), file_stamp(run_dir / TIMESERIES_FILE), tuple(columns))


@st.cache_data(max_entries=64, show_spinner=False)
def _timeseries(run_dir: str, stamp: float, columns: tuple[str, ...]) -> pd.DataFrame:
    return results.read_timeseries(Path(run_dir), columns)


def backtest_summary(folder: Path) -> dict[str, Any]:
    """``backtest.json`` of a backtest folder."""
    return _backtest_summary(str(folder), file_stamp(folder / BACKTEST_JSON))


@st.cache_data(max_entries=32, show_spinner=False)
def _backtest_summary(folder: str, stamp: float) -> dict[str, Any]:
    return results.read_backtest_summary(Path(folder))


def backtest_series(folder: Path) -> pd.DataFrame:
    """Every policy's series of a backtest (results.read_backtest_series)."""
    return _backtest_series(str(folder), file_stamp(folder / BACKTEST_JSON))


@st.cache_data(max_entries=8, show_spinner=False)
def _backtest_series(folder: str, stamp: float) -> pd.DataFrame:
    path = Path(folder)
    return results.read_backtest_series(path, results.read_backtest_summary(path))
