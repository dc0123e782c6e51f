"""Property-based fuzzing of the internal API, served by the real Lambda backend on the local simulator.

Hypothesis draws one request per example from classes of bad (and some good) input: create bodies
made from the OpenAPI schemas and then broken, path IDs, query strings made from each route's
documented parameters, Lambda's limits, oversized bodies, unknown routes. Every answer must hold:

* no 5xx and no hang (each request runs under a timeout);
* every non-2xx (except 304) is ``{"message": "<non-empty>"}`` with ``Content-Type: application/json``
  exactly; every status is one the OpenAPI document lists for the route; 2xx JSON bodies match the
  documented schema; the status is the one the input calls for (400, 404, 409, 413, 501, ...);
* a rejected create changes nothing: no container, no function, not even a CreateFunction call;
  an accepted one creates exactly one function whose CreateFunction parameters fit Lambda's limits
  (botocore's model), and removing it restores the state.

Inputs that once hit bugs are in the strategies and pinned by the regression tests at the end.
Only a request line over aiohttp's 64 KiB limit is still kept out (aiohttp answers it in text/plain
before any middleware runs; ``FUZZ_KNOWN_BUGS=1`` puts it back). The terminal summary shows a
census of what ran, by input class and status; ``-m slow`` runs the long variant.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import string
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, unquote

import attrs
import botocore.session
import pytest
import pytest_asyncio
import yarl
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sockerless.api.openapi import build_openapi
from sockerless.booleans import parse_bool
from sockerless.streams import decode_frames
from sockerless.wire import parse_time
from tests.reliability.conftest import CENSUS_KEY, MAX_BODY_BYTES, SchemaChecker

API = "/internal/v1"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/jobs:latest"
REQUEST_TIMEOUT = 15.0
DEFAULT_EXAMPLES = 500
SLOW_EXAMPLES = 3000
#: ``FUZZ_KNOWN_BUGS=1`` lets request lines over aiohttp's limit into the strategies.
KNOWN_BUGS = os.environ.get("FUZZ_KNOWN_BUGS") == "1"
#: aiohttp answers a request line longer than this itself, in text/plain (``max_line_size`` in server.py).
_REQUEST_LINE_LIMIT = 65536
#: A label the guarded prune filters demand: no container has it, so a prune never removes the seeds.
NEVER_LABEL = "fuzz-never=1"
_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
_RESERVED_ENV = ("AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "_HANDLER")


# ---------------------------------------------------------------------------- cases


@attrs.frozen
class Case:
    """One request and what it should get.

    ``path`` is already percent-encoded; ``{seed}`` in it is replaced at run time by a form of a
    seeded container (``seed``: ``created`` or ``exited`` and ``form``). ``operation`` is
    ``"METHOD /template"`` in the OpenAPI document, empty when the path routes nowhere.
    ``expect`` empty means any documented 2xx/3xx/4xx.
    """

    kind: str
    method: str
    path: str
    operation: str = ""
    query: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    expect: frozenset[int] = frozenset()
    seed: str = ""
    form: str = "id"
    raw_id: str = ""  # a garbage path ID as the server decodes it (skipped if it names a container)
    create: bool = False


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _encode_query(query: tuple[tuple[str, str], ...]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)


_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
_SHORT = st.text(string.ascii_letters + string.digits, min_size=1, max_size=12)


def _int_ok(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _time_class(text: str) -> str:
    """``valid`` or ``invalid`` (a 400)."""
    if text in ("", "0"):
        return "valid"
    try:
        parse_time(text)
    except Exception:
        return "invalid"
    return "valid"


_TIMES_VALID = st.one_of(
    st.datetimes(dt.datetime(1970, 1, 2), dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)).map(
        lambda value: value.isoformat().replace("+00:00", "Z")
    ),
    st.floats(0, 4e9, allow_nan=False).map(lambda value: f"{value:.3f}"),
    st.integers(0, 4_000_000_000).map(str),
)
_TIMES_INVALID = st.one_of(
    _TEXT,
    st.sampled_from(["yesterday", "2024-13-01", "12:00", "1e12", "-1e15", "nan", "0x10", "--1"]),
    st.sampled_from(["1e400", "inf", "-inf", "1e300", "99999999999999999999"]),  # once overflowed to a 500
).filter(lambda text: _time_class(text) == "invalid")


# ---------------------------------------------------------------------------- query strings from the document


@attrs.frozen
class Query:
    pairs: tuple[tuple[str, str], ...]
    invalid: bool  # some parameter the handler checks is bad: a 400
    values: dict[str, str] = attrs.field(factory=dict)


def _parameter_values(parameter: dict[str, Any]) -> tuple[st.SearchStrategy[str], st.SearchStrategy[str]]:
    """(valid, invalid) values of a documented query parameter; invalid is nothing for free text."""
    name, schema = parameter["name"], parameter.get("schema", {})
    if "content" in parameter:
        keys = sorted(parameter["content"]["application/json"]["schema"]["properties"])
        return _filters_valid(keys), _filters_invalid(keys)
    if name in ("since", "until"):
        return _TIMES_VALID, _TIMES_INVALID
    if "enum" in schema:
        # An empty value is the default, as Docker has it (condition= is not-running).
        return st.sampled_from(schema["enum"]), _TEXT.filter(lambda text: text not in (*schema["enum"], ""))
    if schema.get("type") == "integer":
        return (
            st.one_of(st.integers(-(10**6), 10**6), st.integers(-(10**30), 10**30)).map(str),
            _TEXT.filter(lambda text: text != "" and not _int_ok(text)),
        )
    if "anyOf" in schema:  # tail: "all" or a number
        return (
            st.one_of(st.just("all"), st.integers(-(10**12), 10**12).map(str)),
            _TEXT.filter(lambda text: text not in ("all", "") and not _int_ok(text)),
        )
    return _TEXT, st.nothing()


def _filters_valid(keys: list[str]) -> st.SearchStrategy[str]:
    def values(key: str) -> st.SearchStrategy[list[str]]:
        if key == "status":
            return st.lists(st.sampled_from(_STATUSES), max_size=3)
        if key == "until":
            return st.lists(_TIMES_VALID, max_size=2)
        if key == "label":
            return st.lists(st.sampled_from(["fuzz", "fuzz=seed", "a=b", "k"]), max_size=3)
        if key == "exited":
            return st.lists(st.integers(-300, 300).map(str), max_size=3)
        if key in ("before", "since"):
            return st.just([])  # they name a container: an unknown one is a 404, not bad input
        if key == "dangling":
            return st.lists(st.sampled_from(["true", "false", "1", "0"]), max_size=1)
        return st.lists(_TEXT, max_size=3)

    @st.composite
    def build(draw: st.DrawFn) -> str:
        chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys)))
        data: dict[str, Any] = {}
        for key in chosen:
            items = draw(values(key))
            data[key] = {item: True for item in items} if draw(st.booleans()) else items
        return json.dumps(data)

    return build()


def _filters_invalid(keys: list[str]) -> st.SearchStrategy[str]:
    key = st.sampled_from(keys)
    return st.one_of(
        _TEXT.filter(lambda text: text != "" and not _is_json_object(text)),
        st.sampled_from(["[]", '"label"', "1", "null", "true", "{", '{"label": ["a"]']).filter(
            lambda text: text
        ),
        st.tuples(_TEXT, _TEXT)
        .filter(lambda pair: pair[0] not in keys)
        .map(lambda pair: json.dumps({pair[0]: [pair[1]]})),
        st.tuples(key, st.sampled_from([1, "text", None, [1], [None], 2.5, True])).map(
            lambda pair: json.dumps({pair[0]: pair[1]})
        ),
        *(
            [st.just(json.dumps({"status": ["sleeping"]})), st.just(json.dumps({"status": {"zombie": True}}))]
            if "status" in keys
            else []
        ),
        *([_TIMES_INVALID.map(lambda text: json.dumps({"until": [text]}))] if "until" in keys else []),
        *(
            [_TEXT.filter(lambda t: not _int_ok(t)).map(lambda t: json.dumps({"exited": [t]}))]
            if "exited" in keys
            else []
        ),
    )


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


@st.composite
def _query(draw: st.DrawFn, operation: dict[str, Any], *, guard_prune: bool = False) -> Query:
    pairs: list[tuple[str, str]] = []
    values: dict[str, str] = {}
    invalid = False
    for parameter in operation.get("parameters", []):
        if parameter["in"] != "query":
            continue
        valid_values, invalid_values = _parameter_values(parameter)
        choice = draw(st.sampled_from(["absent", "valid", "valid", "invalid"]))
        if choice == "invalid" and invalid_values.is_empty:
            choice = "valid"
        if choice == "absent":
            invalid = invalid or parameter["required"]  # a 400 before anything is looked up
            continue
        value = draw(valid_values if choice == "valid" else invalid_values)
        if choice == "valid" and guard_prune and parameter["name"] == "filters":
            data = json.loads(value)
            data["label"] = [*(data.get("label") or []), NEVER_LABEL]
            value = json.dumps(data)
        invalid = invalid or choice == "invalid"
        pairs.append((parameter["name"], value))
        values[parameter["name"]] = value
    return Query(tuple(pairs), invalid, values)


# ---------------------------------------------------------------------------- create bodies


def _from_schema(document: dict[str, Any], schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """JSON values that match one schema of the document (the subset it uses)."""
    if "$ref" in schema:
        target = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return _from_schema(document, target, depth)
    if "anyOf" in schema:
        return st.one_of(*(_from_schema(document, sub, depth) for sub in schema["anyOf"]))
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kinds = schema.get("type")
    if kinds is None:
        return _garbage(2)
    options = []
    for kind in [kinds] if isinstance(kinds, str) else kinds:
        if kind == "object":
            properties = schema.get("properties", {})
            if properties and depth < 3:
                options.append(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            key: _from_schema(document, sub, depth + 1) for key, sub in properties.items()
                        },
                    )
                )
            else:
                extra = schema.get("additionalProperties", {})
                values = _from_schema(document, extra, depth + 1) if extra else _garbage(1)
                options.append(st.dictionaries(_TEXT, values, max_size=3))
        elif kind == "array":
            options.append(st.lists(_from_schema(document, schema.get("items", {}), depth + 1), max_size=3))
        else:
            options.append(_SCALAR_KINDS[kind])
    return st.one_of(*options)


_SCALAR_KINDS: dict[str, st.SearchStrategy[Any]] = {
    "string": _TEXT,
    "integer": st.integers(-(2**40), 2**40),
    "number": st.floats(allow_nan=False, allow_infinity=False),
    "boolean": st.booleans(),
    "null": st.none(),
}
_WRONG_VALUE: dict[str, Any] = {
    "string": "text",
    "integer": 7,
    "number": 1.5,
    "boolean": True,
    "null": None,
    "object": {"k": "v"},
    "array": ["x"],
}


def _kinds(document: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    """The JSON types a schema accepts; every type when it accepts anything."""
    if "$ref" in schema:
        target = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return _kinds(document, target)
    if "anyOf" in schema:
        return set().union(*(_kinds(document, sub) for sub in schema["anyOf"]))
    kinds = schema.get("type")
    if kinds is None:
        return set(_WRONG_VALUE)
    accepted = {kinds} if isinstance(kinds, str) else set(kinds)
    if "number" in accepted:
        accepted.add("integer")
    return accepted


def _garbage(depth: int) -> st.SearchStrategy[Any]:
    """Any JSON value, nested up to ``depth`` levels (deep nesting is a known bug, pinned below)."""
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), _TEXT
    )
    if depth <= 0:
        return scalars
    inner = _garbage(depth - 1)
    return st.one_of(scalars, st.lists(inner, max_size=3), st.dictionaries(_TEXT, inner, max_size=3))


_ENV_KEY = st.from_regex(r"[A-Z][A-Z0-9_]{1,10}", fullmatch=True).filter(
    lambda key: key not in _RESERVED_ENV and not key.startswith(("AWS_", "LAMBDA_"))
)
_VALID_NAME = st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{1,40}", fullmatch=True)


@st.composite
def _valid_body(draw: st.DrawFn) -> dict[str, Any]:
    """A create body Lambda accepts: the image, maybe a command, env, labels, workdir, memory."""
    body: dict[str, Any] = {"Image": IMAGE}
    if draw(st.booleans()):
        body["Cmd"] = draw(st.one_of(_TEXT, st.lists(_TEXT, max_size=4)))
    if draw(st.booleans()):
        body["Entrypoint"] = draw(st.one_of(st.none(), st.lists(_TEXT, max_size=2)))
    if draw(st.booleans()):
        env = draw(st.dictionaries(_ENV_KEY, st.text(string.printable, max_size=30), max_size=8))
        body["Env"] = [f"{key}={value}" for key, value in env.items()] + draw(
            st.lists(st.sampled_from(["NOVALUE", "EMPTY="]), max_size=2)
        )
    if draw(st.booleans()):
        body["Labels"] = draw(st.dictionaries(_SHORT, st.text(string.ascii_letters, max_size=10), max_size=5))
    if draw(st.booleans()):
        body["WorkingDir"] = "/" + draw(st.text(string.ascii_lowercase + "/", max_size=30))
    if draw(st.booleans()):
        body["Tty"] = draw(st.booleans())
    if draw(st.booleans()):
        host: dict[str, Any] = {"Memory": draw(st.sampled_from([0, 128 * 2**20, 512 * 2**20, 10240 * 2**20]))}
        if draw(st.booleans()):
            host["AutoRemove"] = draw(st.booleans())
        body["HostConfig"] = host
    return body


def _create(kind: str, body: bytes | None, expect: set[int], *, name: str | None = None) -> Case:
    return Case(
        kind=kind,
        method="POST",
        path=API + "/containers",
        operation=f"POST {API}/containers",
        query=(("name", name),) if name is not None else (),
        body=body,
        expect=frozenset(expect),
        create=True,
    )


_LAMBDA_PROBLEMS = ("reserved env", "bad env name", "env over 4 KB", "huge Env list", "memory", "workdir",
                    "no image", "bad image", "huge image")  # fmt: skip
_FUNCTION_CONFIG_PROBLEMS = frozenset(
    {"reserved env", "bad env name", "env over 4 KB", "huge Env list", "workdir"}
)
_LABEL_PROBLEMS = ("aws: prefix", "long key", "long value", "over 50", "odd characters")


def create_cases(document: dict[str, Any]) -> list[st.SearchStrategy[Case]]:
    schemas = document["components"]["schemas"]
    config_props = schemas["ContainerConfig"]["properties"]
    host_props = schemas["HostConfig"]["properties"]

    @st.composite
    def valid(draw: st.DrawFn) -> Case:
        body = draw(_valid_body())
        if draw(st.booleans()):  # unknown fields are ignored, as Docker does
            body.update(draw(st.dictionaries(_SHORT.map("XFuzz".__add__), _garbage(2), max_size=3)))
        name = draw(st.one_of(st.none(), _VALID_NAME, _VALID_NAME.map("/".__add__)))
        return _create("create: valid", _json(body), {201}, name=name)

    @st.composite
    def from_schema(draw: st.DrawFn) -> Case:
        body = draw(_from_schema(document, schemas["ContainerConfig"]))
        if draw(st.integers(0, 9)):
            body["Image"] = IMAGE
        if draw(st.booleans()):
            body["HostConfig"] = draw(_from_schema(document, schemas["HostConfig"]))
        # Valid shapes; Lambda's rules (env names, memory, mounts, workdir, image) may still refuse.
        return _create("create: from the schema", _json(body), {201, 400, 501})

    @st.composite
    def wrong_type(draw: st.DrawFn) -> Case:
        in_host = draw(st.booleans())
        properties = host_props if in_host else config_props
        key = draw(
            st.sampled_from(
                sorted(k for k, s in properties.items() if _kinds(document, s) != set(_WRONG_VALUE))
            )
        )
        accepted = _kinds(document, properties[key])
        wrong = draw(st.sampled_from(sorted(set(_WRONG_VALUE) - accepted)))
        body: dict[str, Any] = {"Image": IMAGE}
        if in_host:
            body["HostConfig"] = {key: _WRONG_VALUE[wrong]}
        else:
            body[key] = _WRONG_VALUE[wrong]
        return _create("create: wrong JSON type", _json(body), {400})

    @st.composite
    def lambda_refuses(draw: st.DrawFn, problem: str) -> Case:
        body = draw(_valid_body())
        body.pop("HostConfig", None)
        expect = {400}
        if problem == "reserved env":
            body["Env"] = [*body.get("Env", []), f"{draw(st.sampled_from(_RESERVED_ENV))}=x"]
        elif problem == "bad env name":
            bad = draw(
                st.one_of(st.sampled_from(["1ABC", "A", "A-B", "A B", "É_X"]), _TEXT.filter(_bad_env_name))
            )
            body["Env"] = [f"{bad}=value"]
        elif problem == "env over 4 KB":
            count = draw(st.integers(1, 4))
            body["Env"] = [f"VAR{i}={'x' * (4097 // count + 1)}" for i in range(count)]
        elif problem == "huge Env list":
            count = draw(st.integers(1000, 20000))  # the largest are over MAX_BODY_BYTES: 413
            body["Env"] = [f"V{i}=x" for i in range(count)]
            expect = {413} if len(_json(body)) > MAX_BODY_BYTES else {400}
        elif problem == "memory":
            megabytes = draw(st.one_of(st.integers(1, 127), st.integers(10241, 10**9)))
            body["HostConfig"] = {"Memory": megabytes * 2**20}
        elif problem == "workdir":
            body["WorkingDir"] = draw(st.one_of(st.just("relative/dir"), st.just("/" + "d" * 1000)))
        elif problem == "no image":
            body["Image"] = ""
        elif problem == "bad image":
            body["Image"] = draw(
                st.sampled_from(
                    ["library/UPPER", "a" * 64, "x@sha256:12", "-bad", "a b", "::", "alpine:", "a//b"]
                )
            )
        else:
            body["Image"] = IMAGE + "x" * draw(st.integers(300, 60_000))
        if problem in _FUNCTION_CONFIG_PROBLEMS:
            # Rules of the function's Environment and ImageConfig: they bind a container whose command is
            # the function's, not one run through the bootstrap (its command travels in the payload).
            body["Labels"] = {**body.get("Labels", {}), "sockerless.lambda.bootstrap": "false"}
        return _create(f"create: Lambda refuses ({problem})", _json(body), expect)

    @st.composite
    def mounts(draw: st.DrawFn) -> Case:
        key, value = draw(
            st.sampled_from(
                [("Binds", ["/host:/ctr"]), ("Mounts", [{"Type": "bind"}]), ("VolumesFrom", ["other"])]
            )
        )
        return _create(
            "create: volumes (unsupported)", _json({"Image": IMAGE, "HostConfig": {key: value}}), {501}
        )

    @st.composite
    def labels(draw: st.DrawFn, problem: str) -> Case:
        if problem == "aws: prefix":
            found = {draw(st.sampled_from(["aws:x", "AWS:cost", "aws:"])): "v"}
        elif problem == "long key":
            found = {"k" * draw(st.integers(129, 2000)): "v"}
        elif problem == "long value":
            found = {"k": "v" * draw(st.integers(257, 5000))}
        elif problem == "over 50":
            found = {f"l{i}": str(i) for i in range(draw(st.integers(47, 400)))}
        else:
            found = {draw(_TEXT.filter(lambda text: bool(text))): draw(_TEXT)}
        return _create(
            f"create: labels Lambda refuses as tags ({problem})",
            _json({"Image": IMAGE, "Labels": found}),
            {201},
        )

    @st.composite
    def bad_name(draw: st.DrawFn) -> Case:
        name = draw(
            st.one_of(
                st.sampled_from(
                    ["with space", "a/b", "../x", "-lead", ".lead", "_lead", "x", "é", "a\nb", "a\x00b"]
                ),
                st.just("n" * 257),
                _TEXT.filter(
                    lambda text: text != "" and not re.fullmatch(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+", text)
                ),
            )
        )
        return _create("create: invalid name", _json({"Image": IMAGE}), {400}, name=name)

    @st.composite
    def not_an_object(draw: st.DrawFn) -> Case:
        body = draw(
            st.one_of(
                st.one_of(st.lists(_garbage(1)), _TEXT, st.integers(), st.booleans(), st.none()).map(_json),
                st.sampled_from(
                    [b"", b"{", b'{"Image": }', b"\xff\xfe{}", b"{'Image': 'x'}", b"[1,]", b"\x00"]
                ),
                st.binary(max_size=50).filter(lambda data: not _is_json_object_bytes(data)),
            )
        )
        return _create("create: not a JSON object", body, {400})

    @st.composite
    def nested_garbage(draw: st.DrawFn) -> Case:
        body = {
            "Image": IMAGE,
            **draw(st.dictionaries(st.sampled_from(sorted(config_props)), _garbage(4), max_size=4)),
        }
        if draw(st.booleans()):
            body["HostConfig"] = draw(
                st.one_of(
                    _garbage(3), st.dictionaries(st.sampled_from(sorted(host_props)), _garbage(3), max_size=3)
                )
            )
        return _create("create: nested garbage in known fields", _json(body), {201, 400, 501})

    @st.composite
    def huge(draw: st.DrawFn) -> Case:
        size = draw(st.integers(10_000, 3 * MAX_BODY_BYTES))
        field = draw(st.sampled_from(["Hostname", "User", "Domainname", "StopSignal", "XUnknown"]))
        body = _json({"Image": IMAGE, field: "h" * size})
        return _create("create: huge string", body, {413} if len(body) > MAX_BODY_BYTES else {201})

    @st.composite
    def once_bugs(draw: st.DrawFn) -> Case:
        """The creates the regression tests below pin, as the fuzzer found them."""
        case = draw(st.sampled_from(sorted(KNOWN_BUG_CREATES)))
        body, name, expect = KNOWN_BUG_CREATES[case]
        return _create(f"create: former bug ({case})", body, expect, name=name)

    return [
        *[once_bugs()] * 3,
        valid(), from_schema(), wrong_type(), mounts(), bad_name(), not_an_object(), nested_garbage(), huge(),
        *(lambda_refuses(problem) for problem in _LAMBDA_PROBLEMS),
        *(labels(problem) for problem in _LABEL_PROBLEMS),
    ]  # fmt: skip


#: Creates that once hit bugs: (body, name, the status they get). See the regression tests.
KNOWN_BUG_CREATES: dict[str, tuple[bytes, str | None, set[int]]] = {
    "deep nesting": (
        b'{"Image": "' + IMAGE.encode() + b'", "Healthcheck": ' + b"[" * 100_000 + b"}",
        None,
        {400},
    ),
    "integer of 5000 digits": (
        b'{"Image": "' + IMAGE.encode() + b'", "Memory": ' + b"1" * 5000 + b"}",
        None,
        {400},
    ),
    "NaN literal": (b'{"Image": "' + IMAGE.encode() + b'", "Healthcheck": {"Interval": NaN}}', None, {400}),
    "Infinity literal": (
        b'{"Image": "' + IMAGE.encode() + b'", "Labels": {}, "Healthcheck": -Infinity}',
        None,
        {400},
    ),
    "name of 256 characters": (_json({"Image": IMAGE}), "n" * 256, {201}),
    # Without the bootstrap the command is the function's ImageConfig, at most 1500 items (through the
    # bootstrap it travels in the invocation payload, where only the payload's 6 MB limit applies).
    "Cmd of 1501 items": (
        _json({"Image": IMAGE, "Cmd": ["x"] * 1501, "Labels": {"sockerless.lambda.bootstrap": "false"}}),
        None,
        {400},
    ),
}


def _bad_env_name(text: str) -> bool:
    return bool(text) and "=" not in text and not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9_]+", text)


def _is_json_object_bytes(data: bytes) -> bool:
    try:
        return isinstance(json.loads(data), dict)
    except ValueError:
        return False


# ---------------------------------------------------------------------------- path IDs


#: Garbage path IDs as sent (already percent-encoded where it matters).
_TRAVERSALS = [
    "..",
    ".",
    "%2e%2e",
    "%2e%2e%2f",
    "..%2f..%2finfo",
    "%2E%2E%2F%2E%2E%2Fcapabilities",
    "%2F",
    "%252e%252e%252f",
    "%00",
    "%0a%0d",
    "%ff%fe",
    "..;",
    "%5C..%5C",
    "~",
    "*",
    "%2A",
    "%3F",
    "%23",
    "%25",
]


@st.composite
def _garbage_id(draw: st.DrawFn) -> tuple[str, str]:
    """(as sent, as the server decodes it)."""
    sent = draw(
        st.one_of(
            st.sampled_from(_TRAVERSALS),
            st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=200).map(
                lambda text: quote(text, safe="")
            ),
            st.integers(1000, 70_000 if KNOWN_BUGS else 10_000).map(lambda size: "f" * size),
            st.text("0123456789abcdef", min_size=3, max_size=64).map(lambda text: text + "g"),
        )
    )
    return sent, unquote(sent)


def _id_operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if "{id}" in path and "/networks/" not in path
    ]


#: Routes on a container that the seeded containers may take without being changed or started.
_SAFE_ON_SEEDS = {"GET /containers/{id}", "GET /containers/{id}/logs", "POST /containers/{id}/wait",
                  "POST /containers/{id}/stop", "POST /containers/{id}/kill", "POST /containers/{id}/attach",
                  "POST /containers/{id}/exec"}  # fmt: skip
_GATED = {"POST /containers/{id}/attach", "POST /containers/{id}/exec", "POST /exec/{id}/start"}


def _short(path: str) -> str:
    return path.removeprefix(API)


def _following(query: Query) -> bool:
    return parse_bool(query.values.get("follow", "")) is True


def _expect_for(method: str, path: str, query: Query, found: int) -> set[int]:
    """The status for a route on a container: 501 at the capability gate, 400 for a bad query
    (checked before the lookup), else ``found`` (what the container itself calls for)."""
    route = f"{method} {_short(path)}"
    if route in _GATED:
        return {501}
    if query.invalid:
        return {400}
    if route == "GET /containers/{id}/logs":
        if not any(parse_bool(query.values.get(stream, "")) for stream in ("stdout", "stderr")):
            return {400}  # "you must choose at least one stream"
        if _following(query) and query.values.get("condition") == "removed":
            return {400}  # a follow ends at not-running or next-exit
    if route == "POST /containers/{id}/rename" and not query.values.get("name"):
        return {400}  # Docker checks the new name before it looks the container up
    return {found}


def id_cases(document: dict[str, Any]) -> list[st.SearchStrategy[Case]]:
    operations = _id_operations(document)

    @st.composite
    def garbage(draw: st.DrawFn) -> Case:
        method, path, operation = draw(st.sampled_from(operations))
        sent, decoded = draw(_garbage_id())
        query = draw(_query(operation))
        if set(decoded) & set("/{}") or decoded in (".", ".."):
            # aiohttp's {id} is [^{}/]+: such an ID may route elsewhere or nowhere (a JSON 404 or 405).
            expect: set[int] = set()
        else:
            expect = _expect_for(method, path, query, 404)
        return Case(
            kind="path ID: garbage" if len(sent) < 1000 else "path ID: very long",
            method=method,
            path=path.replace("{id}", sent),
            operation=f"{method} {path}",
            query=query.pairs,
            expect=frozenset(expect),
            raw_id=decoded,
        )

    seeded_operations = [op for op in operations if f"{op[0]} {_short(op[1])}" in _SAFE_ON_SEEDS]

    @st.composite
    def seeded(draw: st.DrawFn) -> Case:
        method, path, operation = draw(st.sampled_from(seeded_operations))
        seed = draw(st.sampled_from(["created", "exited"]))
        form = draw(st.sampled_from(["id", "prefix", "name", "/name"]))
        query = draw(_query(operation))
        route = f"{method} {_short(path)}"
        if route == "POST /containers/{id}/wait" and not query.invalid:
            # Only "not-running" on the exited container answers at once; every other wait lasts.
            seed, query = "exited", Query((("condition", "not-running"),), False)
        following = route == "GET /containers/{id}/logs" and _following(query)
        if following and query.values.get("condition") == "next-exit":
            # The backend follows: "next-exit" lasts until a next run, which never comes; "not-running"
            # (or none) ends once the output is complete, at once for a seed (neither ever runs now).
            values = {**query.values, "condition": "not-running"}
            query = attrs.evolve(query, pairs=tuple(values.items()), values=values)
        found = {
            "GET /containers/{id}": 200,
            "GET /containers/{id}/logs": 200,
            "POST /containers/{id}/wait": 200,
            "POST /containers/{id}/stop": 304,
            "POST /containers/{id}/kill": 409,  # seeds are never running
        }.get(route, 501)
        return Case(
            kind=f"path ID: a real container ({route.split('/')[-1]})",
            method=method,
            path=path.replace("{id}", "{seed}"),
            operation=f"{method} {path}",
            query=query.pairs,
            expect=frozenset(_expect_for(method, path, query, found)),
            seed=seed,
            form=form,
        )

    return [garbage()] * 4 + [seeded()] * 3


# ---------------------------------------------------------------------------- the other routes


def other_cases(document: dict[str, Any]) -> list[st.SearchStrategy[Case]]:
    paths = document["paths"]

    def case(
        kind: str, method: str, path: str, query: Query, expect: set[int], body: bytes | None = None
    ) -> Case:
        return Case(kind, method, path, f"{method} {path}", query.pairs, body, frozenset(expect))

    @st.composite
    def listing(draw: st.DrawFn) -> Case:
        query = draw(_query(paths[API + "/containers"]["get"]))
        return case(
            "query: container list", "GET", API + "/containers", query, {400} if query.invalid else {200}
        )

    @st.composite
    def prune(draw: st.DrawFn) -> Case:
        query = draw(_query(paths[API + "/containers/prune"]["post"], guard_prune=True))
        if not query.invalid and "filters" not in query.values:
            query = Query((("filters", json.dumps({"label": [NEVER_LABEL]})),), False)
        return case(
            "query: container prune",
            "POST",
            API + "/containers/prune",
            query,
            {400} if query.invalid else {200},
        )

    @st.composite
    def system(draw: st.DrawFn) -> Case:
        path = draw(st.sampled_from([API + "/capabilities", API + "/info", API + "/version"]))
        junk = draw(st.lists(st.tuples(_SHORT, _TEXT), max_size=3))
        return case("system routes, ignored query", "GET", path, Query(tuple(junk), False), {200})

    @st.composite
    def image_inspect(draw: st.DrawFn) -> Case:
        name = draw(st.one_of(st.none(), st.just(""), st.just(IMAGE), _TEXT))
        query = Query((("name", name),) if name is not None else (), False)
        # Any name may be one this run recorded (pulls and creates record their references): a 200 must
        # then be an image of the list (see Fuzzer.run).
        expect = {400} if not name else {200} if name == IMAGE else {200, 400, 404}
        return case("query: image inspect", "GET", API + "/images/inspect", query, expect)

    @st.composite
    def image_tag(draw: st.DrawFn) -> Case:
        name = draw(st.one_of(st.none(), st.just(""), st.just(IMAGE), _TEXT))
        repo = draw(st.one_of(st.none(), st.just(""), st.just("fuzz/tagged"), _TEXT))
        tag = draw(st.one_of(st.none(), st.just("v1"), _TEXT))
        pairs = tuple((k, v) for k, v in (("name", name), ("repo", repo), ("tag", tag)) if v is not None)
        if not name or not repo:
            expect = {400}
        elif name == IMAGE and repo == "fuzz/tagged" and tag in (None, "", "v1"):
            expect = {201}
        else:
            expect = {201, 400, 404}
        return case("query: image tag", "POST", API + "/images/tag", Query(pairs, False), expect)

    @st.composite
    def pull(draw: st.DrawFn) -> Case:
        choice = draw(st.sampled_from(["valid", "reference", "wrong type", "not an object", "too large"]))
        if choice == "valid":
            body, expect = (
                {
                    "Reference": draw(
                        st.sampled_from(["alpine", "alpine:3.20", IMAGE, "localhost:5000/x/y:t"])
                    )
                },
                {200},
            )
        elif choice == "reference":
            body, expect = {"Reference": draw(_TEXT)}, {200, 400}
        elif choice == "wrong type":
            body, expect = (
                {"Reference": draw(st.sampled_from([1, None, [], {}, True])), "Auth": draw(_garbage(1))},
                {400},
            )
        elif choice == "not an object":
            body, expect = draw(st.one_of(st.lists(_TEXT), _TEXT, st.none())), {400}
        else:
            body, expect = {"Reference": "alpine", "Auth": "a" * (MAX_BODY_BYTES + 10)}, {413}
        if choice == "reference" and body["Reference"] == "":
            expect = {400}
        return case(
            f"body: image pull ({choice})",
            "POST",
            API + "/images/pull",
            Query((), False),
            expect,
            _json(body),
        )

    @st.composite
    def auth(draw: st.DrawFn) -> Case:
        body = draw(
            st.one_of(
                st.fixed_dictionaries(
                    {}, optional={"username": _TEXT, "password": _TEXT, "serveraddress": _TEXT}
                ),
                st.dictionaries(
                    st.sampled_from(["username", "password", "serveraddress"]),
                    st.one_of(st.integers(), st.lists(_TEXT, max_size=1)),
                    min_size=1,
                ),
                _garbage(1).filter(lambda value: not isinstance(value, dict)),
            )
        )
        valid = isinstance(body, dict) and all(isinstance(v, str) for v in body.values())
        # A login has nothing to check (credentials come with each pull): 200 for any well-formed body.
        return case(
            "body: registry auth",
            "POST",
            API + "/auth",
            Query((), False),
            {200} if valid else {400},
            _json(body),
        )

    unsupported = [
        (method.upper(), path)
        for path, item in paths.items()
        for method in item
        if path.startswith((API + "/networks", API + "/volumes", API + "/images/load"))
    ]

    @st.composite
    def not_supported(draw: st.DrawFn) -> Case:
        method, path = draw(st.sampled_from(unsupported))
        concrete = path.replace("{id}", quote(draw(_SHORT))).replace("{name}", quote(draw(_SHORT)))
        concrete = concrete.replace("{verb}", draw(st.sampled_from(["connect", "disconnect"])))
        body = _json(draw(_garbage(2))) if method == "POST" else None
        # One network or volume is not found rather than unsupported: `docker inspect NAME` walks every
        # kind of object and goes on only past a 404.
        one = method == "GET" and path.endswith(("/{id}", "/{name}"))
        return Case("unsupported by Lambda (networks, volumes, load)", method, concrete, f"{method} {path}",
                    body=body, expect=frozenset({404} if one else {501}))  # fmt: skip

    @st.composite
    def unrouted(draw: st.DrawFn) -> Case:
        method = draw(st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH"]))
        tail = draw(st.lists(_SHORT, min_size=1, max_size=4).map("/".join))
        prefix = draw(st.sampled_from([API + "/", "/", "/internal/v2/", API + "/containers/x/"]))
        return Case("unknown route or method", method, prefix + tail, expect=frozenset({404, 405}))

    return [
        listing(), listing(), prune(), system(), image_inspect(), image_tag(), pull(), pull(), auth(),
        not_supported(), unrouted(), unrouted(),
    ]  # fmt: skip


def all_cases(document: dict[str, Any]) -> st.SearchStrategy[Case]:
    """Every input class, drawn with fixed weights (a plain one_of favours its first branches)."""
    classes = [*create_cases(document), *id_cases(document), *other_cases(document)]
    return st.sampled_from(classes).flatmap(lambda strategy: strategy)


# ---------------------------------------------------------------------------- what Lambda accepts

_LAMBDA_MODEL = botocore.session.get_session().get_service_model("lambda")
MAX_TAGS = 50
ENV_LIMIT_BYTES = 4096


def lambda_refusals(params: dict[str, Any]) -> list[str]:
    """Why Lambda would refuse these CreateFunction parameters: botocore's model (lengths, counts,
    ranges, patterns) plus the documented limits it does not carry (50 tags, 4 KB of environment)."""
    shape = _LAMBDA_MODEL.operation_model("CreateFunction").input_shape
    found = _shape_problems(shape, params, "CreateFunction")
    tags = params.get("Tags", {})
    if len(tags) > MAX_TAGS:
        found.append(f"{len(tags)} tags > {MAX_TAGS}")
    if any(key.lower().startswith("aws:") for key in tags):
        found.append("a tag key starts with aws:")
    variables = params.get("Environment", {}).get("Variables", {})
    size = sum(len(k.encode()) + len(v.encode()) for k, v in variables.items())
    if size > ENV_LIMIT_BYTES:
        found.append(f"environment of {size} bytes > {ENV_LIMIT_BYTES}")
    return found


def _shape_problems(shape: Any, value: Any, where: str) -> list[str]:
    meta, kind = shape.metadata, shape.type_name
    found: list[str] = []
    if kind == "structure":
        for key, item in value.items():
            if key in shape.members:
                found += _shape_problems(shape.members[key], item, f"{where}.{key}")
        return found
    if kind in ("list", "map", "string"):
        size = len(value)
        if size < meta.get("min", 0) or size > meta.get("max", size):
            found.append(f"{where}: length {size} outside {meta.get('min', 0)}..{meta.get('max')}")
    if kind in ("integer", "long") and not meta.get("min", value) <= value <= meta.get("max", value):
        found.append(f"{where}: {value} outside {meta.get('min')}..{meta.get('max')}")
    if kind == "string" and "pattern" in meta:
        pattern = meta["pattern"].replace(r"\p{L}\p{Z}\p{N}", r"\w\s")
        try:
            compiled = re.compile(pattern)
        except re.error:
            compiled = None
        if compiled is not None and not compiled.fullmatch(value):
            found.append(f"{where}: {value[:60]!r} does not match {meta['pattern']}")
    if kind == "list":
        for index, item in enumerate(value):
            found += _shape_problems(shape.member, item, f"{where}[{index}]")
    if kind == "map":
        for key, item in value.items():
            found += _shape_problems(shape.key, key, f"{where} key")
            found += _shape_problems(shape.value, item, f"{where}[{key[:40]!r}]")
    return found


# ---------------------------------------------------------------------------- running a case


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(data: bytes) -> Any:
    """Standard JSON only: Go clients refuse NaN and Infinity."""
    return json.loads(data, parse_constant=_reject_constant)


@attrs.frozen
class Response:
    status: int
    content_type: str | None
    body: bytes


class Fuzzer:
    """Runs cases against the served app and checks every property; keeps the census."""

    def __init__(self, api: Any, document: dict[str, Any], checker: Any, census: Counter[str]) -> None:
        self.api = api
        self.document = document
        self.checker = checker
        self.census = census
        self.seeds: dict[str, tuple[str, str]] = {}  # "created"/"exited" -> (id, name)
        self.known: set[str] = set()  # IDs and names of every container this run has made
        self.create_calls: list[dict[str, Any]] = []
        events = api.backend.clients.control.meta.events
        events.register("provide-client-params.lambda.CreateFunction", self._record_create)

    def _record_create(self, params: dict[str, Any], **_: Any) -> None:
        self.create_calls.append(dict(params))

    # -- requests

    async def send(
        self, method: str, path: str, query: tuple[tuple[str, str], ...] = (), body: bytes | None = None
    ) -> Response:
        root = str(self.api.client.make_url("/")).rstrip("/")
        url = yarl.URL(root + path + ("?" + _encode_query(query) if query else ""), encoded=True)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                async with self.api.client.session.request(method, url, data=body, headers=headers) as answer:
                    return Response(answer.status, answer.headers.get("Content-Type"), await answer.read())
        except TimeoutError:
            raise AssertionError(f"{method} {path[:200]} did not answer within {REQUEST_TIMEOUT} s") from None

    async def call(self, method: str, path: str, **query: str) -> Any:
        response = await self.send(method, API + path, tuple(query.items()))
        assert response.status < 300, (method, path, response)
        return strict_json(response.body) if response.body else None

    # -- seeds and state

    async def seed(self) -> None:
        """Two containers the ID cases may use: one created, one that ran and exited 3."""
        for seed, extra in (
            ("created", {}),
            ("exited", {"Cmd": ["sh", "-c", "echo out; echo err >&2; exit 3"]}),
        ):
            name = f"fuzz-{seed}"
            body = _json({"Image": IMAGE, "Labels": {"fuzz": "seed"}, **extra})
            response = await self.send("POST", API + "/containers", (("name", name),), body)
            assert response.status == 201, response
            container_id = strict_json(response.body)["Id"]
            self.seeds[seed] = (container_id, name)
            self.known.update({container_id, name})
        exited = self.seeds["exited"][0]
        waiting = asyncio.ensure_future(
            self.call("POST", f"/containers/{exited}/wait", condition="next-exit")
        )
        await self.call("POST", f"/containers/{exited}/start")
        assert (await asyncio.wait_for(waiting, 60))["StatusCode"] == 3

    async def snapshot(self) -> tuple[frozenset[str], frozenset[str], int]:
        containers = await self.call("GET", "/containers", all="1")
        info = await self.call("GET", "/info")
        functions = await self.api.function_names()
        return frozenset(row["Id"] for row in containers), frozenset(functions), info["Images"]

    async def check_seeds(self) -> None:
        for container_id, _ in self.seeds.values():
            await self.call("GET", f"/containers/{container_id}")

    # -- one case

    def _resolve(self, case: Case) -> tuple[str, set[int]]:
        path, expect = case.path, set(case.expect)
        if case.seed:
            container_id, name = self.seeds[case.seed]
            ref = {"id": container_id, "prefix": container_id[:12], "name": name, "/name": "/" + name}[
                case.form
            ]
            path = path.replace("{seed}", quote(ref, safe=""))
        # A garbage ID that happens to name a container (an ID prefix) could start or remove it: skip.
        if case.raw_id and self._names_a_container(case.raw_id):
            assume(False)
        if (
            case.create
            and case.query
            and case.query[0][1].removeprefix("/") in self.known
            and expect == {201}
        ):
            expect = {409}
        return path, expect

    def _names_a_container(self, ref: str) -> bool:
        ref = ref.removeprefix("/")
        return ref in self.known or (len(ref) >= 3 and any(known.startswith(ref) for known in self.known))

    async def run(self, case: Case, *, long_lines: bool = KNOWN_BUGS) -> None:
        path, expect = self._resolve(case)
        line = len(f"{case.method} {path}?{_encode_query(case.query)} HTTP/1.1")
        if line > _REQUEST_LINE_LIMIT - 100:
            if not long_lines:
                assume(False)  # aiohttp's own text/plain answer: a known limit, see docs/reliability.md
            expect = {400, 414}
        before = await self.snapshot() if case.create else None
        calls = len(self.create_calls)
        response = await self.send(case.method, path, case.query, case.body)
        self.census[case.kind] += 1
        self.census[f"status {response.status}"] += 1
        where = (
            f"{case.kind}: {case.method} {path[:120]} {_encode_query(case.query)[:200]} -> {response.status}"
        )
        try:
            self.check_answer(case, response, expect, where)
        except AssertionError:
            if case.create and response.status == 201:  # leave no container behind for the next example
                await self.send(
                    "DELETE", f"{API}/containers/{strict_json(response.body)['Id']}", (("force", "1"),)
                )
            raise
        if case.create:
            assert before is not None
            await self.check_create(response, before, calls, where)
        if case.path == API + "/images/inspect" and response.status == 200:
            images = await self.call("GET", "/images")
            assert strict_json(response.body)["Id"] in {row["Id"] for row in images}, f"{where}: not recorded"
        if case.create or "prune" in case.path:
            await self.check_seeds()

    def check_answer(self, case: Case, response: Response, expect: set[int], where: str) -> None:
        status = response.status
        assert status < 500 or status == 501, f"{where}: server error {response.body[:300]!r}"
        if status >= 400:
            assert response.content_type == "application/json", (
                f"{where}: Content-Type {response.content_type}"
            )
            error = strict_json(response.body)
            assert isinstance(error, dict) and set(error) == {"message"}, f"{where}: {error!r}"
            assert isinstance(error["message"], str) and error["message"].strip(), f"{where}: {error!r}"
        if expect:
            assert status in expect, f"{where}: expected {sorted(expect)}: {response.body[:300]!r}"
        if not case.operation:
            return
        method, template = case.operation.split(" ", 1)
        operation = self.document["paths"][template][method.lower()]
        assert str(status) in operation["responses"], f"{where}: status not in the OpenAPI document"
        documented = operation["responses"][str(status)]
        content = documented.get("content", {})
        if 200 <= status < 300 and "application/json" in content:
            assert response.content_type == "application/json", (
                f"{where}: Content-Type {response.content_type}"
            )
            schema = content["application/json"]["schema"]
            lines = response.body.splitlines() if template.endswith("/pull") else [response.body]
            for line in lines:
                problems = self.checker.problems(strict_json(line), schema)
                assert problems == [], f"{where}: the body does not match the document: {problems[:5]}"
        elif 200 <= status < 300 and content:
            assert response.content_type in content, f"{where}: Content-Type {response.content_type}"
            if response.content_type == "application/vnd.docker.multiplexed-stream":
                frames, rest = decode_frames(response.body)
                assert rest == b"" and all(stream in (1, 2) for stream, _ in frames), where
        elif 200 <= status < 400:
            assert response.body == b"", f"{where}: a body where the document says none"

    async def check_create(
        self, response: Response, before: tuple[frozenset[str], frozenset[str], int], calls: int, where: str
    ) -> None:
        containers, functions, _ = before
        if response.status != 201:
            assert len(self.create_calls) == calls, f"{where}: refused, but CreateFunction was called"
            assert await self.snapshot() == before, f"{where}: a refused create changed the state"
            return
        container_id = strict_json(response.body)["Id"]
        self.known.add(container_id)
        try:
            assert re.fullmatch(r"[0-9a-f]{64}", container_id), where
            after_containers, after_functions, _ = await self.snapshot()
            assert after_containers == containers | {container_id}, where
            new_functions = after_functions - functions
            # One function per image configuration: made by this create (one CreateFunction) unless a
            # container of the same configuration (a seed's) has it already.
            made = len(self.create_calls) - calls
            assert made in (0, 1) and len(new_functions) == made, f"{where}: {new_functions}"
            record = self.api.backend.store.get_container(container_id)
            assert record is not None and record.backend_state.function_name in after_functions, where
            if made:
                params = self.create_calls[-1]
                assert params["FunctionName"] in new_functions, where
                refusals = lambda_refusals(params)
                assert refusals == [], f"{where}: Lambda would refuse: {refusals[:5]}"
        finally:  # even when a check failed: the next example starts from the same state
            removed = await self.send("DELETE", f"{API}/containers/{container_id}", (("force", "1"),))
            # The remove answers first and DeleteFunction follows in the background (paced, so it
            # may wait its turn): the state is restored once it is done.
            await self.api.backend.cleanups_settled()
        assert removed.status == 204, f"{where}: remove answered {removed}"
        after = await self.snapshot()
        assert after[:2] == (containers, functions), f"{where}: remove did not restore the state"


# ---------------------------------------------------------------------------- the tests


@pytest.fixture
def census(request: pytest.FixtureRequest) -> Any:
    """What ran, by input class and by status; printed in the terminal summary."""
    counts: Counter[str] = Counter()
    yield counts
    cases = sum(n for kind, n in counts.items() if not kind.startswith("status "))
    lines = [f"{request.node.name}: {cases} cases"]
    lines += [f"  {n:5d}  {kind}" for kind, n in sorted(counts.items()) if not kind.startswith("status ")]
    statuses = sorted((int(kind[7:]), n) for kind, n in counts.items() if kind.startswith("status "))
    lines.append("  statuses: " + ", ".join(f"{status}: {n}" for status, n in statuses))
    request.config.stash.setdefault(CENSUS_KEY, []).extend(lines)


@pytest_asyncio.fixture
async def fuzzer(
    lambda_api: Any, openapi_document: Any, schema_checker: Any, census: Counter[str]
) -> AsyncIterator[Fuzzer]:
    started = Fuzzer(lambda_api, openapi_document, schema_checker, census)
    await started.seed()
    baseline = await started.snapshot()
    yield started
    containers, functions, _ = await started.snapshot()
    assert (containers, functions) == baseline[:2], "the fuzz run leaked containers or functions"


DOCUMENT = build_openapi()
_SETTINGS: dict[str, Any] = {
    "derandomize": True,
    "deadline": None,
    "database": None,
    "print_blob": False,
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,  # one backend and simulator for every example, on purpose
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
}


@settings(max_examples=DEFAULT_EXAMPLES, **_SETTINGS)
@given(case=all_cases(DOCUMENT))
async def test_internal_api_answers_bad_input_with_the_right_4xx(fuzzer: Fuzzer, case: Case) -> None:
    await fuzzer.run(case)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@settings(max_examples=SLOW_EXAMPLES, **_SETTINGS)
@given(case=all_cases(DOCUMENT))
async def test_internal_api_answers_bad_input_with_the_right_4xx_long(fuzzer: Fuzzer, case: Case) -> None:
    await fuzzer.run(case)


# ---------------------------------------------------------------------------- regressions the fuzzer found


async def _expect(lambda_api: Any, case: Case) -> None:
    """Run one case with every check of the fuzzer (state included for creates)."""
    await Fuzzer(lambda_api, DOCUMENT, SchemaChecker(DOCUMENT), Counter()).run(case, long_lines=True)


async def _expect_known_create(lambda_api: Any, known: str) -> None:
    """Run the create case ``known`` of :data:`KNOWN_BUG_CREATES` as :func:`_expect` does."""
    body, name, expect = KNOWN_BUG_CREATES[known]
    await _expect(lambda_api, _create(known, body, expect, name=name))


async def test_deeply_nested_json_body_is_a_400(lambda_api: Any) -> None:
    await _expect_known_create(lambda_api, "deep nesting")


async def test_integer_literal_over_4300_digits_is_a_400(lambda_api: Any) -> None:
    await _expect_known_create(lambda_api, "integer of 5000 digits")


@pytest.mark.parametrize("case", ["NaN literal", "Infinity literal"])
async def test_nan_and_infinity_literals_are_a_400(lambda_api: Any, case: str) -> None:
    await _expect_known_create(lambda_api, case)


@pytest.mark.parametrize("value", ["1e400", "inf", "99999999999999999999"])
async def test_log_times_beyond_the_platform_range_are_a_400(lambda_api: Any, value: str) -> None:
    query = (("stdout", "1"), ("since", value))
    path = f"{API}/containers/{{id}}/logs"
    await _expect(
        lambda_api,
        Case("since", "GET", path.replace("{id}", "nope"), f"GET {path}", query, expect=frozenset({400})),
    )


async def test_prune_until_beyond_the_platform_range_is_a_400(lambda_api: Any) -> None:
    query = (("filters", json.dumps({"until": ["1e400"]})),)
    path = f"{API}/containers/prune"
    await _expect(lambda_api, Case("until", "POST", path, f"POST {path}", query, expect=frozenset({400})))


async def test_a_request_line_of_9000_bytes_is_answered_in_json(lambda_api: Any) -> None:
    path = f"{API}/containers/" + "f" * 9000
    await _expect(lambda_api, Case("long line", "GET", path, expect=frozenset({404})))


async def test_container_name_longer_than_234_makes_a_description_lambda_refuses(lambda_api: Any) -> None:
    await _expect_known_create(lambda_api, "name of 256 characters")


async def test_cmd_over_1500_items_is_refused_before_lambda(lambda_api: Any) -> None:
    await _expect_known_create(lambda_api, "Cmd of 1501 items")


async def test_following_until_removed_is_a_400_before_the_container_is_looked_up(fuzzer: Fuzzer) -> None:
    """The log store refused it only once it had the container: a 404 for an unknown ID, and a backend
    without that check followed instead. Now the query itself is refused, for every backend."""
    path = f"{API}/containers/{{id}}/logs"
    query = (("stdout", "1"), ("follow", "1"), ("condition", "removed"))
    for seed, target in (("", "nope"), ("created", "{seed}"), ("exited", "{seed}")):
        case = Case("follow until removed", "GET", path.replace("{id}", target), f"GET {path}", query,
                    expect=frozenset({400}), seed=seed)  # fmt: skip
        await fuzzer.run(case)


@pytest.mark.parametrize("condition", ["", "not-running"])
async def test_a_followed_log_of_a_container_that_is_not_running_ends_with_its_output(
    fuzzer: Fuzzer, condition: str
) -> None:
    """The backend serves follow: the seeds never run again, so the stream ends at once (the
    seeded cases turn ``next-exit``, which would wait for a next run, into this)."""
    path = f"{API}/containers/{{id}}/logs"
    for seed in ("created", "exited"):
        query = (("stdout", "1"), ("stderr", "1"), ("follow", "1"), ("condition", condition))
        case = Case("follow", "GET", path.replace("{id}", "{seed}"), f"GET {path}", query,
                    expect=frozenset({200}), seed=seed)  # fmt: skip
        await fuzzer.run(case)
    exited = fuzzer.seeds["exited"][0]
    response = await fuzzer.send("GET", f"{API}/containers/{exited}/logs", query)
    frames, rest = decode_frames(response.body)
    # Lambda's output is one stream (CloudWatch has no stderr), and both lines were written at once.
    assert (sorted(data for _, data in frames), rest) == ([b"err\n", b"out\n"], b"")
