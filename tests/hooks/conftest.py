"""Fixtures for the hook tests: Airflow connections (``AIRFLOW_CONN_*``) to the local cluster."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook
from airflow_argo_eci.local.server import LocalCluster

NS = "argo"
TRANSPORTS = ["kubernetes", "argo_server"]


def connection_env(cluster: LocalCluster, transport: str, **extra: Any) -> dict[str, Any]:
    """The connection JSON ``airflow-argo-eci local env`` prints, for ``transport``."""
    if transport == "kubernetes":
        return {"conn_type": "argo_workflows",
                "extra": {"transport": "kubernetes", "kube_config_path": str(cluster.kubeconfig_path),
                          "namespace": NS, **extra}}
    return {"conn_type": "argo_workflows", "host": cluster.url, "password": cluster.token,
            "extra": {"transport": "argo_server", "ca_cert_path": str(cluster.paths.tls_cert), "namespace": NS,
                      **extra}}


@pytest.fixture
def make_hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, Any]], ArgoWorkflowsHook]]:
    """A hook on a fresh connection id defined by ``AIRFLOW_CONN_<ID>``."""
    created: list[ArgoWorkflowsHook] = []

    def make(conn: dict[str, Any]) -> ArgoWorkflowsHook:
        conn_id = f"argo_test_{uuid.uuid4().hex[:8]}"
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        hook = ArgoWorkflowsHook(argo_conn_id=conn_id)
        created.append(hook)
        return hook

    yield make
    for hook in created:
        hook.close()


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def hook(local_cluster: LocalCluster, transport: str, make_hook: Callable[..., ArgoWorkflowsHook]) -> ArgoWorkflowsHook:
    """A hook on the local cluster, once per transport."""
    return make_hook(connection_env(local_cluster, transport, ui_url="https://argo.example.com/"))


def workflow(prefix: str, script: str = "echo hi", *, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A one-pod workflow running ``sh -c script``."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": f"{prefix}-", "labels": labels or {}},
        "spec": {
            "entrypoint": "main",
            "templates": [{"name": "main", "container": {"image": "alpine:3.19", "command": ["sh", "-c", script]}}],
        },
    }


def wait_for(hook: ArgoWorkflowsHook, name: str, predicate: Callable[[dict[str, Any]], bool],
             timeout: float = 30) -> dict[str, Any]:
    """Poll ``get_workflow`` until ``predicate`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        wf = hook.get_workflow(name)
        if predicate(wf):
            return wf
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} did not reach the expected state: {wf.get('status')}")
        time.sleep(0.1)


def phase_in(*phases: str) -> Callable[[dict[str, Any]], bool]:
    return lambda wf: (wf.get("status") or {}).get("phase") in phases


def has_running_pod(wf: dict[str, Any]) -> bool:
    nodes = (wf.get("status") or {}).get("nodes") or {}
    return any(n.get("type") == "Pod" and n.get("phase") == "Running" for n in nodes.values())
