"""Typed suite file schema (pydantic) and its loading.

A suite file is YAML: a list of scenario runs (``scenarios``), each with the KPIs to
compare, the values expected for them and the tolerances allowed. See ``scenarios/README.md``
("Suites") for the format and ``scenarios/suites/ci.yaml`` for the CI suite.

Every problem is reported as ``path: reason`` in the file's own terms, e.g.
``scenarios[1].kpis[0]: 'wall_s' depends on wall-clock time and is never comparable``;
:class:`SuiteError` carries all of them.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator

from twin.scenario import Strict, format_validation_error

WALL_CLOCK_KPIS = ("wall_s",)
"""Top-level KPIs that measure the machine, not the model: they differ between two runs of
the same scenario and seed, so a suite may never compare them."""

_SEGMENT = re.compile(r"^(\*|[A-Za-z0-9_-]+)$")


class SuiteError(ValueError):
    """A suite file could not be loaded; ``problems`` lists each as ``path: reason``."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "invalid suite\n  " + "\n  ".join(problems))


def _check_kpi_pattern(value: str) -> str:
    """A dotted KPI path (``net_usd``, ``utilization.gpu``, ``sla.*.met_fraction``)."""
    parts = value.split(".")
    if not value or not all(_SEGMENT.match(part) for part in parts):
        raise ValueError(
            f"{value!r} is not a KPI path: names of letters, digits, '_' or '-' joined by "
            "dots, '*' for any one name (e.g. sla.*.met_fraction)"
        )
    if parts[0] in WALL_CLOCK_KPIS:
        raise ValueError(f"{value!r} depends on wall-clock time and is never comparable")
    return value


def _check_kpi_leaf(value: str) -> str:
    """A KPI path without wildcards: the key of one recorded value."""
    _check_kpi_pattern(value)
    if "*" in value.split("."):
        raise ValueError(f"{value!r}: an expected value names one KPI, without '*'")
    return value


KpiPattern = Annotated[str, AfterValidator(_check_kpi_pattern)]
"""A KPI path that may name a group (all numbers under it) or use ``*`` for one level."""
KpiLeaf = Annotated[str, AfterValidator(_check_kpi_leaf)]
"""The dotted path of one number in ``kpis.json``."""
KpiValue = int | float | None
"""A recorded KPI value (``null`` where the run had no data, e.g. no job of a type)."""


class Tolerance(Strict):
    """How far a KPI may move: ``|got - expected| <= max(abs, rel * |expected|)``.

    ``rel`` is a fraction of the expected value [-]; ``abs`` is in the KPI's own unit (USD,
    MWh, a fraction, jobs ...). Give either or both; an omitted one is 0.
    """

    rel: float = Field(0.0, ge=0, le=1)
    abs: float = Field(0.0, ge=0)

    def allowed(self, expected: float) -> float:
        """The largest difference allowed around ``expected`` [the KPI's unit]."""
        return max(self.abs, self.rel * abs(expected))

    def accepts(self, expected: KpiValue, got: KpiValue) -> bool:
        """True when ``got`` is within tolerance of ``expected``; ``None`` matches only
        ``None`` and NaN never matches."""
        if expected is None or got is None:
            return expected is None and got is None
        if math.isnan(expected) or math.isnan(got):
            return False
        return abs(got - expected) <= self.allowed(expected)

    def describe(self) -> str:
        """``rel 1e-06, abs 0.01`` (only the parts that are set; ``exact`` when none)."""
        parts = [f"{name} {value:g}" for name, value in (("rel", self.rel), ("abs", self.abs))]
        kept = [part for part, value in zip(parts, (self.rel, self.abs), strict=True) if value]
        return ", ".join(kept) or "exact"


DEFAULT_TOLERANCE = Tolerance(rel=1e-6)


class SuiteDefaults(Strict):
    """Settings every entry inherits: the KPIs compared, the suite-wide tolerance and
    per-KPI tolerances (a key names a KPI or a group; the most specific match wins)."""

    kpis: list[KpiPattern] = Field(default_factory=list)
    tolerance: Tolerance = DEFAULT_TOLERANCE
    tolerances: dict[KpiPattern, Tolerance] = Field(default_factory=dict)


