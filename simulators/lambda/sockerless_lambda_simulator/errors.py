"""AWS errors the simulator answers itself, and how each protocol puts them on the wire."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from xml.sax.saxutils import escape

from aiohttp import web

from .operations import WireProtocol

__all__ = [
    "AwsError",
    "FunctionNotFound",
    "FunctionPending",
    "aws_error_response",
]


class AwsError(Exception):
    """An AWS error: its code, HTTP status and message, plus extra body fields (``Reason``)."""

    def __init__(
        self,
        code: str,
        status: int,
        message: str,
        *,
        extra: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.status = status
        self.message = message
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    @property
    def sender_fault(self) -> bool:
        return self.status < 500


class FunctionNotFound(AwsError):
    def __init__(self, arn: str) -> None:
        super().__init__("ResourceNotFoundException", 404, f"Function not found: {arn}")


class FunctionPending(AwsError):
    def __init__(self, state: str) -> None:
        super().__init__(
            "ResourceConflictException",
            409,
            "The operation cannot be performed at this time. "
            f"The function is currently in the following state: {state}",
        )


def aws_error_response(protocol: WireProtocol, error: AwsError) -> web.Response:
    """Render ``error`` the way the service's protocol does, so botocore raises the right class."""
    request_id = str(uuid.uuid4())
    headers = {"x-amzn-RequestId": request_id, **error.headers}
    if protocol is WireProtocol.REST_JSON:
        # Lambda's shape: the code travels in a header, the body carries Type and Message.
        headers["x-amzn-ErrorType"] = error.code
        body: dict[str, str] = {"Type": "User" if error.sender_fault else "Service", "Message": error.message}
        body.update(error.extra)
        return web.Response(
            status=error.status, headers=headers, text=json.dumps(body), content_type="application/json"
        )
    if protocol is WireProtocol.JSON:
        body = {"__type": error.code, "message": error.message, **error.extra}
        return web.Response(
            status=error.status,
            headers=headers,
            text=json.dumps(body),
            content_type="application/x-amz-json-1.1",
        )
    if protocol is WireProtocol.QUERY:
        fault = "Sender" if error.sender_fault else "Receiver"
        xml = (
            f"<ErrorResponse><Error><Type>{fault}</Type><Code>{escape(error.code)}</Code>"
            f"<Message>{escape(error.message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return web.Response(status=error.status, headers=headers, text=xml, content_type="text/xml")
    xml = (
        f"<Error><Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message>"
        f"<RequestId>{request_id}</RequestId></Error>"
    )
    return web.Response(status=error.status, headers=headers, text=xml, content_type="application/xml")
