"""The frontend's shape, which the design depends on: it talks to the backend only through the internal
API's client (never the server's module), uses no other module's private names, imports itself without
a cycle, and keeps its modules small."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import sockerless.frontend

PACKAGE = "sockerless.frontend"
FOLDER = Path(sockerless.frontend.__file__).parent


def module_name(path: Path) -> str:
    return PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"


SOURCES = {module_name(path): path for path in sorted(FOLDER.glob("*.py"))}


def imported(name: str) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in the module ``name``; ``from a import b`` of a module ``b``
    is the module ``a.b``."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(SOURCES[name].read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{name} uses a relative import"
            module = node.module or ""
            names = [alias.name for alias in node.names]
            found.append((module, names))
            found += [(f"{module}.{n}", []) for n in names if f"{module}.{n}" in SOURCES]
    return found


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_no_frontend_module_imports_the_internal_api_server(name: str) -> None:
    for module, names in imported(name):
        assert not module.startswith("sockerless.api.server"), (name, module)
        assert not (module == "sockerless.api" and "server" in names), name


def test_the_frontend_does_not_load_the_internal_api_server_even_indirectly() -> None:
    code = f"import sys, {PACKAGE}; print('sockerless.api.server' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def private(name: str) -> bool:
    """``_name``; dunders (``__version__``) are public by convention."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_no_frontend_module_imports_another_modules_private_names(name: str) -> None:
    for module, names in imported(name):
        assert not any(private(part) for part in module.split(".")), (name, module)
        assert not [n for n in names if private(n)], (name, module, names)


def test_the_frontend_modules_import_each_other_without_a_cycle() -> None:
    edges = {
        name: {module for module, _ in imported(name) if module in SOURCES and module != PACKAGE}
        for name in SOURCES
    }
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, "import cycle: " + " -> ".join((*path, name))
        if name in done:
            return
        for target in edges[name]:
            visit(target, (*path, name))
        done.add(name)

    for name in SOURCES:
        visit(name, ())


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_frontend_module_is_under_500_lines(name: str) -> None:
    assert len(SOURCES[name].read_text().splitlines()) < 500
