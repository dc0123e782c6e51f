"""What moto forgets about a function: LoggingConfig, ImageConfig updates, the Pending phase."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from attrs import evolve, frozen

__all__ = ["DEFAULT_PENDING_SECONDS", "FunctionStateOverlay", "LoggingConfig"]

DEFAULT_PENDING_SECONDS = 2.0
"""How long a new function stays ``Pending``: AWS keeps every new function Pending for a few seconds
(longer with a VPC), so a client that invokes at once meets the 409 by default, as it would there."""

_CREATING = "The function is being created."
_REASON_FIELDS = ("StateReason", "StateReasonCode", "LastUpdateStatusReason", "LastUpdateStatusReasonCode")


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


class FunctionStateOverlay:
    """Remembers LoggingConfig and creation times, and rewrites moto's answers with them."""

    def __init__(self, pending_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.pending_seconds = pending_seconds
        self._clock = clock
        self._logging: dict[_Key, LoggingConfig] = {}
        self._image_configs: dict[_Key, dict[str, Any]] = {}
        self._active_at: dict[_Key, float] = {}

    def record_create(self, region: str, name: str, logging: Mapping[str, Any] | None) -> None:
        self._logging[(region, name)] = LoggingConfig().merged(logging or {})
        if self.pending_seconds > 0:
            self._active_at[(region, name)] = self._clock() + self.pending_seconds

    def record_update(self, region: str, name: str, body: Mapping[str, Any]) -> None:
        """Remember what an UpdateFunctionConfiguration body changes that moto ignores."""
        logging = body.get("LoggingConfig")
        if isinstance(logging, Mapping):
            self._logging[(region, name)] = self.logging_config(region, name).merged(logging)
        image_config = body.get("ImageConfig")
        if isinstance(image_config, Mapping):
            self._image_configs[(region, name)] = dict(image_config)

    def forget(self, region: str, name: str) -> None:
        self._logging.pop((region, name), None)
        self._image_configs.pop((region, name), None)
        self._active_at.pop((region, name), None)

    def logging_config(self, region: str, name: str) -> LoggingConfig:
        return self._logging.get((region, name), LoggingConfig())

    def state(self, region: str, name: str) -> str:
        active_at = self._active_at.get((region, name))
        if active_at is None:
            return "Active"
        if self._clock() < active_at:
            return "Pending"
        del self._active_at[(region, name)]
        return "Active"

    def rewrite(self, region: str, configuration: MutableMapping[str, Any]) -> None:
        """Put LoggingConfig and the state fields into one FunctionConfiguration document."""
        name = configuration.get("FunctionName")
        if not isinstance(name, str):
            return
        configuration["LoggingConfig"] = self.logging_config(region, name).to_wire(name)
        image_config = self._image_configs.get((region, name))
        if image_config is not None:
            configuration["ImageConfigResponse"] = {"ImageConfig": image_config}
        for stale in (
            "StateReason",
            "StateReasonCode",
            "LastUpdateStatusReason",
            "LastUpdateStatusReasonCode",
        ):
            configuration.pop(stale, None)
        if self.state(region, name) == "Pending":
            configuration.update(
                State="Pending",
                StateReason=_CREATING,
                StateReasonCode="Creating",
                LastUpdateStatus="InProgress",
                LastUpdateStatusReason=_CREATING,
                LastUpdateStatusReasonCode="Creating",
            )
        else:
            configuration.update(State="Active", LastUpdateStatus="Successful")
