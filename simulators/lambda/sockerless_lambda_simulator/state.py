"""What moto forgets about a function: LoggingConfig, ImageConfig updates, and its state.

Lambda's ``State`` (botocore's enum: Pending, Active, Inactive, Failed, Deactivating, Deactivated,
ActiveNonInvocable, Deleting) with ``StateReason``/``StateReasonCode``, and ``LastUpdateStatus``
with its reason, as GetFunction and GetFunctionConfiguration report them. A function goes through
phases: ``Pending`` (``pending_seconds``), then ``Active``, or the state a matching
:class:`StateRule` names; an ``Active`` function idle for ``inactive_after_seconds`` is ``Inactive``
and an Invoke wakes it (``Pending``, reason ``Restoring``, then ``Active``)."""

from __future__ import annotations

import fnmatch
import itertools
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

from attrs import define, evolve, field, fields, frozen, validators

__all__ = [
    "DEFAULT_PENDING_SECONDS",
    "RULE_STATES",
    "STATE_REASON_CODES",
    "FunctionStateOverlay",
    "LoggingConfig",
    "StateRule",
    "StateRules",
]

DEFAULT_PENDING_SECONDS = 2.0
"""How long a new function stays ``Pending``: AWS keeps every new function Pending for a few seconds
(longer with a VPC), so a client that invokes at once meets the 409 by default, as it would there."""

#: The states a rule can put a function in (Pending and Active come by themselves).
RULE_STATES = ("Failed", "Inactive", "Deactivating", "Deactivated", "ActiveNonInvocable", "Deleting")
#: botocore's Lambda model, enum ``StateReasonCode`` (``LastUpdateStatusReasonCode`` is the same
#: list without Idle, Creating, Restoring and DrainingDurableExecutions).
STATE_REASON_CODES = (
    "Idle",
    "Creating",
    "Restoring",
    "EniLimitExceeded",
    "InsufficientRolePermissions",
    "InvalidConfiguration",
    "InternalError",
    "SubnetOutOfIPAddresses",
    "InvalidSubnet",
    "InvalidSecurityGroup",
    "ImageDeleted",
    "ImageAccessDenied",
    "InvalidImage",
    "KMSKeyAccessDenied",
    "KMSKeyNotFound",
    "InvalidStateKMSKey",
    "DisabledKMSKey",
    "EFSIOError",
    "EFSMountConnectivityError",
    "EFSMountFailure",
    "EFSMountTimeout",
    "InvalidRuntime",
    "InvalidZipFileException",
    "FunctionError",
    "ServiceQuotaExceededException",
    "VcpuLimitExceeded",
    "CapacityProviderScalingLimitExceeded",
    "InsufficientCapacity",
    "EC2RequestLimitExceeded",
    "FunctionError.InitTimeout",
    "FunctionError.RuntimeInitError",
    "FunctionError.ExtensionInitError",
    "FunctionError.InvalidEntryPoint",
    "FunctionError.InvalidWorkingDirectory",
    "FunctionError.PermissionDenied",
    "FunctionError.TooManyExtensions",
    "FunctionError.InitResourceExhausted",
    "DisallowedByVpcEncryptionControl",
    "DrainingDurableExecutions",
    "DependencyError",
)

# StateReason texts. Creating and ImageAccessDenied are AWS's wording; the others are ours (not
# checked against a real account): AWS's exact texts vary and nothing should parse them.
_REASONS = {
    "Creating": "The function is being created.",
    "Restoring": "The function is being restored.",
    "Idle": "The function has been idle long enough for Lambda to reclaim its resources.",
    "ImageAccessDenied": (
        "Lambda does not have permission to access the ECR image. Check the ECR permissions."
    ),
    "ImageDeleted": "The function's image was deleted from its repository.",
    "InvalidImage": "The function's image is not valid for Lambda.",
    "SubnetOutOfIPAddresses": (
        "Lambda was unable to create a network interface because the function's subnets have no free "
        "IP addresses."
    ),
    "EniLimitExceeded": (
        "Lambda was unable to create a network interface because the account's limit for network "
        "interfaces has been reached."
    ),
    "InsufficientRolePermissions": "The function's execution role lacks permissions Lambda needs.",
    "InternalError": "An internal error occurred.",
}
#: What a state a rule set gives way to after the rule's ``seconds``.
_SUCCESSORS = {"Deactivating": "Inactive", "ActiveNonInvocable": "Active", "Inactive": "Active"}
_DEFAULT_CODES = {
    "Failed": "InternalError",
    "Inactive": "Idle",
    "Deactivating": "Idle",
    "Deactivated": "Idle",
}


