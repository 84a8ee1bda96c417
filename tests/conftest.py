"""Shared fixtures: a local cluster for the whole session, and the same tests against a real one.

Tests that take the ``any_cluster`` fixture run twice: once on the local cluster and once on the
cluster that ``KUBECONFIG`` points to (marked ``real_cluster``; skipped with the reason when
``KUBECONFIG`` is unset or names no file). The test code is the same for both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Airflow reads its settings at import: point it at a throwaway home before any test imports it.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

from airflow_argo_eci.local.server import LocalCluster

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ClusterTarget:
    """Where a test submits: a kubeconfig and the namespace to use."""

    name: str
    kubeconfig: Path
    namespace: str


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """The session's local cluster as ``local up`` runs it: its controllers and pods in the node
    process. Tests that look inside the controllers or the runtime take :func:`one_process_cluster`."""
    state = tmp_path_factory.mktemp("local-cluster")
    with LocalCluster(state, capacity_vcpu=16, node_process=True) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def one_process_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A local cluster with its controllers and runtime in this process (``cluster.controller``,
    ``cluster.runtime``, ``cluster.image_caches`` are there to look at)."""
    state = tmp_path_factory.mktemp("one-process-cluster")
    with LocalCluster(state, capacity_vcpu=16) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def kube_api_client(local_cluster: LocalCluster):  # type: ignore[no-untyped-def]
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(local_cluster.kubeconfig_path))
    yield client
    client.close()


def _real_kubeconfig() -> Path | None:
    value = os.environ.get("KUBECONFIG", "")
    path = Path(value.split(os.pathsep)[0]).expanduser() if value else None
    return path if path and path.is_file() else None


@pytest.fixture(
    scope="session",
    params=["local", pytest.param("real", marks=pytest.mark.real_cluster)],
)
def any_cluster(request: pytest.FixtureRequest) -> ClusterTarget:
    if request.param == "local":
        cluster: LocalCluster = request.getfixturevalue("local_cluster")
        return ClusterTarget("local", cluster.kubeconfig_path, "argo")
    real = _real_kubeconfig()
    if real is None:
        pytest.skip("real cluster: KUBECONFIG is unset or names no file; set it to a kind/ACK cluster with Argo")
    return ClusterTarget("real", real, os.environ.get("ARGO_ECI_TEST_NAMESPACE", "argo"))


def kube_connection(cluster: LocalCluster, **extra: object) -> str:
    """``AIRFLOW_CONN_*`` value: the kubernetes transport to ``cluster``."""
    from airflow_argo_eci.local.connections import argo_kubernetes_connection

    conn = argo_kubernetes_connection(cluster.paths)
    conn["extra"].update(extra)
    return json.dumps(conn)


def server_connection(cluster: LocalCluster, **extra: object) -> str:
    """``AIRFLOW_CONN_*`` value: the argo_server transport to ``cluster``."""
    from airflow_argo_eci.local.connections import argo_server_connection

    conn = argo_server_connection(cluster.paths, cluster.url)
    conn["extra"].update(extra)
    return json.dumps(conn)


def oss_connection(cluster: LocalCluster) -> str:
    """``AIRFLOW_CONN_*`` value: the local cluster's OSS store, artifact bucket in ``schema``."""
    from airflow_argo_eci.local.connections import oss_connection as build

    assert cluster.oss is not None
    return json.dumps(build(cluster.paths, cluster.oss.endpoint, region=cluster.oss.region))


@pytest.fixture
def argo_default(local_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> LocalCluster:
    """``argo_default`` points at the local cluster (kubernetes transport) for this test."""
    monkeypatch.setenv("AIRFLOW_CONN_ARGO_DEFAULT", kube_connection(local_cluster))
    return local_cluster


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata database (SQLite) in the session's AIRFLOW_HOME."""
    home = Path(os.environ["AIRFLOW_HOME"])
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True,
                   env={**os.environ}, timeout=300)
    return home
