"""Fixtures for the API tests: a self-contained server per module and a factory for extra ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.local.api.apiserver_helpers import ApiServer, start_api_server


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """One server per test module (tests use distinct object names)."""
    srv = start_api_server(tmp_path_factory.mktemp("api"))
    yield srv
    srv.stop()


@pytest.fixture
def api_server_factory(tmp_path: Path) -> Iterator[Callable[..., ApiServer]]:
    """Start extra servers with custom options (e.g. a tiny ``event_window``); stopped after the test."""
    started: list[ApiServer] = []

    def factory(**kwargs: object) -> ApiServer:
        srv = start_api_server(tmp_path / f"srv{len(started)}", **kwargs)  # type: ignore[arg-type]
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        srv.stop()
