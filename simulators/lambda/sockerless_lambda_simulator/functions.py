"""Functions as the runtime sees them: identifiers, the configuration to run, and its cache."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from attrs import field, frozen

__all__ = ["FunctionCache", "FunctionConfig", "FunctionRef", "parse_function_ref"]


@frozen
class FunctionRef:
    """A function as a request names it: the bare name plus an optional qualifier."""

    name: str
    qualifier: str | None = None


def parse_function_ref(identifier: str, qualifier: str | None = None) -> FunctionRef:
    """Accept a name, ``name:qualifier``, a full ARN or a partial ARN (``123456789012:function:name``)."""
    parts = identifier.split(":")
    if identifier.startswith("arn:") and len(parts) >= 7:
        name, embedded = parts[6], parts[7] if len(parts) > 7 else None
    elif len(parts) >= 3 and parts[1] == "function":
        name, embedded = parts[2], parts[3] if len(parts) > 3 else None
    elif len(parts) == 2:
        name, embedded = parts
    else:
        name, embedded = identifier, None
    return FunctionRef(name=name, qualifier=qualifier or embedded or None)


@frozen
class FunctionConfig:
    """What an invocation needs to know about a function, read once from GetFunction."""

    name: str
    arn: str
    version: str
    memory_mb: int
    timeout_seconds: int
    image_uri: str
    environment: Mapping[str, str] = field(factory=dict)
    entrypoint: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    working_directory: str | None = None
    log_group: str = ""
    log_format: str = "Text"
    architecture: str = "x86_64"
    """``Architectures[0]``: which host bootstrap binary runs for ``/opt/sockerless/bootstrap``."""

    @classmethod
    def from_get_function(cls, document: Mapping[str, Any]) -> FunctionConfig:
        """Read a GetFunction answer, already completed by the state overlay (LoggingConfig...)."""
        configuration = document.get("Configuration", {})
        image_config = configuration.get("ImageConfigResponse", {}).get("ImageConfig", {})
        logging_config = configuration.get("LoggingConfig", {})
        name = configuration["FunctionName"]
        return cls(
            name=name,
            arn=configuration["FunctionArn"],
            version=configuration.get("Version", "$LATEST"),
            memory_mb=int(configuration.get("MemorySize", 128)),
            timeout_seconds=int(configuration.get("Timeout", 3)),
            image_uri=document.get("Code", {}).get("ImageUri", ""),
            environment=dict(configuration.get("Environment", {}).get("Variables", {})),
            entrypoint=tuple(image_config.get("EntryPoint", ())),
            command=tuple(image_config.get("Command", ())),
            working_directory=image_config.get("WorkingDirectory") or None,
            log_group=logging_config.get("LogGroup") or f"/aws/lambda/{name}",
            log_format=logging_config.get("LogFormat", "Text"),
            architecture=(configuration.get("Architectures") or ["x86_64"])[0],
        )

    @property
    def custom_log_group(self) -> bool:
        """Streams in a shared group carry the function name (``YYYY/MM/DD/<name>[$LATEST]<guid>``)."""
        return self.log_group != f"/aws/lambda/{self.name}"

    @property
    def argv(self) -> tuple[str, ...]:
        return self.entrypoint + self.command


_Key = tuple[str, str, str | None]  # region, name, qualifier


class FunctionCache:
    """Function configurations by (region, name, qualifier), dropped when the function changes.

    A generation counter per function keeps a lookup that raced an update from storing stale data.
    """

    def __init__(self) -> None:
        self._entries: dict[_Key, FunctionConfig] = {}
        self._generations: dict[tuple[str, str], int] = {}

    async def get(
        self,
        region: str,
        ref: FunctionRef,
        load: Callable[[], Awaitable[FunctionConfig | None]],
    ) -> FunctionConfig | None:
        key = (region, ref.name, ref.qualifier)
        cached = self._entries.get(key)
        if cached is not None:
            return cached
        generation = self._generations.get((region, ref.name), 0)
        config = await load()
        if config is not None and self._generations.get((region, ref.name), 0) == generation:
            self._entries[key] = config
        return config

    def invalidate(self, region: str, name: str) -> None:
        self._generations[(region, name)] = self._generations.get((region, name), 0) + 1
        for key in [key for key in self._entries if key[0] == region and key[1] == name]:
            del self._entries[key]

    def clear(self) -> None:
        for region, name, _ in list(self._entries):
            self.invalidate(region, name)
