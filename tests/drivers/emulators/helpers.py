"""Shared helpers of the emulator tests: a settable clock and the pyasic import."""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

import pytest

PYASIC_WARNINGS = pytest.mark.filterwarnings(
    "ignore:passing settings to md5_crypt.hash:DeprecationWarning"
)
"""Mark for tests driving pyasic's Whatsminer client: pyasic 0.79 calls passlib's
``md5_crypt.hash(secret, salt=...)``, deprecated in passlib, on every privileged command."""


class FakeClock:
    """A clock that only moves when told to [s]."""

    def __init__(self, t_s: float = 1000.0) -> None:
        self.t_s = t_s

    def __call__(self) -> float:
        return self.t_s

    def advance(self, dt_s: float) -> None:
        """Move the clock forward by ``dt_s`` [s]."""
        self.t_s += dt_s


def import_pyasic() -> ModuleType:
    """pyasic, imported with its own deprecation warnings silenced (pyasic 0.79 defines
    pydantic models with class-based config, which warns at import; tests turn warnings
    into errors)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.import_module("pyasic")
