"""A scenario editing form generated from the pydantic schema (twin.scenario.Scenario).

The form is plain data, built without Streamlit so it can be tested: :func:`form_sections`
walks a loaded scenario and its schema and returns one :class:`FormSection` per block
(the top level, each nested model such as ``market`` or ``policy``, each facility by id,
each workload type's demand ...), down to ``max_depth`` levels. Every scalar field
becomes a :class:`FieldSpec` whose widget kind and bounds come from its type and
constraints (``Field(ge=0, le=1)`` gives a number input from 0 to 1, a ``Literal`` a
choice, ``X | None`` an optional input). Lists, free mappings and deeper models are not in
the form; they are listed in ``FormSection.skipped`` and can be set as free-form overrides.

What the user entered becomes dotted overrides with :func:`overrides_from_form`: the same
``PATH=VALUE`` pairs ``python run.py simulate --set`` takes (``facilities[west-mine].
power_cap_mw``, list items by id), applied by :func:`twin.scenario.load_scenario`, which
validates them and names any bad field. Only values that differ from the loaded scenario
become overrides. Choosing another member of a discriminated union (``policy.name``
``strike`` -> ``greedy``, ``grid.prices.kind`` ...) replaces that whole block with the new
member's fields.
"""

from __future__ import annotations

import math
import shlex
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

WidgetKind = Literal["bool", "int", "float", "text", "choice", "datetime"]
"""How a field is edited: checkbox, whole number, number, text, choice of options, or a
date-time with UTC offset typed as ISO 8601 text."""

MAX_SAFE_INT = 2**53 - 1
"""Largest whole number a browser number input holds exactly; wider bounds are clipped."""

DEFAULT_MAX_DEPTH = 2
"""Levels of nested models in the form: 1 gives the top level and its direct blocks
(``market``, ``policy``, each facility ...); 2 adds the blocks inside those
(``market.btc_price``, ``facilities[x].contract``, ``workloads.demand.<type>`` ...)."""


class FormInputError(ValueError):
    """Free-form override text that cannot be read (names the line and the reason)."""


@dataclass(frozen=True)
class FieldSpec:
    """One editable scalar field.

    Attributes:
        path: dotted override path, as ``--set`` takes it (``market.pool_fee_fraction``).
        name: the field name in the schema.
        kind: the widget to edit it with.
        value: the value in the loaded scenario, as the widget shows it (a date-time as
            ISO 8601 text; ``None`` for an optional field that is not set).
        optional: ``None`` is allowed (an empty input).
        minimum, maximum: bounds from the schema constraints (inclusive for the widget; a
            strict bound such as ``> 0`` is enforced when the scenario is validated).
        options: the allowed values of a ``choice``.
        help: the constraints in words, e.g. ``>= 0, <= 1``.
    """

    path: str
    name: str
    kind: WidgetKind
    value: Any
    optional: bool = False
    minimum: float | None = None
    maximum: float | None = None
    options: tuple[Any, ...] = ()
    help: str = ""


@dataclass(frozen=True)
class FormSection:
    """The editable fields of one schema block.

    Attributes:
        path: dotted path of the block (``""`` for the scenario itself).
        title: heading, e.g. ``market.btc_price`` or ``facilities[west-mine]``.
        depth: 0 for the scenario, 1 for its blocks, 2 for blocks inside those.
        fields: the scalar fields, in schema order.
        help: the block's docstring (what it models).
        tag: for a discriminated union (``policy``, ``grid.prices`` ...) the choice of
            member (its ``value`` is the member in the loaded scenario); else None.
        members: for a union, the model of each tag.
        skipped: paths of the block's fields that are not in the form (lists, mappings,
            blocks deeper than the form goes).
    """

    path: str
    title: str
    depth: int
    fields: tuple[FieldSpec, ...]
    help: str = ""
    tag: FieldSpec | None = None
    members: Mapping[str, type[BaseModel]] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()


