"""Shared fixtures for the dataset tests: small CSV files written on the fly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

REAL_DIR = Path(__file__).resolve().parents[2] / "datasets" / "real"


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[[str, list[str]], Path]:
    """Write ``lines`` (header first) to ``tmp_path/name`` and return the path."""

    def write(name: str, lines: list[str]) -> Path:
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return write
