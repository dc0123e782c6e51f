"""Docker API versions: the one the frontend speaks, the oldest it accepts, and the guard on ``/vX.Y/``.

Every route is served unversioned and under a version prefix, because the CLI negotiates from the
ping's ``API-Version`` header and the SDK from ``/version`` and both then prefix every path. A version
outside the range gets Docker's own 400, word for word, so the clients print what they would print
against Docker.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from sockerless.errors import InvalidParameter
from sockerless.http.middlewares import Handler

__all__ = ["API_VERSION", "MIN_API_VERSION", "VERSION_PREFIX", "api_version_guard"]

#: Advertised by ``_ping`` and ``/version``: below 1.30 the CLI would use events instead of wait.
API_VERSION: Final = "1.44"
#: Docker's own minimum.
MIN_API_VERSION: Final = "1.24"
#: The path prefix every route is also served under; the guard reads ``api_version`` from it.
VERSION_PREFIX: Final = r"/v{api_version:[0-9]+\.[0-9]+}"


def _as_tuple(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor)


@web.middleware
async def api_version_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a ``/vX.Y/`` path outside ``MIN_API_VERSION..API_VERSION`` before any backend call."""
    requested = request.match_info.get("api_version")
    if requested is not None:
        version = _as_tuple(requested)
        if version > _as_tuple(API_VERSION):
            raise InvalidParameter(
                f"client version {requested} is too new. Maximum supported API version is {API_VERSION}"
            )
        if version < _as_tuple(MIN_API_VERSION):
            raise InvalidParameter(
                f"client version {requested} is too old. Minimum supported API version is "
                f"{MIN_API_VERSION}, please upgrade your client to a newer version"
            )
    return await handler(request)
