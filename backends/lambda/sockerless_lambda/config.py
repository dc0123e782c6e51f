"""The ``lambda`` configuration section: every key, its default and its limits, in one place.

Values come from the YAML file's ``lambda:`` mapping, ``SOCKERLESS_LAMBDA_<KEY>`` variables and
``--lambda-<key>`` flags (the core loader). AWS credentials are never configured here: the standard
AWS variables, shared files and ``profile`` supply them.
"""

from __future__ import annotations

import re

from attrs import define

from sockerless.config import setting

__all__ = [
    "FUNCTION_ID_LENGTH",
    "MAX_FUNCTION_NAME",
    "MAX_SECURITY_GROUPS",
    "MAX_SUBNETS",
    "RETENTION_DAYS",
    "ROLE_ARN_PATTERN",
    "SECURITY_GROUP_ID_PATTERN",
    "SUBNET_ID_PATTERN",
    "LambdaConfig",
]

#: Hex characters of the container ID in a function name; 24 hex = 96 bits, collision-free in practice.
FUNCTION_ID_LENGTH = 24
#: Lambda's function name limit (characters).
MAX_FUNCTION_NAME = 64
_NAME_CHARS = re.compile(r"[A-Za-z0-9_-]*")
# CloudWatch log group names: 1-512 of these characters (CreateLogGroup), never under the reserved aws/.
_LOG_GROUP = re.compile(r"[\.\-_/#A-Za-z0-9]{1,512}")
# CreateFunction's patterns and limits for these values, from botocore's Lambda service model (shapes
# RoleArn, SubnetId, SecurityGroupId, SubnetIds, SecurityGroupIds); a test keeps them equal to the model.
ROLE_ARN_PATTERN = r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+"
SUBNET_ID_PATTERN = r"subnet-[0-9a-z]*"
SECURITY_GROUP_ID_PATTERN = r"sg-[0-9a-zA-Z]*"
MAX_SUBNETS, MAX_SECURITY_GROUPS = 16, 5
# PutRetentionPolicy accepts only these values (days); 0 here means "leave the group's retention alone".
RETENTION_DAYS = (
    0,
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


@define
class LambdaConfig:
    """Settings of the Lambda backend (section ``lambda``)."""

    region: str | None = setting(None, help="AWS region of the functions and the log group (required)")
    role_arn: str | None = setting(
        None, help="ARN of the execution role every function runs with (required unless simulate)"
    )
    profile: str | None = setting(None, help="AWS shared-config profile for the backend's own credentials")
    endpoint_url: str | None = setting(
        None, help="Endpoint for Lambda and CloudWatch Logs (a local simulator); empty for AWS"
    )
    log_group: str = setting("/sockerless/lambda", help="CloudWatch Logs group every function logs to")
    log_retention_days: int = setting(
        30, help="Retention set on the log group at start-up (0: leave it as it is)", choices=RETENTION_DAYS
    )
    memory_size: int = setting(
        1024, help="Function memory in MB when the container sets no memory limit", minimum=128, maximum=10240
    )
    timeout: int = setting(
        900, help="Function timeout in seconds (Lambda's cap is 900)", minimum=1, maximum=900
    )
    subnet_ids: list[str] = setting(factory=list, help="VPC subnets for the functions (none: no VPC)")
    security_group_ids: list[str] = setting(factory=list, help="VPC security groups for the functions")
    architecture: str = setting("x86_64", help="Function architecture", choices=("x86_64", "arm64"))
    function_prefix: str = setting(
        "skls-",
        help="Prefix of function names (then 24 hex: of the function key for containers on the bootstrap, "
        "which share one function per image configuration; of the container ID for the others)",
    )
    function_idle_seconds: float = setting(
        600.0,
        help="Seconds a shared function (one per image configuration) is kept after its last container was "
        "removed, so the next run of that configuration starts warm without CreateFunction; 0 deletes it at "
        "once. An idle function costs nothing but a place in the account's function count",
        minimum=0,
        maximum=7 * 24 * 3600,
    )
    invocation_type: str = setting(
        "RequestResponse",
        help="RequestResponse holds the call for the whole run; Event (needs bootstrap false) returns at "
        "once and the exit is read from CloudWatch",
        choices=("RequestResponse", "Event"),
    )
    max_concurrent_invocations: int = setting(
        200,
        help="Invocations in flight at once; later starts queue (keep it under the account's concurrency: "
        "1000 by default, as low as 10 on a new account)",
        minimum=1,
        maximum=10000,
    )
    capacity_wait: float = setting(
        300.0,
        help="Seconds an Invoke throttled for lack of concurrency (TooManyRequestsException) keeps retrying "
        "before the container fails",
        minimum=1,
        maximum=3600,
    )
    max_attempts: int = setting(
        5,
        help="Attempts for a throttled or unreachable AWS call (Invoke: only when it provably did not run)",
        minimum=1,
        maximum=20,
    )
    activation_timeout: float = setting(
        600.0,
        help="Seconds a started container waits for its function to become Active (Pending, woken from "
        "Inactive, Deactivating, or its readiness polls throttled) before it fails",
        minimum=1,
        maximum=3600,
    )
    control_plane_rate: float = setting(
        10.0,
        help="Lambda control-plane calls per second at most (CreateFunction, DeleteFunction, ListFunctions, "
        "...; AWS's default quota: 15/s per account and region, shared with anything else using it); "
        "later calls queue",
        minimum=0.1,
        maximum=1000,
    )
    get_function_rate: float = setting(
        50.0,
        help="GetFunction calls per second at most (readiness polls; AWS's default quota: 100/s)",
        minimum=0.1,
        maximum=1000,
    )
    log_read_interval: float = setting(
        1.0,
        help="Seconds between CloudWatch reads of the shared log group (quota: 5/s)",
        minimum=0.2,
        maximum=60,
    )
    log_delivery_seconds: float = setting(
        15.0,
        help="Seconds after a run ended that CloudWatch gets to deliver the output the Invoke's 4 KB "
        "log tail did not hold; past them the output is complete with what arrived, and says so",
        minimum=1,
        maximum=600,
    )
    recovery_margin: float = setting(
        60.0,
        help="Seconds past the function timeout to wait for a run's end in CloudWatch when its Invoke "
        "answer was lost (a restart, a dropped connection) before its outcome is reported unknown "
        "(exit 255); CloudWatch delivers late",
        minimum=1,
        maximum=3600,
    )
    log_read_overlap: float = setting(
        20.0,
        help="Seconds each CloudWatch read reaches back before the previous one, for events delivered late; "
        "while a run's end is awaited, its whole run is read again once per this many seconds, for events "
        "later still",
        minimum=0.5,
        maximum=600,
    )
    event_max_age: int = setting(
        300,
        help="With invocation_type Event: the MaximumEventAgeInSeconds set on every function, past which "
        "Lambda drops an event still queued; a container whose run has not started by then (plus "
        "log_delivery_seconds) fails, and one that started is awaited as long again",
        minimum=60,
        maximum=21600,
    )
    bootstrap: bool = setting(
        True,
        help="Run containers through the bootstrap (/opt/sockerless/bootstrap in the image): output streamed "
        "live with exact bytes, the exact exit status; a container's label sockerless.lambda.bootstrap="
        "true|false overrides it",
    )
    response_streaming: bool = setting(
        True,
        help="With the bootstrap: invoke with InvokeWithResponseStream (output live); false for a region "
        "without response streaming: Invoke, the bootstrap answers buffered (its first 6 MB of frames when "
        "the run ends, the rest from its durable copy in CloudWatch)",
    )
    prepare_images: bool = setting(
        True,
        help="Prepare images for Lambda at pull and create: copy them into ECR with the bootstrap added "
        "(docs/images.md); false: references go to Lambda as they are (an ECR image that implements the "
        "Runtime API); a container's label sockerless.lambda.prepare=false does so for one container",
    )
    ecr_repository: str = setting(
        "sockerless", help="ECR repository prepared images are pushed to (created when missing)"
    )
    registry_url: str = setting(
        "",
        help="Registry prepared images are pushed to instead of the account's ECR, e.g. "
        "http://127.0.0.1:5000 (a local registry); empty: ECR, as GetAuthorizationToken names it",
    )
    unfetchable_images: str = setting(
        "auto",
        help="An image whose registry cannot be reached at pull or create: fail, or as_is (recorded "
        "unprepared, with a warning; the embedded simulator runs the command on this machine); auto: "
        "as_is when simulate, else fail",
        choices=("auto", "fail", "as_is"),
    )
    simulate: bool = setting(False, help="Run against an embedded local Lambda simulator (no AWS at all)")

    @property
    def images_as_is_when_unfetchable(self) -> bool:
        """Whether an image whose registry is unreachable is used as it is (see ``unfetchable_images``)."""
        if self.unfetchable_images == "auto":
            return self.simulate
        return self.unfetchable_images == "as_is"

    def __attrs_post_init__(self) -> None:
        """Checks across keys and of formats (the loader checks each key's choices and range)."""
        problems: list[str] = []
        if not self.simulate:
            if not self.region:
                problems.append("lambda.region is required (or set lambda.simulate)")
            if not self.role_arn:
                problems.append("lambda.role_arn is required: the ARN of the functions' execution role")
        if not _LOG_GROUP.fullmatch(self.log_group) or self.log_group.lstrip("/").startswith("aws/"):
            problems.append(
                f"lambda.log_group {self.log_group!r} is invalid: 1-512 of [A-Za-z0-9._/#-], not under aws/"
            )
        longest = len(self.function_prefix) + FUNCTION_ID_LENGTH
        if not _NAME_CHARS.fullmatch(self.function_prefix) or longest > MAX_FUNCTION_NAME:
            problems.append(
                f"lambda.function_prefix {self.function_prefix!r} is invalid: only [A-Za-z0-9_-], at most "
                f"{MAX_FUNCTION_NAME - FUNCTION_ID_LENGTH} characters (function names are at most "
                f"{MAX_FUNCTION_NAME})"
            )
        if self.role_arn and not re.fullmatch(ROLE_ARN_PATTERN, self.role_arn):
            problems.append(
                f"lambda.role_arn {self.role_arn!r} is not an IAM role ARN "
                "(arn:aws:iam::<12-digit account>:role/<name>)"
            )
        if self.invocation_type == "Event" and self.bootstrap:
            problems.append(
                "lambda.invocation_type Event needs lambda.bootstrap false: the bootstrap streams a run's "
                "output and exit in the response of a RequestResponse call, which Event does not wait for"
            )
        if not re.fullmatch(
            r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*", self.ecr_repository
        ):
            problems.append(
                f"lambda.ecr_repository {self.ecr_repository!r} is not a repository name (lowercase "
                "letters, digits, separators ._- and /)"
            )
        if self.registry_url and not re.fullmatch(r"https?://[^/\s]+/?", self.registry_url):
            problems.append(f"lambda.registry_url {self.registry_url!r} is not http(s)://host[:port]")
        problems.extend(self._vpc_problems())
        if problems:
            raise ValueError("; ".join(problems))

    def _vpc_problems(self) -> list[str]:
        """What CreateFunction would refuse in every create's VpcConfig: found at start-up instead."""
        problems: list[str] = []
        if bool(self.subnet_ids) != bool(self.security_group_ids):
            given, missing = (
                ("subnet_ids", "security_group_ids")
                if self.subnet_ids
                else ("security_group_ids", "subnet_ids")
            )
            problems.append(f"lambda.{given} needs lambda.{missing} (a VPC config needs both)")
        for key, ids, pattern, most in (
            ("subnet_ids", self.subnet_ids, SUBNET_ID_PATTERN, MAX_SUBNETS),
            ("security_group_ids", self.security_group_ids, SECURITY_GROUP_ID_PATTERN, MAX_SECURITY_GROUPS),
        ):
            if len(ids) > most:
                problems.append(f"lambda.{key}: {len(ids)} given, Lambda allows at most {most}")
            bad = [value for value in ids if not re.fullmatch(pattern, value)]
            if bad:
                problems.append(f"lambda.{key}: {', '.join(map(repr, bad))} do not match {pattern}")
        return problems
