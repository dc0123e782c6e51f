"""Lambda's input constraints, from botocore's service model, checked as AWS checks them.

moto accepts almost anything, and botocore's client-side validator checks only required members,
types and minimums. AWS also enforces each shape's ``pattern``, ``max`` and ``enum``: a request it
would refuse is refused here too, with AWS's ``ValidationException`` and its wording
(``1 validation error detected: Value '...' at 'tags.key' failed to satisfy constraint: ...``).

Patterns are Java regular expressions (``\\p{L}`` and the like), so they are compiled with ``regex``,
which knows Unicode property classes; lengths count characters, as Java's ``String.length`` nearly does.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

import botocore.session
import regex
from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape

from .errors import AwsError

__all__ = ["RESERVED_ENVIRONMENT_KEYS", "check_input", "check_member"]

# AWS reports at most this many violations in one message.
_MAX_REPORTED = 10

# Rules Lambda enforces that its model does not carry (Lambda developer guide: environment variables,
# image URIs, VPC, tags): refused with InvalidParameterValueException.
_ENVIRONMENT_LIMIT = 4096
RESERVED_ENVIRONMENT_KEYS = frozenset(
    {
        "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
    }
)  # fmt: skip
_MAX_TAGS = 50
# An image URI Lambda accepts: repository:tag or repository@sha256:digest, never both, never neither.
_IMAGE_URI = regex.compile(r"(?:[^@\s/]+/)*[^@\s:/]+(?::\w[\w.-]{0,127}|@sha256:[0-9a-f]{64})")


def check_input(service: str, operation: str, document: Any) -> None:
    """Raise ``ValidationException`` (400) when ``document``, the JSON body of ``operation``, breaks a
    constraint of its input shape. Members the model does not know are left to the service."""
    shape = _operation(service, operation).input_shape
    if shape is None:
        return
    problems = list(_violations(shape, document, ""))
    if not problems and isinstance(document, dict):
        _check_rules_beyond_the_model(operation, document)
    _refuse(problems)


def check_member(service: str, operation: str, member: str, value: Any) -> None:
    """Raise ``ValidationException`` (400) when ``value`` of the input member ``member`` (one carried in a
    header or the query, such as ``InvocationType``) breaks a constraint of its shape."""
    shape = _operation(service, operation).input_shape
    if shape is None or member not in shape.members:
        return
    problems = list(_violations(shape.members[member], value, _join("", member)))
    _refuse(problems)


def _refuse(problems: list[str]) -> None:
    if problems:
        count = len(problems)
        listed = "; ".join(problems[:_MAX_REPORTED])
        raise AwsError(
            "ValidationException",
            400,
            f"{count} validation error{'s' if count > 1 else ''} detected: {listed}",
        )


@functools.cache
def _operation(service: str, operation: str) -> OperationModel:
    return botocore.session.get_session().get_service_model(service).operation_model(operation)


@functools.cache
def _pattern(pattern: str) -> Any:  # a regex.Pattern (regex ships no type hints)
    return regex.compile(pattern)


def _check_rules_beyond_the_model(operation: str, document: dict[str, Any]) -> None:
    problems: list[str] = []
    variables = (document.get("Environment") or {}).get("Variables")
    if isinstance(variables, dict):
        reserved = sorted(key for key in variables if key in RESERVED_ENVIRONMENT_KEYS)
        if reserved:
            problems.append(
                "Lambda was unable to configure your environment variables because the environment "
                "variables you have provided contains reserved keys that are currently not supported "
                f"for modification. Reserved keys used in this request: {','.join(reserved)}"
            )
        measured = json.dumps(variables, separators=(",", ":"), ensure_ascii=False)
        if len(measured.encode()) > _ENVIRONMENT_LIMIT:
            problems.append(
                "Lambda was unable to configure your environment variables because the environment "
                "variables you have provided exceeded the 4KB limit. "
                f"String measured: {len(measured.encode())} bytes"
            )
    image_uri = (document.get("Code") or {}).get("ImageUri") if operation == "CreateFunction" else None
    if isinstance(image_uri, str) and not _IMAGE_URI.fullmatch(image_uri):
        problems.append(
            f"Source image {image_uri} is not valid. Provide a tag (repository:tag) or a digest "
            "(repository@sha256:...), not both"
        )
    vpc = document.get("VpcConfig")
    if isinstance(vpc, dict) and bool(vpc.get("SubnetIds")) != bool(vpc.get("SecurityGroupIds")):
        problems.append("VpcConfig needs both SubnetIds and SecurityGroupIds, or neither")
    tags = document.get("Tags")
    if isinstance(tags, dict):
        if len(tags) > _MAX_TAGS:
            problems.append(f"{len(tags)} tags given: a function has at most {_MAX_TAGS}")
        reserved_tags = sorted(key for key in tags if key.lower().startswith("aws:"))
        if reserved_tags:
            problems.append(f"Tag keys starting with aws: are reserved: {', '.join(reserved_tags)}")
    if problems:
        raise AwsError("InvalidParameterValueException", 400, "; ".join(problems))


def _violations(shape: Shape, value: Any, path: str) -> Iterator[str]:
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            return
        for name, member in shape.members.items():
            # Members on the path or in headers are not in the JSON body.
            if name in value and member.serialization.get("location") is None:
                yield from _violations(member, value[name], _join(path, name))
    elif isinstance(shape, ListShape):
        if not isinstance(value, list):
            return
        yield from _size(shape, value, len(value), path)
        for index, item in enumerate(value, start=1):
            yield from _violations(shape.member, item, f"{path}.{index}.member")
    elif isinstance(shape, MapShape):
        if not isinstance(value, dict):
            return
        yield from _size(shape, value, len(value), path)
        for key, item in value.items():
            yield from _violations(shape.key, key, f"{path}.{key}.member.key")
            yield from _violations(shape.value, item, f"{path}.{key}.member.value")
    elif shape.type_name == "string" and isinstance(value, str):
        yield from _size(shape, value, len(value), path)
        sensitive = bool(shape.metadata.get("sensitive"))
        enum = shape.metadata.get("enum")
        if enum and value not in enum:
            constraint = f"Member must satisfy enum value set: [{', '.join(enum)}]"
            yield _violation(value, path, constraint, sensitive=sensitive)
        pattern = shape.metadata.get("pattern")
        if pattern and not _pattern(pattern).fullmatch(value):
            constraint = f"Member must satisfy regular expression pattern: {pattern}"
            yield _violation(value, path, constraint, sensitive=sensitive)
    elif shape.type_name in ("integer", "long") and isinstance(value, int) and not isinstance(value, bool):
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and value < low:
            yield _violation(value, path, f"Member must have value greater than or equal to {low}")
        if high is not None and value > high:
            yield _violation(value, path, f"Member must have value less than or equal to {high}")


def _size(shape: Shape, value: Any, size: int, path: str) -> Iterator[str]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        yield _violation(value, path, f"Member must have length greater than or equal to {low}")
    if high is not None and size > high:
        yield _violation(value, path, f"Member must have length less than or equal to {high}")


def _violation(value: Any, path: str, constraint: str, *, sensitive: bool = False) -> str:
    if sensitive:  # AWS does not echo what the model marks sensitive (environment values)
        return f"Value at '{path}' failed to satisfy constraint: {constraint}"
    shown = value if not isinstance(value, str) or len(value) <= 100 else value[:100] + "..."
    return f"Value '{shown}' at '{path}' failed to satisfy constraint: {constraint}"


def _join(path: str, name: str) -> str:
    member = name[:1].lower() + name[1:]
    return f"{path}.{member}" if path else member
