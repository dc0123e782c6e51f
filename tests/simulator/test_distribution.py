"""The simulator as its own distribution: how --simulate and pytest find it, and what it depends on."""

from __future__ import annotations

import importlib.metadata

from sockerless.plugins import available_simulators
from sockerless_lambda.simulation import load_simulator_factory
from sockerless_lambda_simulator import LambdaSimulator
from tests.fixtures.import_walk import import_every_module

DISTRIBUTION = "sockerless-lambda-simulator"


def test_the_lambda_simulator_entry_point_resolves_to_lambda_simulator() -> None:
    entry_point = available_simulators()["lambda"]

    assert entry_point.value == "sockerless_lambda_simulator:LambdaSimulator"
    assert entry_point.dist is not None and entry_point.dist.name == DISTRIBUTION
    assert entry_point.load() is LambdaSimulator


def test_the_distribution_registers_the_pytest_plugin_and_the_command() -> None:
    entry_points = importlib.metadata.distribution(DISTRIBUTION).entry_points

    assert [entry.value for entry in entry_points.select(group="pytest11")] == [
        "sockerless_lambda_simulator.pytest_plugin"
    ]
    assert [entry.value for entry in entry_points.select(group="console_scripts")] == [
        "sockerless_lambda_simulator.cli:main"
    ]


async def test_the_backend_builds_and_starts_a_simulator_through_the_entry_point() -> None:
    factory = load_simulator_factory()
    simulator = factory(region="eu-west-1")
    await simulator.start()
    try:
        assert simulator.region == "eu-west-1"
        assert simulator.endpoint_url.startswith("http://127.0.0.1:")
        assert simulator.role_arn.startswith("arn:aws:iam::")
    finally:
        await simulator.stop()


def test_the_simulator_imports_nothing_of_sockerless() -> None:
    """It must run, and be tested, without the product it stands in for AWS for."""
    walk = import_every_module("sockerless_lambda_simulator")

    assert walk.failures == {}
    assert "sockerless_lambda_simulator.simulator" in walk.modules
    ours = [name for name in walk.modules if name.split(".")[0] in ("sockerless", "sockerless_lambda")]
    assert ours == []
