"""Configuration: one attrs object per process, built once from defaults < YAML file < environment < flags.

Every section is an attrs class whose fields are declared with :func:`setting`, which carries the
help text, the allowed values and whether the value is a secret. Environment variables are
``SOCKERLESS_<SECTION>_<KEY>``; flags are ``--<section>-<key>``; a YAML file has one mapping per section.

The core sections are ``server``, ``store`` and ``frontend``; a backend adds its own section (its
``config_class``) under its name. :func:`load_settings` builds a :class:`Settings` or raises one
:class:`ConfigError` listing every problem. Only the command-line entry point reads ``os.environ``
and passes it in.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import inspect
import math
import os
import pwd
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import yaml
from attrs import frozen

from sockerless.http.sockets import ListenError, parse_tcp

__all__ = [
    "CONFIG_FILE_ENV",
    "CORE_SECTIONS",
    "ConfigError",
    "FrontendConfig",
    "ServerConfig",
    "Settings",
    "StoreConfig",
    "add_config_arguments",
    "config_sections",
    "flags_from_args",
    "load_settings",
    "parse_file_mode",
    "reference_markdown",
    "render_config",
    "resolve_backend_url",
    "resolve_frontend_socket",
    "resolve_store_path",
    "setting",
]

#: The environment variable naming the YAML file when ``--config`` is not given.
CONFIG_FILE_ENV = "SOCKERLESS_CONFIG"
ENV_PREFIX = "SOCKERLESS_"
SECRET_MASK = "***"  # noqa: S105 - how a secret is printed, not a secret

# argparse destinations of generated flags start with this, so flags_from_args finds exactly them.
_DEST_PREFIX = "setting:"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def setting(
    default: Any = attrs.NOTHING,
    *,
    help: str,
    secret: bool = False,
    choices: Sequence[Any] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    required: bool = False,
    factory: Any = None,
) -> Any:
    """Declare a configuration key. ``required`` keys have no default and must be set by some layer."""
    metadata = {
        "help": help,
        "secret": secret,
        "choices": tuple(choices) if choices is not None else None,
        "minimum": minimum,
        "maximum": maximum,
        "required": required,
    }
    if factory is not None:
        return attrs.field(factory=factory, metadata=metadata)
    if required and default is attrs.NOTHING:
        default = None
    return attrs.field(default=default, metadata=metadata)


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` has one line per problem, each naming its key."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


# ---------------------------------------------------------------------------- checks shared by sections


def parse_file_mode(text: str) -> int:
    """``"0600"`` as permission bits; a ValueError names the text when it is not an octal mode."""
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise ValueError(f"{text!r} is not an octal file mode like 0600 or 0660")
    return mode


def _check_tcp(value: str) -> None:
    if not value:
        return
    try:
        parse_tcp(value)
    except ListenError:
        raise ValueError(
            f"{value!r} is not an address like host:port, :port (loopback) or [::1]:port"
        ) from None


def _check_backend_url(value: str) -> None:
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


# ---------------------------------------------------------------------------- TLS settings

_TLS_CERT_HELP = "PEM file of the certificate (chain) to serve TLS with on the TCP address; needs tls_key."
_TLS_KEY_HELP = "PEM file of the private key of tls_cert (a path: keys never go in the configuration)."
_TLS_CLIENT_CA_HELP = (
    "PEM file of the CAs whose client certificates are accepted: with it every client must present one "
    "(mutual TLS), which authenticates clients on a non-loopback address as a token does."
)


def _tls_problems(section: str, tcp: str, cert: str, key: str, client_ca: str) -> list[str]:
    problems: list[str] = []
    if bool(cert) != bool(key):
        problems.append(f"{section}.tls_cert and {section}.tls_key go together: set both")
    if client_ca and not cert:
        problems.append(f"{section}.tls_client_ca needs {section}.tls_cert and {section}.tls_key")
    if cert and not tcp:
        problems.append(
            f"{section}.tls_cert needs {section}.tcp: TLS is for the TCP listener "
            "(a Unix socket is protected by its file permissions)"
        )
    return problems


def _raise_problems(problems: list[str]) -> None:
    if problems:
        raise ValueError("; ".join(problems))


# ---------------------------------------------------------------------------- the core sections


@frozen
class ServerConfig:
    """The internal-API server that serves one backend."""

    socket: str = setting("/var/run/sockerless-backend.sock", help="Unix socket to listen on.")
    tcp: str = setting(
        "",
        help="host:port to listen on TCP instead of the socket; :port means 127.0.0.1:port.",
    )
    socket_mode: str = setting(
        "0600", help='Octal permissions of the socket file (quote it in YAML: "0660").'
    )
    socket_group: str = setting("", help="Group that owns the socket file; empty keeps the default group.")
    shutdown_grace: float = setting(
        10.0, help="Seconds in-flight requests may take to finish at shutdown.", minimum=0, maximum=600
    )
    log_level: str = setting(
        "info", help="Lowest level logged.", choices=("debug", "info", "warning", "error")
    )
    log_format: str = setting("json", help="Log line format.", choices=("json", "text"))
    token: str = setting("", help="Bearer token clients must send on TCP; empty requires none.", secret=True)
    allow_public: bool = setting(
        False,
        help="Accept a non-loopback TCP address without client authentication "
        "(anyone who can reach it is trusted).",
    )
    max_body_bytes: int = setting(
        1 << 20, help="Largest JSON request body accepted, in bytes.", minimum=1024, maximum=1 << 30
    )
    max_inflight_requests: int = setting(
        512,
        help="Requests served at once; beyond it the server answers 503 with Retry-After.",
        minimum=1,
        maximum=65536,
    )
    tls_cert: str = setting("", help=_TLS_CERT_HELP)
    tls_key: str = setting("", help=_TLS_KEY_HELP)
    tls_client_ca: str = setting("", help=_TLS_CLIENT_CA_HELP)

    @socket_mode.validator
    def _socket_mode_is_octal(self, attribute: attrs.Attribute[str], value: str) -> None:
        parse_file_mode(value)

    @tcp.validator
    def _tcp_is_host_port(self, attribute: attrs.Attribute[str], value: str) -> None:
        _check_tcp(value)

    def __attrs_post_init__(self) -> None:
        _raise_problems(_tls_problems("server", self.tcp, self.tls_cert, self.tls_key, self.tls_client_ca))


@frozen
class StoreConfig:
    """The SQLite state store of the backend."""

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


@frozen
class FrontendConfig:
    """The Docker API frontend that Docker clients talk to."""

    socket: str = setting(
        "",
        help="Unix socket for Docker clients; empty means $XDG_RUNTIME_DIR/sockerless/docker.sock "
        "(/tmp/sockerless-<uid>/docker.sock without XDG_RUNTIME_DIR).",
    )
    tcp: str = setting(
        "",
        help="host:port to listen on TCP instead of the socket; :port means 127.0.0.1:port.",
    )
    socket_mode: str = setting(
        "0600", help='Octal permissions of the socket file (quote it in YAML: "0660").'
    )
    socket_group: str = setting("", help="Group that owns the socket file; empty keeps the default group.")
    backend: str = setting(
        "",
        help="Internal API of the backend, unix:///path, http://host:port or https://host:port; "
        "empty means the server section's TCP address if set, else its socket.",
    )
    attach: str = setting(
        "read-only",
        help="Attach on a backend that cannot attach: read-only streams the container's output "
        "and ignores stdin; strict refuses with 501.",
        choices=("read-only", "strict"),
    )
    follow_poll_interval: float = setting(
        0.5, help="Seconds between polls when following logs.", minimum=0.05, maximum=10
    )
    token: str = setting(
        "", help="Bearer token Docker clients must send on TCP; empty requires none.", secret=True
    )
    allow_public: bool = setting(
        False,
        help="Accept a non-loopback TCP address without client authentication "
        "(anyone who can reach it is trusted).",
    )
    tls_cert: str = setting("", help=_TLS_CERT_HELP)
    tls_key: str = setting("", help=_TLS_KEY_HELP)
    tls_client_ca: str = setting("", help=_TLS_CLIENT_CA_HELP)
    backend_tls_ca: str = setting(
        "", help="PEM file of the CAs that sign an https:// backend's certificate; empty: the system's CAs."
    )
    backend_tls_cert: str = setting(
        "",
        help="PEM file of the client certificate shown to an https:// backend that requires one "
        "(its server.tls_client_ca).",
    )
    backend_tls_key: str = setting("", help="PEM file of the private key of backend_tls_cert.")

    @socket_mode.validator
    def _socket_mode_is_octal(self, attribute: attrs.Attribute[str], value: str) -> None:
        parse_file_mode(value)

    @tcp.validator
    def _tcp_is_host_port(self, attribute: attrs.Attribute[str], value: str) -> None:
        _check_tcp(value)

    @backend.validator
    def _backend_is_url(self, attribute: attrs.Attribute[str], value: str) -> None:
        _check_backend_url(value)

    def __attrs_post_init__(self) -> None:
        problems = _tls_problems("frontend", self.tcp, self.tls_cert, self.tls_key, self.tls_client_ca)
        if bool(self.backend_tls_cert) != bool(self.backend_tls_key):
            problems.append("frontend.backend_tls_cert and frontend.backend_tls_key go together: set both")
        uses_tls = self.backend_tls_ca or self.backend_tls_cert
        if uses_tls and self.backend and not self.backend.startswith("https://"):
            problems.append("frontend.backend_tls_* are for an https:// backend; frontend.backend is not one")
        _raise_problems(problems)


#: The sections every process has, in the order they are documented and printed.
CORE_SECTIONS: Mapping[str, type[Any]] = types.MappingProxyType(
    {"server": ServerConfig, "store": StoreConfig, "frontend": FrontendConfig}
)


# ---------------------------------------------------------------------------- default directories


def _home(environ: Mapping[str, str]) -> str:
    home = environ.get("HOME", "")
    if os.path.isabs(home):
        return home
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:  # a uid without a passwd entry, as in some containers
        return "/"


def _state_dir(environ: Mapping[str, str]) -> str:
    base = environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec says relative values are to be ignored
        base = os.path.join(_home(environ), ".local", "state")
    return os.path.join(base, "sockerless")


def _runtime_dir(environ: Mapping[str, str]) -> str:
    base = environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(base):
        return os.path.join(base, "sockerless")
    # Whoever creates it must make it 0700 and check it is ours: /tmp is shared.
    return f"/tmp/sockerless-{os.getuid()}"  # noqa: S108


@frozen
class Settings:
    """The whole configuration of one process."""

    server: ServerConfig = attrs.Factory(ServerConfig)
    store: StoreConfig = attrs.Factory(StoreConfig)
    frontend: FrontendConfig = attrs.Factory(FrontendConfig)
    backend_name: str = ""
    #: The backend's own section (an instance of its ``config_class``), or None when it has none.
    backend: Any = None
    #: ``$XDG_STATE_HOME/sockerless``: where state lives unless ``store.path`` says otherwise.
    state_dir: str = attrs.Factory(lambda: _state_dir({}))
    #: ``$XDG_RUNTIME_DIR/sockerless`` or ``/tmp/sockerless-<uid>``: where sockets live by default.
    runtime_dir: str = attrs.Factory(lambda: _runtime_dir({}))


def resolve_store_path(settings: Settings) -> str:
    """``store.path``, or ``<state_dir>/<backend>.sqlite3`` when it is empty."""
    if settings.store.path:
        return settings.store.path
    return os.path.join(settings.state_dir, f"{settings.backend_name or 'sockerless'}.sqlite3")


def resolve_frontend_socket(settings: Settings) -> str:
    """``frontend.socket``, or ``<runtime_dir>/docker.sock`` when it is empty."""
    return settings.frontend.socket or os.path.join(settings.runtime_dir, "docker.sock")


def resolve_backend_url(settings: Settings) -> str:
    """``frontend.backend``, or the local server's address: its TCP address if set (https with
    ``server.tls_cert``), else its socket."""
    if settings.frontend.backend:
        return settings.frontend.backend
    if settings.server.tcp:
        host, port = parse_tcp(settings.server.tcp)
        scheme = "https" if settings.server.tls_cert else "http"
        return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
    return f"unix://{settings.server.socket}"


# ---------------------------------------------------------------------------- field introspection


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


def _fields(cls: type[Any]) -> tuple[attrs.Attribute[Any], ...]:
    attrs.resolve_types(cls)
    return tuple(a for a in attrs.fields(cls) if a.init)


def _env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section}_{key}".upper().replace("-", "_")


def _flag_name(section: str, key: str) -> str:
    return f"--{section}-{key}".replace("_", "-")


def _unwrap_optional(kind: Any) -> tuple[Any, bool]:
    """``X | None`` as ``(X, True)``; anything else as ``(kind, False)``."""
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        members = [m for m in typing.get_args(kind) if m is not type(None)]
        if len(members) == 1 and len(typing.get_args(kind)) == 2:
            return members[0], True
        raise TypeError(f"unsupported setting type {kind!r}: only X | None unions are supported")
    return kind, False


def _is_sequence(kind: Any) -> bool:
    return typing.get_origin(kind) in (list, tuple)


# ---------------------------------------------------------------------------- raw values to typed ones


class _Invalid(Exception):
    """A value that does not fit its key; the message says what it is and what was expected."""


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value)
    return f"{value!r} ({type(value).__name__})"


def _convert(value: object, kind: Any) -> Any:
    """A YAML value (typed) or an environment/flag value (a string) as ``kind``."""
    if kind is Any or kind is None:  # None: a field without an annotation
        return value
    inner, optional = _unwrap_optional(kind)
    if optional:
        return None if value is None or value == "" else _convert(value, inner)
    if _is_sequence(kind):
        item_kind = typing.get_args(kind)[0] if typing.get_args(kind) else Any
        if value is None:
            items: list[object] = []
        elif isinstance(value, str):
            items = [part.strip() for part in value.split(",") if part.strip()]
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            raise _Invalid(f"expected a list or a comma-separated string, got {_describe(value)}")
        converted = [_convert(item, item_kind) for item in items]
        return converted if typing.get_origin(kind) is list else tuple(converted)
    if kind is bool:
        return _to_bool(value)
    if kind is int:
        return _to_int(value)
    if kind is float:
        return _to_float(value)
    if kind is str:
        if isinstance(value, str):
            return value
        raise _Invalid(f"expected a string, got {_describe(value)}; quote the value in YAML")
    raise TypeError(f"unsupported setting type {kind!r}")


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _Invalid(f"{_describe(value)} is not a boolean (use true/false, yes/no, on/off or 1/0)")


def _to_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            pass
    raise _Invalid(f"{_describe(value)} is not an integer")


def _to_float(value: object) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    if number is None or not math.isfinite(number):
        raise _Invalid(f"{_describe(value)} is not a number")
    return number


def _number_text(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _range_text(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{_number_text(minimum)}-{_number_text(maximum)}"
    if minimum is not None:
        return f"at least {_number_text(minimum)}"
    return f"at most {_number_text(maximum or 0)}"


def _check_limits(value: object, metadata: Mapping[str, Any]) -> None:
    """The ``choices`` and ``minimum``/``maximum`` of :func:`setting`; a list is checked item by item."""
    items = value if isinstance(value, list | tuple) else [value]
    choices = metadata.get("choices")
    minimum, maximum = metadata.get("minimum"), metadata.get("maximum")
    for item in items:
        if item is None:
            continue
        if choices is not None and item not in choices:
            raise _Invalid(f"{item!r} is not one of {', '.join(str(c) for c in choices)}")
        if isinstance(item, bool) or not isinstance(item, int | float):
            continue
        if (minimum is not None and item < minimum) or (maximum is not None and item > maximum):
            raise _Invalid(f"{_number_text(item)} is out of range ({_range_text(minimum, maximum)})")


# ---------------------------------------------------------------------------- the layers


@attrs.define
class _Layers:
    """Values given so far, per section and key, with where each came from; later layers win."""

    sections: Mapping[str, type[Any]]
    fields: dict[str, dict[str, attrs.Attribute[Any]]] = attrs.Factory(dict)
    values: dict[str, dict[str, Any]] = attrs.Factory(dict)
    problems: list[str] = attrs.Factory(list)
    #: Sections with a bad, unknown or missing key: they are not built, their problems are listed.
    broken: set[str] = attrs.Factory(set)

    def __attrs_post_init__(self) -> None:
        for name, cls in self.sections.items():
            self.fields[name] = {a.name: a for a in _fields(cls)}
            self.values[name] = {}

    def unknown_section(self, section: object, source: str) -> None:
        known = ", ".join(self.sections)
        self.problems.append(f"unknown section {section!r} (known: {known}) [{source}]")

    def give(self, section: str, key: str, value: object, source: str) -> None:
        fields = self.fields[section]
        attribute = fields.get(key)
        if attribute is None:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            known = ", ".join(fields) or "none"
            self.problems.append(f"unknown key {section}.{key} (known: {known}){hint} [{source}]")
            self.broken.add(section)
            return
        try:
            converted = _convert(value, attribute.type)
            _check_limits(converted, attribute.metadata)
        except _Invalid as exc:
            self.problems.append(f"{section}.{key}: {exc} [{source}]")
            self.broken.add(section)
            return
        self.values[section][key] = converted

    def read_file(self, path: str, source: str) -> None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            self.problems.append(f"cannot read config file {path}: {exc.strerror or exc} [{source}]")
            return
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            self.problems.append(f"config file {path}: invalid YAML{where}: {problem}")
            return
        if document is None:  # an empty file
            return
        file_source = f"file {path}"
        if not isinstance(document, dict):
            self.problems.append(
                f"config file {path}: expected a mapping of sections ({', '.join(self.sections)}), "
                f"got {_describe(document)}"
            )
            return
        for section, body in document.items():
            if section not in self.sections:
                self.unknown_section(section, file_source)
            elif isinstance(body, dict):
                for key, value in body.items():
                    self.give(section, str(key), value, file_source)
            elif body is not None:  # "server:" with nothing under it is an empty section
                self.problems.append(
                    f"{section}: expected a mapping of keys, got {_describe(body)} [{file_source}]"
                )

    def read_environment(self, environ: Mapping[str, str]) -> None:
        prefixes = sorted(((_env_name(section, ""), section) for section in self.sections), reverse=True)
        for name in sorted(environ):
            # Sorted longest-first among shared beginnings, so "SOCKERLESS_A_B_" wins over "SOCKERLESS_A_".
            for prefix, section in prefixes:
                if name.startswith(prefix) and len(name) > len(prefix):
                    self.give(section, name[len(prefix) :].lower(), environ[name], f"env {name}")
                    break

    def read_flags(self, flags: Mapping[str, object]) -> None:
        for path, value in flags.items():
            section, _, key = path.partition(".")
            if section not in self.sections or not key:
                self.unknown_section(section, f"flag {path}")
            else:
                self.give(section, key, value, f"flag {_flag_name(section, key)}")

    def build(self, section: str) -> Any:
        """The section's instance, or None when it has problems (added to ``problems``)."""
        cls = self.sections[section]
        given = self.values[section]
        for key, attribute in self.fields[section].items():
            if attribute.metadata.get("required") and given.get(key, attribute.default) in (None, "", [], ()):
                self.problems.append(
                    f"{section}.{key} is required: set it in the config file, "
                    f"with {_env_name(section, key)} or with {_flag_name(section, key)}"
                )
                self.broken.add(section)
        if section in self.broken:
            return None
        arguments = {self.fields[section][key].alias or key: value for key, value in given.items()}
        # Validators run one by one below, so that every bad value is reported and not only the first.
        try:
            with attrs.validators.disabled():
                instance = cls(**arguments)
        except (ValueError, TypeError) as exc:  # a cross-field check in __attrs_post_init__
            message = str(exc)  # "lambda.region is required" names its key; anything else gets the section
            self.problems.append(message if message.startswith(f"{section}.") else f"{section}: {message}")
            return None
        for attribute in attrs.fields(cls):
            if attribute.validator is not None:
                try:
                    attribute.validator(instance, attribute, getattr(instance, attribute.name))
                except (ValueError, TypeError) as exc:
                    self.problems.append(f"{section}.{attribute.name}: {exc}")
        return instance


