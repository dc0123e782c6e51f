"""A small async client for the OCI distribution API: the few calls image preparation makes.

Manifests (``GET``/``HEAD``/``PUT`` with exact bytes and media type), blobs (``HEAD``, a streamed
``GET``), uploads (``POST`` → ``PATCH`` chunks → ``PUT ?digest=``, or a cross-repository mount), and
the registry's authentication: a ``401`` names ``Bearer realm,service,scope`` (a token server: Docker
Hub, GHCR) or ``Basic`` (ECR). Why our own client rather than ``oras`` or ``python-dxf``: see
``docs/images.md`` (both are synchronous, on ``requests``; this backend's HTTP stack is aiohttp).

Transient failures (a connection reset, a 5xx, a 429) are retried a bounded number of times with
backoff, a ``Retry-After`` honoured. Credentials never appear in a log line or an error message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp
from attrs import frozen

from sockerless.errors import AccessDenied, InvalidParameter, NotFound, SockerlessError, UpstreamError
from sockerless.references import DEFAULT_DOMAIN

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "MANIFEST_TYPES",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "BlobUnknown",
    "Credentials",
    "Manifest",
    "RegistryClient",
    "RegistryUnreachable",
    "credentials_from_header",
    "registry_url",
]

log = logging.getLogger("sockerless.lambda.registry")

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPES = (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX)
_ACCEPT = ", ".join(MANIFEST_TYPES)

#: Docker Hub's registry API host (``docker.io`` names it in references only).
DOCKER_HUB_REGISTRY = "registry-1.docker.io"
#: Bytes of one ``PATCH`` of an upload (ECR wants parts of at least 5 MiB but the last).
CHUNK_BYTES = 8 * 1024 * 1024
_READ_BYTES = 256 * 1024
_ATTEMPTS = 4
_BACKOFF_SECONDS = 0.2
_MAX_RETRY_AFTER = 10.0
_TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')

T = TypeVar("T")
Progress = Callable[[int], None]


class RegistryUnreachable(UpstreamError):
    """The registry did not answer (no network, refused, reset past the retries). ``lasting``: its
    name does not resolve (no network, or no such host): not worth retrying."""

    def __init__(self, message: str, *, lasting: bool = False) -> None:
        super().__init__(message)
        self.lasting = lasting


class BlobUnknown(NotFound):
    """A blob the manifest names is not in the registry."""


@frozen
class Credentials:
    """What a client sent in ``X-Registry-Auth``, or ECR's ``GetAuthorizationToken`` answer."""

    username: str = ""
    password: str = ""
    identity_token: str = ""

    def __repr__(self) -> str:  # never the secret itself, whoever prints it
        return f"Credentials(username={self.username!r}, password=***, identity_token=***)"

    @property
    def given(self) -> bool:
        return bool(self.username or self.identity_token)

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def credentials_from_header(value: str) -> Credentials:
    """Docker's ``X-Registry-Auth``: base64url JSON ``{username,password,serveraddress}`` or
    ``{identitytoken}``; empty means anonymous."""
    if not value:
        return Credentials()
    padded = value + "=" * (-len(value) % 4)
    try:
        document = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError) as exc:
        raise InvalidParameter("invalid X-Registry-Auth header: not base64url JSON") from exc
    if not isinstance(document, dict):
        raise InvalidParameter("invalid X-Registry-Auth header: not a JSON object")
    return Credentials(
        username=str(document.get("username") or ""),
        password=str(document.get("password") or ""),
        identity_token=str(document.get("identitytoken") or ""),
    )


def registry_url(domain: str) -> str:
    """The API base of a reference's registry: Docker Hub's host for ``docker.io``; plain http for
    ``localhost``/``127.0.0.1`` (Docker's insecure default for loopback), https otherwise."""
    if domain == DEFAULT_DOMAIN:
        return f"https://{DOCKER_HUB_REGISTRY}"
    host = domain.rsplit(":", 1)[0] if not domain.endswith("]") else domain
    if host in ("localhost", "127.0.0.1", "[::1]"):
        return f"http://{domain}"
    return f"https://{domain}"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@frozen
class Manifest:
    """A manifest's exact bytes, its media type and digest."""

    body: bytes
    media_type: str
    digest: str

    def document(self) -> dict[str, Any]:
        value = json.loads(self.body)
        if not isinstance(value, dict):
            raise UpstreamError(f"manifest {self.digest} is not a JSON object")
        return value

    @property
    def is_index(self) -> bool:
        return self.media_type in (DOCKER_MANIFEST_LIST, OCI_INDEX)


