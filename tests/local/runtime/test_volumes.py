"""Pod volumes on the local cluster, through the kubernetes client: emptyDir, PersistentVolumeClaims
(existing and volumeClaimTemplates with their GC), ConfigMap and Secret volumes, readOnly, and the
refusals (hostPath, unknown volume, a claim that does not exist)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from kubernetes import client

from airflow_argo_eci.local.runtime.sandbox import probe_bwrap

NS = "argo"
pytestmark = pytest.mark.skipif(probe_bwrap() is not None, reason=f"bubblewrap unavailable: {probe_bwrap()}")


def _submit(api: Any, spec: dict[str, Any], prefix: str) -> str:
    body = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": f"{prefix}-{uuid.uuid4().hex[:6]}"}, "spec": spec}
    client.CustomObjectsApi(api).create_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "workflows", body)
    return str(body["metadata"]["name"])


def _finished(api: Any, name: str, timeout: float = 60) -> dict[str, Any]:
    objects = client.CustomObjectsApi(api)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wf = objects.get_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "workflows", name)
        if (wf.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Error"):
            return dict(wf)
        time.sleep(0.2)
    raise AssertionError(f"workflow {name} did not finish in {timeout}s: {wf.get('status')}")


def _pod_nodes(wf: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in wf["status"]["nodes"].values() if n["type"] == "Pod"]


def _log(api: Any, wf: dict[str, Any], display: str) -> str:
    node = next(n for n in _pod_nodes(wf) if n["displayName"] == display)
    pod = next(p for p in client.CoreV1Api(api).list_namespaced_pod(NS).items
               if (p.metadata.annotations or {}).get("workflows.argoproj.io/node-id") == node["id"])
    response = client.CoreV1Api(api).read_namespaced_pod_log(pod.metadata.name, NS, container="main",
                                                             _preload_content=False)
    return str(response.data.decode())


def _sh(name: str, script: str, mounts: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": name, "container": {"image": "alpine:3.23", "command": ["sh", "-c"], "args": [script],
                                        "volumeMounts": mounts}, **extra}


def _claim(api: Any, name: str) -> None:
    client.CoreV1Api(api).create_namespaced_persistent_volume_claim(NS, {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}}})


def test_empty_dir_is_mounted_and_fresh_per_pod(kube_api_client: Any) -> None:
    mount = [{"name": "workdir", "mountPath": "/mnt/vol"}]
    name = _submit(kube_api_client, {
        "entrypoint": "main", "volumes": [{"name": "workdir", "emptyDir": {}}],
        "templates": [
            {"name": "main", "steps": [[{"name": "a", "template": "write"}], [{"name": "b", "template": "check"}]]},
            _sh("write", "grep -q ' /mnt/vol ' /proc/mounts && echo hi > /mnt/vol/f && cat /mnt/vol/f", mount),
            _sh("check", "test ! -e /mnt/vol/f && echo fresh", mount),
        ]}, "emptydir")
    wf = _finished(kube_api_client, name)
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    assert _log(kube_api_client, wf, "a").strip() == "hi"
    assert _log(kube_api_client, wf, "b").strip() == "fresh"


def test_existing_claim_is_bound_and_shared_between_pods(kube_api_client: Any) -> None:
    claim = f"existing-{uuid.uuid4().hex[:6]}"
    _claim(kube_api_client, claim)
    got = client.CoreV1Api(kube_api_client).read_namespaced_persistent_volume_claim(claim, NS)
    assert got.status.phase == "Bound"
    mount = [{"name": "workdir", "mountPath": "/mnt/vol"}]
    spec = {"entrypoint": "main",
            "volumes": [{"name": "workdir", "persistentVolumeClaim": {"claimName": claim}}],
            "templates": [
                {"name": "main", "steps": [[{"name": "generate", "template": "append"}],
                                           [{"name": "print", "template": "show"}]]},
                _sh("append", "echo accessed | tee -a /mnt/vol/accesslog", mount),
                _sh("show", "cat /mnt/vol/accesslog", mount)]}
    for runs in (1, 2):
        wf = _finished(kube_api_client, _submit(kube_api_client, spec, "existing"))
        assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
        assert _log(kube_api_client, wf, "print").split() == ["accessed"] * runs


def test_read_only_mount_cannot_be_written(kube_api_client: Any) -> None:
    claim = f"ro-{uuid.uuid4().hex[:6]}"
    _claim(kube_api_client, claim)
    name = _submit(kube_api_client, {
        "entrypoint": "w",
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        "templates": [_sh("w", "ls /data && echo x > /data/f", [{"name": "data", "mountPath": "/data",
                                                                  "readOnly": True}])]}, "readonly")
    wf = _finished(kube_api_client, name)
    assert wf["status"]["phase"] == "Failed"
    assert "Read-only file system" in _log(kube_api_client, wf, wf["metadata"]["name"])


@pytest.mark.parametrize("strategy,fail,kept", [
    (None, False, False), ("OnWorkflowCompletion", True, False), ("OnWorkflowSuccess", True, True),
    ("OnWorkflowSuccess", False, False)])
def test_volume_claim_templates_are_created_and_collected(kube_api_client: Any, strategy: str | None,
                                                          fail: bool, kept: bool) -> None:
    mount = [{"name": "workdir", "mountPath": "/mnt/vol"}]
    spec: dict[str, Any] = {
        "entrypoint": "main",
        "volumeClaimTemplates": [{"metadata": {"name": "workdir"},
                                  "spec": {"accessModes": ["ReadWriteOnce"],
                                           "resources": {"requests": {"storage": "1Gi"}}}}],
        "templates": [
            {"name": "main", "steps": [[{"name": "generate", "template": "hello"}],
                                       [{"name": "print", "template": "show"}]]},
            _sh("hello", "echo hello world | tee /mnt/vol/hello_world.txt", mount),
            _sh("show", "cat /mnt/vol/hello_world.txt" + ("; exit 3" if fail else ""), mount)]}
    if strategy:
        spec["volumeClaimGC"] = {"strategy": strategy}
    name = _submit(kube_api_client, spec, "vct")
    core = client.CoreV1Api(kube_api_client)
    wf = _finished(kube_api_client, name)
    assert wf["status"]["phase"] == ("Failed" if fail else "Succeeded"), wf["status"].get("message")
    assert _log(kube_api_client, wf, "print").strip() == "hello world"
    claims = {c.metadata.name: c for c in core.list_namespaced_persistent_volume_claim(NS).items}
    if kept:
        claim = claims[f"{name}-workdir"]
        assert claim.metadata.owner_references[0].name == name
        assert claim.metadata.owner_references[0].kind == "Workflow"
        assert wf["status"]["persistentVolumeClaims"] == [
            {"name": "workdir", "persistentVolumeClaim": {"claimName": f"{name}-workdir"}}]
    else:
        assert f"{name}-workdir" not in claims
        assert "persistentVolumeClaims" not in wf["status"]


def test_config_map_and_secret_volumes_hold_their_keys_as_files(kube_api_client: Any) -> None:
    core = client.CoreV1Api(kube_api_client)
    tag = uuid.uuid4().hex[:6]
    core.create_namespaced_config_map(NS, {"metadata": {"name": f"cm-{tag}"},
                                           "data": {"a.txt": "alpha", "b.txt": "beta"}})
    core.create_namespaced_secret(NS, {"metadata": {"name": f"sec-{tag}"}, "stringData": {"token": "s3cret"}})
    # the failed write's own message goes nowhere: stderr and stdout lines may reach the log in either order
    script = ("cat /cfg/a.txt /cfg/b.txt; echo; cat /picked/sub/renamed; echo; cat /sec/token; echo; "
              "stat -c %a /cfg/a.txt /picked/sub/renamed /sec/token; "
              "{ echo x > /cfg/new; } 2>/dev/null || echo read-only")
    name = _submit(kube_api_client, {
        "entrypoint": "show",
        "volumes": [
            {"name": "cfg", "configMap": {"name": f"cm-{tag}"}},
            {"name": "picked", "configMap": {"name": f"cm-{tag}", "items": [
                {"key": "b.txt", "path": "sub/renamed", "mode": 0o600}]}},
            {"name": "sec", "secret": {"secretName": f"sec-{tag}", "defaultMode": 0o400}}],
        "templates": [_sh("show", script, [{"name": "cfg", "mountPath": "/cfg"},
                                           {"name": "picked", "mountPath": "/picked"},
                                           {"name": "sec", "mountPath": "/sec"}])]}, "keys")
    wf = _finished(kube_api_client, name)
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    lines = _log(kube_api_client, wf, name).splitlines()
    assert lines[:6] == ["alphabeta", "beta", "s3cret", "644", "600", "400"]
    assert "read-only" in lines


@pytest.mark.parametrize("volumes,mounts,expected", [
    ([{"name": "host", "hostPath": {"path": "/etc"}}], [{"name": "host", "mountPath": "/h"}],
     'volume "host": hostPath volumes are refused'),
    ([], [{"name": "nope", "mountPath": "/n"}], 'templates.bad.volumeMounts[0].name: Not found: "nope"'),
    ([{"name": "c", "configMap": {"name": "no-such-cm"}}], [{"name": "c", "mountPath": "/c"}],
     'MountVolume.SetUp failed for volume "c" : configmap "no-such-cm" not found'),
    ([{"name": "n", "nfs": {"server": "x", "path": "/"}}], [{"name": "n", "mountPath": "/n"}],
     'volume "n": nfs volumes are not supported'),
    ([{"name": "e", "emptyDir": {}}], [{"name": "e", "mountPath": "relative"}],
     "templates.bad.volumeMounts[0].mountPath must be an absolute path"),
    ([{"name": "e", "emptyDir": {}}], [{"name": "e", "mountPath": "/e", "subPath": "x"}],
     "templates.bad.volumeMounts[0].subPath is not supported by the local cluster"),
    ([{"name": "e", "emptyDir": {}}], [{"name": "e", "mountPath": "/proc/x"}],
     "is under /proc, which pods cannot write"),
    ([{"name": "c", "configMap": {"name": "vol-test-cm", "items": [{"key": "k", "path": "../up"}]}}],
     [{"name": "c", "mountPath": "/c"}], 'items[0].path must be a relative path without ".."'),
])
def test_bad_volumes_fail_the_node_naming_the_volume(kube_api_client: Any, volumes: list[Any],
                                                     mounts: list[Any], expected: str) -> None:
    try:
        client.CoreV1Api(kube_api_client).create_namespaced_config_map(
            NS, {"metadata": {"name": "vol-test-cm"}, "data": {"k": "v"}})
    except client.ApiException as exc:
        assert exc.status == 409
    name = _submit(kube_api_client, {"entrypoint": "bad", "volumes": volumes,
                                     "templates": [_sh("bad", "true", mounts)]}, "badvol")
    wf = _finished(kube_api_client, name)
    assert wf["status"]["phase"] in ("Error", "Failed")
    assert expected in wf["status"]["nodes"][name]["message"]


def test_missing_claim_leaves_the_pod_pending_until_the_deadline(kube_api_client: Any) -> None:
    name = _submit(kube_api_client, {
        "entrypoint": "w", "activeDeadlineSeconds": 3,
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "missing-claim"}}],
        "templates": [_sh("w", "true", [{"name": "data", "mountPath": "/data"}])]}, "noclaim")
    core = client.CoreV1Api(kube_api_client)
    deadline = time.monotonic() + 10
    pods: list[Any] = []
    while not pods and time.monotonic() < deadline:
        pods = [p for p in core.list_namespaced_pod(NS, label_selector=f"workflows.argoproj.io/workflow={name}").items]
        time.sleep(0.1)
    assert pods, "no pod was created"
    pod = pods[0]
    assert pod.status.phase == "Pending"
    condition = pod.status.conditions[0]
    assert (condition.type, condition.status, condition.reason) == ("PodScheduled", "False", "Unschedulable")
    assert 'persistentvolumeclaim "missing-claim" not found' in condition.message
    wf = _finished(kube_api_client, name, timeout=30)
    assert wf["status"]["phase"] == "Failed"
    assert "deadline" in wf["status"]["message"].lower()


def test_pending_pod_starts_once_its_claim_exists(kube_api_client: Any) -> None:
    claim = f"late-{uuid.uuid4().hex[:6]}"
    name = _submit(kube_api_client, {
        "entrypoint": "w",
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        "templates": [_sh("w", "echo late > /data/f && cat /data/f", [{"name": "data", "mountPath": "/data"}])]},
        "lateclaim")
    objects = client.CustomObjectsApi(kube_api_client)
    deadline = time.monotonic() + 10
    message = ""
    while time.monotonic() < deadline and not message:
        wf = objects.get_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "workflows", name)
        message = ((wf.get("status") or {}).get("nodes") or {}).get(name, {}).get("message", "")
        time.sleep(0.1)
    assert message == f'Unschedulable: 0/1 nodes are available: persistentvolumeclaim "{claim}" not found.'
    _claim(kube_api_client, claim)
    wf = _finished(kube_api_client, name, timeout=30)
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    assert _log(kube_api_client, wf, name).strip() == "late"


def test_a_link_left_in_a_claim_never_leads_the_runtime_outside_it(kube_api_client: Any, tmp_path: Any) -> None:
    claim = f"links-{uuid.uuid4().hex[:6]}"
    _claim(kube_api_client, claim)
    target = tmp_path / "outside"
    target.mkdir()
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    mount = [{"name": "data", "mountPath": "/data"}]
    first = _finished(kube_api_client, _submit(kube_api_client, {
        "entrypoint": "w", "volumes": volumes,
        "templates": [_sh("w", f"ln -s {target} /data/esc", mount)]}, "link"))
    assert first["status"]["phase"] == "Succeeded", first["status"].get("message")
    second = _submit(kube_api_client, {
        "entrypoint": "w", "volumes": volumes,
        "templates": [{"name": "w", "container": {"image": "alpine:3.23", "command": ["pwd"],
                                                  "workingDir": "/data/esc/sub", "volumeMounts": mount}}]}, "link")
    wf = _finished(kube_api_client, second)
    assert wf["status"]["phase"] == "Error"
    assert "not a directory of the volume (a link or a file is in the way)" in wf["status"]["nodes"][second]["message"]
    assert list(target.iterdir()) == []


def test_persistent_volumes_and_claims_are_served_kinds(kube_api_client: Any) -> None:
    core = client.CoreV1Api(kube_api_client)
    name = f"pv-{uuid.uuid4().hex[:6]}"
    core.create_persistent_volume({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
                                   "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}})
    assert core.read_persistent_volume(name).status.phase == "Available"
    assert name in {pv.metadata.name for pv in core.list_persistent_volume().items}
    _claim(kube_api_client, name)
    claim = core.read_namespaced_persistent_volume_claim(name, NS)
    assert (claim.status.phase, claim.status.access_modes, claim.status.capacity) == (
        "Bound", ["ReadWriteOnce"], {"storage": "1Mi"})
    core.delete_namespaced_persistent_volume_claim(name, NS)
    core.delete_persistent_volume(name)
    assert name not in {c.metadata.name for c in core.list_namespaced_persistent_volume_claim(NS).items}