def load_settings(
    *,
    backend_name: str | None = None,
    backend_section: type[Any] | None = None,
    config_file: str | None = None,
    environ: Mapping[str, str],
    flags: Mapping[str, object] | None = None,
) -> Settings:
    """Build the settings from defaults < YAML file < environment < flags, or raise :class:`ConfigError`.

    ``config_file`` (``--config``) falls back to ``$SOCKERLESS_CONFIG``. ``environ`` is the process
    environment; only ``SOCKERLESS_<SECTION>_<KEY>`` variables of known sections are read, and
    ``HOME``, ``XDG_STATE_HOME`` and ``XDG_RUNTIME_DIR`` for the default paths. ``flags`` maps
    ``section.key`` to the value given on the command line (see :func:`flags_from_args`).
    """
    sections = config_sections(backend_name, backend_section)
    layers = _Layers(sections)
    if config_file is not None:
        layers.read_file(config_file, "--config")
    elif environ.get(CONFIG_FILE_ENV):
        layers.read_file(environ[CONFIG_FILE_ENV], f"env {CONFIG_FILE_ENV}")
    layers.read_environment(environ)
    layers.read_flags(flags or {})
    built = {section: layers.build(section) for section in sections}
    if layers.problems:
        raise ConfigError(layers.problems)
    return Settings(
        server=built["server"],
        store=built["store"],
        frontend=built["frontend"],
        backend_name=backend_name or "",
        backend=built.get(backend_name or ""),
        state_dir=_state_dir(environ),
        runtime_dir=_runtime_dir(environ),
    )


