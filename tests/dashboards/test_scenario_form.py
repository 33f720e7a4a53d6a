"""Tests of the scenario form generated from the schema: fields, bounds, overrides."""

from __future__ import annotations

import math
import shlex
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboards.scenario_form import (
    FieldSpec,
    FormInputError,
    entry_value,
    form_sections,
    overrides_from_form,
    parse_set_lines,
    set_arguments,
    switch_member,
)
from twin.scenario import (
    FixedBlockContract,
    GreedyPolicy,
    IndexContract,
    LookAheadPolicy,
    Scenario,
    ScenarioError,
    load_scenario,
)
from twin.scenario_scheduling import REGIONS

from .conftest import BASELINE

BASE_SCENARIO = load_scenario(BASELINE)
SECTIONS = form_sections(BASE_SCENARIO)
FIELDS = {spec.path: spec for section in SECTIONS for spec in section.fields}
NUMBER_FIELDS = sorted(
    path
    for path, spec in FIELDS.items()
    if spec.kind in ("int", "float") and spec.minimum is not None and spec.maximum is not None
)


def _section(path: str) -> Any:
    return next(section for section in SECTIONS if section.path == path)


def _current_values(sections: Any) -> dict[str, Any]:
    values = {spec.path: spec.value for section in sections for spec in section.fields}
    values |= {s.tag.path: s.tag.value for s in sections if s.tag is not None}
    return values


def _read(scenario: Scenario, path: str) -> Any:
    """The value at a dotted form path (list items by id) of a loaded scenario."""
    node: Any = scenario
    for part in path.replace("[", ".").replace("]", "").split("."):
        if isinstance(node, list):
            node = next(item for item in node if item.id == part)
        elif isinstance(node, dict):
            node = node[part]
        else:
            node = getattr(node, part)
    return node


def test_top_level_fields_take_kind_and_bounds_from_the_schema() -> None:
    """The scenario's own scalars become widgets of their type, bounded by the schema's
    constraints: duration_days is a number in (0, 3660], start an ISO date-time text."""
    top = {spec.name: spec for spec in SECTIONS[0].fields}
    assert SECTIONS[0].path == ""
    assert {name: spec.kind for name, spec in top.items()} == {
        "name": "text",
        "description": "text",
        "start": "datetime",
        "duration_days": "float",
        "seed": "int",
        "dispatch_interval_s": "int",
    }
    duration = top["duration_days"]
    assert (duration.minimum, duration.maximum) == (0.0, 3660.0)
    assert "> 0" in duration.help
    assert top["dispatch_interval_s"].minimum == 60
    assert top["start"].value == BASE_SCENARIO.start.isoformat()


def test_nested_blocks_literals_and_optionals() -> None:
    """Direct blocks (market, policy, each facility by id) give sections; a Literal is a
    choice of its values; ``X | None`` is an optional input; list item ids are not
    editable (they are the key)."""
    paths = {section.path for section in SECTIONS}
    assert {"market", "grid", "workloads", "scheduling", "policy"} <= paths
    ids = [facility.id for facility in BASE_SCENARIO.facilities]
    assert {f"facilities[{i}]" for i in ids} <= paths
    region = FIELDS[f"facilities[{ids[0]}].region"]
    assert region.kind == "choice" and set(region.options) == set(REGIONS)
    assert f"facilities[{ids[0]}].id" not in FIELDS
    strike = FIELDS["policy.strike_usd_per_mwh"]
    assert strike.optional and strike.value is None and strike.kind == "float"
    assert f"facilities[{ids[0]}].asics" in _section(f"facilities[{ids[0]}]").skipped


def test_depth_limits_the_blocks_in_the_form() -> None:
    """max_depth=1 stops at the scenario's direct blocks; the default also opens the
    blocks inside them, including discriminated unions with their member choice."""
    shallow = form_sections(BASE_SCENARIO, max_depth=1)
    assert max(section.depth for section in shallow) == 1
    shallow_market = next(section for section in shallow if section.path == "market")
    assert "market.btc_price" in shallow_market.skipped
    btc = _section("market.btc_price")
    assert btc.depth == 2
    assert btc.tag is not None and btc.tag.value == "synthetic"
    assert set(btc.tag.options) == {"synthetic", "historical", "constant"}
    assert "kind" not in {spec.name for spec in btc.fields}


def test_unchanged_form_gives_no_overrides() -> None:
    """Entering every loaded value back changes nothing."""
    assert overrides_from_form(SECTIONS, _current_values(SECTIONS)) == {}


def test_edited_fields_become_dotted_overrides_that_load() -> None:
    """Edits become ``--set`` paths (facilities by id) that load_scenario applies."""
    site = BASE_SCENARIO.facilities[0].id
    entered = _current_values(SECTIONS) | {
        f"facilities[{site}].power_cap_mw": 8.0,
        "market.btc_price.initial_usd": 59925.0,
        "duration_days": 1.0,
    }
    overrides = overrides_from_form(SECTIONS, entered)
    assert overrides == {
        "duration_days": 1.0,
        f"facilities[{site}].power_cap_mw": 8.0,
        "market.btc_price.initial_usd": 59925.0,
    }
    edited = load_scenario(BASELINE, overrides)
    assert edited.facilities[0].power_cap_mw == 8.0
    assert edited.market.btc_price.initial_usd == 59925.0  # type: ignore[union-attr]
    assert edited.duration_days == 1.0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_bounded_number_edit_loads_or_names_its_field(data: st.DataObject) -> None:
    """A number entered within a field's widget bounds becomes exactly one override; the
    scenario then loads with that value, or the error names that field (a strict bound or
    a rule across fields)."""
    path = data.draw(st.sampled_from(NUMBER_FIELDS), label="field")
    spec = FIELDS[path]
    assert spec.minimum is not None and spec.maximum is not None
    if spec.kind == "int":
        value: float = data.draw(st.integers(int(spec.minimum), int(spec.maximum)))
    else:
        value = data.draw(
            st.floats(spec.minimum, spec.maximum, allow_nan=False, allow_infinity=False)
        )
    overrides = overrides_from_form(SECTIONS, _current_values(SECTIONS) | {path: value})
    if math.isclose(float(value), float(spec.value), rel_tol=1e-12):
        assert overrides == {}
        return
    assert overrides == {path: value}
    try:
        edited = load_scenario(BASELINE, overrides)
    except ScenarioError as error:
        assert any(path.split("[")[0].split(".")[0] in p for p in error.problems)
        return
    assert _read(edited, path) == pytest.approx(value)


