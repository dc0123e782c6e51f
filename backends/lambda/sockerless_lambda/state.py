"""The Lambda backend's own state of a container, kept by the store beside the container's record.

A container on the bootstrap shares its function with every container of the same image configuration
(``function_key``, see :mod:`.shared_functions`); any other container is its own function
(``<prefix><24 hex of the ID>``). One start is one invocation. The
state says where the function and the current run are, so that a backend restarted at any moment
can finish what was under way (see :mod:`.reconcile`). The container's output is not here: it is in
the store's log store, and :mod:`.output` records here how far the current run's output has come.
"""

from __future__ import annotations

from typing import Final

from attrs import Factory, define

from sockerless.store import ContainerRecord
from sockerless.wire import python_names

__all__ = ["CREATING", "DONE", "QUEUED", "SENT", "LambdaState", "OutputSource", "Record"]

#: ``function_state`` until CreateFunction has answered; after that, the function's State from AWS.
CREATING: Final = "creating"
#: ``invocation``: the start is accepted but the Invoke is not sent; it may be under way; it ended.
QUEUED: Final = "queued"
SENT: Final = "sent"
DONE: Final = "done"


class OutputSource:
    """Where the current run's output came from (``LambdaState.output_source``)."""

    NONE: Final = ""
    #: The Invoke's ``LogType=Tail`` held the whole run: complete at once, its lines carry the time the
    #: run ended until CloudWatch's own times are asked for (``output_timed``).
    TAIL: Final = "tail"
    #: Read from CloudWatch as it delivered it (while followed, or a run too long for the tail).
    CLOUDWATCH: Final = "cloudwatch"
    #: The bootstrap's response stream (and its durable copy for what the stream lost).
    STREAM: Final = "stream"


@python_names  # stored under these names (as records written before the log store have them)
@define
class LambdaState:
    function_name: str
    function_arn: str = ""
    #: The image the function was created from, as Lambda got it (a local tag resolved): the one to
    #: create it from again. Empty in records written before it was kept: ``Config.Image`` then.
    image_uri: str = ""
    function_state: str = CREATING
    invocation: str = ""
    #: The current (or last) run's request ID, and those of earlier runs (their lines are not this run's).
    request_id: str = ""
    past_request_ids: list[str] = Factory(list)
    #: The log store's last position before the current run: the run's output comes after it.
    output_from: int = 0
    output_source: str = OutputSource.NONE
    #: The run's output is all in the log store (a follower may end).
    output_complete: bool = False
    #: Its lines carry CloudWatch's own times.
    output_timed: bool = False
    #: The last exit is not the command's own: it never ran, or how its run ended is unknown (the
    #: wait answer then carries ``Error``; see :class:`sockerless.waiters.ExitStatus`).
    daemon_error: bool = False
    #: The container runs through the bootstrap (decided at create: a later change of
    #: ``lambda.bootstrap`` does not change how its function was made).
    bootstrap: bool = False
    #: The key of the shared function the container runs on (see :mod:`.shared_functions`); empty for a
    #: container with a function of its own (not on the bootstrap, or created before functions were shared).
    function_key: str = ""
    #: Starts so far; the current run's ID (``<container ID>-<starts>``, the key of the bootstrap's
    #: durable copy), written before its invoke is sent.
    starts: int = 0
    run_id: str = ""
    #: Only in records written before the log store existed: the run's LogType=Tail, moved into the
    #: log store when the backend starts.
    log_tail: str = ""


#: A container's record as the Lambda backend stores it: with its :class:`LambdaState`.
Record = ContainerRecord[LambdaState]
