"""Rename and the event stream of the Lambda backend, over the internal API: Docker's statuses and
messages, the store kept consistent, and the events of each step of a container's life."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from sockerless.api.client import BackendClient
from sockerless.events import EventsOptions
from sockerless.wire import parse_time

API = "/internal/v1"


async def rename(api: Any, ref: str, name: str) -> tuple[int, dict[str, Any] | None]:
    response = await api.client.post(f"{API}/containers/{ref}/rename", params={"name": name})
    return response.status, (await response.json() if response.status != 204 else None)


async def test_rename_changes_the_name_everywhere(api) -> None:
    container_id = await api.create("before")
    assert await rename(api, "before", "/after") == (204, None)
    assert (await api.inspect("after"))["Name"] == "/after"
    listed = await (await api.client.get(f"{API}/containers", params={"all": "1"})).json()
    assert [row["Names"] for row in listed] == [["/after"]]
    assert (await api.client.get(f"{API}/containers/before")).status == 404
    other = await api.create("before")  # the old name is free again
    assert other != container_id


async def test_rename_answers_dockers_errors(api) -> None:
    await api.create("first")
    second = await api.create("second")
    assert await rename(api, "first", "second") == (
        409,
        {
            "message": f'Conflict. The container name "/second" is already in use by container "{second}". '
            "You have to remove (or rename) that container to be able to reuse that name."
        },
    )
    assert await rename(api, "nosuch", "x") == (404, {"message": "No such container: nosuch"})
    status, body = await rename(api, "first", "bad name")
    assert status == 400 and body["message"].startswith("Invalid container name (bad name)")
    assert await rename(api, "first", "first") == (
        400,
        {"message": "Renaming a container with the same name as its current name"},
    )
    response = await api.client.post(f"{API}/containers/first/rename")
    assert response.status == 400
    assert (await response.json())["message"] == "the name query parameter is required"


async def test_the_events_of_a_containers_life(api) -> None:
    since = time.time()
    assert (await api.client.post(f"{API}/images/pull", json={"Reference": "alpine"})).status == 200
    container_id, exit_status = await api.run("exit 3", HostConfig={"AutoRemove": False})
    assert exit_status == {"StatusCode": 3}
    assert await rename(api, container_id, "renamed") == (204, None)
    assert (await api.client.delete(f"{API}/containers/{container_id}")).status == 204

    window = {"since": f"{since:.6f}", "until": f"{time.time():.6f}"}
    response = await api.client.get(f"{API}/events", params=window)
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    events = [json.loads(line) for line in (await response.text()).splitlines()]
    assert [(e["Type"], e["Action"]) for e in events] == [
        ("image", "pull"),
        ("container", "create"),
        ("container", "start"),
        ("container", "die"),
        ("container", "rename"),
        ("container", "destroy"),
    ]
    assert events[0]["Actor"] == {"ID": "alpine:latest", "Attributes": {"name": "alpine:latest"}}
    assert {e["Actor"]["ID"] for e in events[1:]} == {container_id}
    assert events[3]["Actor"]["Attributes"]["exitCode"] == "3"
    assert events[4]["Actor"]["Attributes"]["oldName"].startswith("/lambda_")
    assert events[4]["Actor"]["Attributes"]["name"] == "renamed"


async def test_tag_and_image_removal_are_events(api) -> None:
    since = time.time()
    assert (await api.client.post(f"{API}/images/pull", json={"Reference": "alpine"})).status == 200
    tag = {"name": "alpine", "repo": "mine", "tag": "v1"}
    tagged = await api.client.post(f"{API}/images/tag", params=tag)
    assert tagged.status == 201
    removed = await api.client.delete(f"{API}/images", params={"name": "alpine", "force": "1"})
    assert removed.status == 200, await removed.text()
    inspected = await api.client.get(f"{API}/images/inspect", params={"name": "mine:v1"})
    image_id = (await inspected.json())["Id"]
    removed = await api.client.delete(f"{API}/images", params={"name": "mine:v1"})
    assert removed.status == 200, await removed.text()

    window = {"since": f"{since:.6f}", "until": f"{time.time():.6f}", "filters": '{"type":["image"]}'}
    response = await api.client.get(f"{API}/events", params=window)
    events = [json.loads(line) for line in (await response.text()).splitlines()]
    assert [(e["Action"], e["Actor"]["ID"]) for e in events] == [
        ("pull", "alpine:latest"),
        ("tag", "mine:v1"),
        ("untag", "alpine:latest"),
        ("untag", "mine:v1"),
        ("delete", image_id),
    ]


async def test_a_live_stream_through_the_client_gets_new_events_and_filters(api) -> None:
    client = BackendClient(str(api.client.make_url("/")).rstrip("/"))
    try:
        options = EventsOptions(filters={"event": ["create"]}, until=parse_time(f"{time.time() + 30:.6f}"))
        async with client.events(options) as stream:
            container_id = await api.create("watched")  # after the headers: subscribed already
            event = await asyncio.wait_for(anext(stream.events()), 30)
        assert (event.type, event.action, event.actor.id) == ("container", "create", container_id)
        assert event.actor.attributes["name"] == "watched"
    finally:
        await client.close()


async def test_until_before_since_is_a_400(api) -> None:
    response = await api.client.get(f"{API}/events", params={"since": "200", "until": "100"})
    assert response.status == 400
    assert "cannot be after `until` time" in (await response.json())["message"]
