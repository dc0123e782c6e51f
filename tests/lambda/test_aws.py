"""The AWS clients as the simulator sees their requests."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from sockerless_lambda.aws import user_agent
from sockerless_lambda.backend import LambdaBackend


async def test_every_request_names_sockerless_in_its_user_agent(backend: LambdaBackend) -> None:
    clients = backend.clients
    seen: list[tuple[str, str]] = []

    def capture(request: Any, event_name: str, **_: Any) -> None:
        seen.append((event_name.split(".")[-1], request.headers["User-Agent"].decode()))

    for client in (clients.control, clients.invoke, clients.logs):
        client.meta.events.register("before-send", capture)
    await clients.control.list_functions(MaxItems=1)
    await clients.logs.describe_log_groups(limit=1)
    with pytest.raises(ClientError, match="ResourceNotFound"):
        await clients.invoke.invoke(FunctionName="sockerless-no-such-function")

    assert [operation for operation, _ in seen] == ["ListFunctions", "DescribeLogGroups", "Invoke"]
    expected = user_agent()
    assert expected.startswith("sockerless/0.1.0 sockerless-lambda/0.1.0 aiobotocore/")
    # The same header on every request of every client: ours, then aiobotocore's session suffix.
    assert len({agent for _, agent in seen}) == 1, seen
    assert seen[0][1].startswith(expected + " botocore/"), seen