def reason_for(code: str | None) -> str | None:
    if code is None:
        return None
    return _REASONS.get(code, f"The function's resources could not be set up ({code}).")


def _check_state(_: object, __: object, value: str) -> None:
    # Any other name stands for a state AWS may add later, for clients that must not hang on it.
    if not value or not value.isalnum() or value in ("Pending", "Active"):
        raise ValueError(
            f"state {value!r}: one of {', '.join(RULE_STATES)} (or a name of letters for a state "
            "AWS may add); Pending and Active come by themselves"
        )


@frozen
class StateRule:
    """Put functions whose image and name match in ``state`` (``on="create"``: after their
    ``Pending``), or fail their updates (``on="update"``, ``state="Failed"``: ``LastUpdateStatus``).

    ``image`` and ``function`` are shell patterns (``fnmatch``) of ``Code.ImageUri`` and the function
    name. ``seconds`` (``None``: for good) is how long the state lasts before the next one:
    Deactivating → Inactive, ActiveNonInvocable → Active. An ``Inactive`` state with a
    ``reason_code`` other than ``Idle`` is one whose reactivation fails (it goes back to Inactive).
    A rule applies to ``count`` functions (``None``: all).
    """

    state: str = field(validator=_check_state)
    image: str = "*"
    function: str = "*"
    reason_code: str | None = field(
        default=None, validator=validators.optional(validators.in_(STATE_REASON_CODES))
    )
    reason: str | None = None
    seconds: float | None = field(default=None, validator=validators.optional(validators.gt(0.0)))
    count: int | None = field(default=None, validator=validators.optional(validators.ge(1)))
    on: str = field(default="create", validator=validators.in_(("create", "update")))

    def __attrs_post_init__(self) -> None:
        if self.on == "update" and self.state != "Failed":
            raise ValueError("a rule on updates fails them: its state must be 'Failed'")

    @classmethod
    def from_json(cls, data: object) -> StateRule:
        """Build a rule from its JSON form; raise ``ValueError`` with a readable message."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a state rule must be a JSON object, got {type(data).__name__}")
        values = {key: value for key, value in data.items() if key not in ("id", "applied")}
        unknown = set(values) - set(_STATE_RULE_FIELDS)
        if unknown:
            raise ValueError(f"unknown state rule fields: {', '.join(sorted(unknown))}")
        if "state" not in values:
            raise ValueError(f"a state rule needs 'state' (one of {', '.join(RULE_STATES)})")
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"invalid state rule {dict(data)!r}: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _STATE_RULE_FIELDS}

    def matches(self, on: str, name: str, image: str) -> bool:
        return (
            self.on == on
            and fnmatch.fnmatchcase(name, self.function)
            and fnmatch.fnmatchcase(image, self.image)
        )

    @property
    def code(self) -> str | None:
        return self.reason_code or _DEFAULT_CODES.get(self.state)

    @property
    def text(self) -> str | None:
        return self.reason or reason_for(self.code)


_STATE_RULE_FIELDS: tuple[str, ...] = tuple(attribute.name for attribute in fields(StateRule))


@define
class _ActiveStateRule:
    id: str
    rule: StateRule
    applied: int = 0


class StateRules:
    """The active state rules, matched in the order they were added (the first match wins)."""

    def __init__(self, rules: Iterable[StateRule] = ()) -> None:
        self._ids = itertools.count(1)
        self._rules: list[_ActiveStateRule] = []
        for rule in rules:
            self.add(rule)

    def add(self, rule: StateRule) -> str:
        active = _ActiveStateRule(id=f"s{next(self._ids)}", rule=rule)
        self._rules.append(active)
        return active.id

    def remove(self, rule_id: str) -> bool:
        before = len(self._rules)
        self._rules = [active for active in self._rules if active.id != rule_id]
        return len(self._rules) != before

    def clear(self) -> None:
        self._rules.clear()

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"id": active.id, **active.rule.to_json(), "applied": active.applied} for active in self._rules
        ]

    def take(self, on: str, name: str, image: str) -> StateRule | None:
        """The first rule matching this create or update, counted as applied."""
        for active in list(self._rules):
            if active.rule.matches(on, name, image):
                active.applied += 1
                if active.rule.count is not None and active.applied >= active.rule.count:
                    self._rules.remove(active)
                return active.rule
        return None


@frozen
class _Phase:
    """A function's state for a while: ``until`` (a clock time) it gives way to ``then``."""

    state: str
    code: str | None = None
    reason: str | None = None
    until: float | None = None
    then: _Phase | None = None


