"""What a bootstrap run is given: the function's entrypoint, and the invocation payload v1 that carries
the container's command, environment and working directory (docs/bootstrap.md).

With the bootstrap, the container's own settings travel in each invocation instead of the function's
configuration, so Lambda's 4 KB environment limit and its reserved variable names do not apply to
them; the payload's own limit (6 MB, Lambda's for an invoke request) does, checked at create.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from attrs import frozen

from sockerless.errors import InvalidParameter
from sockerless.models import ContainerConfig

__all__ = [
    "BOOTSTRAP_ENTRYPOINT",
    "BOOTSTRAP_LABEL",
    "DEADLINE_MARGIN_SECONDS",
    "MAX_PAYLOAD_BYTES",
    "PAYLOAD_VERSION",
    "RunCommand",
    "build_payload",
    "function_timeout",
    "run_command",
    "run_id",
    "uses_bootstrap",
]

#: Where the image holds the bootstrap: the function's ImageConfig.EntryPoint in bootstrap mode.
BOOTSTRAP_ENTRYPOINT: Final = "/opt/sockerless/bootstrap"
#: A container label choosing the mode per container (``true`` or ``false``), over ``lambda.bootstrap``.
BOOTSTRAP_LABEL: Final = "sockerless.lambda.bootstrap"
PAYLOAD_VERSION: Final = 1
#: Lambda's limit of an invoke request's payload.
MAX_PAYLOAD_BYTES: Final = 6_291_456
#: The bootstrap stops the command this long before the function's deadline (its default
#: ``SOCKERLESS_BOOTSTRAP_DEADLINE_MARGIN_MS``): the function's timeout is the run's plus this.
DEADLINE_MARGIN_SECONDS: Final = 1
_MAX_FUNCTION_TIMEOUT = 900
_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})


@frozen
class RunCommand:
    """The container's command as the payload carries it."""

    argv: list[str]
    env: list[str]
    workdir: str


def uses_bootstrap(labels: Mapping[str, str] | None, default: bool) -> bool:
    """Whether a container runs through the bootstrap: its label if set, else ``lambda.bootstrap``."""
    value = (labels or {}).get(BOOTSTRAP_LABEL)
    if value is None:
        return default
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise InvalidParameter(f"invalid label {BOOTSTRAP_LABEL}={value!r}: use true or false")


def function_timeout(run_seconds: int) -> int:
    """The function's Timeout for a run of ``run_seconds``: the bootstrap's margin on top, at most 900."""
    return min(run_seconds + DEADLINE_MARGIN_SECONDS, _MAX_FUNCTION_TIMEOUT)


def run_command(config: ContainerConfig, container_id: str) -> RunCommand:
    """The container's command (Docker's Entrypoint + Cmd), environment and working directory, checked
    as the bootstrap checks them, and the payload's size; InvalidParameter (a 400) on a problem."""
    entrypoint = [] if config.entrypoint == [""] else list(config.entrypoint or [])
    argv = entrypoint + list(config.cmd or [])
    if not argv:
        # The image's own ENTRYPOINT and CMD are not known to the backend (the function's entrypoint is
        # the bootstrap): the command must be given.
        raise InvalidParameter(
            "No command specified: a container run through the Lambda bootstrap needs its command "
            "(Entrypoint or Cmd); the image's own are not read"
        )
    workdir = config.working_dir
    if workdir and not workdir.startswith("/"):
        raise InvalidParameter(
            f"the working directory '{workdir}' is invalid, it needs to be an absolute path"
        )
    # Docker's "KEY" without "=" (a variable the client did not resolve) sets nothing.
    env = [item for item in config.env or () if "=" in item and not item.startswith("=")]
    command = RunCommand(argv=argv, env=env, workdir=workdir)
    size = len(build_payload(command, container_id=container_id, run=run_id(container_id, 2**63 - 1)))
    if size > MAX_PAYLOAD_BYTES:
        raise InvalidParameter(
            f"container too large for a Lambda invocation: its command, environment and working directory "
            f"take {size} bytes in the invocation payload, Lambda accepts at most {MAX_PAYLOAD_BYTES}"
        )
    return command


def run_id(container_id: str, start: int) -> str:
    """The ID of the container's ``start``-th run: the key of its durable copy."""
    return f"{container_id}-{start}"


def build_payload(command: RunCommand, *, container_id: str, run: str) -> bytes:
    """The invocation payload v1 of one run (no stdin, no output limits)."""
    payload: dict[str, Any] = {
        "v": PAYLOAD_VERSION,
        "container": container_id,
        "run": run,
        "argv": command.argv,
        "env": command.env,
    }
    if command.workdir:
        payload["workdir"] = command.workdir
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
