"""Scenario library and schema loading: every bundled scenario loads, bad files are rejected
with one clean ``path: reason`` line per problem, and ``base:`` / overrides merge as documented.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from models.hardware import ASIC_CATALOG, GPU_CATALOG
from twin.scenario import (
    PROJECT_ROOT,
    Scenario,
    ScenarioError,
    deep_merge,
    load_scenario,
    set_path,
)

SCENARIO_DIR = PROJECT_ROOT / "scenarios"
INVALID_DIR = Path(__file__).parent / "invalid_scenarios"
BASELINE = SCENARIO_DIR / "baseline.yaml"
SCENARIO_FILES = sorted(SCENARIO_DIR.glob("*.yaml"))

KNOWN_ASICS = ", ".join(sorted(ASIC_CATALOG))
KNOWN_GPUS = ", ".join(sorted(GPU_CATALOG))
UTC_OFFSET_HINT = "needs a UTC offset, e.g. 2024-06-01T00:00:00-05:00"

# (fixture file, the one problem line it must produce)
INVALID_CASES = [
    ("cap_not_positive.yaml", "facilities[1].power_cap_mw: must be > 0"),
    (
        "facility_region_unknown.yaml",
        "facilities[0].region: must be one of 'us-central', 'us-east' or 'us-west'",
    ),
    (
        "latency_unknown_facility.yaml",
        "scheduling.routing.latency_ms.us-east.site-z: no such facility (known: site-a)",
    ),
    ("unknown_top_level_key.yaml", "colour: unknown field"),
    (
        "unknown_asic_model.yaml",
        f"facilities[0].asics[1]: unknown ASIC model 'antminer_s99'; known: {KNOWN_ASICS}",
    ),
    (
        "unknown_gpu_type.yaml",
        f"facilities[0].gpus[0]: unknown GPU type 'h1000'; known: {KNOWN_GPUS}",
    ),
    ("start_without_offset.yaml", f"start: {UTC_OFFSET_HINT}"),
    ("event_start_without_offset.yaml", f"grid.events[0].start: {UTC_OFFSET_HINT}"),
    (
        "dispatch_interval_not_dividing_hour.yaml",
        "dispatch_interval_s: must divide 3600 (one hour) evenly",
    ),
    ("dispatch_interval_too_short.yaml", "dispatch_interval_s: must be >= 60"),
    ("duplicate_facility_id.yaml", "facilities[1].id: 'site-a' appears twice"),
    (
        "fixed_block_without_block_mw.yaml",
        "facilities[0].contract.block_mw: required field is missing",
    ),
    (
        "unknown_contract_kind.yaml",
        "facilities[0].contract.kind: must be one of 'index', 'fixed_block', not 'ppa'",
    ),
    (
        "contract_without_kind.yaml",
        "facilities[0].contract.kind: required field is missing; must be one of 'index', "
        "'fixed_block'",
    ),
    ("negative_asic_count.yaml", "facilities[0].asics[0].count: must be >= 0"),
    (
        "gpu_count_not_node_multiple.yaml",
        "facilities[0].gpus[0]: count 100 is not a multiple of node_size 8",
    ),
    ("strike_low_above_high.yaml", "policy: low_factor must be <= high_factor (hysteresis band)"),
    (
        "unknown_policy_name.yaml",
        "policy.name: must be one of 'always_on', 'strike', 'greedy', 'mpc', 'oracle', not 'yolo'",
    ),
    ("missing_price_file.yaml", "grid.prices.file: file not found: no_such_prices.csv"),
    ("misspelled_price_field.yaml", "grid.prices.meen_usd_per_mwh: unknown field"),
    (
        "yaml_syntax_error.yaml",
        "line 8, column 4: not valid YAML "
        "(expected <block end>, but found '<block mapping start>')",
    ),
    ("duplicate_yaml_key.yaml", "line 9, column 5: not valid YAML (duplicate key 'power_cap_mw')"),
    ("top_level_list.yaml", "top level must be a mapping of fields"),
    (
        "base_cycle_a.yaml",
        "base: cycle base_cycle_a.yaml -> base_cycle_b.yaml -> base_cycle_a.yaml",
    ),
    ("base_missing_file.yaml", "base: file not found: no_such_base.yaml"),
    ("empty_facilities.yaml", "facilities: must have at least 1 item(s)"),
    ("remove_every_facility.yaml", "facilities: must have at least 1 item(s)"),
    (
        "unknown_workload_type.yaml",
        "workloads.demand.crypto_gaming: unknown key; must be one of 'ai_inference_realtime', "
        "'ai_inference_batch', 'model_training' or 'bitcoin_mining'",
    ),
    (
        "size_weights_mismatch.yaml",
        "workloads.demand.ai_inference_batch.gpus: weights must have one entry per value",
    ),
    ("event_unknown_facility.yaml", "grid event names unknown facility 'site-z'"),
    (
        "lowercase_settlement_point.yaml",
        "facilities[0].settlement_point: must match ^[A-Z][A-Z0-9_]*$",
    ),
    ("missing_name.yaml", "name: required field is missing"),
    ("duration_not_a_number.yaml", "duration_days: must be a number"),
]

# A path as a user writes it: names joined by dots, list indices in brackets.
USER_PATH = re.compile(r"[a-z_][a-z0-9_]*(\[\d+\]|\.[A-Za-z0-9_-]+)*")
YAML_POSITION = re.compile(r"line \d+, column \d+")


def _load_error(path: Path, **kwargs: Any) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, **kwargs)
    return caught.value


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b[0].c": leaf}`` for a nested dump, so two scenarios can be diffed field by field."""
    if isinstance(value, dict):
        items: dict[str, Any] = {}
        for key, child in value.items():
            items |= _flatten(child, f"{prefix}.{key}" if prefix else str(key))
        return items
    if isinstance(value, list):
        items = {}
        for index, child in enumerate(value):
            items |= _flatten(child, f"{prefix}[{index}]")
        return items
    return {prefix: value}


