"""The Argo view (FastAPI app of the plugin) against the local cluster, with Airflow's own
authentication: JWTs issued by the auth manager, read from the UI's cookie or a bearer header;
authorization by the auth manager (``outsider`` may not read ``secret_dag``: 403 and a filtered list)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pendulum
import pytest
from fastapi.testclient import TestClient

from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook
from airflow_argo_eci.local.server import LocalCluster
from airflow_argo_eci.workflows import ti_labels
from tests.conftest import kube_connection, oss_connection
from tests.plugins.authz import SECRET_DAG

OPEN_DAG = "open_dag"
RUN_ID = "manual__2026-01-01T00:00:00+00:00"


@pytest.fixture(scope="module")
def auth(airflow_db: Any) -> Iterator[Any]:
    """Airflow's auth manager (simple auth manager, restricted for ``outsider``), and DAG rows."""
    from airflow.api_fastapi import app as api_app
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    mp = pytest.MonkeyPatch()
    mp.setenv("AIRFLOW__CORE__AUTH_MANAGER", "tests.plugins.authz.RestrictedAuthManager")
    mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin,viewer:viewer,outsider:op")
    mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "test-secret-for-the-argo-view-only-" + "x" * 64)
    previous = api_app._AuthManagerState.instance
    api_app._AuthManagerState.instance = None
    manager = api_app.create_auth_manager()
    with create_session() as session:
        if session.get(DagBundleModel, "argo-view-tests") is None:
            session.add(DagBundleModel(name="argo-view-tests"))
            session.flush()
        for dag_id in (OPEN_DAG, SECRET_DAG):
            if session.get(DagModel, dag_id) is None:
                session.add(DagModel(dag_id=dag_id, bundle_name="argo-view-tests", fileloc=f"/dags/{dag_id}.py"))
        session.flush()
        if not session.scalar(select(DagRun).where(DagRun.dag_id == OPEN_DAG, DagRun.run_id == RUN_ID)):
            # the run the workflows belong to: its id is hashed in the labels (':' and '+')
            session.add(DagRun(dag_id=OPEN_DAG, run_id=RUN_ID, run_type="manual", state="running",
                               run_after=pendulum.datetime(2026, 1, 1)))
    yield manager
    api_app._AuthManagerState.instance = previous
    mp.undo()


def token(manager: Any, username: str, role: str) -> str:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return str(manager.generate_jwt(SimpleAuthManagerUser(username=username, role=role)))


@pytest.fixture
def client(auth: Any, local_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    from airflow_argo_eci.plugins.argo_view import app

    monkeypatch.setenv("AIRFLOW_CONN_ARGO_DEFAULT", kube_connection(local_cluster))
    monkeypatch.setenv("AIRFLOW_CONN_OSS_DEFAULT", oss_connection(local_cluster))
    return TestClient(app)


def submit(dag_id: str, task_id: str, script: str, *, artifact: bool = False) -> dict[str, Any]:
    template: dict[str, Any] = {"name": "main", "container": {"image": "alpine:3.23", "command": ["sh", "-c"],
                                                              "args": [script]}}
    if artifact:
        template["outputs"] = {"artifacts": [{"name": "report", "path": "/tmp/report.txt", "archive": {"none": {}}}],
                               "parameters": [{"name": "rows", "valueFrom": {"path": "/tmp/rows"}}]}
    body = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"generateName": f"{task_id}-", "labels": ti_labels(dag_id, task_id, RUN_ID, -1, 1)},
            "spec": {"entrypoint": "steps", "templates": [
                {"name": "steps", "steps": [[{"name": "work", "template": "main"}]]}, template]}}
    return ArgoWorkflowsHook().create_workflow(body)


def wait_phase(name: str, phases: tuple[str, ...], timeout: float = 90.0) -> dict[str, Any]:
    hook = ArgoWorkflowsHook()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wf = hook.get_workflow(name)
        if (wf.get("status") or {}).get("phase") in phases:
            return wf
        time.sleep(0.3)
    raise AssertionError(f"workflow {name} did not reach {phases}: {wf.get('status')}")


def ti_query(dag_id: str, task_id: str, **extra: str) -> dict[str, str]:
    return {"dag_id": dag_id, "run_id": RUN_ID, "task_id": task_id, "map_index": "{MAP_INDEX}", **extra}


