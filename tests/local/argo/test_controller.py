"""The controller against a real Store and the scripted runtime double: node trees, pods,
parameters, retries, parallelism, shutdown and restart recovery."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_argo_eci.conventions import node_id, pod_name
from airflow_argo_eci.local.api.resources import PODS, WORKFLOWS
from airflow_argo_eci.local.argo.controller import POD_LOST, Controller
from airflow_argo_eci.local.runtime import PodRequest, PodResult
from tests.local.api.lagging_peers import lagging_peers
from tests.local.argo.conftest import FakeRuntime, Harness


def pod(args: list[str], name: str = "main-t", **extra: Any) -> dict[str, Any]:
    return {"name": name, "container": {"image": "busybox", "args": args}, **extra}


def test_hello_world_creates_pod_and_status(harness) -> None:
    harness.submit({"entrypoint": "hello", "templates": [pod(["echo", "hello world"], "hello")]}, "hw")
    wf = harness.wait("hw")
    status = wf["status"]
    assert status["phase"] == "Succeeded"
    assert status["progress"] == "1/1"
    assert wf["metadata"]["labels"]["workflows.argoproj.io/completed"] == "true"
    assert wf["metadata"]["labels"]["workflows.argoproj.io/phase"] == "Succeeded"
    root = status["nodes"]["hw"]
    assert root["type"] == "Pod" and root["outputs"]["result"] == "hello world"
    assert root["outputs"]["exitCode"] == "0"
    assert root["hostNodeName"] == "local"
    p = harness.store.get(PODS, "argo", "hw")
    assert p["metadata"]["labels"]["workflows.argoproj.io/workflow"] == "hw"
    assert p["metadata"]["annotations"]["workflows.argoproj.io/node-name"] == "hw"
    assert p["metadata"]["ownerReferences"][0]["kind"] == "Workflow"
    assert p["spec"]["containers"][0]["name"] == "main"
    assert p["status"]["phase"] == "Succeeded"
    assert status["resourcesDuration"]["cpu"] >= 1


def test_steps_pass_outputs_and_names(harness) -> None:
    spec = {
        "entrypoint": "main",
        "arguments": {"parameters": [{"name": "greeting", "value": "hi"}]},
        "templates": [
            {"name": "main", "steps": [
                [{"name": "gen", "template": "gen"}],
                [{"name": "use", "template": "echo",
                  "arguments": {"parameters": [{"name": "m", "value": "{{steps.gen.outputs.parameters.p}}"}]}}],
            ]},
            {"name": "gen",
             "container": {"image": "x", "args": ["write", "/tmp/p", "{{workflow.parameters.greeting}}\n"]},
             "outputs": {"parameters": [{"name": "p", "valueFrom": {"path": "/tmp/p"}}]}},
            {"name": "echo", "inputs": {"parameters": [{"name": "m"}]},
             "container": {"image": "x", "args": ["echo", "{{inputs.parameters.m}}-{{pod.name}}"]}},
        ],
    }
    harness.submit(spec, "st")
    wf = harness.wait("st")
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    nodes = wf["status"]["nodes"]
    use = nodes[node_id("st", "st[1].use")]
    assert use["name"] == "st[1].use" and use["displayName"] == "use"
    assert use["inputs"]["parameters"][0]["value"] == "hi"
    assert use["outputs"]["result"] == f"hi-{pod_name('st', 'st[1].use', 'echo')}"
    assert nodes[node_id("st", "st[0]")]["type"] == "StepGroup"
    assert nodes["st"]["type"] == "Steps"
    assert harness.store.get(PODS, "argo", pod_name("st", "st[0].gen", "gen"))


def test_dag_depends_items_and_when(harness) -> None:
    spec = {
        "entrypoint": "d",
        "templates": [
            {"name": "d", "dag": {"tasks": [
                {"name": "A", "template": "ok", "withItems": [{"k": "a"}, {"k": "b"}]},
                {"name": "B", "template": "bad", "depends": "A"},
                {"name": "C", "template": "ok", "depends": "B.Failed"},
                {"name": "D", "template": "ok", "depends": "B", "when": "{{tasks.A.status}} == Succeeded"},
                {"name": "E", "template": "ok", "depends": "C", "when": "1 > 2"},
            ]}},
            pod(["echo", "fine"], "ok"),
            pod(["fail", "3"], "bad"),
        ],
    }
    harness.submit(spec, "dg")
    wf = harness.wait("dg")
    by = harness.nodes_by_display(wf)
    assert by["A"]["type"] == "TaskGroup"
    assert "A(0:k:a)" in by and "A(1:k:b)" in by
    assert by["B"]["phase"] == "Failed" and by["B"]["message"] == "Error (exit code 3)"
    assert by["C"]["phase"] == "Succeeded"
    assert by["D"]["phase"] == "Omitted"
    assert by["E"]["phase"] == "Skipped" and "evaluated false" in by["E"]["message"]
    # D's branch inherits B's failure: the DAG fails
    assert wf["status"]["phase"] == "Failed"


def test_retry_creates_attempts(harness) -> None:
    spec = {"entrypoint": "r", "templates": [pod(["flaky", "2"], "r", retryStrategy={"limit": "3"})]}
    harness.submit(spec, "rt")
    wf = harness.wait("rt")
    assert wf["status"]["phase"] == "Succeeded"
    root = wf["status"]["nodes"]["rt"]
    assert root["type"] == "Retry" and len(root["children"]) == 3
    assert [wf["status"]["nodes"][c]["name"] for c in root["children"]] == ["rt(0)", "rt(1)", "rt(2)"]


def test_retry_limit_exhausted(harness) -> None:
    spec = {"entrypoint": "r", "templates": [pod(["fail", "1"], "r", retryStrategy={"limit": 1})]}
    harness.submit(spec, "rx")
    wf = harness.wait("rx")
    assert wf["status"]["phase"] == "Failed"
    assert wf["status"]["nodes"]["rx"]["message"] == "No more retries left"


def test_parallelism_limits_concurrent_pods(harness) -> None:
    spec = {"entrypoint": "m", "parallelism": 2, "templates": [
        {"name": "m", "steps": [[{"name": "s", "template": "slow", "withSequence": {"count": "6"}}]]},
        pod(["sleep", "0.15", "echo", "x"], "slow"),
    ]}
    harness.submit(spec, "par")
    wf = harness.wait("par")
    assert wf["status"]["phase"] == "Succeeded"
    assert wf["status"]["progress"] == "6/6"
    assert harness.runtime.peak == 2


def test_stop_runs_exit_handler_and_terminate_does_not(harness) -> None:
    def spec() -> dict[str, Any]:
        return {"entrypoint": "m", "onExit": "bye", "templates": [
            pod(["sleep", "30", "echo", "x"], "m"), pod(["echo", "{{workflow.status}}"], "bye")]}

    for strategy in ("Stop", "Terminate"):
        name = strategy.lower()
        harness.submit(spec(), name)
        harness.wait(name, until=lambda wf, n=name: wf.get("status", {}).get("nodes", {}).get(n, {}).get("phase")
                     == "Running")
        harness.store.update(WORKFLOWS, "argo", name, lambda o, s=strategy: o["spec"].__setitem__("shutdown", s))
        wf = harness.wait(name)
        assert wf["status"]["phase"] == "Failed"
        assert wf["status"]["message"] == f"Stopped with strategy '{strategy}'"
        exit_node = wf["status"]["nodes"].get(node_id(name, f"{name}.onExit"))
        if strategy == "Stop":
            assert exit_node is not None and exit_node["outputs"]["result"] == "Failed"
        else:
            assert exit_node is None


def test_unsupported_template_type_is_an_error(harness) -> None:
    spec = {"entrypoint": "r", "templates": [{"name": "r", "plugin": {"hello": {}}}]}
    harness.submit(spec, "un")
    wf = harness.wait("un")
    assert wf["status"]["phase"] == "Error"
    assert "template type plugin is not supported by the local cluster" in wf["status"]["message"]


def test_validation_errors(harness) -> None:
    harness.submit({"entrypoint": "nope", "templates": [pod(["echo"], "a")]}, "v1")
    harness.submit({"entrypoint": "d", "templates": [
        {"name": "d", "dag": {"tasks": [{"name": "A", "template": "a", "depends": "B"},
                                        {"name": "B", "template": "a", "depends": "A"}]}},
        pod(["echo"], "a")]}, "v2")
    harness.submit({"entrypoint": "s", "templates": [{"name": "s", "steps": [[{"name": "x", "template": "zz"}]]}]},
                   "v3")
    assert harness.wait("v1")["status"]["message"] == "invalid spec: spec.entrypoint template 'nope' undefined"
    assert "dependency cycle detected" in harness.wait("v2")["status"]["message"]
    assert "template name 'zz' undefined" in harness.wait("v3")["status"]["message"]
    assert {harness.get(n)["status"]["phase"] for n in ("v1", "v2", "v3")} == {"Error"}


def test_restart_marks_lost_pods_and_never_resubmits(harness) -> None:
    spec = {"entrypoint": "m", "templates": [pod(["sleep", "30", "echo", "x"], "m",
                                                 retryStrategy={"limit": 1, "retryPolicy": "Always"})]}
    harness.submit(spec, "rs")
    harness.wait("rs", until=lambda wf: len(wf.get("status", {}).get("nodes", {})) == 2)
    # the server dies: a new controller and an empty runtime see the old store
    harness.controller.stop()
    first = pod_name("rs", "rs(0)", "m")
    assert harness.store.get(PODS, "argo", first)["status"]["phase"] in ("Pending", "Running")
    harness.runtime.crash()
    ctl, fresh = harness.fresh_controller()
    ctl.start()
    try:
        wf = harness.wait("rs", until=lambda wf: len(wf["status"]["nodes"]) == 3)
        lost = wf["status"]["nodes"][node_id("rs", "rs(0)")]
        assert lost["phase"] == "Error" and lost["message"] == POD_LOST
        time.sleep(0.3)
        assert [r.pod_name for r in fresh.submitted] == [pod_name("rs", "rs(1)", "m")]
    finally:
        ctl.stop()
        fresh.crash()


class FirstResultHeld(FakeRuntime):
    """Reports the first pod's result only once ``release`` is set, as a runtime still saving a
    killed pod's artifacts does; ``delivered`` is set when that report has returned."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.delivered = threading.Event()

    def submit(self, req: PodRequest, on_done: Callable[[PodResult], None]) -> None:
        if self.submitted:
            super().submit(req, on_done)
            return

        def late(result: PodResult) -> None:
            self.release.wait(10)
            on_done(result)
            self.delivered.set()

        super().submit(req, late)


