"""A real OCI registry on loopback: Debian's ``docker-registry`` (CNCF distribution 2.8) as a child process.

The simulator's ECR is one (its Lambda pulls function images from it), and tests start others as
source registries (the Docker Hub of an offline machine). Nothing here speaks the registry protocol:
the registry does, and is asked only whether it is up (``GET /v2/`` answers 200).

Installed with ``apt-get install -y docker-registry``; :func:`registry_unavailable` says why one cannot
start here and how to install it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
from pathlib import Path

import aiohttp

__all__ = ["INSTALL_HINT", "LocalRegistry", "find_docker_registry", "registry_unavailable"]

INSTALL_HINT = "install Debian's docker-registry package: apt-get install -y docker-registry"
_CANDIDATES = ("docker-registry", "/usr/bin/docker-registry", "registry")
_START_TIMEOUT = 20.0
_STOP_TIMEOUT = 5.0


def find_docker_registry() -> str | None:
    """The path of the ``docker-registry`` program, if installed (``SOCKERLESS_DOCKER_REGISTRY`` wins)."""
    configured = os.environ.get("SOCKERLESS_DOCKER_REGISTRY")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for candidate in _CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def registry_unavailable() -> str | None:
    """Why no local registry can start here (None when one can)."""
    if find_docker_registry() is None:
        return f"no docker-registry program on this machine ({INSTALL_HINT})"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalRegistry:
    """One ``docker-registry serve`` on ``127.0.0.1``, its blobs under ``root`` (a temporary folder if None).

    ``async with LocalRegistry() as registry:`` starts it and stops it; ``registry.host`` is the
    ``127.0.0.1:PORT`` an image reference names, ``registry.url`` the base URL of its API.
    """

    def __init__(self, root: Path | None = None, *, port: int = 0) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="sockerless-registry-")) if root is None else root
        self._port = port
        self._process: asyncio.subprocess.Process | None = None
        self._log: Path = self.root / "registry.log"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        program = find_docker_registry()
        if program is None:
            raise RuntimeError(f"cannot start a local registry: {INSTALL_HINT}")
        storage = self.root / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        # A port taken between the probe and the bind fails the start: try a few.
        for _attempt in range(5):
            if not self._port or _attempt:
                self._port = _free_port()
            config = self.root / "config.yml"
            config.write_text(_config_text(storage, self.host))
            with self._log.open("ab") as log:
                self._process = await asyncio.create_subprocess_exec(
                    program,
                    "serve",
                    str(config),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            if await self._wait_up():
                return
            await self.stop(remove=False)
        raise RuntimeError(f"the local registry did not start; its log: {self._log}")

    async def _wait_up(self) -> bool:
        """Poll ``GET /v2/`` until it answers 200, the process exits, or the start times out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _START_TIMEOUT
        timeout = aiohttp.ClientTimeout(total=1.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while loop.time() < deadline:
                if self._process is None or self._process.returncode is not None:
                    return False
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with session.get(f"{self.url}/v2/") as response:
                        if response.status == 200:
                            return True
                await asyncio.sleep(0.01)  # a child process starting: nothing to wait on but the port
        return False

    async def stop(self, *, remove: bool = True) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), _STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()
        if remove and self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    async def __aenter__(self) -> LocalRegistry:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()


def _config_text(storage: Path, host: str) -> str:
    # Deletes allowed (tests and ``docker rmi`` of prepared images may delete manifests); no auth: the
    # registry listens on loopback only, and clients may still send credentials, which it ignores.
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {storage}\n"
        "  delete:\n    enabled: true\n"
        "  maintenance:\n    uploadpurging:\n      enabled: false\n"
        f"http:\n  addr: {host}\n"
        "  headers:\n    X-Content-Type-Options: [nosniff]\n"
    )
