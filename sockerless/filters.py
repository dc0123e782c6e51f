"""Docker's list filters: parsing both wire encodings, matching containers and selecting the list."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from sockerless.errors import InvalidParameter
from sockerless.store import ContainerRecord

__all__ = ["CONTAINER_FILTERS", "matches", "parse_filters", "select_containers"]

CONTAINER_FILTERS = frozenset({"id", "name", "label", "status", "ancestor", "exited", "before", "since"})
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
        if key == "exited":
            for code in values:
                if not re.fullmatch(r"[+-]?[0-9]+", code):  # Go's strconv.Atoi
                    raise InvalidParameter(f"invalid filter 'exited={code}'")
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
    ``label``, where every given label must hold. ``before`` and ``since`` name other containers:
    :func:`select_containers` applies them."""
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
        elif key == "exited":
            # Docker's: a container that ran and is not running now, with one of these exit codes.
            ran = record.status != "running" and record.started_at is not None
            if not ran or str(record.exit_code) not in {str(int(v)) for v in values}:
                return False
        elif key == "ancestor" and not any(_ancestor_matches(record.image, v) for v in values):
            return False
    return True


R = TypeVar("R", bound=ContainerRecord[Any])


def select_containers(
    newest_first: Iterable[R],
    filters: Mapping[str, list[str]],
    *,
    all: bool,
    limit: int | None,
    resolve: Callable[[str], R],
) -> list[R]:
    """Docker's container list: running containers only, unless ``all``, a ``limit`` or a ``status``
    filter asks for the others (moby's ``foldFilter``); then the filters; then the limit.

    ``before=X`` keeps the containers created before X, ``since=X`` those created after it (X by
    name or ID through ``resolve``, which raises ``NotFound``; the last value of each counts, as in
    Docker), in the order of creation the store keeps.
    """
    records = list(newest_first)
    everyone = all or limit is not None or "status" in filters
    start, end = 0, len(records)
    if filters.get("since"):
        anchor = resolve(filters["since"][-1]).id
        end = next((i for i, record in enumerate(records) if record.id == anchor), end)
    if filters.get("before"):
        anchor = resolve(filters["before"][-1]).id
        start = next((i + 1 for i, record in enumerate(records) if record.id == anchor), start)
    listed = [
        record
        for record in records[start:end]
        if (everyone or record.status == "running") and matches(record, filters)
    ]
    return listed[:limit] if limit is not None else listed
