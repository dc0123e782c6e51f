"""The ``sockerless`` command: a plugin found by name and served, config errors, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from sockerless.api.server import InternalAPIServer
from sockerless.cli import main
from sockerless.config import ServerConfig
from sockerless.plugins import load_backend
from tests.fixtures.demo_plugin import install_demo_plugin


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() configures the root logger on the captured stderr; later tests must not write there."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def demo_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    install_demo_plugin(tmp_path, monkeypatch)
    return tmp_path / "site-packages"


async def test_a_plugin_defined_in_the_tests_is_loaded_by_name_and_served(
    demo_site: Path, tmp_path: Path
) -> None:
    from sockerless.backend import BackendRuntime

    backend_cls = load_backend("demo")
    config = backend_cls.config_class(greeting="hi from the test")  # type: ignore[attr-defined]
    backend = backend_cls(config, BackendRuntime(state_path=str(tmp_path / "s.db"), instance_id="t1"))  # type: ignore[call-arg]
    server = InternalAPIServer(backend, ServerConfig(socket=str(tmp_path / "demo.sock")))
    await server.start()
    try:
        connector = aiohttp.UnixConnector(path=str(tmp_path / "demo.sock"))
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get("http://x/internal/v1/info") as response:
                assert response.status == 200
                assert (await response.json())["Name"] == "hi from the test"
            async with session.get("http://x/internal/v1/capabilities") as response:
                assert (await response.json())["backend"] == "demo"
    finally:
        await server.stop()


def test_print_config_masks_secrets(demo_site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["serve", "demo", "--server-token", "hunter2", "--greeting", "yo", "--print-config"])
    out = capsys.readouterr().out
    assert code == 0
    assert "hunter2" not in out
    assert "***" in out
    assert "greeting: yo" in out


def test_configuration_error_is_one_clear_message_and_exit_2(
    demo_site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve", "demo", "--server-log-level", "loud"])
    err = capsys.readouterr().err
    assert code == 2
    assert "server.log_level" in err
    assert "Traceback" not in err


def test_unknown_backend_lists_the_installed_ones(
    demo_site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "nope"]) == 2
    assert "demo" in capsys.readouterr().err


def test_backends_lists_installed_plugins(demo_site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends"]) == 0
    assert "demo" in capsys.readouterr().out


async def test_serve_runs_until_sigterm_and_exits_0(demo_site: Path, tmp_path: Path) -> None:
    sock = tmp_path / "run" / "backend.sock"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(demo_site), os.getcwd()]),
        "SOCKERLESS_SERVER_SOCKET": str(sock),
        "SOCKERLESS_STORE_PATH": str(tmp_path / "state.db"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sockerless.cli", "serve", "demo", env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        assert process.stderr is not None
        while not sock.exists():  # the log line "serving" comes once the socket is bound
            line = await asyncio.wait_for(process.stderr.readline(), 30)
            assert line, "the server exited before listening"
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        connector = aiohttp.UnixConnector(path=str(sock))
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.get("http://x/internal/v1/version") as response,
        ):
            assert response.status == 200
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
        assert not sock.exists()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_serve_refuses_a_public_address_without_token(
    demo_site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "demo", "--server-tcp", "0.0.0.0:0", "--store-path", ":memory:"]) == 1
    assert "non-loopback" in capsys.readouterr().err


def test_up_print_config_shows_the_addresses_up_uses(
    demo_site: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # up serves the backend on <runtime dir>/backend.sock, not on server.socket's default for serve.
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert main(["up", "--backend", "demo", "--print-config"]) == 0
    out = capsys.readouterr().out
    runtime = os.path.join(str(tmp_path), "sockerless")
    assert f"  socket: {runtime}/backend.sock\n" in out
    assert f"frontend backend URL: unix://{runtime}/backend.sock\n" in out
    assert f"frontend socket: {runtime}/docker.sock\n" in out
    assert ServerConfig().socket not in out
