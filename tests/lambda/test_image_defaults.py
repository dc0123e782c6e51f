"""Docker's create semantics: what a container's Config inherits from its image (runconfig.Merge)."""

from __future__ import annotations

from sockerless.models import ContainerConfig
from sockerless_lambda.image_defaults import apply_image_defaults

IMAGE = ContainerConfig(
    entrypoint=["/entry"],
    cmd=["serve", "--port=80"],
    env=["PATH=/usr/bin:/bin", "MODE=image", "LANG=C"],
    working_dir="/app",
    user="app",
    labels={"from": "image", "both": "image"},
)


def test_neither_entrypoint_nor_cmd_given_inherits_both() -> None:
    merged = apply_image_defaults(ContainerConfig(image="x"), IMAGE)
    assert (merged.entrypoint, merged.cmd) == (["/entry"], ["serve", "--port=80"])


def test_a_cmd_given_keeps_the_images_entrypoint() -> None:
    merged = apply_image_defaults(ContainerConfig(cmd=["echo", "hi"]), IMAGE)
    assert (merged.entrypoint, merged.cmd) == (["/entry"], ["echo", "hi"])


def test_an_entrypoint_given_inherits_no_cmd() -> None:
    merged = apply_image_defaults(ContainerConfig(entrypoint=["sh"]), IMAGE)
    assert (merged.entrypoint, merged.cmd) == (["sh"], None)


def test_an_entrypoint_cleared_with_empty_string_inherits_nothing() -> None:
    merged = apply_image_defaults(ContainerConfig(entrypoint=[""], cmd=None), IMAGE)
    assert (merged.entrypoint, merged.cmd) == ([""], None)


def test_env_is_merged_the_containers_values_winning() -> None:
    merged = apply_image_defaults(ContainerConfig(env=["MODE=container", "EXTRA=1"]), IMAGE)
    assert merged.env == ["MODE=container", "EXTRA=1", "PATH=/usr/bin:/bin", "LANG=C"]
    assert apply_image_defaults(ContainerConfig(), IMAGE).env == IMAGE.env


def test_working_dir_and_user_are_the_images_unless_given() -> None:
    assert (apply_image_defaults(ContainerConfig(), IMAGE).working_dir, IMAGE.user) == ("/app", "app")
    given = apply_image_defaults(ContainerConfig(working_dir="/w", user="root"), IMAGE)
    assert (given.working_dir, given.user) == ("/w", "root")


def test_labels_are_merged_the_containers_values_winning() -> None:
    merged = apply_image_defaults(ContainerConfig(labels={"both": "container", "mine": "1"}), IMAGE)
    assert merged.labels == {"from": "image", "both": "container", "mine": "1"}


def test_neither_config_is_changed() -> None:
    mine = ContainerConfig(env=["A=1"], labels={"a": "1"})
    apply_image_defaults(mine, IMAGE)
    assert (mine.env, mine.labels, mine.cmd) == (["A=1"], {"a": "1"}, None)
    assert IMAGE.env == ["PATH=/usr/bin:/bin", "MODE=image", "LANG=C"]
