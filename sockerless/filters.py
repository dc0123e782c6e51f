"""Docker's list filters: parsing both wire encodings and matching containers."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from sockerless.errors import InvalidParameter
from sockerless.store import ContainerRecord

__all__ = ["CONTAINER_FILTERS", "matches", "parse_filters"]

CONTAINER_FILTERS = frozenset({"id", "name", "label", "status", "ancestor"})
_STATUSES = frozenset({"created", "restarting", "running", "removing", "paused", "exited", "dead"})


def parse_filters(raw: str | None, allowed: frozenset[str] = CONTAINER_FILTERS) -> dict[str, list[str]]:
    """``{"label": {"k=v": true}}`` and ``{"label": ["k=v"]}`` both become ``{"label": ["k=v"]}``."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidParameter(f"invalid filters: {raw!r} is not JSON") from None
    if not isinstance(data, Mapping):
        raise InvalidParameter("invalid filters: expected a JSON object")
    result: dict[str, list[str]] = {}
    for key, value in data.items():
        if key not in allowed:
            raise InvalidParameter(f"invalid filter '{key}' (supported: {', '.join(sorted(allowed))})")
        if isinstance(value, Mapping):
            values = [str(k) for k, enabled in value.items() if enabled]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            values = list(value)
        else:
            raise InvalidParameter(f"invalid filter '{key}': expected a list of strings or an object")
        if key == "status":
            for status in values:
                if status not in _STATUSES:
                    raise InvalidParameter(f"invalid filter 'status={status}'")
        result[key] = values
    return result


def _label_matches(labels: Mapping[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    if key not in labels:
        return False
    return not sep or labels[key] == value


def _name_matches(name: str, pattern: str) -> bool:
    try:
        return re.search(pattern, "/" + name) is not None
    except re.error:
        return pattern in name


def _ancestor_matches(image: str, wanted: str) -> bool:
    if image == wanted:
        return True
    base, _, _ = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
    return base == wanted or image.split("/")[-1] == wanted


def matches(record: ContainerRecord[Any], filters: Mapping[str, list[str]]) -> bool:
    """Values of one key are alternatives; different keys must all hold (Docker's rule), except
    ``label``, where every given label must hold."""
    for key, values in filters.items():
        if not values:
            continue
        if key == "label":
            if not all(_label_matches(record.labels, v) for v in values):
                return False
        elif key == "id":
            if not any(record.id.startswith(v) for v in values):
                return False
        elif key == "name":
            if not any(_name_matches(record.name, v) for v in values):
                return False
        elif key == "status":
            if record.status not in values:
                return False
        elif key == "ancestor" and not any(_ancestor_matches(record.image, v) for v in values):
            return False
    return True
