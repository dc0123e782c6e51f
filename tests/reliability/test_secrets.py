"""Secrets never leave: not in any log line (at debug level), not in error answers, not in
``--print-config``.

``sockerless up`` (backend and frontend in one process, both on loopback TCP with bearer tokens, the
frontend passing the backend's token) runs on the simulator (a process of its own, logging at debug
level too) with AWS credentials in its environment. Docker clients send registry credentials
(``X-Registry-Auth`` on pull, ``/auth``), environment values at create (accepted, refused by our
checks, refused by AWS), and wrong tokens. Every byte of output of both processes, and every error
answer, is then searched for every secret. (A successful inspect shows ``Config.Env``, as Docker's
does: that is the client's own data, given back to an authenticated client.)
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.reliability.processes import (
    IMAGE,
    SOCKERLESS,
    Process,
    SimulatorProcess,
    base_environment,
    eventually,
    run_tool,
)

SECRETS = {
    "backend token": "bkT0ken-5f1c2a9e",
    "frontend token": "feT0ken-77d0c3b1",
    "wrong token tried": "guessT0ken-0a0b0c0d",
    "AWS secret key": "awsSECRETkey/9d8c7b6a5f4e3d2c1b0a",
    "AWS session token": "awsSESSIONtoken+1a2b3c4d5e6f",
    "registry password": "regPassw0rd-c0ffee",
    "login password": "loginPassw0rd-decade",
    "env value": "envSecret-8badf00d",
    "refused env value": "envSecretRefused-feedface",
    "env value refused by AWS": "envSecretAws-deadbeef",
}
REGISTRY_AUTH = base64.urlsafe_b64encode(
    json.dumps(
        {"username": "ci", "password": SECRETS["registry password"], "serveraddress": "123456789012.dkr.ecr"}
    ).encode()
).decode()


def _leaks(text: str) -> list[str]:
    found = [name for name, secret in SECRETS.items() if secret in text]
    if REGISTRY_AUTH in text or REGISTRY_AUTH.rstrip("=") in text:
        found.append("X-Registry-Auth header")
    return found


def _environment(simulator: SimulatorProcess) -> dict[str, str]:
    return base_environment(
        AWS_ACCESS_KEY_ID="AKIAEXAMPLEKEYID0001",
        AWS_SECRET_ACCESS_KEY=SECRETS["AWS secret key"],
        AWS_SESSION_TOKEN=SECRETS["AWS session token"],
        SOCKERLESS_SERVER_TOKEN=SECRETS["backend token"],
        SOCKERLESS_FRONTEND_TOKEN=SECRETS["frontend token"],
    )


def _up_flags(simulator: SimulatorProcess, tmp_path: Path, log_format: str = "json") -> list[str]:
    return [
        "up",
        "--backend",
        "lambda",
        "--server-tcp",
        "127.0.0.1:0",
        "--frontend-tcp",
        "127.0.0.1:0",
        "--server-log-level",
        "debug",
        "--server-log-format",
        log_format,
        "--store-path",
        str(tmp_path / "state.sqlite3"),
        "--lambda-region",
        simulator.region,
        "--lambda-role-arn",
        simulator.role_arn,
        "--lambda-endpoint-url",
        simulator.endpoint_url,
        "--lambda-log-read-interval",
        "0.25",
        "--lambda-max-attempts",
        "2",
    ]


@pytest.mark.parametrize("log_format", ["json", "text"])
async def test_no_secret_in_any_log_line_error_or_printed_configuration(
    log_format: str, tmp_path: Path
) -> None:
    simulator = SimulatorProcess(tmp_path / "simulator.log", extra=["--log-level", "debug"])
    await simulator.start()
    env = _environment(simulator)
    up = Process([*SOCKERLESS, *_up_flags(simulator, tmp_path, log_format)], tmp_path / "up.log", env)
    errors: list[str] = []
    try:
        await up.spawn()

        async def announced() -> bool:
            assert up.running, up.log_text()[-3000:]
            return "export DOCKER_HOST=tcp://" in up.log_text()

        await eventually(announced, timeout=60, what="sockerless up announcing its address")
        address = up.log_text().split("export DOCKER_HOST=tcp://", 1)[1].split()[0]
        headers = {"Authorization": f"Bearer {SECRETS['frontend token']}"}
        async with aiohttp.ClientSession(base_url=f"http://{address}", headers=headers) as docker:

            async def call(method: str, path: str, **options: Any) -> tuple[int, str]:
                async with (
                    asyncio.timeout(60),
                    docker.request(method, "/v1.44" + path, **options) as response,
                ):
                    text = await response.text()
                    if response.status >= 400:  # an inspect shows Env, as Docker's does: not an error
                        errors.append(text)
                    return response.status, text

            pulled = await call(
                "POST",
                "/images/create",
                params={"fromImage": IMAGE},
                headers={"X-Registry-Auth": REGISTRY_AUTH},
            )
            assert pulled[0] == 200, pulled
            login = {
                "username": "ci",
                "password": SECRETS["login password"],
                "serveraddress": "registry.example",
            }
            # A login has nothing to check (credentials come with each pull): 200, not an error.
            status, text = await call("POST", "/auth", json=login)
            assert status == 200 and json.loads(text)["Status"] == "Login Succeeded", text
            assert _leaks(text) == []  # not echoed either
            body = {"Image": IMAGE, "Cmd": ["sh", "-c", "exit 0"], "Env": [f"API_KEY={SECRETS['env value']}"]}
            status, text = await call("POST", "/containers/create", json=body)
            assert status == 201, text
            container_id = json.loads(text)["Id"]
            assert (await call("POST", f"/containers/{container_id}/start"))[0] == 204
            assert (await call("POST", f"/containers/{container_id}/wait"))[0] == 200
            assert (await call("GET", f"/containers/{container_id}/json"))[0] == 200
            assert (await call("GET", f"/containers/{container_id}/logs", params={"stdout": "1"}))[0] == 200
            refused_value = SECRETS["refused env value"]
            for env_list in (
                [f"AWS_REGION={refused_value}"],
                [f"1BAD={refused_value}"],
                [f"BIG={refused_value * 200}"],
                [f"OK={refused_value}", 5],  # not a list of strings
            ):
                status, text = await call(
                    "POST", "/containers/create", json={"Image": IMAGE, "Env": env_list}
                )
                assert status == 400, text
            async with aiohttp.ClientSession() as control:  # AWS refuses the next CreateFunction
                rule = {
                    "kind": "error",
                    "operation": "lambda:CreateFunction",
                    "count": 2,
                    "status": 400,
                    "code": "InvalidParameterValueException",
                    "message": "The image is not valid",
                }
                async with control.post(f"{simulator.endpoint_url}/_sim/faults", json=rule) as response:
                    assert response.status == 201
            body = {"Image": IMAGE, "Env": [f"API_KEY={SECRETS['env value refused by AWS']}"]}
            status, text = await call("POST", "/containers/create", json=body)
            assert status == 400 and "InvalidParameterValueException" in text, text
            async with aiohttp.ClientSession(base_url=f"http://{address}") as stranger:
                for authorization in (f"Bearer {SECRETS['wrong token tried']}", SECRETS["wrong token tried"]):
                    async with stranger.get("/_ping", headers={"Authorization": authorization}) as response:
                        assert response.status == 401
                        errors.append(await response.text())
        assert await up.terminate() == 0
    finally:
        await up.kill()
        await simulator.kill()

    up_output, simulator_output = up.log_text(), simulator.log_text()
    if log_format == "json":
        levels = {json.loads(line)["level"] for line in up_output.splitlines() if line.startswith("{")}
        assert "debug" in levels, levels  # the debug level was on
    else:
        assert " DEBUG " in up_output  # the debug level was on
    assert "aws call" in up_output
    assert "request" in up_output and "/containers/create" in up_output
    assert _leaks(up_output) == [], "in the output of sockerless up"
    assert _leaks(simulator_output) == [], "in the simulator's output"
    # Four refused environments, one refused by AWS, two wrong tokens.
    assert len(errors) == 7 and _leaks("\n".join(errors)) == [], "in the error answers"

    # --print-config, with every secret set through the environment.
    code, out, err = await run_tool([*SOCKERLESS, *_up_flags(simulator, tmp_path), "--print-config"], env)
    assert code == 0, err
    assert "token: '***'" in out
    assert _leaks(out + err) == []
