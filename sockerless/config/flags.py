"""The command line: a ``--<section>-<key>`` flag for every key, generated from the sections.

Flags that are not given stay out of the namespace, so the flag layer holds exactly what the user
typed and the environment and the file still apply to the rest.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Mapping
from typing import Any

import attrs

from sockerless.config.keys import env_name, flag_name, is_sequence, key_info, section_keys, unwrap_optional
from sockerless.config.loading import CONFIG_FILE_ENV

__all__ = ["add_config_arguments", "flags_from_args"]

# argparse destinations of generated flags start with this, so flags_from_args finds exactly them.
_DEST_PREFIX = "setting:"


def _argument_options(section: str, attribute: attrs.Attribute[Any], help_text: str) -> dict[str, Any]:
    kind, _ = unwrap_optional(attribute.type)
    options: dict[str, Any] = {
        "dest": f"{_DEST_PREFIX}{section}.{attribute.name}",
        "default": argparse.SUPPRESS,  # absent flags stay out of the namespace and out of the flag layer
        "help": help_text.replace("%", "%%"),
    }
    choices = key_info(attribute).choices
    if kind is bool:
        options["action"] = argparse.BooleanOptionalAction
    elif is_sequence(kind):
        options["action"] = "append"
        options["metavar"] = "A,B"
    else:
        options["metavar"] = "|".join(str(c) for c in choices) if choices else attribute.name.upper()
    return options


def add_config_arguments(
    parser: argparse.ArgumentParser,
    sections: Mapping[str, type[Any]],
    aliases: Mapping[str, str] | None = None,
) -> None:
    """Add ``--config``, ``--print-config`` and a ``--<section>-<key>`` flag for every setting.

    Booleans get ``--x/--no-x``; lists take comma-separated values and may be repeated.
    ``aliases`` (a backend's ``cli_aliases``) maps extra flags such as ``--simulate`` to a
    ``section.key``. Read the values back with :func:`flags_from_args`.
    """
    parser.add_argument(
        "--config",
        dest="config_file",
        metavar="FILE",
        help=f"YAML configuration file (default: ${CONFIG_FILE_ENV} when set).",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="Print the effective configuration as YAML, secrets masked, and exit.",
    )
    by_path: dict[str, tuple[str, attrs.Attribute[Any]]] = {}
    for section, cls in sections.items():
        group = parser.add_argument_group(f"{section} settings", inspect.getdoc(cls))
        for attribute in section_keys(cls):
            by_path[f"{section}.{attribute.name}"] = (section, attribute)
            info = key_info(attribute)
            help_text = info.help
            if info.secret:
                help_text += " Prefer the environment or the file: command lines are visible to other users."
            help_text += f" [env {env_name(section, attribute.name)}]"
            group.add_argument(
                flag_name(section, attribute.name), **_argument_options(section, attribute, help_text)
            )
    for alias, path in (aliases or {}).items():
        if path not in by_path:
            raise ValueError(f"alias {alias} names unknown setting {path} (known: {', '.join(by_path)})")
        section, attribute = by_path[path]
        help_text = f"Same as {flag_name(section, attribute.name)}."
        parser.add_argument(alias, **_argument_options(section, attribute, help_text))


def flags_from_args(args: argparse.Namespace) -> dict[str, object]:
    """The generated flags that were given, as ``{"section.key": value}`` for ``load_settings``."""
    flags: dict[str, object] = {}
    for dest, value in vars(args).items():
        if not dest.startswith(_DEST_PREFIX):
            continue
        if isinstance(value, list):  # repeated flags, each possibly comma-separated
            value = [part.strip() for item in value for part in item.split(",") if part.strip()]
        flags[dest.removeprefix(_DEST_PREFIX)] = value
    return flags
