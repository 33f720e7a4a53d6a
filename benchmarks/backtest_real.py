"""Backtest every policy on real ERCOT prices over the windows the product spec names.

Windows (scenarios/baseline.yaml's three facilities, all moved to one settlement point,
HB_WEST unless ``--settlement-point`` says otherwise):

  aug2023-dam  August 2023, day-ahead hourly   2023-08-01 .. 2023-09-01
  feb2021-dam  February 2021 (Uri), day-ahead  2021-02-01 .. 2021-03-01
  jan2022-rtm  January 2022, real-time 15-min  2022-01-01 .. 2022-02-01
  jan2023-rtm  January 2023, real-time 15-min  2023-01-01 .. 2023-02-01

Day-ahead files carry hourly prices, so the twin sees each hour's price held over its
twelve 5-minute intervals; there is no real-time data for Uri or summer 2023 bundled.

Markets. By default the baseline's synthetic Bitcoin market is kept (BTC 119,850 USD,
900 EH/s, 0.03 BTC/block fees: mid-2025 levels) while the block subsidy follows the
window's date (6.25 BTC before the 2024-04-20 halving), so hashprice is about twice the
baseline's and mining breaks even at higher prices than it did then. ``--real-btc`` replays
the bundled daily BTC close and network hashrate instead (and daily fees where the bundled
fee file covers the window, 2023-05 .. 2024-04; elsewhere fees stay synthetic). Ancillary
prices, GPU rental and AI demand stay synthetic in both cases.

``--days-per-window N`` shortens each window to N days for quick runs: the N consecutive
local days with the highest mean price at the settlement point (the stressed part of the
month, where policies differ), or the first N days with ``--first-days``.

Prints net and capture vs the oracle per policy per window, then per window the checks
``oracle >= mpc``, ``mpc >= strike``, ``strike >= always_on`` and ``mpc capture >= 0.95``
as PASS / FAIL (SKIP when a policy was not run). It reports; it never fails the process on
a check.

Usage: python benchmarks/backtest_real.py [--days-per-window N] [--first-days]
       [--windows aug2023-dam,...] [--policies always_on,...] [--settlement-point SP]
       [--real-btc] [--out DIR] [--quiet]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from datasets.ercot import CPT_ZONE  # noqa: E402
from datasets.sources import load_price_table  # noqa: E402
from twin.backtest import (  # noqa: E402
    BacktestProgress,
    parse_policies,
    prepare_scenario,
    run_backtest,
    unavailable_policies,
)

REAL = ROOT / "datasets" / "real"
DAM_FILE = REAL / "ercot_dam_spp_hub_lz_hourly_2021_2023.csv"
RTM_FILE = REAL / "ercot_rtm_spp_hub_lz_15min_january_2022_2023.csv"
BASELINE = ROOT / "scenarios" / "baseline.yaml"
BTC_PRICE_FILE = "datasets/real/btc_usd_daily_ohlc_2011_2025.csv"
HASHRATE_FILE = "datasets/real/btc_network_hashrate_daily_mempool_2009_2025.csv"
FEES_FILE = "datasets/real/btc_blockchaincom_daily_2023-04_2024-04.csv"
FEES_COVER = (date(2023, 5, 1), date(2024, 4, 27))
"""Days the daily fee file covers with room for interpolation on both sides."""
CAPTURE_TARGET = 0.95


@dataclass(frozen=True)
class RealWindow:
    """One spec window: a price file and ``[start, end)`` local dates."""

    label: str
    file: Path
    start: date
    end: date


WINDOWS: Mapping[str, RealWindow] = {
    "aug2023-dam": RealWindow("Aug 2023 DAM", DAM_FILE, date(2023, 8, 1), date(2023, 9, 1)),
    "feb2021-dam": RealWindow("Feb 2021 DAM", DAM_FILE, date(2021, 2, 1), date(2021, 3, 1)),
    "jan2022-rtm": RealWindow("Jan 2022 RTM", RTM_FILE, date(2022, 1, 1), date(2022, 2, 1)),
    "jan2023-rtm": RealWindow("Jan 2023 RTM", RTM_FILE, date(2023, 1, 1), date(2023, 2, 1)),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen windows, print the table and the checks; returns 0."""
    args = _parser().parse_args(argv)
    policies = parse_policies(args.policies)
    names = [name.strip() for name in args.windows.split(",") if name.strip()]
    unknown = [name for name in names if name not in WINDOWS]
    if unknown:
        print(f"--windows: unknown window {unknown[0]!r}; known: {', '.join(WINDOWS)}")
        return 2
    rows: dict[str, dict[str, Any]] = {}
    for name in names:
        window = WINDOWS[name]
        start, end = run_dates(window, args.settlement_point, args.days_per_window, args.first_days)
        print(f"{name}: {window.label} {args.settlement_point} {start} .. {end}", file=sys.stderr)
        scenario = prepare_scenario(
            BASELINE,
            market_overrides(start, end) if args.real_btc else {},
            prices_file=window.file,
            settlement_point=args.settlement_point,
            start=start,
            end=end,
        )
        skipped = unavailable_policies(scenario, policies)
        for policy, reason in skipped.items():
            print(f"  skipping {policy}: {reason}", file=sys.stderr)
        runnable = [policy for policy in policies if policy not in skipped]
        with BacktestProgress(scenario, runnable, enabled=not args.quiet) as progress:
            result = run_backtest(
                scenario,
                runnable,
                args.out / name,
                observer=progress,
                skipped=skipped,
                scenario_file=str(BASELINE.relative_to(ROOT)),
            )
        rows[name] = {"dates": f"{start}..{end}", **result.summary}
    print_table(rows, policies)
    print_checks(rows)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days-per-window", type=int, help="run N days of each window")
    parser.add_argument(
        "--first-days", action="store_true", help="with --days-per-window: the first N days"
    )
    parser.add_argument("--windows", default=",".join(WINDOWS), help="comma-separated labels")
    parser.add_argument("--policies", help="comma-separated (default: all five)")
    parser.add_argument("--settlement-point", default="HB_WEST")
    parser.add_argument("--real-btc", action="store_true", help="replay daily BTC history")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "backtest-real")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def run_dates(
    window: RealWindow, settlement_point: str, days: int | None, first_days: bool
) -> tuple[date, date]:
    """The ``[start, end)`` dates to run: the whole window, or ``days`` of it (the first,
    or the consecutive local days of highest mean price at ``settlement_point``)."""
    total = (window.end - window.start).days
    if days is None or days >= total:
        return window.start, window.end
    if days < 1:
        raise SystemExit("--days-per-window: must be >= 1")
    if first_days:
        return window.start, window.start + timedelta(days=days)
    table = load_price_table(window.file)
    if settlement_point not in table.columns:
        raise SystemExit(f"--settlement-point {settlement_point}: not in {window.file}")
    local = table.frame[settlement_point].tz_convert(CPT_ZONE)
    daily = local.groupby(local.index.date).mean()
    daily = daily[(daily.index >= window.start) & (daily.index < window.end)]
    rolling = pd.Series(daily.to_numpy()).rolling(days).mean()  # NaN for the first days-1
    first = int(rolling.idxmax()) - days + 1
    start = daily.index[first]
    return start, start + timedelta(days=days)