def form_sections(scenario: BaseModel, max_depth: int = DEFAULT_MAX_DEPTH) -> list[FormSection]:
    """The form of ``scenario``: its top-level block first, then each nested block
    (depth first, in schema order) down to ``max_depth`` levels of nesting."""
    sections: list[FormSection] = []
    _walk(scenario, type(scenario), "", "scenario", 0, None, max_depth, sections)
    return sections


def switch_member(section: FormSection, tag: str) -> FormSection:
    """``section`` showing union member ``tag`` with that member's default values
    (``section.tag.value`` still names the member of the loaded scenario)."""
    if section.tag is None:
        raise ValueError(f"{section.title}: not a union block; it has no member to switch to")
    if tag == section.tag.value:
        return section
    member = section.members.get(tag)
    if member is None:
        known = ", ".join(map(str, section.members))
        raise ValueError(f"{section.tag.path}: unknown member {tag!r}; known: {known}")
    switched: list[FormSection] = []
    union = (section.tag.name, section.members)
    _walk(None, member, section.path, section.title, section.depth, union, 0, switched)
    return replace(
        switched[0], tag=section.tag, members=section.members, help=_doc(member) or section.help
    )


def overrides_from_form(
    sections: Sequence[FormSection], entered: Mapping[str, Any]
) -> dict[str, Any]:
    """Dotted overrides (``--set`` pairs) for what was ``entered`` (field path -> value,
    tag path -> member) in the ``sections`` as shown.

    A field not in ``entered`` or equal to its loaded value gives nothing. A union block
    whose entered tag differs from the loaded member becomes one override replacing the
    whole block (``{tag field: tag, field: value ...}``, unset optional fields left out);
    sections nested inside a replaced block are ignored.
    """
    overrides: dict[str, Any] = {}
    replaced: list[str] = []
    for section in sections:
        if any(is_within(section.path, path) for path in replaced):
            continue
        if section.tag is not None:
            chosen = entered.get(section.tag.path, section.tag.value)
            if chosen != section.tag.value:
                block: dict[str, Any] = {section.tag.name: chosen}
                for spec in section.fields:
                    value = entry_value(spec, entered.get(spec.path, spec.value))
                    if value is not None:
                        block[spec.name] = value
                overrides[section.path] = block
                replaced.append(section.path)
                continue
        for spec in section.fields:
            if spec.path not in entered:
                continue
            value = entry_value(spec, entered[spec.path])
            if not same_value(value, entry_value(spec, spec.value)):
                overrides[spec.path] = value
    return overrides


def entry_value(spec: FieldSpec, value: Any) -> Any:
    """A widget's value as an override value: empty text is ``None`` for an optional
    field, text is stripped; numbers of an ``int`` field are whole numbers."""
    if isinstance(value, str):
        value = value.strip()
        if value == "" and spec.optional:
            return None
    if spec.kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def same_value(left: Any, right: Any) -> bool:
    """Equal, with floats compared to 12 significant digits (a number input may hand back
    a float that differs from the loaded value in the last bit)."""
    numbers = (int, float)
    if isinstance(left, numbers) and isinstance(right, numbers):
        if isinstance(left, bool) or isinstance(right, bool):
            return left is right
        return math.isclose(float(left), float(right), rel_tol=1e-12, abs_tol=0.0)
    return bool(left == right)


def is_within(path: str, block: str) -> bool:
    """``path`` is ``block`` or lies inside it (``a.b`` and ``a[x].c`` are inside ``a``)."""
    if not block:
        return True
    return path == block or path.startswith(block + ".") or path.startswith(block + "[")


