"""The image-cache example DAG (``dags/argo_eci_image_cache.py``): its fan-out workflow golden (the
cache id rendered from the first task's XCom), the template handling of ``EciProfile.image_cache_id``
in ``ArgoWorkflowOperator``, and an ``airflow dags test`` run against the local cluster: the cache
reaches Ready, the fan-out succeeds, and every fan-out pod hit the cache."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

from airflow_argo_eci import eci_conventions as eci
from airflow_argo_eci.eci import EciProfile
from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.local.server import LocalCluster
from airflow_argo_eci.operators.argo import ArgoWorkflowOperator
from tests.conftest import REPO
from tests.dags.test_example_dags import dags_test, task_states, workflows_of
from tests.goldens import assert_golden
from tests.test_eci import _dump
from tests.test_templating import load_dag, operator, render

DAG_ID = "argo_eci_image_cache"
GOLDEN = Path(__file__).parent.parent / "golden" / "dags" / f"{DAG_ID}.fanout.yaml"
#: what the golden's cache_images task "returned"
CACHE_ID = "imc-2zeedp8bxor2kcxxx"


def rendered_fanout(cache_id: Any = CACHE_ID) -> ArgoWorkflowOperator:
    """The fan-out task rendered by Airflow's task runner with the DAG's default params, its
    ``ti.xcom_pull`` answering ``cache_id`` for the ``cache_images`` task."""
    pulled: list[Any] = []

    def xcom_pull(self: RuntimeTaskInstance, task_ids: Any = None, **kwargs: Any) -> Any:
        pulled.append(task_ids)
        return cache_id

    task = load_dag(REPO / "dags" / f"{DAG_ID}.py").get_task("fanout")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RuntimeTaskInstance, "xcom_pull", xcom_pull)
        rendered = render(task, logical_date=None)
    assert pulled == ["cache_images"]
    assert isinstance(rendered, ArgoWorkflowOperator)
    return rendered


def test_fanout_workflow_golden() -> None:
    """The seed's ``parallelism-limit1`` with its ECI settings, the cache pinned, IfNotPresent, 10 steps."""
    body = rendered_fanout().build_workflow({})
    rendered = _dump(body)
    assert_golden(GOLDEN, rendered)
    spec = body["spec"]
    assert spec["podMetadata"]["annotations"][eci.ANNOTATION_IMAGE_CACHE_ID] == CACHE_ID
    assert {p["name"]: p["value"] for p in spec["arguments"]["parameters"]} == {"steps": "10", "seconds": "1"}
    sleep = next(t for t in spec["templates"] if t["name"] == "sleep")
    assert sleep["container"]["imagePullPolicy"] == "IfNotPresent"


def test_the_dag_holds_the_template_until_the_task_runs() -> None:
    task = load_dag(REPO / "dags" / f"{DAG_ID}.py").get_task("fanout")
    assert isinstance(task, ArgoWorkflowOperator) and "eci" in task.template_fields
    assert task.eci.templated_values() == {  # type: ignore[union-attr]
        "image_cache_id": "{{ ti.xcom_pull(task_ids='cache_images') }}"}
    assert rendered_fanout().eci.image_cache_id == CACHE_ID  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("pulled", "message"),
    [
        (None, "task fanout: eci.image_cache_id: the template \"{{ ti.xcom_pull(task_ids='cache_images') }}\" "
               "rendered to 'None'; check that the task it pulls from ran and returned a value"),
        ("cache-1", "task fanout: eci, as rendered: EciProfile.image_cache_id: 'cache-1' is not an image cache ID"),
    ],
)
def test_a_bad_rendered_id_fails_the_task_naming_it(pulled: Any, message: str) -> None:
    with pytest.raises(WorkflowSpecError) as info:
        rendered_fanout(pulled)
    assert message in str(info.value)