def _changed_paths(a: Scenario, b: Scenario) -> set[str]:
    flat_a, flat_b = _flatten(a.model_dump()), _flatten(b.model_dump())
    return {k for k in flat_a.keys() | flat_b.keys() if flat_a.get(k, None) != flat_b.get(k, None)}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _full_load_mw(facility: Any) -> float:
    """Nameplate draw of a facility at base PUE [MW]: ASIC W x PUE_mining + GPU TDP x PUE_ai."""
    asic_w = sum(group.spec().power_w * group.count for group in facility.asics)
    gpu_w = sum(group.spec().tdp_w * group.count for group in facility.gpus)
    return (asic_w * facility.pue.mining + gpu_w * facility.pue.ai) / 1e6


# --------------------------------------------------------------------------- the library


def test_library_is_not_empty() -> None:
    """The scenario library holds the default, the PRD-scale and the two historical replays."""
    names = {path.name for path in SCENARIO_FILES}
    assert {"baseline.yaml", "prd_scale.yaml", "uri_2021.yaml", "august_2023.yaml"} <= names


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.name)
def test_every_scenario_loads_with_a_description(path: Path) -> None:
    """Each bundled scenario validates and says in one line what it is for."""
    scenario = load_scenario(path)
    assert scenario.description.strip()
    assert "\n" not in scenario.description.strip()
    assert path.read_text(encoding="utf-8").startswith("description:")


def test_scenario_names_are_unique() -> None:
    """No two library files share a scenario name (results are filed under it)."""
    names = [load_scenario(path).name for path in SCENARIO_FILES]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("name", ["baseline.yaml", "prd_scale.yaml"])
def test_exactly_one_site_is_cap_bound(name: str) -> None:
    """Caps cover nameplate x PUE at every site but one, which sits near 90 % of full load."""
    scenario = load_scenario(SCENARIO_DIR / name)
    ratios = [f.power_cap_mw / _full_load_mw(f) for f in scenario.facilities]
    bound = [r for r in ratios if r < 1.0]
    assert len(bound) == 1
    assert 0.85 <= bound[0] <= 0.95
    assert all(1.0 < r <= 1.10 for r in ratios if r >= 1.0)


