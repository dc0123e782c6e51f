"""The control API under ``/_sim/``: faults and call statistics, as JSON.

The prefix cannot collide with AWS: Lambda paths start with a date, JSON and query protocols post
to ``/``, and S3 bucket names cannot start with an underscore.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from aiohttp import web

from .faults import FaultInjector, FaultRule
from .state import StateRule, StateRules
from .stats import Stats

__all__ = ["CONTROL_PREFIX", "add_control_routes"]

CONTROL_PREFIX = "/_sim"


def add_control_routes(
    router: web.UrlDispatcher,
    faults: FaultInjector,
    stats: Stats,
    info: Callable[[], Mapping[str, Any]],
    states: StateRules | None = None,
) -> None:
    """``GET|POST|DELETE /_sim/faults``, ``DELETE /_sim/faults/{id}``, ``GET|POST|DELETE /_sim/states``,
    ``DELETE /_sim/states/{id}``, ``GET /_sim/stats``, ``POST /_sim/reset-stats``, ``GET /_sim/info``."""
    _add_rule_routes(router, "faults", "kind", faults, FaultRule.from_json, "fault rule")
    state_rules = states if states is not None else StateRules()
    _add_rule_routes(router, "states", "state", state_rules, StateRule.from_json, "state rule")

    async def get_stats(_: web.Request) -> web.Response:
        return web.json_response(stats.snapshot())

    async def reset_stats(_: web.Request) -> web.Response:
        stats.reset()
        return web.Response(status=204)

    async def get_info(_: web.Request) -> web.Response:
        return web.json_response(dict(info()))

    router.add_get(f"{CONTROL_PREFIX}/stats", get_stats)
    router.add_post(f"{CONTROL_PREFIX}/reset-stats", reset_stats)
    router.add_get(f"{CONTROL_PREFIX}/info", get_info)


class _RuleSet(Protocol):
    def add(self, rule: Any, /) -> str: ...
    def remove(self, rule_id: str, /) -> bool: ...
    def clear(self) -> None: ...
    def describe(self) -> list[dict[str, Any]]: ...


def _add_rule_routes(
    router: web.UrlDispatcher,
    plural: str,
    marker: str,
    rules: _RuleSet,
    parse: Callable[[Any], Any],
    noun: str,
) -> None:
    """``GET|POST|DELETE /_sim/<plural>`` and ``DELETE /_sim/<plural>/{id}`` for one set of rules. A body
    is one rule (a JSON object with its ``marker`` key), a list of rules or ``{"<plural>": [...]}``."""

    async def list_rules(_: web.Request) -> web.Response:
        return web.json_response({plural: rules.describe()})

    async def add_rules(request: web.Request) -> web.Response:
        try:
            data = await request.json()
        except ValueError:
            return _bad_request(f"the body must be JSON: a {noun}, a list of rules or {{'{plural}': [...]}}")
        items = data.get(plural, data) if isinstance(data, dict) and marker not in data else data
        try:
            parsed = [parse(item) for item in (items if isinstance(items, list) else [items])]
        except ValueError as exc:
            return _bad_request(str(exc))
        ids = [rules.add(rule) for rule in parsed]
        return web.json_response({"ids": ids, plural: rules.describe()}, status=201)

    async def clear_rules(_: web.Request) -> web.Response:
        rules.clear()
        return web.Response(status=204)

    async def remove_rule(request: web.Request) -> web.Response:
        rule_id = request.match_info["rule_id"]
        if not rules.remove(rule_id):
            return web.json_response({"error": f"no {noun} {rule_id}"}, status=404)
        return web.Response(status=204)

    router.add_get(f"{CONTROL_PREFIX}/{plural}", list_rules)
    router.add_post(f"{CONTROL_PREFIX}/{plural}", add_rules)
    router.add_delete(f"{CONTROL_PREFIX}/{plural}", clear_rules)
    router.add_delete(f"{CONTROL_PREFIX}/{plural}/{{rule_id}}", remove_rule)


def _bad_request(message: str) -> web.Response:
    return web.Response(status=400, text=json.dumps({"error": message}), content_type="application/json")