_ACTIVE = _Phase("Active")


@frozen
class LoggingConfig:
    """A function's ``LoggingConfig``; ``log_group=None`` means Lambda's ``/aws/lambda/<name>``."""

    log_format: str = "Text"
    log_group: str | None = None
    application_log_level: str | None = None
    system_log_level: str | None = None

    def group_for(self, function_name: str) -> str:
        return self.log_group or f"/aws/lambda/{function_name}"

    def merged(self, wire: Mapping[str, Any]) -> LoggingConfig:
        """Apply the fields a CreateFunction/UpdateFunctionConfiguration body sets."""
        return evolve(
            self,
            log_format=wire.get("LogFormat", self.log_format),
            log_group=wire.get("LogGroup", self.log_group) or None,
            application_log_level=wire.get("ApplicationLogLevel", self.application_log_level),
            system_log_level=wire.get("SystemLogLevel", self.system_log_level),
        )

    def to_wire(self, function_name: str) -> dict[str, str]:
        wire = {"LogFormat": self.log_format, "LogGroup": self.group_for(function_name)}
        if self.application_log_level:
            wire["ApplicationLogLevel"] = self.application_log_level
        if self.system_log_level:
            wire["SystemLogLevel"] = self.system_log_level
        return wire


_Key = tuple[str, str]  # region, function name


@define
class _Update:
    """``LastUpdateStatus`` and its reason; ``InProgress`` until ``until``, then ``then``."""

    status: str = "Successful"
    code: str | None = None
    reason: str | None = None
    until: float | None = None
    then: _Update | None = None


