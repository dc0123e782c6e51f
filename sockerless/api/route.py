"""What describes one route of the internal API: :class:`Route`, its :class:`Body` and :class:`Answer`.

The routes themselves are in :mod:`.routes`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from attrs import Factory, frozen

from sockerless.api.params import Flag, Param

__all__ = [
    "ANY_OBJECT",
    "PREFIX",
    "PROGRESS_LINE",
    "Answer",
    "AnswerKind",
    "Body",
    "Route",
    "always",
    "empty_answer",
    "following",
    "json_answer",
]

PREFIX: Final = "/internal/v1"
JSONObject = dict[str, Any]
_PATH_PARAMETER = re.compile(r"\{([a-z_]+)\}")


class AnswerKind(enum.Enum):
    JSON = "json"  # the call's result as JSON (a model, a list of models, or JSON as the backend made it)
    EMPTY = "empty"  # only a status
    WAIT = "wait"  # headers at once, the WaitResponse when the condition holds
    LOGS = "logs"  # Docker frames (raw bytes for a Tty container), streamed while following
    PROGRESS = "progress"  # NDJSON progress lines
    UPGRADE = "upgrade"  # 101, then the backend's session on the raw connection
    EVENTS = "events"  # headers at once, then one EventMessage per line as events happen


@frozen
class Answer:
    kind: AnswerKind
    status: int = 200
    #: An attrs class, ``list[cls]``, or a JSON Schema (the backend's own JSON); None for no body.
    model: Any = None
    #: Other successful statuses (a 304 for start on a running container).
    also: tuple[int, ...] = ()


@frozen
class Body:
    """The request body: structured into ``model`` (an attrs class) or passed as JSON (a schema), and
    handed to the backend as the keyword ``arg``; ``application/x-tar`` is passed as a byte stream."""

    arg: str
    model: Any
    required: bool = True
    media_type: str = "application/json"


@frozen
class Route:
    operation_id: str
    method: str
    path: str  # under PREFIX, with {name} path parameters
    call: str  # the Backend method
    summary: str
    tag: str
    answer: Answer
    query: tuple[Param, ...] = ()
    #: The query parameters are the fields of this class, handed to the backend as ``options``.
    options: type[Any] | None = None
    body: Body | None = None
    errors: tuple[int, ...] = ()
    capability: str | None = None
    #: A state change: shielded from the client hanging up, and waited for at shutdown.
    changes_state: bool = False
    #: Reaches the backend's cloud: may answer 403, 502, 503 and 504.
    cloud: bool = True
    #: Path parameter -> the backend's keyword for it.
    path_args: Mapping[str, str] = Factory(dict)
    #: Requests that may last as long as a container runs (from the query): not counted as in flight.
    long_lived: Callable[[Mapping[str, str]], bool] | None = None

    @property
    def full_path(self) -> str:
        return PREFIX + self.path

    @property
    def path_names(self) -> list[str]:
        return _PATH_PARAMETER.findall(self.path)

    def target(self, **values: str) -> str:
        """The path with its parameters filled in (each value already quoted as a segment)."""
        return PREFIX + _PATH_PARAMETER.sub(lambda match: values[match.group(1)], self.path)


def always(_: Mapping[str, str]) -> bool:
    """Every request of the route is long-lived (wait, attach)."""
    return True


def following(query: Mapping[str, str]) -> bool:
    """A logs request is long-lived when it follows."""
    return bool(Flag().parse("follow", query.get("follow")))


def json_answer(model: Any, status: int = 200) -> Answer:
    return Answer(AnswerKind.JSON, status, model)


def empty_answer(status: int = 204, *also: int) -> Answer:
    return Answer(AnswerKind.EMPTY, status, also=also)


ANY_OBJECT: Final[JSONObject] = {"type": "object"}
PROGRESS_LINE: Final[JSONObject] = {
    "type": "object",
    "description": 'One NDJSON line; a failure after the stream started is {"errorDetail": {"message": M}, '
    '"error": M}.',
    "properties": {
        "status": {"type": "string"},
        "error": {"type": "string"},
        "errorDetail": {"type": "object", "properties": {"message": {"type": "string"}}},
    },
}
