"""Plugins: distributions that register a backend class, or a local simulator, by entry point.

A plugin's ``pyproject.toml`` says, for example::

    [project.entry-points."sockerless.backends"]
    lambda = "sockerless_lambda.backend:LambdaBackend"

:func:`load_backend` imports the class by that name and checks that it is a backend before the
host process builds its configuration section and starts it.

Simulators (group ``sockerless.simulators``) are separate distributions so that a production install
never carries code that runs commands on the host: a backend asks for its simulator by name with
:func:`load_simulator` only when simulation is switched on.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping
from typing import Any, cast

import attrs

from sockerless.backend import Backend, BaseBackend
from sockerless.models import Capabilities

__all__ = [
    "ENTRY_POINT_GROUP",
    "SIMULATOR_ENTRY_POINT_GROUP",
    "PluginError",
    "available_backends",
    "available_simulators",
    "load_backend",
    "load_simulator",
]

ENTRY_POINT_GROUP = "sockerless.backends"
SIMULATOR_ENTRY_POINT_GROUP = "sockerless.simulators"


class PluginError(Exception):
    """A plugin cannot be found or loaded; the message names it, its distribution and what to do."""


def available_backends() -> dict[str, importlib.metadata.EntryPoint]:
    """Installed backends by name, sorted; when two distributions claim a name, the first on sys.path wins."""
    return _entry_points_by_name(ENTRY_POINT_GROUP)


def available_simulators() -> dict[str, importlib.metadata.EntryPoint]:
    """Installed simulators by name, sorted, with the same precedence as :func:`available_backends`."""
    return _entry_points_by_name(SIMULATOR_ENTRY_POINT_GROUP)


def _entry_points_by_name(group: str) -> dict[str, importlib.metadata.EntryPoint]:
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for entry_point in importlib.metadata.entry_points(group=group):
        found.setdefault(entry_point.name, entry_point)
    return dict(sorted(found.items()))


def load_backend(name: str) -> type[Backend]:
    """Import the backend class registered as ``name``, or raise :class:`PluginError` saying why not."""
    backends = available_backends()
    entry_point, loaded = _load(
        "backend",
        name,
        backends,
        unknown=f"unknown backend {name!r} (installed: {_names(backends)}); "
        f"install the distribution that provides it, e.g. sockerless-backend-{name}",
    )
    problems = _backend_problems(name, loaded)
    if problems:
        raise PluginError(
            f"{_described('backend', name, entry_point)} is not a sockerless backend: " + "; ".join(problems)
        )
    return cast(type[Backend], loaded)


def load_simulator(name: str, *, install_hint: str) -> Callable[..., object]:
    """Import the simulator factory registered as ``name``, or raise :class:`PluginError` saying why not.

    The factory's signature is the backend's business (it knows its own simulator), so it is checked
    only for being callable. ``install_hint`` is what the user reads when nothing is registered: the
    backend knows which setting asked for the simulator and which distribution provides it.
    """
    simulators = available_simulators()
    entry_point, loaded = _load(
        "simulator",
        name,
        simulators,
        unknown=f"{install_hint} (nothing named {name!r} in entry point group "
        f"{SIMULATOR_ENTRY_POINT_GROUP!r}; installed simulators: {_names(simulators)})",
    )
    if not callable(loaded):
        raise PluginError(
            f"{_described('simulator', name, entry_point)} is {type(loaded).__name__} {loaded!r}, "
            "not a class or factory"
        )
    return cast(Callable[..., object], loaded)


def _load(
    kind: str, name: str, installed: Mapping[str, importlib.metadata.EntryPoint], *, unknown: str
) -> tuple[importlib.metadata.EntryPoint, Any]:
    """The entry point installed as ``name`` and what it loads; :class:`PluginError` with the message
    ``unknown`` when there is none, or naming the plugin when its import fails."""
    entry_point = installed.get(name)
    if entry_point is None:
        raise PluginError(unknown)
    try:
        return entry_point, entry_point.load()
    except Exception as exc:  # whatever the plugin's import raises, say which plugin raised it
        raise PluginError(
            f"{kind} {name!r} from {_origin(entry_point)} failed to load ({entry_point.value}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _names(installed: Mapping[str, importlib.metadata.EntryPoint]) -> str:
    return ", ".join(installed) or "none"


def _described(kind: str, name: str, entry_point: importlib.metadata.EntryPoint) -> str:
    return f"{kind} {name!r} from {_origin(entry_point)} ({entry_point.value})"


def _origin(entry_point: importlib.metadata.EntryPoint) -> str:
    dist = entry_point.dist
    return f"distribution {dist.name} {dist.version}" if dist is not None else "an unknown distribution"


def _protocol_members() -> list[str]:
    members = {name for name in vars(Backend) if not name.startswith("_")} | set(Backend.__annotations__)
    return sorted(members)


def _backend_problems(name: str, loaded: Any) -> list[str]:
    """What keeps ``loaded`` from being the backend registered as ``name``; empty when nothing does."""
    if not isinstance(loaded, type):
        return [f"it is {type(loaded).__name__} {loaded!r}, not a class"]
    problems: list[str] = []
    if not issubclass(loaded, BaseBackend):
        missing = [member for member in _protocol_members() if not hasattr(loaded, member)]
        if missing:
            problems.append(
                "it neither subclasses sockerless.backend.BaseBackend nor has every member of "
                f"the Backend protocol (missing: {', '.join(missing)})"
            )
    declared = getattr(loaded, "name", None)
    if declared != name:
        problems.append(f"its name is {declared!r}, but it is registered as {name!r}")
    if not isinstance(getattr(loaded, "capabilities", None), Capabilities):
        problems.append("its capabilities are not a sockerless.models.Capabilities")
    config_class = getattr(loaded, "config_class", None)
    if config_class is not None and not attrs.has(config_class):
        problems.append("its config_class is not an attrs class")
    return problems
