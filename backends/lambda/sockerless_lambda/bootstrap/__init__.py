"""The bootstrap binaries shipped in this package: the runtime that runs a container's command inside a
function (docs/bootstrap.md). ``./dev setup`` builds them from ``backends/lambda/bootstrap`` (Go)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["BOOTSTRAP_FILES", "binary_path"]

#: The binary for each function architecture (the ``lambda.architecture`` setting's values).
BOOTSTRAP_FILES = {"x86_64": "bootstrap-linux-amd64", "arm64": "bootstrap-linux-arm64"}


def binary_path(architecture: str) -> Path:
    """The bootstrap for ``architecture``; FileNotFoundError names the build step when it was not built."""
    try:
        name = BOOTSTRAP_FILES[architecture]
    except KeyError:
        raise ValueError(
            f"no bootstrap for architecture {architecture!r}: one of {', '.join(BOOTSTRAP_FILES)}"
        ) from None
    path = Path(str(resources.files(__name__).joinpath(name)))
    if not path.is_file():
        raise FileNotFoundError(
            f"the bootstrap {name} is not in the installed plugin ({path}): build it with ./dev setup"
        )
    return path
