"""The production plugin carries no simulator: it neither imports nor registers code that runs commands
on the host. The simulator is found only through its entry point, and only in simulate mode."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import sockerless_lambda
from tests.fixtures.import_walk import import_every_module

DISTRIBUTION = "sockerless-backend-lambda"
SIMULATOR_PACKAGES = ("sockerless_lambda_simulator", "sockerless_lambda.simulator")


def _names_a_simulator(name: str) -> bool:
    return any(name == package or name.startswith(package + ".") for package in SIMULATOR_PACKAGES)


def test_importing_every_module_of_the_plugin_loads_no_simulator_module() -> None:
    walk = import_every_module("sockerless_lambda")

    assert [name for name in walk.modules if _names_a_simulator(name)] == []
    assert walk.failures == {}, "every module must import, or this test proves nothing about it"
    assert "sockerless_lambda.backend" in walk.modules


def test_no_module_of_the_plugin_names_the_simulator_package() -> None:
    """Catches what an import walk cannot: an import inside a function, or a name handed to importlib."""
    offenders: list[str] = []
    root = Path(sockerless_lambda.__file__).parent
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names = [node.value]
            else:
                continue
            offenders += [
                f"{path.relative_to(root)}:{node.lineno}: {name}"
                for name in names
                if _names_a_simulator(name)
            ]

    assert offenders == []


def test_the_distribution_registers_no_simulator() -> None:
    distribution = importlib.metadata.distribution(DISTRIBUTION)

    assert list(distribution.entry_points.select(group="pytest11")) == []
    assert sorted(distribution.entry_points.select(group="console_scripts").names) == [
        "sockerless-backend-lambda"
    ]
    assert "simulator" not in (distribution.metadata.get_all("Provides-Extra") or [])
    assert not any(requirement.startswith("moto") for requirement in distribution.requires or [])
