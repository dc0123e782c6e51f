"""Loading: defaults < YAML file < environment < flags, merged per section and structured once.

Each layer adds the values it gives, with where each came from (``file x.yaml``,
``env SOCKERLESS_SERVER_TCP``, ``flag --server-tcp``). Per section, the last value of each key wins and
the resulting mapping is structured by the :class:`SectionConverter`; what it refuses becomes one line
per problem, naming ``section.key`` and the source, and every problem of every layer is reported at
once in a :class:`ConfigError`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import yaml
from attrs import define, frozen

from sockerless.config.errors import ConfigError
from sockerless.config.keys import env_name, flag_name, key_info, section_keys
from sockerless.config.sections import config_sections
from sockerless.config.settings import Settings, default_runtime_dir, default_state_dir
from sockerless.config.structuring import (
    AcrossKeys,
    BadValue,
    Invalid,
    MissingKey,
    SectionConverter,
    UnknownKey,
    describe,
)

__all__ = ["CONFIG_FILE_ENV", "ConfigError", "load_settings"]

#: The environment variable naming the YAML file when ``--config`` is not given.
CONFIG_FILE_ENV = "SOCKERLESS_CONFIG"

_CONVERTER = SectionConverter()


@frozen
class Given:
    """A value one layer gave a key, and where: ``file x.yaml``, ``env NAME`` or ``flag --name``."""

    value: object
    source: str


@define
class _Layers:
    """The values given so far, per section and key in the order given; the last one wins."""

    sections: Mapping[str, type[Any]]
    given: dict[str, dict[str, list[Given]]] = attrs.Factory(dict)
    #: Problems of the layers themselves: a file that cannot be read, an unknown section.
    problems: list[str] = attrs.Factory(list)

    def __attrs_post_init__(self) -> None:
        self.given = {section: {} for section in self.sections}

    def give(self, section: str, key: str, value: object, source: str) -> None:
        self.given[section].setdefault(key, []).append(Given(value, source))

    def unknown_section(self, section: object, source: str) -> None:
        known = ", ".join(self.sections)
        self.problems.append(f"unknown section {section!r} (known: {known}) [{source}]")

    def read_file(self, path: str, source: str) -> None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            self.problems.append(f"cannot read config file {path}: {exc.strerror or exc} [{source}]")
            return
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            self.problems.append(f"config file {path}: invalid YAML{where}: {problem}")
            return
        if document is None:  # an empty file
            return
        file_source = f"file {path}"
        if not isinstance(document, dict):
            self.problems.append(
                f"config file {path}: expected a mapping of sections ({', '.join(self.sections)}), "
                f"got {describe(document)}"
            )
            return
        for section, body in document.items():
            if section not in self.sections:
                self.unknown_section(section, file_source)
            elif isinstance(body, dict):
                for key, value in body.items():
                    self.give(section, str(key), value, file_source)
            elif body is not None:  # "server:" with nothing under it is an empty section
                self.problems.append(
                    f"{section}: expected a mapping of keys, got {describe(body)} [{file_source}]"
                )

    def read_environment(self, environ: Mapping[str, str]) -> None:
        prefixes = sorted(((env_name(section, ""), section) for section in self.sections), reverse=True)
        for name in sorted(environ):
            # Longest first among shared beginnings, so "SOCKERLESS_A_B_" wins over "SOCKERLESS_A_".
            for prefix, section in prefixes:
                if name.startswith(prefix) and len(name) > len(prefix):
                    self.give(section, name[len(prefix) :].lower(), environ[name], f"env {name}")
                    break

    def read_flags(self, flags: Mapping[str, object]) -> None:
        for path, value in flags.items():
            section, _, key = path.partition(".")
            if section not in self.sections or not key:
                self.unknown_section(section, f"flag {path}")
            else:
                self.give(section, key, value, f"flag {flag_name(section, key)}")


def _build(section: str, cls: type[Any], given: Mapping[str, list[Given]]) -> tuple[Any, list[str]]:
    """The section from the winning value of each key, or None and its problems (one line each)."""
    keys = {attribute.name: attribute for attribute in section_keys(cls)}
    winners = {key: values[-1] for key, values in given.items()}
    sources = {key: winner.source for key, winner in winners.items()}
    problems: list[str] = []
    # A value a later layer replaced is checked too: a mistake in the file should not wait for the
    # day the environment stops overriding it.
    for key, values in given.items():
        for earlier in values[:-1]:
            for item in _value_problems(key, earlier, keys):
                problems.append(_line(section, keys, item, {key: earlier.source}))
    for key, attribute in keys.items():
        winner = winners.get(key)
        if key_info(attribute).required and (winner is None or winner.value in (None, "", [], ())):
            problems.append(_line(section, keys, MissingKey(key), sources))
    merged = {key: winner.value for key, winner in winners.items()}
    instance, invalid = _CONVERTER.structure_section(merged, cls)
    problems.extend(
        _line(section, keys, item, sources) for item in invalid if not isinstance(item, AcrossKeys)
    )
    if not problems:  # checks across keys assume every key is set and valid
        problems.extend(_line(section, keys, item, sources) for item in invalid)
    return (None if problems else instance), problems


def _line(section: str, keys: Mapping[str, object], item: Invalid, sources: Mapping[str, str]) -> str:
    """One problem as the user reads it: ``section.key``, what is wrong, and ``[where it was set]``."""
    match item:
        case BadValue(key, message):
            return f"{section}.{key}: {message}{_where(sources.get(key))}"
        case UnknownKey(key):
            close = difflib.get_close_matches(key, keys, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            known = ", ".join(keys) or "none"
            return f"unknown key {section}.{key} (known: {known}){hint}{_where(sources.get(key))}"
        case MissingKey(key):
            return (
                f"{section}.{key} is required: set it in the config file, "
                f"with {env_name(section, key)} or with {flag_name(section, key)}"
            )
        case AcrossKeys(message):
            return message if message.startswith(f"{section}.") else f"{section}: {message}"


def _where(source: str | None) -> str:
    return f" [{source}]" if source else ""


def _value_problems(key: str, given: Given, keys: Mapping[str, attrs.Attribute[Any]]) -> list[Invalid]:
    if key not in keys:
        return [UnknownKey(key)]
    try:
        _CONVERTER.structure_value(given.value, keys[key])
    except ValueError as exc:
        return [BadValue(key, str(exc))]
    return []


def load_settings(
    *,
    backend_name: str | None = None,
    backend_section: type[Any] | None = None,
    config_file: str | None = None,
    environ: Mapping[str, str],
    flags: Mapping[str, object] | None = None,
) -> Settings:
    """Build the settings from defaults < YAML file < environment < flags, or raise :class:`ConfigError`.

    ``config_file`` (``--config``) falls back to ``$SOCKERLESS_CONFIG``. ``environ`` is the process
    environment, passed in by the command line; only ``SOCKERLESS_<SECTION>_<KEY>`` variables of known
    sections are read, and ``HOME``, ``XDG_STATE_HOME`` and ``XDG_RUNTIME_DIR`` for the default paths.
    ``flags`` maps ``section.key`` to the value given on the command line (see ``flags_from_args``).
    """
    sections = config_sections(backend_name, backend_section)
    layers = _Layers(sections)
    if config_file is not None:
        layers.read_file(config_file, "--config")
    elif environ.get(CONFIG_FILE_ENV):
        layers.read_file(environ[CONFIG_FILE_ENV], f"env {CONFIG_FILE_ENV}")
    layers.read_environment(environ)
    layers.read_flags(flags or {})
    problems = list(layers.problems)
    built: dict[str, Any] = {}
    for section, cls in sections.items():
        built[section], section_problems = _build(section, cls, layers.given[section])
        problems.extend(section_problems)
    if problems:
        raise ConfigError(problems)
    return Settings(
        server=built["server"],
        store=built["store"],
        frontend=built["frontend"],
        backend_name=backend_name or "",
        backend=built.get(backend_name or ""),
        state_dir=default_state_dir(environ),
        runtime_dir=default_runtime_dir(environ),
    )
