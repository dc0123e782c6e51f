"""The whole configuration of one process, and the defaults that depend on where it runs.

Empty ``store.path``, ``frontend.socket`` and ``frontend.backend`` mean "the usual place"; the
``resolve_*`` functions say which, from the directories the process's environment named when the
settings were loaded (the environment is passed in, never read here).
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from typing import Any

import attrs
from attrs import frozen

from sockerless.addresses import parse_tcp
from sockerless.config.sections import FrontendConfig, ServerConfig, StoreConfig

__all__ = [
    "Settings",
    "default_runtime_dir",
    "default_state_dir",
    "resolve_backend_url",
    "resolve_frontend_socket",
    "resolve_store_path",
]


def _home(environ: Mapping[str, str]) -> str:
    home = environ.get("HOME", "")
    if os.path.isabs(home):
        return home
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:  # a uid without a passwd entry, as in some containers
        return "/"


def default_state_dir(environ: Mapping[str, str]) -> str:
    """``$XDG_STATE_HOME/sockerless``, or ``~/.local/state/sockerless``."""
    base = environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec says relative values are to be ignored
        base = os.path.join(_home(environ), ".local", "state")
    return os.path.join(base, "sockerless")


def default_runtime_dir(environ: Mapping[str, str]) -> str:
    """``$XDG_RUNTIME_DIR/sockerless``, or a per-user folder in ``/tmp``."""
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
    state_dir: str = attrs.Factory(lambda: default_state_dir({}))
    #: ``$XDG_RUNTIME_DIR/sockerless`` or ``/tmp/sockerless-<uid>``: where sockets live by default.
    runtime_dir: str = attrs.Factory(lambda: default_runtime_dir({}))


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
