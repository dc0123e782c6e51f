"""The simulator refuses what AWS refuses and moto accepts: the constraints of Lambda's service model."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.simulator.conftest import CreateFunction


async def refused(create_function: CreateFunction, **options: Any) -> str:
    with pytest.raises(ClientError) as caught:
        await create_function("true", **options)
    error = caught.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
        "ValidationException",
        400,
    )
    return str(error["Error"]["Message"])


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # A tab is Python's \s but not Lambda's [\p{L}\p{Z}\p{N}_.:/=+\-@].
        (
            {"Tags": {"note": "a\tb"}},
            "Value 'a\tb' at 'tags.note.member.value' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: ([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)",
        ),
        ({"Tags": {"k" * 129: "v"}}, "Member must have length less than or equal to 128"),
        ({"MemorySize": 40000}, "at 'memorySize' failed to satisfy constraint: Member must have value less"),
        ({"Timeout": 6000}, "at 'timeout' failed to satisfy constraint: Member must have value less"),
        (
            {"Role": "exec-role"},
            "at 'role' failed to satisfy constraint: Member must satisfy regular expression",
        ),
        (
            {"Architectures": ["mips"]},
            "at 'architectures.1.member' failed to satisfy constraint: Member must satisfy enum",
        ),
        (
            {"VpcConfig": {"SubnetIds": [f"subnet-{i}" for i in range(17)], "SecurityGroupIds": ["sg-1"]}},
            "at 'vpcConfig.subnetIds' failed to satisfy constraint: "
            "Member must have length less than or equal to 16",
        ),
        ({"VpcConfig": {"SubnetIds": ["net-1"], "SecurityGroupIds": ["sg-1"]}}, "subnet-[0-9a-z]*"),
        ({"Description": "d" * 257}, "at 'description' failed to satisfy constraint"),
    ],
)
async def test_create_function_breaking_the_model_s_constraints_is_a_validation_exception(
    create_function: CreateFunction, options: dict[str, Any], expected: str
) -> None:
    assert expected in await refused(create_function, **options)


async def test_environment_values_are_not_echoed_in_the_message(create_function: CreateFunction) -> None:
    message = await refused(create_function, Environment={"Variables": {"1BAD": "secret"}})
    assert message.startswith("1 validation error detected: Value at 'environment.variables.1BAD.member.key'")
    assert "secret" not in message


async def test_every_violation_is_counted(create_function: CreateFunction) -> None:
    message = await refused(create_function, MemorySize=40000, Timeout=6000)
    assert message.startswith("2 validation errors detected: ")


async def test_what_the_model_allows_is_created(create_function: CreateFunction) -> None:
    created = await create_function(
        "true",
        Tags={"größe": "groß 1", "sockerless:name": "web"},
        VpcConfig={"SubnetIds": ["subnet-0a"], "SecurityGroupIds": ["sg-0A"]},
        Architectures=["arm64"],
    )
    assert created["FunctionName"].startswith("fn-")


async def test_tag_resource_is_checked_too(create_function: CreateFunction, lambda_client: Any) -> None:
    created = await create_function("true")
    with pytest.raises(ClientError) as caught:
        await lambda_client.tag_resource(Resource=created["FunctionArn"], Tags={"aws:x\n": "v"})
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    await lambda_client.tag_resource(Resource=created["FunctionArn"], Tags={"team": "data"})
    assert (await lambda_client.list_tags(Resource=created["FunctionArn"]))["Tags"] == {"team": "data"}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {"Environment": {"Variables": {"AWS_REGION": "x"}}},
            "Reserved keys used in this request: AWS_REGION",
        ),
        # 2250 bytes of names and values, 4951 as the JSON Lambda measures.
        (
            {"Environment": {"Variables": {f"V{i:03}": "x" for i in range(450)}}},
            "exceeded the 4KB limit. String measured: 4951 bytes",
        ),
        ({"Code": {"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/app"}}, "is not valid"),
        (
            {"Code": {"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1@sha256:" + "ab" * 32}},
            "is not valid",
        ),
        ({"VpcConfig": {"SubnetIds": ["subnet-1"], "SecurityGroupIds": []}}, "needs both SubnetIds and"),
        ({"Tags": {f"k{i}": "v" for i in range(51)}}, "51 tags given: a function has at most 50"),
        ({"Tags": {"AWS:team": "x"}}, "Tag keys starting with aws: are reserved: AWS:team"),
    ],
)
async def test_rules_lambda_has_beyond_its_model_are_an_invalid_parameter_value(
    create_function: CreateFunction, options: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ClientError) as caught:
        await create_function("true", **options)
    error = caught.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
        "InvalidParameterValueException",
        400,
    )
    assert expected in error["Error"]["Message"]


async def test_an_image_pinned_by_digest_alone_is_created(create_function: CreateFunction) -> None:
    pinned = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:" + "ab" * 32
    created = await create_function("true", Code={"ImageUri": pinned})
    assert created["FunctionName"].startswith("fn-")