def parse_set_lines(text: str) -> dict[str, Any]:
    """Overrides from ``PATH=VALUE`` lines, read as ``--set`` reads them (VALUE is YAML).
    Blank lines and lines starting with ``#`` are ignored.

    Raises:
        FormInputError: a line without ``=`` or a path, or a VALUE that is not YAML.
    """
    overrides: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        path, sep, value = stripped.partition("=")
        if not sep or not path.strip():
            raise FormInputError(f"line {number} {stripped!r}: expected PATH=VALUE")
        try:
            overrides[path.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise FormInputError(f"line {number} {stripped!r}: VALUE is not valid YAML") from None
    return overrides


def set_arguments(overrides: Mapping[str, Any]) -> str:
    """The overrides as ``--set PATH=VALUE`` arguments for ``python run.py simulate``,
    quoted for a POSIX shell (values in YAML flow style)."""
    parts = []
    for path, value in overrides.items():
        text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000)
        text = text.strip()
        text = text.removesuffix("...").strip()
        parts.append(f"--set {shlex.quote(f'{path}={text}')}")
    return " ".join(parts)


# ---------------------------------------------------------------------- walking the schema


def _walk(
    instance: BaseModel | None,
    model: type[BaseModel],
    path: str,
    title: str,
    depth: int,
    union: tuple[str, Mapping[str, type[BaseModel]]] | None,
    max_depth: int,
    out: list[FormSection],
) -> None:
    """Append the section of ``model`` at ``path`` (values from ``instance``, or the
    defaults without one), then those of its nested blocks within ``max_depth``."""
    tag_name = union[0] if union is not None else None
    keyed_item = path.endswith("]")  # a list item addressed by its id: the id is the key
    fields: list[FieldSpec] = []
    skipped: list[str] = []
    children: list[tuple[BaseModel | None, type[BaseModel], str, str, Any]] = []
    for name, info in model.model_fields.items():
        if name == tag_name or (keyed_item and name == "id"):
            continue
        child_path = f"{path}.{name}" if path else name
        value = getattr(instance, name) if instance is not None else _default(info)
        spec = _scalar_spec(child_path, name, info, value)
        if spec is not None:
            fields.append(spec)
            continue
        nested = _nested_blocks(child_path, info, value) if depth < max_depth else None
        if nested is None:
            skipped.append(child_path)
        else:
            children.extend(nested)
    tag = None
    members: Mapping[str, type[BaseModel]] = {}
    if union is not None and instance is not None:
        members = union[1]
        tag = FieldSpec(
            f"{path}.{tag_name}",
            str(tag_name),
            "choice",
            getattr(instance, str(tag_name)),
            options=tuple(members),
        )
    out.append(
        FormSection(path, title, depth, tuple(fields), _doc(model), tag, members, tuple(skipped))
    )
    for child, child_model, child_path, child_title, child_union in children:
        _walk(child, child_model, child_path, child_title, depth + 1, child_union, max_depth, out)


def _nested_blocks(
    path: str, info: FieldInfo, value: Any
) -> list[tuple[BaseModel | None, type[BaseModel], str, str, Any]] | None:
    """The blocks a non-scalar field opens: a model, a discriminated union, a list of
    models with ids (one block per id) or a mapping of models (one per key); None when the
    field is none of these (a plain list or mapping)."""
    annotation = _strip_annotated(info.annotation)
    if _is_model(annotation):
        if not isinstance(value, BaseModel):
            return None
        return [(value, annotation, path, path, None)]
    if isinstance(info.discriminator, str) and _union_args(annotation):
        members = _union_members(annotation, info.discriminator)
        if not members or not isinstance(value, BaseModel):
            return None
        return [(value, type(value), path, path, (info.discriminator, members))]
    item = _list_item_model(annotation)
    if item is not None and "id" in item.model_fields and isinstance(value, list):
        return [(v, item, f"{path}[{v.id}]", f"{path}[{v.id}]", None) for v in value]
    item = _dict_value_model(annotation)
    if item is not None and isinstance(value, dict):
        return [(v, item, f"{path}.{key}", f"{path}.{key}", None) for key, v in value.items()]
    return None