# ---------------------------------------------------------------------------- the command line


def _argument_options(section: str, attribute: attrs.Attribute[Any], help_text: str) -> dict[str, Any]:
    kind, _ = _unwrap_optional(attribute.type)
    options: dict[str, Any] = {
        "dest": f"{_DEST_PREFIX}{section}.{attribute.name}",
        "default": argparse.SUPPRESS,  # absent flags stay out of the namespace and out of the flag layer
        "help": help_text.replace("%", "%%"),
    }
    choices = attribute.metadata.get("choices")
    if kind is bool:
        options["action"] = argparse.BooleanOptionalAction
    elif _is_sequence(kind):
        options["action"] = "append"
        options["metavar"] = "A,B"
    else:
        options["metavar"] = "|".join(str(c) for c in choices) if choices else attribute.name.upper()
    return options


def add_config_arguments(
    parser: argparse.ArgumentParser,
    sections: Mapping[str, type[Any]],
    aliases: Mapping[str, str] | None = None,
) -> None:
    """Add ``--config``, ``--print-config`` and a ``--<section>-<key>`` flag for every setting.

    Booleans get ``--x/--no-x``; lists take comma-separated values and may be repeated.
    ``aliases`` (a backend's ``cli_aliases``) maps extra flags such as ``--simulate`` to a
    ``section.key``. Read the values back with :func:`flags_from_args`.
    """
    parser.add_argument(
        "--config",
        dest="config_file",
        metavar="FILE",
        help=f"YAML configuration file (default: ${CONFIG_FILE_ENV} when set).",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="Print the effective configuration as YAML, secrets masked, and exit.",
    )
    by_path: dict[str, tuple[str, attrs.Attribute[Any]]] = {}
    for section, cls in sections.items():
        group = parser.add_argument_group(f"{section} settings", inspect.getdoc(cls))
        for attribute in _fields(cls):
            by_path[f"{section}.{attribute.name}"] = (section, attribute)
            help_text = attribute.metadata.get("help", "")
            if attribute.metadata.get("secret"):
                help_text += " Prefer the environment or the file: command lines are visible to other users."
            help_text += f" [env {_env_name(section, attribute.name)}]"
            group.add_argument(
                _flag_name(section, attribute.name), **_argument_options(section, attribute, help_text)
            )
    for alias, path in (aliases or {}).items():
        if path not in by_path:
            raise ValueError(f"alias {alias} names unknown setting {path} (known: {', '.join(by_path)})")
        section, attribute = by_path[path]
        help_text = f"Same as {_flag_name(section, attribute.name)}."
        parser.add_argument(alias, **_argument_options(section, attribute, help_text))


