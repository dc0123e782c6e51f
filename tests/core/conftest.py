"""Fixtures shared by the log store's tests (test_logstore.py, test_removed.py): a store without
backend state on a SQLite file, and the clock it reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sockerless.store import Store
from tests.core.test_logstore import Clock, open_store


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "state.db")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(db_path: str, clock: Clock) -> AsyncIterator[Store[None]]:
    opened = await open_store(db_path, clock)
    yield opened
    await opened.close()
