"""``lambda.simulate``: what the backend needs from a local Lambda simulator, and where to find one.

The simulator runs each function's command on this machine without isolation, so it ships as its own
distribution (``sockerless-lambda-simulator``) that a production install never contains. It is found
through the ``sockerless.simulators`` entry point named ``lambda`` and imported only when simulation
is switched on; this module never imports it.
"""

from __future__ import annotations

from typing import Protocol, cast

from sockerless.plugins import load_simulator

__all__ = ["INSTALL_HINT", "Simulator", "SimulatorFactory", "load_simulator_factory"]

INSTALL_HINT = (
    "lambda.simulate needs the sockerless-lambda-simulator distribution: "
    "pip install ./simulators/lambda, or ./dev setup"
)


class Simulator(Protocol):
    """A local AWS endpoint for Lambda and CloudWatch Logs, as the backend uses it.

    ``endpoint_url``, ``region`` and ``role_arn`` are read after ``start()``: together they replace
    the configured endpoint, region and execution role.
    """

    @property
    def endpoint_url(self) -> str: ...

    @property
    def region(self) -> str: ...

    @property
    def role_arn(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class SimulatorFactory(Protocol):
    """Builds a simulator for a region (``LambdaSimulator`` itself is one)."""

    def __call__(self, *, region: str) -> Simulator: ...


def load_simulator_factory() -> SimulatorFactory:
    """The installed Lambda simulator; a ``PluginError`` naming the distribution when there is none.

    The entry point's target is trusted to match :class:`SimulatorFactory` (a call signature cannot be
    checked at run time); the simulator's tests start one through this function.
    """
    return cast(SimulatorFactory, load_simulator("lambda", install_hint=INSTALL_HINT))
