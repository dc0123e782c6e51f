"""``sockerless-lambda-simulator``: run the simulator as its own process until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence

from .config import (
    DEFAULT_EMPTY_PAGE_EVERY,
    DEFAULT_EVENT_DELAY,
    DEFAULT_LOG_DELIVERY_DELAY,
    DEFAULT_ROLE_NAME,
)
from .quotas import DEFAULT_CONCURRENCY_LIMIT, DEFAULT_CONTROL_PLANE_RATE, DEFAULT_GET_FUNCTION_RATE
from .simulator import LambdaSimulator
from .state import DEFAULT_PENDING_SECONDS

__all__ = ["main", "simulator_from"]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    simulator = simulator_from(args)
    return asyncio.run(_serve(simulator))


def simulator_from(args: argparse.Namespace) -> LambdaSimulator:
    """The simulator the parsed flags describe (they are named as its settings); exits with the
    parser's usage error (status 2) for a value it refuses."""
    settings = dict(vars(args))
    settings.pop("log_level")
    try:
        settings["faults"] = [json.loads(rule) for rule in settings.pop("fault")]
        settings["state_rules"] = [json.loads(rule) for rule in settings.pop("state_rule")]
        binaries = [item.split("=", 1) for item in settings.pop("bootstrap_binary")]
        if any(len(item) != 2 for item in binaries):
            raise ValueError("--bootstrap-binary takes ARCH=PATH")
        settings["bootstrap_binaries"] = dict(binaries) if binaries else None
        settings["event_retry_delays"] = [
            float(delay) for delay in args.event_retry_delays.split(",") if delay
        ]
        return LambdaSimulator(**settings)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError too
        _parser().error(str(exc))


async def _serve(simulator: LambdaSimulator) -> int:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    async with simulator:
        # The first line is the endpoint: scripts and tests read it to know the server is up.
        print(f"endpoint_url={simulator.endpoint_url}")
        print(f"role_arn={simulator.role_arn}")
        print(f"region={simulator.region}")
        print(f"control={simulator.endpoint_url}/_sim/")
        print(f"ecr_registry={simulator.ecr_registry_host or 'none'}", flush=True)
        await stopping.wait()
        logging.getLogger(__name__).info("stopping: killing running invocations")
    return 0


