"""Tests of derived scenario files: base: + only what changed, loading back the same."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from dashboards.scenario_files import (
    DerivedScenarioError,
    complete_document,
    derived_document,
    file_stem,
    list_scenarios,
    mapping_difference,
    write_scenario,
)
from twin.scenario import PROJECT_ROOT, Scenario, deep_merge, load_scenario

from .conftest import BASELINE

WHATIF = PROJECT_ROOT / "scenarios" / "whatif_add_h100s.yaml"


def _without_name(scenario: Scenario) -> dict[str, Any]:
    return scenario.model_dump(mode="json", exclude={"name"})


def test_derived_file_loads_as_base_plus_overrides(tmp_path: Path) -> None:
    """A saved what-if holds base:, the name and only the changed fields (a facility by
    id with just its changed key), and loads to the same scenario as the overrides."""
    overrides = {
        "facilities[west-mine].power_cap_mw": 8.0,
        "market.btc_price.initial_usd": 59925,
        "policy.high_factor": 1.2,
    }
    out_file = tmp_path / "hot.yaml"
    document = derived_document(BASELINE, overrides, name="hot", out_file=out_file)
    assert list(document)[:2] == ["base", "name"]
    assert document["facilities"] == [{"id": "west-mine", "power_cap_mw": 8.0}]
    assert document["market"] == {"btc_price": {"initial_usd": 59925}}
    assert "workloads" not in document
    write_scenario(document, out_file, overwrite=False)
    saved = load_scenario(out_file)
    assert saved.name == "hot"
    assert _without_name(saved) == _without_name(load_scenario(BASELINE, overrides))


def test_derived_from_a_derived_scenario_and_other_folders(tmp_path: Path) -> None:
    """Deriving from a file that has its own base: works, with base: relative to where
    the new file is saved."""
    out_file = tmp_path / "nested" / "more_h100s.yaml"
    overrides = {"facilities[houston-ai].gpus": [{"type": "h100_sxm", "count": 4096}]}
    document = derived_document(WHATIF, overrides, name="more", out_file=out_file)
    write_scenario(document, out_file, overwrite=False)
    assert (out_file.parent / document["base"]).resolve() == WHATIF.resolve()
    assert _without_name(load_scenario(out_file)) == _without_name(load_scenario(WHATIF, overrides))


def test_dropped_keys_need_a_complete_scenario(tmp_path: Path) -> None:
    """Replacing a block whose base sets keys the new block lacks (synthetic prices ->
    a constant) cannot be a base: overlay: the error names the block; the complete
    scenario loads the same as the overrides."""
    overrides = {"grid.prices": {"kind": "constant", "value": 30.0}}
    out_file = tmp_path / "flat.yaml"
    with pytest.raises(DerivedScenarioError, match=r"grid\.prices\.mean_usd_per_mwh"):
        derived_document(BASELINE, overrides, name="flat", out_file=out_file)
    document = complete_document(BASELINE, overrides, name="flat")
    assert "base" not in document
    write_scenario(document, out_file, overwrite=False)
    assert _without_name(load_scenario(out_file)) == _without_name(
        load_scenario(BASELINE, overrides)
    )


def test_invalid_overrides_are_refused_before_writing(tmp_path: Path) -> None:
    """An override that breaks the schema raises ScenarioError naming the field."""
    with pytest.raises(ValueError, match=r"power_cap_mw: must be > 0"):
        derived_document(
            BASELINE,
            {"facilities[west-mine].power_cap_mw": -1},
            name="bad",
            out_file=tmp_path / "bad.yaml",
        )
    assert not (tmp_path / "bad.yaml").exists()


def test_write_refuses_overwrite_and_odd_names(tmp_path: Path) -> None:
    """An existing file is kept unless overwrite is asked; names must be plain files."""
    target = tmp_path / "a.yaml"
    write_scenario({"name": "a"}, target, overwrite=False)
    with pytest.raises(DerivedScenarioError, match="file exists"):
        write_scenario({"name": "b"}, target, overwrite=False)
    write_scenario({"name": "b"}, target, overwrite=True)
    assert yaml.safe_load(target.read_text()) == {"name": "b"}
    with pytest.raises(DerivedScenarioError, match="expected a file name"):
        write_scenario({"name": "c"}, tmp_path / "c.txt", overwrite=False)


def test_file_stems_and_listing(tmp_path: Path) -> None:
    """Names become safe file stems; only YAML files are listed, sorted."""
    assert file_stem(" Hot August! 2x ") == "hot_august_2x"
    with pytest.raises(DerivedScenarioError):
        file_stem("!!!")
    for name in ("b.yaml", "a.yml", "notes.md"):
        (tmp_path / name).write_text("name: x\n")
    assert [p.name for p in list_scenarios(tmp_path)] == ["a.yml", "b.yaml"]
    assert list_scenarios(tmp_path / "missing") == []


_scalars = st.one_of(st.integers(-5, 5), st.floats(-10, 10, allow_nan=False), st.text(max_size=3))
_keys = st.sampled_from(["a", "b", "c", "d"])
_mappings = st.recursive(
    st.dictionaries(_keys, _scalars, max_size=3),
    lambda children: st.dictionaries(_keys, st.one_of(_scalars, children), max_size=3),
    max_leaves=12,
)


@given(base=_mappings, changes=_mappings, ids=st.lists(st.sampled_from("xyz"), unique=True))
def test_difference_merges_back_to_the_new_mapping(
    base: dict[str, Any], changes: dict[str, Any], ids: list[str]
) -> None:
    """For mappings that only gain or change keys (what overrides do), merging the
    difference over the base gives the new mapping; lists of items with ids keep, change,
    remove and add items."""
    base = {**base, "items": [{"id": i, "v": 1} for i in "xyz"]}
    new = deep_merge(copy.deepcopy(base), changes)
    new["items"] = [{"id": i, "v": 1 if i == "x" else 2} for i in "xyz" if i in ids]
    new["items"].append({"id": "w", "v": 3})
    dropped: list[str] = []
    overlay = mapping_difference(base, new, "", dropped)
    assert dropped == []
    assert deep_merge(base, overlay) == new