def test_prd_scale_totals() -> None:
    """prd_scale holds 50,000 GPUs, 250,000 ASICs, 500 customers and 1M workloads a day."""
    scenario = load_scenario(SCENARIO_DIR / "prd_scale.yaml")
    assert len(scenario.facilities) == 4
    assert sum(g.count for f in scenario.facilities for g in f.gpus) == 50_000
    assert sum(a.count for f in scenario.facilities for a in f.asics) == 250_000
    assert scenario.workloads.customers == 500
    demand = scenario.workloads.demand
    assert sum(d.per_day for d in demand.values()) == pytest.approx(1_000_000)
    assert demand["ai_inference_realtime"].per_day / 1_000_000 == pytest.approx(0.9)


@pytest.mark.parametrize("name", ["baseline.yaml", "prd_scale.yaml", "august_2023.yaml"])
def test_gpu_demand_keeps_gpus_busy_but_not_saturated(name: str) -> None:
    """Mean GPU-seconds demanded per day is 60-80 % of the GPU-seconds the fleet has."""
    scenario = load_scenario(SCENARIO_DIR / name)
    gpu_count = sum(g.count for f in scenario.facilities for g in f.gpus)
    demanded_gpu_s = 0.0
    for workload, demand in scenario.workloads.demand.items():
        if workload == "bitcoin_mining":
            continue
        sizes = demand.gpus
        weights = sizes.weights or [1.0] * len(sizes.values)
        mean_gpus = sum(v * w for v, w in zip(sizes.values, weights, strict=True)) / sum(weights)
        mean_duration_s = demand.duration_median_s * math.exp(demand.duration_sigma**2 / 2)
        demanded_gpu_s += demand.per_day * mean_duration_s * mean_gpus
    assert 0.6 <= demanded_gpu_s / (gpu_count * 86_400) <= 0.8


def test_replays_read_bundled_history() -> None:
    """The replays use historical price files that resolve to the bundled data."""
    for name in ("uri_2021.yaml", "august_2023.yaml"):
        scenario = load_scenario(SCENARIO_DIR / name)
        assert scenario.grid.prices.kind == "historical"
        assert (PROJECT_ROOT / scenario.grid.prices.file).is_file()
        assert scenario.market.btc_price.kind == "historical"


# --------------------------------------------------------------------------- invalid files


@pytest.mark.parametrize(
    ("file_name", "expected"), INVALID_CASES, ids=[c[0] for c in INVALID_CASES]
)
def test_invalid_scenario_reports_one_clean_problem(file_name: str, expected: str) -> None:
    """Each bad file fails with exactly its one problem, worded as ``path: reason``."""
    error = _load_error(INVALID_DIR / file_name)
    assert error.problems == [expected]
    assert str(error).startswith(str(INVALID_DIR / file_name))


def test_every_invalid_fixture_is_in_the_table() -> None:
    """No fixture sits unused: each file is a table case, the cycle's partner or multi-error."""
    listed = {name for name, _ in INVALID_CASES} | {"base_cycle_b.yaml", "several_errors.yaml"}
    assert {p.name for p in INVALID_DIR.glob("*.yaml")} == listed


