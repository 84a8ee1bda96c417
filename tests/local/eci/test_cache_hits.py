"""Image caches seen from ECI pods on the local cluster: a pod pinning a Ready cache gets ECI's
SuccessfulHitImageCache event, one pinning a missing or unready cache fails with a Warning event,
automatic matching with and without perfect match, the legacy annotations, non-ECI pods untouched."""

from __future__ import annotations

import uuid

import pytest

from airflow_argo_eci import eci_conventions as eci
from airflow_argo_eci.local.eci.cache_hits import CacheIndex, cache_use
from tests.local.eci.ecikit import EciKit


def _tag() -> str:
    return "lc-" + uuid.uuid4().hex[:8]


def _hit(kit: EciKit, wf: dict) -> list:
    pod = kit.pod_of(wf)
    return [e for e in kit.pod_events(pod) if e.reason == eci.REASON_HIT_IMAGE_CACHE]


def test_a_pod_pinning_a_ready_cache_hits_it(kit: EciKit) -> None:
    cache_id = kit.ready_cache(["argoproj/argosay:v2"])
    wf = kit.run_workflow({eci.ANNOTATION_IMAGE_CACHE_ID: cache_id})
    assert wf["status"]["phase"] == "Succeeded"
    events = _hit(kit, wf)
    assert len(events) == 1
    event = events[0]
    assert event.type == "Normal"
    assert event.source.component == "EciService"
    assert event.message == (f"[eci.imagecache]Successfully hit image cache {cache_id}, eci will be scheduled "
                             "with this image cache.")
    pod = kit.pod_of(wf)
    assert (event.involved_object.kind, event.involved_object.name, event.involved_object.uid) == (
        "Pod", pod.metadata.name, pod.metadata.uid)


def test_the_legacy_snapshot_id_annotation_pins_too(kit: EciKit) -> None:
    cache_id = kit.ready_cache([f"ubuntu:{_tag()}"])
    wf = kit.run_workflow({eci.ANNOTATION_LEGACY_IMAGE_SNAPSHOT_ID: cache_id, eci.ANNOTATION_AUTO_IMAGE_CACHE: "false"})
    assert wf["status"]["phase"] == "Succeeded"
    assert [e.message for e in _hit(kit, wf)] == [
        f"[eci.imagecache]Successfully hit image cache {cache_id}, eci will be scheduled with this image cache."]


def test_a_pod_pinning_a_missing_cache_fails_with_the_event(kit: EciKit) -> None:
    wf = kit.run_workflow({eci.ANNOTATION_IMAGE_CACHE_ID: "imc-doesnotexist0000000"})
    assert wf["status"]["phase"] in ("Failed", "Error")
    pod = kit.pod_of(wf)
    expected = ("[eci.imagecache]The specified image cache imc-doesnotexist0000000 (k8s.aliyun.com/eci-imc-id) "
                "does not exist, eci cannot create the pod with it. Create the ImageCache and wait until it is "
                "Ready, or remove the annotation.")
    assert pod.status.phase == "Failed"
    assert pod.status.reason == "ImageCacheNotFound"
    assert pod.status.message == expected
    node = next(n for n in wf["status"]["nodes"].values() if n["type"] == "Pod")
    assert node["message"] == expected
    warnings = [e for e in kit.pod_events(pod) if e.type == "Warning"]
    assert [(e.reason, e.source.component, e.message) for e in warnings] == [
        ("ImageCacheNotFound", "EciService", expected)]
    assert not _hit(kit, wf)


def test_a_pod_pinning_a_failed_cache_fails_with_the_event(kit: EciKit) -> None:
    name = kit.name("ic")
    kit.create(name, {"images": [f"registry.example.com/acme/{_tag()}:1"]})
    cache = kit.final(name)
    assert cache["status"]["phase"] == eci.PHASE_FAILED
    cache_id = cache["status"]["imageCacheId"]
    wf = kit.run_workflow({eci.ANNOTATION_IMAGE_CACHE_ID: cache_id})
    pod = kit.pod_of(wf)
    assert pod.status.phase == "Failed" and pod.status.reason == "ImageCacheNotReady"
    assert pod.status.message == (
        f"[eci.imagecache]The specified image cache {cache_id} (k8s.aliyun.com/eci-imc-id, ImageCache {name}) is "
        "not available: its phase is Failed, only a Ready image cache can be used. Wait until it is Ready, or "
        "remove the annotation.")
    assert [e.reason for e in kit.pod_events(pod) if e.type == "Warning"] == ["ImageCacheNotReady"]


def test_automatic_matching_hits_a_cache_holding_any_image(kit: EciKit) -> None:
    main, side = f"ubuntu:{_tag()}", f"busybox:{_tag()}"
    partial = kit.ready_cache([main])
    wf = kit.run_workflow({}, (main, side))  # eci-auto-imc unset: ECI's default is on
    assert wf["status"]["phase"] == "Succeeded"
    assert [e.message for e in _hit(kit, wf)] == [
        f"[eci.imagecache]Successfully hit image cache {partial}, eci will be scheduled with this image cache."]


