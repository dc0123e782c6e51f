"""The ``sockerless`` command: list backends, serve one, run the Docker frontend, or bring both up.

This is the only module that reads ``os.environ``; everything below gets its settings passed in.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs

from sockerless import __version__
from sockerless.api.server import InternalAPIServer
from sockerless.backend import Backend, BackendRuntime
from sockerless.config import (
    ConfigError,
    ServerConfig,
    Settings,
    add_config_arguments,
    config_sections,
    flags_from_args,
    load_settings,
    render_config,
    resolve_backend_url,
    resolve_frontend_socket,
    resolve_store_path,
)
from sockerless.errors import SockerlessError
from sockerless.http.sockets import ListenError
from sockerless.http.tls import TLSError
from sockerless.observability import configure_logging, flush_logs
from sockerless.plugins import PluginError, available_backends, load_backend

__all__ = ["instance_id_for", "main", "run_until_signalled", "serve_main"]

_USAGE = """\
sockerless COMMAND [options]

commands:
  up --backend NAME [--simulate] [settings]   the backend and the Docker frontend in one process
  serve NAME [settings]                       serve a backend's internal API
  frontend [settings]                         the Docker API frontend for a running backend
  backends                                    list the installed backend plugins
  version                                     print the version

Run 'sockerless COMMAND --help' for the settings of a command.
"""


def instance_id_for(store_path: str) -> str:
    """Stable per host and store, so functions created by this installation can be told apart."""
    return hashlib.sha256(f"{socket.gethostname()}:{os.path.abspath(store_path)}".encode()).hexdigest()[:12]


def _load(
    prog: str,
    backend_name: str | None,
    argv: Sequence[str],
    extra: list[tuple[Sequence[str], dict[str, Any]]],
) -> tuple[argparse.Namespace, Settings, type[Backend] | None]:
    backend_cls = load_backend(backend_name) if backend_name else None
    section = getattr(backend_cls, "config_class", None)
    parser = argparse.ArgumentParser(prog=prog)
    for names, options in extra:
        parser.add_argument(*names, **options)
    add_config_arguments(
        parser, config_sections(backend_name, section), getattr(backend_cls, "cli_aliases", None)
    )
    args = parser.parse_args(list(argv))
    settings = load_settings(
        backend_name=backend_name,
        backend_section=section,
        config_file=args.config_file,
        environ=os.environ,
        flags=flags_from_args(args),
    )
    return args, settings, backend_cls


def _server(backend: Backend, config: ServerConfig, socket_path: str = "") -> InternalAPIServer:
    return InternalAPIServer(backend, config, socket_path=socket_path)


def _backend(backend_cls: type[Backend], settings: Settings) -> Backend:
    store_path = resolve_store_path(settings)
    runtime = BackendRuntime(
        state_path=store_path,
        instance_id=instance_id_for(store_path),
        store=settings.store,
    )
    return backend_cls(settings.backend, runtime)  # type: ignore[call-arg]


#: In ``up``, the frontend's grace period beyond the backend's: time for the answers the backend
#: gives when it releases its clients to reach them through the frontend.
_RELEASE_SECONDS = 2.0


def _frontend(settings: Settings, backend_url: str, shutdown_grace: float = 10.0) -> Any:
    from sockerless.frontend import DockerFrontend

    return DockerFrontend(
        settings.frontend,
        socket_path=resolve_frontend_socket(settings),
        backend_url=backend_url,
        backend_token=settings.server.token,
        shutdown_grace=shutdown_grace,
    )


async def run_until_signalled(
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
    hurry: Callable[[], None] | None = None,
) -> None:
    """Start, wait for SIGTERM or SIGINT, stop. A second signal while stopping calls ``hurry``
    (stop waiting for what is in flight). Used by every command-line entry point."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def again() -> None:
        print("sockerless: stopping now", file=sys.stderr, flush=True)
        if hurry is not None:
            hurry()

    def first() -> None:
        stopping.set()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, again)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, first)
    try:
        await start()
        try:
            await stopping.wait()
        finally:
            await stop()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        flush_logs()


def _announce_stop(server: InternalAPIServer) -> None:
    """What a stop waits for, before it waits: the runs and requests in flight, and for how long."""
    runs, requests = server.in_flight()
    if not (runs or requests):
        return
    what = [
        f"{count} {noun}{'s' if count > 1 else ''}"
        for count, noun in ((runs, "run"), (requests, "request"))
        if count
    ]
    print(
        f"sockerless: stopping: waiting at most {server.grace:g} s (server.shutdown_grace) for "
        f"{' and '.join(what)} in flight to end (waits and followed logs are released then); "
        "press Ctrl-C again to stop now",
        file=sys.stderr,
        flush=True,
    )


