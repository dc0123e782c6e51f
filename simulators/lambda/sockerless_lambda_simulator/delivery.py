"""CloudWatch Logs as readers meet it: events show only some time after they were written, a few
much later than the rest, and ``FilterLogEvents`` sometimes answers an empty page that still
carries a ``nextToken`` (it scanned without finding anything yet; the reader must keep paging).

moto shows an event the moment it is put. Here every read through the simulator hides the events
not delivered yet: an event is visible ``delay`` seconds after its ``ingestionTime``, or
``late_seconds`` more for the few chosen as late. Which events are late is decided by a hash of the
seed and the event, so it does not depend on who reads first, and a seeded run replays exactly.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Callable
from typing import Any

from attrs import define, field

__all__ = ["EMPTY_PAGE_TOKEN_PREFIX", "LogDelivery"]

#: Tokens of the simulator's own empty pages; what follows the prefix is moto's token (or nothing).
EMPTY_PAGE_TOKEN_PREFIX = "skls-sim-empty:"  # noqa: S105 - a page marker, not a secret


@define
class LogDelivery:
    """The delivery rules of the reads of one simulator (see the module docstring)."""

    delay: float = 0.0
    late_probability: float = 0.0
    late_seconds: float = 0.0
    late_match: str | None = None
    """Events whose message this regular expression finds are late too (rule-driven, for tests)."""
    empty_page_every: int = 0
    seed: int | None = None
    clock: Callable[[], float] = time.time
    _filter_calls: int = field(default=0, init=False)
    _late_pattern: re.Pattern[str] | None = field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self._late_pattern = re.compile(self.late_match) if self.late_match else None

    # -- FilterLogEvents

    def filter_request(self, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The request to send to moto, or (second) the empty page to answer without asking moto."""
        token = body.get("nextToken")
        if isinstance(token, str) and token.startswith(EMPTY_PAGE_TOKEN_PREFIX):
            original = _decode(token[len(EMPTY_PAGE_TOKEN_PREFIX) :])
            body = {key: value for key, value in body.items() if key != "nextToken"}
            if original:
                body["nextToken"] = original
            return body, None
        self._filter_calls += 1
        if self.empty_page_every and self._filter_calls % self.empty_page_every == 0:
            resume = EMPTY_PAGE_TOKEN_PREFIX + _encode(token if isinstance(token, str) else "")
            return body, {"events": [], "searchedLogStreams": [], "nextToken": resume}
        return body, None

    def filter_answer(self, group: str, document: dict[str, Any]) -> dict[str, Any]:
        """moto's page without the events not delivered yet (its ``nextToken`` kept: a later read
        with an earlier ``startTime`` finds them, as on AWS)."""
        events = document.get("events")
        if isinstance(events, list):
            document["events"] = [
                event for event in events if self.visible(group, str(event.get("logStreamName", "")), event)
            ]
        return document

    # -- GetLogEvents

    def stream_answer(
        self, group: str, stream: str, document: dict[str, Any], forward: bool
    ) -> dict[str, Any]:
        """moto's page of one stream, up to the first event not delivered yet when reading forward
        (the forward token then points just before it, so the next read gets it once it shows)."""
        events = document.get("events")
        if not isinstance(events, list):
            return document
        if not forward:
            document["events"] = [event for event in events if self.visible(group, stream, event)]
            return document
        kept: list[Any] = []
        for event in events:
            if not self.visible(group, stream, event):
                break
            kept.append(event)
        if len(kept) < len(events):
            first = _token_index(document.get("nextBackwardToken"))
            if first is not None:
                document["nextForwardToken"] = f"f/{first + len(kept) - 1:056d}"
        document["events"] = kept
        return document

    # -- the rule

    def visible(self, group: str, stream: str, event: dict[str, Any]) -> bool:
        """Whether CloudWatch has delivered ``event`` by now."""
        if not self.delay and not self.late_probability and self._late_pattern is None:
            return True
        try:
            ingested_ms = int(event.get("ingestionTime", 0))
        except (TypeError, ValueError):
            return True
        wait = self.delay + (self.late_seconds if self._late(group, stream, event) else 0.0)
        return self.clock() * 1000 >= ingested_ms + wait * 1000

    def _late(self, group: str, stream: str, event: dict[str, Any]) -> bool:
        if self._late_pattern is not None and self._late_pattern.search(str(event.get("message", ""))):
            return True
        if self.late_probability <= 0:
            return False
        if self.late_probability >= 1:
            return True
        # The same event is late for every reader and every read: a hash, not a draw.
        identity = event.get("eventId") or f"{event.get('timestamp')}/{event.get('message')}"
        key = f"{self.seed}|{group}|{stream}|{identity}".encode()
        draw = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64
        return draw < self.late_probability


def _encode(token: str) -> str:
    return base64.urlsafe_b64encode(token.encode()).decode()


def _decode(text: str) -> str:
    try:
        return base64.urlsafe_b64decode(text.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ""


def _token_index(token: object) -> int | None:
    if not isinstance(token, str) or len(token) < 3:
        return None
    try:
        return int(token[2:])
    except ValueError:
        return None