def test_switching_a_union_member_replaces_the_block() -> None:
    """Choosing another policy shows that policy's fields with their defaults and
    replaces the whole ``policy`` block, so the old policy's fields do not leak."""
    policy = _section("policy")
    greedy = switch_member(policy, "greedy")
    assert {spec.name for spec in greedy.fields} == set(GreedyPolicy.model_fields) - {"name"}
    overrides = overrides_from_form([greedy], {"policy.name": "greedy"})
    assert overrides["policy"]["name"] == "greedy"
    assert isinstance(load_scenario(BASELINE, overrides).policy, GreedyPolicy)

    mpc = switch_member(policy, "mpc")
    entered = {"policy.name": "mpc", "policy.horizon_h": 12.0, "policy.resolve_every": None}
    overrides = overrides_from_form([mpc], entered)
    assert "resolve_every" not in overrides["policy"]  # unset optional fields left out
    loaded = load_scenario(BASELINE, overrides).policy
    assert isinstance(loaded, LookAheadPolicy) and loaded.horizon_h == 12.0


def test_switching_a_contract_ignores_blocks_inside_the_replaced_one() -> None:
    """A fixed-block contract switched to an index contract loads as one; sections
    nested in a replaced block give no overrides of their own."""
    site = next(
        f.id for f in BASE_SCENARIO.facilities if isinstance(f.contract, FixedBlockContract)
    )
    path = f"facilities[{site}].contract"
    contract = switch_member(_section(path), "index")
    nested = _section(f"facilities[{site}].pue")
    fake_child = type(nested)(f"{path}.extra", "x", 3, nested.fields)
    overrides = overrides_from_form([contract, fake_child], {f"{path}.kind": "index"})
    assert list(overrides) == [path]
    loaded = load_scenario(BASELINE, overrides)
    assert isinstance(next(f for f in loaded.facilities if f.id == site).contract, IndexContract)


def test_switch_member_rejects_unknown_tags_and_plain_blocks() -> None:
    """Switching needs a union block and one of its tags."""
    with pytest.raises(ValueError, match="unknown member 'nope'"):
        switch_member(_section("policy"), "nope")
    with pytest.raises(ValueError, match="not a union"):
        switch_member(_section("market"), "synthetic")


def test_entry_values_of_optional_and_whole_number_fields() -> None:
    """Empty text of an optional field means not set; an int field's float is whole."""
    optional = FieldSpec("a", "a", "text", None, optional=True)
    assert entry_value(optional, "  ") is None
    assert entry_value(FieldSpec("b", "b", "int", 1), 3.0) == 3
    assert entry_value(FieldSpec("c", "c", "text", ""), " x ") == "x"


def test_set_lines_parse_like_the_cli_and_report_bad_lines() -> None:
    """``PATH=VALUE`` lines read VALUE as YAML; comments and blank lines are skipped; a
    bad line is named by number."""
    text = "# comment\n\nmarket.pool_fee_fraction=0.01\ngrid.four_cp.months=[7, 8]\n"
    assert parse_set_lines(text) == {
        "market.pool_fee_fraction": 0.01,
        "grid.four_cp.months": [7, 8],
    }
    with pytest.raises(FormInputError, match="line 2"):
        parse_set_lines("a=1\nno equals sign")
    with pytest.raises(FormInputError, match="not valid YAML"):
        parse_set_lines("a=[1, 2")


def test_set_arguments_read_back_to_the_same_overrides() -> None:
    """The CLI line shown for the edits parses back to the same overrides."""
    overrides = {
        "facilities[west-mine].power_cap_mw": 8.5,
        "policy": {"name": "greedy", "sell_idle_gpus_on_spot": False},
        "description": "a what-if: hot and dry",
    }
    words = shlex.split(set_arguments(overrides))
    assert words[::2] == ["--set"] * len(overrides)
    assert parse_set_lines("\n".join(words[1::2])) == overrides


@pytest.mark.parametrize(
    "scenario_file",
    sorted((BASELINE.parent).glob("*.yaml")),
    ids=lambda path: path.name,
)
def test_every_project_scenario_has_a_form_that_round_trips(scenario_file: Any) -> None:
    """Every scenario file gives a form whose loaded values are within their bounds and
    options, and entering them back gives no overrides."""
    scenario = load_scenario(scenario_file)
    sections = form_sections(scenario)
    for section in sections:
        for spec in section.fields:
            if spec.kind in ("int", "float") and spec.value is not None:
                assert spec.minimum is None or spec.value >= spec.minimum, spec.path
                assert spec.maximum is None or spec.value <= spec.maximum, spec.path
            if spec.kind == "choice":
                assert spec.value in spec.options, spec.path
    assert overrides_from_form(sections, _current_values(sections)) == {}
