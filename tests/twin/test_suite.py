"""Scenario suites: a recorded suite passes again with the same numbers, a changed expected
value fails with a readable diff (console, JUnit XML, markdown), ``--update`` re-records
values and shows old -> new, and bad suite files are refused naming the field."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from twin.cli import main
from twin.scenario import PROJECT_ROOT
from twin.suite import (
    SuiteError,
    Tolerance,
    compare_entry,
    diff_expected,
    load_suite,
    parse_suite,
    rewrite_expected,
    select_kpis,
)
from twin.suite.compare import MISSING_IN_RUN, NOT_RECORDED, NOT_SELECTED, tolerance_for
from twin.suite.runner import prepare_scenarios

SCENARIOS = PROJECT_ROOT / "scenarios"
CI_SUITE = SCENARIOS / "suites" / "ci.yaml"

# Two three-hour runs; the comment lines must survive --update.
TINY_SUITE = f"""\
name: tiny
description: "Two three-hour runs."
# tolerances: 1 ppm, or one cent for money
defaults:
  kpis: [net_usd, revenue_usd, energy_mwh, utilization, sla.*.met_fraction, workloads.submitted]
  tolerance: {{rel: 1.0e-6, abs: 1.0e-6}}
  tolerances:
    net_usd: {{rel: 1.0e-6, abs: 0.01}}
    revenue_usd: {{rel: 1.0e-6, abs: 0.01}}
scenarios:
  - id: base
    scenario: {SCENARIOS / "baseline.yaml"}
    days: 0.125   # three hours
  - id: half-btc
    scenario: {SCENARIOS / "whatif_btc_halves.yaml"}
    set: {{duration_days: 0.125}}
# end of suite
"""


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["suite", *args, "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def recorded_suite(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny suite's text after ``--update`` recorded its values."""
    folder = tmp_path_factory.mktemp("recorded")
    suite_file = folder / "tiny.yaml"
    suite_file.write_text(TINY_SUITE, encoding="utf-8")
    assert main(["suite", str(suite_file), "--update", "--quiet", "--out", str(folder)]) == 0
    return suite_file.read_text(encoding="utf-8")


def _write(tmp_path: Path, text: str) -> Path:
    suite_file = tmp_path / "tiny.yaml"
    suite_file.write_text(text, encoding="utf-8")
    return suite_file


def _set_expected(text: str, entry_id: str, path: str, value: float) -> str:
    """``text`` with one recorded value changed (through the same rewrite --update uses)."""
    entry = next(e for e in parse_suite(text).scenarios if e.id == entry_id)
    values = dict(entry.expected or {})
    values[path] = value
    return rewrite_expected(text, {entry_id: values})


def _without_times(junit_text: str) -> str:
    return re.sub(r' time="[0-9.]+"', "", junit_text)


def test_update_records_every_kpi_and_keeps_the_rest_of_the_file(recorded_suite: str) -> None:
    """--update writes one expected value per selected KPI (groups and '*' expanded, never
    wall_s) and leaves comments and other keys as they were."""
    suite = parse_suite(recorded_suite)
    base = suite.scenarios[0]
    assert base.expected is not None
    assert list(base.expected)[:2] == ["net_usd", "revenue_usd.total"]
    assert {"utilization.gpu", "sla.model_training.met_fraction"} <= set(base.expected)
    assert not any(path.startswith("wall_s") for path in base.expected)
    for line in ("# tolerances: 1 ppm, or one cent for money", "days: 0.125   # three hours"):
        assert line in recorded_suite
    assert recorded_suite.rstrip().endswith("# end of suite")


