"""Scenario files for the dashboards: list them, and save an edited scenario as a what-if.

A derived scenario is a YAML file with ``base: <the file it was made from>`` and only what
differs (see scenarios/README.md): :func:`derived_document` applies the overrides to the
base's merged mapping and keeps the difference in the form ``base:`` loading merges back
(mappings key by key, lists of mappings with ids item by item, other lists whole), so
``load_scenario(saved file)`` gives the same scenario as ``load_scenario(base, overrides)``
with the new name.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from twin.scenario import (
    ScenarioError,
    load_merged_mapping,
    set_path,
    validate_scenario,
)

SCENARIO_SUFFIXES = (".yaml", ".yml")
FILE_STEM_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class DerivedScenarioError(ValueError):
    """A derived scenario cannot be written (names the file or field and the reason)."""


def list_scenarios(folder: Path) -> list[Path]:
    """The scenario files directly in ``folder`` (``*.yaml``/``*.yml``), sorted by name;
    an empty list when the folder does not exist."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in SCENARIO_SUFFIXES and p.is_file())


def file_stem(name: str) -> str:
    """A file name stem for a scenario ``name``: lower case, runs of other characters than
    letters, digits, ``-`` and ``_`` become ``_`` (``"Hot August!"`` -> ``hot_august``)."""
    stem = re.sub(r"[^a-z0-9_-]+", "_", name.strip().lower()).strip("_")
    if not stem:
        raise DerivedScenarioError(f"name {name!r}: needs at least one letter or digit")
    return stem


def derived_document(
    base_file: Path,
    overrides: Mapping[str, Any],
    *,
    name: str,
    out_file: Path,
    description: str | None = None,
) -> dict[str, Any]:
    """The mapping of a what-if on ``base_file``: ``base:`` (relative to ``out_file``'s
    folder), ``name``, ``description`` and the fields the dotted ``overrides`` change.

    Raises:
        ScenarioError: the base or an override is invalid (validated before anything is
            written, so a saved file always loads).
        DerivedScenarioError: an override drops keys the base sets inside a mapping (a
            union block switched to another member, say); ``base:`` merging can only add
            or change keys, so such a what-if must be saved as a complete scenario.
    """
    base_data = load_merged_mapping(base_file)
    new_data = copy.deepcopy(base_data)
    changes = {**overrides, "name": name}
    if description is not None:
        changes["description"] = description
    for path, value in changes.items():
        set_path(new_data, path, copy.deepcopy(value), source=str(base_file))
    validate_scenario(new_data, source=f"{base_file} with overrides", base_dir=base_file.parent)
    dropped: list[str] = []
    overlay = mapping_difference(base_data, new_data, "", dropped)
    if dropped:
        raise DerivedScenarioError(
            f"{', '.join(dropped)}: the base sets these keys and the edited scenario does not; "
            "a base: file can add or change keys but not remove them, so save it as a "
            "complete scenario instead"
        )
    relative_base = os.path.relpath(base_file.resolve(), out_file.resolve().parent)
    ordered = {"base": Path(relative_base).as_posix(), "name": name}
    if "description" in overlay:
        ordered["description"] = overlay["description"]
    return ordered | {k: v for k, v in overlay.items() if k not in ordered}


def complete_document(
    base_file: Path, overrides: Mapping[str, Any], *, name: str, description: str | None = None
) -> dict[str, Any]:
    """The merged mapping of ``base_file`` with ``overrides``, ``name`` and
    ``description`` applied: a scenario that stands alone (no ``base:``).

    Raises:
        ScenarioError: the base or an override is invalid.
    """
    data = load_merged_mapping(base_file)
    changes = {**overrides, "name": name}
    if description is not None:
        changes["description"] = description
    for path, value in changes.items():
        set_path(data, path, copy.deepcopy(value), source=str(base_file))
    validate_scenario(data, source=f"{base_file} with overrides", base_dir=base_file.parent)
    return data


def write_scenario(document: Mapping[str, Any], out_file: Path, *, overwrite: bool) -> Path:
    """Write ``document`` as YAML to ``out_file``; returns the path.

    Raises:
        DerivedScenarioError: the file exists and ``overwrite`` is False, or the name is not
            a plain file name ending in .yaml/.yml.
    """
    if out_file.suffix not in SCENARIO_SUFFIXES or not FILE_STEM_PATTERN.match(out_file.name):
        raise DerivedScenarioError(f"{out_file}: expected a file name like my_whatif.yaml")
    if out_file.exists() and not overwrite:
        raise DerivedScenarioError(f"{out_file}: file exists; choose another name or overwrite")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True, width=100)
    out_file.write_text(text, encoding="utf-8")
    return out_file


def mapping_difference(base: Any, new: Any, path: str, dropped: list[str]) -> Any:
    """What to write over ``base`` so that ``twin.scenario.deep_merge`` gives ``new``.

    Mappings keep only changed keys (recursively); lists of mappings with ``id`` keep only
    changed items (by id, with ``remove: true`` for items gone); anything else is ``new``
    itself. Keys present in a ``base`` mapping but missing from ``new`` cannot be expressed
    and are appended to ``dropped`` as dotted paths.
    """
    if isinstance(base, dict) and isinstance(new, dict):
        for key in base:
            if key not in new:
                dropped.append(_join(path, key))
        return {
            key: mapping_difference(base[key], value, _join(path, key), dropped)
            if key in base
            else copy.deepcopy(value)
            for key, value in new.items()
            if key not in base or base[key] != value
        }
    if _is_id_list(base) and _is_id_list(new):
        old_items = {item["id"]: item for item in base}
        new_ids = {item["id"] for item in new}
        items: list[Any] = []
        for item in new:
            old = old_items.get(item["id"])
            if old is None:
                items.append(copy.deepcopy(item))
            elif old != item:
                where = f"{path}[{item['id']}]"
                items.append({"id": item["id"], **mapping_difference(old, item, where, dropped)})
        items += [
            {"id": item_id, "remove": True} for item_id in old_items if item_id not in new_ids
        ]
        return items
    return copy.deepcopy(new)


def _is_id_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) and "id" in item for item in value)
    )


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


__all__ = [
    "DerivedScenarioError",
    "ScenarioError",
    "complete_document",
    "derived_document",
    "file_stem",
    "list_scenarios",
    "mapping_difference",
    "write_scenario",
]
