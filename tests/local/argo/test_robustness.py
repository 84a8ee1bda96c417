"""One workflow never stalls the controller: per-workflow failure isolation, Argo's recursion
limit, expression budgets, RE2 regular expressions, loop and node bounds, and status compression
(real Store and Controller, scripted runtime)."""

from __future__ import annotations

import base64
import gzip
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_argo_eci.conventions import pod_name
from airflow_argo_eci.errors import ArgoEciError
from airflow_argo_eci.local.api.resources import PODS
from airflow_argo_eci.local.argo.budget import (
    MAX_DEPTH_MESSAGE,
    MAX_LOOP_ITEMS,
    MAX_NODES,
    MAX_POD_CREATIONS_PER_PASS,
    TOO_LARGE_MESSAGE,
)
from airflow_argo_eci.local.argo.isolation import FailureTracker, RateLimitedLog
from airflow_argo_eci.local.argo.reconcile import WorkflowReconciler
from airflow_argo_eci.workflows import MAX_INFLATED_NODES_BYTES, workflow_nodes
from tests.local.argo.conftest import Harness

CONTROLLER_LOG = "airflow_argo_eci.local.argo.controller"


def pod(args: list[str], name: str = "p") -> dict[str, Any]:
    return {"name": name, "container": {"image": "busybox", "args": args}}


def harmless(harness: Harness, name: str) -> None:
    harness.submit({"entrypoint": "p", "templates": [pod(["echo", "alive"])]}, name)


# ---------------------------------------------------------------- recursion


def test_self_recursive_steps_fail_with_argos_depth_message(harness: Harness) -> None:
    harness.submit({"entrypoint": "loop", "templates": [
        {"name": "loop", "steps": [[{"name": "again", "template": "loop"}]]}]}, "rec")
    harmless(harness, "fine")
    wf = harness.wait("rec")
    assert wf["status"]["phase"] == "Failed", wf["status"].get("message")
    assert wf["status"]["message"] == MAX_DEPTH_MESSAGE
    deepest = [n for n in wf["status"]["nodes"].values() if n.get("message") == MAX_DEPTH_MESSAGE]
    assert len(deepest) == 1 and deepest[0]["phase"] == "Error"
    # Argo's maxAllowedStackDepth of 100: 99 nested Steps nodes run before the limit
    assert sum(1 for n in wf["status"]["nodes"].values() if n["type"] == "Steps") == 99
    assert harness.wait("fine")["status"]["phase"] == "Succeeded"


def test_recursive_dag_with_deep_expressions_still_reports_the_depth_limit(harness: Harness) -> None:
    deep = "(" * 60 + "1 == 1" + ")" * 60
    harness.submit({"entrypoint": "loop", "templates": [
        {"name": "loop", "dag": {"tasks": [{"name": "again", "template": "loop", "when": deep,
                                            "arguments": {"parameters": [{"name": "x", "value": "{{=" + deep + "}}"}]},
                                            }]},
         "inputs": {"parameters": [{"name": "x", "value": "1"}]}}]}, "deep")
    wf = harness.wait("deep")
    assert wf["status"]["phase"] in ("Failed", "Error")
    assert wf["status"]["message"] == MAX_DEPTH_MESSAGE


def test_fan_out_recursion_ends_in_error_at_the_node_limit(harness: Harness) -> None:
    harness.submit({"entrypoint": "loop", "templates": [
        {"name": "loop", "steps": [[{"name": "a", "template": "loop"}, {"name": "b", "template": "loop"}]]}]}, "fan")
    harmless(harness, "fine")
    started = time.monotonic()
    wf = harness.wait("fan", timeout=30)
    assert wf["status"]["phase"] == "Error"
    assert f"more than {MAX_NODES} nodes" in wf["status"]["message"]
    # about 4 s alone; 15.5 s once while the whole suite ran in two processes on two cores
    assert time.monotonic() - started < 25
    assert harness.wait("fine")["status"]["phase"] == "Succeeded"


