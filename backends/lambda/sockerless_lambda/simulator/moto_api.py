"""The simulator's own calls to moto, in the raw wire protocols (cheaper than a botocore client)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from .operations import AwsScope

__all__ = ["MotoApi", "MotoError"]

_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)
_XML_CODE = re.compile(r"<Code>([^<]*)</Code>")
_XML_ARN = re.compile(r"<Arn>([^<]*)</Arn>")


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

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self.base_url = base_url.rstrip("/")

    async def set_config(self, config: Mapping[str, Any]) -> None:
        async with self._session.post(f"{self.base_url}/moto-api/config", json=config) as response:
            if response.status >= 300:
                raise MotoError(response.status, "ConfigFailed", await response.text())

    async def reset(self) -> None:
        async with self._session.post(f"{self.base_url}/moto-api/reset") as response:
            if response.status >= 300:
                raise MotoError(response.status, "ResetFailed", await response.text())

    async def ensure_role(self, scope: AwsScope, role_name: str) -> str:
        """Create the execution role if missing (moto's CreateFunction demands it); return its ARN."""
        try:
            body = await self._iam(
                scope,
                {
                    "Action": "CreateRole",
                    "RoleName": role_name,
                    "AssumeRolePolicyDocument": _TRUST,
                },
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
        url = f"{self.base_url}/2015-03-31/functions/{quote(name, safe='')}"
        params = {"Qualifier": qualifier} if qualifier else None
        headers = {"Authorization": _authorization(scope, "lambda")}
        async with self._session.get(url, params=params, headers=headers) as response:
            if response.status == 404:
                return None
            text = await response.text()
            if response.status >= 300:
                code = response.headers.get("x-amzn-ErrorType", "LambdaError")
                raise MotoError(response.status, code, text[:500])
            document: dict[str, Any] = json.loads(text)
            return document

    async def logs(self, scope: AwsScope, action: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """One CloudWatch Logs call (JSON protocol)."""
        headers = {
            "Authorization": _authorization(scope, "logs"),
            "X-Amz-Target": f"Logs_20140328.{action}",
            "Content-Type": "application/x-amz-json-1.1",
        }
        async with self._session.post(
            f"{self.base_url}/", data=json.dumps(body), headers=headers
        ) as response:
            text = await response.text()
            if response.status >= 300:
                try:
                    error = json.loads(text)
                    code, message = str(error.get("__type", "")), str(error.get("message", text))
                except ValueError:
                    code, message = "", text
                raise MotoError(response.status, code.rpartition("#")[2] or "LogsError", message[:500])
            result: dict[str, Any] = json.loads(text) if text else {}
            return result

    async def _iam(self, scope: AwsScope, params: Mapping[str, str]) -> str:
        headers = {"Authorization": _authorization(AwsScope(scope.access_key, "us-east-1", "iam"), "iam")}
        form = {**params, "Version": "2010-05-08"}
        async with self._session.post(f"{self.base_url}/", data=form, headers=headers) as response:
            text = await response.text()
            if response.status >= 300:
                match = _XML_CODE.search(text)
                raise MotoError(response.status, match[1] if match else "IamError", text[:500])
            return text