def flags_from_args(args: argparse.Namespace) -> dict[str, object]:
    """The generated flags that were given, as ``{"section.key": value}`` for :func:`load_settings`."""
    flags: dict[str, object] = {}
    for dest, value in vars(args).items():
        if not dest.startswith(_DEST_PREFIX):
            continue
        if isinstance(value, list):  # repeated flags, each possibly comma-separated
            value = [part.strip() for item in value for part in item.split(",") if part.strip()]
        flags[dest.removeprefix(_DEST_PREFIX)] = value
    return flags


# ---------------------------------------------------------------------------- output


def _section_instances(settings: Settings) -> Iterator[tuple[str, Any]]:
    yield from (("server", settings.server), ("store", settings.store), ("frontend", settings.frontend))
    if settings.backend is not None:
        yield settings.backend_name, settings.backend


def render_config(settings: Settings) -> str:
    """The effective configuration as a YAML file would say it; a secret that is set shows ``***``."""
    document: dict[str, dict[str, Any]] = {}
    for section, instance in _section_instances(settings):
        values: dict[str, Any] = {}
        for attribute in _fields(type(instance)):
            value = getattr(instance, attribute.name)
            if attribute.metadata.get("secret"):
                value = SECRET_MASK if value else ""
            values[attribute.name] = list(value) if isinstance(value, tuple) else value
        document[section] = values
    header = f"# Effective sockerless configuration (backend: {settings.backend_name or 'none'}); "
    header += "secrets are masked.\n"
    footer = (
        "# Resolved defaults:\n"
        f"#   store path: {resolve_store_path(settings)}\n"
        f"#   frontend socket: {resolve_frontend_socket(settings)}\n"
        f"#   frontend backend URL: {resolve_backend_url(settings)}\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False) + footer


def _markdown_value(value: Any) -> str:
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, list | tuple):
        return "`[]`" if not value else ", ".join(f"`{item}`" for item in value)
    if value is None:
        return "(none)"
    if value == "":
        return '`""`'
    return f"`{value}`"