# ---------------------------------------------------------------- failure isolation


def test_a_failing_reconcile_is_retried_logged_once_then_errors_and_kills_its_pods(
        harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=CONTROLLER_LOG)
    spec = {"entrypoint": "main", "templates": [
        {"name": "main", "steps": [[{"name": "slow", "template": "slow"}, {"name": "bad", "template": "bad"}]]},
        pod(["sleep", "30"], "slow"),
        {"name": "bad", "retryStrategy": {"limit": 2, "backoff": {"duration": "soon"}},
         "container": {"image": "x", "args": ["fail", "1"]}},
    ]}
    harness.submit(spec, "broken")
    harmless(harness, "fine")
    wf = harness.wait("broken", timeout=40)
    assert wf["status"]["phase"] == "Error"
    assert wf["status"]["message"] == "ValueError: retryStrategy.backoff.duration: invalid duration 'soon'"
    assert wf["metadata"]["labels"]["workflows.argoproj.io/completed"] == "true"
    assert wf["status"]["nodes"]["broken"]["message"] == "Workflow operation error"
    assert harness.wait("fine")["status"]["phase"] == "Succeeded"
    # the sleeping pod of the failed workflow was killed, with the message
    slow = next(n for n in wf["status"]["nodes"].values() if n["displayName"] == "slow")
    slow_pod = pod_name("broken", slow["name"], "slow")
    assert harness.runtime.kill_messages[("argo", slow_pod)] == wf["status"]["message"]
    deadline = time.time() + 5
    while time.time() < deadline and harness.runtime.is_running("argo", slow_pod):
        time.sleep(0.05)
    assert not harness.runtime.is_running("argo", slow_pod)
    records = [r for r in caplog.records if r.name == CONTROLLER_LOG and "argo/broken" in r.getMessage()]
    assert len(records) == 2, [r.getMessage()[:200] for r in records]
    assert "retrying 3 times" in records[0].getMessage() and "ends in Error" in records[1].getMessage()
    assert sum(len(r.getMessage()) for r in records) < 4000


def test_failure_tracker_backs_off_and_forgets_a_replaced_workflow() -> None:
    tracker = FailureTracker(logging.getLogger("test"), retries=2, backoff=1.0)
    key = ("ns", "wf")
    assert tracker.failed(key, "u1", ValueError("x"), now=100.0) is None
    assert tracker.waiting(key, "u1", now=100.5) == 101.0
    assert tracker.waiting(key, "u1", now=101.0) is None
    assert tracker.failed(key, "u1", ValueError("x"), now=101.0) is None
    assert tracker.waiting(key, "u1", now=102.0) == 103.0  # 2 s after the second failure
    assert tracker.waiting(key, "u2", now=102.0) is None  # a new workflow of the same name
    assert tracker.failed(key, "u1", RecursionError(), now=110.0) is None
    assert tracker.failed(key, "u1", ValueError("x"), now=111.0) is None
    assert tracker.failed(key, "u1", ValueError("boom"), now=113.0) == "ValueError: boom"


def test_rate_limited_log_drops_the_excess_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.ratelimit")
    caplog.set_level(logging.INFO, logger="test.ratelimit")
    out = RateLimitedLog(logger, per_window=3, window=0.2)
    assert [out.log(logging.WARNING, "line %d", i) for i in range(10)] == [True] * 3 + [False] * 7
    time.sleep(0.25)
    assert out.log(logging.WARNING, "after")
    messages = [r.getMessage() for r in caplog.records]
    assert messages[:3] == ["line 0", "line 1", "line 2"] and messages[4:] == ["after"]
    assert messages[3].startswith("7 controller failure log lines suppressed in the last")


# ---------------------------------------------------------------- expressions in workflows


