"""Container records shared by the store's tests (import as ``tests.core.records``)."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Final, TypeVar

from sockerless.models import ContainerConfig, HostConfig
from sockerless.store import ContainerRecord

S = TypeVar("S")

BASE_TIME: Final = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def container_id(seed: str) -> str:
    """A 64-hex container ID derived from ``seed``."""
    return hashlib.sha256(seed.encode()).hexdigest()


def bare_container(name: str, backend_state: S, *, id: str | None = None) -> ContainerRecord[S]:
    """Container ``name``, created at BASE_TIME with its config and host config at their defaults; its
    ID is derived from its name unless given."""
    return ContainerRecord(
        id=id or container_id(name),
        name=name,
        created=BASE_TIME,
        image="alpine",
        config=ContainerConfig(),
        host_config=HostConfig(),
        backend_state=backend_state,
    )