def _scalar_spec(path: str, name: str, info: FieldInfo, value: Any) -> FieldSpec | None:
    """The widget of a scalar field, or None when the field is not a scalar."""
    annotation = _strip_annotated(info.annotation)
    optional = False
    members = _union_args(annotation)
    if members:
        not_none = [m for m in members if m is not type(None)]
        if len(not_none) != 1 or len(not_none) == len(members):
            return None  # a union of several types: not one widget
        optional, annotation = True, _strip_annotated(not_none[0])
    kind: WidgetKind
    options: tuple[Any, ...] = ()
    if annotation is bool:
        kind = "bool"
    elif annotation is int:
        kind = "int"
    elif annotation is float:
        kind = "float"
    elif annotation is str:
        kind = "text"
    elif annotation is datetime:
        kind = "datetime"
        value = value.isoformat() if isinstance(value, datetime) else value
    elif get_origin(annotation) is Literal:
        kind, options = "choice", get_args(annotation)
    else:
        return None
    minimum, maximum, words = _bounds(info, kind)
    if optional:
        words.append("empty: not set")
    return FieldSpec(path, name, kind, value, optional, minimum, maximum, options, ", ".join(words))


def _bounds(info: FieldInfo, kind: WidgetKind) -> tuple[float | None, float | None, list[str]]:
    """Widget bounds and their description from the field's ``ge/gt/le/lt`` constraints."""
    minimum: float | None = None
    maximum: float | None = None
    words: list[str] = []
    step = 1 if kind == "int" else 0
    for constraint in info.metadata:
        if isinstance(constraint, annotated_types.Ge):
            minimum = float(constraint.ge)  # type: ignore[arg-type]
            words.append(f">= {constraint.ge}")
        elif isinstance(constraint, annotated_types.Gt):
            minimum = float(constraint.gt) + step  # type: ignore[arg-type]
            words.append(f"> {constraint.gt}")
        elif isinstance(constraint, annotated_types.Le):
            maximum = float(constraint.le)  # type: ignore[arg-type]
            words.append(f"<= {constraint.le}")
        elif isinstance(constraint, annotated_types.Lt):
            maximum = float(constraint.lt) - step  # type: ignore[arg-type]
            words.append(f"< {constraint.lt}")
    if kind == "int":
        minimum = None if minimum is None else max(minimum, -MAX_SAFE_INT)
        maximum = None if maximum is None else min(maximum, MAX_SAFE_INT)
    return minimum, maximum, words


def _default(info: FieldInfo) -> Any:
    """The field's default, or None when it is required."""
    if info.is_required():
        return None
    return info.get_default(call_default_factory=True)


def _doc(model: type[BaseModel]) -> str:
    doc = model.__doc__ or ""
    return " ".join(doc.split())


def _strip_annotated(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _union_args(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) in (Union, types.UnionType):
        return tuple(_strip_annotated(a) for a in get_args(annotation))
    return ()


def _union_members(annotation: Any, discriminator: str) -> dict[str, type[BaseModel]]:
    """Tag -> member model of a discriminated union (a member may carry several tags)."""
    members: dict[str, type[BaseModel]] = {}
    for member in _union_args(annotation):
        if not _is_model(member) or discriminator not in member.model_fields:
            continue
        for tag in get_args(member.model_fields[discriminator].annotation):
            members[str(tag)] = member
    return members


def _list_item_model(annotation: Any) -> type[BaseModel] | None:
    args = get_args(annotation)
    if get_origin(annotation) is list and args and _is_model(_strip_annotated(args[0])):
        return _strip_annotated(args[0])  # type: ignore[no-any-return]
    return None


def _dict_value_model(annotation: Any) -> type[BaseModel] | None:
    args = get_args(annotation)
    if get_origin(annotation) is dict and len(args) == 2 and _is_model(_strip_annotated(args[1])):
        return _strip_annotated(args[1])  # type: ignore[no-any-return]
    return None


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