def test_nested_parenthesis_expression_fails_the_step_quickly(harness: Harness) -> None:
    nested = "(" * 3000 + "true" + ")" * 3000
    harness.submit({"entrypoint": "m", "templates": [
        {"name": "m", "steps": [[{"name": "s", "template": "p", "when": "{{=" + nested + "}}"}]]},
        pod(["echo", "x"])]}, "parens")
    harness.submit({"entrypoint": "m", "templates": [
        {"name": "m", "steps": [[{"name": "s", "template": "p", "when": nested}]]}, pod(["echo", "x"])]}, "when")
    started = time.monotonic()
    wf = harness.wait("parens")
    assert time.monotonic() - started < 5
    # a {{=...}} tag is substituted with the template, so the steps node itself errs (as in Argo)
    assert wf["status"]["phase"] == "Error"
    assert "nests deeper than 64 levels" in wf["status"]["nodes"]["parens"]["message"]
    assert len(wf["status"]["nodes"]["parens"]["message"]) < 600
    wf = harness.wait("when")
    step = harness.nodes_by_display(wf)["s"]
    assert step["phase"] == "Error" and wf["status"]["phase"] in ("Failed", "Error")
    assert step["message"].startswith("invalid when expression: expression nests deeper than 64 levels")


def test_redos_pattern_runs_in_linear_time_in_a_workflow(harness: Harness) -> None:
    subject = "a" * 40 + "!"
    harness.submit({"entrypoint": "m", "templates": [
        {"name": "m", "steps": [[
            {"name": "sprig", "template": "p", "when": "{{=sprig.regexMatch('^(a+)+$', '" + subject + "')}}"},
            {"name": "expr", "template": "p", "when": "{{='" + subject + "' matches '^(a+)+$'}}"},
            {"name": "ok", "template": "p", "when": "{{=sprig.regexMatch('^a+!$', '" + subject + "')}}"},
        ]]},
        pod(["echo", "x"])]}, "redos")
    started = time.monotonic()
    wf = harness.wait("redos")
    assert time.monotonic() - started < 3
    nodes = harness.nodes_by_display(wf)
    assert nodes["sprig"]["phase"] == "Skipped" and nodes["expr"]["phase"] == "Skipped"
    assert nodes["ok"]["phase"] == "Succeeded"


def test_a_pattern_re2_rejects_fails_with_the_reason(harness: Harness) -> None:
    harness.submit({"entrypoint": "m", "templates": [
        {"name": "m", "steps": [[{"name": "s", "template": "p", "when": "aa =~ '(a)\\\\1'"}]]},
        pod(["echo", "x"])]}, "backref")
    wf = harness.wait("backref")
    step = harness.nodes_by_display(wf)["s"]
    assert step["phase"] == "Error"
    assert "error parsing regexp '(a)\\\\1': invalid escape sequence: \\1" in step["message"]
    assert "RE2" in step["message"]


# ---------------------------------------------------------------- loops, pods, parallelism


@pytest.mark.parametrize(("loop", "expected"), [
    ({"withSequence": {"count": "1000000000"}}, f"expands to 1000000000 items; the local cluster expands at most "
                                                 f"{MAX_LOOP_ITEMS}"),
    ({"withItems": list(range(MAX_LOOP_ITEMS + 1))}, f"withItems has {MAX_LOOP_ITEMS + 1} items"),
    ({"withSequence": {"count": "2", "format": "%999999999d"}}, "width 999999999"),
])
def test_loop_bombs_fail_the_step_with_the_limit(harness: Harness, loop: dict[str, Any], expected: str) -> None:
    harness.submit({"entrypoint": "m", "templates": [
        {"name": "m", "steps": [[{"name": "s", "template": "p", **loop}]]}, pod(["echo", "x"])]}, "loop")
    wf = harness.wait("loop")
    assert wf["status"]["phase"] == "Failed"
    assert expected in harness.nodes_by_display(wf)["s"]["message"]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("parallelism", "lots", "invalid spec: spec.parallelism: must be a non-negative integer, got 'lots'"),
    ("parallelism", -1, "invalid spec: spec.parallelism: must be a non-negative integer, got '-1'"),
    ("activeDeadlineSeconds", "soon",
     "invalid spec: spec.activeDeadlineSeconds: must be a non-negative number of seconds, got 'soon'"),
])
def test_invalid_numbers_are_spec_errors_naming_the_field(harness: Harness, field: str, value: Any,
                                                          message: str) -> None:
    harness.submit({"entrypoint": "p", field: value, "templates": [pod(["echo", "x"])]}, "num")
    wf = harness.wait("num")
    assert wf["status"]["phase"] == "Error"
    assert wf["status"]["message"] == message


