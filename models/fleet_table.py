"""Group tables of the fleets: which device rows belong to which (facility, spec) group.

Both fleets are built from ``(facility_index, spec, count, ...)`` groups. Groups of one
(facility, spec) merge into one table entry — an ASIC *class* or a GPU *pool* — ordered by
facility, then by the spec's first appearance; entry ``g`` covers the contiguous device rows
``start[g]:start[g + 1]``. This module checks the groups, builds that table and answers
lookups into it; the fleets keep their own column names (``class_*``, ``pool_*``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from models.fleet_physics import FleetError
from models.hardware import AsicSpec, GpuSpec

SpecT = TypeVar("SpecT", AsicSpec, GpuSpec)
ExtraT = TypeVar("ExtraT")


@dataclass(frozen=True, slots=True)
class GroupTable:
    """The merged, sorted groups of a fleet.

    Attributes:
        n_facilities: facilities the fleet spans [-].
        facility: facility index of each entry, int16 ``[entries]``.
        spec: index into the fleet's spec list of each entry, int16 ``[entries]``.
        start: first device row of each entry, and the device count last, int64
            ``[entries + 1]``.
    """

    n_facilities: int
    facility: np.ndarray
    spec: np.ndarray
    start: np.ndarray


@dataclass(frozen=True, slots=True)
class MergedGroups(Generic[SpecT, ExtraT]):
    """A fleet's groups after checking, ready to lay out as device columns.

    Attributes:
        specs: the distinct specs, in order of first appearance.
        rows: ``(facility, spec index, count, extra)`` per group, sorted by facility then
            spec index (stable: groups of one key keep their order); ``extra`` is the
            group's fleet-specific value as checked.
        table: the merged table entries the sorted rows fill, in the same order.
    """

    specs: list[SpecT]
    rows: list[tuple[int, int, int, ExtraT]]
    table: GroupTable


def merge_groups(
    groups: Sequence[tuple[int, SpecT, int, Any]],
    kind: str,
    id_field: str,
    check_extra: Callable[[str, SpecT, int, Any], ExtraT],
    n_facilities: int | None,
) -> MergedGroups[SpecT, ExtraT]:
    """Check ``(facility_index, spec, count, extra)`` groups and merge them into a table.

    Args:
        groups: the groups as given to a fleet's ``from_groups``.
        kind: ``asic`` or ``gpu``, for error messages (``"asic group 3 (antminer_s21)"``).
        id_field: the spec's id attribute, ``model_id`` or ``type_id``.
        check_extra: ``check_extra(where, spec, count, extra)`` checks a group's fourth
            value (FleetError naming the group ``where``) and returns it as the fleet
            stores it; it runs after the facility and count checks.
        n_facilities: facilities the fleet spans; None: the highest index used + 1.

    Raises:
        FleetError: a negative or fractional facility or count, a bad extra value, two
            different specs with one id, or ``n_facilities`` below what the groups use.
    """
    specs: list[SpecT] = []
    rows: list[tuple[int, int, int, ExtraT]] = []
    for i, (facility, spec, count, extra) in enumerate(groups):
        where = f"{kind} group {i} ({getattr(spec, id_field)})"
        check_group_sizes(where, facility, count)
        value = check_extra(where, spec, count, extra)
        position = _add_spec(specs, spec, id_field, where)
        rows.append((int(facility), position, int(count), value))
    rows.sort(key=lambda r: (r[0], r[1]))
    table = _group_table([(r[0], r[1], r[2]) for r in rows], n_facilities)
    return MergedGroups(specs, rows, table)


def check_group_sizes(where: str, facility: int, count: int) -> None:
    """FleetError naming ``where`` unless the facility index and device count are whole
    numbers >= 0."""
    if int(facility) != facility or facility < 0:
        raise FleetError(f"{where}: facility index must be an integer >= 0, got {facility}")
    if int(count) != count or count < 0:
        raise FleetError(f"{where}: count must be an integer >= 0, got {count}")


def _add_spec(specs: list[SpecT], spec: SpecT, id_field: str, where: str) -> int:
    """Position of ``spec`` in ``specs``, appending it on first sight of its id.

    Args:
        specs: the fleet's distinct specs so far, in order of first appearance (extended).
        spec: the spec of one group.
        id_field: the spec's id attribute, ``model_id`` or ``type_id``.
        where: the group, for the error message.

    Raises:
        FleetError: another spec in ``specs`` has the same id.
    """
    spec_id = getattr(spec, id_field)
    for position, known in enumerate(specs):
        if getattr(known, id_field) == spec_id:
            if known != spec:
                label = id_field.replace("_", " ")
                raise FleetError(f"{where}: two different specs share {label} {spec_id!r}")
            return position
    specs.append(spec)
    return len(specs) - 1


def _group_table(rows: Sequence[tuple[int, int, int]], n_facilities: int | None) -> GroupTable:
    """The table of ``(facility, spec index, count)`` group rows (any order).

    ``n_facilities`` defaults to the highest facility index used + 1; given, it must be at
    least that (FleetError otherwise).
    """
    facilities = _facility_count([r[0] for r in rows], n_facilities)
    totals: dict[tuple[int, int], int] = {}
    for facility, spec, count in rows:
        totals[(facility, spec)] = totals.get((facility, spec), 0) + count
    keys = sorted(totals)
    start = np.zeros(len(keys) + 1, dtype=np.int64)
    start[1:] = np.cumsum([totals[k] for k in keys], dtype=np.int64)
    return GroupTable(
        facilities,
        np.array([k[0] for k in keys], dtype=np.int16),
        np.array([k[1] for k in keys], dtype=np.int16),
        start,
    )


def group_slice(start: np.ndarray, index: int, field: str) -> slice:
    """Device rows of table entry ``index`` given the entries' ``start`` rows (one more than
    entries); FleetError naming ``field`` if there is no such entry."""
    n_entries = start.shape[0] - 1
    if not 0 <= index < n_entries:
        raise FleetError(f"{field}: {index} outside [0, {n_entries})")
    return slice(int(start[index]), int(start[index + 1]))


def spec_index(specs: Sequence[AsicSpec] | Sequence[GpuSpec], key: int | str, field: str) -> int:
    """Position in ``specs`` of a spec given by position or by id (``model_id``/``type_id``)."""
    if isinstance(key, str):
        for i, spec in enumerate(specs):
            if getattr(spec, field) == key:
                return i
        raise FleetError(f"{field}: {key!r} is not in this fleet")
    if int(key) != key or not 0 <= int(key) < len(specs):
        raise FleetError(f"{field}: index {key} outside [0, {len(specs)})")
    return int(key)


def spec_column(specs: Sequence[AsicSpec] | Sequence[GpuSpec], attribute: str) -> np.ndarray:
    """One float64 value per spec: the spec attribute ``attribute`` (units as in
    :mod:`models.hardware`), for gathering onto devices by spec index."""
    return np.array([getattr(spec, attribute) for spec in specs], dtype=np.float64)


def _facility_count(facilities: Sequence[int], n_facilities: int | None) -> int:
    """Facilities a fleet spans: ``n_facilities`` if given (at least the highest index used
    + 1, else FleetError), otherwise the highest index used + 1."""
    highest = max(facilities, default=-1) + 1
    if n_facilities is None:
        return highest
    if n_facilities < highest:
        raise FleetError(f"n_facilities: {n_facilities} is less than the groups need ({highest})")
    return n_facilities
