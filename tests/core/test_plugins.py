"""Backend plugins found through real entry points: the demo plugin, unknown names and broken plugins."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from sockerless.backend import BackendRuntime, BaseBackend
from sockerless.config import add_config_arguments, config_sections, flags_from_args, load_settings
from sockerless.errors import NotFound
from sockerless.models import Capabilities, ContainerConfig, ContainerCreateRequest
from sockerless.plugins import (
    ENTRY_POINT_GROUP,
    SIMULATOR_ENTRY_POINT_GROUP,
    PluginError,
    available_backends,
    load_backend,
    load_simulator,
)
from tests.fixtures.demo_plugin import install_demo_plugin, install_distribution


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_demo_plugin(tmp_path, monkeypatch)


def install_plugin(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    distribution: str,
    group: str,
    name: str,
    target: str,
    source: str,
) -> None:
    """Install ``distribution`` 2.3.4, whose one module (``target``'s) holds ``source`` and which
    registers ``target`` as ``name`` in entry point group ``group``."""
    module = target.partition(":")[0]
    package = tmp_path / "sources" / module
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(source)
    install_distribution(
        tmp_path,
        monkeypatch,
        name=distribution,
        version="2.3.4",
        entry_points={group: {name: target}},
        packages=[package],
    )


def install_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, backend: str, target: str, source: str
) -> None:
    """Install distribution ``sockerless-backend-<backend>`` whose one module holds ``source``."""
    install_plugin(
        tmp_path,
        monkeypatch,
        distribution=f"sockerless-backend-{backend}",
        group=ENTRY_POINT_GROUP,
        name=backend,
        target=target,
        source=source,
    )


def test_demo_plugin_is_discovered_by_name_with_its_distribution(demo: None) -> None:
    entry_point = available_backends()["demo"]

    assert entry_point.value == "sockerless_backend_demo:DemoBackend"
    assert entry_point.dist is not None
    assert (entry_point.dist.name, entry_point.dist.version) == ("sockerless-backend-demo", "0.1.0")


def test_load_backend_returns_the_registered_class(demo: None) -> None:
    backend_class = load_backend("demo")

    import sockerless_backend_demo

    assert backend_class is sockerless_backend_demo.DemoBackend
    assert issubclass(backend_class, BaseBackend)
    assert backend_class.capabilities == Capabilities(logs=True)


def test_the_demo_plugin_is_gone_after_its_test() -> None:
    assert "demo" not in available_backends()
    assert "sockerless_backend_demo" not in sys.modules


async def test_demo_backend_runs_with_its_config_section_from_the_command_line(demo: None) -> None:
    backend_class = load_backend("demo")
    assert issubclass(backend_class, BaseBackend)
    parser = argparse.ArgumentParser()
    add_config_arguments(
        parser, config_sections("demo", backend_class.config_class), aliases=backend_class.cli_aliases
    )
    args = parser.parse_args(["--greeting", "hi there"])
    settings = load_settings(
        backend_name="demo",
        backend_section=backend_class.config_class,
        environ={},
        flags=flags_from_args(args),
    )
    backend = backend_class(settings.backend, BackendRuntime(state_path="", instance_id="demo-1"))

    info = await backend.info()
    created = await backend.create_container(ContainerCreateRequest(ContainerConfig(image="alpine")), "web")

    assert (info.id, info.name) == ("demo-1", "hi there")
    assert (await backend.inspect_container("web")).id == created.id
    with pytest.raises(NotFound):
        await backend.inspect_container("nope")


def test_unknown_backend_lists_the_installed_ones(demo: None) -> None:
    with pytest.raises(PluginError) as caught:
        load_backend("nope")

    message = str(caught.value)
    assert message.startswith("unknown backend 'nope' (installed: ")
    assert "demo" in message.partition("installed: ")[2]
    assert "sockerless-backend-nope" in message


def test_a_plugin_whose_import_fails_names_its_distribution_and_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_module(
        tmp_path,
        monkeypatch,
        backend="broken",
        target="sockerless_backend_broken:BrokenBackend",
        source="import sockerless_missing_dependency\n",
    )

    with pytest.raises(PluginError) as caught:
        load_backend("broken")

    assert str(caught.value) == (
        "backend 'broken' from distribution sockerless-backend-broken 2.3.4 failed to load "
        "(sockerless_backend_broken:BrokenBackend): "
        "ModuleNotFoundError: No module named 'sockerless_missing_dependency'"
    )
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


def test_an_entry_point_naming_a_missing_attribute_is_a_load_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_module(tmp_path, monkeypatch, backend="typo", target="sockerless_backend_typo:Backnd", source="")

    with pytest.raises(PluginError, match=r"failed to load .*AttributeError"):
        load_backend("typo")


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("Backend = 42\n", "it is int 42, not a class"),
        (
            "from sockerless.backend import BaseBackend\nclass Backend(BaseBackend):\n    name = 'other'\n",
            "its name is 'other', but it is registered as 'odd'",
        ),
        (
            "from sockerless.backend import BaseBackend\n"
            "class Backend(BaseBackend):\n    name = 'odd'\n    capabilities = {'exec': True}\n",
            "its capabilities are not a sockerless.models.Capabilities",
        ),
        (
            "from sockerless.backend import BaseBackend\n"
            "class Backend(BaseBackend):\n    name = 'odd'\n    config_class = dict\n",
            "its config_class is not an attrs class",
        ),
        (
            "class Backend:\n    name = 'odd'\n",
            "it neither subclasses sockerless.backend.BaseBackend nor has every member of the Backend "
            "protocol (missing: attach_container, auth, capabilities,",
        ),
    ],
    ids=["not-a-class", "wrong-name", "bad-capabilities", "bad-config-class", "not-a-backend"],
)
def test_something_that_is_not_a_backend_is_refused_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, problem: str
) -> None:
    install_module(
        tmp_path, monkeypatch, backend="odd", target="sockerless_backend_odd:Backend", source=source
    )

    with pytest.raises(PluginError) as caught:
        load_backend("odd")

    prefix = "backend 'odd' from distribution sockerless-backend-odd 2.3.4 (sockerless_backend_odd:Backend) "
    assert str(caught.value).startswith(prefix + "is not a sockerless backend: ")
    assert problem in str(caught.value)


def test_a_class_with_every_protocol_member_is_a_backend_without_subclassing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = (
        "from sockerless.backend import BaseBackend\n"
        "from sockerless.models import Capabilities\n"
        "class Backend:\n"
        "    name = 'duck'\n"
        "    capabilities = Capabilities()\n"
        "for member in dir(BaseBackend):\n"
        "    if not member.startswith('_') and not hasattr(Backend, member):\n"
        "        setattr(Backend, member, getattr(BaseBackend, member))\n"
    )
    install_module(
        tmp_path, monkeypatch, backend="duck", target="sockerless_backend_duck:Backend", source=source
    )

    assert load_backend("duck").name == "duck"


def install_simulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, name: str, source: str) -> None:
    """Install ``sockerless-<name>-simulator`` registering ``sockerless_<name>_sim:Simulator``."""
    install_plugin(
        tmp_path,
        monkeypatch,
        distribution=f"sockerless-{name}-simulator",
        group=SIMULATOR_ENTRY_POINT_GROUP,
        name=name,
        target=f"sockerless_{name}_sim:Simulator",
        source=source,
    )


def test_load_simulator_returns_the_registered_factory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_simulator(tmp_path, monkeypatch, name="fake", source="class Simulator:\n    pass\n")

    factory = load_simulator("fake", install_hint="unused")

    import sockerless_fake_sim

    assert factory is sockerless_fake_sim.Simulator


def test_a_missing_simulator_says_what_to_install() -> None:
    with pytest.raises(PluginError) as caught:
        load_simulator("absent", install_hint="absent.simulate needs sockerless-absent-simulator")

    message = str(caught.value)
    assert message.startswith(
        "absent.simulate needs sockerless-absent-simulator "
        "(nothing named 'absent' in entry point group 'sockerless.simulators'; installed simulators: "
    )


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (
            "import sockerless_missing_dependency\n",
            "failed to load (sockerless_bad_sim:Simulator): "
            "ModuleNotFoundError: No module named 'sockerless_missing_dependency'",
        ),
        ("Simulator = 42\n", "(sockerless_bad_sim:Simulator) is int 42, not a class or factory"),
    ],
    ids=["import-fails", "not-callable"],
)
def test_a_simulator_that_cannot_be_loaded_names_its_distribution_and_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, reason: str
) -> None:
    install_simulator(tmp_path, monkeypatch, name="bad", source=source)

    with pytest.raises(PluginError) as caught:
        load_simulator("bad", install_hint="unused")

    assert str(caught.value) == f"simulator 'bad' from distribution sockerless-bad-simulator 2.3.4 {reason}"
