"""Parameter grids: ``--grid PATH=V1,V2,...`` arguments and their cross product.

``PATH`` is a dotted scenario path, the same as ``--set`` takes
(``market.btc_price.initial_usd``, ``facilities[west-mine].power_cap_mw``). The values are
read as one YAML flow sequence, so plain lists (``40,45,50``, ``strike,greedy``) and values
holding commas themselves (``{kind: constant, value: 30},{kind: synthetic}``) both work.
Grid points are the cross product of the axes in the order given: the last axis varies
fastest.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

RESERVED_PATHS = frozenset({"seed"})
"""Paths a grid may not vary: Monte Carlo seeds come from ``--seeds``."""


class SweepInputError(ValueError):
    """A bad sweep argument (names the argument and the reason)."""


@dataclass(frozen=True)
class GridAxis:
    """One ``--grid`` argument: a scenario path and the values it takes, in order."""

    path: str
    values: tuple[Any, ...]


def parse_grid_arg(text: str) -> GridAxis:
    """Parse one ``PATH=V1,V2,...`` argument.

    Raises:
        SweepInputError: no ``=``, an empty path or value list, values that are not valid
            YAML, a value given twice, or a reserved path (``seed``).
    """
    path, sep, raw_values = text.partition("=")
    path = path.strip()
    where = f"--grid {text!r}"
    if not sep or not path:
        raise SweepInputError(f"{where}: expected PATH=VALUE1,VALUE2,...")
    if path in RESERVED_PATHS:
        raise SweepInputError(f"{where}: {path} cannot be a grid axis; use --seeds N")
    if not raw_values.strip():
        raise SweepInputError(f"{where}: empty value list")
    try:
        values = yaml.safe_load(f"[{raw_values}]")
    except yaml.YAMLError:
        raise SweepInputError(f"{where}: the values are not a valid YAML list") from None
    if not isinstance(values, list) or not values:
        raise SweepInputError(f"{where}: empty value list")
    seen: set[str] = set()
    for value in values:
        canonical = canonical_json(value)
        if canonical in seen:
            raise SweepInputError(f"{where}: value {value_label(value)} appears twice")
        seen.add(canonical)
    return GridAxis(path, tuple(values))


def parse_grid_args(texts: Sequence[str]) -> tuple[GridAxis, ...]:
    """Parse every ``--grid`` argument.

    Raises:
        SweepInputError: a bad argument (see :func:`parse_grid_arg`) or a path given twice.
    """
    axes = tuple(parse_grid_arg(text) for text in texts)
    paths = [axis.path for axis in axes]
    for path in paths:
        if paths.count(path) > 1:
            raise SweepInputError(f"--grid {path}: the same path is given twice")
    return axes


def grid_points(axes: Sequence[GridAxis]) -> list[dict[str, Any]]:
    """The cross product of ``axes`` as override mappings (path -> value), last axis
    fastest; one empty mapping when there are no axes (the scenario as it is)."""
    combos = itertools.product(*(axis.values for axis in axes))
    return [{axis.path: value for axis, value in zip(axes, combo, strict=True)} for combo in combos]


def point_label(point: dict[str, Any]) -> str:
    """A short text for a grid point: ``path=value, path=value`` (``base`` when empty)."""
    if not point:
        return "base"
    return ", ".join(f"{path}={value_label(value)}" for path, value in point.items())


def value_label(value: Any) -> str:
    """A value as one line of YAML flow text (``40``, ``strike``, ``{kind: constant}``)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def canonical_json(value: Any) -> str:
    """Key-sorted compact JSON of ``value`` (non-JSON scalars such as dates as text): equal
    values give equal text, the basis of run keys."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
