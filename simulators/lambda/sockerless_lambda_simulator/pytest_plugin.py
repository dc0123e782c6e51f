"""pytest plugin: the ``lambda_simulator`` fixture, a started ``LambdaSimulator`` stopped after the test.

Loaded into every pytest run through the ``pytest11`` entry point, so it imports nothing heavy:
aiohttp and moto load only when a test asks for the fixture. Configure one test with
``@pytest.mark.lambda_simulator(pending_seconds=0.5, seed=1, faults=[...])``; a whole suite by overriding
the ``lambda_simulator_options`` fixture (in a conftest.py), whose settings the marker's override.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

try:
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - without pytest-asyncio, pytest cannot run async fixtures anyway
    _async_fixture = pytest.fixture  # type: ignore[assignment]

if TYPE_CHECKING:
    from .simulator import LambdaSimulator

__all__ = ["lambda_simulator", "lambda_simulator_options"]

# Variables that could send a client to a real account: removed for the test's duration.
_REAL_AWS_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "lambda_simulator(**kwargs): LambdaSimulator arguments for the lambda_simulator fixture",
    )


@pytest.fixture
def lambda_simulator_options() -> dict[str, Any]:
    """``LambdaSimulator`` arguments for every test of a suite (none: the simulator's defaults, AWS's).

    Override it in a conftest.py, e.g. to keep AWS's Pending phase but shorter::

        @pytest.fixture
        def lambda_simulator_options() -> dict[str, Any]:
            return {"pending_seconds": 0.4}

    A test's ``lambda_simulator`` marker wins over these, argument by argument.
    """
    return {}


@_async_fixture
async def lambda_simulator(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, lambda_simulator_options: dict[str, Any]
) -> AsyncIterator[LambdaSimulator]:
    """A started simulator; AWS_* variables point every SDK client at it with fake credentials."""
    from .simulator import LambdaSimulator

    for name in _REAL_AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    marker = request.node.get_closest_marker("lambda_simulator")
    options = {**lambda_simulator_options, **(marker.kwargs if marker is not None else {})}
    async with LambdaSimulator(**options) as simulator:
        for name, value in simulator.client_environment().items():
            monkeypatch.setenv(name, value)
        yield simulator
