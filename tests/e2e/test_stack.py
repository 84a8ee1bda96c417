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
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from airflow_argo_eci.links.argo import TI_VIEW_ROUTE
from airflow_argo_eci.stack import services
from airflow_argo_eci.workflows import LABEL_PREFIX, ti_labels
from tests.e2e.stack import Stack

pytestmark = pytest.mark.slow

FLAGSHIP = "argo_eci_fanout"
FLUID = "argo_eci_fluid_md5"
SLOW = "e2e_slow_deferred"
CRASH = "e2e_worker_crash"
#: runs finished by earlier tests, for later tests to look at (dag_id -> run_id)
FINISHED_RUNS: dict[str, str] = {}
#: a pod log line in a task log, as the provider writes it: ``[node] line``
POD_LINE = re.compile(r"\[[^\]\s]+\] \S")
#: the triggerer's line when it starts running a trigger (its trigger log file, read through the REST API)
TRIGGER_STARTED = re.compile(r"trigger \S+ \(ID \d+\) starting")


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "airflow_argo_eci.cli", "stack", *args,
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
    FINISHED_RUNS[FLAGSHIP] = run_id


def _xcom_value(stack: Stack, dag_id: str, run_id: str, task_id: str) -> Any:
    """A task's return value through the REST API (a JSON document when the API gives it as text)."""
    value = stack.client.xcom(dag_id, run_id, task_id)
    return json.loads(value) if isinstance(value, str) else value


def test_fluid_md5_dag_succeeds(stack: Stack) -> None:
    """The Fluid example through the services: upload, Dataset, deferred DataLoad, the 100-step
    md5sum fan-out on the Dataset, the digest check, and the teardown that removes it all."""
    run_id = stack.client.trigger(FLUID)
    state = stack.wait_for("the Fluid run finishes",
                           lambda: (s := stack.run_state(FLUID, run_id)) in ("success", "failed") and s,
                           timeout=300, interval=1)
    states = {t["task_id"]: t["state"] for t in stack.client.task_instances(FLUID, run_id)}
    assert state == "success" and set(states.values()) == {"success"} and len(states) == 6, states
    checked, uploaded, cleaned = (_xcom_value(stack, FLUID, run_id, task_id)
                                  for task_id in ("check_digests", "upload_test_file", "clean_up"))
    assert checked["steps"] == 100 and checked["md5"] == uploaded["md5"], (checked, uploaded)
    assert cleaned["DataLoad"] and cleaned["Dataset"] == cleaned["JindoRuntime"] == "fluid-md5", cleaned
    assert cleaned["objects"] == ["fluid-md5/test.dat"], cleaned
    (workflow,) = stack.client.workflows(FLUID, run_id)
    assert workflow["status"]["phase"] == "Succeeded"


def _flagship_run(stack: Stack) -> str:
    """The flagship run of the test above, or (when that test did not run) a new finished one."""
    if FLAGSHIP not in FINISHED_RUNS:
        run_id = stack.client.trigger(FLAGSHIP)
        state = stack.wait_for("the flagship run finishes",
                               lambda: (s := stack.run_state(FLAGSHIP, run_id)) in ("success", "failed") and s,
                               timeout=300, interval=1)
        assert state == "success", {t["task_id"]: t["state"] for t in stack.client.task_instances(FLAGSHIP, run_id)}
        FINISHED_RUNS[FLAGSHIP] = run_id
    return FINISHED_RUNS[FLAGSHIP]


