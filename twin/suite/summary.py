"""Markdown summary of a suite run: one table row per entry, then each regression's KPIs
(expected, got, difference, tolerance). Suited to a CI job summary or a pull request."""

from __future__ import annotations

from pathlib import Path

from twin.suite.compare import KpiCheck
from twin.suite.runner import SuiteResult


def summary_markdown(result: SuiteResult) -> str:
    """The summary of ``result`` as GitHub-flavoured markdown."""
    suite = result.suite
    verdict = "passed" if result.passed else "FAILED"
    lines = [
        f"# Suite `{suite.name}`: {verdict}",
        "",
        f"{len(result.results)} scenarios: {result.count('pass')} passed, "
        f"{result.count('FAIL')} failed, {result.count('ERROR')} errors "
        f"in {result.wall_s:.1f} s.",
        "",
        "| scenario | run | result | KPIs compared | out of tolerance | sim days | wall s |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for entry in result.results:
        out = len(entry.failures) + len(entry.unmatched)
        lines.append(
            f"| `{entry.entry.id}` | `{entry.scenario_name}` | {entry.status} | "
            f"{len(entry.checks)} | {out} | {entry.sim_days:g} | {entry.wall_s:.1f} |"
        )
    for entry in result.results:
        if entry.passed:
            continue
        lines += ["", f"## `{entry.entry.id}`: {entry.status}", ""]
        if entry.error is not None:
            lines.append(f"Run failed: `{_cell(entry.error)}`")
            continue
        lines += [
            "| KPI | expected | got | difference | tolerance |",
            "|---|---:|---:|---:|---|",
        ]
        lines += [_row(check) for check in entry.failures]
        lines += [f"| `{pattern}` | | | | matches no KPI |" for pattern in entry.unmatched]
    return "\n".join(lines) + "\n"


def write_summary(result: SuiteResult, path: Path) -> None:
    """Write :func:`summary_markdown` to ``path`` (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(summary_markdown(result), encoding="utf-8")


def _row(check: KpiCheck) -> str:
    difference = ""
    if check.expected is not None and check.got is not None:
        difference = f"{check.got - check.expected:+.6g}"
    tolerance = check.note or check.tolerance.describe()
    return (
        f"| `{check.path}` | {_value(check.expected)} | {_value(check.got)} | {difference} | "
        f"{tolerance} |"
    )


def _value(value: float | None) -> str:
    return "null" if value is None else f"{value:.10g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