class RegistryClient:
    """One registry (``base`` is ``https://host`` or ``http://127.0.0.1:PORT``), with its credentials.

    Tokens are kept per repository for the client's life (a preparation's few minutes; a token's
    expiry answers 401 again and a new one is fetched)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base: str,
        credentials: Credentials | None = None,
        *,
        attempts: int = _ATTEMPTS,
        backoff: float = _BACKOFF_SECONDS,
    ) -> None:
        self.base = base.rstrip("/")
        self.host = self.base.split("://", 1)[-1]
        self._session = session
        self._credentials = credentials or Credentials()
        self._attempts = attempts
        self._backoff = backoff
        self._authorization: dict[str, str] = {}  # repository -> Authorization header value

    # ------------------------------------------------------------------ manifests

    async def get_manifest(self, repository: str, reference: str, *, display: str = "") -> Manifest:
        """The manifest by tag or digest; Docker's 404 message when there is none."""
        url = f"{self.base}/v2/{repository}/manifests/{reference}"

        async def fetch() -> Manifest:
            async with self._request("GET", url, repository, headers={"Accept": _ACCEPT}) as answer:
                if answer.status == 404:
                    name = display or f"{self.host}/{repository}:{reference}"
                    raise NotFound(f"manifest for {name} not found: manifest unknown: manifest unknown")
                await _check(answer, f"manifest {repository}:{reference}")
                body = await answer.read()
                media_type = answer.headers.get("Content-Type", "").split(";")[0].strip()
            digest = sha256_digest(body)
            if reference.startswith("sha256:") and digest != reference:
                raise UpstreamError(f"manifest {repository}@{reference} arrived with digest {digest}")
            if media_type not in MANIFEST_TYPES:
                media_type = str(json.loads(body).get("mediaType") or media_type)
            return Manifest(body=body, media_type=media_type, digest=digest)

        return await self.retrying(fetch)

    async def manifest_digest(self, repository: str, reference: str) -> str | None:
        """``HEAD`` a manifest: its digest, or None when the registry does not have it."""
        url = f"{self.base}/v2/{repository}/manifests/{reference}"

        async def head() -> str | None:
            async with self._request("HEAD", url, repository, headers={"Accept": _ACCEPT}) as answer:
                if answer.status == 404:
                    return None
                await _check(answer, f"manifest {repository}:{reference}")
                return answer.headers.get("Docker-Content-Digest") or None

        return await self.retrying(head)

    async def put_manifest(self, repository: str, tag: str, manifest: Manifest) -> str:
        """Write the manifest's exact bytes under ``tag``; the digest the registry gives it."""
        url = f"{self.base}/v2/{repository}/manifests/{tag}"

        async def put() -> str:
            headers = {"Content-Type": manifest.media_type}
            async with self._request("PUT", url, repository, headers=headers, data=manifest.body) as answer:
                await _check(answer, f"writing manifest {repository}:{tag}")
                return answer.headers.get("Docker-Content-Digest") or manifest.digest

        return await self.retrying(put)

    # ------------------------------------------------------------------ blobs

    async def has_blob(self, repository: str, digest: str) -> bool:
        url = f"{self.base}/v2/{repository}/blobs/{digest}"

        async def head() -> bool:
            async with self._request("HEAD", url, repository) as answer:
                if answer.status == 404:
                    return False
                await _check(answer, f"blob {digest}")
                return True

        return await self.retrying(head)

    async def read_blob(self, repository: str, digest: str) -> bytes:
        """A small blob (an image config) whole, its digest checked."""
        parts = [part async for part in self.stream_blob(repository, digest)]
        data = b"".join(parts)
        if sha256_digest(data) != digest:
            raise UpstreamError(f"blob {digest} of {self.host}/{repository} arrived with another digest")
        return data

    async def stream_blob(self, repository: str, digest: str) -> AsyncIterator[bytes]:
        """A blob in chunks as they arrive (never whole in memory); redirects (a CDN) are followed."""
        url = f"{self.base}/v2/{repository}/blobs/{digest}"
        async with self._request("GET", url, repository) as answer:
            if answer.status == 404:
                raise BlobUnknown(f"blob {digest} not found in {self.host}/{repository}")
            await _check(answer, f"blob {digest}")
            async for chunk in answer.content.iter_chunked(_READ_BYTES):
                yield chunk

    async def mount_blob(self, repository: str, digest: str, source_repository: str) -> str | None:
        """Mount a blob of another repository of this registry: None when mounted, else the upload
        location the registry opened instead (it may not allow mounts, or lack the blob)."""
        url = f"{self.base}/v2/{repository}/blobs/uploads/?mount={digest}&from={source_repository}"
        return await self.retrying(lambda: self._start_upload(url, repository))

    async def start_upload(self, repository: str) -> str:
        url = f"{self.base}/v2/{repository}/blobs/uploads/"
        location = await self.retrying(lambda: self._start_upload(url, repository))
        if location is None:
            raise UpstreamError(f"{self.host} answered an upload start as if it were a mount")
        return location

    async def upload_blob(
        self,
        repository: str,
        digest: str,
        chunks: AsyncIterator[bytes],
        *,
        location: str | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Upload ``chunks`` as the blob ``digest``: ``PATCH`` parts of :data:`CHUNK_BYTES`, then
        ``PUT ?digest=``. The digest is computed on the way and checked before the upload is
        committed; the registry checks it again. Bytes sent."""
        url = location or await self.start_upload(repository)
        hasher, sent, pending = hashlib.sha256(), 0, bytearray()

        async def send(part: bytes) -> None:
            nonlocal url, sent
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{sent}-{sent + len(part) - 1}",
            }
            async with self._request("PATCH", url, repository, headers=headers, data=part) as answer:
                await _check(answer, f"uploading blob {digest}")
                url = self._absolute(answer.headers.get("Location", url))
            sent += len(part)
            if progress is not None:
                progress(sent)

        async for chunk in chunks:
            hasher.update(chunk)
            pending.extend(chunk)
            if len(pending) >= CHUNK_BYTES:
                await send(bytes(pending[:CHUNK_BYTES]))
                del pending[:CHUNK_BYTES]
        if pending:
            await send(bytes(pending))
        actual = "sha256:" + hasher.hexdigest()
        if actual != digest:
            raise UpstreamError(f"blob {digest} arrived with digest {actual}: not copied")
        separator = "&" if "?" in url else "?"
        async with self._request("PUT", f"{url}{separator}digest={digest}", repository) as answer:
            await _check(answer, f"committing blob {digest}")
        return sent

    async def _start_upload(self, url: str, repository: str) -> str | None:
        async with self._request("POST", url, repository) as answer:
            if answer.status == 201:
                return None
            await _check(answer, f"starting an upload to {repository}")
            if answer.status != 202 or "Location" not in answer.headers:
                raise UpstreamError(f"{self.host} refused an upload to {repository}: {answer.status}")
            return self._absolute(answer.headers["Location"])

    def _absolute(self, location: str) -> str:
        return self.base + location if location.startswith("/") else location

    # ------------------------------------------------------------------ requests, auth, retries

    def _request(
        self,
        method: str,
        url: str,
        repository: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> _Authorized:
        return _Authorized(self, method, url, repository, dict(headers or {}), data)

    async def _send(
        self, method: str, url: str, repository: str, headers: dict[str, str], data: bytes | None
    ) -> aiohttp.ClientResponse:
        """The request, authorised; a 401 is answered once by fetching what its challenge asks."""
        for attempt in (0, 1):
            sent = dict(headers)
            authorization = self._authorization.get(repository)
            if authorization:
                sent["Authorization"] = authorization
            try:
                answer = await self._session.request(method, url, headers=sent, data=data)
            except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                raise RegistryUnreachable(
                    f"registry {self.host} is unreachable: {type(exc).__name__}: {_redact(str(exc))}",
                    lasting=isinstance(exc, aiohttp.ClientConnectorDNSError),
                ) from exc
            if answer.status != 401 or attempt:
                return answer
            challenge = answer.headers.get("WWW-Authenticate", "")
            answer.release()
            self._authorization[repository] = await self._authorize(challenge, repository)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _authorize(self, challenge: str, repository: str) -> str:
        scheme, _, rest = challenge.partition(" ")
        if scheme.lower() == "basic":
            if not self._credentials.given:
                raise AccessDenied(f"{self.host} requires credentials (docker login {self.host})")
            return self._credentials.basic()
        if scheme.lower() != "bearer":
            raise AccessDenied(f"{self.host} asks for an authentication scheme not supported: {scheme}")
        params = dict(_CHALLENGE_PARAM.findall(rest))
        realm = params.get("realm")
        if not realm:
            raise UpstreamError(f"{self.host} sent a Bearer challenge without a realm")
        query = {"service": params.get("service", ""), "scope": params.get("scope", "")}
        query = {key: value for key, value in query.items() if value}
        credentials = self._credentials
        try:
            if credentials.identity_token:  # an OAuth2 refresh token (docker login with a helper)
                form = {**query, "grant_type": "refresh_token", "refresh_token": credentials.identity_token}
                form["client_id"] = "sockerless"
                request = self._session.post(realm, data=form)
            else:
                auth = {"Authorization": credentials.basic()} if credentials.given else {}
                request = self._session.get(realm, params=query, headers=auth)
            async with request as answer:
                if answer.status in (401, 403):
                    raise AccessDenied(
                        f"pull access denied for {self.host}/{repository}: the token server refused "
                        "the credentials (docker login)"
                    )
                await _check(answer, f"a token for {repository}")
                token = await answer.json(content_type=None)
        except (TimeoutError, aiohttp.ClientConnectionError) as exc:
            raise RegistryUnreachable(f"the token server of {self.host} is unreachable") from exc
        value = token.get("token") or token.get("access_token") if isinstance(token, dict) else None
        if not value:
            raise UpstreamError(f"the token server of {self.host} sent no token")
        return f"Bearer {value}"

    async def retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call`` again after a transient failure (a 5xx, a 429, no connection), at most ``attempts``
        times in all, with backoff; a multi-request operation (a blob copy) starts again from its start."""
        for attempt in range(1, self._attempts + 1):
            try:
                return await call()
            except (_Transient, RegistryUnreachable) as exc:
                error = exc.error if isinstance(exc, _Transient) else exc
                if attempt == self._attempts or (isinstance(exc, RegistryUnreachable) and exc.lasting):
                    raise error from None
                delay = self._backoff * 2 ** (attempt - 1)
                if isinstance(exc, _Transient) and exc.retry_after is not None:
                    delay = min(exc.retry_after, _MAX_RETRY_AFTER)
                fields = {"registry": self.host, "attempt": attempt, "reason": error.message}
                log.info("registry request retried", extra={"fields": fields})
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


class _Authorized:
    """``async with`` one authorised request (see :meth:`RegistryClient._send`)."""

    def __init__(
        self,
        client: RegistryClient,
        method: str,
        url: str,
        repository: str,
        headers: dict[str, str],
        data: bytes | None,
    ) -> None:
        self._args = (method, url, repository, headers, data)
        self._client = client
        self._answer: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        self._answer = await self._client._send(*self._args)
        return self._answer

    async def __aexit__(self, *_exc: object) -> None:
        if self._answer is not None:
            self._answer.release()


class _Transient(Exception):
    """A registry answer worth retrying (5xx, 429), with the error to raise when the attempts are spent."""

    def __init__(self, error: SockerlessError, retry_after: float | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


async def _check(answer: aiohttp.ClientResponse, what: str) -> None:
    """Raise for an error answer: transient ones as :class:`_Transient`, the rest in Docker's terms."""
    if answer.status < 400:
        return
    message = await _registry_message(answer)
    detail = f"{what}: {answer.status} {message}".strip()
    if answer.status in _TRANSIENT_STATUSES:
        raise _Transient(UpstreamError(f"registry error for {detail}"), _retry_after(answer))
    if answer.status in (401, 403):
        raise AccessDenied(f"access denied for {detail}")
    if answer.status == 404:
        raise NotFound(f"not found: {detail}")
    raise UpstreamError(f"registry error for {detail}")


async def _registry_message(answer: aiohttp.ClientResponse) -> str:
    """The distribution error's ``code: message`` pairs, else the start of the body."""
    try:
        body = await answer.text()
    except (aiohttp.ClientError, UnicodeDecodeError):
        return ""
    try:
        errors = json.loads(body).get("errors") or []
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors)
    except (ValueError, AttributeError):
        return _redact(body[:200])


def _retry_after(answer: aiohttp.ClientResponse) -> float | None:
    try:
        return max(0.0, float(answer.headers.get("Retry-After", "")))
    except ValueError:
        return None


def _redact(text: str) -> str:
    """Query strings can carry signed URLs' secrets (a CDN's): an error message keeps none."""
    return re.sub(r"\?[^\s'\"]*", "?…", text)
