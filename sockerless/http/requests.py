"""Reading a request's JSON body, with Docker-style 400s (query values: :mod:`sockerless.api.params`)."""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

from sockerless.errors import InvalidParameter

__all__ = ["decode_json", "read_json"]


def _refuse_constant(name: str) -> Any:
    """JSON has no NaN or Infinity; Python's parser accepts them unless told not to."""
    raise ValueError(f"{name} is not valid JSON")


_DECODER: Final = json.JSONDecoder(parse_constant=_refuse_constant)


def decode_json(body: bytes) -> Any:
    """A JSON document, or a 400 saying where it is broken."""
    try:
        return _DECODER.decode(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidParameter("request body is not UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise InvalidParameter(
            f"invalid JSON body: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidParameter("invalid JSON body: nested too deeply") from None
    except ValueError as exc:  # Python's limit on integer digits, or a NaN/Infinity literal
        raise InvalidParameter(f"invalid JSON body: {exc}") from None


async def read_json(request: web.Request, *, required: bool = True) -> Any:
    """The request's JSON body; an absent body is a 400 when ``required``, else ``{}``."""
    if not request.can_read_body:
        if required:
            raise InvalidParameter("request body is empty; a JSON object is required")
        return {}
    return decode_json(await request.read())
