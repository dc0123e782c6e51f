"""pytest plugin: the ``lambda_simulator`` fixture, a started ``LambdaSimulator`` stopped after the test.

Loaded into every pytest run through the ``pytest11`` entry point, so it imports nothing heavy:
aiohttp and moto load only when a test asks for the fixture. Configure one test with
``@pytest.mark.lambda_simulator(pending_seconds=0.5, seed=1, faults=[...])``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

try:
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - without pytest-asyncio, pytest cannot run async fixtures anyway
    _async_fixture = pytest.fixture  # type: ignore[assignment]

if TYPE_CHECKING:
    from .simulator import LambdaSimulator

__all__ = ["TEST_SETTINGS", "lambda_simulator"]

#: What a test's simulator differs in from the simulator's own defaults (a marker's arguments win):
#: CloudWatch still delivers late and Event invocations still wait in the queue, as on AWS, but for
#: a fraction of a second, so that every test meets the delay without waiting AWS's seconds.
TEST_SETTINGS = {"log_delivery_delay": 0.3, "event_delay": 0.1}

# Variables that could send a client to a real account: removed for the test's duration.
_REAL_AWS_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "lambda_simulator(**kwargs): LambdaSimulator arguments for the lambda_simulator fixture",
    )


@_async_fixture
async def lambda_simulator(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LambdaSimulator]:
    """A started simulator; AWS_* variables point every SDK client at it with fake credentials."""
    from .simulator import LambdaSimulator

    for name in _REAL_AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    marker = request.node.get_closest_marker("lambda_simulator")
    options = {**TEST_SETTINGS, **(marker.kwargs if marker is not None else {})}
    async with LambdaSimulator(**options) as simulator:
        for name, value in simulator.client_environment().items():
            monkeypatch.setenv(name, value)
        yield simulator
