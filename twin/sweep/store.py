"""Finished runs of a sweep, one JSON file each: ``OUT/runs/<run_key>.json``.

A record holds the run key, its overrides (seed included), its KPIs without ``wall_s``
and, apart, ``wall_s`` [s]. Records are written atomically as runs finish, so an
interrupted sweep loses only the runs in flight; re-running the same sweep skips every run
whose record exists. Failed runs are not stored: a re-run tries them again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twin.kpis import kpis_json, kpis_without_wall
from twin.recorder import atomic_output

RUNS_DIR = "runs"


class RunStoreError(ValueError):
    """A stored run record is unreadable or not for the key it is filed under (names the
    file)."""


class RunStore:
    """The ``runs/`` folder of a sweep's output folder."""

    def __init__(self, out_dir: Path) -> None:
        self.folder = Path(out_dir) / RUNS_DIR

    def record_path(self, run_key: str) -> Path:
        """Where the record of ``run_key`` lives."""
        return self.folder / f"{run_key}.json"

    def results_dir(self, run_key: str) -> Path:
        """Where the full results folder of ``run_key`` goes with ``--keep-runs``."""
        return self.folder / run_key

    def has(self, run_key: str) -> bool:
        """Whether ``run_key`` finished in an earlier or the current sweep."""
        return self.record_path(run_key).is_file()

    def save(self, run_key: str, overrides: Mapping[str, Any], kpis: Mapping[str, Any]) -> Path:
        """Write the record of a finished run atomically; returns its path."""
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {
            "run_key": run_key,
            "overrides": json.loads(json.dumps(dict(overrides), default=str)),
            "kpis": kpis_without_wall(kpis),
            "wall_s": kpis.get("wall_s"),
        }
        path = self.record_path(run_key)
        with atomic_output(path) as handle:
            handle.write(kpis_json(record))
        return path

    def load(self, run_key: str) -> dict[str, Any]:
        """The record of ``run_key``.

        Raises:
            RunStoreError: the file is missing, not JSON, or holds another key.
        """
        path = self.record_path(run_key)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise RunStoreError(f"{path}: cannot read ({error.strerror or error})") from None
        except json.JSONDecodeError as error:
            raise RunStoreError(f"{path}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict) or record.get("run_key") != run_key:
            raise RunStoreError(f"{path}: not the record of run {run_key}")
        if not isinstance(record.get("kpis"), dict):
            raise RunStoreError(f"{path}: kpis: missing or not a mapping")
        return record
