"""AWS errors as sockerless errors: the one table from AWS error codes to HTTP statuses.

Every message names the service, the operation and its object, then AWS's code and message:
``lambda: create function skls-0123...: TooManyRequestsException: Rate exceeded``.
"""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from sockerless.errors import (
    AccessDenied,
    Conflict,
    InvalidParameter,
    NotFound,
    SockerlessError,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
)

__all__ = [
    "AwsOperation",
    "conflict_state",
    "error_code",
    "is_pending_conflict",
    "map_aws_error",
    "request_id_of",
    "state_reason_status",
]

_BY_CODE: dict[str, type[SockerlessError]] = {
    "ResourceNotFoundException": NotFound,
    "ResourceConflictException": Conflict,
    "ResourceAlreadyExistsException": Conflict,
    "InvalidParameterValueException": InvalidParameter,
    "InvalidParameterException": InvalidParameter,
    "ValidationException": InvalidParameter,
    "RequestTooLargeException": InvalidParameter,
    "InvalidRequestContentException": InvalidParameter,
    "TooManyRequestsException": Unavailable,
    "ThrottlingException": Unavailable,
    "Throttling": Unavailable,
    "LimitExceededException": Unavailable,
    "ServiceException": UpstreamError,
    "ServiceUnavailableException": UpstreamError,
    "AccessDeniedException": AccessDenied,
    "AccessDenied": AccessDenied,
    "UnrecognizedClientException": AccessDenied,
    "InvalidSignatureException": AccessDenied,
    "ExpiredTokenException": AccessDenied,
}

# The HTTP status of a function that cannot run, by its StateReasonCode (botocore's enum): the
# caller's permissions, a missing image, a bad configuration, a lack of capacity, or AWS's own fault.
_BY_STATE_REASON: dict[str, int] = {
    "ImageAccessDenied": 403,
    "KMSKeyAccessDenied": 403,
    "InsufficientRolePermissions": 403,
    "ImageDeleted": 404,
    "InvalidImage": 400,
    "InvalidConfiguration": 400,
    "InvalidSubnet": 400,
    "InvalidSecurityGroup": 400,
    "InvalidRuntime": 400,
    "InvalidZipFileException": 400,
    "KMSKeyNotFound": 400,
    "InvalidStateKMSKey": 400,
    "DisabledKMSKey": 400,
    "DisallowedByVpcEncryptionControl": 400,
    "SubnetOutOfIPAddresses": 503,
    "EniLimitExceeded": 503,
    "ServiceQuotaExceededException": 503,
    "VcpuLimitExceeded": 503,
    "InsufficientCapacity": 503,
    "CapacityProviderScalingLimitExceeded": 503,
    "EC2RequestLimitExceeded": 503,
}


def state_reason_status(code: str) -> int:
    """The status of an error about a function whose state has this reason: 400 for the function's
    own errors (``FunctionError.*``, EFS), 502 for ``InternalError`` and codes not known here."""
    if code in _BY_STATE_REASON:
        return _BY_STATE_REASON[code]
    if code.startswith(("FunctionError", "EFS")):
        return 400
    return 502


# IAM action names that differ from the API operation name.
_IAM_ACTIONS = {"lambda:Invoke": "lambda:InvokeFunction"}
# Lambda's answer to a call on a function that is not Active (Invoke, UpdateFunctionConfiguration...).
_CONFLICT_STATE = re.compile(r"currently in the following state: (\w+)")
# The action AWS says it denied: "User: arn:... is not authorized to perform: iam:PassRole on resource:
# ...", or "... because no identity-based policy allows the lambda:TagResource action". One call
# needs several permissions (CreateFunction also needs iam:PassRole, and lambda:TagResource for tags).
_DENIED_ACTION = re.compile(
    r"(?:not authorized to perform:?|allows the)\s+([a-z0-9-]+:[A-Za-z0-9*]+)", re.IGNORECASE
)


# CreateFunction with an image Lambda may not pull names no action: "Lambda does not have permission
# to access the ECR image. Check the ECR permissions." What it needs (the README's prerequisites):
_ECR_DENIED = "permission to access the ECR image"
_ECR_ACTIONS = (
    "ecr:BatchGetImage and ecr:GetDownloadUrlForLayer on the image's repository, whose policy must "
    "also let Lambda pull it"
)


class AwsOperation:
    """One AWS call as the messages name it: ``lambda: create function skls-...``."""

    def __init__(self, service: str, operation: str, verb: str, target: str = "") -> None:
        self.service = service  # "lambda" | "logs"
        self.operation = operation  # the API name, e.g. "CreateFunction"
        self.verb = verb  # "create function"
        self.target = target  # the function or log group

    @property
    def iam_action(self) -> str:
        action = f"{self.service}:{self.operation}"
        return _IAM_ACTIONS.get(action, action)

    def denied_action(self, message: str) -> str:
        """The IAM action an AccessDenied ``message`` names, else the operation's own."""
        named = _DENIED_ACTION.search(message)
        if named:
            return named.group(1)
        if _ECR_DENIED in message:
            return _ECR_ACTIONS
        return self.iam_action

    def __str__(self) -> str:
        return f"{self.service}: {self.verb}{' ' + self.target if self.target else ''}"


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def request_id_of(value: Any) -> str:
    """The AWS request ID of a response dict or a ClientError ('' when there is none)."""
    response = value.response if isinstance(value, ClientError) else value
    if not isinstance(response, dict):
        return ""
    metadata = response.get("ResponseMetadata") or {}
    return str(metadata.get("RequestId") or "")


def conflict_state(exc: BaseException) -> str | None:
    """The state a ResourceConflictException says the function is in ("... is currently in the
    following state: Inactive"), or None for another conflict."""
    if error_code(exc) != "ResourceConflictException" or not isinstance(exc, ClientError):
        return None
    named = _CONFLICT_STATE.search(str(exc.response.get("Error", {}).get("Message", "")))
    return named.group(1) if named else None


def is_pending_conflict(exc: BaseException) -> bool:
    """A ResourceConflictException that only says the function is not ready yet (retryable)."""
    if error_code(exc) != "ResourceConflictException":
        return False
    message = str(exc.response.get("Error", {}).get("Message", "")) if isinstance(exc, ClientError) else ""
    return any(state in message for state in ("Pending", "InProgress", "Inactive"))


def map_aws_error(exc: BaseException, operation: AwsOperation) -> SockerlessError:
    """The sockerless error for an AWS failure (after botocore's retries)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "")) or "UnknownError"
        text = f"{operation}: {code}: {error.get('Message', '') or exc}"
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        kind = _BY_CODE.get(code)
        if kind is None:
            kind = UpstreamError if status >= 500 or status == 0 else InvalidParameter
        if is_pending_conflict(exc):
            kind = Unavailable  # still not ready after our retries: try again later, not a conflict
        if kind is AccessDenied:
            action = operation.denied_action(str(error.get("Message", "")))
            text += f" (the backend's credentials need {action})"
        if kind is Unavailable:
            return Unavailable(text, retry_after=1)
        return kind(text)
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError):
        return UpstreamTimeout(f"{operation}: timed out talking to AWS: {exc}")
    if isinstance(exc, NoCredentialsError):
        return AccessDenied(
            f"{operation}: no AWS credentials found: set AWS_PROFILE / AWS_ACCESS_KEY_ID or lambda.profile"
        )
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError):
        return UpstreamError(f"{operation}: cannot reach AWS: {exc}")
    return UpstreamError(f"{operation}: {type(exc).__name__}: {exc}")