def serve_main(backend_name: str, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Serve one backend's internal API until SIGTERM/SIGINT. Plugins' console scripts call this."""
    return _guarded(lambda: _serve(backend_name, _argv(argv), prog))


def _serve(backend_name: str, argv: Sequence[str], prog: str | None) -> int:
    args, settings, backend_cls = _load(
        prog or f"sockerless serve {backend_name}", backend_name, _argv(argv), []
    )
    if args.print_config:
        print(render_config(settings))
        return 0
    assert backend_cls is not None
    configure_logging(settings.server.log_level, settings.server.log_format)
    server = _server(_backend(backend_cls, settings), settings.server)

    async def stop() -> None:
        _announce_stop(server)
        await server.stop()

    asyncio.run(run_until_signalled(server.start, stop, server.hurry))
    return 0


def frontend_main(argv: Sequence[str]) -> int:
    args, settings, _ = _load("sockerless frontend", None, argv, [])
    if args.print_config:
        print(render_config(settings))
        return 0
    configure_logging(settings.server.log_level, settings.server.log_format)
    frontend = _frontend(settings, resolve_backend_url(settings))
    asyncio.run(run_until_signalled(frontend.start, frontend.stop))
    return 0


def up_main(argv: Sequence[str]) -> int:
    """The backend on a private socket and the frontend on the Docker socket, in one process."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--backend", default="lambda")
    known, _ = pre.parse_known_args(list(argv))
    backend_option = (
        ["--backend"],
        {"default": "lambda", "help": "Backend plugin to run (default: lambda)."},
    )
    args, settings, backend_cls = _load("sockerless up", known.backend, argv, [backend_option])
    backend_socket = settings.server.socket
    if backend_socket == ServerConfig().socket and not settings.server.tcp:
        backend_socket = os.path.join(settings.runtime_dir, "backend.sock")  # no root needed
    if args.print_config:
        print(render_config(_as_up_uses(settings, backend_socket)))
        return 0
    assert backend_cls is not None
    configure_logging(settings.server.log_level, settings.server.log_format)
    server = _server(_backend(backend_cls, settings), settings.server, backend_socket)

    async def run() -> None:
        frontend: Any = None

        async def start() -> None:
            nonlocal frontend
            await server.start()
            backend_url = settings.frontend.backend or server.url
            frontend = _frontend(settings, backend_url, settings.server.shutdown_grace + _RELEASE_SECONDS)
            await frontend.start()
            _announce(settings, frontend.address, backend_cls)

        async def stop() -> None:
            _announce_stop(server)
            # Both stop accepting; the backend's runs get the grace period, then its clients are
            # released (waits answered, follows ended), which ends the frontend's requests cleanly.
            if frontend is not None:
                await frontend.stop_accepting()
            await server.settle()
            if frontend is not None:
                await frontend.stop()
            await server.stop()
            print("sockerless: stopped", file=sys.stderr)

        def hurry() -> None:
            server.hurry()
            if frontend is not None:  # time for the answers of the release to pass through
                frontend.hurry(_RELEASE_SECONDS)

        await run_until_signalled(start, stop, hurry)

    asyncio.run(run())
    return 0


def _as_up_uses(settings: Settings, backend_socket: str) -> Settings:
    """The settings with the backend socket ``up`` really listens on (not the ``serve`` default), so
    that ``--print-config`` and the frontend's backend URL it resolves show what ``up`` uses."""
    return attrs.evolve(settings, server=attrs.evolve(settings.server, socket=backend_socket))


def _announce(settings: Settings, address: str, backend_cls: type[Backend]) -> None:
    simulated = bool(getattr(settings.backend, "simulate", False))
    lines = [
        f"sockerless {__version__} is up: backend {backend_cls.name}"
        + (
            " on the local simulator (commands run on this machine; images whose registry is unreachable"
            " are used as they are)"
            if simulated
            else ""
        ),
        "",
        "Point Docker clients at it:",
        f"  export DOCKER_HOST={address}",
        "  docker run --rm alpine sh -c 'echo hello from lambda; exit 3'; echo $?",
        "",
        "Press Ctrl-C to stop.",
    ]
    print("\n".join(lines), flush=True)


def backends_main() -> int:
    found = available_backends()
    if not found:
        print("no backend plugins are installed (try: pip install sockerless-backend-lambda)")
        return 1
    for name, entry_point in sorted(found.items()):
        try:
            capabilities = attrs.asdict(load_backend(name).capabilities)
            detail = "supports: " + ", ".join(k for k, v in capabilities.items() if v is True)
        except PluginError as exc:
            detail = f"broken: {exc}"
        print(f"{name}\t{entry_point.value}\t{detail}")
    return 0


def _argv(argv: Sequence[str] | None) -> list[str]:
    return list(sys.argv[1:] if argv is None else argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _argv(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_USAGE, end="")
        return 0 if args else 2
    return _guarded(lambda: _dispatch(args[0], args[1:]))


def _guarded(run: Callable[[], int]) -> int:
    """Turn the errors a user can fix into one clear line and an exit code, never a traceback."""
    try:
        return run()
    except ConfigError as exc:
        print(f"sockerless: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except (PluginError, TLSError, ListenError) as exc:
        print(f"sockerless: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, ListenError) else 2
    except SockerlessError as exc:  # a backend that cannot start (its cloud refused, say)
        print(f"sockerless: cannot start: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(command: str, rest: list[str]) -> int:
    if command == "up":
        return up_main(rest)
    if command == "serve":
        if not rest or rest[0].startswith("-"):
            print("sockerless serve: name a backend (see 'sockerless backends')", file=sys.stderr)
            return 2
        return _serve(rest[0], rest[1:], None)
    if command == "frontend":
        return frontend_main(rest)
    if command == "backends":
        return backends_main()
    if command in ("version", "--version"):
        print(f"sockerless {__version__}")
        return 0
    print(f"sockerless: unknown command {command!r}\n\n{_USAGE}", file=sys.stderr, end="")
    return 2


if __name__ == "__main__":
    sys.exit(main())
