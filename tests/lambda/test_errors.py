"""AWS errors become the right HTTP status and a message naming the operation and the function."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from sockerless import errors
from sockerless_lambda.errors import AwsOperation, is_pending_conflict, map_aws_error

API = "/internal/v1"
CREATE = AwsOperation("lambda", "CreateFunction", "create function", "skls-abc")


def client_error(code: str, message: str, status: int, request_id: str = "req-1") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": request_id},
        },
        "CreateFunction",
    )


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ResourceNotFoundException", 404, errors.NotFound),
        ("ResourceConflictException", 409, errors.Conflict),
        ("InvalidParameterValueException", 400, errors.InvalidParameter),
        ("ValidationException", 400, errors.InvalidParameter),
        ("RequestTooLargeException", 413, errors.InvalidParameter),
        ("TooManyRequestsException", 429, errors.Unavailable),
        ("ThrottlingException", 400, errors.Unavailable),
        ("ServiceException", 500, errors.UpstreamError),
        ("SomethingNew", 503, errors.UpstreamError),
        ("AccessDeniedException", 403, errors.AccessDenied),
    ],
)
def test_aws_error_codes_map_to_statuses(code, status, expected) -> None:
    mapped = map_aws_error(client_error(code, "the message", status), CREATE)
    assert type(mapped) is expected
    assert mapped.message.startswith(f"lambda: create function skls-abc: {code}: the message")


def test_a_pending_conflict_is_retryable_not_a_conflict() -> None:
    pending = client_error(
        "ResourceConflictException",
        "The operation cannot be performed at this time. "
        "The function is currently in the following state: Pending",
        409,
    )
    assert is_pending_conflict(pending)
    assert isinstance(map_aws_error(pending, CREATE), errors.Unavailable)
    assert not is_pending_conflict(client_error("ResourceConflictException", "Function already exist", 409))


def test_access_denied_names_the_missing_permission() -> None:
    invoke = AwsOperation("lambda", "Invoke", "invoke function", "skls-abc")
    mapped = map_aws_error(client_error("AccessDeniedException", "not authorized", 403), invoke)
    assert mapped.status == 403
    assert "lambda:InvokeFunction" in mapped.message


@pytest.mark.parametrize(
    ("message", "action"),
    [
        (
            "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: iam:PassRole on "
            "resource: arn:aws:iam::123456789012:role/sockerless-lambda-exec",
            "iam:PassRole",
        ),
        (
            "User: arn:aws:sts::123456789012:assumed-role/ci/s is not authorized to perform: "
            "lambda:TagResource on resource: arn:aws:lambda:us-east-1:123456789012:function:skls-abc "
            "because no identity-based policy allows the lambda:TagResource action",
            "lambda:TagResource",
        ),
        (
            "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: kms:Decrypt on "
            "resource: arn:aws:kms:us-east-1:123456789012:key/1 with an explicit deny",
            "kms:Decrypt",
        ),
        (
            "Lambda does not have permission to access the ECR image. Check the ECR permissions.",
            "ecr:BatchGetImage and ecr:GetDownloadUrlForLayer on the image's repository, whose policy "
            "must also let Lambda pull it",
        ),
        ("not authorized", "lambda:CreateFunction"),  # no action named: the operation's own
    ],
)
def test_access_denied_names_the_action_aws_denied(message, action) -> None:
    mapped = map_aws_error(client_error("AccessDeniedException", message, 403), CREATE)
    assert mapped.status == 403
    assert mapped.message.endswith(f"(the backend's credentials need {action})")


async def test_a_create_denied_iam_pass_role_names_it(api, lambda_simulator) -> None:
    denied = (
        "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: iam:PassRole on "
        "resource: arn:aws:iam::123456789012:role/sockerless-lambda-exec"
    )
    lambda_simulator.add_fault(
        {
            "kind": "error",
            "operation": "lambda:CreateFunction",
            "status": 403,
            "code": "AccessDeniedException",
            "message": denied,
        }
    )
    response = await api.client.post(f"{API}/containers", json={"Image": "repo:tag"})
    assert response.status == 403
    message = (await response.json())["message"]
    assert message.startswith("lambda: create function skls-")
    assert message.endswith(f"AccessDeniedException: {denied} (the backend's credentials need iam:PassRole)")


def test_timeouts_and_unreachable_endpoints() -> None:
    timeout = map_aws_error(ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), CREATE)
    assert timeout.status == 504
    unreachable = map_aws_error(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), CREATE)
    assert unreachable.status == 502


@pytest.mark.parametrize(
    ("fault", "status", "text"),
    [
        (
            {"kind": "error", "status": 404, "code": "ResourceNotFoundException", "message": "gone"},
            404,
            "ResourceNotFoundException: gone",
        ),
        (
            {
                "kind": "error",
                "status": 409,
                "code": "ResourceConflictException",
                "message": "Function already exist",
            },
            409,
            "ResourceConflictException: Function already exist",
        ),
        (
            {
                "kind": "error",
                "status": 400,
                "code": "InvalidParameterValueException",
                "message": "bad image",
            },
            400,
            "InvalidParameterValueException: bad image",
        ),
        (
            {"kind": "error", "status": 403, "code": "AccessDeniedException", "message": "not authorized"},
            403,
            "(the backend's credentials need lambda:CreateFunction)",
        ),
        ({"kind": "error"}, 502, "ServiceException"),
        ({"kind": "throttle"}, 503, "TooManyRequestsException: Rate exceeded"),
    ],
)
async def test_a_failed_create_function_maps_the_error_and_leaves_no_container(
    api, lambda_simulator, fault, status, text
) -> None:
    lambda_simulator.add_fault({"operation": "lambda:CreateFunction", **fault})
    response = await api.client.post(f"{API}/containers", json={"Image": "repo:tag"}, params={"name": "xy"})
    assert response.status == status
    message = (await response.json())["message"]
    assert message.startswith("lambda: create function skls-")
    assert text in message
    listed = await (await api.client.get(f"{API}/containers", params={"all": "1"})).json()
    assert listed == []


async def test_throttling_is_retried_then_surfaced_as_503(api, lambda_simulator) -> None:
    lambda_simulator.add_fault({"kind": "throttle", "operation": "lambda:CreateFunction"})
    response = await api.client.post(f"{API}/containers", json={"Image": "repo:tag"})
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    snapshot = lambda_simulator.stats.snapshot()
    assert snapshot["faults"]["lambda:CreateFunction"] == 2  # max_attempts = 2 in these tests


async def test_a_throttle_that_clears_is_invisible(api, lambda_simulator) -> None:
    lambda_simulator.add_fault({"kind": "throttle", "operation": "lambda:CreateFunction", "count": 1})
    await api.create()


async def test_a_throttled_invoke_is_retried_because_it_did_not_run(api, lambda_simulator) -> None:
    lambda_simulator.add_fault(
        {"kind": "throttle", "operation": "lambda:InvokeWithResponseStream", "count": 1}
    )
    _, result = await api.run("exit 6")
    assert result == {"StatusCode": 6}
    snapshot = lambda_simulator.stats.snapshot()
    assert snapshot["invocations"]["started"] == 1  # it ran exactly once


@pytest.mark.parametrize("config_overrides", [{"capacity_wait": 1}])
async def test_an_invoke_that_stays_throttled_exits_with_an_error(
    api, lambda_simulator, config_overrides
) -> None:
    lambda_simulator.add_fault({"kind": "throttle", "operation": "lambda:InvokeWithResponseStream"})
    container_id, result = await api.run("exit 0")
    assert result["StatusCode"] == 1
    assert "lambda: invoke function skls-" in result["Error"]["Message"]
    assert "TooManyRequestsException" in result["Error"]["Message"]
    assert (await api.inspect(container_id))["State"]["Error"] == result["Error"]["Message"]


async def test_an_invoke_that_fails_in_lambda_is_not_retried(api, lambda_simulator) -> None:
    lambda_simulator.add_fault({"kind": "error", "operation": "lambda:InvokeWithResponseStream", "count": 1})
    _, result = await api.run("exit 0")
    assert result["StatusCode"] == 1
    assert "ServiceException" in result["Error"]["Message"]
    assert lambda_simulator.stats.snapshot()["calls"]["lambda:InvokeWithResponseStream"] == 1


@pytest.mark.parametrize("config_overrides", [{"timeout": 1, "recovery_margin": 1}])
async def test_a_lost_invoke_answer_is_never_resent_and_ends_unknown(
    api, lambda_simulator, config_overrides
) -> None:
    lambda_simulator.add_fault({"kind": "drop", "operation": "lambda:InvokeWithResponseStream", "count": 1})
    _, result = await api.run("exit 0")
    assert result["StatusCode"] == 255
    assert "unknown" in result["Error"]["Message"]
    assert (
        lambda_simulator.stats.snapshot()["calls"]["lambda:InvokeWithResponseStream"] == 1
    )  # may have run: not sent again
