"""Item 7's floor: a bare aiohttp server whose one handler answers each path with bytes captured from
the backend's own answers (same status, ``Content-Type`` and body): no routing of ours, no
middlewares, no access log, no backend.

Run as ``python -m bench.floor_server <port> <answers.json>``, where the file maps each path with its
query (``/internal/v1/containers?all=1``) to ``{"content_type": ..., "body": <base64>}``; SIGINT or
SIGTERM stops it.
"""

from __future__ import annotations

import base64
import json
import sys

from aiohttp import web


def create_app(answers: dict[str, tuple[str, bytes]]) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        found = answers.get(request.path_qs)
        if found is None:
            return web.Response(status=404)
        content_type, body = found
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/{path:.*}", answer)
    return app


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.floor_server <port> <answers.json>", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as source:
        loaded = json.load(source)
    answers = {path: (item["content_type"], base64.b64decode(item["body"])) for path, item in loaded.items()}
    web.run_app(create_app(answers), host="127.0.0.1", port=int(argv[0]), access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