def _task_workflows(stack: Stack, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
    """The workflows of one task instance (every try), by the task-id label the operator sets."""
    task_label = ti_labels(dag_id, task_id, run_id, -1, 0)[LABEL_PREFIX + "task-id"]
    return [w for w in stack.client.workflows(dag_id, run_id)
            if (w["metadata"].get("labels") or {}).get(LABEL_PREFIX + "task-id") == task_label]


def test_extra_link_resolves_to_the_argo_view(stack: Stack) -> None:
    """The "Argo Workflow" link, read through the REST API, is the plugin's task-instance view (the
    stack's connection has no ``ui_url``); that page and the view it embeds answer the admin with
    the workflow; the link never logged "XCom not found"."""
    run_id = _flagship_run(stack)
    task_id = "fanout_deferred"
    links = stack.client.extra_links(FLAGSHIP, run_id, task_id)["extra_links"]
    url = links.get("Argo Workflow")
    base = str(stack.state["api_url"]).rstrip("/")
    assert url == (f"{base}/dags/{FLAGSHIP}/runs/{quote(run_id, safe='')}/tasks/{task_id}"
                   f"/plugin/{TI_VIEW_ROUTE}"), links
    workflows = _task_workflows(stack, FLAGSHIP, run_id, task_id)
    assert workflows, f"no workflow labelled for {FLAGSHIP}.{task_id} {run_id}"
    names = {w["metadata"]["name"] for w in workflows}

    auth = {"Authorization": str(stack.client.http.headers["Authorization"])}
    with httpx.Client(timeout=30, headers=auth) as http:
        page = http.get(url)  # the Airflow UI's page of the view (the UI's single-page app)
        assert page.status_code == 200, (page.status_code, page.text[:500])
        # the view that page embeds: the plugin's registered task-instance view, its href filled in
        views = stack.client.http.get("/plugins").json()["plugins"]
        hrefs = [v["href"] for p in views for v in p.get("external_views", [])
                 if v.get("url_route") == TI_VIEW_ROUTE and v.get("destination") == "task_instance"]
        assert len(hrefs) == 1, views
        href = (hrefs[0].replace("{DAG_ID}", quote(FLAGSHIP, safe="")).replace("{RUN_ID}", quote(run_id, safe=""))
                .replace("{TASK_ID}", quote(task_id, safe="")).replace("{MAP_INDEX}", "-1"))
        view = http.get(f"{base}{href}")
        assert view.status_code == 200, (view.status_code, view.text[:500])
        assert any(name in view.text for name in names), (names, view.text[:1000])
        anonymous = httpx.get(f"{base}{href}", timeout=30)
        assert anonymous.status_code in (401, 403), anonymous.status_code

    xcom_errors = [f"{log.name}: {line}" for log in sorted(stack.paths.logs.glob("*.log"))
                   for line in log.read_text(errors="replace").splitlines() if "XCom not found" in line]
    assert not xcom_errors, xcom_errors[:5]


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


def _parent(pid: int) -> int | None:
    """The parent pid of a live process (from ``/proc/<pid>/stat``), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _descends_from(pid: int, ancestor: int) -> bool:
    """Whether ``ancestor`` is a parent, grandparent, ... of the live process ``pid``."""
    current: int | None = pid
    while current and current > 1:
        current = _parent(current)
        if current == ancestor:
            return True
    return False


def _status(pid: int) -> str:
    """The State line of ``/proc/<pid>/status`` (empty when the process is gone)."""
    try:
        return next((line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                     if line.startswith("State:")), "")
    except OSError:
        return ""


def _task_process(stack: Stack, dag_id: str, run_id: str, task_id: str) -> int:
    """The pid of the process running the task (the TI's ``pid`` from the REST API), checked to be
    a live descendant of the scheduler (a LocalExecutor worker's task child, in its own process
    group), never a process outside the stack."""
    scheduler = int(services.read_state(stack.paths)["pids"]["scheduler"])  # type: ignore[index]
    seen: list[Any] = []

    def pid() -> int | None:
        ti = stack.ti(dag_id, run_id, task_id)
        value = ti.get("pid")
        seen[:] = [ti.get("state"), value]
        if ti.get("state") != "running" or not isinstance(value, int):
            return None
        return value if _descends_from(value, scheduler) else None

    found: int | None = None
    try:
        found = stack.wait_for(f"the running process of {dag_id}.{task_id}", pid, timeout=60)
    finally:
        if found is None:
            print(f"last seen (state, pid) of {dag_id}.{task_id}: {seen}; scheduler pid {scheduler}")
    assert found is not None
    return found


def test_worker_sigkill_retry_reattaches(stack: Stack) -> None:
    """SIGKILL the process of a sync-waiting task while its workflow runs: the retry reattaches to
    that workflow (exactly one exists for the task instance) and the task succeeds."""
    stack.wait_for(f"the dag-processor parses {CRASH}", lambda: CRASH in stack.client.dag_ids(), timeout=120,
                   interval=1)
    stack.client.unpause(CRASH)
    run_id = stack.client.trigger(CRASH)
    stack.wait_for(f"{CRASH}.sync_wait running", lambda: stack.ti(CRASH, run_id, "sync_wait").get("state")
                   == "running", timeout=150)
    stack.wait_for("its workflow runs", lambda: [w for w in stack.client.workflows(CRASH, run_id)
                                                 if (w.get("status") or {}).get("phase") == "Running"],
                   timeout=60)
    pid = _task_process(stack, CRASH, run_id, "sync_wait")
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    os.kill(pid, signal.SIGKILL)
    stack.wait_for(f"the killed task process {pid} is gone",
                   lambda: not Path(f"/proc/{pid}").exists() or "zombie" in _status(pid), timeout=30)

    # the retry reattaches to the workflow, still held at its suspend step; then it may end
    stack.wait_for(f"{CRASH}.sync_wait's retry waits", lambda: (ti := stack.ti(CRASH, run_id, "sync_wait"))
                   .get("try_number") == 2 and ti.get("state") == "running", timeout=150)
    held = stack.client.workflows(CRASH, run_id)
    assert len(held) == 1 and held[0]["status"]["phase"] == "Running", held
    resumed = stack.client.kube.put(f"/api/v1/workflows/{held[0]['metadata']['namespace']}/"
                                    f"{held[0]['metadata']['name']}/resume", json={})
    assert resumed.status_code == 200, resumed.text
    state = stack.wait_for("the run finishes after the worker's SIGKILL",
                           lambda: (s := stack.run_state(CRASH, run_id)) in ("success", "failed") and s,
                           timeout=240, interval=1)
    ti = stack.ti(CRASH, run_id, "sync_wait")
    assert (state, ti["state"], ti["try_number"]) == ("success", "success", 2), (ti, cmdline)
    workflows = _task_workflows(stack, CRASH, run_id, "sync_wait")
    assert len(workflows) == 1, [w["metadata"]["name"] for w in workflows]
    workflow = workflows[0]
    assert workflow["metadata"]["labels"][LABEL_PREFIX + "try-number"] == "1"
    assert workflow["status"]["phase"] == "Succeeded"
    log = stack.client.task_log(CRASH, run_id, "sync_wait", 2)
    meta = workflow["metadata"]
    assert f"Reattaching to workflow {meta['namespace']}/{meta['name']}" in log, log[-2000:]
    assert re.search(r"\[[^\]]+\] tick resumed", log), log[-2000:]  # the pod's line, streamed by the retry


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
