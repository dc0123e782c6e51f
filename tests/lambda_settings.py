"""What the test suites point at a Lambda simulator (the ``lambda_simulator`` fixture or a simulator
process): the backend's LambdaConfig and aiobotocore's client options."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sockerless_lambda.config import LambdaConfig


def simulator_config(simulator: Any, **overrides: Any) -> LambdaConfig:
    """A config for ``simulator``: quick log reads and few attempts, with ``overrides`` on top."""
    # Imported here: suites that skip when the Lambda backend does not import can still import this.
    from sockerless_lambda.config import LambdaConfig

    settings: dict[str, Any] = {
        "region": simulator.region,
        "role_arn": simulator.role_arn,
        "endpoint_url": simulator.endpoint_url,
        "log_read_interval": 0.25,
        "max_attempts": 2,
    }
    settings.update(overrides)
    return LambdaConfig(**settings)


def simulator_client_options(simulator: Any, **extra: Any) -> dict[str, Any]:
    """aiobotocore ``create_client`` options for ``simulator``: its endpoint and region, test
    credentials, and ``extra``."""
    return {
        "endpoint_url": simulator.endpoint_url,
        "region_name": simulator.region,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        **extra,
    }