def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.02)


def test_a_late_result_never_lands_on_a_newer_pod_of_the_same_name(tmp_path: Path) -> None:
    """A pod force-deleted and made again under its name (``argo retry``) while the runtime still
    reports the old one: the old result goes nowhere, and the new pod's artifact saver is its own."""
    harness = Harness(tmp_path / "state")
    runtime = FirstResultHeld()
    controller = Controller(harness.store, runtime, harness.paths, tick_seconds=0.2)
    controller.start()
    saved: list[tuple[str, str]] = []

    def saver(tag: str) -> Callable[[PodResult], tuple[list[dict[str, Any]], str]]:
        def save(result: PodResult) -> tuple[list[dict[str, Any]], str]:
            saved.append((tag, result.phase))
            return [], ""
        return save

    def make(tag: str) -> None:
        container = {"name": "main", "image": "busybox", "args": ["sleep", "30"]}
        obj = {"metadata": {"name": "p", "labels": {"tag": tag}}, "spec": {"containers": [container]}}
        controller.create_and_submit(obj, PodRequest("argo", "p", container), save_artifacts=saver(tag))

    def pod() -> dict[str, Any]:
        return harness.store.get(PODS, "argo", "p")

    try:
        make("old")
        _until(lambda: pod()["status"]["phase"] == "Running")
        harness.store.delete(PODS, "argo", "p", grace_period_seconds=0)  # the old process is killed
        _until(lambda: not runtime.is_running("argo", "p"))
        make("new")
        _until(lambda: pod()["status"]["phase"] == "Running")
        runtime.release.set()
        assert runtime.delivered.wait(10)
        current = pod()
        assert current["metadata"]["labels"]["tag"] == "new"
        assert current["status"]["phase"] == "Running"
        assert "workflows.argoproj.io/outputs" not in current["metadata"].get("annotations", {})
        assert saved == []  # the old pod's saver went with it; the new pod's is kept for its own result
        controller.kill_pod("argo", "p", "done")
        _until(lambda: pod()["status"]["phase"] == "Failed")
        assert saved == [("new", "Failed")]
    finally:
        controller.stop()
        runtime.crash()
        harness.store.close()


