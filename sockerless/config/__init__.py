"""Configuration: one attrs object per process, built once from defaults < YAML file < environment < flags.

Every section is an attrs class whose keys are declared with :func:`setting`, which carries the
help text, the allowed values and whether the value is a secret. Environment variables are
``SOCKERLESS_<SECTION>_<KEY>``; flags are ``--<section>-<key>``; a YAML file has one mapping per section.

The core sections are ``server`` and ``frontend`` (both a :class:`ListenerConfig`) and ``store``; a
backend adds its own section (its ``config_class``) under its name. :func:`load_settings` builds a
:class:`Settings` or raises one :class:`ConfigError` listing every problem. Only the command-line entry
point reads ``os.environ`` and passes it in.

* :mod:`.keys`: :func:`setting`, and how each layer names a key;
* :mod:`.sections`: the core sections;
* :mod:`.settings`: :class:`Settings` and the defaults resolved from where the process runs;
* :mod:`.structuring`: the cattrs converter that turns the layers' values into sections;
* :mod:`.loading`: the layers, merged and structured, and the problems as the user reads them;
* :mod:`.flags` and :mod:`.output`: the command line, ``--print-config`` and the reference.
"""

from sockerless.addresses import parse_file_mode
from sockerless.config.errors import ConfigError
from sockerless.config.flags import add_config_arguments, flags_from_args
from sockerless.config.keys import setting
from sockerless.config.loading import CONFIG_FILE_ENV, load_settings
from sockerless.config.output import reference_markdown, render_config
from sockerless.config.sections import (
    CORE_SECTIONS,
    FrontendConfig,
    ListenerConfig,
    ServerConfig,
    StoreConfig,
    config_sections,
)
from sockerless.config.settings import (
    Settings,
    resolve_backend_url,
    resolve_frontend_socket,
    resolve_store_path,
)

__all__ = [
    "CONFIG_FILE_ENV",
    "CORE_SECTIONS",
    "ConfigError",
    "FrontendConfig",
    "ListenerConfig",
    "ServerConfig",
    "Settings",
    "StoreConfig",
    "add_config_arguments",
    "config_sections",
    "flags_from_args",
    "load_settings",
    "parse_file_mode",
    "reference_markdown",
    "render_config",
    "resolve_backend_url",
    "resolve_frontend_socket",
    "resolve_store_path",
    "setting",
]