def _default_value(attribute: attrs.Attribute[Any]) -> Any:
    factory = getattr(attribute.default, "factory", None)  # attrs.Factory(...)
    return factory() if callable(factory) else attribute.default


def _allowed_values(attribute: attrs.Attribute[Any]) -> str:
    kind, optional = _unwrap_optional(attribute.type)
    choices = attribute.metadata.get("choices")
    if _is_sequence(kind):
        item_kind = typing.get_args(kind)[0] if typing.get_args(kind) else str
        text = "list of " + (", ".join(f"`{c}`" for c in choices) if choices else _kind_name(item_kind) + "s")
        text += " (comma-separated in env and flags)"
    elif kind is bool:
        text = "`true`, `false`"
    elif choices:
        text = ", ".join(f"`{choice}`" for choice in choices)
    else:
        text = _kind_name(kind)
        minimum, maximum = attribute.metadata.get("minimum"), attribute.metadata.get("maximum")
        if minimum is not None or maximum is not None:
            text += f", {_range_text(minimum, maximum)}"
    return text + (", or empty for none" if optional else "")


def _kind_name(kind: Any) -> str:
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(kind, "any")


def reference_markdown(sections: Mapping[str, type[Any]]) -> str:
    """A Markdown table per section: every key with its default, env var, flag and allowed values."""
    parts: list[str] = []
    for section, cls in sections.items():
        parts.append(f"### `{section}`\n")
        if cls.__doc__:
            parts.append(inspect.cleandoc(cls.__doc__).split("\n\n")[0] + "\n")
        parts.append("| Key | Default | Environment variable | Flag | Allowed values | Description |")
        parts.append("| --- | --- | --- | --- | --- | --- |")
        for attribute in _fields(cls):
            metadata = attribute.metadata
            key = attribute.name
            flag = _flag_name(section, key)
            if _unwrap_optional(attribute.type)[0] is bool:
                flag += f" / --no-{flag[2:]}"
            default = "*required*" if metadata.get("required") else _markdown_value(_default_value(attribute))
            description = metadata.get("help", "").replace("<", "\\<")  # <backend> is not an HTML tag
            if metadata.get("secret"):
                description += f" Secret: printed as `{SECRET_MASK}`."
            cells = [
                f"`{key}`",
                default,
                f"`{_env_name(section, key)}`",
                f"`{flag}`",
                _allowed_values(attribute),
                description,
            ]
            parts.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        parts.append("")
    return "\n".join(parts)
