"""Requests drawn from the OpenAPI spec (``twin/service/openapi.json``), on SQLite and
PostgreSQL: the API never answers 5xx, every error is a problem document (``title``,
``status``, ``errors``), and every 2xx body validates against the spec's response schema.

For each operation hypothesis draws path parameters, query parameters and JSON bodies from
the spec's schemas (``$ref`` resolved to ``components``), and sends them with a customer key
or a staff key with a current TOTP code. Path ids are also drawn from real workloads, so the
success paths run too. Schema-violating variants (a required field missing, a value of a
type the schema excludes, an unknown property, a query value of the wrong type) must get a
4xx. Leaf values (strings with formats, bounded numbers) come from hypothesis-jsonschema;
objects are assembled here, since its object strategy uses a hypothesis internal that
hypothesis 6.170 no longer has (``'many' object has no attribute 'more'``).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema import Draft202012Validator, FormatChecker

from twin.scenario import PROJECT_ROOT, load_scenario
from twin.service.api.app import ServiceConfig, create_app
from twin.service.keys import NewKey, create_key
from twin.service.openapi import SPEC_FILE
from twin.service.security.totp import totp_code
from twin.service.twin_bridge import TwinBridge

SPEC: dict[str, Any] = json.loads(SPEC_FILE.read_text())
COMPONENTS: dict[str, Any] = SPEC.get("components", {}).get("schemas", {})
REF_PREFIX = "#/components/schemas/"
FUZZ_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
BATCH = {
    "workload_type": "ai_inference_batch",
    "requirements": {"gpu_count": 2, "gpu_type": "h100_sxm", "estimated_duration_s": 600},
}
"""A valid submission, for the real workloads whose ids are mixed into the path ids."""


# ------------------------------------------------------------------ the spec


def resolve(node: Any, depth: int = 0) -> Any:
    """``node`` with every ``$ref`` to ``#/components/schemas/...`` replaced by its target
    (sibling keywords of a ``$ref`` are kept). The spec has no recursive schemas; a
    reference chain deeper than 32 would be one, and fails."""
    assert depth < 32, "recursive $ref in the spec"
    if isinstance(node, list):
        return [resolve(item, depth) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        reference = node["$ref"]
        assert reference.startswith(REF_PREFIX), reference
        target = resolve(COMPONENTS[reference.removeprefix(REF_PREFIX)], depth + 1)
        siblings = {k: resolve(v, depth) for k, v in node.items() if k != "$ref"}
        return {**target, **siblings}
    return {key: resolve(value, depth) for key, value in node.items()}


@dataclass(frozen=True)
class Parameter:
    """One path or query parameter of an operation."""

    name: str
    location: str
    required: bool
    schema: dict[str, Any]


@dataclass(frozen=True)
class Operation:
    """One operation of the spec, its schemas resolved."""

    method: str
    path: str
    operation_id: str
    parameters: tuple[Parameter, ...]
    body: dict[str, Any] | None
    responses: dict[str, dict[str, Any]] = field(repr=False)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def spec_operations() -> list[Operation]:
    """Every operation of the spec."""
    found = []
    for path, methods in SPEC["paths"].items():
        for method, operation in methods.items():
            body = operation.get("requestBody")
            found.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    operation_id=operation["operationId"],
                    parameters=tuple(
                        Parameter(p["name"], p["in"], bool(p.get("required")), resolve(p["schema"]))
                        for p in operation.get("parameters", [])
                    ),
                    body=resolve(body["content"]["application/json"]["schema"]) if body else None,
                    responses={
                        status: resolve(answer.get("content", {}))
                        for status, answer in operation["responses"].items()
                    },
                )
            )
    return found


OPERATIONS = spec_operations()
SIMPLE_KEYWORDS = {"title", "description", "default", "examples"}
"""Annotations: a schema of only these accepts any JSON value."""
COMPOSED_KEYWORDS = {"anyOf", "properties", "required", "additionalProperties", "items"}
"""Keywords this module handles itself (the rest go to hypothesis-jsonschema)."""
LEAF_KEYWORDS = {"type", "enum", "const", "format", "minimum", "maximum", "exclusiveMinimum"}
LEAF_KEYWORDS |= {"exclusiveMaximum", "minLength", "maxLength", "pattern"}


def _keywords(schema: Any) -> set[str]:
    """Every keyword used anywhere in ``schema`` (property names excluded)."""
    if isinstance(schema, list):
        return set().union(*(_keywords(item) for item in schema))
    if not isinstance(schema, dict):
        return set()
    found = set(schema)
    for key, value in schema.items():
        if key == "properties":
            found |= set().union(*(_keywords(v) for v in value.values()))
        elif key in {"anyOf", "items", "additionalProperties"}:
            found |= _keywords(value)
    return found


# ------------------------------------------------------------------ drawing values

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
WORDS = st.text(alphabet="ghjkmpqrsuvwxz", min_size=1, max_size=8).map("x".__add__)
"""Plain words that no lenient parser reads as a number, a boolean or a date."""


def values_of(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """JSON values that validate against the resolved ``schema``."""
    if "anyOf" in schema:
        return st.one_of([values_of(member) for member in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        if not properties:
            open_ended = schema.get("additionalProperties", True) is not False
            return (
                st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3)
                if open_ended
                else st.just({})
            )
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {name: values_of(properties[name]) for name in sorted(required)},
            optional={name: values_of(s) for name, s in properties.items() if name not in required},
        )
    if kind == "array":
        return st.lists(values_of(schema.get("items", {})), max_size=3)
    if set(schema) <= SIMPLE_KEYWORDS:
        return JSON_VALUES
    return from_schema(schema)


def json_types(schema: dict[str, Any]) -> set[str] | None:
    """The JSON types ``schema`` allows; None if it allows any."""
    if "anyOf" in schema:
        members = [json_types(member) for member in schema["anyOf"]]
        known = [m for m in members if m is not None]
        return set().union(*known) if len(known) == len(members) else None
    if "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        return {_type_of(v) for v in values}
    kind = schema.get("type")
    if kind is None:
        return {"object"} if "properties" in schema else None
    return {kind} if isinstance(kind, str) else set(kind)


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {int: "integer", float: "number", str: "string", list: "array", dict: "object"}[
        type(value)
    ]


def _has_date_time(schema: dict[str, Any]) -> bool:
    members = schema.get("anyOf", [schema])
    return any(m.get("format") == "date-time" for m in members)


def incompatible_values(schema: dict[str, Any]) -> st.SearchStrategy[Any] | None:
    """JSON values of a type ``schema`` excludes, chosen so that no lenient parser turns
    them into a valid value (numbers are not offered where a boolean or a date-time is
    allowed, booleans not where a number is); None if the schema allows every type."""
    allowed = json_types(schema)
    if allowed is None:
        return None
    numeric = {"integer", "number", "boolean"}
    options = []
    if "object" not in allowed:
        options.append(st.dictionaries(st.sampled_from("abc"), JSON_SCALARS, max_size=2))
    if "array" not in allowed:
        options.append(st.lists(JSON_SCALARS, max_size=2))
    if "null" not in allowed:
        options.append(st.none())
    if "string" not in allowed:
        options.append(WORDS)
    if not allowed & numeric:
        options.append(st.booleans())
        if not _has_date_time(schema):
            options.append(st.integers() | st.floats(allow_nan=False, allow_infinity=False))
    return st.one_of(options) if options else None


def rejects_words(schema: dict[str, Any]) -> bool:
    """True if no plain word (:data:`WORDS`) is valid for ``schema``: every member is
    non-string, an enum or a formatted string."""
    for member in schema.get("anyOf", [schema]):
        kind = member.get("type")
        if kind == "string" and "enum" not in member and "format" not in member:
            return False
        if kind is None and "enum" not in member:
            return False
    return True


# ------------------------------------------------------------------ requests


@dataclass
class Service:
    """A service on a fresh database, its keys, and real values for path and query
    parameters (workload ids, customer ids)."""

    client: TestClient
    customer: NewKey
    staff: NewKey
    real_values: dict[str, list[str]]

    def headers(self, caller: str) -> dict[str, str]:
        """The headers of a customer or a staff caller (with a current TOTP code)."""
        if caller == "customer":
            return {"X-API-Key": self.customer.key}
        assert self.staff.totp_secret is not None
        return {
            "X-API-Key": self.staff.key,
            "X-TOTP": totp_code(self.staff.totp_secret, time.time()),
        }


@dataclass
class Call:
    """One request to send."""

    operation: Operation
    caller: str
    path_values: dict[str, Any]
    query: dict[str, Any]
    body: Any = None
    has_body: bool = False

    def send(self, service: Service) -> httpx.Response:
        """Send the request; ids are percent-encoded whole (a ``/`` stays in the id)."""
        path = self.operation.path
        for name, value in self.path_values.items():
            path = path.replace("{" + name + "}", urllib.parse.quote(_as_text(value), safe=""))
        params = {name: _as_text(value) for name, value in self.query.items()}
        extra: dict[str, Any] = {"json": self.body} if self.has_body else {}
        return service.client.request(
            self.operation.method,
            path,
            params=params,
            headers=service.headers(self.caller),
            **extra,
        )


def _as_text(value: Any) -> str:
    """A parameter value as it travels in a URL."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