def test_a_late_workflow_deletion_leaves_a_same_named_successors_pods_alone(tmp_path: Path) -> None:
    """The node process learns of a workflow's deletion from its follower, possibly after a
    successor of the same name made its pods: only the pods the deleted workflow's uid owns go."""
    paths = Harness(tmp_path / "state").paths
    with lagging_peers(paths.db) as (api, node):
        runtime = FakeRuntime()
        controller = Controller(node, runtime, paths, tick_seconds=0.1)
        controller.start()

        def workflow_pods() -> list[dict[str, Any]]:
            return node.list(PODS, "argo", label_selector="workflows.argoproj.io/workflow=wf")[0]

        try:
            old = api.create(WORKFLOWS, "argo", {"metadata": {"name": "wf"}, "spec": {
                "entrypoint": "s", "templates": [{"name": "s", "steps": [[{"name": "a", "template": "e"}],
                                                                         [{"name": "b", "template": "w"}]]},
                                                 pod(["echo", "x"], "e"), {"name": "w", "suspend": {}}]}})
            _until(lambda: any(n.get("type") == "Suspend" for n in
                               ((api.get(WORKFLOWS, "argo", "wf").get("status") or {}).get("nodes") or {}).values()))
            node.follow()
            api.delete(WORKFLOWS, "argo", "wf")  # its finished pod goes with it at once (the API's GC)
            _until(lambda: not workflow_pods())
            api.create(WORKFLOWS, "argo", {"metadata": {"name": "wf"}, "spec": {
                "entrypoint": "m", "templates": [pod(["sleep", "30"], "m")]}})
            _until(lambda: [p["status"]["phase"] for p in workflow_pods()] == ["Running"])
            node.follow()  # the old workflow's deletion reaches the controller now
            time.sleep(0.5)
            pods = workflow_pods()
            assert [p["status"]["phase"] for p in pods] == ["Running"]
            assert pods[0]["metadata"]["ownerReferences"][0]["uid"] != old["metadata"]["uid"]
            assert api.get(WORKFLOWS, "argo", "wf")["status"]["phase"] == "Running"
        finally:
            controller.stop()
            runtime.crash()


