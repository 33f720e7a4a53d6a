"""The runs of a sweep: grid points crossed with Monte Carlo seeds, each with a stable key.

Seeds: run ``i`` (``i = 0 .. seeds-1``) of every grid point uses the scenario seed (after
``--set``) plus ``i``. The scenario seed feeds ``numpy.random.SeedSequence`` (twin.rng),
which hashes it, so neighbouring integers give independent random streams; and grid point
``k`` seed ``i`` sees the same world draws as grid point ``j`` seed ``i`` (common random
numbers, which sharpens comparisons between grid points).

Run key: the first 20 hex digits of SHA-256 over the scenario mapping merged over its
``base:`` chain (the files' content, not their paths) and every override of the run
(``--set``, the grid point, ``--days``, the seed). Historical data files a scenario names
are not part of the key.

Every grid point is validated here, before any run starts, so a bad path or value is a
:class:`twin.scenario.ScenarioError` naming the field.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin.scenario import Scenario, load_merged_mapping, set_path, validate_scenario
from twin.sweep.grid import GridAxis, SweepInputError, canonical_json, grid_points, point_label

RUN_KEY_HEX_DIGITS = 20
MAX_SEED = 2**63 - 1
"""Largest scenario seed the schema accepts."""


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs to simulate one run (small and picklable).

    ``scenario`` is the merged scenario mapping, sent rather than the file path so that
    workers on other machines need no copy of the scenario files (historical data files
    are still read from ``base_dir`` on the worker).
    """

    run_key: str
    point: int
    seed: int
    scenario: Mapping[str, Any] = field(repr=False)
    overrides: Mapping[str, Any]
    source: str
    base_dir: str


@dataclass(frozen=True)
class SweepPlan:
    """Grid points (override mappings) and every run, ordered by grid point then seed."""

    scenario_path: Path
    axes: tuple[GridAxis, ...]
    points: tuple[dict[str, Any], ...]
    runs: tuple[RunSpec, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        """One label per grid point (``path=value, ...``)."""
        return tuple(point_label(point) for point in self.points)


def build_plan(
    scenario_path: Path,
    axes: Sequence[GridAxis],
    seeds: int,
    overrides: Mapping[str, Any] | None = None,
) -> SweepPlan:
    """Validate every grid point and lay out the runs.

    Args:
        scenario_path: scenario YAML file.
        axes: the grid (see twin.sweep.grid); none means one point, the scenario itself.
        seeds: Monte Carlo runs per grid point (>= 1).
        overrides: ``--set``/``--days`` overrides applied to every run before the grid
            point (path -> value).

    Raises:
        SweepInputError: ``seeds`` < 1, or seeds beyond the largest allowed.
        ScenarioError: the scenario file, or the scenario at some grid point, is invalid
            (names the field).
    """
    if seeds < 1:
        raise SweepInputError(f"--seeds {seeds}: must be at least 1")
    scenario_path = Path(scenario_path)
    mapping = load_merged_mapping(scenario_path)
    base_overrides = dict(overrides or {})
    base_seed = resolve_scenario(mapping, base_overrides, scenario_path).seed
    if base_seed + seeds - 1 > MAX_SEED:
        raise SweepInputError(f"--seeds {seeds}: seed {base_seed} + {seeds - 1} exceeds {MAX_SEED}")
    points = grid_points(axes)
    runs: list[RunSpec] = []
    for index, point in enumerate(points):
        point_overrides = {**base_overrides, **point}
        resolve_scenario(mapping, point_overrides, scenario_path)
        for offset in range(seeds):
            seed = base_seed + offset
            run_overrides = {**point_overrides, "seed": seed}
            runs.append(
                RunSpec(
                    run_key=run_key(mapping, run_overrides),
                    point=index,
                    seed=seed,
                    scenario=mapping,
                    overrides=run_overrides,
                    source=str(scenario_path),
                    base_dir=str(scenario_path.parent.resolve()),
                )
            )
    return SweepPlan(scenario_path, tuple(axes), tuple(points), tuple(runs))


def resolve_scenario(
    mapping: Mapping[str, Any], overrides: Mapping[str, Any], source: str | Path
) -> Scenario:
    """The validated scenario of ``mapping`` with ``overrides`` set by dotted path, in
    order (what ``load_scenario`` does, on an already merged mapping).

    Raises:
        ScenarioError: an override path that does not fit, or an invalid field.
    """
    data = copy.deepcopy(dict(mapping))
    for path, value in overrides.items():
        set_path(data, path, copy.deepcopy(value), source=str(source))
    return validate_scenario(data, source=str(source), base_dir=Path(source).parent)


def spec_scenario(spec: RunSpec) -> Scenario:
    """The validated scenario of one run (on a worker: data files resolved from
    ``spec.base_dir``)."""
    data = copy.deepcopy(dict(spec.scenario))
    for path, value in spec.overrides.items():
        set_path(data, path, copy.deepcopy(value), source=spec.source)
    return validate_scenario(data, source=spec.source, base_dir=Path(spec.base_dir))


def run_key(mapping: Mapping[str, Any], overrides: Mapping[str, Any]) -> str:
    """Stable key of a run: hash of the merged scenario mapping and the run's overrides."""
    pairs = [[path, value] for path, value in overrides.items()]  # order matters: kept
    text = canonical_json({"scenario": mapping, "overrides": pairs})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:RUN_KEY_HEX_DIGITS]
