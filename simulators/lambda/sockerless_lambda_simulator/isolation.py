"""Starting a command inside an image's root filesystem, as Lambda's environment holds it: the root
read-only, the environment's own directory writable at ``/tmp``, ``/dev`` and ``/proc`` there, the host's
network (the Runtime API listens on 127.0.0.1).

util-linux's ``unshare`` is the launcher: a new mount namespace (as root; a user namespace mapping this
user to root otherwise), where the host's ``sh`` makes the mounts and then execs ``unshare --root --wd``,
which chroots and execs the command. Each step execs the next, so the process the simulator started (and
signals: SIGSTOP to freeze, SIGKILL at a timeout) is the command itself. The mounts die with the
namespace when its last process exits.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
from enum import StrEnum
from pathlib import Path

from attrs import frozen

from .rootfs import resolve_inside

__all__ = ["DEFAULT_PATH", "Isolation", "IsolationProbe", "find_executable", "rooted_argv"]

#: What Docker sets when an image's config has no PATH.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PROBE_SECONDS = 10.0


class Isolation(StrEnum):
    MOUNT_NAMESPACE = "mount-namespace"
    """As root: a mount namespace, then chroot."""
    USER_NAMESPACE = "user-namespace"
    """Without root: a user namespace mapping this user to root, a mount namespace, then chroot."""


@frozen
class _Tools:
    unshare: str
    mount: str
    sh: str


def _tools() -> _Tools | str:
    found = {name: shutil.which(name) for name in ("unshare", "mount", "sh")}
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        return f"no {', '.join(missing)} program on this machine (util-linux)"
    return _Tools(**{name: str(path) for name, path in found.items()})


def _namespace_flags(isolation: Isolation) -> tuple[str, ...]:
    if isolation is Isolation.MOUNT_NAMESPACE:
        return ("--mount", "--propagation", "private")
    return ("--user", "--map-root-user", "--mount", "--propagation", "private")


class IsolationProbe:
    """Whether this machine can enter a root filesystem, found once (one ``unshare ... true``)."""

    def __init__(self) -> None:
        self._found: tuple[Isolation | None, str] | None = None
        self._lock = asyncio.Lock()

    async def find(self) -> tuple[Isolation | None, str]:
        """The isolation available, or None and why there is none."""
        async with self._lock:
            if self._found is None:
                self._found = await asyncio.to_thread(_probe)
            return self._found


def _probe() -> tuple[Isolation | None, str]:
    tools = _tools()
    if isinstance(tools, str):
        return None, tools
    isolation = Isolation.MOUNT_NAMESPACE if os.geteuid() == 0 else Isolation.USER_NAMESPACE
    try:
        probe = subprocess.run(
            [tools.unshare, *_namespace_flags(isolation), "true"],
            capture_output=True,
            timeout=_PROBE_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"unshare cannot run: {exc}"
    if probe.returncode != 0:
        detail = probe.stderr.decode(errors="replace").strip() or f"exit status {probe.returncode}"
        what = "a mount namespace" if isolation is Isolation.MOUNT_NAMESPACE else "a user namespace"
        return None, f"this machine does not allow {what} ({detail})"
    return isolation, ""


# $1 root, $2 the environment's /tmp, $3 working directory, then the command. /proc is a new mount of
# procfs where allowed (as root), else the host's bound; read-only last, so the mounts under it exist.
_SCRIPT = """set -e
root=$1; tmp=$2; wd=$3; shift 3
{mount} --bind "$root" "$root"
{mount} --bind "$tmp" "$root/tmp"
{mount} --rbind /dev "$root/dev"
{mount} -t proc proc "$root/proc" 2>/dev/null || {mount} --rbind /proc "$root/proc" 2>/dev/null || true
{mount} -o remount,bind,ro "$root" 2>/dev/null || \
  echo "sockerless simulator: the root filesystem stays writable (read-only remount refused)" >&2
exec {unshare} --root="$root" --wd="$wd" -- "$@"
"""


def rooted_argv(
    isolation: Isolation, root: Path, tmp_dir: str, working_dir: str, argv: tuple[str, ...]
) -> tuple[str, ...]:
    """The host command that runs ``argv`` inside ``root`` (``tmp_dir`` at ``/tmp``), in ``working_dir``."""
    tools = _tools()
    if isinstance(tools, str):
        raise RuntimeError(tools)
    script = _SCRIPT.format(mount=shlex.quote(tools.mount), unshare=shlex.quote(tools.unshare))
    return (
        tools.unshare,
        *_namespace_flags(isolation),
        tools.sh,
        "-c",
        script,
        "sockerless-rootfs",
        str(root),
        tmp_dir,
        working_dir,
        *argv,
    )


def find_executable(root: Path, command: str, path: str) -> bool:
    """Whether ``command`` (a path, or a name looked up in ``path``) is an executable file in ``root``."""
    if "/" in command:
        candidates = [command if command.startswith("/") else "/" + command]
    else:
        candidates = [f"{directory or '.'}/{command}" for directory in path.split(":")]
    for candidate in candidates:
        try:
            host = resolve_inside(root, candidate)
        except ValueError:
            continue
        if host.is_file() and os.access(host, os.X_OK):
            return True
    return False