def test_any_template_in_a_profile_or_its_dict_form_is_rendered() -> None:
    """Not only XCom pulls: any Airflow template in ``image_cache_id``, of a profile or its dict form;
    a profile without templates is left as it is."""
    for eci_value in (EciProfile(image_cache_id="{{ 'imc-' ~ params.shards }}", image_pull_policy="IfNotPresent"),
                      {"image_cache_id": "{{ 'imc-' ~ params.shards }}", "image_pull_policy": "IfNotPresent"}):
        task = render(operator("rendered_eci", eci=eci_value), logical_date=None)
        assert isinstance(task, ArgoWorkflowOperator) and isinstance(task.eci, EciProfile)
        assert task.eci.image_cache_id == "imc-4"
        assert task.build_workflow({})["spec"]["podMetadata"]["annotations"][eci.ANNOTATION_IMAGE_CACHE_ID] == "imc-4"
    plain = EciProfile(image_cache_id="imc-abc123")
    assert render(operator("plain_eci", eci=plain), logical_date=None).eci is plain  # type: ignore[attr-defined]


def returned_string(home: Path, task_id: str) -> Any:
    """The task's XCom return value in the DAG's newest run, a JSON string (``return_value`` of
    test_example_dags decodes a second time, for tasks that return JSON text)."""
    with sqlite3.connect(home / "airflow.db") as db:
        row = db.execute("SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value' "
                         "ORDER BY dag_run_id DESC LIMIT 1", (DAG_ID, task_id)).fetchone()
    return json.loads(row[0])


def _pod_events(cluster: LocalCluster, workflow: str) -> dict[str, list[dict[str, Any]]]:
    """The core/v1 Events of each pod of ``workflow`` in ``argo``, by pod name."""
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
    try:
        core = client.CoreV1Api(api)
        pods = core.list_namespaced_pod("argo", label_selector=f"workflows.argoproj.io/workflow={workflow}").items
        events = core.list_namespaced_event("argo").items
        return {pod.metadata.name: [{"reason": e.reason, "type": e.type, "message": e.message,
                                     "component": e.source.component if e.source else None}
                                    for e in events if e.involved_object.name == pod.metadata.name]
                for pod in pods}
    finally:
        api.close()


def _image_caches(cluster: LocalCluster) -> list[dict[str, Any]]:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
    try:
        listed = client.CustomObjectsApi(api).list_cluster_custom_object(eci.GROUP, eci.VERSION, eci.IMAGE_CACHES)
        return list(listed["items"])
    finally:
        api.close()


@pytest.mark.slow
def test_image_cache_dag(local_cluster: LocalCluster, airflow_db: Path) -> None:
    run = dags_test(DAG_ID, local_cluster, airflow_db)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert task_states(airflow_db, DAG_ID) == {"cache_images": "success", "fanout": "success"}, output[-4000:]

    cache_id = returned_string(airflow_db, "cache_images")
    assert isinstance(cache_id, str) and cache_id.startswith(eci.IMAGE_CACHE_ID_PREFIX), cache_id
    (cache,) = [c for c in _image_caches(local_cluster) if (c.get("status") or {}).get("imageCacheId") == cache_id]
    assert cache["status"]["phase"] == eci.PHASE_READY and cache["status"]["progress"] == "100%"
    assert cache["spec"]["images"] == ["alpine:latest"]

    (workflow,) = workflows_of(local_cluster, DAG_ID)
    assert workflow["status"]["phase"] == "Succeeded"
    assert workflow["spec"]["podMetadata"]["annotations"][eci.ANNOTATION_IMAGE_CACHE_ID] == cache_id
    pod_nodes = [n for n in workflow["status"]["nodes"].values() if n["type"] == "Pod"]
    assert len(pod_nodes) == 10

    events = _pod_events(local_cluster, workflow["metadata"]["name"])
    assert len(events) == 10
    for pod, pod_events in events.items():
        hits = [e for e in pod_events if e["reason"] == eci.REASON_HIT_IMAGE_CACHE]
        assert len(hits) == 1, (pod, pod_events)
        assert hits[0]["type"] == "Normal" and hits[0]["component"] == eci.EVENT_SOURCE
        assert f"Successfully hit image cache {cache_id}" in hits[0]["message"], hits[0]