def test_one_pass_creates_at_most_a_batch_of_pods(tmp_path: Path) -> None:
    h = Harness(tmp_path / "state")  # not started: one pass at a time
    try:
        h.submit({"entrypoint": "m", "templates": [
            {"name": "m", "steps": [[{"name": "s", "template": "p", "withSequence": {"count": "250"}}]]},
            pod(["sleep", "30"])]}, "many")
        wf = h.get("many")
        op = WorkflowReconciler(h.controller, wf)
        op.run()
        assert op.created_pods == MAX_POD_CREATIONS_PER_PASS
        assert len(h.store.list(PODS, "argo")[0]) == MAX_POD_CREATIONS_PER_PASS
        assert op.requeue_after is not None and op.requeue_after <= 0.1
    finally:
        h.runtime.crash()
        h.store.close()


def test_yaml_alias_bomb_in_pod_spec_patch_is_refused(harness: Harness) -> None:
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    harness.submit({"entrypoint": "p", "podSpecPatch": bomb, "templates": [pod(["echo", "x"])]}, "laughs")
    wf = harness.wait("laughs")
    assert wf["status"]["phase"] == "Error"
    assert "YAML aliases (*name) are not allowed in a podSpecPatch" in wf["status"]["nodes"]["laughs"]["message"]


# ---------------------------------------------------------------- status size


def _fan_out(items: int, text: str) -> dict[str, Any]:
    return {"entrypoint": "m", "templates": [
        {"name": "m", "steps": [[{"name": "s", "template": "p", "withSequence": {"count": str(items)},
                                  "arguments": {"parameters": [{"name": "n", "value": "{{item}}"}]}}]]},
        {**pod(["echo", text + "-{{inputs.parameters.n}}"]), "inputs": {"parameters": [{"name": "n"}]}}]}


