"""The Docker frontend: Docker Engine API 1.44 in front of any sockerless backend.

Real Docker clients (the docker CLI, the Docker SDKs) talk to :class:`DockerFrontend`; it turns
each call into internal-API calls (:mod:`sockerless.client`) and fills the gaps a backend's
capabilities leave where it can do so honestly (read-only attach, log follow).
"""

from sockerless.frontend.app import DockerFrontend, create_app
from sockerless.frontend.context import API_VERSION, MIN_API_VERSION, AttachMode

__all__ = ["API_VERSION", "MIN_API_VERSION", "AttachMode", "DockerFrontend", "create_app"]
