"""``base:`` merging when an overlay switches a source to another ``kind``."""

from __future__ import annotations

from twin.scenario import PROJECT_ROOT, deep_merge, load_scenario


def test_a_mapping_of_another_kind_replaces_the_base_mapping() -> None:
    """Switching ``kind`` drops the base's keys; the same kind still merges key by key."""
    base = {"btc_price": {"kind": "synthetic", "initial_usd": 1.0, "volatility_per_year": 0.4}}
    switched = deep_merge(base, {"btc_price": {"kind": "historical", "file": "x.csv"}})
    assert switched == {"btc_price": {"kind": "historical", "file": "x.csv"}}
    same = deep_merge(base, {"btc_price": {"kind": "synthetic", "initial_usd": 2.0}})
    expected = {"kind": "synthetic", "initial_usd": 2.0, "volatility_per_year": 0.4}
    assert same["btc_price"] == expected


def test_btc_crash_is_the_baseline_with_a_historical_price() -> None:
    """The crash what-if loads through ``base:`` and differs from the baseline only in the
    BTC price source (and its name and description)."""
    scenarios = PROJECT_ROOT / "scenarios"
    crash = load_scenario(scenarios / "btc_crash.yaml").model_dump(mode="json")
    baseline = load_scenario(scenarios / "baseline.yaml").model_dump(mode="json")
    assert crash["market"]["btc_price"]["kind"] == "historical"
    differing = {key for key in baseline if baseline[key] != crash[key]}
    assert differing == {"name", "description", "market"}
    crash["market"]["btc_price"] = baseline["market"]["btc_price"]
    assert crash["market"] == baseline["market"]
