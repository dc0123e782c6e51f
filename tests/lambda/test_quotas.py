"""Lambda's request quotas: control-plane calls paced on our side, so a burst queues instead of
being throttled (the simulator enforces AWS's default rates: 15/s control plane, 100/s GetFunction)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sockerless_lambda.aws import RatePacer

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/jobs:latest"


async def test_pacer_starts_at_most_burst_plus_rate_calls_in_any_second() -> None:
    pacer = RatePacer(20.0, burst=5)
    loop = asyncio.get_running_loop()
    started: list[float] = []

    async def one() -> None:
        await pacer.wait_turn()
        started.append(loop.time())

    await asyncio.gather(*(one() for _ in range(45)))

    started.sort()
    # Any window of (almost) one second: at most burst + rate starts. The margin covers the event
    # loop's clock resolution (a timer may fire that much early), never a scheduling delay.
    most_in_a_second = max(sum(1 for t in started if first <= t < first + 0.99) for first in started)
    assert most_in_a_second <= 5 + 20
    assert len(started) == 45


def own_key(i: int) -> dict[str, Any]:
    """A create whose image configuration is the i-th of its own (its memory): a function of its own."""
    return {"Cmd": ["true"], "HostConfig": {"Memory": (128 + i) * 1024 * 1024}}


async def test_a_burst_of_creates_queues_instead_of_being_throttled(api, lambda_simulator) -> None:
    ids = await asyncio.gather(*(api.create(**own_key(i)) for i in range(30)))

    assert len(set(ids)) == 30
    assert lambda_simulator.stats.snapshot()["calls"]["lambda:CreateFunction"] == 30
    assert lambda_simulator.stats.snapshot()["throttles"] == {}


@pytest.mark.lambda_simulator(control_plane_rate=6.0)
@pytest.mark.parametrize("config_overrides", [{"control_plane_rate": 4.0, "function_idle_seconds": 0}])
async def test_the_control_plane_rate_never_exceeds_the_configured_limit(
    api, lambda_simulator, config_overrides, poll
) -> None:
    # Paced at 4/s with a burst of 2, no second holds more than 6 calls: the simulator's 6/s bucket,
    # an independent judge, never has to refuse one.
    ids = await asyncio.gather(*(api.create(**own_key(i)) for i in range(14)))
    await asyncio.gather(*(api.client.delete(f"/internal/v1/containers/{i}") for i in ids))

    async def all_deleted() -> bool:
        return lambda_simulator.stats.snapshot()["calls"].get("lambda:DeleteFunction", 0) >= 14

    await poll(all_deleted)
    snapshot = lambda_simulator.stats.snapshot()
    assert snapshot["calls"]["lambda:CreateFunction"] == 14
    assert snapshot["calls"]["lambda:DeleteFunction"] == 14
    assert snapshot["throttles"] == {}


@pytest.mark.parametrize("config_overrides", [{"control_plane_rate": 100.0}])
async def test_a_rate_above_the_quota_meets_throttles(api, lambda_simulator, config_overrides) -> None:
    # The counter-test: without pacing under the quota, the same burst is throttled by the simulator.
    await asyncio.gather(*(api.create(**own_key(i)) for i in range(30)), return_exceptions=True)

    assert lambda_simulator.stats.snapshot()["throttles"].get("lambda:CreateFunction", 0) > 0


@pytest.mark.lambda_simulator(
    pending_seconds=0.6, faults=[{"kind": "throttle", "operation": "lambda:GetFunction", "count": 4}]
)
async def test_a_throttled_readiness_poll_waits_on_until_the_function_is_active(
    api, lambda_simulator
) -> None:
    # Four throttles in a row outlast botocore's attempts (2 here): each is one poll more, not a failure.
    _, result = await api.run("exit 0")

    assert result == {"StatusCode": 0}
    snapshot = lambda_simulator.stats.snapshot()
    assert snapshot["faults"] == {"lambda:GetFunction": 4}
    assert snapshot["calls"]["lambda:InvokeWithResponseStream"] == 1


@pytest.mark.lambda_simulator(pending_seconds=5.0)
async def test_50_runs_at_once_with_5_s_pending_and_default_quotas_all_succeed(api, lambda_simulator) -> None:
    results = await asyncio.gather(*(api.run(f"exit {n % 3}") for n in range(50)))

    assert [result for _, result in results] == [{"StatusCode": n % 3} for n in range(50)]
    assert lambda_simulator.stats.snapshot()["throttles"] == {}


@pytest.mark.lambda_simulator(
    faults=[
        {
            "kind": "throttle",
            "operation": "lambda:InvokeWithResponseStream",
            "count": 5,
            "reason": "ConcurrentInvocationLimitExceeded",
            "retry_after": 0,
        }
    ]
)
async def test_an_invoke_throttled_for_concurrency_waits_for_capacity(api, lambda_simulator) -> None:
    # Five throttles outlast max_attempts (2 here): the run waits for capacity instead of exiting 1.
    _, result = await api.run("exit 3")

    assert result == {"StatusCode": 3}
    snapshot = lambda_simulator.stats.snapshot()
    assert snapshot["calls"]["lambda:InvokeWithResponseStream"] == 6
    assert snapshot["invocations"]["started"] == 1


@pytest.mark.parametrize("config_overrides", [{"max_concurrent_invocations": 2}])
async def test_max_concurrent_invocations_can_match_a_small_account(
    api, lambda_simulator, config_overrides
) -> None:
    results = await asyncio.gather(*(api.run("sleep 0.2") for _ in range(4)))

    assert [result for _, result in results] == [{"StatusCode": 0}] * 4
    assert api.backend.config.max_concurrent_invocations == 2


@pytest.mark.lambda_simulator(concurrency_limit=2)
async def test_runs_beyond_the_accounts_concurrency_wait_for_capacity(api, lambda_simulator) -> None:
    results = await asyncio.gather(*(api.run("sleep 0.3") for _ in range(5)))

    assert [result for _, result in results] == [{"StatusCode": 0}] * 5
    assert lambda_simulator.stats.snapshot()["invocations"]["started"] == 5


async def test_a_retry_after_holds_every_control_plane_call(api, lambda_simulator) -> None:
    # Throttled past botocore's attempts (2 here), with Retry-After: 2. The create fails with 503; the
    # next control-plane call waits those 2 s on our side instead of being throttled again.
    lambda_simulator.add_fault(
        {"kind": "throttle", "operation": "lambda:CreateFunction", "count": 2, "retry_after": 2}
    )
    refused = await api.client.post("/internal/v1/containers", json={"Image": IMAGE, "Cmd": ["true"]})
    assert refused.status == 503
    loop = asyncio.get_running_loop()
    began = loop.time()

    await api.create(Cmd=["true"])

    assert loop.time() - began >= 2 - 0.01  # a lower bound: the pacer held it at least that long
    assert lambda_simulator.stats.snapshot()["faults"] == {"lambda:CreateFunction": 2}


async def test_botocore_s_retry_of_a_throttle_waits_its_retry_after(api, backend, lambda_simulator) -> None:
    # One throttle saying Retry-After: 3. botocore's standard mode would retry a first throttle after
    # rand(0, 1) s; the retry goes out only once those 3 s have passed, and the create succeeds.
    lambda_simulator.add_fault(
        {"kind": "throttle", "operation": "lambda:CreateFunction", "count": 1, "retry_after": 3}
    )
    loop = asyncio.get_running_loop()
    sent: list[float] = []
    backend.clients.control.meta.events.register(
        "before-send.lambda.CreateFunction", lambda **_: sent.append(loop.time())
    )

    await api.create(Cmd=["true"])

    assert len(sent) == 2
    assert sent[1] - sent[0] >= 3 - 0.01  # a lower bound: the event loop's timers may fire 10 ms early
    assert lambda_simulator.stats.snapshot()["faults"] == {"lambda:CreateFunction": 1}


async def test_a_retry_after_being_waited_out_holds_the_calls_queued_behind(
    api, backend, lambda_simulator, poll
) -> None:
    lambda_simulator.add_fault(
        {"kind": "throttle", "operation": "lambda:CreateFunction", "count": 1, "retry_after": 2}
    )
    loop = asyncio.get_running_loop()
    sent: list[float] = []
    backend.clients.control.meta.events.register(
        "before-send.lambda.CreateFunction", lambda **_: sent.append(loop.time())
    )
    first = asyncio.create_task(api.create(**own_key(1)))

    async def throttled() -> bool:
        return lambda_simulator.stats.snapshot()["faults"] == {"lambda:CreateFunction": 1}

    await poll(throttled)
    await asyncio.gather(first, api.create(**own_key(2)))  # the second create starts while the first waits

    assert len(sent) == 3
    assert min(sent[1:]) - sent[0] >= 2 - 0.01  # neither the retry nor the other create went sooner


async def test_the_orphan_scan_draws_on_the_same_pacer(backend, lambda_simulator) -> None:
    from aiobotocore.session import get_session

    from sockerless_lambda.reconcile import find_orphans
    from tests.lambda_settings import simulator_client_options

    # 30 orphans made in moto directly (past the simulator's quotas): the scan then needs one
    # ListFunctions and 30 ListTags, twice the control plane's burst.
    options = simulator_client_options(lambda_simulator)
    options["endpoint_url"] = lambda_simulator.moto_url
    async with get_session().create_client("lambda", **options) as moto:
        for n in range(30):
            await moto.create_function(
                FunctionName=f"skls-{n:024x}",
                Role=lambda_simulator.role_arn,
                PackageType="Image",
                Code={"ImageUri": IMAGE},
                Tags={"sockerless:managed": "true", "sockerless:instance": "test-instance"},
            )
    lambda_simulator.stats.reset()

    orphans = await find_orphans(backend.clients, backend.store, backend.config, "test-instance")

    assert len(orphans) == 30
    snapshot = lambda_simulator.stats.snapshot()
    assert snapshot["calls"]["lambda:ListTags"] == 30
    assert snapshot["throttles"] == {}