def market_overrides(start: date, end: date) -> dict[str, Any]:
    """Scenario overrides that replay the bundled daily BTC price and network hashrate
    (and fees where the fee file covers ``[start, end)``)."""
    overrides: dict[str, Any] = {
        "market.btc_price": {"kind": "historical", "file": BTC_PRICE_FILE},
        "market.network_hashrate": {"kind": "historical", "file": HASHRATE_FILE},
    }
    if FEES_COVER[0] <= start and end <= FEES_COVER[1]:
        overrides["market.fees"] = {"kind": "historical", "file": FEES_FILE}
    return overrides


def print_table(rows: Mapping[str, Mapping[str, Any]], policies: Sequence[str]) -> None:
    """Net [USD] and capture vs oracle per policy (rows) and window (columns)."""
    head = f"{'policy':<10}" + "".join(f"{name:>28}" for name in rows)
    dates = f"{'':<10}" + "".join(f"{row['dates']:>28}" for row in rows.values())
    print()
    print(head)
    print(dates)
    for policy in policies:
        cells = []
        for row in rows.values():
            values = row["policies"].get(policy)
            if values is None:
                cells.append(f"{'not run':>28}")
                continue
            capture = values["capture_vs_oracle"]
            capture_text = "n/a" if capture is None else f"{100 * capture:.1f}%"
            cells.append(f"{values['net_usd']:>19,.0f} {capture_text:>8}")
        print(f"{policy:<10}" + "".join(cells))
    print(f"{'':<10}" + "".join(f"{'net USD  capture':>28}" for _ in rows))


def print_checks(rows: Mapping[str, Mapping[str, Any]]) -> None:
    """PASS / FAIL / SKIP of each ordering check per window."""
    print()
    for name, row in rows.items():
        policies = row["policies"]
        for text, outcome in checks(policies):
            print(f"{name:<12} {text:<26} {outcome}")


def checks(policies: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The spec's checks on one window's per-policy summary."""

    def at_least(better: str, worse: str) -> str:
        if better not in policies or worse not in policies:
            return "SKIP (not run)"
        ok = policies[better]["net_usd"] >= policies[worse]["net_usd"]
        return "PASS" if ok else "FAIL"

    capture = policies.get("mpc", {}).get("capture_vs_oracle")
    if "mpc" not in policies or "oracle" not in policies:
        capture_outcome = "SKIP (not run)"
    elif capture is None:
        capture_outcome = "SKIP (oracle net <= 0)"
    else:
        capture_outcome = f"{'PASS' if capture >= CAPTURE_TARGET else 'FAIL'} ({capture:.3f})"
    return [
        ("oracle >= mpc", at_least("oracle", "mpc")),
        ("mpc >= strike", at_least("mpc", "strike")),
        ("strike >= always_on", at_least("strike", "always_on")),
        (f"mpc capture >= {CAPTURE_TARGET}", capture_outcome),
    ]


if __name__ == "__main__":
    sys.exit(main())
