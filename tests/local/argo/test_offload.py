"""Argo's node status offloading on the local controller: ``persistence.nodeStatusOffLoad`` in the
controller ConfigMap, always-offload (``ALWAYS_OFFLOAD_NODE_STATUS``), the repository's versions
and their garbage collection, and a workflow that runs to its end while offloaded."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from airflow_argo_eci.eci_conventions import ARGO_NAMESPACE, CONTROLLER_CONFIGMAP
from airflow_argo_eci.local.api.resources import CONFIGMAPS, WORKFLOWS
from airflow_argo_eci.local.argo.offload import (
    ALWAYS_OFFLOAD_ENV,
    NodeStatusOffloading,
    OffloadedNodesMissing,
    OffloadRepository,
    node_status_offload_enabled,
    node_status_version,
    offload_ttl_from_env,
)
from airflow_argo_eci.local.argo.packing import pack_status
from airflow_argo_eci.workflows import OffloadedNodesError, workflow_nodes

PERSISTENCE = "nodeStatusOffLoad: true\npostgresql:\n  host: localhost\n"


def pod(args: list[str], name: str) -> dict[str, Any]:
    return {"name": name, "container": {"image": "busybox", "args": args}}


def two_steps() -> dict[str, Any]:
    return {"entrypoint": "main", "templates": [
        {"name": "main", "steps": [[{"name": "one", "template": "wait"}], [{"name": "two", "template": "say"}]]},
        pod(["sleep", "0.3", "echo", "hello"], "wait"), pod(["echo", "hello"], "say")]}


def enable_offloading(harness: Any) -> None:
    """``persistence.nodeStatusOffLoad: true`` in the controller ConfigMap, as an Argo install sets it."""
    harness.store.create(CONFIGMAPS, ARGO_NAMESPACE, {"metadata": {"name": CONTROLLER_CONFIGMAP},
                                                      "data": {"persistence": PERSISTENCE}})


def test_the_controller_configmap_turns_offloading_on_and_off() -> None:
    assert node_status_offload_enabled({"data": {"persistence": PERSISTENCE}}) is True
    assert node_status_offload_enabled({"data": {"persistence": "nodeStatusOffLoad: false"}}) is False
    assert node_status_offload_enabled({"data": {"persistence": "archive: true"}}) is False
    assert node_status_offload_enabled({"data": {"persistence": "{not yaml"}}) is False
    assert node_status_offload_enabled({"data": {}}) is False
    assert node_status_offload_enabled(None) is False


def test_ttl_and_always_offload_come_from_argos_environment_variables(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Any) -> None:
    monkeypatch.delenv("OFFLOAD_NODE_STATUS_TTL", raising=False)
    assert offload_ttl_from_env() == 300.0
    monkeypatch.setenv("OFFLOAD_NODE_STATUS_TTL", "30s")
    assert offload_ttl_from_env() == 30.0
    monkeypatch.setenv("OFFLOAD_NODE_STATUS_TTL", "2m")
    assert offload_ttl_from_env() == 120.0
    monkeypatch.setenv(ALWAYS_OFFLOAD_ENV, "true")
    assert NodeStatusOffloading(tmp_path / "db").always is True
    monkeypatch.setenv(ALWAYS_OFFLOAD_ENV, "1")  # Argo compares with "true" only
    assert NodeStatusOffloading(tmp_path / "db").always is False


def test_versions_are_fnv_of_the_nodes_and_saving_again_keeps_the_row(tmp_path: Any) -> None:
    repo = OffloadRepository(tmp_path / "db")
    nodes = {"a": {"id": "a", "phase": "Running"}}
    version = repo.save("uid-1", "argo", nodes)
    assert version.startswith("fnv:") and version == node_status_version(nodes)[1]
    assert repo.save("uid-1", "argo", dict(nodes)) == version and repo.versions("uid-1") == [version]
    later = repo.save("uid-1", "argo", {"a": {"id": "a", "phase": "Succeeded"}})
    assert later != version and repo.versions("uid-1") == [version, later]  # old versions are kept
    assert repo.get("uid-1", version) == nodes
    with pytest.raises(OffloadedNodesMissing, match="uid-2"):
        repo.get("uid-2", version)
    assert set(repo.list_offloads("argo")) == {("uid-1", version), ("uid-1", later)}
    assert repo.list_offloads("other") == {}
    repo.close()


def test_versions_past_the_ttl_go_except_the_live_one(tmp_path: Any) -> None:
    repo = OffloadRepository(tmp_path / "db", ttl=60)
    old = repo.save("uid-1", "argo", {"a": {"phase": "Running"}})
    live = repo.save("uid-1", "argo", {"a": {"phase": "Succeeded"}})
    other = repo.save("uid-gone", "argo", {"b": {}})
    assert repo.delete_old_versions("uid-1", live) == 0  # younger than the TTL: kept
    assert repo.old_offloads(now=time.time() + 61) == {"uid-1": [old, live], "uid-gone": [other]}
    assert repo.delete_old_versions("uid-1", live, now=time.time() + 61) == 1
    assert repo.versions("uid-1") == [live]
    offloading = NodeStatusOffloading(tmp_path / "db")
    offloading.repository.ttl = -1  # everything is past the TTL
    assert offloading.sweep({"uid-1"}) == 1  # the missing workflow's rows go, the live one's stay
    assert offloading.repository.versions("uid-gone") == [] and offloading.repository.versions("uid-1") == [live]


def test_pack_status_offloads_what_does_not_fit_compressed_and_always_with_always() -> None:
    wf = {"metadata": {"name": "w", "uid": "u"}, "spec": {}}
    status = {"phase": "Running", "nodes": {"a": {"id": "a", "message": os.urandom(2000).hex()}}}
    saved: list[dict[str, Any]] = []

    def offload(nodes: dict[str, Any]) -> str:
        saved.append(nodes)
        return "fnv:1"

    assert pack_status(wf, status, 1_000_000, offload=offload) == (status, "")  # fits: untouched
    packed, message = pack_status(wf, status, 200, offload=offload)
    assert message == "" and packed == {"phase": "Running", "offloadNodeStatusVersion": "fnv:1"}
    assert saved == [status["nodes"]]
    packed, message = pack_status(wf, status, 1_000_000, offload=offload, always=True)
    assert packed == {"phase": "Running", "offloadNodeStatusVersion": "fnv:1"}
    # without offloading, Argo's too-large error; always-offload without it: Argo's Dehydrate error
    assert pack_status(wf, status, 200)[1].startswith("workflow is longer than maximum allowed size.")
    assert pack_status(wf, status, 1_000_000, always=True)[1] == (
        "Tried to offload but encountered error: offload node status is not supported")


def test_a_workflow_runs_to_its_end_offloaded_and_its_rows_go_with_it(harness: Any) -> None:
    enable_offloading(harness)
    harness.controller.offloading.always = True
    harness.submit(two_steps(), "off")
    wf = harness.wait("off")
    status = wf["status"]
    assert status["phase"] == "Succeeded", status
    assert "nodes" not in status and "compressedNodes" not in status
    version = status["offloadNodeStatusVersion"]
    with pytest.raises(OffloadedNodesError):
        workflow_nodes(status)
    repo = harness.controller.offloading.repository
    uid = wf["metadata"]["uid"]
    nodes = repo.get(uid, version)
    assert {"one", "two"} <= {n["displayName"] for n in nodes.values()} and nodes["off"]["type"] == "Steps"
    assert all(n["phase"] == "Succeeded" for n in nodes.values())
    assert len(repo.versions(uid)) > 1  # each write of the running workflow offloaded a version
    assert len(harness.runtime.submitted) == 2  # the controller kept working from the offloaded nodes
    harness.store.delete(WORKFLOWS, "argo", "off")
    deadline = time.time() + 5
    while repo.versions(uid) and time.time() < deadline:
        time.sleep(0.02)
    assert repo.versions(uid) == []


def test_always_offload_without_the_setting_ends_the_workflow_in_error_as_argo(harness: Any) -> None:
    harness.controller.offloading.always = True
    harness.submit(two_steps(), "nooff")
    wf = harness.wait("nooff")
    assert wf["status"]["phase"] == "Error"
    assert "Tried to offload but encountered error: offload node status is not supported" in wf["status"]["message"]


def test_too_large_even_compressed_is_offloaded_when_on_and_an_error_when_off(harness: Any) -> None:
    harness.controller.max_workflow_size = 1200  # the spec fits, the status with its nodes does not
    harness.submit(two_steps(), "big-off")
    assert "maximum allowed size" in harness.wait("big-off")["status"]["message"]
    enable_offloading(harness)
    harness.submit(two_steps(), "big-on")
    wf = harness.wait("big-on")
    assert wf["status"]["phase"] == "Succeeded" and wf["status"]["offloadNodeStatusVersion"]
    assert "nodes" not in wf["status"]


def test_turning_the_setting_off_stops_offloading_new_workflows(harness: Any) -> None:
    enable_offloading(harness)
    assert harness.controller.offloading.enabled is True
    harness.store.delete(CONFIGMAPS, ARGO_NAMESPACE, CONTROLLER_CONFIGMAP)
    assert harness.controller.offloading.enabled is False
    harness.submit(two_steps(), "plain")
    wf = harness.wait("plain")
    assert wf["status"]["phase"] == "Succeeded" and "offloadNodeStatusVersion" not in wf["status"]
    assert {"one", "two"} <= {n["displayName"] for n in wf["status"]["nodes"].values()}
