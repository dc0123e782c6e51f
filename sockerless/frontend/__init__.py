"""The Docker frontend: Docker Engine API 1.44 in front of any sockerless backend.

Real Docker clients (the docker CLI, the Docker SDKs) talk to :class:`DockerFrontend`. It is a thin,
stateless pass-through: each Docker call goes to the backend's internal API (``/internal/v1``) and the
answer comes back as the backend gave it. The frontend decides only what a daemon's front door knows:
the API version, the ping, ``/version`` and ``/info``, the checks Docker's clients act on at create, the
501s of calls no backend serves, and a read-only attach from the backend's own log follow where the
backend cannot attach.
"""

from sockerless.frontend.app import create_app
from sockerless.frontend.context import AttachMode
from sockerless.frontend.server import DockerFrontend
from sockerless.frontend.versions import API_VERSION, MIN_API_VERSION

__all__ = ["API_VERSION", "MIN_API_VERSION", "AttachMode", "DockerFrontend", "create_app"]
