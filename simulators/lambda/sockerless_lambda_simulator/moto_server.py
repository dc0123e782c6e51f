"""moto in this process: a server on an ephemeral loopback port, and direct CloudWatch Logs calls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from .moto_api import MotoError, MotoGate
from .operations import AwsScope

__all__ = ["InProcessLogs", "InProcessMoto"]


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


class InProcessLogs:
    """CloudWatch Logs calls made straight into the in-process moto backend, skipping HTTP.

    An HTTP call costs moto about 3 ms of Python (werkzeug, Flask, parsing) under the GIL we share
    with it: two thirds of an invocation's cost. A direct call costs microseconds. It takes the
    ``logs`` gate like any other call, so it never runs while moto serves a logs request.
    """

    def __init__(self, gate: MotoGate) -> None:
        from moto.iam.models import get_account_id_from
        from moto.logs.models import logs_backends

        self._backends = logs_backends
        self._account_of = get_account_id_from
        self._accounts: dict[str, str] = {}
        self._gate = gate

    async def logs(self, scope: AwsScope, action: str, body: Mapping[str, Any]) -> dict[str, Any]:
        account = self._accounts.get(scope.access_key)
        if account is None:
            account = self._accounts[scope.access_key] = self._account_of(scope.access_key)
        backend = self._backends[account][scope.region]
        async with self._gate.lock("logs"):
            self._call(backend, action, body)
        return {}

    @staticmethod
    def _call(backend: Any, action: str, body: Mapping[str, Any]) -> None:
        try:
            if action == "CreateLogGroup":
                backend.create_log_group(body["logGroupName"], tags={})
            elif action == "CreateLogStream":
                backend.create_log_stream(body["logGroupName"], body["logStreamName"])
            elif action == "PutLogEvents":
                backend.put_log_events(body["logGroupName"], body["logStreamName"], body["logEvents"])
            else:
                raise ValueError(f"unsupported in-process logs action {action}")
        except Exception as exc:
            code = getattr(exc, "error_type", None) or getattr(exc, "code", None)
            if not isinstance(code, str):
                raise
            raise MotoError(400, code, str(getattr(exc, "message", exc))) from exc
