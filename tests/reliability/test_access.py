"""Who may talk to sockerless: owner-only Unix sockets (or a chosen group), loopback TCP by default, and
a TCP address others can reach only with client authentication: a bearer token (compared in constant
time) or TLS client certificates. Both the internal-API server and the Docker frontend (one listener and
one token middleware, ``sockerless.http``, serve both), each given its configuration section whole, with
certificates made for the test (``tests/frontend/pki.py``), and the real docker CLI over mutual TLS.
"""

from __future__ import annotations

import asyncio
import grp
import hmac
import logging
import os
import shutil
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sockerless import cli
from sockerless.api.server import InternalAPIServer
from sockerless.config import ConfigError, FrontendConfig, ServerConfig, load_settings
from sockerless.frontend import DockerFrontend
from sockerless.http import sockets
from sockerless.http.sockets import ListenError
from sockerless.http.tls import TLSError
from sockerless.observability import flush_logs
from tests.frontend.local_backend import LocalBackend
from tests.frontend.pki import Pki, make_pki

API = "/internal/v1"
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


# ---------------------------------------------------------------------------- certificates


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def mutual_tls(pki: Pki) -> dict[str, str]:
    """A listener's settings for TLS that asks for a client certificate signed by the CA."""
    return {"tls_cert": pki.server_cert, "tls_key": pki.server_key, "tls_client_ca": pki.ca}


def _client_tls(pki: Pki, cert: str = "", key: str = "", ca: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca or pki.ca)
    if cert:
        context.load_cert_chain(cert, key)
    return context


def backend_server(socket_path: str = "", **settings: Any) -> InternalAPIServer:
    """The internal-API server on a LocalBackend, its ``server`` section made of ``settings``."""
    return InternalAPIServer(LocalBackend(), ServerConfig(**settings), socket_path=socket_path)


def docker_frontend(
    backend_url: str,
    socket_path: str = "",
    *,
    backend_wait: float = 30.0,
    backend_token: str = "",
    **settings: Any,
) -> DockerFrontend:
    """The Docker frontend, its ``frontend`` section made of ``settings``."""
    return DockerFrontend(
        FrontendConfig(**settings),
        socket_path=socket_path,
        backend_url=backend_url,
        backend_token=backend_token,
        backend_wait=backend_wait,
    )


# ---------------------------------------------------------------------------- fixtures


async def _status(url: str, *, ssl_context: ssl.SSLContext | bool = True, **options: Any) -> int:
    async with aiohttp.ClientSession() as session, session.get(url, ssl=ssl_context, **options) as response:
        return response.status


# ---------------------------------------------------------------------------- Unix sockets


def _own_group() -> tuple[int, str]:
    """A group the current user belongs to, other than its primary group when there is one (root, who
    may give a file to any group, takes the first other group there is), so that the change shows."""
    groups = [gid for gid in os.getgroups() if gid != os.getgid()]
    if not groups and os.getuid() == 0:
        groups = [group.gr_gid for group in grp.getgrall() if group.gr_gid != os.getgid()][:1]
    gid = groups[-1] if groups else os.getgid()
    return gid, grp.getgrgid(gid).gr_name


async def test_unix_sockets_are_owner_only_by_default(short_dir: Path) -> None:
    server = backend_server(str(short_dir / "run" / "backend.sock"))
    await server.start()
    frontend = docker_frontend(server.url, str(short_dir / "run" / "docker.sock"))
    await frontend.start()
    try:
        for name in ("backend.sock", "docker.sock"):
            assert stat.S_IMODE(os.stat(short_dir / "run" / name).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(short_dir / "run").st_mode) == 0o700  # created owner-only
    finally:
        await frontend.stop()
        await server.stop()


async def test_a_socket_group_opens_the_sockets_to_that_group(short_dir: Path) -> None:
    gid, group = _own_group()
    settings = load_settings(
        environ={},
        flags={
            "server.socket": str(short_dir / "backend.sock"),
            "server.socket_mode": "0660",
            "server.socket_group": group,
            "frontend.socket": str(short_dir / "docker.sock"),
            "frontend.socket_mode": "0660",
            "frontend.socket_group": group,
        },
    )
    server = cli._server(LocalBackend(), settings.server)
    await server.start()
    frontend = cli._frontend(settings, server.url)
    await frontend.start()
    try:
        for name in ("backend.sock", "docker.sock"):
            info = os.stat(short_dir / name)
            assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o660, gid), name
    finally:
        await frontend.stop()
        await server.stop()


