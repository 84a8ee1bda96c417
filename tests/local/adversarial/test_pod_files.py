"""Attacks on the host-side handling of the files a pod leaves behind, through the real API.

A hostile step leaves links, FIFOs or huge files where its outputs are read back (output
parameters, ``archive: none`` and tgz artifacts). The state directory is hidden from pods, but a
pod can still *name* it in a dangling link, so each attack bakes the path of the cluster's secret
files (from the fixture) into its script. Each must fail safely: the secret appears nowhere, the
cluster keeps answering ``/version`` and still runs a harmless workflow.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any

from airflow_argo_eci.conventions import pod_name
from tests.local.adversarial.harness import (
    ClusterUnderTest,
    Responsiveness,
    assert_nothing_leaked,
    harmless_workflow,
    pod_logs,
    run_workflow,
    script_workflow,
)

MISSING = "no such file or directory"


def _param_workflow(source: str, path: str = "/tmp/out") -> dict[str, Any]:
    return script_workflow(source, outputs={"parameters": [{"name": "p", "valueFrom": {"path": path}}]})


def _artifact_workflow(source: str, path: str, archive: dict[str, Any] | None = None) -> dict[str, Any]:
    art: dict[str, Any] = {"name": "a", "path": path}
    if archive is not None:
        art["archive"] = archive
    return script_workflow(source, outputs={"artifacts": [art]})


def _pod_node(wf: dict[str, Any]) -> dict[str, Any]:
    pods = [n for n in wf["status"]["nodes"].values() if n.get("type") == "Pod"]
    assert len(pods) == 1, wf["status"]
    return pods[0]


def _parameters(wf: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for n in wf["status"]["nodes"].values() for p in ((n.get("outputs") or {}).get("parameters") or [])]


def _survives(cluster: ClusterUnderTest, kube: Any, wf: dict[str, Any], responsiveness: Responsiveness | None = None,
              *, extra: str = "") -> None:
    """The attack's workflow leaked nothing, the API stayed fast, a harmless workflow still runs."""
    if responsiveness is not None:
        responsiveness.check()
    assert run_workflow(kube, harmless_workflow())["status"]["phase"] == "Succeeded"
    assert_nothing_leaked(cluster, kube, extra_text=repr(wf) + pod_logs(kube, wf) + extra)


def test_output_parameter_through_a_link_to_the_token(hostile_cluster: ClusterUnderTest, kube: Any,
                                                      responsiveness: Responsiveness) -> None:
    token = shlex.quote(str(hostile_cluster.paths.token))
    with responsiveness:
        wf = run_workflow(kube, _param_workflow(f"ln -s {token} /tmp/out; ls -l /tmp/out"))
    assert wf["status"]["phase"] in ("Failed", "Error"), wf["status"]
    assert _parameters(wf) == []
    node = _pod_node(wf)
    assert node["message"].endswith(f"open /tmp/out: {MISSING}"), node
    _survives(hostile_cluster, kube, wf, responsiveness)


def test_output_parameter_through_relative_dotdot_links(hostile_cluster: ClusterUnderTest, kube: Any) -> None:
    """``..`` stops at the pod's root: climbing "above" it and back down to the state directory,
    directly or through a link to a directory, finds nothing."""
    token = hostile_cluster.paths.token
    climb = "../" * 40 + str(token).lstrip("/")
    state = shlex.quote(str(token.parent))
    source = (f"ln -s {shlex.quote(climb)} /tmp/out; mkdir -p /tmp/a/b; ln -s ../../../../.. /tmp/a/b/up; "
              f"ln -s {state} /tmp/state")
    manifest = script_workflow(source, outputs={"parameters": [
        {"name": "climb", "valueFrom": {"path": "/tmp/out"}},
        {"name": "via-dir", "valueFrom": {"path": f"/tmp/a/b/up{token}"}},
        {"name": "via-link", "valueFrom": {"path": f"/tmp/state/{token.name}"}},
    ]})
    wf = run_workflow(kube, manifest)
    assert wf["status"]["phase"] in ("Failed", "Error"), wf["status"]
    assert MISSING in _pod_node(wf)["message"]
    assert _parameters(wf) == []
    _survives(hostile_cluster, kube, wf)


def test_output_parameter_through_a_link_into_another_pods_directory(hostile_cluster: ClusterUnderTest,
                                                                     kube: Any) -> None:
    first = run_workflow(kube, script_workflow("echo pod-a-private-data > /tmp/mine"))
    assert first["status"]["phase"] == "Succeeded", first["status"]
    node = _pod_node(first)
    other = hostile_cluster.paths.pod_dir("argo", pod_name(first["metadata"]["name"], node["name"],
                                                           node.get("templateName") or ""))
    assert (other / "tmp" / "mine").read_text() == "pod-a-private-data\n"  # it is there, on the host
    target = shlex.quote(str(other / "tmp" / "mine"))
    wf = run_workflow(kube, _param_workflow(f"ln -s {target} /tmp/out"))
    assert wf["status"]["phase"] in ("Failed", "Error"), wf["status"]
    assert "pod-a-private-data" not in repr(wf)
    assert _pod_node(wf)["message"].endswith(f"open /tmp/out: {MISSING}")
    _survives(hostile_cluster, kube, wf)


