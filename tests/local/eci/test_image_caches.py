"""ImageCaches on the local cluster through the kubernetes client: the phases in order with progress,
id and events, expiry, the failures (an image without a local stand-in, a missing pull secret), the
specs the API refuses (422 naming the field), kubectl's columns, deletion."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from kubernetes.client.rest import ApiException

from airflow_argo_eci import eci_conventions as eci
from airflow_argo_eci.local.api.resources import IMAGE_CACHES
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.api.tables import build_table
from airflow_argo_eci.local.eci.image_caches import ImageCacheController, image_cache_id
from airflow_argo_eci.local.runtime.images import IMAGE_MAP_ENV, ImageTable
from airflow_argo_eci.local.server import LocalCluster
from tests.local.eci.ecikit import NS, EciKit


def _time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")


def test_phases_in_order_with_progress_and_events(kit: EciKit) -> None:
    name = kit.name("ic")
    created = kit.create(name, {"images": ["argoproj/argosay:v2", "python:3.12"], "retentionDays": 7})
    seen: list[tuple[str, str]] = []
    started = time.monotonic()
    deadline = started + 15
    while time.monotonic() < deadline:
        status = kit.get(name).get("status") or {}
        step = (status.get("phase", ""), status.get("progress", ""))
        if step[0] and (not seen or seen[-1] != step):
            seen.append(step)
        if step[0] == eci.PHASE_READY:
            break
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    assert seen == [("Preparing", "0%"), ("Creating", "30%"), ("Creating", "60%"), ("Ready", "100%")]
    assert elapsed < 5, elapsed
    status = kit.get(name)["status"]
    assert status["imageCacheId"] == image_cache_id(created["metadata"]["uid"])
    assert status["imageCacheId"].startswith("imc-") and status["imageCacheId"][4:].isalnum()
    assert status["imageCacheId"] == status["imageCacheId"].lower() and len(status["imageCacheId"]) == 24
    assert [(e["type"], e["name"]) for e in status["events"]] == [
        ("Normal", "Preparing"), ("Normal", "Creating"), ("Normal", "Pulled"), ("Normal", "Created")]
    assert all(set(e) == {"type", "name", "message", "timestamp"} for e in status["events"])
    assert status["events"][0]["message"] == (
        f"Preparing image cache {status['imageCacheId']} for 2 image(s): argoproj/argosay:v2, python:3.12")
    assert status["events"][-1]["message"] == f"Image cache {status['imageCacheId']} created: 2 image(s) cached"
    start = _time(status["startTime"])
    assert _time(status["lastUpdatedTime"]) >= start
    assert _time(status["expireDateTime"]) == start + timedelta(days=7)


def test_without_retention_days_the_cache_never_expires(kit: EciKit) -> None:
    name = kit.name("ic")
    kit.create(name, {"images": ["busybox:1.36"], "imageCacheSize": 40})
    status = kit.final(name)["status"]
    assert status["phase"] == eci.PHASE_READY
    assert "expireDateTime" not in status


def test_an_image_without_a_local_stand_in_fails_saying_how_to_map_it(kit: EciKit) -> None:
    name = kit.name("ic")
    image = "registry.example.com/acme/trainer:2.1"
    kit.create(name, {"images": ["busybox:1.36", image]})
    status = kit.final(name)["status"]
    assert status["phase"] == eci.PHASE_FAILED
    assert status["progress"] == "30%"
    last = status["events"][-1]
    assert (last["type"], last["name"]) == ("Warning", "ImageNotFound")
    assert last["message"] == (
        f'Failed to pull image "{image}": the local cluster has no stand-in for it in its image table. '
        f"Add a mapping: set {IMAGE_MAP_ENV} to a JSON or YAML file mapping the image to its entrypoint "
        f'(a list of strings), e.g. {{"{image}": ["/usr/local/bin/tool"]}}, and restart the local cluster')
    assert _time(status["expireDateTime"]) == _time(last["timestamp"]) + timedelta(hours=24)


def test_an_image_mapped_in_the_image_table_is_cached(tmp_path: Path) -> None:
    image = "registry.example.com/acme/trainer:2.1"
    store = Store(tmp_path / "db.sqlite")
    try:
        controller = ImageCacheController(store, ImageTable(tmp_path / "shims", {image: ["/bin/true"]}),
                                          step_seconds=0.0)
        store.create(IMAGE_CACHES, None, {"metadata": {"name": "mapped"}, "spec": {"images": [image]}})
        phases = []
        for _ in range(4):
            assert controller.reconcile(store.get(IMAGE_CACHES, None, "mapped")) == (len(phases) < 3)
            status = store.get(IMAGE_CACHES, None, "mapped")["status"]
            phases.append((status["phase"], status["progress"]))
        assert phases == [("Preparing", "0%"), ("Creating", "30%"), ("Creating", "60%"), ("Ready", "100%")]
        assert controller.index.by_id(status["imageCacheId"]) is None  # not started: the index listens to nothing
    finally:
        store.close()


def test_a_missing_pull_secret_fails_naming_it(kit: EciKit) -> None:
    present = kit.secret(kit.name("acr"))
    name = kit.name("ic")
    kit.create(name, {"images": ["busybox:1.36"], "imagePullSecrets": [f"{NS}:{present}", f"{NS}:absent-acr"]})
    status = kit.final(name)["status"]
    assert status["phase"] == eci.PHASE_FAILED
    last = status["events"][-1]
    assert (last["type"], last["name"]) == ("Warning", "ImagePullSecretNotFound")
    assert last["message"].startswith(
        f'Failed to pull images: imagePullSecret "{NS}:absent-acr" names Secret {NS}/absent-acr, which does not '
        "exist")


def test_an_existing_pull_secret_is_accepted(kit: EciKit) -> None:
    secret = kit.secret(kit.name("acr"))
    name = kit.name("ic")
    kit.create(name, {"images": ["busybox:1.36"], "imagePullSecrets": [f"{NS}:{secret}"]})
    assert kit.final(name)["status"]["phase"] == eci.PHASE_READY


@pytest.mark.parametrize(("spec", "field", "text"), [
    ({}, "spec.images", "Required value"),
    ({"images": []}, "spec.images", "Required value"),
    ({"images": "nginx"}, "spec.images", "must be a list"),
    ({"images": ["nginx", ""]}, "spec.images[1]", "non-empty image name"),
    ({"images": ["nginx", 3]}, "spec.images[1]", "non-empty image name"),
    ({"images": ["nginx"], "imageCacheSize": 19}, "spec.imageCacheSize", "between 20 and 32768"),
    ({"images": ["nginx"], "imageCacheSize": 32769}, "spec.imageCacheSize", "between 20 and 32768"),
    ({"images": ["nginx"], "imageCacheSize": "20"}, "spec.imageCacheSize", "must be an integer"),
    ({"images": ["nginx"], "retentionDays": 0}, "spec.retentionDays", "between 1 and 65536"),
    ({"images": ["nginx"], "retentionDays": 65537}, "spec.retentionDays", "between 1 and 65536"),
    ({"images": ["nginx"], "imagePullSecrets": ["acr-test"]}, "spec.imagePullSecrets[0]", "namespace:name"),
    ({"images": ["nginx"], "imagePullSecrets": ["default:ok", "Bad_NS:acr"]}, "spec.imagePullSecrets[1]",
     "namespace: a lowercase RFC 1123 label"),
    ({"images": ["nginx"], "imagePullSecrets": ["default:"]}, "spec.imagePullSecrets[0]",
     "name: a lowercase RFC 1123 subdomain"),
])
def test_bad_specs_are_refused_naming_the_field(kit: EciKit, spec: dict, field: str, text: str) -> None:
    name = kit.name("bad")
    with pytest.raises(ApiException) as info:
        kit.create(name, spec)
    assert info.value.status == 422
    body = json.loads(info.value.body)
    assert body["reason"] == "Invalid"
    assert body["details"]["kind"] == eci.IMAGE_CACHES and body["details"]["group"] == eci.GROUP
    causes = body["details"]["causes"]
    assert [c["field"] for c in causes] == [field]
    assert text in causes[0]["message"]
    assert field in body["message"]


def test_a_status_write_keeps_the_spec_checked(kit: EciKit) -> None:
    name = kit.name("ic")
    kit.create(name, {"images": ["busybox:1.36"]})
    kit.final(name)
    obj = kit.get(name)
    obj["spec"]["imageCacheSize"] = 10
    with pytest.raises(ApiException) as info:
        kit.objects.replace_cluster_custom_object(eci.GROUP, eci.VERSION, eci.IMAGE_CACHES, name, obj)
    assert info.value.status == 422


def test_kubectl_columns_and_deletion(one_process_kit: EciKit, one_process_cluster: LocalCluster) -> None:
    kit, local_cluster = one_process_kit, one_process_cluster  # the controller's index is looked at
    name = kit.name("ic")
    kit.create(name, {"images": ["busybox:1.36"]})
    obj = kit.final(name)
    table = build_table(eci.GROUP, eci.IMAGE_CACHES, [obj])
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age", "CacheID", "Phase", "Progress"]
    assert table["rows"][0]["cells"][0] == name
    assert table["rows"][0]["cells"][2:] == [obj["status"]["imageCacheId"], "Ready", "100%"]
    cache_id = obj["status"]["imageCacheId"]
    assert local_cluster.image_caches is not None
    assert local_cluster.image_caches.index.by_id(cache_id) is not None
    kit.delete(name)
    with pytest.raises(ApiException) as info:
        kit.get(name)
    assert info.value.status == 404
    assert local_cluster.image_caches.index.by_id(cache_id) is None


def test_a_new_controller_resumes_a_creation_and_indexes_ready_caches(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    images = ImageTable(tmp_path / "shims", {})
    try:
        first = ImageCacheController(store, images, step_seconds=0.0)
        store.create(IMAGE_CACHES, None, {"metadata": {"name": "resumed"}, "spec": {"images": ["busybox:1.36"]}})
        store.create(IMAGE_CACHES, None, {"metadata": {"name": "done"}, "spec": {"images": ["python:3.12"]}})
        first.reconcile(store.get(IMAGE_CACHES, None, "resumed"))  # Preparing, then the "restart"
        for _ in range(4):
            first.reconcile(store.get(IMAGE_CACHES, None, "done"))
        done_id = store.get(IMAGE_CACHES, None, "done")["status"]["imageCacheId"]
        second = ImageCacheController(store, images, step_seconds=0.05)
        second.start()
        try:
            assert second.index.by_id(done_id) is not None  # indexed at start
            deadline = time.monotonic() + 10
            while (store.get(IMAGE_CACHES, None, "resumed")["status"]["phase"] != "Ready"
                   and time.monotonic() < deadline):
                time.sleep(0.02)
            status = store.get(IMAGE_CACHES, None, "resumed")["status"]
            assert [e["name"] for e in status["events"]] == ["Preparing", "Creating", "Pulled", "Created"]
            assert second.index.by_id(status["imageCacheId"]) is not None
        finally:
            second.stop()
    finally:
        store.close()