async def test_an_unknown_socket_group_is_refused(short_dir: Path) -> None:
    server = backend_server(str(short_dir / "backend.sock"), socket_group="no-such-group-here")
    with pytest.raises(ListenError, match="no-such-group-here"):
        await server.start()
    assert not (short_dir / "backend.sock").exists()


async def test_a_socket_directory_others_can_write_is_refused(short_dir: Path) -> None:
    shared = short_dir / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone could replace the socket here
    with pytest.raises(ListenError, match="writable by every user"):
        await backend_server(str(shared / "backend.sock")).start()
    shared.chmod(0o1777)  # sticky, like /tmp: nobody can remove another user's file
    server = backend_server(str(shared / "backend.sock"))
    await server.start()
    await server.stop()


@pytest.mark.skipif(os.getuid() != 0, reason="giving a directory to another user needs root")
async def test_a_socket_directory_of_another_user_is_refused(short_dir: Path) -> None:
    theirs = short_dir / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, 65534, -1)  # nobody's, as a /tmp/sockerless-<uid> made first by someone else
    frontend = docker_frontend("unix:///nowhere", str(theirs / "docker.sock"))
    with pytest.raises(ListenError, match="belongs to another user"):
        await frontend.start()


# ---------------------------------------------------------------------------- TCP: loopback, or authenticated


async def test_tcp_without_a_host_listens_on_loopback() -> None:
    server = backend_server(tcp=":0")
    await server.start()
    try:
        assert server.address.startswith("tcp://127.0.0.1:")
    finally:
        await server.stop()


@pytest.mark.parametrize("section", ["server", "frontend"])
@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::]:0", "192.0.2.1:2375", "example.com:2375"])
async def test_a_public_address_without_client_authentication_is_refused(
    section: str, address: str, pki: Pki
) -> None:
    # TLS alone (no client CA) proves the server to clients, not clients to the server: still refused.
    options = {"tcp": address, "tls_cert": pki.server_cert, "tls_key": pki.server_key}
    if section == "server":
        with pytest.raises(ListenError, match="non-loopback"):
            await backend_server(**options).start()
    else:
        with pytest.raises(ListenError, match="non-loopback"):
            await docker_frontend("unix:///nowhere", **options).start()


