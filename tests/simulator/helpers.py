"""Helpers shared by the simulator tests (import as ``tests.simulator.helpers``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

from aiobotocore.config import AioConfig

from tests.lambda_settings import simulator_client_options

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:latest"

#: A custom runtime (what an image's ENTRYPOINT is on Lambda), run with this interpreter: it loops on
#: ``/next``; the event's ``action`` says what to do with the invocation; without one it answers its PID,
#: the event, its environment's Lambda variables, TMPDIR and working directory. An argument names a
#: marker file: when missing, Init creates it and fails (exit 7), so the next Init succeeds.
RUNTIME_SCRIPT = r"""
import base64, http.client, json, os, sys, time, urllib.request

host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
base = "/2018-06-01/runtime"
marker = sys.argv[1] if len(sys.argv) > 1 else ""
if marker and not os.path.exists(marker):
    open(marker, "w").close()
    print("init fails the first time", flush=True)
    sys.exit(7)
print("runtime ready", flush=True)


def call(method, path, body=None, headers=None):
    connection = http.client.HTTPConnection(host, int(port))
    connection.request(method, base + path, body=body, headers=headers or {})
    answer = connection.getresponse()
    data = answer.read()
    connection.close()
    return answer, data


while True:
    answer, data = call("GET", "/invocation/next")
    request_id = answer.getheader("Lambda-Runtime-Aws-Request-Id")
    event = json.loads(data or b"null") or {}
    action = event.get("action")
    print("handling", action, flush=True)
    if action == "barrier":
        open(event["touch"], "w").close()
        while event.get("wait") and not os.path.exists(event["wait"]):
            time.sleep(0.01)
    if action == "hang":
        time.sleep(1000)
    elif action == "exit":
        sys.exit(event.get("status", 0))
    elif action == "error":
        document = json.dumps({"errorMessage": "it broke", "errorType": "App.Broken", "stackTrace": []})
        call("POST", f"/invocation/{request_id}/error", document,
             {"Lambda-Runtime-Function-Error-Type": "App.Broken"})
    elif action == "stream":
        connection = http.client.HTTPConnection(host, int(port))
        connection.putrequest("POST", f"{base}/invocation/{request_id}/response")
        connection.putheader("Lambda-Runtime-Function-Response-Mode", "streaming")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        for part in (b"hello ", b"world"):
            connection.send(b"%x\r\n%s\r\n" % (len(part), part))
            while part == b"hello " and event.get("wait") and not os.path.exists(event["wait"]):
                time.sleep(0.01)  # the caller has "hello " before "world" is written
        if event.get("fail"):
            body = base64.b64encode(json.dumps({"errorMessage": "late", "errorType": "App.Late"}).encode())
            connection.send(b"0\r\nLambda-Runtime-Function-Error-Type: App.Late\r\n"
                            b"Lambda-Runtime-Function-Error-Body: " + body + b"\r\n\r\n")
        else:
            connection.send(b"0\r\n\r\n")
        connection.getresponse().read()
        connection.close()
    elif action == "big":
        answer, _ = call("POST", f"/invocation/{request_id}/response", b"x" * (6_291_556 + 1))
        print("big answered", answer.status, flush=True)
    elif action == "bad-mode":
        answer, _ = call("POST", f"/invocation/{request_id}/response", b"{}",
                         {"Lambda-Runtime-Function-Response-Mode": "Streaming"})
        print("bad mode answered", answer.status, flush=True)
        next_answer, _ = call("GET", "/invocation/next")
        print("next after bad mode", next_answer.status, flush=True)
        sys.exit(1)
    else:
        wrong, _ = call("POST", "/invocation/not-this-one/response", b"{}")
        unknown, _ = call("GET", "/no-such-route")
        body = json.dumps({"pid": os.getpid(), "event": event, "wrong_id_status": wrong.status,
                           "unknown_path_status": unknown.status,
                           "tmpdir": os.environ.get("TMPDIR"), "cwd": os.getcwd(),
                           "env": {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "FOO"))}})
        call("POST", f"/invocation/{request_id}/response", body)
        again, _ = call("POST", f"/invocation/{request_id}/response", body)
        print("second answer", again.status, flush=True)
"""


# No retries: a test that injects a fault must see it, not botocore's recovery from it.
CLIENT_CONFIG = AioConfig(
    max_pool_connections=256,
    read_timeout=30,
    connect_timeout=5,
    retries={"mode": "standard", "total_max_attempts": 1},
)

#: ``function_active_v2`` polls waiting out a new function's Pending: well under GetFunction's quota
#: (100/s), bounded at 10 s.
ACTIVE_WAIT = {"Delay": 0.1, "MaxAttempts": 100}


def client_options(simulator: Any) -> dict[str, Any]:
    return simulator_client_options(simulator, config=CLIENT_CONFIG)


async def wait_until(predicate: Callable[[], bool], deadline: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` every 20 ms until it holds; fail after ``deadline`` seconds."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline
    while not predicate():
        if loop.time() > give_up:
            raise AssertionError(f"{what} still false after {deadline} s")
        await asyncio.sleep(0.02)


async def wait_for_async(
    check: Callable[[], Awaitable[bool]], deadline: float = 10.0, what: str = "condition"
) -> None:
    """Poll the async ``check`` every 20 ms until it holds; fail after ``deadline`` seconds."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline
    while not await check():
        if loop.time() > give_up:
            raise AssertionError(f"{what} still false after {deadline} s")
        await asyncio.sleep(0.02)


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie waiting for its (foreign) parent counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
