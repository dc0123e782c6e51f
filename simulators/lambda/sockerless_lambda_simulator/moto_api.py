"""The simulator's own calls to moto, in the raw wire protocols (cheaper than a botocore client)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from .operations import AwsScope

__all__ = ["MotoApi", "MotoError", "MotoGate"]

_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)
_DEFAULT_EVENT_RETRIES = 2  # Lambda's default MaximumRetryAttempts for asynchronous invocations
_DEFAULT_EVENT_AGE = 6 * 3600  # and its default MaximumEventAgeInSeconds: 6 hours
_XML_CODE = re.compile(r"<Code>([^<]*)</Code>")
_XML_ARN = re.compile(r"<Arn>([^<]*)</Arn>")


class MotoGate:
    """One call at a time per service inside moto.

    moto's backends are plain dicts and lists with no locks; its threaded server lets concurrent
    calls race (a ListFunctions iterating while a CreateFunction inserts). Every path into moto
    (the proxy, our own calls, the in-process log writes) takes the service's lock. moto computes
    its whole answer before it sends the status line, so the proxy releases the lock as soon as
    the headers are in; only moto's work is serialized, not the transfer.
    """

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, service: str) -> asyncio.Lock:
        lock = self._locks.get(service)
        if lock is None:
            lock = self._locks[service] = asyncio.Lock()
        return lock


class MotoError(Exception):
    """moto answered with an AWS error (or something unexpected)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"moto answered {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def _authorization(scope: AwsScope, service: str) -> str:
    # moto picks the backend (service, region, account) from the credential scope; it checks no signature.
    return (
        f"AWS4-HMAC-SHA256 Credential={scope.access_key}/20240101/{scope.region}/{service}/aws4_request, "
        f"SignedHeaders=host, Signature={'0' * 64}"
    )


class MotoApi:
    """Lambda, CloudWatch Logs, IAM and moto's own API, straight to moto (never through the proxy)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, gate: MotoGate) -> None:
        self._session = session
        self._gate = gate
        self.base_url = base_url.rstrip("/")

    async def set_config(self, config: Mapping[str, Any]) -> None:
        status, text = await self._call("moto-api", "POST", "/moto-api/config", json_body=config)
        if status >= 300:
            raise MotoError(status, "ConfigFailed", text)

    async def reset(self) -> None:
        status, text = await self._call("moto-api", "POST", "/moto-api/reset")
        if status >= 300:
            raise MotoError(status, "ResetFailed", text)

    async def warm_up(self, scope: AwsScope) -> None:
        """One call per service we serve, before any client: moto builds its request routers lazily,
        and a first burst of concurrent calls races on that (``'OperationModel' object has no
        attribute 'http_trait'``, HTTP 500)."""
        await self._call("lambda", "GET", "/2015-03-31/functions", scope=scope)
        await self.logs(scope, "DescribeLogGroups", {"limit": 1})

    async def ensure_role(self, scope: AwsScope, role_name: str) -> str:
        """Create the execution role if missing (moto's CreateFunction demands it); return its ARN."""
        try:
            body = await self._iam(
                scope, {"Action": "CreateRole", "RoleName": role_name, "AssumeRolePolicyDocument": _TRUST}
            )
        except MotoError as exc:
            if exc.code != "EntityAlreadyExists":
                raise
            body = await self._iam(scope, {"Action": "GetRole", "RoleName": role_name})
        match = _XML_ARN.search(body)
        if match is None:
            raise MotoError(200, "UnexpectedResponse", f"no role ARN in IAM answer: {body[:200]}")
        return match[1]

    async def get_function(self, scope: AwsScope, name: str, qualifier: str | None) -> dict[str, Any] | None:
        """GetFunction's document, or ``None`` when moto has no such function."""
        path = f"/2015-03-31/functions/{quote(name, safe='')}"
        if qualifier:
            path += f"?Qualifier={quote(qualifier, safe='')}"
        status, text = await self._call("lambda", "GET", path, scope=scope)
        if status == 404:
            return None
        if status >= 300:
            raise MotoError(status, "LambdaError", text[:500])
        document: dict[str, Any] = json.loads(text)
        return document

    async def event_invoke_config(self, scope: AwsScope, name: str) -> tuple[int, int]:
        """How Lambda treats the function's Event invocations: (MaximumRetryAttempts,
        MaximumEventAgeInSeconds), the function's settings, else Lambda's defaults (2 and 6 hours)."""
        path = f"/2019-09-25/functions/{quote(name, safe='')}/event-invoke-config"
        status, text = await self._call("lambda", "GET", path, scope=scope)
        document: object = {}
        if status < 300:
            try:
                document = json.loads(text or "{}")
            except ValueError:
                document = {}
        if not isinstance(document, dict):
            document = {}
        retries = document.get("MaximumRetryAttempts")
        age = document.get("MaximumEventAgeInSeconds")
        return (
            retries if isinstance(retries, int) else _DEFAULT_EVENT_RETRIES,
            age if isinstance(age, int) else _DEFAULT_EVENT_AGE,
        )

    async def logs(self, scope: AwsScope, action: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """One CloudWatch Logs call (JSON protocol)."""
        headers = {"X-Amz-Target": f"Logs_20140328.{action}", "Content-Type": "application/x-amz-json-1.1"}
        status, text = await self._call(
            "logs", "POST", "/", scope=scope, headers=headers, data=json.dumps(body)
        )
        if status >= 300:
            try:
                error = json.loads(text)
                code, message = str(error.get("__type", "")), str(error.get("message", text))
            except ValueError:
                code, message = "", text
            raise MotoError(status, code.rpartition("#")[2] or "LogsError", message[:500])
        result: dict[str, Any] = json.loads(text) if text else {}
        return result

    async def _iam(self, scope: AwsScope, params: Mapping[str, str]) -> str:
        form = {**params, "Version": "2010-05-08"}
        iam_scope = AwsScope(scope.access_key, "us-east-1", "iam")  # IAM is global, signed for us-east-1
        status, text = await self._call("iam", "POST", "/", scope=iam_scope, data=form)
        if status >= 300:
            match = _XML_CODE.search(text)
            raise MotoError(status, match[1] if match else "IamError", text[:500])
        return text

    async def _call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        scope: AwsScope | None = None,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
        json_body: Any = None,
    ) -> tuple[int, str]:
        all_headers = dict(headers or {})
        if scope is not None:
            all_headers["Authorization"] = _authorization(scope, service)
        async with (
            self._gate.lock(service),
            self._session.request(
                method,
                URL(self.base_url + path, encoded=True),
                headers=all_headers,
                data=data,
                json=json_body,
            ) as response,
        ):
            return response.status, await response.text()
