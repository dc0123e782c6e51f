"""Naming the operation behind a request, and the function behind an identifier."""

from __future__ import annotations

import pytest

from sockerless_lambda_simulator.functions import FunctionRef, parse_function_ref
from sockerless_lambda_simulator.operations import AwsScope, WireProtocol, identify_operation, parse_scope

LAMBDA = AwsScope("testing", "us-east-1", "lambda")
AUTH = (
    "AWS4-HMAC-SHA256 Credential=AKID/20240101/eu-west-1/logs/aws4_request, SignedHeaders=host, Signature=x"
)


def test_scope_comes_from_the_credential_scope() -> None:
    assert parse_scope({"Authorization": AUTH}, {}, "us-east-1") == AwsScope("AKID", "eu-west-1", "logs")
    assert parse_scope({}, {}, "us-east-1") == AwsScope("testing", "us-east-1", "unknown")


@pytest.mark.parametrize(
    ("method", "path", "query", "name", "params"),
    [
        ("POST", "/2015-03-31/functions/fn/invocations", {}, "Invoke", {"FunctionName": "fn"}),
        ("POST", "/2015-03-31/functions", {}, "CreateFunction", {}),
        ("GET", "/2015-03-31/functions/", {}, "ListFunctions", {}),
        ("GET", "/2015-03-31/functions/fn", {}, "GetFunction", {"FunctionName": "fn"}),
        ("DELETE", "/2015-03-31/functions/fn", {}, "DeleteFunction", {"FunctionName": "fn"}),
        (
            "PUT",
            "/2015-03-31/functions/fn/configuration",
            {},
            "UpdateFunctionConfiguration",
            {"FunctionName": "fn"},
        ),
        (
            "POST",
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Afn/invocations",
            {},
            "Invoke",
            {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:fn"},
        ),
        (
            "GET",
            "/2019-09-30/functions/fn/provisioned-concurrency",
            {"List": "ALL"},
            "ListProvisionedConcurrencyConfigs",
            {"FunctionName": "fn"},
        ),
        (
            "GET",
            "/2019-09-30/functions/fn/provisioned-concurrency",
            {},
            "GetProvisionedConcurrencyConfig",
            {"FunctionName": "fn"},
        ),
    ],
)
def test_lambda_operations_come_from_method_and_path(
    method: str, path: str, query: dict[str, str], name: str, params: dict[str, str]
) -> None:
    operation = identify_operation(LAMBDA, method, path, query, {}, None)

    assert (operation.key, operation.protocol, dict(operation.path_params)) == (
        f"lambda:{name}",
        WireProtocol.REST_JSON,
        params,
    )


def test_json_protocol_operations_come_from_the_target_header() -> None:
    scope = AwsScope("testing", "us-east-1", "logs")
    operation = identify_operation(
        scope, "POST", "/", {}, {"X-Amz-Target": "Logs_20140328.FilterLogEvents"}, None
    )

    assert (operation.key, operation.protocol) == ("logs:FilterLogEvents", WireProtocol.JSON)


def test_query_protocol_operations_come_from_the_action() -> None:
    scope = AwsScope("testing", "us-east-1", "iam")
    operation = identify_operation(
        scope, "POST", "/", {}, {}, {"Action": "CreateRole", "Version": "2010-05-08"}
    )

    assert (operation.key, operation.protocol) == ("iam:CreateRole", WireProtocol.QUERY)


def test_unknown_routes_are_named_unknown() -> None:
    assert identify_operation(LAMBDA, "GET", "/nowhere", {}, {}, None).key == "lambda:Unknown"


@pytest.mark.parametrize(
    ("identifier", "qualifier", "expected"),
    [
        ("fn", None, FunctionRef("fn")),
        ("fn:prod", None, FunctionRef("fn", "prod")),
        ("fn", "$LATEST", FunctionRef("fn", "$LATEST")),
        ("arn:aws:lambda:us-east-1:123456789012:function:fn", None, FunctionRef("fn")),
        ("arn:aws:lambda:us-east-1:123456789012:function:fn:7", None, FunctionRef("fn", "7")),
        ("123456789012:function:fn", None, FunctionRef("fn")),
        ("123456789012:function:fn:prod", None, FunctionRef("fn", "prod")),
    ],
)
def test_function_identifiers(identifier: str, qualifier: str | None, expected: FunctionRef) -> None:
    assert parse_function_ref(identifier, qualifier) == expected
