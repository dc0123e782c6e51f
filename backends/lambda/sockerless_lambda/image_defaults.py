"""Docker's create semantics: a container's Config gets its image's defaults (``runconfig.Merge``).

* ``User``, ``WorkingDir``, ``StopSignal``, ``Healthcheck``: the image's when the container sets none.
* ``Env``: the image's entries whose name the container does not set are appended (the container's win).
* ``Labels``, ``ExposedPorts``, ``Volumes``: merged, the container's values winning.
* ``Entrypoint``/``Cmd``: when the container gives no entrypoint, it inherits the image's ``Cmd`` if
  it gives none either, and the image's ``Entrypoint`` if it left it unset (``--entrypoint ""``
  clears it and inherits nothing). A container that gives an entrypoint inherits no ``Cmd``.
"""

from __future__ import annotations

import attrs

from sockerless.models import ContainerConfig

__all__ = ["apply_image_defaults"]


def apply_image_defaults(config: ContainerConfig, image: ContainerConfig) -> ContainerConfig:
    """``config`` with ``image``'s defaults where it leaves them open (a new object; both unchanged)."""
    changes: dict[str, object] = {}
    if not config.user and image.user:
        changes["user"] = image.user
    if not config.working_dir and image.working_dir:
        changes["working_dir"] = image.working_dir
    if config.stop_signal is None and image.stop_signal is not None:
        changes["stop_signal"] = image.stop_signal
    if config.healthcheck is None and image.healthcheck is not None:
        changes["healthcheck"] = image.healthcheck
    if image.env:
        if not config.env:
            changes["env"] = list(image.env)
        else:
            given = {entry.partition("=")[0] for entry in config.env}
            extra = [entry for entry in image.env if entry.partition("=")[0] not in given]
            if extra:
                changes["env"] = [*config.env, *extra]
    for name in ("labels", "exposed_ports", "volumes"):
        mine, theirs = getattr(config, name), getattr(image, name)
        if theirs:
            changes[name] = {**theirs, **(mine or {})}
    if not config.entrypoint:
        if not config.cmd and image.cmd:
            changes["cmd"] = list(image.cmd)
            if image.args_escaped is not None:
                changes["args_escaped"] = image.args_escaped
        if config.entrypoint is None and image.entrypoint:
            changes["entrypoint"] = list(image.entrypoint)
    return attrs.evolve(config, **changes) if changes else config  # type: ignore[arg-type]
