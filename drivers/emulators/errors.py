"""Errors of the miner emulators."""

from __future__ import annotations


class EmulatorConfigError(ValueError):
    """An emulator farm, fault plan or miner table was set up or commanded with bad input;
    the message names the field and the reason."""
