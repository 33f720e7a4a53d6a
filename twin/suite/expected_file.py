"""``suite --update``: record new expected values in the suite file, changing nothing else.

PyYAML cannot write a file back with its comments, so the file is edited as text: the
``expected:`` block of each entry whose values changed is located with ``yaml.compose``
(which gives every node's position) and replaced by a fresh block in ``yaml.safe_dump``
form, one ``path: value`` line per KPI in the order the KPIs were selected. Comments and
layout outside the ``expected:`` blocks stay as written; comments inside one are dropped
when it is rewritten. An entry without an ``expected:`` key gets one after its last line.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import yaml

from twin.suite.model import KpiValue, SuiteError, parse_suite

Expected = dict[str, KpiValue]


def diff_expected(old: Mapping[str, KpiValue] | None, new: Mapping[str, KpiValue]) -> list[str]:
    """``path: old -> new`` for every KPI whose recorded value changes (new KPIs show
    ``(none)`` as old, dropped ones ``(removed)`` as new), in the order of ``new``."""
    old = old or {}
    lines = []
    for path, value in new.items():
        if path not in old:
            lines.append(f"{path}: (none) -> {_text(value)}")
        elif old[path] != value:
            lines.append(f"{path}: {_text(old[path])} -> {_text(value)}{_change(old[path], value)}")
    lines += [
        f"{path}: {_text(value)} -> (removed)" for path, value in old.items() if path not in new
    ]
    return lines


def rewrite_expected(
    text: str, new_expected: Mapping[str, Expected], source: str | None = None
) -> str:
    """``text`` of a suite file with the ``expected:`` block of each entry id in
    ``new_expected`` replaced by its values (entries not named keep theirs).

    Raises:
        SuiteError: ``text`` is not a valid suite, or an id in ``new_expected`` is not in it.
    """
    parse_suite(text, source)  # the file must be valid before it is edited
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    entries = _entry_nodes(root)
    unknown = sorted(set(new_expected) - set(entries))
    if unknown:
        raise SuiteError([f"scenarios: no entry with id {name!r}" for name in unknown], source)
    edits = []
    for entry_id, values in new_expected.items():
        edits.append(_edit_for(text, entries[entry_id], values))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    written = parse_suite(text, source)
    for entry in written.scenarios:
        if entry.id in new_expected and (entry.expected or {}) != dict(new_expected[entry.id]):
            raise SuiteError([f"scenarios ({entry.id}).expected: rewrite did not round-trip"])
    return text


def write_text_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (a temporary file renamed over it)."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _entry_nodes(root: yaml.Node | None) -> dict[str, yaml.MappingNode]:
    """The mapping node of each entry under ``scenarios``, by id."""
    entries: dict[str, yaml.MappingNode] = {}
    scenarios = _value_of(root, "scenarios")
    for item in scenarios.value if isinstance(scenarios, yaml.SequenceNode) else []:
        if isinstance(item, yaml.MappingNode):
            id_node = _value_of(item, "id")
            if isinstance(id_node, yaml.ScalarNode):
                entries[id_node.value] = item
    return entries


def _value_of(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return value_node
    return None


def _edit_for(text: str, entry: yaml.MappingNode, values: Expected) -> tuple[int, int, str]:
    """``(start, end, replacement)``: the character span of the entry's ``expected:`` block
    (from its key's line to the end of its last value's line) and the new block."""
    for key_node, value_node in entry.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == "expected":
            start = text.rfind("\n", 0, key_node.start_mark.index) + 1
            last = key_node.end_mark.index if _is_empty(value_node) else _last_index(value_node)
            end = _line_end(text, last)
            return start, end, _block(key_node.start_mark.column, values)
    # no expected: key yet: a new block after the entry's last line
    first_key = entry.value[0][0]
    end = _line_end(text, _last_index(entry))
    return end, end, "\n" + _block(first_key.start_mark.column, values)


def _last_index(node: yaml.Node) -> int:
    """Character index just past the last scalar (or flow collection) inside ``node``; a
    block collection's own end mark would reach over trailing comments."""
    if isinstance(node, yaml.MappingNode) and node.value and not node.flow_style:
        last_key, last_value = node.value[-1]
        return int(last_key.end_mark.index) if _is_empty(last_value) else _last_index(last_value)
    if isinstance(node, yaml.SequenceNode) and node.value and not node.flow_style:
        return _last_index(node.value[-1])
    return int(node.end_mark.index)


def _is_empty(node: yaml.Node) -> bool:
    """A value left empty (``key:`` and nothing after): its marks sit on the next token."""
    return isinstance(node, yaml.ScalarNode) and node.value == "" and node.style is None


def _line_end(text: str, index: int) -> int:
    """Index of the newline ending the line that contains ``index - 1`` (or the text end)."""
    newline = text.find("\n", max(index - 1, 0))
    return len(text) if newline < 0 else newline


def _block(column: int, values: Expected) -> str:
    """``expected:`` at ``column`` and one ``path: value`` line per KPI two columns in."""
    indent = " " * column
    if not values:
        return f"{indent}expected: {{}}"
    body = yaml.safe_dump(dict(values), sort_keys=False, default_flow_style=False, width=1000)
    lines = [f"{indent}  {line}" for line in body.splitlines()]
    return "\n".join([f"{indent}expected:", *lines])


def _text(value: KpiValue) -> str:
    return "null" if value is None else f"{value:.10g}"


def _change(old: KpiValue, new: KpiValue) -> str:
    if old is None or new is None:
        return ""
    if old == 0:
        return f" ({new - old:+.6g})"
    return f" ({new - old:+.6g}, {100 * (new - old) / abs(old):+.3g} %)"
