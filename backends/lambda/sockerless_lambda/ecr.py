"""Where prepared images go: the account's ECR registry, or a plain registry named by URL.

ECR: ``GetAuthorizationToken`` gives the registry's URL (``proxyEndpoint``) and a 12-hour password
(base64 ``AWS:<password>``), used as ``Basic`` credentials; ``DescribeRepositories`` and, when the
repository is missing, ``CreateRepository``. A plain registry (``lambda.registry_url``: a local
registry, a simulator's) needs neither: pushing creates a repository.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from typing import TYPE_CHECKING, Any, Protocol

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from attrs import frozen

from sockerless.errors import SockerlessError
from sockerless_lambda.aws import AwsSettings, aws_error_code, call, user_agent
from sockerless_lambda.errors import AwsOperation
from sockerless_lambda.registry import Credentials

if TYPE_CHECKING:
    from types_aiobotocore_ecr import ECRClient

__all__ = ["EcrRegistry", "PlainRegistry", "RegistryTarget", "TargetRegistry"]

#: ECR's tokens last 12 hours; one is used for at most this many seconds.
_TOKEN_SECONDS = 11 * 3600


@frozen
class RegistryTarget:
    """A registry's API base (``https://<account>.dkr.ecr.<region>.amazonaws.com``) and credentials."""

    url: str
    credentials: Credentials


class TargetRegistry(Protocol):
    """What image preparation needs of the registry it pushes to."""

    async def target(self) -> RegistryTarget: ...

    async def ensure_repository(self, name: str) -> None: ...

    async def close(self) -> None: ...


class PlainRegistry:
    """A registry named by URL, anonymous (a local registry): repositories are created by pushing."""

    def __init__(self, url: str) -> None:
        self._target = RegistryTarget(url=url.rstrip("/"), credentials=Credentials())

    async def target(self) -> RegistryTarget:
        return self._target

    async def ensure_repository(self, name: str) -> None:
        return None

    async def close(self) -> None:
        return None


class EcrRegistry:
    """The account's ECR registry, through an ECR client opened on first use."""

    def __init__(self, settings: AwsSettings) -> None:
        self._settings = settings
        self._stack = contextlib.AsyncExitStack()
        self._client: ECRClient | None = None
        self._lock = asyncio.Lock()
        self._token: tuple[float, RegistryTarget] | None = None
        self._repositories: set[str] = set()

    async def _ecr(self) -> ECRClient:
        if self._client is None:
            s = self._settings
            session = AioSession(profile=s.profile) if s.profile else AioSession()
            options: dict[str, Any] = {"region_name": s.region, "endpoint_url": s.endpoint_url}
            if s.static_credentials is not None:
                options["aws_access_key_id"], options["aws_secret_access_key"] = s.static_credentials
            config = AioConfig(
                user_agent=user_agent(),
                retries={"mode": "standard", "total_max_attempts": s.max_attempts},
            )
            self._client = await self._stack.enter_async_context(
                session.create_client("ecr", config=config, **options)
            )
        return self._client

    async def target(self) -> RegistryTarget:
        async with self._lock:
            if self._token is not None and time.monotonic() < self._token[0]:
                return self._token[1]
            ecr = await self._ecr()
            answer = await call(
                AwsOperation("ecr", "GetAuthorizationToken", "get a registry token"),
                ecr.get_authorization_token,
            )
            data = answer["authorizationData"][0]
            username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
            target = RegistryTarget(
                url=data["proxyEndpoint"].rstrip("/"),
                credentials=Credentials(username=username, password=password),
            )
            self._token = (time.monotonic() + _TOKEN_SECONDS, target)
            return target

    async def ensure_repository(self, name: str) -> None:
        if name in self._repositories:
            return
        ecr = await self._ecr()
        describe = AwsOperation("ecr", "DescribeRepositories", "describe repository", name)
        create = AwsOperation("ecr", "CreateRepository", "create repository", name)
        try:
            await call(describe, ecr.describe_repositories, repositoryNames=[name])
        except SockerlessError as exc:
            if aws_error_code(exc) != "RepositoryNotFoundException":
                raise
            try:
                await call(create, ecr.create_repository, repositoryName=name)
            except SockerlessError as again:
                if aws_error_code(again) != "RepositoryAlreadyExistsException":  # made meanwhile
                    raise
        self._repositories.add(name)

    async def close(self) -> None:
        await self._stack.aclose()
