"""EciImageCacheOperator: validation before anything is sent, the lifecycle's decisions (name,
reuse, reattach, conflict, phase -> outcome, failure message, progress), and end to end on the
local cluster's ImageCache controller: created -> Ready -> id (sync and deferred, the trigger run
for real), a Ready cache reused, a crashed try reattached, the Failed message, a spec conflict."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pendulum
import pytest
from airflow.exceptions import AirflowException
from airflow.sdk import DAG
from airflow.sdk.exceptions import TaskDeferred

from airflow_argo_eci.eci_conventions import ANNOTATION_IMC_ENABLE_REUSE, ANNOTATION_SECURITY_GROUP, ANNOTATION_VSWITCH
from airflow_argo_eci.eci_image_caches import (
    CacheRef,
    ImageCacheRequest,
    derive_name,
    existing_decision,
    failure_message,
    image_cache_id,
    image_cache_outcome,
    kill_decision,
    progress_line,
    reuse_candidate,
)
from airflow_argo_eci.errors import ArgoEciError, WorkflowSpecError
from airflow_argo_eci.hooks.eci import EciHook
from airflow_argo_eci.local.server import LocalCluster
from airflow_argo_eci.operators.eci import XCOM_HOW, XCOM_NAME, ArgoPreflightOperator, EciImageCacheOperator
from airflow_argo_eci.operators.preflight import ArgoPreflightOperator as PreflightHome
from tests.operators.test_argo import RecordingTI, context


def make(task_id: str, **kwargs: Any) -> EciImageCacheOperator:
    with DAG(f"dag_{task_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        return EciImageCacheOperator(task_id=task_id, poll_interval=0.1, **kwargs)


def ready(name: str, images: list[str], cache_id: str = "imc-abc", created: str = "2026-01-01T00:00:00Z",
          **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": f"uid-{name}", "creationTimestamp": created},
            "spec": {"images": images, **spec}, "status": {"phase": "Ready", "imageCacheId": cache_id}}


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "parameter", "fix"),
    [
        ({"images": []}, "images=[]", "give a non-empty list of image references"),
        ({"images": "nginx"}, "images='nginx'", "give a non-empty list"),
        ({"images": ["nginx", ""]}, "images[1]=''", "non-empty string without spaces"),
        ({"images": ["nginx", "nginx"]}, "images[1]='nginx'", "listed twice"),
        ({"image_cache_size": 19}, "image_cache_size=19", "from 20 to 32768"),
        ({"image_cache_size": 32769}, "image_cache_size=32769", "from 20 to 32768"),
        ({"image_cache_size": True}, "image_cache_size=True", "whole number of GB"),
        ({"retention_days": 0}, "retention_days=0", "from 1 to 65536"),
        ({"retention_days": 65537}, "retention_days=65537", "from 1 to 65536"),
        ({"image_pull_secrets": ["acr-credential"]}, "image_pull_secrets[0]='acr-credential'",
         "'namespace:secret-name'"),
        ({"image_pull_secrets": ["Default:acr"]}, "image_pull_secrets[0]='Default:acr'", "lower-case DNS names"),
        ({"image_pull_secrets": ["a:b:c"]}, "image_pull_secrets[0]='a:b:c'", "'namespace:secret-name'"),
        ({"vswitch_ids": ["vsw-ok", "subnet-1"]}, "vswitch_ids[1]='subnet-1'", "'vsw-' followed by"),
        ({"security_group_id": "group-1"}, "security_group_id='group-1'", "'sg-' followed by"),
        ({"enable_reuse": "yes"}, "enable_reuse='yes'", "True, False or None"),
        ({"name": "Not_A_Name"}, "name='Not_A_Name'", "leave name unset"),
    ],
)
def test_arguments_are_checked_at_parse_time(kwargs: dict[str, Any], parameter: str, fix: str) -> None:
    kwargs.setdefault("images", ["nginx:1.25"])
    with pytest.raises(WorkflowSpecError) as info:
        make("bad", **kwargs)
    assert str(info.value).startswith(f"task bad: {parameter}: ") and fix in str(info.value)


def test_templated_arguments_are_checked_once_rendered_before_anything_is_sent(local_cluster: LocalCluster,
                                                                                argo_default: LocalCluster) -> None:
    op = make("templated", images="{{ params.images }}")
    op.images = []  # what rendering gave
    before = local_cluster.request_log.last_seq
    with pytest.raises(WorkflowSpecError, match=r"task templated: images=\[\]: give a non-empty list"):
        op.execute(context("run", RecordingTI()))
    assert local_cluster.request_log.last_seq == before


def test_the_preflight_operator_is_exported_here() -> None:
    assert ArgoPreflightOperator is PreflightHome


# ---------------------------------------------------------------------------- decisions


def test_phase_outcome_failure_message_progress_and_id() -> None:
    assert [image_cache_outcome(p) for p in (None, "", "Preparing", "Creating", "Ready", "Failed")] == [
        "wait", "wait", "wait", "wait", "success", "failure"]
    with pytest.raises(ArgoEciError, match="unknown ImageCache phase 'Expired'"):
        image_cache_outcome("Expired")
    failed = {"metadata": {"name": "c"}, "status": {"phase": "Failed", "progress": "30%", "events": [
        {"type": "Normal", "name": "Creating", "message": "pulling"},
        {"type": "Warning", "name": "ImageNotFound", "message": "no such image x"}, {"type": "Normal"}]}}
    assert failure_message(failed) == "ImageCache c Failed: no such image x"
    assert failure_message({"metadata": {"name": "c"}, "status": {"phase": "Failed"}}) == \
        "ImageCache c Failed (no event says why)"
    assert progress_line(failed) == "ImageCache c: Failed 30%"
    assert progress_line({"metadata": {"name": "c"}}) == "ImageCache c: Pending"
    assert image_cache_id(ready("c", ["a"], "imc-123")) == "imc-123"
    with pytest.raises(ArgoEciError, match=r"not an imc-\.\.\. id"):
        image_cache_id(ready("c", ["a"], "snap-1"))
    with pytest.raises(ArgoEciError, match="still Creating"):
        image_cache_id({"metadata": {"name": "c"}, "status": {"phase": "Creating"}})


def test_derived_names_are_stable_and_distinct() -> None:
    name = derive_name(["nginx:1.25", "alpine:3.20"], "my_dag", "warm.cache")
    assert name == derive_name(["alpine:3.20", "nginx:1.25"], "my_dag", "warm.cache")
    assert name.startswith("my-dag-warm-cache-") and len(name) == len("my-dag-warm-cache-") + 12
    assert name != derive_name(["nginx:1.25"], "my_dag", "warm.cache")
    assert name != derive_name(["nginx:1.25", "alpine:3.20"], "my_dag", "other")
    long = derive_name(["a"], "d" * 200, "t" * 200)
    assert len(long) <= 63 and long[-13] == "-"


def test_reuse_candidate_same_images_and_secrets_ready_newest() -> None:
    request = ImageCacheRequest.of(["a:1", "b:2"], ["default:acr"])
    caches = [
        ready("old", ["b:2", "a:1"], "imc-old", "2026-01-01T00:00:00Z", imagePullSecrets=["default:acr"]),
        ready("new", ["a:1", "b:2"], "imc-new", "2026-02-01T00:00:00Z", imagePullSecrets=["default:acr"]),
        ready("nosecret", ["a:1", "b:2"], "imc-x", "2026-03-01T00:00:00Z"),
        ready("more", ["a:1", "b:2", "c:3"], "imc-y", "2026-03-01T00:00:00Z", imagePullSecrets=["default:acr"]),
        {**ready("creating", ["a:1", "b:2"], "", "2026-04-01T00:00:00Z", imagePullSecrets=["default:acr"]),
         "status": {"phase": "Creating"}},
    ]
    assert reuse_candidate(request, caches)["metadata"]["name"] == "new"  # type: ignore[index]
    assert reuse_candidate(request, caches[2:]) is None


def test_existing_decision() -> None:
    request = ImageCacheRequest.of(["a:1"], image_cache_size=40, enable_reuse=True, vswitch_ids=["vsw-1", "vsw-2"],
                                   security_group_id="sg-1")
    body = request.body("c", {})
    assert body["metadata"]["annotations"] == {ANNOTATION_IMC_ENABLE_REUSE: "true",
                                               ANNOTATION_VSWITCH: "vsw-1,vsw-2", ANNOTATION_SECURITY_GROUP: "sg-1"}
    same = {**body, "status": {"phase": "Creating"}}
    assert existing_decision(request, same)[0] == "reattach"
    assert existing_decision(request, {**body, "status": {"phase": "Failed"}})[0] == "replace"
    other = {**body, "spec": {"images": ["a:1", "b:2"], "imageCacheSize": 20}}
    decision, why = existing_decision(request, other)
    assert decision == "conflict"
    assert "spec.images: ['a:1', 'b:2'] != ['a:1']" in why and "spec.imageCacheSize: 20 != 40" in why
    assert "kubectl delete imagecache c" in why
    default_size = ImageCacheRequest.of(["a:1"])
    assert default_size.differences({"spec": {"images": ["a:1"], "imageCacheSize": 20}}) == []


def test_kill_decision() -> None:
    ref = CacheRef("c", "u1")
    creating = {"metadata": {"uid": "u1"}, "status": {"phase": "Creating"}}
    assert kill_decision(creating, ref, False)[0] == "keep"
    assert kill_decision(creating, CacheRef("c", "u1", owned=False), True)[0] == "keep"
    assert kill_decision(None, ref, True)[0] == "gone"
    assert kill_decision({"metadata": {"uid": "u2"}}, ref, True)[0] == "not_ours"
    assert kill_decision({"metadata": {"uid": "u1"}, "status": {"phase": "Ready"}}, ref, True)[0] == "finished"
    assert kill_decision(creating, ref, True)[0] == "apply"


# ---------------------------------------------------------------------------- on the local cluster


def tag() -> str:
    return uuid.uuid4().hex[:10]


def caches_holding(image: str) -> list[dict[str, Any]]:
    return [c for c in EciHook().list_image_caches() if image in c["spec"]["images"]]


def test_created_ready_id_and_progress_in_the_log(argo_default: LocalCluster,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    image = f"busybox:{tag()}"
    op = make("warm_sync", images=[image, "alpine:3.20"], image_cache_size=40, retention_days=7, timeout=60)
    ti = RecordingTI()
    cache_id = op.execute(context("run-sync", ti))
    (cache,) = caches_holding(image)
    assert cache_id.startswith("imc-") and cache_id == cache["status"]["imageCacheId"]
    assert ti.xcom[XCOM_NAME] == cache["metadata"]["name"] == derive_name([image, "alpine:3.20"], op.dag_id,
                                                                          "warm_sync")
    assert ti.xcom[XCOM_HOW] == "created"
    assert cache["spec"] == {"images": [image, "alpine:3.20"], "imageCacheSize": 40, "retentionDays": 7}
    assert cache["metadata"]["labels"] == {"airflow.apache.org/dag-id": "dag_warm_sync",
                                           "airflow.apache.org/task-id": "warm_sync"}
    prefix = f"ImageCache {ti.xcom[XCOM_NAME]}: "
    lines = [line[line.index(prefix):].split(" [airflow.")[0].strip()
             for line in capsys.readouterr().out.splitlines() if prefix in line]
    assert lines[-1] == f"{prefix}Ready 100%"
    assert f"{prefix}Creating 30%" in lines and len(lines) == len(set(lines))  # each change once

    again = make("warm_elsewhere", images=["alpine:3.20", image], timeout=60)
    ti2 = RecordingTI()
    assert again.execute(context("run-reuse", ti2)) == cache_id
    assert ti2.xcom[XCOM_HOW] == "reused" and ti2.xcom[XCOM_NAME] == cache["metadata"]["name"]
    assert len(caches_holding(image)) == 1
    assert f"Reusing ImageCache {cache['metadata']['name']} ({cache_id})" in capsys.readouterr().out


def test_deferred_path_runs_the_trigger(argo_default: LocalCluster) -> None:
    image = f"busybox:{tag()}"
    op = make("warm_deferred", images=[image], deferrable=True, timeout=60)
    ti = RecordingTI()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context("run-deferred", ti))
    trigger = deferred.value.trigger
    assert trigger.name == ti.xcom[XCOM_NAME] and trigger.delete_on_kill is False

    async def events() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    (event,) = asyncio.run(events())
    assert event["status"] == "success" and event["phase"] == "Ready" and event["ids"]["name"] == trigger.name
    (cache,) = caches_holding(image)
    assert op.execute_complete(context("run-deferred", ti), event) == cache["status"]["imageCacheId"]
    with pytest.raises(WorkflowSpecError, match="unexpected trigger event"):
        op.execute_complete(context("run-deferred", ti), {"status": "done"})


def test_a_crashed_try_is_reattached_never_duplicated(argo_default: LocalCluster) -> None:
    image = f"busybox:{tag()}"
    first = make("warm_crash", images=[image], deferrable=True, reuse_ready=False, timeout=60)
    ti = RecordingTI()
    with pytest.raises(TaskDeferred):  # created, then the worker "crashes" before the triggerer runs
        first.execute(context("run-crash", ti))
    (made,) = caches_holding(image)
    retry = make("warm_crash", images=[image], reuse_ready=False, timeout=60)
    ti2 = RecordingTI(try_number=2)
    cache_id = retry.execute(context("run-crash", ti2))
    (after,) = caches_holding(image)
    assert after["metadata"]["uid"] == made["metadata"]["uid"] and ti2.xcom[XCOM_HOW] == "reattached"
    assert cache_id == after["status"]["imageCacheId"]
    assert retry.execute(context("run-crash", RecordingTI(try_number=3))) == cache_id  # Ready: at once


def test_same_name_other_spec_is_an_error_naming_the_fields(argo_default: LocalCluster) -> None:
    name = f"named-{tag()}"
    make("named", images=[f"busybox:{name}"], name=name, timeout=60).execute(context("r", RecordingTI()))
    clash = make("named2", images=[f"busybox:{name}"], name=name, image_cache_size=100, reuse_ready=False)
    with pytest.raises(WorkflowSpecError) as info:
        clash.execute(context("r", RecordingTI()))
    assert f"name={name!r}: ImageCache {name} already exists with another spec" in str(info.value)
    assert "spec.imageCacheSize: 20 != 100" in str(info.value)


def test_failed_cache_fails_with_the_last_event_message(argo_default: LocalCluster) -> None:
    image = f"registry.example.com/nowhere/tool:{tag()}"
    op = make("warm_failed", images=[image], timeout=60)
    with pytest.raises(AirflowException) as info:
        op.execute(context("run-failed", RecordingTI()))
    (cache,) = caches_holding(image)
    message = cache["status"]["events"][-1]["message"]
    assert str(info.value) == f"ImageCache {cache['metadata']['name']} Failed: {message}"
    assert "no stand-in" in message and "mapping" in message
    retry = make("warm_failed", images=[image], timeout=60)  # a retry makes it again (it fails again here)
    with pytest.raises(AirflowException, match="no stand-in"):
        retry.execute(context("run-failed", RecordingTI(try_number=2)))
    (again,) = caches_holding(image)
    assert again["metadata"]["uid"] != cache["metadata"]["uid"]


def test_timeout_applies_delete_on_kill(argo_default: LocalCluster) -> None:
    image = f"busybox:{tag()}"
    op = make("warm_timeout", images=[image], timeout=0.2, delete_on_kill=True)  # the controller needs ~1.2 s
    ti = RecordingTI()
    with pytest.raises(TimeoutError, match=f"ImageCache {derive_name([image], op.dag_id, 'warm_timeout')} was not "
                                           "Ready before the timeout"):
        op.execute(context("run-timeout", ti))
    assert caches_holding(image) == [] and ti.xcom[XCOM_HOW] == "created"
    kept = make("warm_timeout_keep", images=[image], timeout=0.2)
    with pytest.raises(TimeoutError):
        kept.execute(context("run-timeout", RecordingTI()))
    assert len(caches_holding(image)) == 1  # delete_on_kill=False (the default) leaves it to finish
