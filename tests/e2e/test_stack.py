"""The e2e tier: real Airflow services (``stack up``) on the local cluster, driven through the REST API.

Tests run in file order on one session stack; the last one stops it with ``stack down``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from typing import Any

import pytest

from airflow_argo_eci.stack import services
from tests.e2e.stack import Stack

pytestmark = pytest.mark.slow

FLAGSHIP = "argo_eci_fanout"
SLOW = "e2e_slow_deferred"
#: a pod log line in a task log, as the provider writes it: ``[node] line``
POD_LINE = re.compile(r"\[[^\]\s]+\] \S")
#: the triggerer's line when it starts running a trigger (its trigger log file, read through the REST API)
TRIGGER_STARTED = re.compile(r"trigger \S+ \(ID \d+\) starting")


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "airflow_argo_eci.local.cli", "stack", *args,
                           "--state-dir", str(stack.paths.root)], capture_output=True, text=True, timeout=120)


def _wait_deferred(stack: Stack, dag_id: str, run_id: str, task_id: str) -> None:
    stack.wait_for(f"{dag_id}.{task_id} deferred",
                   lambda: stack.ti(dag_id, run_id, task_id).get("state") == "deferred", timeout=150)


def _wait_trigger_running(stack: Stack, dag_id: str, run_id: str, task_id: str) -> str:
    """Until the triggerer runs the task's trigger: its start line or a streamed pod line in the log.

    (Marking a task failed before any triggerer has picked its trigger up calls no ``on_kill``.)"""
    def running() -> str | None:
        log = stack.client.task_log(dag_id, run_id, task_id, 1)
        return log if TRIGGER_STARTED.search(log) or POD_LINE.search(log) else None

    log: str = stack.wait_for(f"the triggerer runs the trigger of {dag_id}.{task_id}", running, timeout=60)
    return log


def _one_workflow(stack: Stack, dag_id: str, run_id: str) -> dict[str, Any]:
    workflows = stack.wait_for(f"the workflow of {dag_id} {run_id}",
                               lambda: stack.client.workflows(dag_id, run_id), timeout=60)
    assert len(workflows) == 1, [w["metadata"]["name"] for w in workflows]
    workflow: dict[str, Any] = workflows[0]
    return workflow


def test_flagship_succeeds_triggered_with_no_logical_date(stack: Stack) -> None:
    run_id = stack.client.trigger(FLAGSHIP)
    assert stack.client.dag_run(FLAGSHIP, run_id)["logical_date"] is None
    seen: set[str] = set()

    def finished() -> str | None:
        seen.add(str(stack.ti(FLAGSHIP, run_id, "fanout_deferred").get("state")))
        state = stack.run_state(FLAGSHIP, run_id)
        return state if state in ("success", "failed") else None

    assert stack.wait_for("the flagship run finishes", finished, timeout=300) == "success", (
        {t["task_id"]: t["state"] for t in stack.client.task_instances(FLAGSHIP, run_id)})

    ti = stack.ti(FLAGSHIP, run_id, "fanout_deferred")
    logs = [stack.client.task_log(FLAGSHIP, run_id, "fanout_deferred", n) for n in range(1, ti["try_number"] + 1)]
    # it waited in the triggerer: the triggerer's own line is in a try's log (its trigger log file)
    assert any(TRIGGER_STARTED.search(log) for log in logs), (seen, logs[0][-2000:])
    assert any(re.search(r"\[shard[^\]]*\] batch ", log) for log in logs), logs[-1][-2000:]
    assert stack.client.xcom(FLAGSHIP, run_id, "report").startswith("workflow ")


def test_kill_while_deferred_stops_the_workflow(stack: Stack) -> None:
    run_id = stack.client.trigger(SLOW, conf={"seconds": 120})
    _wait_deferred(stack, SLOW, run_id, "slow")
    _wait_trigger_running(stack, SLOW, run_id, "slow")
    workflow = _one_workflow(stack, SLOW, run_id)
    assert not (workflow.get("spec") or {}).get("shutdown")

    stack.client.set_task_state(SLOW, run_id, "slow", "failed")

    def shutdown() -> str | None:
        wf = _one_workflow(stack, SLOW, run_id)
        return (wf.get("spec") or {}).get("shutdown")

    assert stack.wait_for("spec.shutdown after marking the deferred task failed", shutdown,
                          timeout=15, interval=0.25) == "Stop"
    phase = stack.wait_for("the stopped workflow ends", lambda: (_one_workflow(stack, SLOW, run_id).get("status")
                                                                  or {}).get("phase") in ("Failed", "Error")
                           and _one_workflow(stack, SLOW, run_id)["status"]["phase"], timeout=60)
    assert phase in ("Failed", "Error")
    assert stack.ti(SLOW, run_id, "slow")["state"] == "failed"


def test_triggerer_sigkill_and_restart_finishes_the_task(stack: Stack) -> None:
    run_id = stack.client.trigger(SLOW, conf={"seconds": 20})
    _wait_deferred(stack, SLOW, run_id, "slow")
    _wait_trigger_running(stack, SLOW, run_id, "slow")
    pid = int(services.read_state(stack.paths)["pids"]["triggerer"])  # type: ignore[index]
    os.killpg(pid, signal.SIGKILL)
    stack.wait_for("the triggerer's processes are gone", lambda: not services.group_members({pid}), timeout=30)
    services.restart_service(stack.paths, "triggerer")

    state = stack.wait_for("the run finishes after the triggerer restart",
                           lambda: (s := stack.run_state(SLOW, run_id)) in ("success", "failed") and s, timeout=240,
                           interval=1)
    assert state == "success"
    _one_workflow(stack, SLOW, run_id)
    ti = stack.ti(SLOW, run_id, "slow")
    log = stack.client.task_log(SLOW, run_id, "slow", ti["try_number"])
    assert re.search(r"\[[^\]]+\] tick 20", log), log[-2000:]


def test_every_listening_socket_is_on_loopback(stack: Stack) -> None:
    state = services.read_state(stack.paths)
    assert state
    pids = services.group_members({int(p) for p in state["pids"].values()})
    sockets = services.listening_sockets(pids)
    ports = {address.rsplit(":", 1)[1] for _, address in sockets}
    # the api-server, the cluster's API and the log server are among them: the listing sees real sockets
    assert str(state["port"]) in ports and str(state["log_server_port"]) in ports, sockets
    assert str(state["cluster_url"]).rsplit(":", 1)[1] in ports, sockets
    outside = [(pid, address) for pid, address in sockets if not services.is_loopback(address)]
    assert not outside, f"listening beyond 127.0.0.1: {outside}"


def test_status_and_up_twice(stack: Stack) -> None:
    status = _cli(stack, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    for service in ("cluster", "api-server", "scheduler", "dag-processor", "triggerer", "log-server"):
        assert re.search(rf"{service}\s+pid \d+\s+running", status.stdout), status.stdout
    again = _cli(stack, "up", "--detach")
    assert again.returncode == 0 and "already running" in again.stdout, again.stdout + again.stderr


def test_down_leaves_nothing_behind(stack: Stack) -> None:
    state = json.loads(stack.paths.state.read_text())
    groups = {int(p) for p in state["pids"].values()}
    assert services.group_members(groups)
    down = _cli(stack, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert services.group_members(groups) == []
    assert _cli(stack, "status").returncode == 3