def test_perfect_match_needs_every_image(kit: EciKit) -> None:
    main, side = f"ubuntu:{_tag()}", f"busybox:{_tag()}"
    kit.ready_cache([main])
    perfect = {eci.ANNOTATION_IMAGE_CACHE_PERFECT_MATCH: "true"}
    wf = kit.run_workflow(perfect, (main, side))
    assert wf["status"]["phase"] == "Succeeded"
    assert _hit(kit, wf) == []
    full = kit.ready_cache([main, side, "python:3.12"])
    wf = kit.run_workflow(perfect, (main, side))
    assert [e.message for e in _hit(kit, wf)] == [
        f"[eci.imagecache]Successfully hit image cache {full}, eci will be scheduled with this image cache."]


def test_automatic_matching_off_and_non_eci_pods_get_no_event(kit: EciKit) -> None:
    image = f"ubuntu:{_tag()}"
    cache_id = kit.ready_cache([image])
    off = kit.run_workflow({eci.ANNOTATION_AUTO_IMAGE_CACHE: "false"}, (image,))
    assert off["status"]["phase"] == "Succeeded" and _hit(kit, off) == []
    legacy = kit.run_workflow({eci.ANNOTATION_AUTO_IMAGE_CACHE: "false", eci.ANNOTATION_LEGACY_IMAGE_CACHE: "true"},
                              (image,))
    assert [e.message for e in _hit(kit, legacy)] == [
        f"[eci.imagecache]Successfully hit image cache {cache_id}, eci will be scheduled with this image cache."]
    plain = kit.run_workflow({eci.ANNOTATION_IMAGE_CACHE_ID: "imc-doesnotexist0000000"}, (image,), eci_pod=False)
    assert plain["status"]["phase"] == "Succeeded"
    assert kit.pod_events(kit.pod_of(plain)) == []


def test_a_deleted_cache_is_no_longer_hit(kit: EciKit) -> None:
    image = f"ubuntu:{_tag()}"
    kit.ready_cache([image])
    name = kit._caches[-1]
    kit.delete(name)
    wf = kit.run_workflow({}, (image,))
    assert wf["status"]["phase"] == "Succeeded" and _hit(kit, wf) == []


@pytest.mark.parametrize(("annotations", "expected"), [
    ({}, "imc-newer"),
    ({eci.ANNOTATION_IMAGE_CACHE_PERFECT_MATCH: "true"}, "imc-both"),
])
def test_the_best_match_holds_the_most_images_then_is_newest(annotations: dict, expected: str) -> None:
    index = CacheIndex()
    for name, cache_id, images, start in (("older", "imc-older", ["a:1"], "2026-01-01T00:00:00Z"),
                                          ("newer", "imc-newer", ["a:1"], "2026-02-01T00:00:00Z"),
                                          ("both", "imc-both", ["b:1", "docker.io/library/a:1"],
                                           "2025-01-01T00:00:00Z"),
                                          ("creating", "imc-creating", ["a:1", "b:1"], "2026-03-01T00:00:00Z")):
        index.put({"metadata": {"name": name}, "spec": {"images": images},
                   "status": {"imageCacheId": cache_id, "startTime": start,
                              "phase": "Creating" if name == "creating" else "Ready"}})
    pod = {"metadata": {"labels": {"alibabacloud.com/eci": "true"}, "annotations": annotations},
           "spec": {"containers": [{"name": "main", "image": "a:1"}, {"name": "s", "image": "c:1"}]}}
    # "both" holds a:1 only of the pod's images (a:1, c:1): as many as "older"/"newer"; the newest wins
    use = cache_use(pod, index)
    if annotations:
        assert use.cache_id == ""  # no Ready cache holds c:1
        pod["spec"]["containers"][1]["image"] = "b:1"
        use = cache_use(pod, index)
    assert use.cache_id == expected and use.refusal is None


def test_the_index_ignores_events_older_than_what_it_knows() -> None:
    index = CacheIndex()

    def cache(rv: int, phase: str, name: str = "c") -> dict:
        return {"metadata": {"name": name, "resourceVersion": str(rv)}, "spec": {"images": ["a:1"]},
                "status": {"imageCacheId": f"imc-{name}", "phase": phase}}

    index.put(cache(5, "Ready"))
    index.put(cache(4, "Creating"))  # a late event of an older version
    entry = index.by_id("imc-c")
    assert entry is not None and entry.phase == "Ready"
    index.drop("c", 6)
    index.put(cache(5, "Ready"))  # a late event of the deleted object
    assert index.by_id("imc-c") is None
    index.put(cache(7, "Ready"))  # created again under the same name
    assert index.by_id("imc-c") is not None
