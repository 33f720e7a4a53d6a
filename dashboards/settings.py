"""Where the dashboards read from: results folder, scenarios folder and the platform API.

``python run.py dashboard --results DIR --scenarios DIR --api URL`` passes its options to
the Streamlit process as environment variables (:meth:`DashboardSettings.to_env`); every
page reads them back with :meth:`DashboardSettings.from_env`, so a page holds no state of
its own about where things are.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from twin.scenario import PROJECT_ROOT

ENV_RESULTS_DIR = "HCP_DASHBOARD_RESULTS"
ENV_SCENARIOS_DIR = "HCP_DASHBOARD_SCENARIOS"
ENV_API_URL = "HCP_DASHBOARD_API_URL"
DEFAULT_RESULTS_DIR = PROJECT_ROOT / "results"
DEFAULT_SCENARIOS_DIR = PROJECT_ROOT / "scenarios"
DEFAULT_API_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class DashboardSettings:
    """Folders and URL the pages use.

    Attributes:
        results_dir: run folders as ``python run.py simulate/backtest`` writes them; new
            runs started from the dashboards are written here too.
        scenarios_dir: scenario YAML files offered in the pickers; derived scenarios are
            saved here by default.
        api_url: base URL of a running ``serve`` or ``live`` instance (operations pages).
    """

    results_dir: Path = DEFAULT_RESULTS_DIR
    scenarios_dir: Path = DEFAULT_SCENARIOS_DIR
    api_url: str = DEFAULT_API_URL

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DashboardSettings:
        """Settings from ``environ`` (the process environment by default); unset or empty
        variables give the defaults. Relative folders are taken from the project root."""
        env = os.environ if environ is None else environ
        return cls(
            results_dir=_folder(env.get(ENV_RESULTS_DIR), DEFAULT_RESULTS_DIR),
            scenarios_dir=_folder(env.get(ENV_SCENARIOS_DIR), DEFAULT_SCENARIOS_DIR),
            api_url=(env.get(ENV_API_URL) or DEFAULT_API_URL).rstrip("/"),
        )

    def to_env(self) -> dict[str, str]:
        """The environment variables that make :meth:`from_env` return these settings."""
        return {
            ENV_RESULTS_DIR: str(self.results_dir),
            ENV_SCENARIOS_DIR: str(self.scenarios_dir),
            ENV_API_URL: self.api_url,
        }


def _folder(value: str | None, default: Path) -> Path:
    if not value:
        return default
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path