class SuiteEntry(Strict):
    """One scenario run of the suite and what its KPIs must be.

    ``scenario`` is a path relative to the suite file; ``days`` (shorthand for
    ``duration_days``) and ``set`` (dotted path -> value, as ``--set``) change it for the run.
    ``kpis`` and ``tolerances`` add to / override the suite defaults; ``expected`` maps each
    compared KPI (a dotted path to one number) to its recorded value and is rewritten by
    ``suite --update``.
    """

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=60)
    description: str = ""
    scenario: str = Field(min_length=1)
    days: float | None = Field(None, gt=0, le=3660)
    set: dict[str, Any] = Field(default_factory=dict)
    kpis: list[KpiPattern] | None = None
    tolerances: dict[KpiPattern, Tolerance] = Field(default_factory=dict)
    expected: dict[KpiLeaf, KpiValue] | None = None

    def overrides(self) -> dict[str, Any]:
        """Scenario overrides by dotted path: ``set``, then ``days`` as ``duration_days``."""
        overrides = dict(self.set)
        if self.days is not None:
            overrides["duration_days"] = self.days
        return overrides


class Suite(Strict):
    """A named list of scenario runs with expected KPIs (see the module docstring)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", max_length=60)
    description: str = ""
    defaults: SuiteDefaults = SuiteDefaults()
    scenarios: list[SuiteEntry] = Field(min_length=1)

    @field_validator("scenarios")
    @classmethod
    def _unique_ids(cls, value: list[SuiteEntry]) -> list[SuiteEntry]:
        seen: set[str] = set()
        for index, entry in enumerate(value):
            if entry.id in seen:
                raise ValueError(f"[{index}].id {entry.id!r} appears twice")
            seen.add(entry.id)
        return value

    @model_validator(mode="after")
    def _every_entry_compares_something(self) -> Suite:
        for index, entry in enumerate(self.scenarios):
            if not self.kpis_of(entry):
                raise ValueError(
                    f"scenarios[{index}].kpis: no KPIs to compare; list them here or in "
                    "defaults.kpis"
                )
        return self

    def kpis_of(self, entry: SuiteEntry) -> list[str]:
        """The KPI patterns ``entry`` compares: its own list, else the defaults'."""
        return list(entry.kpis if entry.kpis is not None else self.defaults.kpis)


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file.

    Raises:
        SuiteError: unreadable file, bad YAML, or invalid fields (each as ``path: reason``).
    """
    path = Path(path)
    return parse_suite(read_suite_text(path), source=str(path))


def read_suite_text(path: Path) -> str:
    """The text of a suite file.

    Raises:
        SuiteError: the file cannot be read.
    """
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise SuiteError([f"cannot read file: {error.strerror or error}"], str(path)) from None


def parse_suite(text: str, source: str | None = None) -> Suite:
    """Validate suite YAML ``text``; ``source`` names the file in errors.

    Raises:
        SuiteError: bad YAML, a top level that is not a mapping, or invalid fields.
    """
    try:
        data = yaml.safe_load(text)
        duplicates = _duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise SuiteError([f"{where}not valid YAML ({problem})"], source) from None
    if duplicates:
        raise SuiteError(duplicates, source)
    if not isinstance(data, dict):
        raise SuiteError(["top level must be a mapping of fields"], source)
    try:
        return Suite.model_validate(data)
    except ValidationError as error:
        raise SuiteError(format_validation_error(error), source) from None


def _duplicate_keys(node: yaml.Node | None) -> list[str]:
    """``line L, column C: duplicate key 'k'`` for every key repeated within one mapping
    (plain PyYAML keeps the last silently, and ``--update`` must edit the one that counts)."""
    problems: list[str] = []
    pending = [node] if node is not None else []
    while pending:
        current = pending.pop()
        if isinstance(current, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        mark = key.start_mark
                        problems.append(
                            f"line {mark.line + 1}, column {mark.column + 1}: "
                            f"duplicate key {key.value!r}"
                        )
                    seen.add(key.value)
                pending.append(value)
        elif isinstance(current, yaml.SequenceNode):
            pending.extend(current.value)
    return sorted(problems)
