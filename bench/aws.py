"""Direct AWS calls for the floors: aiobotocore clients set up as the backend sets up its own, and the
function parameters the backend sends for the bench's containers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from attrs import define

from .common import IMAGE
from .processes import FAKE_CREDENTIAL

__all__ = ["LOG_GROUP", "LambdaClients", "aws_client", "function_params", "lambda_clients"]

LOG_GROUP = "/sockerless/lambda"  # the backend's default group: the floors log to the same one


@contextlib.asynccontextmanager
async def aws_client(
    service: str, endpoint_url: str, *, pool: int = 256, attempts: int = 1
) -> AsyncIterator[Any]:
    """An aiobotocore client on the simulator, configured as the backend configures its own: the
    standard retry mode with ``attempts`` attempts, its fixed User-Agent and no client-side parameter
    validation (see ``sockerless_lambda.aws``), so that a comparison with the backend measures the
    backend, not client settings any caller could choose."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    from sockerless_lambda.aws import user_agent

    config = AioConfig(
        user_agent=user_agent(),
        parameter_validation=False,
        max_pool_connections=pool,
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=10,
        read_timeout=600,
    )
    session: Any = get_session()  # typed per service name; this one takes any
    async with session.create_client(
        service,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=FAKE_CREDENTIAL,
        aws_secret_access_key=FAKE_CREDENTIAL,
        config=config,
    ) as client:
        yield client


@define
class LambdaClients:
    """The floor's two Lambda clients, split as the backend splits its own: ``control`` (create,
    delete) retries as the backend's control client does, ``invoke`` makes one attempt."""

    control: Any
    invoke: Any


@contextlib.asynccontextmanager
async def lambda_clients(endpoint_url: str) -> AsyncIterator[LambdaClients]:
    """The floor's clients, with the backend's default retry policy for each: a retrying client checks
    every answer for a retryable error and one with a single attempt does not, so a floor that made
    its control calls with one attempt would skip work the backend does."""
    from sockerless_lambda.config import LambdaConfig

    attempts = LambdaConfig(simulate=True).max_attempts  # the default
    async with (
        aws_client("lambda", endpoint_url, attempts=attempts) as control,
        aws_client("lambda", endpoint_url) as invoke,
    ):
        yield LambdaClients(control, invoke)


def function_params(name: str, role_arn: str, command: Sequence[str]) -> dict[str, Any]:
    """What the backend sends for ``{"Image": IMAGE, "Cmd": command}`` (see
    ``sockerless_lambda.functions``)."""
    return {
        "FunctionName": name,
        "Role": role_arn,
        "PackageType": "Image",
        "Code": {"ImageUri": IMAGE},
        "Description": f"sockerless container /{name}",
        "MemorySize": 1024,
        "Timeout": 900,
        "Architectures": ["x86_64"],
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": LOG_GROUP},
        "Tags": {
            "sockerless:managed": "true",
            "sockerless:container-id": name,
            "sockerless:name": name,
            "sockerless:instance": "bench-direct",
        },
        "ImageConfig": {"Command": list(command)},
    }
