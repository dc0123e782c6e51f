"""Name the AWS operation behind an HTTP request (``lambda:Invoke``, ``logs:PutLogEvents``, ...)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any
from urllib.parse import unquote

from attrs import frozen

__all__ = ["AwsCall", "AwsScope", "WireProtocol", "identify_operation", "parse_scope"]

# SigV4: "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/lambda/aws4_request, ..."
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")


class WireProtocol(StrEnum):
    """The wire protocol, which decides how an error answer must look."""

    REST_JSON = "rest-json"
    REST_XML = "rest-xml"
    JSON = "json"
    QUERY = "query"


@frozen
class AwsScope:
    """Who is calling and where: parsed from the SigV4 credential scope."""

    access_key: str
    region: str
    service: str


@frozen
class AwsCall:
    """One client request, named: which operation of which service, and the wire protocol its errors
    must use; ``key`` (``lambda:Invoke``) is what stats and fault rules match."""

    service: str
    name: str
    protocol: WireProtocol
    path_params: Mapping[str, str]

    @property
    def key(self) -> str:
        return f"{self.service}:{self.name}"


def parse_scope(headers: Mapping[str, str], query: Mapping[str, str], default_region: str) -> AwsScope:
    """Read the credential scope from the Authorization header or a presigned query."""
    credential = headers.get("Authorization", "")
    if "Credential=" not in credential:
        credential = "Credential=" + query.get("X-Amz-Credential", "")
    match = _CREDENTIAL.search(credential)
    if match is None:
        return AwsScope(access_key="testing", region=default_region, service="unknown")
    return AwsScope(access_key=match[1], region=match[2], service=match[3])


def identify_operation(
    scope: AwsScope,
    method: str,
    raw_path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    form: Mapping[str, str] | None,
) -> AwsCall:
    """Name the operation: ``X-Amz-Target`` (JSON protocol), ``Action=`` (query), else the REST route."""
    target = headers.get("X-Amz-Target")
    if target:
        return AwsCall(scope.service, target.rpartition(".")[2], WireProtocol.JSON, {})
    action = query.get("Action") or (form or {}).get("Action")
    if action:
        return AwsCall(scope.service, action, WireProtocol.QUERY, {})
    routes = _rest_routes(scope.service)
    if routes is not None:
        path = raw_path.split("?", 1)[0]
        if len(path) > 1:
            path = path.rstrip("/")
        for route in routes:
            params = route.match(method, path, query)
            if params is not None:
                return AwsCall(scope.service, route.name, route.protocol, params)
        protocol = routes[0].protocol if routes else WireProtocol.REST_JSON
        return AwsCall(scope.service, "Unknown", protocol, {})
    return AwsCall(scope.service, "Unknown", WireProtocol.REST_JSON, {})


@frozen
class _RestRoute:
    name: str
    method: str
    pattern: re.Pattern[str]
    required_query: Mapping[str, str]
    protocol: WireProtocol

    def match(self, method: str, path: str, query: Mapping[str, str]) -> dict[str, str] | None:
        if method != self.method:
            return None
        if any(query.get(key) != value for key, value in self.required_query.items()):
            return None
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        return {key: unquote(value) for key, value in found.groupdict().items()}


@functools.cache
def _rest_routes(service: str) -> tuple[_RestRoute, ...] | None:
    """Build the route table of a REST service from botocore's model: one source of truth for paths."""
    from botocore.exceptions import DataNotFoundError
    from botocore.loaders import Loader

    try:
        model: dict[str, Any] = Loader().load_service_model(service, "service-2")
    except DataNotFoundError:
        return None
    protocol_name = model["metadata"].get("protocol", "")
    if protocol_name not in (WireProtocol.REST_JSON, WireProtocol.REST_XML):
        return None
    protocol = WireProtocol(protocol_name)
    routes = [_route(name, op["http"], protocol) for name, op in model["operations"].items()]
    # Routes that demand a query literal (``?List=ALL``) must win over their bare twin.
    routes.sort(key=lambda route: not route.required_query)
    return tuple(routes)


def _route(name: str, http: Mapping[str, str], protocol: WireProtocol) -> _RestRoute:
    uri, _, literal_query = http["requestUri"].partition("?")
    required: dict[str, str] = {}
    for pair in filter(None, literal_query.split("&")):
        key, _, value = pair.partition("=")
        required[key] = value
    if len(uri) > 1:
        uri = uri.rstrip("/")
    pattern = ""
    for piece in re.split(r"(\{[^}]+\})", uri):
        if piece.startswith("{"):
            label = piece[1:-1]
            greedy = label.endswith("+")
            pattern += f"(?P<{label.rstrip('+')}>{'.+' if greedy else '[^/]+'})"
        else:
            pattern += re.escape(piece)
    return _RestRoute(name, http["method"], re.compile(pattern), required, protocol)
