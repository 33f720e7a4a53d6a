"""KPI selection and comparison: which numbers of a run's ``kpis.json`` a suite entry
checks, and whether each is within tolerance of its expected value.

A KPI pattern is a dotted path into the nested ``kpis.json`` mapping. It may stop at a group
(``utilization`` means every number under it: ``utilization.gpu``, ``utilization.asic``,
``utilization.power``) and ``*`` matches any one name (``sla.*.met_fraction``). Only numbers
and ``null`` are compared; the wall-clock KPIs (:data:`~twin.suite.model.WALL_CLOCK_KPIS`)
are never selected.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from twin.suite.model import WALL_CLOCK_KPIS, KpiValue, Suite, SuiteEntry, Tolerance

NOT_RECORDED = "no expected value recorded (run with --update)"
MISSING_IN_RUN = "expected, but the run's kpis.json has no such number"
NOT_SELECTED = "recorded, but not among the KPIs compared (run with --update to drop it)"


@dataclass(frozen=True)
class KpiCheck:
    """One KPI of one run against its expected value.

    Attributes:
        path: dotted KPI path, e.g. ``utilization.gpu``.
        expected: the recorded value (``None`` when the file records ``null``).
        got: the run's value (``None`` when ``null`` or absent, see ``note``).
        tolerance: the tolerance that applies to ``path``.
        passed: within tolerance.
        note: why a check failed other than by its value (:data:`NOT_RECORDED`,
            :data:`MISSING_IN_RUN`, :data:`NOT_SELECTED`), else empty.
    """

    path: str
    expected: KpiValue
    got: KpiValue
    tolerance: Tolerance
    passed: bool
    note: str = ""

    def describe(self) -> str:
        """One line, e.g. ``net_usd: expected 1.5, got 2.5 (diff +1), tolerance rel 1e-06
        (±1.5e-06)``."""
        if self.note == NOT_RECORDED:
            return f"{self.path}: got {_number(self.got)}, {self.note}"
        if self.note in (MISSING_IN_RUN, NOT_SELECTED):
            return f"{self.path}: expected {_number(self.expected)}, {self.note}"
        diff = ""
        if self.expected is not None and self.got is not None:
            diff = f" (diff {self.got - self.expected:+.6g})"
        allowed = ""
        if self.expected is not None:
            allowed = f" (±{self.tolerance.allowed(self.expected):.6g})"
        return (
            f"{self.path}: expected {_number(self.expected)}, got {_number(self.got)}{diff}, "
            f"tolerance {self.tolerance.describe()}{allowed}"
        )


def select_kpis(
    kpis: Mapping[str, Any], patterns: list[str]
) -> tuple[dict[str, KpiValue], list[str]]:
    """The numbers of ``kpis`` that ``patterns`` name, by dotted path in file order, and the
    patterns that matched no number at all."""
    selected: dict[str, KpiValue] = {}
    unmatched: list[str] = []
    for pattern in patterns:
        found = list(_expand(kpis, pattern.split("."), ()))
        if not found:
            unmatched.append(pattern)
        for path, value in found:
            selected.setdefault(path, value)
    return selected, unmatched


def compare_entry(
    suite: Suite, entry: SuiteEntry, kpis: Mapping[str, Any]
) -> tuple[list[KpiCheck], list[str]]:
    """Check the KPIs ``entry`` compares in a run's ``kpis``; returns the checks (in the
    order of the run's KPIs, then expected values missing from the run) and the patterns
    that matched nothing in the run."""
    observed, unmatched = select_kpis(kpis, suite.kpis_of(entry))
    expected = entry.expected or {}
    checks = []
    for path, got in observed.items():
        tolerance = tolerance_for(suite, entry, path)
        if path not in expected:
            checks.append(KpiCheck(path, None, got, tolerance, False, NOT_RECORDED))
            continue
        want = expected[path]
        checks.append(KpiCheck(path, want, got, tolerance, tolerance.accepts(want, got)))
    for path, want in expected.items():
        if path not in observed:
            tolerance = tolerance_for(suite, entry, path)
            note = NOT_SELECTED if select_kpis(kpis, [path])[0] else MISSING_IN_RUN
            checks.append(KpiCheck(path, want, None, tolerance, False, note))
    return checks, unmatched


def tolerance_for(suite: Suite, entry: SuiteEntry, path: str) -> Tolerance:
    """The tolerance of KPI ``path``: the most specific matching key of the entry's
    ``tolerances``, else of ``defaults.tolerances``, else ``defaults.tolerance``."""
    for table in (entry.tolerances, suite.defaults.tolerances):
        best = _most_specific(table, path.split("."))
        if best is not None:
            return best
    return suite.defaults.tolerance


def _most_specific(table: Mapping[str, Tolerance], parts: list[str]) -> Tolerance | None:
    """The entry whose key matches the longest leading part of ``parts`` (exact names beat
    ``*`` at equal length)."""
    best: tuple[int, int] | None = None
    chosen = None
    for key, tolerance in table.items():
        key_parts = key.split(".")
        if len(key_parts) > len(parts):
            continue
        if not all(k in ("*", p) for k, p in zip(key_parts, parts, strict=False)):
            continue
        rank = (len(key_parts), -key_parts.count("*"))
        if best is None or rank > best:
            best, chosen = rank, tolerance
    return chosen


def _expand(node: Any, parts: list[str], prefix: tuple[str, ...]) -> Iterator[tuple[str, KpiValue]]:
    """``(path, value)`` of every number under ``node`` that ``parts`` selects."""
    if not parts:
        yield from _leaves(node, prefix)
        return
    if not isinstance(node, Mapping):
        return
    head, rest = parts[0], parts[1:]
    keys = list(node) if head == "*" else [head] if head in node else []
    for key in keys:
        if not prefix and key in WALL_CLOCK_KPIS:
            continue
        yield from _expand(node[key], rest, (*prefix, str(key)))


def _leaves(node: Any, prefix: tuple[str, ...]) -> Iterator[tuple[str, KpiValue]]:
    """Every number (or null) at or under ``node``, depth first in mapping order."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if not prefix and key in WALL_CLOCK_KPIS:
                continue
            yield from _leaves(value, (*prefix, str(key)))
    elif node is None or (isinstance(node, int | float) and not isinstance(node, bool)):
        yield ".".join(prefix), node


def _number(value: KpiValue) -> str:
    return "null" if value is None else f"{value:.10g}"
