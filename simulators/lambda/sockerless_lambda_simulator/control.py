"""The control API under ``/_sim/``: faults and call statistics, as JSON.

The prefix cannot collide with AWS: Lambda paths start with a date, JSON and query protocols post
to ``/``, and S3 bucket names cannot start with an underscore.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

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
    state_rules = states if states is not None else StateRules()

    async def list_states(_: web.Request) -> web.Response:
        return web.json_response({"states": state_rules.describe()})

    async def add_states(request: web.Request) -> web.Response:
        try:
            data = await request.json()
        except ValueError:
            return _bad_request("the body must be JSON: a state rule, a list of rules or {'states': [...]}")
        items = data.get("states", data) if isinstance(data, dict) and "state" not in data else data
        try:
            rules = [StateRule.from_json(item) for item in (items if isinstance(items, list) else [items])]
        except ValueError as exc:
            return _bad_request(str(exc))
        ids = [state_rules.add(rule) for rule in rules]
        return web.json_response({"ids": ids, "states": state_rules.describe()}, status=201)

    async def clear_states(_: web.Request) -> web.Response:
        state_rules.clear()
        return web.Response(status=204)

    async def remove_state(request: web.Request) -> web.Response:
        if not state_rules.remove(request.match_info["rule_id"]):
            return web.json_response({"error": f"no state rule {request.match_info['rule_id']}"}, status=404)
        return web.Response(status=204)

    async def list_faults(_: web.Request) -> web.Response:
        return web.json_response({"faults": faults.describe()})

    async def add_faults(request: web.Request) -> web.Response:
        try:
            data = await request.json()
        except ValueError:
            return _bad_request("the body must be JSON: a fault rule, a list of rules or {'faults': [...]}")
        items = data.get("faults", data) if isinstance(data, dict) and "kind" not in data else data
        try:
            rules = [FaultRule.from_json(item) for item in (items if isinstance(items, list) else [items])]
        except ValueError as exc:
            return _bad_request(str(exc))
        ids = [faults.add(rule) for rule in rules]
        return web.json_response({"ids": ids, "faults": faults.describe()}, status=201)

    async def clear_faults(_: web.Request) -> web.Response:
        faults.clear()
        return web.Response(status=204)

    async def remove_fault(request: web.Request) -> web.Response:
        if not faults.remove(request.match_info["fault_id"]):
            return web.json_response({"error": f"no fault rule {request.match_info['fault_id']}"}, status=404)
        return web.Response(status=204)

    async def get_stats(_: web.Request) -> web.Response:
        return web.json_response(stats.snapshot())

    async def reset_stats(_: web.Request) -> web.Response:
        stats.reset()
        return web.Response(status=204)

    async def get_info(_: web.Request) -> web.Response:
        return web.json_response(dict(info()))

    router.add_get(f"{CONTROL_PREFIX}/faults", list_faults)
    router.add_post(f"{CONTROL_PREFIX}/faults", add_faults)
    router.add_delete(f"{CONTROL_PREFIX}/faults", clear_faults)
    router.add_delete(f"{CONTROL_PREFIX}/faults/{{fault_id}}", remove_fault)
    router.add_get(f"{CONTROL_PREFIX}/states", list_states)
    router.add_post(f"{CONTROL_PREFIX}/states", add_states)
    router.add_delete(f"{CONTROL_PREFIX}/states", clear_states)
    router.add_delete(f"{CONTROL_PREFIX}/states/{{rule_id}}", remove_state)
    router.add_get(f"{CONTROL_PREFIX}/stats", get_stats)
    router.add_post(f"{CONTROL_PREFIX}/reset-stats", reset_stats)
    router.add_get(f"{CONTROL_PREFIX}/info", get_info)


def _bad_request(message: str) -> web.Response:
    return web.Response(status=400, text=json.dumps({"error": message}), content_type="application/json")