def test_unarchived_artifact_through_a_link_to_the_oss_credentials(hostile_cluster: ClusterUnderTest,
                                                                   kube: Any) -> None:
    creds = shlex.quote(str(hostile_cluster.paths.oss_credentials))
    wf = run_workflow(kube, _artifact_workflow(f"ln -s {creds} /tmp/oss-credentials.json",
                                               "/tmp/oss-credentials.json", {"none": {}}))
    assert wf["status"]["phase"] in ("Failed", "Error"), wf["status"]
    assert MISSING in _pod_node(wf)["message"]
    assert not (_pod_node(wf).get("outputs") or {}).get("artifacts")
    _survives(hostile_cluster, kube, wf)


def test_unarchived_directory_artifact_skips_links(hostile_cluster: ClusterUnderTest, kube: Any) -> None:
    """``archive: none`` of a directory: one object per regular file, links are not followed."""
    token = shlex.quote(str(hostile_cluster.paths.token))
    source = f"mkdir /tmp/d && echo fine > /tmp/d/ok.txt && ln -s {token} /tmp/d/token && ln -s ok.txt /tmp/d/l"
    wf = run_workflow(kube, _artifact_workflow(source, "/tmp/d", {"none": {}}))
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    _survives(hostile_cluster, kube, wf)


def test_tgz_artifact_of_a_directory_with_links_out(hostile_cluster: ClusterUnderTest, kube: Any,
                                                    host_canary: Path) -> None:
    token = shlex.quote(str(hostile_cluster.paths.token))
    canary = shlex.quote(str(host_canary))
    source = (f"mkdir /tmp/d && echo fine > /tmp/d/ok.txt && ln -s {token} /tmp/d/token && "
              f"ln -s ../../{'../' * 10}{shlex.quote(str(hostile_cluster.paths.oss_credentials).lstrip('/'))} "
              f"/tmp/d/creds && ln -s {canary} /tmp/d/canary")
    wf = run_workflow(kube, _artifact_workflow(source, "/tmp/d"))
    assert wf["status"]["phase"] in ("Failed", "Error"), wf["status"]
    message = _pod_node(wf)["message"]
    assert "failed to archive artifact a" in message and "outside the artifact" in message, message
    _survives(hostile_cluster, kube, wf)


def test_tgz_artifact_keeps_inner_links_as_links(hostile_cluster: ClusterUnderTest, kube: Any) -> None:
    """Links inside the artifact are stored as links (never their target's content) and the next
    step gets them back as links."""
    producer = {
        "name": "produce",
        "script": {"image": "alpine", "command": ["sh"],
                   "source": "mkdir -p /tmp/d/sub && echo inner > /tmp/d/sub/f && ln -s sub/f /tmp/d/l && "
                             "ln /tmp/d/sub/f /tmp/d/hard"},
        "outputs": {"artifacts": [{"name": "d", "path": "/tmp/d"}]},
    }
    consumer = {
        "name": "consume",
        "inputs": {"artifacts": [{"name": "d", "path": "/tmp/in"}]},
        "script": {"image": "alpine", "command": ["sh"],
                   "source": "echo link=$(readlink /tmp/in/l); echo via=$(cat /tmp/in/l); "
                             "echo hard=$(cat /tmp/in/hard)"},
    }
    main = {"name": "main", "steps": [
        [{"name": "p", "template": "produce"}],
        [{"name": "c", "template": "consume",
          "arguments": {"artifacts": [{"name": "d", "from": "{{steps.p.outputs.artifacts.d}}"}]}}],
    ]}
    wf = run_workflow(kube, {"spec": {"entrypoint": "main", "templates": [main, producer, consumer]}})
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    logs = pod_logs(kube, wf)
    assert "link=sub/f" in logs and "via=inner" in logs and "hard=inner" in logs, logs
    _survives(hostile_cluster, kube, wf)


def test_fifo_as_output_path_does_not_stall(hostile_cluster: ClusterUnderTest, kube: Any,
                                            responsiveness: Responsiveness) -> None:
    started = time.monotonic()
    with responsiveness:
        wf = run_workflow(kube, _param_workflow("mkfifo /tmp/out"), timeout=30)
        art = run_workflow(kube, _artifact_workflow("mkfifo /tmp/pipe", "/tmp/pipe", {"none": {}}), timeout=30)
    assert time.monotonic() - started < 30
    assert wf["status"]["phase"] == "Error", wf["status"]
    assert "FIFO" in _pod_node(wf)["message"] and "not a regular file" in _pod_node(wf)["message"]
    assert art["status"]["phase"] in ("Failed", "Error"), art["status"]
    assert "FIFO" in _pod_node(art)["message"], _pod_node(art)
    _survives(hostile_cluster, kube, wf, responsiveness)


def test_huge_output_parameter_fails_cleanly(hostile_cluster: ClusterUnderTest, kube: Any,
                                             responsiveness: Responsiveness) -> None:
    with responsiveness:
        wf = run_workflow(kube, _param_workflow("head -c 104857600 /dev/zero > /tmp/out"), timeout=60)
    assert wf["status"]["phase"] == "Error", wf["status"]
    message = _pod_node(wf)["message"]
    assert "may hold at most 262144 bytes" in message and "output artifact" in message, message
    assert _parameters(wf) == []
    assert len(repr(wf)) < 64 * 1024
    _survives(hostile_cluster, kube, wf, responsiveness)
