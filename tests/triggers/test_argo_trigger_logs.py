"""Pod logs while deferred: ArgoWorkflowTrigger(get_logs=True) against the instrumented cluster.

The tests play the Argo controller (workflow status with pod nodes) and the kubelet (Pod objects
and their log files in the state directory), so every pod change and every log line happens when
the test says; the recorder shows exactly which log reads the triggers issued.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime, timezone
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent
from kubernetes import client

from airflow_argo_eci.conventions import workflow_pod_name
from airflow_argo_eci.lifecycle import LogCursor
from airflow_argo_eci.triggers.pod_logs import DEFAULT_LOG_BURST, DEFAULT_LOG_RATE
from airflow_argo_eci.triggers.watch_hub import get_hub
from tests.triggers.cluster import NAMESPACE, InstrumentedCluster, eventually
from tests.triggers.test_argo_trigger import collect, subscribed, trigger_for

TRIGGER_LOGGER = "airflow_argo_eci.triggers.argo.ArgoWorkflowTrigger"


class Controller:
    """Plays Argo's controller and kubelet for one workflow: pod nodes, Pod objects, log lines."""

    def __init__(self, cluster: InstrumentedCluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.workflow = cluster.create_workflow(name)
        self.nodes: dict[str, dict[str, Any]] = {
            name: {"id": name, "name": name, "displayName": name, "type": "Steps", "phase": "Running", "children": []},
        }

    def pod(self, step: str) -> str:
        node_id = f"{self.name}-{abs(hash(step)) % 10**8}"
        return workflow_pod_name(self.workflow, node_id, {"name": f"{self.name}[0].{step}", "templateName": step})

    def set_pod(self, step: str, phase: str) -> None:
        """Create or move the pod node ``step`` (and its Pod object) to ``phase``."""
        node_id = f"{self.name}-{abs(hash(step)) % 10**8}"
        pod = self.pod(step)
        if node_id not in self.nodes:
            self.nodes[node_id] = {"id": node_id, "name": f"{self.name}[0].{step}", "displayName": step,
                                   "templateName": step, "type": "Pod", "phase": phase}
            self.nodes[self.name]["children"].append(node_id)
            client.CoreV1Api(self.cluster.arranger).create_namespaced_pod(NAMESPACE, {
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": NAMESPACE,
                             "labels": {"workflows.argoproj.io/workflow": self.name}},
                "spec": {"containers": [{"name": "main", "image": "alpine"}]}, "status": {"phase": phase},
            })
        self.nodes[node_id]["phase"] = phase
        self.cluster.set_status(self.name, {"phase": "Running", "nodes": self.nodes})

    def write(self, step: str, *lines: str) -> None:
        """Append ``lines`` to the pod's log, as the kubelet does (RFC 3339 nano timestamp + space)."""
        path = self.cluster.paths.log_file(NAMESPACE, self.pod(step), "main")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            for line in lines:
                now = datetime.now(timezone.utc)
                fh.write(f"{now.strftime('%Y-%m-%dT%H:%M:%S')}.{now.microsecond:06d}000Z {line}\n")
                time.sleep(0.002)  # distinct timestamps, as lines of a real pod mostly have

    def progress(self, text: str) -> None:
        """A status change that touches no pod (Argo's progress/resourcesDuration updates)."""
        self.cluster.set_status(self.name, {"phase": "Running", "progress": text})

    def finish(self, phase: str = "Succeeded") -> dict[str, Any]:
        return self.cluster.set_status(self.name, {"phase": phase, "nodes": self.nodes})


def log_reads(cluster: InstrumentedCluster, since: int = 0) -> list[str]:
    """The pods whose log was read (Kubernetes ``pods/log`` requests), in order."""
    return [r.path.split("/")[-2] for r in cluster.requests(since=since) if r.path.endswith("/log")]


class TaskLog:
    """The pod lines the trigger printed (its structlog output, as the triggerer would route it)."""

    LINE = re.compile(r"\[info\s*\] (\[[^\]]+\] .*?)\s+\[" + re.escape(TRIGGER_LOGGER) + r"\]")

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.text = ""

    def __call__(self) -> list[str]:
        self.text += self.capsys.readouterr().out
        return self.LINE.findall(self.text)


@pytest.fixture
def printed(capsys: pytest.CaptureFixture[str]) -> TaskLog:
    return TaskLog(capsys)


