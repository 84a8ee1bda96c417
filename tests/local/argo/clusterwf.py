"""Test helpers: submit a workflow to the local cluster through the kubernetes client and wait for it."""

from __future__ import annotations

import time
from typing import Any

import yaml
from kubernetes import client

from airflow_argo_eci.conventions import GROUP, TERMINAL_PHASES, VERSION, WORKFLOWS

NAMESPACE = "argo"


def submit(api_client: client.ApiClient, manifest: str | dict[str, Any], namespace: str = NAMESPACE) -> str:
    """Create the workflow (YAML text or a dict) in ``namespace``; its name."""
    body = yaml.safe_load(manifest) if isinstance(manifest, str) else manifest
    created = client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, WORKFLOWS, body)
    return str(created["metadata"]["name"])


def get(api_client: client.ApiClient, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    """The workflow ``name`` as the API returns it."""
    wf: dict[str, Any] = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        GROUP, VERSION, namespace, WORKFLOWS, name)
    return wf


def wait(api_client: client.ApiClient, name: str, timeout: float = 60.0, namespace: str = NAMESPACE) -> dict[str, Any]:
    """The workflow once it is done (AssertionError after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        wf = get(api_client, name, namespace)
        if (wf.get("status") or {}).get("phase") in TERMINAL_PHASES:
            return wf
        assert time.monotonic() < deadline, f"workflow {name} not done after {timeout}s: {wf.get('status')}"
        time.sleep(0.1)


def run(api_client: client.ApiClient, manifest: str | dict[str, Any], timeout: float = 60.0,
        namespace: str = NAMESPACE) -> dict[str, Any]:
    """Submit and wait."""
    return wait(api_client, submit(api_client, manifest, namespace), timeout, namespace)


def wait_for_node(api_client: client.ApiClient, name: str, phase: str, node_type: str = "Pod",
                  timeout: float = 30.0, namespace: str = NAMESPACE) -> None:
    """Wait until the workflow ``name`` has a node of ``node_type`` in ``phase`` (AssertionError
    after ``timeout`` seconds): a workflow submitted first may be reconciled after one submitted
    later in the same pass, so a test that needs it started waits for this."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = (get(api_client, name, namespace).get("status") or {}).get("nodes") or {}
        if any(n.get("type") == node_type and n.get("phase") == phase for n in nodes.values()):
            return
        assert time.monotonic() < deadline, f"no {phase} {node_type} node in {name} after {timeout}s"
        time.sleep(0.1)


def leaf(wf: dict[str, Any], template: str) -> dict[str, Any]:
    """The one node of ``wf`` that ran ``template``."""
    found = [n for n in wf["status"]["nodes"].values() if n.get("templateName") == template
             and n.get("type") not in ("Steps", "StepGroup", "DAG", "TaskGroup", "Retry")]
    assert len(found) == 1, f"expected one node of template {template}, got {found}"
    return found[0]
