"""Crashes lose nothing: the store's durability setting reaches SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sockerless.config import load_settings
from sockerless.store import Store


async def test_the_store_synchronous_setting_reaches_sqlite(
    lambda_simulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sockerless import cli
    from sockerless_lambda import backend as lambda_backend
    from sockerless_lambda.config import LambdaConfig

    opened: list[str] = []
    original = Store.open

    async def recording_open(path: str, **options: Any) -> Store:
        opened.append(options.get("synchronous", "normal"))
        return await original(path, **options)

    monkeypatch.setattr(lambda_backend.Store, "open", recording_open)
    settings = load_settings(
        backend_name="lambda",
        backend_section=LambdaConfig,
        environ={},
        flags={
            "store.path": str(tmp_path / "state.sqlite3"),
            "store.synchronous": "full",
            "lambda.region": lambda_simulator.region,
            "lambda.role_arn": lambda_simulator.role_arn,
            "lambda.endpoint_url": lambda_simulator.endpoint_url,
        },
    )
    backend = cli._backend(lambda_backend.LambdaBackend, settings)
    await backend.start()
    await backend.close()
    assert opened == ["full"]
