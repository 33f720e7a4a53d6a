"""Decisions as pure functions of a typed snapshot: no SimPy, no IO, no clock."""