class FunctionStateOverlay:
    """Remembers LoggingConfig, ImageConfig and each function's state, and rewrites moto's answers."""

    def __init__(
        self,
        pending_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        rules: StateRules | None = None,
        inactive_after_seconds: float | None = None,
    ) -> None:
        self.pending_seconds = pending_seconds
        self.inactive_after_seconds = inactive_after_seconds
        self.rules = rules if rules is not None else StateRules()
        self._clock = clock
        self._logging: dict[_Key, LoggingConfig] = {}
        self._image_configs: dict[_Key, dict[str, Any]] = {}
        self._phases: dict[_Key, _Phase] = {}
        self._updates: dict[_Key, _Update] = {}
        #: When each function last ran (or became Active): the start of its idle time.
        self._used_at: dict[_Key, float] = {}

    def record_create(
        self, region: str, name: str, logging: Mapping[str, Any] | None, image: str = ""
    ) -> None:
        key = (region, name)
        now = self._clock()
        self._logging[key] = LoggingConfig().merged(logging or {})
        rule = self.rules.take("create", name, image)
        settled = _ACTIVE if rule is None else _rule_phase(rule, now + self.pending_seconds)
        if self.pending_seconds > 0:
            creating = _reason_phase("Pending", "Creating")
            self._phases[key] = evolve(creating, until=now + self.pending_seconds, then=settled)
        else:
            self._phases[key] = settled
        if settled.state == "Failed":
            failed = _Update("Failed", settled.code, settled.reason)
            self._updates[key] = _in_progress("Creating", now, self.pending_seconds, failed)
        else:
            self._updates[key] = _in_progress("Creating", now, self.pending_seconds, _Update())
        self._used_at[key] = now + self.pending_seconds

    def record_update(self, region: str, name: str, body: Mapping[str, Any], image: str = "") -> None:
        """Remember what an UpdateFunctionConfiguration body changes that moto ignores, unless a rule
        fails the update (Lambda then keeps the previous configuration)."""
        key = (region, name)
        rule = self.rules.take("update", name, image)
        if rule is not None:
            failed = _Update("Failed", rule.code, rule.text)
            self._updates[key] = _in_progress(None, self._clock(), self.pending_seconds, failed)
            return
        logging = body.get("LoggingConfig")
        if isinstance(logging, Mapping):
            self._logging[key] = self.logging_config(region, name).merged(logging)
        image_config = body.get("ImageConfig")
        if isinstance(image_config, Mapping):
            self._image_configs[key] = dict(image_config)

    def knows(self, region: str, name: str) -> bool:
        """Whether the function was created through the simulator (and not deleted since)."""
        return (region, name) in self._logging

    def record_deleting(self, region: str, name: str) -> None:
        """A DeleteFunction is under way: ``Deleting`` until :meth:`forget`."""
        self._phases[(region, name)] = _Phase("Deleting")

    def forget(self, region: str, name: str) -> None:
        key = (region, name)
        for table in (self._logging, self._image_configs, self._phases, self._updates, self._used_at):
            table.pop(key, None)

    def logging_config(self, region: str, name: str) -> LoggingConfig:
        return self._logging.get((region, name), LoggingConfig())

    def state(self, region: str, name: str) -> str:
        return self._phase(region, name).state

    def invoked(self, region: str, name: str) -> str:
        """An Invoke reached the function: the state it meets. An Inactive function is woken by it:
        ``Pending`` (``Restoring``) for ``pending_seconds``, then Active, or Inactive again when
        its reactivation fails (a rule's reason other than ``Idle``)."""
        key = (region, name)
        phase = self._phase(region, name)
        now = self._clock()
        if phase.state == "Active":
            self._used_at[key] = now
        elif phase.state == "Inactive":
            after = _ACTIVE if phase.code in (None, "Idle") else phase
            restoring = _reason_phase("Pending", "Restoring")
            if self.pending_seconds > 0:
                self._phases[key] = evolve(restoring, until=now + self.pending_seconds, then=after)
            else:
                self._phases[key] = after
            self._used_at[key] = now + self.pending_seconds
        return phase.state

    def _phase(self, region: str, name: str) -> _Phase:
        key = (region, name)
        phase = self._phases.get(key, _ACTIVE)
        now = self._clock()
        changed = False
        while phase.until is not None and now >= phase.until:
            ended = phase.until
            phase = phase.then or _ACTIVE
            changed = True
            if phase.state == "Active":
                self._used_at[key] = ended
        if changed:
            self._phases[key] = phase
        idle_limit = self.inactive_after_seconds
        if phase.state == "Active" and idle_limit is not None:
            used_at = self._used_at.get(key)
            if used_at is not None and now - used_at >= idle_limit:
                phase = _reason_phase("Inactive", "Idle")
                self._phases[key] = phase
        return phase

    def _update(self, region: str, name: str) -> _Update:
        key = (region, name)
        update = self._updates.get(key, _Update())
        while update.until is not None and self._clock() >= update.until:
            update = update.then or _Update()
            self._updates[key] = update
        return update

    def rewrite(self, region: str, configuration: MutableMapping[str, Any]) -> None:
        """Put LoggingConfig and the state fields into one FunctionConfiguration document."""
        name = configuration.get("FunctionName")
        if not isinstance(name, str):
            return
        configuration["LoggingConfig"] = self.logging_config(region, name).to_wire(name)
        image_config = self._image_configs.get((region, name))
        if image_config is not None:
            configuration["ImageConfigResponse"] = {"ImageConfig": image_config}
        for stale in _REASON_FIELDS:
            configuration.pop(stale, None)
        phase = self._phase(region, name)
        configuration["State"] = phase.state
        if phase.code is not None:
            configuration["StateReasonCode"] = phase.code
        if phase.reason is not None:
            configuration["StateReason"] = phase.reason
        update = self._update(region, name)
        configuration["LastUpdateStatus"] = update.status
        if update.code is not None:
            configuration["LastUpdateStatusReasonCode"] = update.code
        if update.reason is not None:
            configuration["LastUpdateStatusReason"] = update.reason


_REASON_FIELDS = ("StateReason", "StateReasonCode", "LastUpdateStatusReason", "LastUpdateStatusReasonCode")


def _reason_phase(state: str, code: str) -> _Phase:
    return _Phase(state, code, reason_for(code))


def _rule_phase(rule: StateRule, starts: float) -> _Phase:
    """The phase a rule sets, with its successor after ``seconds`` when it has one."""
    phase = _Phase(rule.state, rule.code, rule.text)
    successor = _SUCCESSORS.get(rule.state)
    if rule.seconds is None or successor is None:
        return phase
    after = _ACTIVE if successor == "Active" else _reason_phase(successor, "Idle")
    return evolve(phase, until=starts + rule.seconds, then=after)


def _in_progress(code: str | None, now: float, seconds: float, then: _Update) -> _Update:
    """``InProgress`` for ``seconds`` (with ``code``: Creating for a new function), then ``then``."""
    if seconds <= 0:
        return then
    return _Update("InProgress", code, reason_for(code), until=now + seconds, then=then)