def test_a_large_status_is_stored_as_compressed_nodes_and_read_back(harness: Harness) -> None:
    harness.controller.max_workflow_size = 30_000
    harness.submit(_fan_out(60, "x" * 1000), "big")
    wf = harness.wait("big")
    status = wf["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    assert "nodes" not in status and status["compressedNodes"]
    assert len(json.dumps(wf)) <= 30_000
    nodes = workflow_nodes(status)
    results = sorted(n["outputs"]["result"] for n in nodes.values() if n["type"] == "Pod")
    assert len(results) == 60 and results[0] == "x" * 1000 + "-0"


def test_a_status_too_large_even_compressed_fails_with_argos_message(harness: Harness) -> None:
    harness.controller.max_workflow_size = 3_000
    harness.submit(_fan_out(40, "y" * 200), "huge")
    harmless(harness, "fine")
    wf = harness.wait("huge")
    assert wf["status"]["phase"] == "Error"
    assert wf["status"]["message"].startswith(TOO_LARGE_MESSAGE + " compressed size ")
    assert wf["status"]["message"].endswith("> maxSize 3000")
    assert harness.wait("fine")["status"]["phase"] == "Succeeded"


def test_workflow_nodes_reads_either_field_and_refuses_bombs() -> None:
    nodes = {"a": {"id": "a", "phase": "Succeeded"}, "b": {"id": "b", "phase": "Running"}}
    packed = base64.b64encode(gzip.compress(json.dumps(nodes).encode())).decode()
    assert workflow_nodes({"nodes": nodes}) == nodes
    assert workflow_nodes({"compressedNodes": packed}) == nodes
    # a node merge-patched into a compressed status (argo resume/stop) wins
    merged = workflow_nodes({"compressedNodes": packed, "nodes": {"b": {"id": "b", "phase": "Succeeded"}}})
    assert merged["b"]["phase"] == "Succeeded" and merged["a"] == nodes["a"]
    assert workflow_nodes(None) == {} and workflow_nodes({}) == {}
    with pytest.raises(ArgoEciError, match="not base64-encoded gzipped JSON"):
        workflow_nodes({"compressedNodes": "!!not base64!!"})
    bomb = base64.b64encode(gzip.compress(b"[" + b" " * (MAX_INFLATED_NODES_BYTES + 10) + b"]")).decode()
    with pytest.raises(ArgoEciError, match="inflates to more than"):
        workflow_nodes({"compressedNodes": bomb})


def test_a_dag_chain_longer_than_pythons_recursion_limit_runs(harness: Harness) -> None:
    count = 1500
    tasks = [{"name": "t0", "template": "p", "when": "false"}] + [
        {"name": f"t{i}", "template": "p", "depends": f"t{i - 1}", "when": "false"} for i in range(1, count)]
    harness.submit({"entrypoint": "d", "templates": [{"name": "d", "dag": {"tasks": tasks}}, pod(["echo", "x"])]},
                   "chain")
    wf = harness.wait("chain", timeout=30)
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    assert sum(1 for n in wf["status"]["nodes"].values() if n["phase"] == "Skipped") == count


def test_a_dependency_cycle_in_a_long_dag_is_named(harness: Harness) -> None:
    tasks = [{"name": f"t{i}", "template": "p", "depends": f"t{(i + 1) % 1200}"} for i in range(1200)]
    harness.submit({"entrypoint": "d", "templates": [{"name": "d", "dag": {"tasks": tasks}}, pod(["echo", "x"])]},
                   "cycle")
    wf = harness.wait("cycle")
    assert wf["status"]["phase"] == "Error"
    assert wf["status"]["message"].startswith("invalid spec: templates.d.tasks dependency cycle detected: t0->t1->t2")


def test_the_provider_reads_a_compressed_workflow(harness: Harness) -> None:
    from airflow_argo_eci.workflows import failed_nodes, workflow_pods

    harness.controller.max_workflow_size = 30_000
    spec = _fan_out(60, "x" * 1000)
    spec["templates"][0]["steps"].append([{"name": "last", "template": "bad"}])
    spec["templates"].append(pod(["fail", "3"], "bad"))
    harness.submit(spec, "packed")
    wf = harness.wait("packed")
    assert "compressedNodes" in wf["status"] and "nodes" not in wf["status"]
    failed = failed_nodes(wf)
    assert [(f["display_name"], f["exit_code"]) for f in failed] == [("last", "3")]
    assert len(workflow_pods(wf)) == 61


def test_many_affordable_expressions_together_exhaust_the_pass_budget(harness: Harness) -> None:
    costly = "{{=len(map(1..20000, {# + 1}))}}"  # ~60,000 steps each, within one expression's budget
    harness.submit({"entrypoint": "p", "templates": [pod(["echo", " ".join([costly] * 100)])]}, "many")
    started = time.monotonic()
    wf = harness.wait("many")
    assert time.monotonic() - started < 10
    assert wf["status"]["phase"] == "Error"
    assert "exceed the budget of 2000000 evaluation steps in one reconcile pass" in wf["status"]["message"]


def test_a_write_the_store_refuses_as_too_large_ends_the_workflow_in_error(harness: Harness) -> None:
    harness.controller.max_workflow_size = 64 * 1024 * 1024  # not compressed: the store's 1.5 MiB limit decides
    harness.submit(_fan_out(60, "w" * 30_000), "refused")
    harmless(harness, "fine")
    wf = harness.wait("refused")
    assert wf["status"]["phase"] == "Error"
    assert wf["status"]["message"].startswith("Request entity too large: etcdserver: request is too large")
    assert harness.wait("fine")["status"]["phase"] == "Succeeded"
