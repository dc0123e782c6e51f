"""The core sections: the internal-API server, the store and the Docker frontend.

Both servers listen the same way (a Unix socket or TCP, a token, TLS, mutual TLS), so their shared
keys are declared once, in :class:`ListenerConfig`, which :class:`ServerConfig` and
:class:`FrontendConfig` extend; the listener in :mod:`sockerless.http.listener` takes either.
A backend adds its own section under its name (see :func:`config_sections`).
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import attrs
from attrs import frozen

from sockerless.addresses import ListenError, parse_file_mode, parse_tcp
from sockerless.config.errors import ConfigError
from sockerless.config.keys import setting

__all__ = [
    "CORE_SECTIONS",
    "FrontendConfig",
    "ListenerConfig",
    "ServerConfig",
    "StoreConfig",
    "check_backend_url",
    "check_tcp_address",
    "config_sections",
]


def check_tcp_address(value: str) -> None:
    """Refuse what :func:`parse_tcp` cannot listen on, with the forms it accepts."""
    if not value:
        return
    try:
        parse_tcp(value)
    except ListenError:
        raise ValueError(
            f"{value!r} is not an address like host:port, :port (loopback) or [::1]:port"
        ) from None


def check_backend_url(value: str) -> None:
    """Refuse a backend URL the frontend could not connect to: a relative socket, a missing port."""
    if not value:
        return
    parts = urlsplit(value)
    try:
        if parts.scheme == "unix" and not parts.netloc and parts.path.startswith("/"):
            return
        if parts.scheme in ("http", "https") and parts.hostname and parts.port is not None:
            return
    except ValueError:  # a port that is not a number
        pass
    raise ValueError(f"{value!r} is not a backend URL like unix:///path/to/backend.sock or http://host:port")


_TCP_HELP = "host:port to listen on TCP instead of the socket; :port means 127.0.0.1:port."


@frozen
class ListenerConfig:
    """Where and how a server listens; the keys the server and frontend sections share.

    ``section`` is the name the subclass is configured under, so that a problem across keys names
    them as the user writes them (``frontend.tls_cert``).
    """

    section: ClassVar[str] = "listener"

    socket: str = setting("", help="Unix socket to listen on.")
    tcp: str = setting("", help=_TCP_HELP, check=check_tcp_address)
    socket_mode: str = setting(
        "0600", help='Octal permissions of the socket file (quote it in YAML: "0660").', check=parse_file_mode
    )
    socket_group: str = setting("", help="Group that owns the socket file; empty keeps the default group.")
    token: str = setting("", help="Bearer token clients must send on TCP; empty requires none.", secret=True)
    allow_public: bool = setting(
        False,
        help="Accept a non-loopback TCP address without client authentication "
        "(anyone who can reach it is trusted).",
    )
    tls_cert: str = setting(
        "", help="PEM file of the certificate (chain) to serve TLS with on the TCP address; needs tls_key."
    )
    tls_key: str = setting(
        "", help="PEM file of the private key of tls_cert (a path: keys never go in the configuration)."
    )
    tls_client_ca: str = setting(
        "",
        help="PEM file of the CAs whose client certificates are accepted: with it every client must "
        "present one (mutual TLS), which authenticates clients on a non-loopback address as a token does.",
    )

    def __attrs_post_init__(self) -> None:
        problems = self.cross_check()
        if problems:
            raise ConfigError(problems)

    def cross_check(self) -> list[str]:
        """The problems between keys, each naming ``<section>.<key>``; subclasses add their own.

        Whether a non-loopback address is authenticated is checked when the listener binds: that
        needs the address resolved.
        """
        name = self.section
        problems: list[str] = []
        if bool(self.tls_cert) != bool(self.tls_key):
            problems.append(f"{name}.tls_cert and {name}.tls_key go together: set both")
        if self.tls_client_ca and not self.tls_cert:
            problems.append(f"{name}.tls_client_ca needs {name}.tls_cert and {name}.tls_key")
        if self.tls_cert and not self.tcp:
            problems.append(
                f"{name}.tls_cert needs {name}.tcp: TLS is for the TCP listener "
                "(a Unix socket is protected by its file permissions)"
            )
        return problems


_LISTENER_KEYS = {name: index for index, name in enumerate(attrs.fields_dict(ListenerConfig))}


def _listener_keys_first(cls: type, fields: list[attrs.Attribute[Any]]) -> list[attrs.Attribute[Any]]:
    """attrs moves a key a subclass declares again (``socket``, whose default differs) after the
    inherited ones; put it back, so every listener section lists its keys in one order."""
    return sorted(fields, key=lambda field: _LISTENER_KEYS.get(field.name, len(_LISTENER_KEYS)))


@frozen(field_transformer=_listener_keys_first)
class ServerConfig(ListenerConfig):
    """The internal-API server that serves one backend."""

    section: ClassVar[str] = "server"

    socket: str = setting("/var/run/sockerless-backend.sock", help="Unix socket to listen on.")
    shutdown_grace: float = setting(
        10.0,
        help="Seconds a stop waits for the runs and requests in flight; then pending waits are answered, "
        "followed logs end and the rest is cut (a second Ctrl-C or SIGTERM ends the wait at once).",
        minimum=0,
        maximum=600,
    )
    log_level: str = setting(
        "info", help="Lowest level logged.", choices=("debug", "info", "warning", "error")
    )
    log_format: str = setting("json", help="Log line format.", choices=("json", "text"))
    max_body_bytes: int = setting(
        1 << 20, help="Largest JSON request body accepted, in bytes.", minimum=1024, maximum=1 << 30
    )
    max_inflight_requests: int = setting(
        512,
        help="Requests served at once; beyond it the server answers 503 with Retry-After.",
        minimum=1,
        maximum=65536,
    )


@frozen
class StoreConfig:
    """The SQLite state store of the backend."""

    section: ClassVar[str] = "store"

    path: str = setting(
        "",
        help="SQLite file; empty means $XDG_STATE_HOME/sockerless/<backend>.sqlite3 "
        "(~/.local/state/sockerless/<backend>.sqlite3 without XDG_STATE_HOME).",
    )
    synchronous: str = setting(
        "normal",
        help="SQLite synchronous mode: full also survives power loss, at the cost of slower writes.",
        choices=("normal", "full"),
    )
    log_limit_bytes: int = setting(
        64 << 20,
        help="Output kept per container, in bytes; beyond it the rest of the output is dropped, and the "
        "stream and the backend's log say so.",
        minimum=1024,
        maximum=1 << 40,
    )
    removed_grace_seconds: float = setting(
        300.0,
        help="How long a removed container's output and exit status stay readable by its ID "
        "(docker run --rm, the SDK's run(remove=True) read them after the removal).",
        minimum=0,
        maximum=86400,
    )


@frozen(field_transformer=_listener_keys_first)
class FrontendConfig(ListenerConfig):
    """The Docker API frontend that Docker clients talk to."""

    section: ClassVar[str] = "frontend"

    socket: str = setting(
        "",
        help="Unix socket for Docker clients; empty means $XDG_RUNTIME_DIR/sockerless/docker.sock "
        "(/tmp/sockerless-<uid>/docker.sock without XDG_RUNTIME_DIR).",
    )
    backend: str = setting(
        "",
        help="Internal API of the backend, unix:///path, http://host:port or https://host:port; "
        "empty means the server section's TCP address if set, else its socket.",
        check=check_backend_url,
    )
    attach: str = setting(
        "read-only",
        help="Attach on a backend that cannot attach: read-only streams the container's output "
        "and ignores stdin; strict refuses with 501.",
        choices=("read-only", "strict"),
    )
    backend_tls_ca: str = setting(
        "", help="PEM file of the CAs that sign an https:// backend's certificate; empty: the system's CAs."
    )
    backend_tls_cert: str = setting(
        "",
        help="PEM file of the client certificate shown to an https:// backend that requires one "
        "(its server.tls_client_ca).",
    )
    backend_tls_key: str = setting("", help="PEM file of the private key of backend_tls_cert.")

    def cross_check(self) -> list[str]:
        name, problems = self.section, super().cross_check()
        if bool(self.backend_tls_cert) != bool(self.backend_tls_key):
            problems.append(f"{name}.backend_tls_cert and {name}.backend_tls_key go together: set both")
        uses_tls = self.backend_tls_ca or self.backend_tls_cert
        if uses_tls and self.backend and not self.backend.startswith("https://"):
            problems.append(f"{name}.backend_tls_* are for an https:// backend; {name}.backend is not one")
        return problems


#: The sections every process has, in the order they are documented and printed.
CORE_SECTIONS: Mapping[str, type[Any]] = types.MappingProxyType(
    {cls.section: cls for cls in (ServerConfig, StoreConfig, FrontendConfig)}
)


def config_sections(backend_name: str | None, backend_section: type[Any] | None) -> dict[str, type[Any]]:
    """The core sections plus the backend's own, under the backend's name."""
    sections = dict(CORE_SECTIONS)
    if backend_section is not None:
        if not backend_name:
            raise ValueError("a backend section needs the backend's name")
        if backend_name in sections:
            raise ValueError(f"backend name {backend_name!r} clashes with the core section of that name")
        if not attrs.has(backend_section):
            raise TypeError(f"the config section of backend {backend_name!r} must be an attrs class")
        sections[backend_name] = backend_section
    return sections
