"""JUnit XML of a suite run, for CI systems that show test reports.

One ``<testsuite>`` named after the suite; one ``<testcase>`` per entry (``classname``
``suite.<suite name>``, ``name`` the entry id, ``time`` its wall time [s]). A regression is a
``<failure>`` whose text lists every KPI out of tolerance (expected, got, tolerance); a run
that raised is an ``<error>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from twin.suite.runner import EntryResult, SuiteResult


def junit_xml(result: SuiteResult) -> str:
    """The JUnit XML document (UTF-8 text with an XML declaration) of ``result``."""
    name = result.suite.name
    counts = {
        "tests": str(len(result.results)),
        "failures": str(result.count("FAIL")),
        "errors": str(result.count("ERROR")),
        "skipped": "0",
        "time": f"{result.wall_s:.3f}",
    }
    root = ET.Element("testsuites", {"name": name, **counts})
    suite = ET.SubElement(root, "testsuite", {"name": name, **counts})
    for entry_result in result.results:
        suite.append(_testcase(name, entry_result))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(result: SuiteResult, path: Path) -> None:
    """Write :func:`junit_xml` to ``path`` (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(junit_xml(result), encoding="utf-8")


def _testcase(suite_name: str, result: EntryResult) -> ET.Element:
    case = ET.Element(
        "testcase",
        {
            "classname": f"suite.{suite_name}",
            "name": result.entry.id,
            "time": f"{result.wall_s:.3f}",
        },
    )
    if result.error is not None:
        error = ET.SubElement(case, "error", {"message": "run failed", "type": "RunError"})
        error.text = result.error
    elif not result.passed:
        lines = [check.describe() for check in result.failures]
        lines += [f"{pattern}: matches no KPI of the run" for pattern in result.unmatched]
        failure = ET.SubElement(
            case,
            "failure",
            {"message": f"{len(lines)} KPI(s) out of tolerance", "type": "KpiRegression"},
        )
        failure.text = "\n".join(lines)
    out = ET.SubElement(case, "system-out")
    out.text = (
        f"scenario {result.scenario_name}, {result.sim_days:g} sim days, "
        f"{len(result.checks)} KPIs compared"
    )
    return case
