"""``memoize`` on the local cluster through the ``kubernetes`` client: a miss runs and fills the
ConfigMap cache, a hit answers from it without a pod, ``maxAge`` expires entries, bad keys fail."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_argo_eci.conventions import GROUP, LABEL_WORKFLOW, VERSION
from tests.local.argo import clusterwf

NS = "default"


def memo_workflow(key: str, cache: str, max_age: str | None = None) -> dict[str, Any]:
    memoize: dict[str, Any] = {"key": key, "cache": {"configMap": {"name": cache}}}
    if max_age:
        memoize["maxAge"] = max_age
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow", "metadata": {"generateName": "memo-"},
            "spec": {"entrypoint": "main", "templates": [{
                "name": "main", "memoize": memoize,
                "container": {"image": "alpine:3.23", "command": ["sh", "-c"],
                              "args": ["echo world > /tmp/hello_world.txt"]},
                "outputs": {"parameters": [{"name": "hello", "valueFrom": {"path": "/tmp/hello_world.txt"}}]}}]}}


def run(api_client: Any, doc: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    return clusterwf.run(api_client, doc, timeout, namespace=NS)


def root(wf: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = wf["status"]["nodes"][wf["metadata"]["name"]]
    return node


def hello(wf: dict[str, Any]) -> str:
    return str(root(wf)["outputs"]["parameters"][0]["value"])


def pods_of(api_client: Any, wf: dict[str, Any]) -> list[Any]:
    from kubernetes import client

    return list(client.CoreV1Api(api_client).list_namespaced_pod(
        NS, label_selector=f"{LABEL_WORKFLOW}={wf['metadata']['name']}").items)


def test_a_miss_fills_the_cache_and_a_hit_runs_nothing(kube_api_client: Any) -> None:
    from kubernetes import client

    key, cache = f"k-{uuid.uuid4().hex[:6]}", f"cache-{uuid.uuid4().hex[:6]}"
    first = run(kube_api_client, memo_workflow(key, cache, "1h"))
    assert first["status"]["phase"] == "Succeeded", first["status"]
    assert root(first)["memoizationStatus"] == {"hit": False, "key": key, "cacheName": cache}
    assert hello(first) == "world"
    cm = client.CoreV1Api(kube_api_client).read_namespaced_config_map(cache, NS)
    assert cm.metadata.labels["workflows.argoproj.io/configmap-type"] == "Cache"
    entry = json.loads(cm.data[key])
    assert entry["nodeID"] == first["metadata"]["name"]
    assert entry["outputs"]["parameters"][0]["value"] == "world"
    assert entry["creationTimestamp"] and entry["lastHitTimestamp"]

    second = run(kube_api_client, memo_workflow(key, cache, "1h"))
    assert second["status"]["phase"] == "Succeeded", second["status"]
    assert root(second)["memoizationStatus"] == {"hit": True, "key": key, "cacheName": cache}
    assert hello(second) == "world"
    assert pods_of(kube_api_client, second) == []
    assert len(pods_of(kube_api_client, first)) == 1


def test_max_age_decides_whether_an_entry_is_a_hit(kube_api_client: Any) -> None:
    """The upstream example's cache entry ("different world"): a hit while younger than maxAge,
    a miss (the template runs again and the entry is replaced) once older."""
    from kubernetes import client

    core = client.CoreV1Api(kube_api_client)
    key, cache = "cache-key", f"cache-{uuid.uuid4().hex[:6]}"

    def entry(age: timedelta) -> str:
        stamp = (datetime.now(timezone.utc) - age).strftime("%Y-%m-%dT%H:%M:%SZ")
        return json.dumps({"nodeID": "memoized-hdckj", "outputs": {"parameters": [
            {"name": "hello", "value": "different world", "valueFrom": {"path": "/tmp/hello_world.txt"}}],
            "exitCode": "0"}, "creationTimestamp": stamp, "lastHitTimestamp": stamp})

    core.create_namespaced_config_map(NS, {"metadata": {"name": cache}, "data": {key: entry(timedelta(0))}})
    fresh = run(kube_api_client, memo_workflow(key, cache, "10s"))
    assert fresh["status"]["phase"] == "Succeeded"
    assert root(fresh)["memoizationStatus"]["hit"] is True
    assert hello(fresh) == "different world"

    core.patch_namespaced_config_map(cache, NS, {"data": {key: entry(timedelta(minutes=5))}})
    stale = run(kube_api_client, memo_workflow(key, cache, "10s"))
    assert stale["status"]["phase"] == "Succeeded"
    assert root(stale)["memoizationStatus"]["hit"] is False
    assert hello(stale) == "world"
    saved = json.loads(core.read_namespaced_config_map(cache, NS).data[key])
    assert saved["nodeID"] == stale["metadata"]["name"]


def test_an_unusable_memoize_block_fails_the_node_naming_the_field(kube_api_client: Any) -> None:
    bad_key = run(kube_api_client, memo_workflow("not a key!", "c"))
    assert bad_key["status"]["phase"] in ("Error", "Failed")
    assert "templates.main.memoize.key: invalid memoization key 'not a key!'" in root(bad_key)["message"]
    no_cache = memo_workflow("k", "")
    no_cache["spec"]["templates"][0]["memoize"]["cache"] = {}
    wf = run(kube_api_client, no_cache)
    assert "templates.main.memoize.cache.configMap.name is required" in root(wf)["message"]
    bad_age = run(kube_api_client, memo_workflow("k", "c", "soon"))
    assert "templates.main.memoize.maxAge" in root(bad_age)["message"]