@pytest.mark.parametrize("path", sorted(INVALID_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_problem_paths_are_the_users_paths(path: Path) -> None:
    """A problem's path never shows pydantic internals (tags, validator names, ``[key]``)."""
    for problem in _load_error(path).problems:
        head, sep, _ = problem.partition(": ")
        if not sep:
            continue  # a whole-scenario problem without a path
        assert USER_PATH.fullmatch(head) or YAML_POSITION.fullmatch(head), problem
        assert not re.search(
            r"function-|\[key\]|\.(synthetic|historical|constant|index|"
            r"fixed_block|strike|always_on)\b",
            head,
        ), problem


def test_all_problems_of_a_file_are_reported() -> None:
    """A file with several independent errors lists every one, not just the first."""
    problems = _load_error(INVALID_DIR / "several_errors.yaml").problems
    assert sorted(problems) == sorted(
        [
            "colour: unknown field",
            "dispatch_interval_s: must be >= 60",
            "facilities[0].power_cap_mw: must be > 0",
            f"facilities[1].asics[0]: unknown ASIC model 'antminer_s99'; known: {KNOWN_ASICS}",
            "grid.prices.mean_usd_per_mwh: must be a number",
        ]
    )


def test_missing_file_is_reported_as_unreadable(tmp_path: Path) -> None:
    """Loading a path that does not exist is a ScenarioError, not an OSError."""
    error = _load_error(tmp_path / "nowhere.yaml")
    assert error.problems[0].startswith("cannot read file: ")


# --------------------------------------------------------------------------- base: inheritance


def test_whatif_btc_halves_changes_only_the_btc_price() -> None:
    """The BTC what-if equals the baseline except its name, description and BTC start price."""
    base = load_scenario(BASELINE)
    whatif = load_scenario(SCENARIO_DIR / "whatif_btc_halves.yaml")
    assert _changed_paths(base, whatif) == {"name", "description", "market.btc_price.initial_usd"}
    assert whatif.market.btc_price.initial_usd == base.market.btc_price.initial_usd / 2


def test_whatif_add_h100s_changes_only_houston() -> None:
    """Adding H100s touches only houston-ai's cap and H100 count; 2,048 GPUs are added."""
    base = load_scenario(BASELINE)
    whatif = load_scenario(SCENARIO_DIR / "whatif_add_h100s.yaml")
    index = [f.id for f in base.facilities].index("houston-ai")
    assert _changed_paths(base, whatif) == {
        "name",
        "description",
        f"facilities[{index}].power_cap_mw",
        f"facilities[{index}].gpus[0].count",
    }
    gpus = [sum(g.count for g in s.facilities[index].gpus) for s in (base, whatif)]
    assert gpus[1] - gpus[0] == 2048


def test_derived_file_overrides_one_nested_value(tmp_path: Path) -> None:
    """A derived file changing one nested value keeps every sibling of it from the base."""
    derived = _write(
        tmp_path / "derived.yaml",
        f"base: {BASELINE}\ngrid:\n  prices:\n    mean_usd_per_mwh: 60\n",
    )
    base, loaded = load_scenario(BASELINE), load_scenario(derived)
    assert _changed_paths(base, loaded) == {"grid.prices.mean_usd_per_mwh"}
    assert loaded.grid.prices.mean_usd_per_mwh == 60


def test_facilities_merge_by_id(tmp_path: Path) -> None:
    """Facilities merge on id: one site's cap changes, one site is removed, one is appended."""
    derived = _write(
        tmp_path / "derived.yaml",
        f"""base: {BASELINE}
facilities:
  - {{id: west-mine, power_cap_mw: 12.0}}
  - {{id: permian-hybrid, remove: true}}
  - {{id: new-site, settlement_point: HB_SOUTH, power_cap_mw: 3.0}}
""",
    )
    base, loaded = load_scenario(BASELINE), load_scenario(derived)
    assert [f.id for f in loaded.facilities] == ["west-mine", "houston-ai", "new-site"]
    west_base, west = base.facilities[0], loaded.facilities[0]
    assert west.power_cap_mw == 12.0
    assert west.model_copy(update={"power_cap_mw": west_base.power_cap_mw}) == west_base
    assert loaded.facilities[1] == base.facilities[2]
    assert loaded.facilities[2].settlement_point == "HB_SOUTH"


def test_remove_false_keeps_the_site(tmp_path: Path) -> None:
    """``remove: false`` keeps a site unchanged instead of becoming an unknown field."""
    derived = _write(
        tmp_path / "derived.yaml",
        f"base: {BASELINE}\nfacilities:\n  - {{id: houston-ai, remove: false}}\n",
    )
    assert load_scenario(derived) == load_scenario(BASELINE)


def test_base_chain_of_two_levels(tmp_path: Path) -> None:
    """A what-if of a what-if applies both layers, the nearer one winning."""
    _write(
        tmp_path / "middle.yaml",
        f"base: {BASELINE}\nseed: 1\nmarket:\n  btc_price:\n    initial_usd: 50000\n",
    )
    top = _write(tmp_path / "top.yaml", "base: middle.yaml\nseed: 2\n")
    loaded = load_scenario(top)
    assert loaded.seed == 2
    assert loaded.market.btc_price.initial_usd == 50000
    assert _changed_paths(load_scenario(BASELINE), loaded) == {
        "seed",
        "market.btc_price.initial_usd",
    }


def test_a_list_without_ids_replaces_the_base_list(tmp_path: Path) -> None:
    """A facility's ``asics`` list (no ids) replaces the base list as a whole."""
    derived = _write(
        tmp_path / "derived.yaml",
        f"base: {BASELINE}\nfacilities:\n  - id: west-mine\n    asics:\n"
        "      - {model: antminer_s21, count: 10}\n",
    )
    west = load_scenario(derived).facilities[0]
    assert [(a.model, a.count) for a in west.asics] == [("antminer_s21", 10)]


# --------------------------------------------------------------------------- overrides


def test_overrides_by_dotted_path_and_facility_id() -> None:
    """Overrides address nested fields, list items by id and by index; nothing else changes."""
    overrides = {
        "facilities[houston-ai].power_cap_mw": 3.0,
        "facilities[0].contract.adder_usd_per_mwh": 6.5,
        "market.btc_price.initial_usd": 70000,
    }
    base, loaded = load_scenario(BASELINE), load_scenario(BASELINE, overrides=overrides)
    houston = [f.id for f in base.facilities].index("houston-ai")
    assert _changed_paths(base, loaded) == {
        f"facilities[{houston}].power_cap_mw",
        "facilities[0].contract.adder_usd_per_mwh",
        "market.btc_price.initial_usd",
    }
    assert loaded.facilities[houston].power_cap_mw == 3.0
    assert loaded.facilities[0].contract.adder_usd_per_mwh == 6.5


def test_override_of_unknown_facility_id_is_an_error() -> None:
    """An override naming no existing list item fails with the override path."""
    error = _load_error(BASELINE, overrides={"facilities[nope].power_cap_mw": 1.0})
    assert error.problems == ["facilities[nope].power_cap_mw: no item 'nope' in the list"]


def test_invalid_override_value_is_reported_at_its_path() -> None:
    """An override that breaks the schema is reported like a bad file value."""
    error = _load_error(BASELINE, overrides={"facilities[1].power_cap_mw": -2})
    assert error.problems == ["facilities[1].power_cap_mw: must be > 0"]


def test_set_path_creates_missing_mappings() -> None:
    """set_path builds the mappings on the way to a new leaf."""
    data: dict[str, Any] = {"grid": {}}
    set_path(data, "grid.four_cp.rate_usd_per_kw_year", 40.0)
    assert data == {"grid": {"four_cp": {"rate_usd_per_kw_year": 40.0}}}


def test_readme_example_runs() -> None:
    """The Python example in scenarios/README.md runs as written."""
    text = (SCENARIO_DIR / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        namespace: dict[str, Any] = {}
        exec(compile(block, "scenarios/README.md", "exec"), namespace)
        assert isinstance(namespace["scenario"], Scenario)


# --------------------------------------------------------------------------- merge invariants

yaml_scalars = st.one_of(st.integers(-5, 5), st.booleans(), st.text("ab", max_size=2))
yaml_trees = st.recursive(
    yaml_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text("xyz", max_size=2), children, max_size=3),
    ),
    max_leaves=12,
)


@given(yaml_trees)
def test_merging_a_tree_over_itself_or_nothing_is_identity(tree: Any) -> None:
    """deep_merge(x, x) == x and deep_merge(x, {}) == x for mappings: merging adds nothing."""
    assert deep_merge(tree, tree) == tree
    if isinstance(tree, dict):
        assert deep_merge(tree, {}) == tree


@given(
    st.dictionaries(st.text("abc", min_size=1, max_size=2), yaml_trees, max_size=4),
    st.dictionaries(st.text("abc", min_size=1, max_size=2), yaml_scalars, max_size=4),
)
def test_overlay_scalars_win_and_base_keys_survive(
    base: dict[str, Any], overlay: dict[str, Any]
) -> None:
    """Every overlay scalar is in the result; every base key is still there; inputs unchanged."""
    snapshot = yaml.safe_dump([base, overlay])
    merged = deep_merge(base, overlay)
    assert all(merged[key] == value for key, value in overlay.items())
    assert set(base) <= set(merged)
    assert yaml.safe_dump([base, overlay]) == snapshot
