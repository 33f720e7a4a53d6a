"""Deterministic scenario suites: run a list of scenarios, compare their KPIs with recorded
values within tolerances, and report (JUnit XML, markdown); ``--update`` re-records them.

Modules: :mod:`~twin.suite.model` (file schema), :mod:`~twin.suite.compare` (KPI selection
and tolerances), :mod:`~twin.suite.runner` (runs), :mod:`~twin.suite.expected_file`
(``--update``), :mod:`~twin.suite.junit` and :mod:`~twin.suite.summary` (reports).
"""

from twin.suite.compare import KpiCheck, compare_entry, select_kpis
from twin.suite.expected_file import diff_expected, rewrite_expected
from twin.suite.junit import junit_xml
from twin.suite.model import Suite, SuiteEntry, SuiteError, Tolerance, load_suite, parse_suite
from twin.suite.runner import EntryResult, SuiteResult, run_suite
from twin.suite.summary import summary_markdown

__all__ = [
    "EntryResult",
    "KpiCheck",
    "Suite",
    "SuiteEntry",
    "SuiteError",
    "SuiteResult",
    "Tolerance",
    "compare_entry",
    "diff_expected",
    "junit_xml",
    "load_suite",
    "parse_suite",
    "rewrite_expected",
    "run_suite",
    "select_kpis",
    "summary_markdown",
]