def _rate(value: str) -> float | None:
    return None if value.lower() == "none" else float(value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sockerless-lambda-simulator",
        description=(
            "A local AWS endpoint (moto behind it) where Lambda functions really run their ImageConfig "
            "command on this machine. Images are NOT pulled and there is no isolation: development only."
        ),
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: 0, any free port)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument("--moto-url", help="use this moto_server instead of starting one in-process")
    parser.add_argument("--region", default="us-east-1", help="default region (default: us-east-1)")
    parser.add_argument(
        "--role-name", default=DEFAULT_ROLE_NAME, help="execution role to create in moto's IAM"
    )
    parser.add_argument(
        "--pending-seconds",
        type=float,
        default=DEFAULT_PENDING_SECONDS,
        metavar="S",
        help="keep new functions Pending this long after CreateFunction (default: %(default)s, AWS's "
        "few seconds; 0: Active at once)",
    )
    parser.add_argument(
        "--control-plane-rate",
        type=_rate,
        default=DEFAULT_CONTROL_PLANE_RATE,
        metavar="N",
        help="requests/s of Lambda's control-plane bucket (default: %(default)s, AWS's; 'none': unlimited)",
    )
    parser.add_argument(
        "--get-function-rate",
        type=_rate,
        default=DEFAULT_GET_FUNCTION_RATE,
        metavar="N",
        help="requests/s of GetFunction's own bucket (default: %(default)s, AWS's; 'none': unlimited)",
    )
    parser.add_argument(
        "--concurrency-limit",
        type=lambda value: None if value.lower() == "none" else int(value),
        default=DEFAULT_CONCURRENCY_LIMIT,
        metavar="N",
        help="invocations running at once in the account (default: %(default)s, AWS's; 'none': unlimited)",
    )
    parser.add_argument(
        "--event-retry-delays",
        default="60,120",
        metavar="S,S",
        help="seconds before each retry of a failed Event invocation (default: 60,120; '' for none)",
    )
    parser.add_argument(
        "--log-delivery-delay",
        type=float,
        default=DEFAULT_LOG_DELIVERY_DELAY,
        metavar="S",
        help="seconds before a written log event shows to readers (default: %(default)s)",
    )
    parser.add_argument(
        "--late-log-probability",
        type=float,
        default=0.0,
        metavar="P",
        help="share of log events shown --late-log-seconds later still (default: 0)",
    )
    parser.add_argument("--late-log-seconds", type=float, default=30.0, metavar="S", help="(default: 30)")
    parser.add_argument("--late-log-match", metavar="REGEX", help="log events it finds are late too")
    parser.add_argument(
        "--empty-page-every",
        type=int,
        default=DEFAULT_EMPTY_PAGE_EVERY,
        metavar="N",
        help="every Nth FilterLogEvents is an empty page with a nextToken (default: %(default)s; 0: off)",
    )
    parser.add_argument(
        "--event-delay",
        type=float,
        default=DEFAULT_EVENT_DELAY,
        metavar="S",
        help="seconds an Event invocation waits before it runs (default: %(default)s)",
    )
    parser.add_argument(
        "--event-duplicate-probability",
        type=float,
        default=0.0,
        metavar="P",
        help="chance that an Event invocation is delivered twice (default: 0)",
    )
    parser.add_argument("--seed", type=int, help="seed for probabilistic faults (reproducible runs)")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="JSON",
        help='a fault rule, repeatable, e.g. \'{"kind": "throttle", "operation": "Invoke", "count": 2}\'',
    )
    parser.add_argument(
        "--state-rule",
        action="append",
        default=[],
        metavar="JSON",
        help='a state rule, repeatable, e.g. \'{"state": "Failed", "image": "*:denied", '
        '"reason_code": "ImageAccessDenied"}\'',
    )
    parser.add_argument(
        "--inactive-after-seconds",
        type=lambda value: None if value.lower() == "none" else float(value),
        default=None,
        metavar="S",
        help="idle time after which a function is Inactive (default: none, never)",
    )
    parser.add_argument(
        "--deleting-seconds",
        type=float,
        default=0.0,
        metavar="S",
        help="how long a DeleteFunction keeps its function Deleting (default: 0)",
    )
    parser.add_argument(
        "--runtime-model",
        choices=["lambda", "direct"],
        default="lambda",
        help="lambda: environments speaking the Runtime API, as Lambda runs functions (default); "
        "direct: one process per invocation, payload on stdin (a test convenience, not Lambda)",
    )
    parser.add_argument(
        "--init-timeout-seconds",
        type=float,
        default=10.0,
        metavar="S",
        help="how long Init may take before it fails (default: %(default)s)",
    )
    parser.add_argument(
        "--environment-idle-seconds",
        type=float,
        default=300.0,
        metavar="S",
        help="how long a warm environment lives without an invocation (default: %(default)s)",
    )
    parser.add_argument(
        "--bootstrap-binary",
        action="append",
        default=[],
        metavar="ARCH=PATH",
        help="the host binary that runs for /opt/sockerless/bootstrap on ARCH (x86_64, arm64), "
        "repeatable (default: the sockerless_lambda package's)",
    )
    parser.add_argument(
        "--no-ecr-registry",
        dest="ecr_registry",
        action="store_false",
        help="do not start a registry as the simulator's ECR (default: start Debian's docker-registry "
        "when installed; functions of its images run inside their filesystem)",
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where the ECR registry's blobs and unpacked images live (default: a temporary directory)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


if __name__ == "__main__":
    sys.exit(main())
