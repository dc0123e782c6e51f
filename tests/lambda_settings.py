"""What the test suites point at a Lambda simulator (the ``lambda_simulator`` fixture or a simulator
process): the simulator's own settings, the backend's LambdaConfig and aiobotocore's client options."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sockerless_lambda.config import LambdaConfig

#: Pending of every new function in the suites' simulators: AWS keeps new functions Pending a few
#: seconds (the simulator's default, 2 s); the tests keep the phase, so every run meets the 409 and the
#: readiness poll, but shorter (tests/simulator took 37 s at 0, 62 s at 0.3, 71 s at 0.4, 78 s at 0.5;
#: tests/lambda barely changes). ``SOCKERLESS_TEST_PENDING_SECONDS``
#: runs the suites with another (AWS's 2, say); tests that set their own Pending keep it.
PENDING_SECONDS = float(os.environ.get("SOCKERLESS_TEST_PENDING_SECONDS", "0.4"))

#: ``LambdaSimulator`` arguments of the suites (tests/conftest.py's ``lambda_simulator_options``). As
#: with Pending, CloudWatch still delivers late and Event invocations still wait in Lambda's queue, as
#: on AWS, but for a fraction of a second, so every test meets the delay without waiting AWS's seconds.
SIMULATOR_OPTIONS: dict[str, Any] = {
    "pending_seconds": PENDING_SECONDS,
    "log_delivery_delay": 0.3,
    "event_delay": 0.1,
    # Lambda's execution model (Init, the Runtime API, warm environments), the simulator's default,
    # named here because tests that pin the old "direct" model override it by name.
    "runtime_model": "lambda",
    # The simulator's ECR (a docker-registry process, ~60 ms to start) only where a test uses it: the image
    # tests (tests/simulator/test_images.py, tests/frontend/test_images_e2e.py) turn it on.
    "ecr_registry": False,
}


#: Tests of the path before the bootstrap (``@pytest.mark.cloudwatch_path``): the backend puts the command
#: in the function's ImageConfig and reads the output from the log tail and CloudWatch. In Lambda's
#: model such a command, not speaking the Runtime API, runs twice (Init, then Init again in the invoke),
#: which is what AWS does and what tests/simulator/test_runtime_api.py shows; these tests pair the path
#: with the simulator's direct model (one process per invocation, payload on stdin), which is not
#: Lambda's but keeps them about what they test: the tail, CloudWatch's delays, Event mode.
CLOUDWATCH_PATH_SIMULATOR: dict[str, Any] = {"runtime_model": "direct"}
CLOUDWATCH_PATH_BACKEND: dict[str, Any] = {"bootstrap": False}


def simulator_arguments() -> list[str]:
    """``sockerless-lambda-simulator`` flags giving a simulator process ``SIMULATOR_OPTIONS``."""
    flags = []
    for key, value in SIMULATOR_OPTIONS.items():
        flag = key.replace("_", "-")
        if isinstance(value, bool):  # the simulator's switches are --X / --no-X
            flags.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            flags.append(f"--{flag}={value}")
    return flags


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
        # The suites' images (alpine, ECR names) are references only: no preparation, no network;
        # the image tests (tests/lambda/test_prepare.py...) ask for it.
        "prepare_images": False,
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