@st.composite
def conforming_calls(draw: st.DrawFn, operation: Operation, service: Service) -> Call:
    """A request whose parameters and body all validate against the spec."""
    call = Call(operation, draw(st.sampled_from(["customer", "staff"])), {}, {})
    for parameter in operation.parameters:
        strategy = values_of(parameter.schema)
        real = service.real_values.get(parameter.name)
        if real:
            strategy = st.one_of(st.sampled_from(real), strategy)
        if parameter.location == "path":
            call.path_values[parameter.name] = draw(strategy)
        elif parameter.required or draw(st.booleans()):
            value = draw(strategy)
            if value is not None:  # null cannot travel in a query string: left out
                call.query[parameter.name] = value
    if operation.body is not None:
        call.body, call.has_body = draw(values_of(operation.body)), True
    return call


def _body_sites(schema: dict[str, Any], at: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Paths of the object schemas inside a body schema (not through anyOf or arrays)."""
    if schema.get("type") == "object" or "properties" in schema:
        yield at
        for name, child in schema.get("properties", {}).items():
            yield from _body_sites(child, (*at, name))


def _schema_at(schema: dict[str, Any], at: tuple[str, ...]) -> dict[str, Any]:
    for name in at:
        schema = schema["properties"][name]
    return schema


def _object_at(body: Any, at: tuple[str, ...]) -> dict[str, Any] | None:
    for name in at:
        body = body.get(name) if isinstance(body, dict) else None
    return body if isinstance(body, dict) else None


@st.composite
def violating_calls(draw: st.DrawFn, operation: Operation, service: Service) -> Call:
    """A conforming request with one violation of the spec: a required body field
    missing, a body value of an excluded type, an unknown property where none are
    allowed, a body that is not of the body's type, or a query value of the wrong type."""
    call = draw(conforming_calls(operation, service))
    mutations = []
    if operation.body is not None:
        body_schema = operation.body
        for at in _body_sites(body_schema):
            target = _object_at(call.body, at)
            if target is None:
                continue
            schema = _schema_at(body_schema, at)
            for name in schema.get("required", []):
                if name in target:
                    mutations.append(("drop", at, name))
            if schema.get("additionalProperties") is False:
                mutations.append(("extra", at, ""))
            for name, child in schema.get("properties", {}).items():
                if incompatible_values(child) is not None:
                    mutations.append(("retype", at, name))
        if incompatible_values(body_schema) is not None:
            mutations.append(("retype", (), ""))
    for parameter in operation.parameters:
        if parameter.location == "query" and rejects_words(parameter.schema):
            mutations.append(("query", (), parameter.name))
    assert mutations, f"{operation} has nothing to violate"
    kind, at, name = draw(st.sampled_from(mutations))
    if kind == "query":
        call.query[name] = draw(WORDS)
    elif kind == "retype" and not at and not name:
        whole_body = incompatible_values(operation.body or {})
        assert whole_body is not None
        call.body = draw(whole_body)
        call.has_body = call.body is not None  # a null body is sent as no body at all
    else:
        target = _object_at(call.body, at)
        assert target is not None
        schema = _schema_at(operation.body or {}, at)
        if kind == "drop":
            del target[name]
        elif kind == "extra":
            known = set(schema.get("properties", {}))
            target[draw(WORDS.filter(lambda word: word not in known))] = draw(JSON_SCALARS)
        else:
            values = incompatible_values(schema["properties"][name])
            assert values is not None
            target[name] = draw(values)
    return call


def violable(operation: Operation) -> bool:
    """True if the operation has a body or a query parameter that can be violated."""
    return operation.body is not None or any(
        p.location == "query" and rejects_words(p.schema) for p in operation.parameters
    )


# ------------------------------------------------------------------ checking replies

FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _is_rfc3339_date_time(value: object) -> bool:
    """RFC 3339 date-time: ISO 8601 with a time and a UTC offset."""
    if not isinstance(value, str):
        return True
    parsed = datetime.fromisoformat(value)
    return "T" in value.upper() and parsed.tzinfo is not None


def assert_problem_document(reply: httpx.Response, context: object) -> None:
    """An error reply is ``application/problem+json`` with a title, its status and a
    list of ``{field, reason}`` problems."""
    assert reply.headers.get("content-type", "").startswith("application/problem+json"), (
        context,
        reply.headers.get("content-type"),
        reply.text,
    )
    body = reply.json()
    assert isinstance(body, dict) and {"title", "status", "errors"} <= set(body), (context, body)
    assert isinstance(body["title"], str) and body["status"] == reply.status_code, (context, body)
    assert isinstance(body["errors"], list), (context, body)
    for problem in body["errors"]:
        assert isinstance(problem, dict), (context, body)
        assert isinstance(problem.get("field"), str) and isinstance(problem.get("reason"), str)


def assert_success_matches_spec(
    operation: Operation, reply: httpx.Response, context: object
) -> None:
    """A 2xx status is documented for the operation and its body validates against the
    documented schema of its media type."""
    documented = operation.responses.get(str(reply.status_code))
    assert documented is not None, (context, f"undocumented status {reply.status_code}")
    media_type = reply.headers.get("content-type", "").split(";")[0].strip()
    assert media_type in documented, (context, media_type, sorted(documented))
    schema = documented[media_type].get("schema", {})
    if media_type == "application/json":
        errors = sorted(
            Draft202012Validator(schema, format_checker=FORMATS).iter_errors(reply.json()),
            key=str,
        )
        assert not errors, (context, [f"{list(e.absolute_path)}: {e.message}" for e in errors])
    else:
        assert schema.get("type", "string") == "string", (context, schema)


def check_reply(call: Call, reply: httpx.Response, *, must_be_client_error: bool) -> None:
    """No 5xx; errors are problem documents; successes match the spec."""
    context = (str(call.operation), call.caller, call.path_values, call.query, call.body)
    assert reply.status_code < 500, (context, reply.status_code, reply.text)
    if must_be_client_error:
        assert 400 <= reply.status_code < 500, (context, reply.status_code, reply.text)
    if reply.status_code >= 400:
        assert_problem_document(reply, context)
    elif reply.status_code >= 200:
        assert_success_matches_spec(call.operation, reply, context)


# ------------------------------------------------------------------ fixtures and tests


@pytest.fixture(scope="module")
def twin() -> TwinBridge:
    """A sandbox twin after its first tick (stepped by hand: the fleet endpoints answer
    from it; submitted work only queues)."""
    scenario = load_scenario(PROJECT_ROOT / "scenarios" / "baseline.yaml", {"duration_days": 0.05})
    bridge = TwinBridge(scenario, speed=600.0, background_demand=False)
    bridge.step()
    return bridge


@pytest.fixture
def service(db_url: str, twin: TwinBridge) -> Iterator[Service]:
    """A service over a twin with a customer, an admin (staff, with TOTP) and two real
    workloads of the customer, one of them cancelled."""
    customer = create_key(db_url, "customer", "Fuzz Corp")
    staff = create_key(db_url, "admin")
    assert customer.customer_id is not None
    app = create_app(ServiceConfig(db_url=db_url, rate_per_s=1e6, burst=1e6, bridge=twin))
    with TestClient(app, raise_server_exceptions=False) as client:
        headers = {"X-API-Key": customer.key}
        ids = [
            client.post("/v1/workloads/submit", json=BATCH, headers=headers).json()["workload_id"]
            for _ in range(2)
        ]
        client.post(f"/v1/workloads/{ids[1]}/cancel", headers=headers)
        yield Service(
            client, customer, staff, {"workload_id": ids, "customer_id": [customer.customer_id]}
        )


def test_the_generator_knows_every_schema_keyword_the_spec_uses() -> None:
    """Every keyword of the request schemas is one this module or hypothesis-jsonschema
    handles, so a new keyword in the spec fails here instead of drawing wrong values;
    every operation has at least one documented 2xx response."""
    known = SIMPLE_KEYWORDS | COMPOSED_KEYWORDS | LEAF_KEYWORDS
    for operation in OPERATIONS:
        schemas = [p.schema for p in operation.parameters] + [operation.body or {}]
        assert _keywords(schemas) <= known, (str(operation), _keywords(schemas) - known)
        assert any(status.startswith("2") for status in operation.responses), str(operation)


@pytest.mark.parametrize("operation", OPERATIONS, ids=str)
def test_requests_drawn_from_the_spec_get_no_5xx_and_match_it(
    service: Service, operation: Operation
) -> None:
    """Requests whose parameters and body conform to the spec get a 2xx that validates
    against the documented response schema, or a 4xx problem document; never a 5xx."""

    @FUZZ_SETTINGS
    @given(data=st.data())
    def conforming(data: st.DataObject) -> None:
        call = data.draw(conforming_calls(operation, service), label="call")
        check_reply(call, call.send(service), must_be_client_error=False)

    conforming()


@pytest.mark.parametrize("operation", [o for o in OPERATIONS if violable(o)], ids=str)
def test_requests_that_violate_the_spec_get_a_4xx_problem_document(
    service: Service, operation: Operation
) -> None:
    """A request with a required field missing, a value of a type the schema excludes, an
    unknown property, or a query value of the wrong type gets a 4xx problem document."""

    @FUZZ_SETTINGS
    @given(data=st.data())
    def violating(data: st.DataObject) -> None:
        call = data.draw(violating_calls(operation, service), label="call")
        check_reply(call, call.send(service), must_be_client_error=True)

    violating()


# ------------------------------------------------------------------ edge values

EDGE_DATE_TIMES = ("0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59")
"""Valid RFC 3339 date-times whose UTC instant lies outside years 1..9999."""
EDGE_TEXTS = ("nul\x00byte", "\x00")
"""Valid JSON strings that some databases cannot store (PostgreSQL text has no NUL)."""


def edge_values(operation: Operation) -> list[tuple[str, str, str]]:
    """(where, name, value) to try on ``operation``: for every date-time parameter or
    top-level body field its edge date-times, for every free-text one its edge texts."""
    fields = [(p.location, p.name, p.schema) for p in operation.parameters]
    if operation.body is not None:
        fields += [("body", n, s) for n, s in operation.body.get("properties", {}).items()]
    found = []
    for where, name, schema in fields:
        if _has_date_time(schema):
            found += [(where, name, value) for value in EDGE_DATE_TIMES]
        elif not rejects_words(schema):
            found += [(where, name, value) for value in EDGE_TEXTS]
    return found


def edge_call(
    operation: Operation, service: Service, caller: str, where: str, name: str, value: str
) -> Call:
    """A request with real ids and a valid body, and ``value`` put in ``name``."""
    call = Call(operation, caller, {}, {})
    for parameter in operation.parameters:
        if parameter.location == "path":
            call.path_values[parameter.name] = service.real_values[parameter.name][0]
    if operation.body is not None:
        call.body, call.has_body = json.loads(json.dumps(BATCH)), True
    if where == "path":
        call.path_values[name] = value
    elif where == "query":
        call.query[name] = value
    else:
        call.body[name] = value
    return call


@pytest.mark.parametrize("operation", [o for o in OPERATIONS if edge_values(o)], ids=str)
def test_edge_values_of_the_spec_types_get_no_5xx(service: Service, operation: Operation) -> None:
    """Date-times at the ends of the calendar and texts holding a NUL character are valid
    by the spec's types; customer and staff callers get 2xx or a 4xx problem document."""
    crashed = []
    for where, name, value in edge_values(operation):
        for caller in ("customer", "staff"):
            call = edge_call(operation, service, caller, where, name, value)
            reply = call.send(service)
            if reply.status_code >= 500:
                crashed.append(f"{caller} {where} {name}={value!r}: {reply.status_code}")
            else:
                check_reply(call, reply, must_be_client_error=False)
    assert not crashed, f"{operation}: " + "; ".join(crashed)


def test_the_spec_describes_errors_as_the_problem_documents_the_api_sends(service: Service) -> None:
    """Every error response the spec documents has the problem document's fields
    (title, status, errors), so a client generated from the spec reads the errors the API
    really sends; and a real 422 validates against the documented schema."""
    undocumented = {}
    for operation in OPERATIONS:
        for status, content in operation.responses.items():
            if not status.startswith(("4", "5")):
                continue
            schema = content.get("application/problem+json", {}).get("schema", {})
            fields = set(schema.get("properties", {}))
            if not {"title", "status", "errors"} <= fields:
                undocumented[f"{operation} {status}"] = sorted(fields)
    assert undocumented == {}
    submit = next(o for o in OPERATIONS if o.body is not None)
    reply = service.client.post(submit.path, json={}, headers=service.headers("customer"))
    assert reply.status_code == 422
    schema = submit.responses["422"]["application/problem+json"]["schema"]
    assert not list(Draft202012Validator(schema).iter_errors(reply.json()))