def test_suite_passes_twice_with_identical_numbers(
    recorded_suite: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two runs of a recorded suite both pass (exit 0), write the same kpis.json (apart from
    wall_s) and the same JUnit report (apart from times)."""
    suite_file = _write(tmp_path, recorded_suite)
    reports = []
    for attempt in ("first", "second"):
        out, junit = tmp_path / attempt, tmp_path / f"{attempt}.xml"
        code, stdout, _ = _run([str(suite_file), "--out", str(out), "--junit", str(junit)], capsys)
        assert code == 0, stdout
        assert "2 passed, 0 failed, 0 errors" in stdout
        kpis = [json.loads((out / name / "kpis.json").read_text()) for name in ("base", "half-btc")]
        reports.append(([{k: v for k, v in k_.items() if k != "wall_s"} for k_ in kpis], junit))
    assert reports[0][0] == reports[1][0]
    first, second = (_without_times(path.read_text()) for _, path in reports)
    assert first == second
    assert suite_file.read_text(encoding="utf-8") == recorded_suite  # a check never writes


def test_changed_expected_value_fails_with_a_readable_diff(
    recorded_suite: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recorded net_usd moved by 1,000 USD makes the suite exit 1; the console, the JUnit
    failure and the markdown summary name the scenario, KPI, expected, got and tolerance."""
    recorded = parse_suite(recorded_suite).scenarios[0].expected or {}
    got = recorded["net_usd"]
    assert isinstance(got, float)
    wrong = round(got + 1000.0, 2)
    suite_file = _write(tmp_path, _set_expected(recorded_suite, "base", "net_usd", wrong))
    junit, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    out = tmp_path / "out"
    args = [str(suite_file), "--out", str(out), "--junit", str(junit), "--summary", str(summary)]
    code, stdout, _ = _run(args, capsys)
    assert code == 1
    assert "FAIL base (baseline): 1 of" in stdout
    line = next(text for text in stdout.splitlines() if text.strip().startswith("net_usd:"))
    assert f"expected {wrong:.10g}" in line and f"got {got:.10g}" in line
    assert "tolerance rel 1e-06, abs 0.01" in line
    assert "1 passed, 1 failed, 0 errors" in stdout

    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "1", "0")
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert set(cases) == {"base", "half-btc"}
    assert cases["half-btc"].find("failure") is None
    failure = cases["base"].find("failure")
    assert failure is not None and failure.text is not None
    assert failure.text.startswith("net_usd: expected") and str(wrong) in failure.text

    text = summary.read_text(encoding="utf-8")
    assert "| `base` | `baseline` | FAIL |" in text
    assert f"| `net_usd` | {wrong:.10g} | {got:.10g} |" in text


