"""The registry client against a real registry (Debian's docker-registry), behind a recording proxy
that plays Docker Hub's token server, a transient 503, or a registry that sees every request."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from sockerless.errors import AccessDenied, InvalidParameter, NotFound, UpstreamError
from sockerless_lambda.registry import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    Credentials,
    RegistryClient,
    RegistryUnreachable,
    credentials_from_header,
    registry_url,
)
from tests.imagekit import busybox_layer, file_layer, image, push_image, push_index
from tests.registry_proxy import RegistryProxy


def auth_header(document: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


def test_x_registry_auth_carries_a_username_and_password_or_an_identity_token() -> None:
    given = credentials_from_header(auth_header({"username": "u", "password": "p", "serveraddress": "x"}))
    assert (given.username, given.password, given.identity_token) == ("u", "p", "")
    assert credentials_from_header(auth_header({"identitytoken": "t"})).identity_token == "t"
    assert not credentials_from_header("").given
    with pytest.raises(InvalidParameter, match="X-Registry-Auth"):
        credentials_from_header("!!!not-base64")


def test_credentials_never_show_their_secret() -> None:
    shown = repr(Credentials(username="u", password="hunter2", identity_token="tok"))
    assert "hunter2" not in shown and "tok'" not in shown


def test_docker_hub_and_loopback_registries_get_their_api_urls() -> None:
    assert registry_url("docker.io") == "https://registry-1.docker.io"
    assert registry_url("localhost:5000") == "http://localhost:5000"
    assert registry_url("127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert registry_url("ghcr.io") == "https://ghcr.io"
    assert registry_url("123456789012.dkr.ecr.us-east-1.amazonaws.com").startswith("https://")


async def test_a_manifest_is_read_with_its_exact_bytes_type_and_digest(source_registry, session) -> None:
    pushed = image([file_layer({"a": b"1"})])
    digest = await push_image(source_registry.url, "lib/a", "v1", pushed)
    client = RegistryClient(session, source_registry.url)
    manifest = await client.get_manifest("lib/a", "v1")
    assert (manifest.body, manifest.media_type, manifest.digest) == (pushed.manifest, DOCKER_MANIFEST, digest)
    assert await client.manifest_digest("lib/a", "v1") == digest
    assert await client.manifest_digest("lib/a", "nope") is None


async def test_a_manifest_list_is_read_as_an_index(source_registry, session) -> None:
    images = {
        "amd64": image([file_layer({"a": b"1"})]),
        "arm64": image([file_layer({"a": b"2"})], architecture="arm64"),
    }
    await push_index(source_registry.url, "multi", "latest", images)
    manifest = await RegistryClient(session, source_registry.url).get_manifest("multi", "latest")
    assert manifest.media_type == DOCKER_MANIFEST_LIST and manifest.is_index


async def test_a_missing_image_is_dockers_404(source_registry, session) -> None:
    client = RegistryClient(session, source_registry.url)
    with pytest.raises(NotFound) as raised:
        await client.get_manifest(
            "nothing/here", "latest", display=f"{source_registry.host}/nothing/here:latest"
        )
    name = f"{source_registry.host}/nothing/here:latest"
    assert raised.value.message == f"manifest for {name} not found: manifest unknown: manifest unknown"


async def test_a_blob_streams_and_uploads_in_chunks_with_its_digest_checked(source_registry, session) -> None:
    layer = busybox_layer()
    await push_image(source_registry.url, "busybox", "latest", image([layer]))
    client = RegistryClient(session, source_registry.url)
    chunks = client.stream_blob("busybox", layer.digest)
    seen: list[int] = []
    sent = await client.upload_blob("copy", layer.digest, chunks, progress=seen.append)
    assert sent == layer.size and seen[-1] == layer.size
    assert await client.has_blob("copy", layer.digest)
    assert await client.read_blob("copy", layer.digest) == layer.blob


async def test_an_upload_whose_bytes_do_not_match_its_digest_is_not_committed(
    source_registry, session
) -> None:
    client = RegistryClient(session, source_registry.url)
    claimed = "sha256:" + hashlib.sha256(b"something else").hexdigest()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"these bytes"

    with pytest.raises(UpstreamError, match="arrived with digest"):
        await client.upload_blob("bad", claimed, chunks())
    assert not await client.has_blob("bad", claimed)


async def test_a_bearer_challenge_fetches_an_anonymous_token(source_registry, session) -> None:
    await push_image(source_registry.url, "lib/a", "v1", image([file_layer({"a": b"1"})]))
    async with RegistryProxy(source_registry.url, bearer=True) as proxy:
        client = RegistryClient(session, proxy.url)
        await client.get_manifest("lib/a", "v1")
        await client.get_manifest("lib/a", "v1")  # the token is kept
    assert len(proxy.token_requests) == 1
    asked = proxy.token_requests[0]
    assert (asked["service"], asked["scope"], asked["basic_user"]) == (
        "test-registry",
        "repository:lib/a:pull,push",
        "",
    )


async def test_a_token_is_asked_for_with_the_clients_credentials(source_registry, session) -> None:
    await push_image(source_registry.url, "private/a", "v1", image([file_layer({"a": b"1"})]))
    async with RegistryProxy(source_registry.url, bearer=True, users={"alice": "s3cret"}) as proxy:
        good = RegistryClient(session, proxy.url, Credentials(username="alice", password="s3cret"))
        await good.get_manifest("private/a", "v1")
        assert proxy.token_requests[-1]["basic_user"] == "alice"
        bad = RegistryClient(session, proxy.url, Credentials(username="alice", password="wrong-pw"))
        with pytest.raises(AccessDenied) as raised:
            await bad.get_manifest("private/a", "v1")
    assert "wrong-pw" not in str(raised.value) and "s3cret" not in str(raised.value)


async def test_an_identity_token_is_exchanged_for_an_access_token(source_registry, session) -> None:
    await push_image(source_registry.url, "private/a", "v1", image([file_layer({"a": b"1"})]))
    async with RegistryProxy(source_registry.url, bearer=True, refresh_tokens={"refresh-me"}) as proxy:
        client = RegistryClient(
            session, proxy.url, credentials_from_header(auth_header({"identitytoken": "refresh-me"}))
        )
        await client.get_manifest("private/a", "v1")
    assert proxy.token_requests[0]["grant_type"] == "refresh_token"
    assert proxy.token_requests[0]["scope"] == "repository:private/a:pull,push"


async def test_a_transient_503_is_retried(source_registry, session) -> None:
    await push_image(source_registry.url, "lib/a", "v1", image([file_layer({"a": b"1"})]))
    async with RegistryProxy(source_registry.url, fail_first={r"GET /v2/lib/a/manifests/": 2}) as proxy:
        client = RegistryClient(session, proxy.url, backoff=0.01)
        manifest = await client.get_manifest("lib/a", "v1")
    assert manifest.media_type == DOCKER_MANIFEST
    assert proxy.count("GET", "/manifests/") == 3


async def test_a_lasting_503_fails_after_a_bounded_number_of_attempts(source_registry, session) -> None:
    async with RegistryProxy(source_registry.url, fail_first={r"/manifests/": 100}) as proxy:
        client = RegistryClient(session, proxy.url, attempts=3, backoff=0.01)
        with pytest.raises(UpstreamError, match="503"):
            await client.get_manifest("lib/a", "v1")
    assert proxy.count("GET", "/manifests/") == 3


async def test_an_unreachable_registry_says_so(session) -> None:
    client = RegistryClient(session, "http://127.0.0.1:9", attempts=2, backoff=0.01)
    with pytest.raises(RegistryUnreachable, match=r"127\.0\.0\.1:9 is unreachable"):
        await client.get_manifest("lib/a", "v1")