def test_a_late_deletion_mark_of_an_older_pod_leaves_the_running_one_of_its_name_alone(tmp_path: Path) -> None:
    """A pod held by a finalizer ends, is released and made again under its name before the node
    process's follower reads its deletion mark: that mark must not kill the new pod's process."""
    paths = Harness(tmp_path / "state").paths
    with lagging_peers(paths.db) as (api, node):
        runtime = FakeRuntime()
        controller = Controller(node, runtime, paths, tick_seconds=0.1)
        controller.start()

        def make(seconds: str) -> None:
            container = {"name": "main", "image": "busybox", "args": ["sleep", seconds]}
            controller.create_and_submit({"metadata": {"name": "p"}, "spec": {"containers": [container]}},
                                         PodRequest("argo", "p", container))

        def phase() -> str:
            found = api.find(PODS, "argo", "p")
            return str(((found or {}).get("status") or {}).get("phase", "gone"))

        try:
            make("1")
            _until(lambda: phase() == "Running")
            api.update(PODS, "argo", "p", lambda o: {**o, "metadata": {**o["metadata"], "finalizers": ["x/keep"]}})
            api.delete(PODS, "argo", "p")  # marked; the node process does not know yet
            _until(lambda: phase() == "Succeeded")  # its process ended by itself; the finalizer holds it
            api.update(PODS, "argo", "p", lambda o: {**o, "metadata": {**o["metadata"], "finalizers": []}})
            _until(lambda: phase() == "gone")
            make("30")
            _until(lambda: phase() == "Running")
            node.follow()  # the old pod's deletion mark and removal reach the controller now
            time.sleep(0.3)
            assert runtime.is_running("argo", "p")
            assert phase() == "Running"
        finally:
            controller.stop()
            runtime.crash()


