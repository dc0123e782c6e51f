"""An in-process moto server on an ephemeral loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

__all__ = ["InProcessMoto"]


class InProcessMoto:
    """moto's ``ThreadedMotoServer`` on 127.0.0.1, port chosen by the kernel.

    moto keeps its state in process-wide globals: every in-process server in one process shares
    the same functions, roles and log groups.
    """

    def __init__(self) -> None:
        self._server: Any = None
        self.url = ""

    async def start(self) -> str:
        # Imported here: moto takes about a second to import, and the pytest plugin must stay light.
        def start_blocking() -> Any:
            from moto.server import ThreadedMotoServer

            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            return server

        # werkzeug logs every request at INFO: costly at hundreds of calls per second, and noise.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = await asyncio.to_thread(start_blocking)
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        host, port = server.get_host_and_port()
        stopping = asyncio.create_task(asyncio.to_thread(server.stop))
        # serve_forever only checks for shutdown between select() calls of 0.5 s: a connection wakes it.
        while not stopping.done():
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(host, port)
                writer.close()
                await writer.wait_closed()
            await asyncio.wait({stopping}, timeout=0.05)
        await stopping
        server._server.server_close()  # ThreadedMotoServer.stop leaves the listening socket open