def test_update_rewrites_changed_values_and_prints_old_to_new(
    recorded_suite: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--update after a tampered value puts the run's value back, prints ``old -> new`` for
    it and nothing for unchanged KPIs, and exits 0."""
    recorded = parse_suite(recorded_suite).scenarios[1].expected or {}
    suite_file = _write(tmp_path, _set_expected(recorded_suite, "half-btc", "energy_mwh", 1.5))
    code, stdout, _ = _run([str(suite_file), "--update", "--out", str(tmp_path / "o")], capsys)
    assert code == 0
    assert f"energy_mwh: 1.5 -> {recorded['energy_mwh']:.10g}" in stdout
    assert "base: 0 expected value(s) changed" in stdout
    assert "half-btc: 1 expected value(s) changed" in stdout
    assert suite_file.read_text(encoding="utf-8") == recorded_suite


BAD_SUITES = [
    (
        "defaults: {kpis: [net_usd, wall_s]}",
        "defaults.kpis[1]: 'wall_s' depends on wall-clock time and is never comparable",
    ),
    (
        "scenarios: [{id: a, scenario: x.yaml, kpis: [net_usd], expected: {wall_s: 1.0}}]",
        "scenarios[0].expected.wall_s: 'wall_s' depends on wall-clock time and is never comparable",
    ),
    (
        "defaults: {tolerances: {utilization..gpu: {rel: 0.1}}}",
        "defaults.tolerances.utilization..gpu: 'utilization..gpu' is not a KPI path",
    ),
    ("defaults: {tolerance: {rel: -1}}", "defaults.tolerance.rel: must be >= 0"),
    ("defaults: {tolerance: {relative: 0.1}}", "defaults.tolerance.relative: unknown field"),
    ("scenarios: [{id: a, scenaro: x.yaml}]", "scenarios[0].scenaro: unknown field"),
    ("scenarios: [{id: a}]", "scenarios[0].scenario: required field is missing"),
    ("scenarios: [{id: a, scenario: x.yaml, days: 0}]", "scenarios[0].days: must be > 0"),
    (
        "scenarios: [{id: a, scenario: x.yaml}, {id: a, scenario: y.yaml}]",
        "scenarios[1].id: 'a' appears twice",
    ),
    (
        "defaults: {kpis: []}",
        "scenarios[0].kpis: no KPIs to compare; list them here or in defaults.kpis",
    ),
    (
        "scenarios: [{id: a, scenario: x.yaml, kpis: [net_usd], expected: {sla.*.count: 1}}]",
        "scenarios[0].expected.sla.*.count: 'sla.*.count': an expected value names one KPI",
    ),
    ("scenarios: []", "scenarios: must have at least 1 item(s)"),
]


@pytest.mark.parametrize(("change", "problem"), BAD_SUITES)
def test_bad_suite_file_names_the_field(change: str, problem: str) -> None:
    """Each malformed suite is refused with a ``path: reason`` line for the field."""
    document = {
        "name": "bad",
        "defaults": {"kpis": ["net_usd"]},
        "scenarios": [{"id": "a", "scenario": "x.yaml"}],
    }
    document.update(yaml.safe_load(change))
    with pytest.raises(SuiteError) as caught:
        parse_suite(yaml.safe_dump(document), source="bad.yaml")
    assert any(line.startswith(problem) for line in caught.value.problems), caught.value.problems
    assert str(caught.value).startswith("bad.yaml: invalid suite")


def test_duplicate_and_malformed_yaml_are_refused_with_their_line() -> None:
    """A key given twice in one mapping and broken YAML are refused naming line and column
    (PyYAML alone would keep the second key silently)."""
    text = "name: s\nscenarios:\n  - id: a\n    scenario: a.yaml\n    days: 1\n    days: 2\n"
    with pytest.raises(SuiteError) as caught:
        parse_suite(text)
    assert caught.value.problems == ["line 6, column 5: duplicate key 'days'"]
    with pytest.raises(SuiteError) as caught:
        parse_suite("name: s\nscenarios: [\n")
    assert caught.value.problems[0].startswith("line 3, column 1: not valid YAML")
    with pytest.raises(SuiteError) as caught:
        parse_suite("- just a list\n")
    assert caught.value.problems == ["top level must be a mapping of fields"]


def test_bad_suite_file_exits_2_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI refuses a suite whose scenario is missing or whose overrides break it, with
    exit code 2 and every problem named by entry, and runs nothing."""
    suite_file = _write(
        tmp_path,
        f"""name: bad
defaults: {{kpis: [net_usd]}}
scenarios:
  - {{id: ok, scenario: {SCENARIOS / "baseline.yaml"}, days: 0.25}}
  - {{id: gone, scenario: no_such.yaml}}
  - {{id: broken, scenario: {SCENARIOS / "baseline.yaml"}, set: {{seed: -1}}}}
""",
    )
    code, _, stderr = _run([str(suite_file), "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    assert "scenarios[1] (gone).scenario: file not found: no_such.yaml" in stderr
    assert "scenarios[2] (broken): baseline.yaml: seed: must be >= 0" in stderr
    assert not (tmp_path / "out").exists()
    code, _, stderr = _run([str(tmp_path / "missing.yaml")], capsys)
    assert code == 2 and "cannot read file" in stderr


def test_ci_suite_is_valid_and_fully_recorded() -> None:
    """scenarios/suites/ci.yaml validates, every scenario in it loads with its overrides,
    each entry has recorded values and is at most a week long, and it covers the replays,
    the what-ifs and the scenario library."""
    suite = load_suite(CI_SUITE)
    scenarios = prepare_scenarios(suite, CI_SUITE)
    assert all(entry.expected for entry in suite.scenarios)
    covered = {Path(entry.scenario).stem for entry in suite.scenarios}
    assert covered >= {
        "baseline",
        "uri_2021",
        "august_2023",
        "whatif_btc_halves",
        "whatif_add_h100s",
        "halving_2024",
        "btc_crash",
        "ai_demand_surge",
        "heatwave_4cp",
        "new_site_expansion",
    }
    assert all(scenario.duration_days <= 7 for scenario in scenarios)


def test_rewrite_inserts_a_missing_block_and_replaces_empty_ones() -> None:
    """An entry without ``expected:`` gets a block after its last line; ``expected:`` left
    empty or ``{}`` is replaced in place; the next entry and comments are untouched."""
    text = """name: s
defaults: {kpis: [net_usd]}
scenarios:
  - id: a
    scenario: a.yaml
    # about a
  - id: b
    scenario: b.yaml
    expected:
  - id: c
    expected: {}
    scenario: c.yaml
"""
    new = {"a": {"net_usd": 1.5}, "b": {"net_usd": None}, "c": {"net_usd": 2}}
    written = rewrite_expected(text, new)
    suite = parse_suite(written)
    assert {e.id: e.expected for e in suite.scenarios} == new
    assert "    scenario: a.yaml\n    expected:\n      net_usd: 1.5\n    # about a\n" in written
    assert "  - id: c\n    expected:\n      net_usd: 2\n    scenario: c.yaml\n" in written


@given(
    st.dictionaries(
        st.from_regex(r"[a-z_]{1,8}(\.[a-z0-9_-]{1,8}){0,2}", fullmatch=True).filter(
            lambda path: not path.startswith("wall_s")
        ),
        st.none() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=False, width=64),
        max_size=8,
    )
)
def test_rewrite_round_trips_any_values(values: dict[str, float | int | None]) -> None:
    """Whatever the values (ints, floats of any size, inf, null), the rewritten file reads
    back exactly the values written."""
    text = "name: s\ndefaults: {kpis: [net_usd]}\nscenarios:\n  - id: a\n    scenario: a.yaml\n"
    suite = parse_suite(rewrite_expected(text, {"a": values}))
    assert suite.scenarios[0].expected == values


@given(
    expected=st.floats(-1e9, 1e9),
    rel=st.floats(0, 0.1),
    absolute=st.floats(0, 10),
    excess=st.floats(1e-3, 1e6),
)
def test_tolerance_accepts_within_and_refuses_beyond(
    expected: float, rel: float, absolute: float, excess: float
) -> None:
    """A value within max(abs, rel * |expected|) passes on either side; one beyond fails;
    null matches only null."""
    tolerance = Tolerance(rel=rel, abs=absolute)
    allowed = tolerance.allowed(expected)
    assert tolerance.accepts(expected, expected)
    for within in (expected + allowed * 0.999, expected - allowed * 0.999):
        if abs(within - expected) <= allowed:  # not pushed past it by float rounding
            assert tolerance.accepts(expected, within)
    beyond = expected + allowed + excess * max(1.0, abs(expected)) * 1e-6
    if beyond - expected > allowed:  # not lost to float rounding
        assert not tolerance.accepts(expected, beyond)
    assert not tolerance.accepts(expected, None)
    assert not tolerance.accepts(None, expected)
    assert tolerance.accepts(None, None)


def test_kpi_selection_and_tolerance_lookup() -> None:
    """Groups expand to their numbers in file order, '*' matches one level, unmatched
    patterns are reported, wall_s is never selected, and the most specific tolerance wins."""
    kpis = {
        "net_usd": 5.0,
        "utilization": {"gpu": 0.5, "asic": None},
        "sla": {"a": {"met_fraction": 1.0, "count": 3}, "b": {"met_fraction": 0.5}},
        "flag": True,
        "wall_s": 1.2,
    }
    selected, unmatched = select_kpis(kpis, ["utilization", "sla.*.met_fraction", "nope", "flag"])
    assert selected == {
        "utilization.gpu": 0.5,
        "utilization.asic": None,
        "sla.a.met_fraction": 1.0,
        "sla.b.met_fraction": 0.5,
    }
    assert unmatched == ["nope", "flag"]
    suite = parse_suite(
        """name: s
defaults:
  kpis: [sla]
  tolerance: {rel: 0.5}
  tolerances: {sla: {abs: 1}, sla.*.count: {abs: 2}}
scenarios:
  - {id: a, scenario: a.yaml, tolerances: {sla.a.count: {abs: 3}}}
"""
    )
    entry = suite.scenarios[0]
    assert tolerance_for(suite, entry, "sla.a.count").abs == 3
    assert tolerance_for(suite, entry, "sla.b.count").abs == 2
    assert tolerance_for(suite, entry, "sla.b.met_fraction").abs == 1
    assert tolerance_for(suite, entry, "net_usd").rel == 0.5


def test_diff_lists_changed_new_and_removed_values() -> None:
    """The update diff shows each changed value as old -> new (with the change), new KPIs
    from (none) and dropped ones as (removed); unchanged values are not listed."""
    lines = diff_expected({"a": 1.0, "b": 2.0, "gone": 3}, {"a": 1.0, "b": 2.5, "new": None})
    assert lines == ["b: 2 -> 2.5 (+0.5, +25 %)", "new: (none) -> null", "gone: 3 -> (removed)"]


def test_readme_suite_example_is_a_valid_suite() -> None:
    """The suite example in scenarios/README.md validates as written."""
    text = (SCENARIOS / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    suites = [block for block in blocks if block.startswith("name:")]
    assert suites
    for block in suites:
        assert parse_suite(block, source="scenarios/README.md").scenarios


def test_compare_names_unrecorded_missing_and_unselected_kpis() -> None:
    """A KPI without a recorded value, a recorded one the run lacks and a recorded one no
    longer in the kpis list each fail with their own reason; a match within tolerance passes."""
    suite = parse_suite(
        """name: s
defaults: {kpis: [utilization]}
scenarios:
  - id: a
    scenario: a.yaml
    expected: {utilization.gpu: 0.5, utilization.tpu: 0.1, net_usd: 3.0}
"""
    )
    kpis = {"net_usd": 3.0, "utilization": {"gpu": 0.5000001, "asic": 0.2}}
    checks, unmatched = compare_entry(suite, suite.scenarios[0], kpis)
    by_path = {check.path: check for check in checks}
    assert unmatched == []
    assert by_path["utilization.gpu"].passed
    assert by_path["utilization.asic"].note == NOT_RECORDED
    assert by_path["utilization.tpu"].note == MISSING_IN_RUN
    assert by_path["net_usd"].note == NOT_SELECTED
    assert "no expected value recorded" in by_path["utilization.asic"].describe()