@pytest.mark.parametrize("then", ["runs", "killed", "forgotten"])
def test_a_pod_made_while_an_older_process_of_its_name_still_runs_waits_for_it(tmp_path: Path, then: str) -> None:
    """A pod force-deleted (its deletion not yet read by the node process, whose follower lags, or
    read, and its process killed but still ending) and made again under its name: the new Pod exists
    at once (Pending), the old process is killed, and the new pod runs once it has ended; a kill of
    the waiting pod ends it without running it. It once came out "pod deleted" (no Pod was made
    while the old process ran), and, once the deletion was read, its workflow's passes failed on
    the runtime's "already queued or running"."""
    paths = Harness(tmp_path / "state").paths
    with lagging_peers(paths.db) as (api, node):
        runtime = FakeRuntime()
        runtime.hold_kills = threading.Event()
        controller = Controller(node, runtime, paths, tick_seconds=0.1)
        controller.start()
        container = {"name": "main", "image": "busybox", "args": ["sleep", "30"]}

        def make(tag: str) -> None:
            controller.create_and_submit({"metadata": {"name": "p", "labels": {"tag": tag}},
                                          "spec": {"containers": [container]}}, PodRequest("argo", "p", container))

        def current() -> dict[str, Any]:
            return api.find(PODS, "argo", "p") or {}

        try:
            make("old")
            _until(lambda: (current().get("status") or {}).get("phase") == "Running")
            api.delete(PODS, "argo", "p", grace_period_seconds=0)  # the node process does not know yet
            if then == "forgotten":
                node.follow()  # it does now: the old process is killed, and takes its time to end
                _until(lambda: ("argo", "p") in runtime.kill_messages)
                assert runtime.is_running("argo", "p")
            make("new")
            assert current()["metadata"]["labels"]["tag"] == "new"
            assert current()["status"]["phase"] == "Pending"
            assert runtime.kill_messages[("argo", "p")] == "pod deleted"  # the old one's
            assert len(runtime.submitted) == 1  # not while the old process runs
            if then == "killed":
                controller.kill_pod("argo", "p", "workflow shutdown")
                _until(lambda: current()["status"]["phase"] == "Failed")
                assert current()["status"]["message"] == "workflow shutdown"
                runtime.hold_kills.set()
                runtime.wait_idle()
                time.sleep(0.2)
                assert len(runtime.submitted) == 1  # the new pod never ran
                assert current()["status"]["phase"] == "Failed"
            else:
                runtime.hold_kills.set()
                _until(lambda: current()["status"]["phase"] == "Running")
                assert current()["metadata"]["labels"]["tag"] == "new"
                assert len(runtime.submitted) == 2
                node.follow()  # the old pod's deletion reaches the controller now
                time.sleep(0.3)
                assert runtime.is_running("argo", "p")
                assert current()["status"]["phase"] == "Running"
        finally:
            controller.stop()
            runtime.crash()
