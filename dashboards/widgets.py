"""Streamlit widgets for the schema-generated scenario form (dashboards.scenario_form).

:func:`render_form` shows the top-level fields in columns and each nested block in an
expander (blocks inside a block under a heading in the same expander), and returns the
sections as shown (a union block switched to another member shows that member's fields)
with the values entered, ready for ``scenario_form.overrides_from_form``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from dashboards.results import ResultFolder, list_runs
from dashboards.scenario_form import FieldSpec, FormSection, is_within, switch_member

COLUMNS = 3


def render_form(
    sections: Sequence[FormSection], key_prefix: str
) -> tuple[list[FormSection], dict[str, Any]]:
    """Show ``sections``; widget keys start with ``key_prefix`` (one prefix per scenario
    file, so each file's edits are kept apart). Returns the sections shown and the values
    entered by field path (tag paths included)."""
    shown: list[FormSection] = []
    entered: dict[str, Any] = {}
    replaced: list[str] = []
    groups = _groups(sections)
    for group in groups:
        head = group[0]
        if head.depth == 0:
            _render_section(head, key_prefix, st.container(), shown, entered, replaced)
            continue
        with st.expander(_title(head), expanded=False):
            for section in group:
                if any(is_within(section.path, path) for path in replaced):
                    continue
                if section.depth > head.depth:
                    st.markdown(f"**{section.title}**", help=section.help or None)
                _render_section(section, key_prefix, st.container(), shown, entered, replaced)
    return shown, entered


def _groups(sections: Sequence[FormSection]) -> list[list[FormSection]]:
    """The top-level section alone, then each depth-1 section with its descendants."""
    groups: list[list[FormSection]] = []
    for section in sections:
        if section.depth <= 1 or not groups:
            groups.append([section])
        else:
            groups[-1].append(section)
    return groups


def _title(section: FormSection) -> str:
    title = section.title if section.tag is None else f"{section.title} ({section.tag.value})"
    summary = section.help.split(". ")[0].rstrip(".") if section.help else ""
    return f"{title} — {summary}" if summary else title


def _render_section(
    section: FormSection,
    key_prefix: str,
    container: Any,
    shown: list[FormSection],
    entered: dict[str, Any],
    replaced: list[str],
) -> None:
    with container:
        member = None
        if section.tag is not None:
            tag = section.tag
            member = field_widget(tag, widget_key(key_prefix, tag.path))
            entered[tag.path] = member
            if member != tag.value:
                section = switch_member(section, str(member))
                replaced.append(section.path)
        columns = st.columns(COLUMNS)
        for index, spec in enumerate(section.fields):
            with columns[index % COLUMNS]:
                key = widget_key(key_prefix, spec.path, member)
                entered[spec.path] = field_widget(spec, key)
    shown.append(section)


def widget_key(key_prefix: str, path: str, member: object | None = None) -> str:
    """The session-state key of a field's widget: ``<prefix>:<path>``, plus ``@<member>``
    inside a union block (each member's fields keep their own values)."""
    key = f"{key_prefix}:{path}"
    return key if member is None else f"{key}@{member}"


def field_widget(spec: FieldSpec, key: str) -> Any:
    """One widget for ``spec`` (checkbox, number input, text input or select box) with
    the schema's bounds and a help text; returns what it holds."""
    help_text = spec.help or None
    label = spec.name
    if spec.kind == "bool":
        return st.checkbox(label, value=bool(spec.value), key=key, help=help_text)
    if spec.kind == "int":
        return st.number_input(
            label,
            min_value=None if spec.minimum is None else int(spec.minimum),
            max_value=None if spec.maximum is None else int(spec.maximum),
            value=None if spec.value is None else int(spec.value),
            step=1,
            key=key,
            help=help_text,
        )
    if spec.kind == "float":
        value = None if spec.value is None else float(spec.value)
        return st.number_input(
            label,
            min_value=spec.minimum,
            max_value=spec.maximum,
            value=value,
            step=number_step(value, spec.minimum, spec.maximum),
            format="%g",
            key=key,
            help=help_text,
        )
    if spec.kind == "choice":
        options = list(spec.options)
        index = options.index(spec.value) if spec.value in options else 0
        return st.selectbox(label, options, index=index, key=key, help=help_text)
    if spec.kind == "datetime":
        help_text = "ISO 8601 with UTC offset, e.g. 2025-07-14T00:00:00-05:00"
    return st.text_input(
        label, value="" if spec.value is None else str(spec.value), key=key, help=help_text
    )


def number_step(value: float | None, minimum: float | None, maximum: float | None) -> float:
    """The +/- step of a number input: about 1 % of the value's magnitude (a power of
    ten), 0.01 for fractions bounded by [0, 1], 0.1 when there is no value."""
    if minimum is not None and maximum is not None and maximum - minimum <= 1.0:
        return 0.01
    if value is None or value == 0 or not math.isfinite(value):
        return 0.1
    return float(10.0 ** (math.floor(math.log10(abs(value))) - 2))


def metric_row(values: dict[str, Any], specs: Sequence[tuple[str, str, str]]) -> None:
    """One ``st.metric`` per (label, key, format) of ``specs``; n/a for a missing or NaN
    value."""
    for column, (label, key, text) in zip(st.columns(len(specs)), specs, strict=True):
        value = values.get(key)
        missing = value is None or value != value  # NaN is not equal to itself
        column.metric(label, "n/a" if missing else text.format(value))


def pick_run(results_dir: Path, key: str) -> ResultFolder | None:
    """A selectbox of the runs under ``results_dir`` (None, with a warning, when there
    are none)."""
    runs = list_runs(results_dir)
    if not runs:
        st.warning(f"No runs (folders with kpis.json) under {results_dir}.")
        return None
    chosen = st.selectbox("Run", [r.name for r in runs], key=key)
    return next(r for r in runs if r.name == chosen)
