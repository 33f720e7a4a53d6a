"""Fault plans: deterministic draws, naming by index or address, changes at run time."""

from __future__ import annotations

import pytest

from drivers.emulators.errors import EmulatorConfigError
from drivers.emulators.faults import FaultKind, FaultPlan, parse_fault_spec

ADDRESSES = [f"127.9.0.{i}" for i in range(1, 101)]


def bound_plan(seed: int, fraction: float) -> FaultPlan:
    plan = FaultPlan(seed=seed)
    plan.inject_fraction(FaultKind.TIMEOUT, fraction)
    plan.bind(ADDRESSES)
    return plan


def test_fraction_draw_is_deterministic_and_sized() -> None:
    """The same seed picks the same miners; the count is the fraction of the farm."""
    first = bound_plan(seed=7, fraction=0.1).faulty_indices()
    again = bound_plan(seed=7, fraction=0.1).faulty_indices()
    other = bound_plan(seed=8, fraction=0.1).faulty_indices()
    assert first == again
    assert len(first) == 10
    assert first != other


def test_fraction_draws_pick_disjoint_miners() -> None:
    """Several fractions never give one miner two faults."""
    plan = FaultPlan(seed=1)
    plan.inject_fraction("timeout", 0.3)
    plan.inject_fraction("refuse", 0.3)
    plan.bind(ADDRESSES)
    timeouts = set(plan.faulty_indices("timeout"))
    refusals = set(plan.faulty_indices("refuse"))
    assert len(timeouts) == 30 and len(refusals) == 30
    assert not timeouts & refusals


def test_faults_named_by_address_resolve_when_bound() -> None:
    """A fault named by address before binding lands on that miner's index."""
    plan = FaultPlan()
    plan.inject("127.9.0.5", "wrong_reading", reading_factor=2.0)
    plan.bind(ADDRESSES)
    fault = plan.fault_for(4)
    assert fault is not None
    assert fault.kind == FaultKind.WRONG_READING and fault.reading_factor == 2.0


def test_faults_can_be_cleared_at_run_time() -> None:
    """Clearing one miner's fault, or all, makes it behave again."""
    plan = bound_plan(seed=0, fraction=0.05)
    victim = plan.faulty_indices()[0]
    plan.clear(ADDRESSES[victim])
    assert plan.fault_for(victim) is None
    assert len(plan.faulty_indices()) == 4
    plan.clear()
    assert plan.faulty_indices() == ()


def test_bad_fault_input_is_rejected_with_the_reason() -> None:
    """Unknown kinds, fractions outside [0, 1], unknown addresses, oversubscribed draws
    and double binding raise errors that say what is wrong."""
    with pytest.raises(EmulatorConfigError, match="unknown kind"):
        FaultPlan().inject(0, "explode")
    with pytest.raises(EmulatorConfigError, match=r"\[0, 1\]"):
        FaultPlan().inject_fraction("timeout", 1.5)
    plan = FaultPlan()
    plan.bind(ADDRESSES)
    with pytest.raises(EmulatorConfigError, match="no miner at address"):
        plan.inject("127.9.1.1", "timeout")
    with pytest.raises(EmulatorConfigError, match="already bound"):
        plan.bind(ADDRESSES)
    plan.inject_fraction("malformed", 0.9)
    with pytest.raises(EmulatorConfigError, match="only 10 of 100"):
        plan.inject_fraction("refuse", 0.2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("timeout:0.1", (FaultKind.TIMEOUT, 0.1)),
        ("wrong_reading:1", (FaultKind.WRONG_READING, 1.0)),
    ],
)
def test_fault_specs_parse(text: str, expected: tuple[FaultKind, float]) -> None:
    """``KIND:FRACTION`` parses into a kind and a fraction."""
    assert parse_fault_spec(text) == expected


@pytest.mark.parametrize("text", ["timeout", "timeout:lots", "nope:0.1", "refuse:-0.1"])
def test_bad_fault_specs_are_rejected(text: str) -> None:
    """A malformed ``KIND:FRACTION`` raises an error naming the fault option."""
    with pytest.raises(EmulatorConfigError, match="fault"):
        parse_fault_spec(text)
