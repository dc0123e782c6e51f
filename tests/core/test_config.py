"""Configuration: defaults < file < environment < flags, validation, flags, rendering, the reference."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml
from attrs import frozen

from sockerless.config import (
    CORE_SECTIONS,
    ConfigError,
    FrontendConfig,
    ListenerConfig,
    ServerConfig,
    Settings,
    StoreConfig,
    add_config_arguments,
    config_sections,
    flags_from_args,
    load_settings,
    parse_file_mode,
    reference_markdown,
    render_config,
    resolve_backend_url,
    resolve_frontend_socket,
    resolve_store_path,
    setting,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


@frozen
class ToyConfig:
    """A backend section for tests."""

    label: str = setting("toy", help="A name.")
    count: int = setting(3, help="How many.", minimum=1, maximum=10)
    ratio: float = setting(0.5, help="A share.", minimum=0, maximum=1)
    enabled: bool = setting(False, help="On or off.")
    colour: str = setting("red", help="A colour.", choices=("red", "green"))
    tags: list[str] = setting(factory=list, help="Labels.")
    nickname: str | None = setting(None, help="Optional.")
    password: str = setting("", help="A secret.", secret=True)


@frozen
class NeedsKeyConfig:
    """A backend section with a required key."""

    key: str = setting(help="Must be given.", required=True)


@frozen
class RangeConfig:
    """A backend section with a cross-field check and attrs validators."""

    low: int = setting(1, help="Lower bound.")
    high: int = setting(2, help="Upper bound.")
    even: int = setting(2, help="An even number.")
    odd: int = setting(1, help="An odd number.")

    @even.validator
    def _even(self, attribute: attrs.Attribute[int], value: int) -> None:
        if value % 2:
            raise ValueError(f"{value} is not even")

    @odd.validator
    def _odd(self, attribute: attrs.Attribute[int], value: int) -> None:
        if not value % 2:
            raise ValueError(f"{value} is not odd")

    def __attrs_post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")


@frozen
class PlainConfig:
    """A backend section declared with a plain attrs field."""

    name: str = attrs.field()


def load(
    *,
    environ: dict[str, str] | None = None,
    flags: dict[str, object] | None = None,
    config_file: str | Path | None = None,
    section: type[Any] | None = ToyConfig,
    name: str = "toy",
) -> Settings:
    return load_settings(
        backend_name=name,
        backend_section=section,
        config_file=str(config_file) if config_file is not None else None,
        environ=environ or {},
        flags=flags,
    )


def problems(**kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(**kwargs)
    return list(caught.value.problems)


@pytest.fixture
def write_config(tmp_path: Path) -> Any:
    def write(text: str) -> Path:
        path = tmp_path / "sockerless.yaml"
        path.write_text(text)
        return path

    return write


# ---------------------------------------------------------------------------- precedence


def test_defaults_apply_when_no_layer_sets_a_key() -> None:
    settings = load()

    assert settings.server == ServerConfig()
    assert settings.store == StoreConfig()
    assert settings.frontend == FrontendConfig()
    assert settings.backend == ToyConfig()
    assert settings.backend_name == "toy"
    assert settings.server.socket == "/var/run/sockerless-backend.sock"
    assert settings.server.max_body_bytes == 1024 * 1024


# For each key: what the file, the environment and the flags say (each as the layer spells it).
LAYERED_KEYS = [
    ("toy", "count", 4, "5", "6", (4, 5, 6)),
    ("toy", "colour", "green", "red", "green", ("green", "red", "green")),
    ("server", "log_level", "debug", "warning", "error", ("debug", "warning", "error")),
    ("server", "shutdown_grace", 1, "2.5", "3", (1.0, 2.5, 3.0)),
    ("server", "allow_public", True, "no", True, (True, False, True)),
    ("store", "synchronous", "full", "normal", "full", ("full", "normal", "full")),
    ("store", "removed_grace_seconds", 1, "2.5", "3", (1.0, 2.5, 3.0)),
    ("frontend", "tcp", ":1", ":2", "[::1]:3", (":1", ":2", "[::1]:3")),
    ("frontend", "attach", "strict", "read-only", "strict", ("strict", "read-only", "strict")),
]


@pytest.mark.parametrize(("section", "key", "in_file", "in_env", "in_flag", "expected"), LAYERED_KEYS)
def test_each_layer_overrides_the_one_before_for_the_same_key(
    write_config: Any,
    section: str,
    key: str,
    in_file: object,
    in_env: str,
    in_flag: object,
    expected: tuple[object, object, object],
) -> None:
    config_file = write_config(yaml.safe_dump({section: {key: in_file}}))
    environ = {f"SOCKERLESS_{section}_{key}".upper(): in_env}
    flags = {f"{section}.{key}": in_flag}

    def value(settings: Settings) -> object:
        return getattr(settings.backend if section == "toy" else getattr(settings, section), key)

    assert value(load(config_file=config_file)) == expected[0]
    assert value(load(config_file=config_file, environ=environ)) == expected[1]
    assert value(load(config_file=config_file, environ=environ, flags=flags)) == expected[2]


def test_layers_merge_key_by_key(write_config: Any) -> None:
    config_file = write_config("toy:\n  count: 4\n  label: from-file\nserver:\n  log_level: debug\n")

    settings = load(config_file=config_file, environ={"SOCKERLESS_TOY_COUNT": "5"}, flags={"toy.ratio": "1"})

    assert (settings.backend.label, settings.backend.count, settings.backend.ratio) == ("from-file", 5, 1.0)
    assert settings.server.log_level == "debug"


def test_the_file_comes_from_SOCKERLESS_CONFIG_when_no_file_is_given(write_config: Any) -> None:
    config_file = write_config("toy:\n  count: 7\n")

    assert load(environ={"SOCKERLESS_CONFIG": str(config_file)}).backend.count == 7


def test_an_explicit_file_wins_over_SOCKERLESS_CONFIG(write_config: Any, tmp_path: Path) -> None:
    config_file = write_config("toy:\n  count: 7\n")

    settings = load(config_file=config_file, environ={"SOCKERLESS_CONFIG": str(tmp_path / "absent.yaml")})

    assert settings.backend.count == 7


def test_the_process_environment_is_read_only_when_passed_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCKERLESS_SERVER_LOG_LEVEL", "debug")

    assert load().server.log_level == "info"
    assert load(environ=dict(os.environ)).server.log_level == "debug"


def test_environment_variables_of_other_sections_and_tools_are_ignored() -> None:
    settings = load(environ={"SOCKERLESS_ECS_REGION": "x", "SOCKERLESS_TOY": "x", "PATH": "/bin"})

    assert settings.backend == ToyConfig()


def test_a_backend_without_a_config_class_has_no_section() -> None:
    settings = load(section=None, name="bare")

    assert (settings.backend_name, settings.backend) == ("bare", None)


def test_a_backend_named_like_a_core_section_is_refused() -> None:
    with pytest.raises(ValueError, match="clashes with the core section"):
        config_sections("server", ToyConfig)


# ---------------------------------------------------------------------------- parsing strings


@pytest.mark.parametrize("text", ["1", "true", "True", "YES", "on", " yes ", "y", "t"])
def test_true_booleans_from_strings(text: str) -> None:
    assert load(environ={"SOCKERLESS_TOY_ENABLED": text}).backend.enabled is True


@pytest.mark.parametrize("text", ["0", "false", "FALSE", "no", "off", "N", "f"])
def test_false_booleans_from_strings(text: str) -> None:
    assert load(flags={"toy.enabled": text}).backend.enabled is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a,b", ["a", "b"]), (" a , b ,, c ", ["a", "b", "c"]), ("single", ["single"]), ("", [])],
)
def test_lists_from_comma_separated_strings(text: str, expected: list[str]) -> None:
    assert load(environ={"SOCKERLESS_TOY_TAGS": text}).backend.tags == expected


def test_lists_from_yaml_lists(write_config: Any) -> None:
    config_file = write_config("toy:\n  tags: [a, 'b,c']\n")

    assert load(config_file=config_file).backend.tags == ["a", "b,c"]


def test_an_empty_yaml_list_key_is_an_empty_list(write_config: Any) -> None:
    assert load(config_file=write_config("toy:\n  tags:\n")).backend.tags == []


def test_numbers_from_strings() -> None:
    settings = load(environ={"SOCKERLESS_TOY_COUNT": " 9 ", "SOCKERLESS_TOY_RATIO": "0.25"})

    assert (settings.backend.count, settings.backend.ratio) == (9, 0.25)


def test_an_integer_is_a_float(write_config: Any) -> None:
    ratio = load(config_file=write_config("toy:\n  ratio: 1\n")).backend.ratio

    assert (ratio, type(ratio)) == (1.0, float)


def test_an_optional_string_is_none_when_empty_and_the_value_otherwise() -> None:
    assert load(environ={"SOCKERLESS_TOY_NICKNAME": ""}).backend.nickname is None
    assert load(environ={"SOCKERLESS_TOY_NICKNAME": "tiny"}).backend.nickname == "tiny"


def test_flags_may_be_typed_already() -> None:
    settings = load(flags={"toy.enabled": True, "toy.tags": ["x", "y"], "toy.count": 2})

    assert (settings.backend.enabled, settings.backend.tags, settings.backend.count) == (True, ["x", "y"], 2)


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (
            "lamda:\n  region: x\n",
            "unknown section 'lamda' (known: server, store, frontend, toy) [file {file}]",
        ),
        (
            "toy:\n  cuont: 4\n",
            "unknown key toy.cuont (known: label, count, ratio, enabled, colour, tags, nickname, password); "
            "did you mean count? [file {file}]",
        ),
        (
            "- server\n- store\n",
            "config file {file}: expected a mapping of sections (server, store, frontend, toy), "
            "got ['server', 'store'] (list)",
        ),
        ("server: debug\n", "server: expected a mapping of keys, got 'debug' [file {file}]"),
    ],
    ids=[
        "unknown-section-names-the-known",
        "unknown-key-lists-the-known-and-the-closest",
        "file-not-a-mapping",
        "section-not-a-mapping",
    ],
)
def test_a_config_file_of_the_wrong_shape_is_an_error(write_config: Any, document: str, problem: str) -> None:
    config_file = write_config(document)

    assert problems(config_file=config_file) == [problem.format(file=config_file)]


def test_an_unknown_key_in_a_known_environment_section_is_an_error() -> None:
    assert problems(environ={"SOCKERLESS_SERVER_LOG_LEVL": "debug"}) == [
        "unknown key server.log_levl (known: socket, tcp, socket_mode, socket_group, token, allow_public, "
        "tls_cert, tls_key, tls_client_ca, shutdown_grace, log_level, log_format, max_body_bytes, "
        "max_inflight_requests); did you mean log_level? [env SOCKERLESS_SERVER_LOG_LEVL]"
    ]


def test_an_unknown_flag_key_or_section_is_an_error() -> None:
    found = problems(flags={"toy.nope": "1", "nowhere.key": "1"})

    assert found[0] == "unknown section 'nowhere' (known: server, store, frontend, toy) [flag nowhere.key]"
    assert found[1].startswith("unknown key toy.nope (known: label, ")
    assert found[1].endswith("[flag --toy-nope]")


def test_a_removed_key_is_an_unknown_key() -> None:
    (problem,) = problems(environ={"SOCKERLESS_FRONTEND_FOLLOW_POLL_INTERVAL": "0.5"})

    assert problem.startswith("unknown key frontend.follow_poll_interval (known: socket, tcp, ")


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"SOCKERLESS_TOY_COUNT": "many"}, "toy.count: 'many' is not an integer [env SOCKERLESS_TOY_COUNT]"),
        ({"SOCKERLESS_TOY_COUNT": "2.5"}, "toy.count: '2.5' is not an integer [env SOCKERLESS_TOY_COUNT]"),
        ({"SOCKERLESS_TOY_RATIO": "half"}, "toy.ratio: 'half' is not a number [env SOCKERLESS_TOY_RATIO]"),
        ({"SOCKERLESS_TOY_RATIO": "nan"}, "toy.ratio: 'nan' is not a number [env SOCKERLESS_TOY_RATIO]"),
        (
            {"SOCKERLESS_TOY_ENABLED": "maybe"},
            "toy.enabled: 'maybe' is not a boolean (use true/false, yes/no, on/off or 1/0) "
            "[env SOCKERLESS_TOY_ENABLED]",
        ),
    ],
)
def test_a_string_of_the_wrong_type_is_an_error(environ: dict[str, str], problem: str) -> None:
    assert problems(environ=environ) == [problem]


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("toy:\n  label: [a]\n", "toy.label: expected a string, got ['a'] (list); quote the value in YAML"),
        ("toy:\n  count: true\n", "toy.count: True (bool) is not an integer"),
        (
            "toy:\n  enabled: 2\n",
            "toy.enabled: 2 (int) is not a boolean (use true/false, yes/no, on/off or 1/0)",
        ),
        (
            "toy:\n  tags: {a: 1}\n",
            "toy.tags: expected a list or a comma-separated string, got {'a': 1} (dict)",
        ),
        ("toy:\n  tags: [a, 1]\n", "toy.tags: expected a string, got 1 (int); quote the value in YAML"),
        # YAML 1.1 reads an unquoted 0600 as the octal number 384.
        (
            "server:\n  socket_mode: 0600\n",
            "server.socket_mode: expected a string, got 384 (int); quote the value in YAML",
        ),
    ],
)
def test_a_yaml_value_of_the_wrong_type_is_an_error(write_config: Any, document: str, problem: str) -> None:
    config_file = write_config(document)

    assert problems(config_file=config_file) == [f"{problem} [file {config_file}]"]


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        ({"toy.count": "11"}, "toy.count: 11 is out of range (1-10) [flag --toy-count]"),
        ({"toy.count": "0"}, "toy.count: 0 is out of range (1-10) [flag --toy-count]"),
        ({"toy.ratio": "-0.5"}, "toy.ratio: -0.5 is out of range (0-1) [flag --toy-ratio]"),
        (
            {"server.shutdown_grace": "601"},
            "server.shutdown_grace: 601 is out of range (0-600) [flag --server-shutdown-grace]",
        ),
        (
            {"store.removed_grace_seconds": "86400.5"},
            "store.removed_grace_seconds: 86400.5 is out of range (0-86400) "
            "[flag --store-removed-grace-seconds]",
        ),
        (
            {"server.max_inflight_requests": "0"},
            "server.max_inflight_requests: 0 is out of range (1-65536) [flag --server-max-inflight-requests]",
        ),
    ],
)
def test_a_number_out_of_range_names_the_range(flags: dict[str, object], problem: str) -> None:
    assert problems(flags=flags) == [problem]


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        (
            {"SOCKERLESS_SERVER_LOG_LEVEL": "loud"},
            "server.log_level: 'loud' is not one of debug, info, warning, error",
        ),
        ({"SOCKERLESS_SERVER_LOG_FORMAT": "xml"}, "server.log_format: 'xml' is not one of json, text"),
        ({"SOCKERLESS_STORE_SYNCHRONOUS": "off"}, "store.synchronous: 'off' is not one of normal, full"),
        ({"SOCKERLESS_FRONTEND_ATTACH": "rw"}, "frontend.attach: 'rw' is not one of read-only, strict"),
    ],
)
def test_a_value_not_in_the_choices_lists_them(environ: dict[str, str], problem: str) -> None:
    (name,) = environ
    assert problems(environ=environ) == [f"{problem} [env {name}]"]


def test_a_required_key_that_no_layer_sets_is_an_error() -> None:
    assert problems(section=NeedsKeyConfig, name="needy") == [
        "needy.key is required: set it in the config file, with SOCKERLESS_NEEDY_KEY or with --needy-key"
    ]


def test_a_required_key_set_empty_is_still_missing() -> None:
    found = problems(section=NeedsKeyConfig, name="needy", environ={"SOCKERLESS_NEEDY_KEY": ""})

    assert found[0].startswith("needy.key is required")


def test_a_required_key_set_by_any_layer_is_enough() -> None:
    settings = load(section=NeedsKeyConfig, name="needy", environ={"SOCKERLESS_NEEDY_KEY": "k"})

    assert settings.backend.key == "k"


@pytest.mark.parametrize("mode", ["0999", "rw-------", "", "01000", "-1"])
def test_a_socket_mode_that_is_not_octal_is_an_error(mode: str) -> None:
    assert problems(environ={"SOCKERLESS_SERVER_SOCKET_MODE": mode}) == [
        f"server.socket_mode: {mode!r} is not an octal file mode like 0600 or 0660 "
        "[env SOCKERLESS_SERVER_SOCKET_MODE]"
    ]


@pytest.mark.parametrize(("text", "mode"), [("0600", 0o600), ("660", 0o660), ("0o750", 0o750)])
def test_octal_socket_modes_are_accepted(text: str, mode: int) -> None:
    settings = load(flags={"frontend.socket_mode": text})

    assert parse_file_mode(settings.frontend.socket_mode) == mode


def test_a_tcp_address_that_is_not_host_port_is_an_error() -> None:
    assert problems(flags={"server.tcp": "localhost", "frontend.tcp": "host:http"}) == [
        "server.tcp: 'localhost' is not an address like host:port, :port (loopback) or [::1]:port "
        "[flag --server-tcp]",
        "frontend.tcp: 'host:http' is not an address like host:port, :port (loopback) or [::1]:port "
        "[flag --frontend-tcp]",
    ]


@pytest.mark.parametrize("url", ["tcp://host:1", "unix://relative.sock", "http://host", "http://host:port"])
def test_a_backend_url_that_is_neither_unix_nor_http_is_an_error(url: str) -> None:
    assert problems(flags={"frontend.backend": url}) == [
        f"frontend.backend: {url!r} is not a backend URL like unix:///path/to/backend.sock "
        "or http://host:port [flag --frontend-backend]"
    ]


def test_every_failing_attrs_validator_is_reported_with_its_source() -> None:
    assert problems(
        section=RangeConfig, name="range", environ={"SOCKERLESS_RANGE_EVEN": "3"}, flags={"range.odd": "4"}
    ) == [
        "range.even: 3 is not even [env SOCKERLESS_RANGE_EVEN]",
        "range.odd: 4 is not odd [flag --range-odd]",
    ]


def test_a_cross_field_check_in_attrs_post_init_is_reported() -> None:
    assert problems(section=RangeConfig, name="range", flags={"range.low": "5"}) == [
        "range: low (5) is above high (2)"
    ]


def test_a_cross_field_check_waits_until_every_key_of_its_section_is_valid() -> None:
    assert problems(section=RangeConfig, name="range", flags={"range.low": "5", "range.high": "x"}) == [
        "range.high: 'x' is not an integer [flag --range-high]"
    ]


def test_several_problems_of_one_cross_field_check_are_one_line_each() -> None:
    assert problems(flags={"frontend.tls_cert": "/c.pem"}) == [
        "frontend.tls_cert and frontend.tls_key go together: set both",
        "frontend.tls_cert needs frontend.tcp: TLS is for the TCP listener "
        "(a Unix socket is protected by its file permissions)",
    ]


def test_every_bad_key_of_a_section_is_reported_not_only_the_first(write_config: Any) -> None:
    config_file = write_config("toy:\n  count: 0\n  colour: blue\n")

    assert problems(
        config_file=config_file,
        environ={"SOCKERLESS_TOY_RATIO": "half", "SOCKERLESS_TOY_ENABLED": "maybe"},
        flags={"toy.tags": ["a"], "toy.label": 7},
    ) == [
        "toy.label: expected a string, got 7 (int); quote the value in YAML [flag --toy-label]",
        f"toy.count: 0 is out of range (1-10) [file {config_file}]",
        "toy.ratio: 'half' is not a number [env SOCKERLESS_TOY_RATIO]",
        "toy.enabled: 'maybe' is not a boolean (use true/false, yes/no, on/off or 1/0) "
        "[env SOCKERLESS_TOY_ENABLED]",
        f"toy.colour: 'blue' is not one of red, green [file {config_file}]",
    ]


def test_a_problem_names_the_layer_whose_value_won(write_config: Any) -> None:
    config_file = write_config("server:\n  log_level: loud\n")

    assert problems(config_file=config_file) == [
        f"server.log_level: 'loud' is not one of debug, info, warning, error [file {config_file}]"
    ]
    assert problems(config_file=config_file, environ={"SOCKERLESS_SERVER_LOG_LEVEL": "louder"}) == [
        f"server.log_level: 'loud' is not one of debug, info, warning, error [file {config_file}]",
        "server.log_level: 'louder' is not one of debug, info, warning, error "
        "[env SOCKERLESS_SERVER_LOG_LEVEL]",
    ]


def test_a_plain_attrs_field_without_a_default_is_required() -> None:
    assert problems(section=PlainConfig, name="plain") == [
        "plain.name is required: set it in the config file, with SOCKERLESS_PLAIN_NAME or with --plain-name"
    ]
    assert load(section=PlainConfig, name="plain", flags={"plain.name": "n"}).backend == PlainConfig("n")


def test_a_section_built_in_code_checks_its_choices_and_ranges_too() -> None:
    with pytest.raises(ValueError, match="'loud' is not one of debug, info, warning, error"):
        ServerConfig(log_level="loud")
    with pytest.raises(ValueError, match=r"0 is out of range \(1-10\)"):
        ToyConfig(count=0)


def test_a_yaml_syntax_error_names_the_line(write_config: Any) -> None:
    config_file = write_config("server:\n  log_level: info\n  socket: [unclosed\ntoy:\n  count: 4\n")

    (problem,) = problems(config_file=config_file)

    assert problem == (
        f"config file {config_file}: invalid YAML at line 4, column 4: expected ',' or ']', but got ':'"
    )


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"

    assert problems(config_file=missing) == [
        f"cannot read config file {missing}: No such file or directory [--config]"
    ]
    assert problems(environ={"SOCKERLESS_CONFIG": str(missing)}) == [
        f"cannot read config file {missing}: No such file or directory [env SOCKERLESS_CONFIG]"
    ]


def test_an_empty_file_and_empty_sections_are_fine(write_config: Any) -> None:
    assert load(config_file=write_config("")) == load()
    assert load(config_file=write_config("server:\nstore:\n")) == load()


def test_all_problems_of_all_layers_are_listed_one_per_line(write_config: Any) -> None:
    config_file = write_config("toy:\n  colour: blue\nnope: {}\n")

    with pytest.raises(ConfigError) as caught:
        load(
            config_file=config_file, environ={"SOCKERLESS_TOY_COUNT": "x"}, flags={"server.log_level": "loud"}
        )

    assert str(caught.value).splitlines() == [
        f"unknown section 'nope' (known: server, store, frontend, toy) [file {config_file}]",
        "server.log_level: 'loud' is not one of debug, info, warning, error [flag --server-log-level]",
        "toy.count: 'x' is not an integer [env SOCKERLESS_TOY_COUNT]",
        f"toy.colour: 'blue' is not one of red, green [file {config_file}]",
    ]


def test_a_bad_value_is_an_error_even_when_a_later_layer_overrides_it(write_config: Any) -> None:
    config_file = write_config("toy:\n  count: 99\n")

    assert problems(config_file=config_file, flags={"toy.count": "2"}) == [
        f"toy.count: 99 is out of range (1-10) [file {config_file}]"
    ]


# ---------------------------------------------------------------------------- the listener sections

LISTENER_KEYS = [
    "socket",
    "tcp",
    "socket_mode",
    "socket_group",
    "token",
    "allow_public",
    "tls_cert",
    "tls_key",
    "tls_client_ca",
]


@pytest.mark.parametrize("cls", [ServerConfig, FrontendConfig])
def test_the_server_and_the_frontend_list_the_listener_keys_first_in_one_order(cls: type[Any]) -> None:
    assert [a.name for a in attrs.fields(ListenerConfig)] == LISTENER_KEYS
    assert issubclass(cls, ListenerConfig)
    assert [a.name for a in attrs.fields(cls)][: len(LISTENER_KEYS)] == LISTENER_KEYS


@pytest.mark.parametrize("section", ["server", "frontend"])
def test_every_listener_key_is_read_under_both_listener_sections(section: str) -> None:
    given = {
        "socket": "/x.sock",
        "tcp": ":9100",
        "socket_mode": "0660",
        "socket_group": "docker",
        "token": "t",
        "allow_public": "yes",
        "tls_cert": "/c.pem",
        "tls_key": "/k.pem",
        "tls_client_ca": "/ca.pem",
    }

    settings = load(environ={f"SOCKERLESS_{section}_{key}".upper(): text for key, text in given.items()})

    listener = attrs.asdict(getattr(settings, section), filter=lambda attribute, _: attribute.name in given)
    assert listener == {**given, "allow_public": True}


def test_the_listener_sockets_default_per_section() -> None:
    assert ServerConfig().socket == "/var/run/sockerless-backend.sock"
    assert FrontendConfig().socket == ""


TLS_PROBLEMS = [
    ({"tcp": ":9", "tls_cert": "/c.pem"}, "{0}.tls_cert and {0}.tls_key go together: set both"),
    ({"tcp": ":9", "tls_key": "/k.pem"}, "{0}.tls_cert and {0}.tls_key go together: set both"),
    ({"tcp": ":9", "tls_client_ca": "/ca.pem"}, "{0}.tls_client_ca needs {0}.tls_cert and {0}.tls_key"),
    (
        {"tls_cert": "/c.pem", "tls_key": "/k.pem"},
        "{0}.tls_cert needs {0}.tcp: TLS is for the TCP listener (a Unix socket is protected by its file "
        "permissions)",
    ),
]


@pytest.mark.parametrize("section", ["server", "frontend"])
@pytest.mark.parametrize(("keys", "problem"), TLS_PROBLEMS)
def test_the_tls_keys_are_checked_together_on_both_listener_sections(
    section: str, keys: dict[str, str], problem: str
) -> None:
    assert problems(flags={f"{section}.{key}": value for key, value in keys.items()}) == [
        problem.format(section)
    ]


@pytest.mark.parametrize("cls", [ServerConfig, FrontendConfig])
def test_the_tls_keys_are_checked_together_in_code_too(cls: type[ListenerConfig]) -> None:
    with pytest.raises(ValueError, match=rf"{cls.section}\.tls_cert and {cls.section}\.tls_key go together"):
        cls(tcp=":9", tls_cert="/c.pem")


def test_tls_to_the_backend_needs_a_key_with_the_certificate_and_an_https_backend() -> None:
    assert problems(flags={"frontend.backend_tls_cert": "/c.pem"}) == [
        "frontend.backend_tls_cert and frontend.backend_tls_key go together: set both"
    ]
    assert problems(flags={"frontend.backend": "http://h:1", "frontend.backend_tls_ca": "/ca.pem"}) == [
        "frontend.backend_tls_* are for an https:// backend; frontend.backend is not one"
    ]
    assert load(flags={"frontend.backend": "https://h:1", "frontend.backend_tls_ca": "/ca.pem"})


def test_a_valid_tls_listener_loads() -> None:
    settings = load(
        flags={
            "server.tcp": "0.0.0.0:9100",
            "server.tls_cert": "/c.pem",
            "server.tls_key": "/k.pem",
            "server.tls_client_ca": "/ca.pem",
        }
    )

    assert (settings.server.tls_cert, settings.server.tls_client_ca) == ("/c.pem", "/ca.pem")
    assert resolve_backend_url(settings) == "https://0.0.0.0:9100"


# ---------------------------------------------------------------------------- default paths


def test_the_store_path_defaults_under_xdg_state_home() -> None:
    settings = load(environ={"XDG_STATE_HOME": "/state", "HOME": "/home/u"})

    assert resolve_store_path(settings) == "/state/sockerless/toy.sqlite3"


def test_the_store_path_falls_back_to_home_without_an_absolute_xdg_state_home() -> None:
    assert (
        resolve_store_path(load(environ={"HOME": "/home/u"})) == "/home/u/.local/state/sockerless/toy.sqlite3"
    )
    assert (
        resolve_store_path(load(environ={"HOME": "/home/u", "XDG_STATE_HOME": "relative"}))
        == "/home/u/.local/state/sockerless/toy.sqlite3"
    )


def test_an_explicit_store_path_wins() -> None:
    settings = load(environ={"XDG_STATE_HOME": "/state", "SOCKERLESS_STORE_PATH": "/data/s.sqlite3"})

    assert resolve_store_path(settings) == "/data/s.sqlite3"


def test_the_frontend_socket_defaults_under_xdg_runtime_dir_or_a_per_user_tmp_folder() -> None:
    assert resolve_frontend_socket(load(environ={"XDG_RUNTIME_DIR": "/run/user/7"})) == (
        "/run/user/7/sockerless/docker.sock"
    )
    assert resolve_frontend_socket(load()) == f"/tmp/sockerless-{os.getuid()}/docker.sock"
    assert resolve_frontend_socket(load(flags={"frontend.socket": "/x/d.sock"})) == "/x/d.sock"


@pytest.mark.parametrize(
    ("flags", "url"),
    [
        ({}, "unix:///var/run/sockerless-backend.sock"),
        ({"server.socket": "/run/b.sock"}, "unix:///run/b.sock"),
        ({"server.tcp": ":9100"}, "http://127.0.0.1:9100"),
        ({"server.tcp": "[::1]:9100"}, "http://[::1]:9100"),
        ({"server.tcp": ":9100", "frontend.backend": "http://10.0.0.2:9100"}, "http://10.0.0.2:9100"),
    ],
)
def test_the_frontend_finds_the_local_server_unless_told_otherwise(
    flags: dict[str, object], url: str
) -> None:
    assert resolve_backend_url(load(flags=flags)) == url


# ---------------------------------------------------------------------------- rendering


def test_render_config_masks_secrets_that_are_set_and_shows_unset_ones_empty() -> None:
    settings = load(environ={"SOCKERLESS_SERVER_TOKEN": "s3cr3t-value", "SOCKERLESS_TOY_PASSWORD": "hunter2"})

    text = render_config(settings)
    document = yaml.safe_load(text)

    assert "s3cr3t-value" not in text
    assert "hunter2" not in text
    assert document["server"]["token"] == "***"
    assert document["toy"]["password"] == "***"
    assert document["frontend"]["token"] == ""


def test_render_config_shows_every_section_and_key_and_loads_back_as_the_same_settings(
    tmp_path: Path,
) -> None:
    settings = load(flags={"toy.tags": "a,b", "server.socket_mode": "0660", "toy.nickname": "n"})
    config_file = tmp_path / "printed.yaml"
    config_file.write_text(render_config(settings))

    document = yaml.safe_load(config_file.read_text())

    assert list(document) == ["server", "store", "frontend", "toy"]
    for section, cls in config_sections("toy", ToyConfig).items():
        assert list(document[section]) == [a.name for a in attrs.fields(cls)]
    assert load(config_file=config_file) == settings


def test_render_config_names_the_resolved_default_paths() -> None:
    text = render_config(load(environ={"XDG_STATE_HOME": "/state", "XDG_RUNTIME_DIR": "/run/user/7"}))

    assert "#   store path: /state/sockerless/toy.sqlite3\n" in text
    assert "#   frontend socket: /run/user/7/sockerless/docker.sock\n" in text
    assert "#   frontend backend URL: unix:///var/run/sockerless-backend.sock\n" in text


# ---------------------------------------------------------------------------- the command line


def parser_for(aliases: dict[str, str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sockerless-test")
    add_config_arguments(parser, config_sections("toy", ToyConfig), aliases=aliases)
    return parser


@pytest.mark.parametrize(("section", "cls"), list(config_sections("toy", ToyConfig).items()))
def test_every_setting_has_a_flag(section: str, cls: type[Any]) -> None:
    parser = parser_for()
    for attribute in attrs.fields(attrs.resolve_types(cls)):
        flag = f"--{section}-{attribute.name}".replace("_", "-")
        given: object
        if attribute.type is bool:
            argv, given = [flag], True
        elif attribute.type == list[str]:
            argv, given = [flag, "x"], ["x"]
        else:
            argv, given = [flag, "x"], "x"

        assert flags_from_args(parser.parse_args(argv)) == {f"{section}.{attribute.name}": given}


def test_flags_that_are_not_given_stay_out_of_the_flag_layer() -> None:
    args = parser_for().parse_args([])

    assert flags_from_args(args) == {}
    assert (args.config_file, args.print_config) == (None, False)


def test_boolean_flags_have_a_negative_form() -> None:
    parser = parser_for()

    assert flags_from_args(parser.parse_args(["--server-allow-public"])) == {"server.allow_public": True}
    assert flags_from_args(parser.parse_args(["--no-server-allow-public"])) == {"server.allow_public": False}


def test_list_flags_may_be_repeated_and_comma_separated() -> None:
    args = parser_for().parse_args(["--toy-tags", "a,b", "--toy-tags", "c"])

    assert flags_from_args(args) == {"toy.tags": ["a", "b", "c"]}


def test_config_and_print_config_flags() -> None:
    args = parser_for().parse_args(["--config", "/etc/s.yaml", "--print-config"])

    assert (args.config_file, args.print_config) == ("/etc/s.yaml", True)


def test_aliases_set_the_key_they_name() -> None:
    parser = parser_for(aliases={"--simulate": "toy.enabled", "--colour": "toy.colour"})

    flags = flags_from_args(parser.parse_args(["--simulate", "--colour", "green"]))

    assert flags == {"toy.enabled": True, "toy.colour": "green"}
    assert load(flags=flags).backend == ToyConfig(enabled=True, colour="green")


def test_an_alias_of_an_unknown_key_is_refused() -> None:
    with pytest.raises(ValueError, match=r"alias --simulate names unknown setting toy\.simulate"):
        parser_for(aliases={"--simulate": "toy.simulate"})


def test_the_command_line_the_environment_and_the_file_together(write_config: Any) -> None:
    config_file = write_config("server:\n  log_level: debug\n  socket: /file.sock\ntoy:\n  count: 4\n")
    args = parser_for().parse_args(
        ["--config", str(config_file), "--server-log-level", "error", "--toy-enabled"]
    )

    settings = load_settings(
        backend_name="toy",
        backend_section=ToyConfig,
        config_file=args.config_file,
        environ={"SOCKERLESS_SERVER_LOG_LEVEL": "warning", "SOCKERLESS_TOY_COUNT": "5"},
        flags=flags_from_args(args),
    )

    assert (settings.server.log_level, settings.server.socket) == ("error", "/file.sock")
    assert (settings.backend.count, settings.backend.enabled) == (5, True)


# ---------------------------------------------------------------------------- the reference


def test_docs_carry_the_generated_reference_of_the_core_sections() -> None:
    generated = reference_markdown(CORE_SECTIONS)

    assert generated in DOCS.read_text(), (
        "docs/configuration.md is out of date: paste the output of\n"
        "python -c 'from sockerless.config import CORE_SECTIONS, reference_markdown; "
        "print(reference_markdown(CORE_SECTIONS))'"
    )


def test_the_reference_lists_each_key_with_its_default_env_var_flag_and_allowed_values() -> None:
    text = reference_markdown({"toy": ToyConfig, "needy": NeedsKeyConfig})

    assert "| `count` | `3` | `SOCKERLESS_TOY_COUNT` | `--toy-count` | integer, 1-10 | How many. |" in text
    assert "| `enabled` | `false` | `SOCKERLESS_TOY_ENABLED` | `--toy-enabled / --no-toy-enabled` |" in text
    assert (
        "| `colour` | `red` | `SOCKERLESS_TOY_COLOUR` | `--toy-colour` | `red`, `green` | A colour. |" in text
    )
    assert "| `tags` | `[]` |" in text
    assert "| `nickname` | (none) |" in text
    assert "A secret. Secret: printed as `***`. |" in text
    assert "| `key` | *required* |" in text