async def test_lines_stream_while_deferred_and_the_cursor_comes_back(
    cluster: InstrumentedCluster, printed: TaskLog
) -> None:
    wf = Controller(cluster, "wf-logs")
    wf.set_pod("prepare", "Running")
    wf.write("prepare", "downloading reference", "reference ready")
    task = asyncio.create_task(collect(trigger_for(wf.workflow, get_logs=True, log_interval=0)))
    await eventually(lambda: len(printed()) == 2, what="the running pod's lines")
    assert printed() == ["[prepare] downloading reference", "[prepare] reference ready"]

    wf.write("prepare", "prepared 3 shards")
    wf.set_pod("prepare", "Succeeded")  # the watch shows the pod finish: its last lines are read
    wf.set_pod("align", "Running")
    wf.write("align", "aligning shard 1")
    await eventually(lambda: len(printed()) == 4, what="the finished and the new pod's lines")
    assert not task.done()  # all of it while the task is still deferred
    assert printed()[2:] == ["[prepare] prepared 3 shards", "[align] aligning shard 1"]

    wf.write("align", "aligned")
    done = wf.finish()
    (event,) = await asyncio.wait_for(task, 10)
    assert event.payload["status"] == "success"
    assert event.payload["resource_version"] == done["metadata"]["resourceVersion"]
    cursor = LogCursor.from_dict(event.payload["log_cursor"])
    assert set(cursor.positions) == {wf.pod("prepare"), wf.pod("align")}
    # the resumed task continues from the cursor: only what the trigger did not print
    remaining = {step: cursor.new_lines(wf.pod(step), _lines(cluster, wf.pod(step))) for step in ("prepare", "align")}
    assert remaining == {"prepare": [], "align": ["aligned"]}
    assert printed().count("[prepare] reference ready") == 1


async def test_status_changes_without_pod_changes_read_no_log(
    cluster: InstrumentedCluster, printed: TaskLog
) -> None:
    wf = Controller(cluster, "wf-quiet")
    wf.set_pod("main", "Running")
    wf.write("main", "started")
    task = asyncio.create_task(collect(trigger_for(wf.workflow, get_logs=True, log_interval=0)))
    await eventually(lambda: printed() == ["[main] started"], what="the first read")
    before = len(cluster.requests())
    for i in range(20):
        wf.progress(f"{i}/20")
    await asyncio.sleep(0.5)
    assert log_reads(cluster, before) == []  # 20 watch events, no pod changed: no log request
    wf.set_pod("main", "Succeeded")
    await eventually(lambda: log_reads(cluster, before) == [wf.pod("main")], what="one read for the finished pod")
    wf.finish()
    (event,) = await asyncio.wait_for(task, 10)
    assert event.payload["status"] == "success"


async def test_a_pod_that_keeps_running_is_reread_every_log_interval(
    cluster: InstrumentedCluster, printed: TaskLog
) -> None:
    wf = Controller(cluster, "wf-long-pod")
    wf.set_pod("train", "Running")
    wf.write("train", "epoch 1")
    task = asyncio.create_task(collect(trigger_for(wf.workflow, get_logs=True, log_interval=0.3)))
    await eventually(lambda: printed() == ["[train] epoch 1"], what="the first read")
    wf.write("train", "epoch 2")  # no watch event at all: only the interval finds it
    await eventually(lambda: printed() == ["[train] epoch 1", "[train] epoch 2"], what="the re-read")
    started, before = time.monotonic(), len(cluster.requests())
    await eventually(lambda: len(log_reads(cluster, before)) >= 3, what="three more re-reads")
    reads = len(log_reads(cluster, before))
    # one pod, one read per interval at most (a loaded machine only makes it fewer)
    assert reads <= (time.monotonic() - started) / 0.3 + 1
    wf.finish()
    (event,) = await asyncio.wait_for(task, 10)
    assert event.payload["status"] == "success"
    assert printed().count("[train] epoch 2") == 1


