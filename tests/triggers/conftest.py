"""Fixtures for the trigger tests: an instrumented cluster per test and connections to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.triggers.cluster import InstrumentedCluster, start_instrumented_cluster

CONN_ID = "argo_trigger_test"


@pytest.fixture
def cluster_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., InstrumentedCluster]]:
    """Start instrumented clusters (``event_window=``, ``transport=``); connection ``CONN_ID`` points
    at the last one started. Stopped after the test."""
    started: list[InstrumentedCluster] = []

    def factory(*, event_window: int = 10_000, transport: str = "kubernetes") -> InstrumentedCluster:
        cluster = start_instrumented_cluster(tmp_path / f"cluster{len(started)}", event_window=event_window)
        started.append(cluster)
        for key, value in cluster.connection_uri_env(CONN_ID, transport=transport).items():
            monkeypatch.setenv(key, value)
        return cluster

    yield factory
    for cluster in started:
        cluster.stop()


@pytest.fixture
def cluster(cluster_factory: Callable[..., InstrumentedCluster]) -> InstrumentedCluster:
    """An instrumented cluster reached through connection ``CONN_ID`` (Kubernetes transport)."""
    return cluster_factory()
