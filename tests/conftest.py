"""Suite-wide safety net (a failing test must not hang the run) and the suites' simulator settings."""

from __future__ import annotations

import gc
import os
import sys
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
import pytest_asyncio

from tests.lambda_settings import CLOUDWATCH_PATH_SIMULATOR, SIMULATOR_OPTIONS


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "cloudwatch_path: the run goes the way it went before the bootstrap (issue 20): the command as the "
        "function's ImageConfig (lambda.bootstrap false), its output from the log tail and CloudWatch, on "
        "the simulator's direct model (tests/lambda_settings.py: CLOUDWATCH_PATH)",
    )


@pytest.fixture
def lambda_simulator_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Every ``lambda_simulator`` of the suites: AWS's Pending phase, shorter (tests/lambda_settings.py);
    the direct model for a test marked ``cloudwatch_path``."""
    options = dict(SIMULATOR_OPTIONS)
    if request.node.get_closest_marker("cloudwatch_path") is not None:
        options.update(CLOUDWATCH_PATH_SIMULATOR)
    return options


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the aiosqlite worker threads that tests left running.

    A test that fails while a store write is on aiosqlite's thread leaves that thread (not a daemon)
    waiting for work its closed event loop will never send, and the interpreter waits for it at exit:
    the run would print its results and then hang until CI's own timeout. Stopping the threads here
    lets the run end with the failure reported.
    """
    left = [obj for obj in gc.get_objects() if isinstance(obj, aiosqlite.Connection)]
    running = [connection for connection in left if getattr(connection, "_running", False)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stop() asks for an event loop; there is none any more
        for connection in running:
            connection.stop()
    if running:
        print(f"\nconftest: stopped {len(running)} aiosqlite connection(s) a test left open", file=sys.stderr)


# ---------------------------------------------------------------- local images (issue 21)


def needs_local_images() -> None:
    """Skip a test that needs Debian's ``docker-registry`` and ``busybox-static`` when they are missing,
    with how to install them (``./dev`` does when it runs as root with apt); under CI (``CI=true``) a
    missing part fails the test instead: CI installs them, and a skip there would hide a broken set-up."""
    from sockerless_lambda_simulator.registry import registry_unavailable
    from tests.imagekit import busybox_available

    missing = [reason for reason in (registry_unavailable(), busybox_available()) if reason]
    if not missing:
        return
    reason = "; ".join(missing)
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run the image tests: {reason}")
    pytest.skip(reason)


@pytest_asyncio.fixture
async def source_registry(tmp_path: Path) -> AsyncIterator[Any]:
    """A real registry on loopback standing for Docker Hub (``registry.host`` is ``127.0.0.1:PORT``)."""
    needs_local_images()
    from sockerless_lambda_simulator.registry import LocalRegistry

    registry = LocalRegistry(tmp_path / "source-registry")
    await registry.start()
    try:
        yield registry
    finally:
        await registry.stop()


@pytest_asyncio.fixture
async def busybox_image(source_registry: Any) -> str:
    """``127.0.0.1:PORT/busybox:latest`` pushed to ``source_registry``: busybox, its own /etc/os-release."""
    from tests.imagekit import busybox_layer, image, push_image

    await push_image(source_registry.url, "busybox", "latest", image([busybox_layer()]))
    return f"{source_registry.host}/busybox:latest"
