"""Item 9, part 4: image preparation (issue 21): ``docker pull`` of a registry image, twice.

A local source registry (Debian's ``docker-registry``, ``LocalRegistry``) holds a busybox image built
by ``tests/imagekit.py`` plus a layer of random bytes (incompressible, so the copy is measurable). The
real docker CLI pulls it through ``sockerless up`` with preparation on; the backend copies the layers
into the simulator's ECR registry and appends the bootstrap layer. Bytes copied: the blobs the ECR
registry holds after a pull and did not before, found by walking its catalog (every repository, tag
and manifest, through the address and credentials ``GetAuthorizationToken`` gives, as the backend
finds it), sized as their manifests name them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from attrs import define

from .aws import aws_client
from .docker_cli import DockerCLI
from .processes import Simulator, sockerless

__all__ = [
    "PREPARE_FLAG",
    "PullFigure",
    "ecr_blobs",
    "measure_preparation",
    "preparation_unavailable",
    "registry_blobs",
]

#: The backend's switch for preparation; its presence in ``sockerless up --help`` says it prepares.
PREPARE_FLAG = "--no-lambda-prepare-images"
PREPARE_ON = "--lambda-prepare-images"
RANDOM_LAYER_BYTES = 20 * 1024 * 1024
SOURCE_REPOSITORY = "bench/busybox"
_MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
    )
)


@define
class PullFigure:
    """One ``docker pull``: its time, its exit, and the blob bytes it added to the ECR registry."""

    seconds: float
    exit_code: int
    new_blobs: int
    new_bytes: int
    error: str = ""


def preparation_unavailable() -> str | None:
    """Why part 4 cannot run here (None when it can): a local registry and busybox are needed."""
    from sockerless_lambda_simulator.registry import registry_unavailable
    from tests.imagekit import busybox_available

    return registry_unavailable() or busybox_available()


async def _ecr_session(sim: Simulator) -> tuple[str, dict[str, str]]:
    """The simulator's ECR registry: its base URL and the Basic credentials ``GetAuthorizationToken``
    gives."""
    async with aws_client("ecr", sim.endpoint_url) as ecr:
        answer = await ecr.get_authorization_token()
    data = answer["authorizationData"][0]
    token = str(data["authorizationToken"])  # base64 of "AWS:<password>": Basic credentials as they are
    return str(data["proxyEndpoint"]).rstrip("/"), {"Authorization": f"Basic {token}"}


async def ecr_blobs(sim: Simulator) -> dict[str, int]:
    """Every blob the simulator's ECR registry names in a manifest: digest → size."""
    return await registry_blobs(*await _ecr_session(sim))


async def registry_blobs(base: str, headers: dict[str, str]) -> dict[str, int]:
    """Every blob a registry names in a manifest (configs and layers, of every repository and tag,
    through indexes): digest → size."""
    blobs: dict[str, int] = {}
    async with aiohttp.ClientSession(base_url=base, headers=headers) as session:

        async def get_json(path: str, accept: str = "application/json") -> Any:
            async with session.get(path, headers={"Accept": accept}) as response:
                if response.status == 404:
                    return {}
                response.raise_for_status()
                return await response.json(content_type=None)

        async def walk(repository: str, reference: str) -> None:
            manifest = await get_json(f"/v2/{repository}/manifests/{reference}", _MANIFEST_TYPES)
            for child in manifest.get("manifests") or ():
                await walk(repository, str(child["digest"]))
            for blob in [manifest.get("config") or {}, *(manifest.get("layers") or ())]:
                if blob.get("digest"):
                    blobs[str(blob["digest"])] = int(blob.get("size", 0))

        for repository in await catalog(session):
            tags = await get_json(f"/v2/{repository}/tags/list")
            for tag in tags.get("tags") or ():
                await walk(repository, tag)
    return blobs


async def catalog(session: aiohttp.ClientSession) -> list[str]:
    """The registry's repositories, page by page (its ``Link: <...>; rel="next"``)."""
    repositories: list[str] = []
    page: str | None = "/v2/_catalog?n=1000"  # the distribution registry's largest page
    while page:
        async with session.get(page) as response:
            response.raise_for_status()
            repositories += (await response.json(content_type=None)).get("repositories") or []
            following = response.links.get("next")
        page = str(following["url"]) if following and "url" in following else None
    return repositories


async def _push_source(registry_url: str, random_bytes: int) -> tuple[str, int]:
    """The source image (busybox + a random layer) pushed; its tag and its blobs' size."""
    from tests.imagekit import busybox_layer, file_layer, image, push_image

    random_layer = file_layer({"data/random.bin": os.urandom(random_bytes)})
    pushed = image([busybox_layer(), random_layer])
    await push_image(registry_url, SOURCE_REPOSITORY, "latest", pushed)
    size = len(pushed.config) + sum(layer.size for layer in pushed.layers)
    return f"{SOURCE_REPOSITORY}:latest", size


async def _pull(cli: DockerCLI, sim: Simulator, reference: str) -> PullFigure:
    before = await ecr_blobs(sim)
    began = time.perf_counter()
    code, _, err = await cli("pull", reference, timeout=600)
    seconds = time.perf_counter() - began
    after = await ecr_blobs(sim)
    new = {digest: size for digest, size in after.items() if digest not in before}
    error = f"exit {code}: {err.strip()[-300:]}" if code else ""
    return PullFigure(seconds, code, len(new), sum(new.values()), error)


async def measure_preparation(
    workdir: str, sim: Simulator, extra: Sequence[str], random_bytes: int = RANDOM_LAYER_BYTES
) -> tuple[list[PullFigure], int]:
    """A first and a repeated ``docker pull`` of the source image through ``sockerless up`` with
    preparation on (``extra``: its other flags); and the source image's size in bytes."""
    from sockerless_lambda_simulator.registry import LocalRegistry

    source_root = os.path.join(workdir, "source-registry")
    async with (
        LocalRegistry(Path(source_root)) as source,
        sockerless(workdir, sim, "up", name="prepare", extra=extra) as served,
    ):
        tag, size = await _push_source(source.url, random_bytes)
        cli = DockerCLI(os.path.join(workdir, "prepare-cli"), served.docker_socket)
        reference = f"{source.host}/{tag}"
        return [await _pull(cli, sim, reference) for _ in range(2)], size
