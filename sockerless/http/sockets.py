"""Listening sockets for both servers: owner-only Unix sockets and loopback TCP by default.

A TCP address anyone else can reach must authenticate its clients: with a bearer token or with TLS
client certificates (:func:`require_authentication`; :mod:`sockerless.http.tls`), unless the operator
explicitly accepts the risk.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import logging
import os
import socket
import stat

from attrs import frozen

from sockerless.addresses import ListenError, is_loopback, parse_file_mode, parse_tcp

__all__ = [
    "BACKLOG",
    "Bound",
    "ListenError",
    "bind_tcp",
    "bind_unix",
    "is_loopback",
    "parse_file_mode",
    "parse_tcp",
    "remove_socket_file",
    "require_authentication",
]

log = logging.getLogger(__name__)

#: Pending connections a listener holds. aiohttp's default of 128 makes the 129th of a burst of
#: Unix-socket connects fail (ENOTCONN on first write), e.g. hundreds of `docker run` waits at once.
BACKLOG = 1024


@frozen
class Bound:
    """A listening socket and how to name it."""

    sock: socket.socket
    description: str  # "unix:///path" or "tcp://127.0.0.1:2375"
    socket_path: str | None = None


def require_authentication(
    address: str, *, token: str, client_ca: str, allow_public: bool, section: str
) -> None:
    """Refuse a non-loopback TCP ``address`` whose clients nobody authenticates.

    A bearer token or TLS with client certificates (``client_ca``) authenticates them; ``allow_public``
    is the operator saying that anyone who can reach the address is trusted.
    """
    host, _ = parse_tcp(address)
    if is_loopback(host) or token or client_ca or allow_public:
        return
    raise ListenError(
        f"refusing to listen on non-loopback address {host} without client authentication: "
        f"set {section}.token or {section}.tls_cert, {section}.tls_key and {section}.tls_client_ca "
        f"(or {section}.allow_public to accept the risk)"
    )


def bind_tcp(address: str) -> Bound:
    host, port = parse_tcp(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(BACKLOG)
    sock.setblocking(False)
    bound_host, bound_port = sock.getsockname()[:2]
    return Bound(sock=sock, description=f"tcp://{bound_host}:{bound_port}")


def _socket_is_live(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError as exc:
        return exc.errno not in (errno.ECONNREFUSED, errno.ENOENT)
    finally:
        probe.close()
    return True


def _check_directory_is_safe(directory: str) -> None:
    """Whoever may rename or delete entries of the socket's directory can put their own socket in its
    place (and read what clients send, registry credentials included): that must be only us or root,
    or the directory must be sticky like /tmp, where nobody can remove another user's file."""
    info = os.stat(directory)
    if info.st_uid not in (os.getuid(), 0):
        raise ListenError(
            f"the socket directory {directory} belongs to another user (uid {info.st_uid}), who could "
            "replace the socket; choose a directory of your own"
        )
    if info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
        raise ListenError(
            f"the socket directory {directory} is writable by every user and not sticky: anyone could "
            "replace the socket; choose a private directory (or chmod o-w or +t it)"
        )


def bind_unix(path: str, *, mode: int = 0o600, group: str = "") -> Bound:
    """Bind ``path`` with ``mode`` from the first moment (umask), replacing a stale socket file.

    A socket that still answers belongs to a live server and is never replaced.
    """
    path = os.path.abspath(os.path.expanduser(path))
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ListenError(f"cannot create the directory for socket {path}: {exc.strerror}") from None
    _check_directory_is_safe(parent)
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ListenError(f"{path} exists and is not a socket; refusing to replace it")
        if _socket_is_live(path):
            raise ListenError(
                f"another server is already listening on {path}; stop it or choose another socket"
            )
        log.info("removing stale socket file", extra={"fields": {"socket": path}})
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o777 & ~mode)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        hint = (
            "; choose a writable path with the socket setting"
            if exc.errno in (errno.EACCES, errno.EPERM)
            else ""
        )
        raise ListenError(f"cannot create socket {path}: {exc.strerror}{hint}") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, mode)
    if group:
        try:
            os.chown(path, -1, grp.getgrnam(group).gr_gid)
        except (KeyError, PermissionError) as exc:
            sock.close()
            os.unlink(path)
            raise ListenError(f"cannot give socket {path} to group {group!r}: {exc}") from None
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return Bound(sock=sock, description=f"unix://{path}", socket_path=path)


def remove_socket_file(path: str | None) -> None:
    if path:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