@pytest.fixture
def root_logger_restored() -> Iterator[None]:
    """cli.main() points the root logger at a queue whose writer thread writes to the captured stderr;
    later tests must not write there, and the thread must not outlive the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    flush_logs()  # the entry points do it when they stop; whatever happened, the thread ends here
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("root_logger_restored")
@pytest.mark.parametrize("section", ["server", "frontend"])
def test_the_commands_refuse_a_public_address_without_client_authentication(
    section: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = [f"--{section}-tcp", "0.0.0.0:0", "--store-path", str(tmp_path / "state.sqlite3")]
    argv = (
        ["up", "--backend", "lambda", "--simulate", *flags] if section == "server" else ["frontend", *flags]
    )
    assert cli.main(argv) == 1
    assert "non-loopback" in capsys.readouterr().err


@pytest.mark.parametrize("section", ["server", "frontend"])
@pytest.mark.parametrize(
    "authentication", ["token", "mutual TLS", "allow_public"], ids=["token", "mtls", "allow_public"]
)
async def test_client_authentication_allows_a_public_address(
    section: str, authentication: str, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bind loopback in the end: tests never listen on a public address.
    asked: list[str] = []

    bind_tcp = sockets.bind_tcp

    def bind_loopback(address: str) -> sockets.Bound:
        asked.append(address)
        return bind_tcp("127.0.0.1:0")

    monkeypatch.setattr("sockerless.http.listener.bind_tcp", bind_loopback)  # where both servers bind
    options: dict[str, Any] = {"tcp": "0.0.0.0:2375"}
    if authentication == "token":
        options["token"] = "s3cret-token"
    elif authentication == "mutual TLS":
        options.update(mutual_tls(pki))
    else:
        options["allow_public"] = True
    if section == "server":
        server = backend_server(**options)
        await server.start()
        await server.stop()
    else:
        backend = backend_server(tcp="127.0.0.1:0")
        await backend.start()
        try:
            frontend = docker_frontend(backend.url, **options)
            await frontend.start()
            await frontend.stop()
        finally:
            await backend.stop()
    assert asked[-1:] == ["0.0.0.0:2375"]  # (the frontend's backend bound 127.0.0.1:0 first)


# ---------------------------------------------------------------------------- bearer tokens


async def test_tokens_are_compared_in_constant_time_on_every_route(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    constant_time = hmac.compare_digest

    def recording_compare(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return constant_time(a, b)

    # Both servers check tokens with the toolkit's one middleware.
    monkeypatch.setattr("sockerless.http.middlewares.hmac.compare_digest", recording_compare)
    backend = backend_server(tcp="127.0.0.1:0", token="backend-t0ken")
    await backend.start()
    frontend = docker_frontend(
        backend.url, tcp="127.0.0.1:0", token="frontend-t0ken", backend_token="backend-t0ken"
    )
    await frontend.start()
    try:
        base = backend.url
        front = frontend.address.replace("tcp://", "http://")
        cases = [
            (f"{base}{API}/capabilities", "backend-t0ken"),
            (f"{base}{API}/containers/nope/wait", "backend-t0ken"),
            (f"{base}/no/such/route", "backend-t0ken"),
            (f"{front}/_ping", "frontend-t0ken"),
            (f"{front}/v1.44/containers/json", "frontend-t0ken"),
            (f"{front}/no/such/route", "frontend-t0ken"),
        ]
        for url, token in cases:
            for wrong in ("", "Bearer", f"Bearer {token[:-1]}", f"Bearer {token}x", f"bearer {token}", token):
                headers = {"Authorization": wrong} if wrong else {}
                assert await _status(url, headers=headers) == 401, (url, wrong)
            assert await _status(url, headers={"Authorization": f"Bearer {token}"}) != 401, url
        assert len(compared) >= len(cases) * 7  # every check went through hmac.compare_digest
        # Through the frontend, with the backend's own token: the chain works end to end.
        headers = {"Authorization": "Bearer frontend-t0ken"}
        assert await _status(f"{front}/v1.44/containers/json", headers=headers) == 200
    finally:
        await frontend.stop()
        await backend.stop()


# ---------------------------------------------------------------------------- TLS


async def test_mutual_tls_on_the_internal_api(pki: Pki) -> None:
    server = backend_server(tcp="127.0.0.1:0", **mutual_tls(pki))
    await server.start()
    try:
        url = server.url + f"{API}/capabilities"
        assert url.startswith("https://127.0.0.1:")
        assert await _status(url, ssl_context=_client_tls(pki, pki.client_cert, pki.client_key)) == 200
        refused = [
            _client_tls(pki),  # no client certificate
            _client_tls(pki, pki.stranger_cert, pki.stranger_key),  # signed by another CA
        ]
        for context in refused:
            with pytest.raises(aiohttp.ClientError):
                await _status(url, ssl_context=context)
        with pytest.raises(aiohttp.ClientError):  # a client that does not trust our CA
            await _status(url, ssl_context=ssl.create_default_context())
        with pytest.raises(aiohttp.ClientError):  # plain HTTP on the TLS port
            await _status(url.replace("https://", "http://"))
    finally:
        await server.stop()


async def test_tls_without_a_client_ca_serves_any_client(pki: Pki) -> None:
    server = backend_server(tcp="127.0.0.1:0", tls_cert=pki.server_cert, tls_key=pki.server_key, token="t")
    await server.start()
    try:
        url = server.url + f"{API}/capabilities"
        assert await _status(url, ssl_context=_client_tls(pki), headers={"Authorization": "Bearer t"}) == 200
        assert await _status(url, ssl_context=_client_tls(pki)) == 401  # the token still applies
    finally:
        await server.stop()


async def test_the_docker_cli_over_mutual_tls_through_to_a_mutual_tls_backend(
    pki: Pki, short_dir: Path
) -> None:
    backend = backend_server(tcp="127.0.0.1:0", **mutual_tls(pki))
    await backend.start()
    frontend = docker_frontend(
        backend.url,
        tcp="127.0.0.1:0",
        **mutual_tls(pki),
        backend_tls_ca=pki.ca,
        backend_tls_cert=pki.client_cert,
        backend_tls_key=pki.client_key,
    )
    await frontend.start()
    certs = short_dir / "certs"
    certs.mkdir()
    for source, target in ((pki.ca, "ca.pem"), (pki.client_cert, "cert.pem"), (pki.client_key, "key.pem")):
        shutil.copy(source, certs / target)
    (short_dir / "config").mkdir()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(short_dir),
        "DOCKER_CONFIG": str(short_dir / "config"),
        "DOCKER_HOST": frontend.address,
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CERT_PATH": str(certs),
    }

    async def docker(*args: str, **extra: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            DOCKER,
            *args,
            env={**env, **extra},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, out.decode()

    try:
        code, out = await docker("version", "--format", "{{.Server.Version}}")
        assert code == 0, out
        code, out = await docker("run", "--rm", "alpine", "sh", "-c", "echo over mutual tls; exit 3")
        assert code == 3 and "over mutual tls\n" in out, out
        # Without a client certificate of our CA the CLI gets nowhere.
        stranger = short_dir / "stranger"
        stranger.mkdir()
        shutil.copy(pki.ca, stranger / "ca.pem")
        shutil.copy(pki.stranger_cert, stranger / "cert.pem")
        shutil.copy(pki.stranger_key, stranger / "key.pem")
        code, out = await docker("version", DOCKER_CERT_PATH=str(stranger))
        assert code != 0 and "Server:" not in out.split("Client:")[-1].split("\n\n")[-1]
    finally:
        await frontend.stop()
        await backend.stop()


async def test_a_frontend_without_the_backends_client_certificate_says_why(pki: Pki) -> None:
    backend = backend_server(tcp="127.0.0.1:0", **mutual_tls(pki))
    await backend.start()
    try:
        untrusting = docker_frontend(backend.url, tcp="127.0.0.1:0", backend_wait=2)
        with pytest.raises(Exception, match="TLS with the sockerless backend"):
            await untrusting.start()
    finally:
        await backend.stop()


def test_tls_settings_are_checked_together(pki: Pki) -> None:
    cases = {
        "server.tls_cert and server.tls_key go together": {
            "server.tcp": ":0",
            "server.tls_cert": pki.server_cert,
        },
        "server.tls_client_ca needs server.tls_cert": {"server.tcp": ":0", "server.tls_client_ca": pki.ca},
        "server.tls_cert needs server.tcp": {
            "server.tls_cert": pki.server_cert,
            "server.tls_key": pki.server_key,
        },
        "frontend.backend_tls_cert and frontend.backend_tls_key go together": {
            "frontend.backend_tls_cert": pki.client_cert
        },
        "frontend.backend_tls_* are for an https:// backend": {
            "frontend.backend": "http://127.0.0.1:9",
            "frontend.backend_tls_ca": pki.ca,
        },
    }
    for problem, flags in cases.items():
        with pytest.raises(ConfigError, match=problem.replace("*", r"\*")):
            load_settings(environ={}, flags=flags)


async def test_a_certificate_that_cannot_be_read_is_one_clear_error(pki: Pki, tmp_path: Path) -> None:
    server = backend_server(tcp="127.0.0.1:0", tls_cert=str(tmp_path / "missing.pem"), tls_key=pki.server_key)
    with pytest.raises(TLSError, match=r"missing\.pem"):
        await server.start()
    mismatched = backend_server(tcp="127.0.0.1:0", tls_cert=pki.server_cert, tls_key=pki.client_key)
    with pytest.raises(TLSError, match="cannot use the TLS certificate"):
        await mismatched.start()


async def test_a_client_that_never_finishes_the_handshake_is_dropped(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sockerless.http.tls.HANDSHAKE_TIMEOUT", 0.3)
    server = backend_server(tcp="127.0.0.1:0", tls_cert=pki.server_cert, tls_key=pki.server_key, token="t")
    await server.start()
    try:
        host, port = server.address.removeprefix("tcp://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        began = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed on us, silent as we were
        assert asyncio.get_running_loop().time() - began < 3
        writer.close()
    finally:
        await server.stop()