async def test_log_reads_of_many_triggers_stay_within_the_rate_limit(
    cluster: InstrumentedCluster, printed: TaskLog
) -> None:
    workflows = [Controller(cluster, f"wf-many-{i}") for i in range(40)]
    for wf in workflows:
        wf.set_pod("main", "Pending")  # no log yet: nothing to read
    tasks = [asyncio.create_task(collect(trigger_for(wf.workflow, get_logs=True, log_interval=0)))
             for wf in workflows]
    await subscribed(40)
    await eventually(lambda: cluster.recorder.open_watches() == 1, what="the watch")
    await asyncio.sleep(0.3)
    assert log_reads(cluster) == []  # Pending pods have no log: no read
    before = len(cluster.requests())
    started = time.monotonic()
    for wf in workflows:  # every pod starts at once
        wf.write("main", f"hello from {wf.name}")
        wf.set_pod("main", "Running")
    await asyncio.sleep(1.0)
    elapsed = time.monotonic() - started
    burst = log_reads(cluster, before)
    # the hub's token bucket: never more than the burst plus the rate over the elapsed time
    assert len(burst) <= DEFAULT_LOG_BURST + DEFAULT_LOG_RATE * elapsed + 1
    await eventually(lambda: len(printed()) == 40, timeout=30, what="every pod's line")
    assert sorted(printed()) == sorted(f"[main] hello from {wf.name}" for wf in workflows)
    assert len(log_reads(cluster, before)) == 40  # one read per pod that started, none per trigger per poll
    for wf in workflows:
        wf.finish()
    results: list[list[TriggerEvent]] = await asyncio.wait_for(asyncio.gather(*tasks), 15)
    assert [len(events) for events in results] == [1] * 40
    assert all(events[0].payload["status"] == "success" for events in results)
    assert get_hub().channel_count() == 0


async def test_the_outcome_does_not_wait_for_queued_log_reads(cluster: InstrumentedCluster) -> None:
    """A finished workflow resumes its task at once even when its pods' reads are still queued
    behind the rate limit; the resumed task reads them (the cursor says where to start)."""
    workflows = [Controller(cluster, f"wf-queued-{i}") for i in range(30)]
    tasks = [asyncio.create_task(collect(trigger_for(wf.workflow, get_logs=True, log_interval=0)))
             for wf in workflows]
    await subscribed(30)
    await eventually(lambda: cluster.recorder.open_watches() == 1, what="the watch")
    for wf in workflows:
        wf.write("main", "line")
        wf.set_pod("main", "Running")
    last = workflows[-1]
    last.finish()  # its read is the last in the hub's queue (first come, first served)
    await asyncio.wait_for(tasks[-1], 30)
    # it did not wait for its turn: most of the reads queued before its own were not issued yet
    assert len(log_reads(cluster)) < len(workflows) - 1
    for wf in workflows[:-1]:
        wf.finish()
    await asyncio.wait_for(asyncio.gather(*tasks), 15)


async def test_without_get_logs_no_log_is_read(cluster: InstrumentedCluster, printed: TaskLog) -> None:
    wf = Controller(cluster, "wf-no-logs")
    wf.set_pod("main", "Running")
    wf.write("main", "not for the trigger")
    task = asyncio.create_task(collect(trigger_for(wf.workflow)))
    await subscribed(1)
    wf.set_pod("main", "Succeeded")
    wf.finish()
    (event,) = await asyncio.wait_for(task, 10)
    assert event.payload["log_cursor"] == {}
    assert log_reads(cluster) == [] and printed() == []


async def test_argo_server_transport_streams_too(cluster_factory: Any, printed: TaskLog) -> None:
    cluster = cluster_factory(transport="argo_server")
    wf = Controller(cluster, "wf-server-logs")
    wf.set_pod("main", "Running")
    wf.write("main", "over the Argo Server")
    task = asyncio.create_task(collect(trigger_for(wf.workflow, get_logs=True, log_interval=0, poll_interval=0.2)))
    await eventually(lambda: printed() == ["[main] over the Argo Server"], what="the line")
    wf.finish()
    (event,) = await asyncio.wait_for(task, 10)
    assert list(event.payload["log_cursor"]) == [wf.pod("main")]


def _lines(cluster: InstrumentedCluster, pod: str) -> list[tuple[str, str]]:
    text = cluster.paths.log_file(NAMESPACE, pod, "main").read_text()
    return [(stamp, line) for stamp, _, line in (raw.partition(" ") for raw in text.splitlines())]


@pytest.mark.parametrize("bad", [["2026-01-01T00:00:00Z"], {"pod": ["t", -1]}, {"pod": "t"}, "cursor"])
def test_a_malformed_cursor_names_the_field(bad: Any) -> None:
    from airflow_argo_eci.errors import WorkflowSpecError

    with pytest.raises(WorkflowSpecError, match="log_cursor"):
        LogCursor.from_dict(bad)
