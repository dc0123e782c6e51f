"""What the configuration says back: ``--print-config`` and the reference in ``docs/configuration.md``.

Both are generated from the section classes, so the printout and the documentation cannot drift
from the keys the loader accepts.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import yaml

from sockerless.config.keys import (
    env_name,
    flag_name,
    is_sequence,
    item_type,
    key_info,
    range_text,
    section_keys,
    unwrap_optional,
)
from sockerless.config.settings import (
    Settings,
    resolve_backend_url,
    resolve_frontend_socket,
    resolve_store_path,
)

__all__ = ["SECRET_MASK", "reference_markdown", "render_config"]

SECRET_MASK = "***"  # noqa: S105 - how a secret is printed, not a secret


def _section_instances(settings: Settings) -> Iterator[tuple[str, Any]]:
    yield from (("server", settings.server), ("store", settings.store), ("frontend", settings.frontend))
    if settings.backend is not None:
        yield settings.backend_name, settings.backend


def render_config(settings: Settings) -> str:
    """The effective configuration as a YAML file would say it; a secret that is set shows ``***``.

    Loaded back, it gives the same settings, except that a secret that was set would become ``***``.
    """
    document: dict[str, dict[str, Any]] = {}
    for section, instance in _section_instances(settings):
        values: dict[str, Any] = {}
        for attribute in section_keys(type(instance)):
            value = getattr(instance, attribute.name)
            if key_info(attribute).secret:
                value = SECRET_MASK if value else ""
            values[attribute.name] = list(value) if isinstance(value, tuple) else value
        document[section] = values
    header = f"# Effective sockerless configuration (backend: {settings.backend_name or 'none'}); "
    header += "secrets are masked.\n"
    footer = (
        "# Resolved defaults:\n"
        f"#   store path: {resolve_store_path(settings)}\n"
        f"#   frontend socket: {resolve_frontend_socket(settings)}\n"
        f"#   frontend backend URL: {resolve_backend_url(settings)}\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False) + footer


def _markdown_value(value: Any) -> str:
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, list | tuple):
        return "`[]`" if not value else ", ".join(f"`{item}`" for item in value)
    if value is None:
        return "(none)"
    if value == "":
        return '`""`'
    return f"`{value}`"


def _default_value(attribute: attrs.Attribute[Any]) -> Any:
    factory = getattr(attribute.default, "factory", None)  # attrs.Factory(...)
    return factory() if callable(factory) else attribute.default


def _kind_name(kind: Any) -> str:
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(kind, "any")


def _allowed_values(attribute: attrs.Attribute[Any]) -> str:
    kind, optional = unwrap_optional(attribute.type)
    info = key_info(attribute)
    if is_sequence(kind):
        text = "list of " + (
            ", ".join(f"`{c}`" for c in info.choices) if info.choices else _kind_name(item_type(kind)) + "s"
        )
        text += " (comma-separated in env and flags)"
    elif kind is bool:
        text = "`true`, `false`"
    elif info.choices:
        text = ", ".join(f"`{choice}`" for choice in info.choices)
    else:
        text = _kind_name(kind)
        if range_text(info):
            text += f", {range_text(info)}"
    return text + (", or empty for none" if optional else "")


def reference_markdown(sections: Mapping[str, type[Any]]) -> str:
    """A Markdown table per section: every key with its default, env var, flag and allowed values."""
    parts: list[str] = []
    for section, cls in sections.items():
        parts.append(f"### `{section}`\n")
        if cls.__doc__:
            parts.append(inspect.cleandoc(cls.__doc__).split("\n\n")[0] + "\n")
        parts.append("| Key | Default | Environment variable | Flag | Allowed values | Description |")
        parts.append("| --- | --- | --- | --- | --- | --- |")
        for attribute in section_keys(cls):
            info = key_info(attribute)
            key = attribute.name
            flag = flag_name(section, key)
            if unwrap_optional(attribute.type)[0] is bool:
                flag += f" / --no-{flag[2:]}"
            default = "*required*" if info.required else _markdown_value(_default_value(attribute))
            description = info.help.replace("<", "\\<")  # <backend> is not an HTML tag
            if info.secret:
                description += f" Secret: printed as `{SECRET_MASK}`."
            cells = [
                f"`{key}`",
                default,
                f"`{env_name(section, key)}`",
                f"`{flag}`",
                _allowed_values(attribute),
                description,
            ]
            parts.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        parts.append("")
    return "\n".join(parts)
