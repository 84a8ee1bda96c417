"""A small client of a running stack: Airflow's REST API (v2) and the local cluster's workflows.

Used by ``./dev demo`` and the e2e tests, so both reach Airflow exactly as a user's script would:
a JWT from ``POST /auth/token`` with the stack's admin login, then ``/api/v2``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx

from airflow_argo_eci.conventions import GROUP, VERSION
from airflow_argo_eci.stack.config import ADMIN_USER, StackPaths


class StackClient:
    """REST API v2 of the stack's api-server, plus the cluster's Kubernetes API for workflows."""

    def __init__(self, paths: StackPaths, state: dict[str, Any], *, timeout: float = 30.0) -> None:
        self.paths = paths
        self.base = state["api_url"]
        password = paths.admin_password.read_text().strip()
        token = httpx.post(f"{self.base}/auth/token", json={"username": state.get("user", ADMIN_USER),
                                                             "password": password}, timeout=timeout)
        token.raise_for_status()
        self.http = httpx.Client(base_url=f"{self.base}/api/v2", timeout=timeout,
                                 headers={"Authorization": f"Bearer {token.json()['access_token']}"})
        self.argo_kubeconfig: str | None = state.get("argo_kubeconfig")
        self.argo_namespace: str | None = state.get("argo_namespace")
        info = json.loads((paths.cluster / "server.json").read_text())
        kube_token = (paths.cluster / "token").read_text().strip()
        self.kube = httpx.Client(base_url=info["url"], timeout=timeout, verify=str(paths.cluster / "tls.crt"),
                                 headers={"Authorization": f"Bearer {kube_token}"})

    def close(self) -> None:
        self.http.close()
        self.kube.close()

    def __enter__(self) -> StackClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise RuntimeError(f"{response.request.method} {response.request.url} -> "
                               f"{response.status_code}: {response.text[:500]}")
        return response.json()

    # -- Airflow --------------------------------------------------------------------------------
    def dag_ids(self) -> list[str]:
        return [d["dag_id"] for d in self._json(self.http.get("/dags", params={"limit": 100}))["dags"]]

    def unpause(self, dag_id: str) -> None:
        self._json(self.http.patch(f"/dags/{dag_id}", json={"is_paused": False}))

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Trigger a run as the UI's button does: no logical date (``"logical_date": null``, the
        one field Airflow 3.3's API requires). Returns the run id."""
        body: dict[str, Any] = {"logical_date": None}
        if conf:
            body["conf"] = conf
        run: dict[str, Any] = self._json(self.http.post(f"/dags/{dag_id}/dagRuns", json=body))
        return str(run["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self._json(self.http.get(f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"))
        return run

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        body = self._json(self.http.get(f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances"))
        return list(body["task_instances"])

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str) -> None:
        """PATCH a task instance's state, as "Mark as failed/success" in the UI does."""
        self._json(self.http.patch(f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}",
                                   json={"new_state": state}))

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        """The task log (all its sources) as text lines, through ``.../logs/{try_number}``."""
        response = self.http.get(f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"
                                 f"/logs/{try_number}", params={"full_content": "true"},
                                 headers={"Accept": "application/json"})
        body = self._json(response)
        content = body.get("content")
        if isinstance(content, list):
            return "\n".join(str(e.get("event", "")) if isinstance(e, dict) else str(e) for e in content)
        return str(content)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """A task's XCom value, or None when it has none."""
        response = self.http.get(f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"
                                 f"/xcomEntries/{key}")
        if response.status_code == 404:
            return None
        return self._json(response).get("value")

    def extra_links(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self._json(self.http.get(
            f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/links"))
        return body

    # -- the local cluster ----------------------------------------------------------------------
    def workflows(self, dag_id: str, run_id: str | None = None, namespace: str = "argo") -> list[dict[str, Any]]:
        """Workflows the provider created for ``dag_id`` (and ``run_id``), by their TI labels."""
        from airflow_argo_eci.workflows import LABEL_PREFIX, ti_labels

        selector = f"{LABEL_PREFIX}dag-id={ti_labels(dag_id, 'x', 'x', -1, 0)[LABEL_PREFIX + 'dag-id']}"
        if run_id is not None:
            selector += f",{LABEL_PREFIX}run-id={ti_labels(dag_id, 'x', run_id, -1, 0)[LABEL_PREFIX + 'run-id']}"
        if self.argo_kubeconfig:  # the stack drives another cluster ($AIRFLOW_ARGO_ECI_STACK_CONNECTIONS)
            from kubernetes import client as k8s
            from kubernetes import config as k8s_config

            api = k8s.CustomObjectsApi(k8s_config.new_client_from_config(config_file=self.argo_kubeconfig))
            body = api.list_namespaced_custom_object(GROUP, VERSION, self.argo_namespace or namespace,
                                                     "workflows", label_selector=selector)
            items = list(body.get("items") or [])
        else:
            response = self.kube.get(f"/apis/argoproj.io/v1alpha1/namespaces/{namespace}/workflows",
                                     params={"labelSelector": selector})
            items = list(self._json(response).get("items") or [])
        return sorted(items, key=lambda w: w["metadata"].get("creationTimestamp") or "")