@pytest.fixture(scope="module")
def finished(auth: Any, local_cluster: LocalCluster) -> dict[str, Any]:
    """A finished workflow of ``open_dag.report`` with a log line, an output parameter and an artifact."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AIRFLOW_CONN_ARGO_DEFAULT", kube_connection(local_cluster))
    try:
        wf = submit(OPEN_DAG, "report", "echo hello-from-pod; printf 'rows: 42\\n' > /tmp/report.txt; "
                    "printf 42 > /tmp/rows", artifact=True)
        return wait_phase(wf["metadata"]["name"], ("Succeeded", "Failed", "Error"))
    finally:
        mp.undo()


def test_ti_view_shows_the_workflow_to_a_reader(client: TestClient, auth: Any, finished: dict[str, Any]) -> None:
    assert finished["status"]["phase"] == "Succeeded", finished["status"].get("message")
    client.cookies.set("_token", token(auth, "viewer", "viewer"))  # the Airflow UI's session cookie
    page = client.get("/ti", params=ti_query(OPEN_DAG, "report"))
    assert page.status_code == 200, page.text
    name = finished["metadata"]["name"]
    assert name in page.text and "Succeeded" in page.text
    assert "<svg" in page.text and 'data-node="' + name + '"' in page.text
    for pod_display, pod in ArgoWorkflowsHook.pods_of(finished):
        assert pod_display in page.text and pod in page.text
    assert "rows" in page.text and "42" in page.text  # output parameter
    assert "ti/artifact?" in page.text
    assert "Stop</button>" not in page.text, "a viewer may not edit the DAG: no Stop / Retry buttons"
    assert 'href="static/argo.css"' in page.text and "http" not in page.text.split("<body>")[0]
    assert client.get("/static/argo.js").status_code == 200


def test_pod_log_and_streaming_artifact_download(client: TestClient, auth: Any, finished: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {token(auth, 'viewer', 'viewer')}"}
    pod = ArgoWorkflowsHook.pods_of(finished)[0][1]
    log = client.get("/ti/log", params=ti_query(OPEN_DAG, "report", pod=pod), headers=headers)
    assert log.status_code == 200 and "hello-from-pod" in log.text
    other = client.get("/ti/log", params=ti_query(OPEN_DAG, "report", pod="not-a-pod"), headers=headers)
    assert other.status_code == 404 and "not a pod of workflow" in other.json()["detail"]
    node_id = next(nid for nid, n in finished["status"]["nodes"].items() if n["type"] == "Pod")
    with client.stream("GET", "/ti/artifact", params=ti_query(OPEN_DAG, "report", node_id=node_id, name="report"),
                       headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-disposition"] == 'attachment; filename="report"'
        assert b"".join(response.iter_bytes()) == b"rows: 42\n"
    missing = client.get("/ti/artifact", params=ti_query(OPEN_DAG, "report", node_id=node_id, name="nope"),
                         headers=headers)
    assert missing.status_code == 404 and "'nope'" in missing.json()["detail"]


def test_unauthenticated_and_unauthorized_requests_are_refused(client: TestClient, auth: Any,
                                                                finished: dict[str, Any]) -> None:
    assert client.get("/ti", params=ti_query(OPEN_DAG, "report")).status_code == 401
    bad = client.get("/ti", params=ti_query(OPEN_DAG, "report"), headers={"Authorization": "Bearer forged"})
    assert bad.status_code == 403
    outsider = {"Authorization": f"Bearer {token(auth, 'outsider', 'op')}"}
    assert client.get("/ti", params=ti_query(OPEN_DAG, "report"), headers=outsider).status_code == 200
    for path in ("/ti", "/ti/log", "/ti/artifact"):
        refused = client.get(path, params=ti_query(SECRET_DAG, "x", pod="p", node_id="n", name="a"), headers=outsider)
        assert refused.status_code == 403, path
        assert SECRET_DAG in refused.json()["detail"]
    assert client.get("/workflows", params={"dag_id": SECRET_DAG}, headers=outsider).status_code == 403


def test_list_is_newest_first_filtered_by_dag_and_by_permission(client: TestClient, auth: Any,
                                                                finished: dict[str, Any]) -> None:
    secret = submit(SECRET_DAG, "hidden", "true")
    newer = submit(OPEN_DAG, "later", "true")
    admin = {"Authorization": f"Bearer {token(auth, 'admin', 'admin')}"}
    outsider = {"Authorization": f"Bearer {token(auth, 'outsider', 'op')}"}
    everything = client.get("/workflows", headers=admin).text
    assert secret["metadata"]["name"] in everything
    assert everything.index(newer["metadata"]["name"]) < everything.index(finished["metadata"]["name"])
    seen = client.get("/workflows", headers=outsider).text
    assert finished["metadata"]["name"] in seen and secret["metadata"]["name"] not in seen
    assert SECRET_DAG not in seen  # not even in the DAG filter
    only_open = client.get("/workflows", params={"dag_id": OPEN_DAG}, headers=admin).text
    assert secret["metadata"]["name"] not in only_open and finished["metadata"]["name"] in only_open
    # links back to the DAG and to the run the metadata database knows (its label is a hash of the run id)
    assert f'href="../dags/{OPEN_DAG}"' in only_open and 'target="_top"' in only_open
    assert f'href="../dags/{OPEN_DAG}/runs/manual__2026-01-01T00%3A00%3A00%2B00%3A00"' in only_open


def test_stop_needs_edit_access_and_confirmation(client: TestClient, auth: Any) -> None:
    running = submit(OPEN_DAG, "long", "sleep 60")
    name = running["metadata"]["name"]
    wait_phase(name, ("Running",))
    params = ti_query(OPEN_DAG, "long")
    viewer = {"Authorization": f"Bearer {token(auth, 'viewer', 'viewer')}"}
    op = {"Authorization": f"Bearer {token(auth, 'outsider', 'op')}"}
    assert client.post("/ti/stop", params=params, headers={**viewer, "X-Argo-Eci-Confirm": "yes"}).status_code == 403
    unconfirmed = client.post("/ti/stop", params=params, headers=op)
    assert unconfirmed.status_code == 400 and "X-Argo-Eci-Confirm" in unconfirmed.json()["detail"]
    assert "Stop</button>" in client.get("/ti", params=params, headers=op).text
    stopped = client.post("/ti/stop", params=params, headers={**op, "X-Argo-Eci-Confirm": "yes"})
    assert stopped.status_code == 200, stopped.text
    assert ArgoWorkflowsHook().get_workflow(name)["spec"].get("shutdown") == "Stop"
    final = wait_phase(name, ("Failed", "Error", "Succeeded"))
    assert final["status"]["phase"] == "Failed"
    assert client.post("/ti/retry", params=params, headers={**viewer, "X-Argo-Eci-Confirm": "yes"}).status_code == 403
    retry = client.post("/ti/retry", params=params, headers={**op, "X-Argo-Eci-Confirm": "yes"})
    assert retry.status_code == 200, retry.text
    wait_phase(name, ("Running", "Pending"))  # the failed node runs again
    assert client.post("/ti/stop", params=params, headers={**op, "X-Argo-Eci-Confirm": "yes"}).status_code == 200
    wait_phase(name, ("Failed", "Error"))
    again = client.post("/ti/retry", params=ti_query(OPEN_DAG, "report"), headers={**op, "X-Argo-Eci-Confirm": "yes"})
    assert again.status_code == 409, "a Succeeded workflow cannot be retried"


def test_bad_input_names_the_field(client: TestClient, auth: Any) -> None:
    headers = {"Authorization": f"Bearer {token(auth, 'viewer', 'viewer')}"}
    bad = client.get("/ti", params={**ti_query(OPEN_DAG, "x"), "map_index": "abc"}, headers=headers)
    assert bad.status_code == 400 and "map_index" in bad.json()["detail"]
    missing = client.get("/ti", params={"dag_id": OPEN_DAG}, headers=headers)
    assert missing.status_code == 400 and "run_id is required" in missing.json()["detail"]
    none = client.get("/ti", params=ti_query(OPEN_DAG, "never-ran"), headers=headers)
    assert none.status_code == 200 and "has not created an Argo workflow" in none.text


MOUNTED = """
import json, sys
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from airflow.api_fastapi.app import get_auth_manager
client = TestClient(create_app("core"))
jwt = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="outsider", role="op"))
anonymous = client.get("/argo-eci/workflows")
client.cookies.set("_token", jwt)
listed = client.get("/argo-eci/workflows")
ti = client.get("/argo-eci/ti", params=json.loads(sys.argv[1]))
css = client.get("/argo-eci/static/argo.css")
print(json.dumps({"anonymous": anonymous.status_code, "listed": listed.status_code, "list": listed.text,
                  "ti": ti.status_code, "css": css.status_code}))
"""


def test_mounted_in_airflows_api_server_with_its_cookie(auth: Any, local_cluster: LocalCluster,
                                                      finished: dict[str, Any]) -> None:
    """Airflow's own app factory mounts the plugin (provider plugins load with lazy discovery off)
    and the UI's session cookie authenticates; the outsider's list leaves out the secret DAG."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS": "False",
           "AIRFLOW_CONN_ARGO_DEFAULT": kube_connection(local_cluster)}
    out = subprocess.run([sys.executable, "-c", MOUNTED, json.dumps(ti_query(SECRET_DAG, "hidden"))], env=env,
                         capture_output=True, text=True, timeout=240, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["anonymous"] == 401
    assert seen["listed"] == 200 and finished["metadata"]["name"] in seen["list"]
    assert SECRET_DAG not in seen["list"]
    assert seen["ti"] == 403
    assert seen["css"] == 200
