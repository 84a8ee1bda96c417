"""Attacks on the workflow controller through the real API: workflows built to stall the single
controller thread or to flood the server log (issue point 3).

Each attack must end its own workflow in Error/Failed with a clear message, quickly, while
``/version`` keeps answering within 100 ms, the server log grows by a few KB at most, nothing
leaks, and a harmless workflow submitted meanwhile still succeeds.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from airflow_argo_eci.local.argo.budget import MAX_DEPTH_MESSAGE
from tests.local.adversarial.harness import (
    ClusterUnderTest,
    Responsiveness,
    ServedCluster,
    assert_nothing_leaked,
    harmless_workflow,
    run_workflow,
    submit_workflow,
    wait_workflow,
)

#: what one attack may add to the server log (the issue measured 60 MB in 30 s)
MAX_LOG_GROWTH = 8 * 1024


class LogMeter:
    """What the served cluster wrote to its ``server.log`` since the meter was made (its log records
    with tracebacks, and whatever C libraries such as RE2 print to its stderr)."""

    def __init__(self, log_file: Path) -> None:
        self.log_file = log_file
        self.start = log_file.stat().st_size if log_file.exists() else 0

    def _new(self) -> bytes:
        with open(self.log_file, "rb") as handle:
            handle.seek(self.start)
            return handle.read()

    @property
    def bytes(self) -> int:
        return len(self._new())

    @property
    def lines(self) -> list[str]:
        return [line[:300] for line in self._new().decode(errors="replace").splitlines()]


@pytest.fixture
def log_meter(hostile_cluster: ServedCluster) -> LogMeter:
    """Measures the growth of the served cluster's ``server.log`` during the test."""
    return LogMeter(hostile_cluster.paths.server_log)


def _steps(templates: list[dict[str, Any]], entry: str = "main", **spec: Any) -> dict[str, Any]:
    return {"spec": {"entrypoint": entry, "templates": templates, **spec}}


def _echo(name: str = "echo") -> dict[str, Any]:
    return {"name": name, "script": {"image": "alpine", "command": ["sh"], "source": "echo ran"}}


def _attack(cluster: ClusterUnderTest, kube: Any, probe: Responsiveness, meter: LogMeter, manifest: dict[str, Any],
            timeout: float = 60.0) -> dict[str, Any]:
    """Submit ``manifest``, run a harmless workflow meanwhile, and check the common outcome."""
    with probe:
        started = time.monotonic()
        attack = submit_workflow(kube, manifest)
        fine = run_workflow(kube, harmless_workflow())
        wf = wait_workflow(kube, attack["metadata"]["name"], timeout=timeout)
        elapsed = time.monotonic() - started
    assert fine["status"]["phase"] == "Succeeded", fine["status"]
    probe.check()
    assert meter.bytes <= MAX_LOG_GROWTH, f"{meter.bytes} bytes of log: {meter.lines[:5]}"
    assert_nothing_leaked(cluster, kube)
    wf["_elapsed"] = elapsed
    return wf


def test_self_recursive_steps_template_fails_with_argos_recursion_limit(
        hostile_cluster: ClusterUnderTest, kube: Any, responsiveness: Responsiveness, log_meter: LogMeter) -> None:
    manifest = _steps([{"name": "main", "steps": [[{"name": "again", "template": "main"}]]}])
    wf = _attack(hostile_cluster, kube, responsiveness, log_meter, manifest)
    assert wf["status"]["phase"] == "Failed", wf["status"].get("message")
    assert wf["status"]["message"] == MAX_DEPTH_MESSAGE
    assert wf["_elapsed"] < 20


def test_fan_out_recursion_ends_at_the_node_limit(
        hostile_cluster: ClusterUnderTest, kube: Any, responsiveness: Responsiveness, log_meter: LogMeter) -> None:
    manifest = _steps([{"name": "main", "steps": [[{"name": "a", "template": "main"},
                                                   {"name": "b", "template": "main"}]]}])
    wf = _attack(hostile_cluster, kube, responsiveness, log_meter, manifest)
    assert wf["status"]["phase"] == "Error"
    assert "nodes, the most the local cluster runs in one workflow" in wf["status"]["message"]


def test_nested_parenthesis_expression_fails_its_workflow(
        hostile_cluster: ClusterUnderTest, kube: Any, responsiveness: Responsiveness, log_meter: LogMeter) -> None:
    nested = "(" * 3000 + "true" + ")" * 3000  # the issue's 6 KB expression
    manifest = _steps([
        {"name": "main", "steps": [[{"name": "cond", "template": "echo", "when": nested},
                                    {"name": "tag", "template": "echo", "when": "{{=" + nested + "}}"}]]},
        _echo()])
    wf = _attack(hostile_cluster, kube, responsiveness, log_meter, manifest)
    assert wf["status"]["phase"] in ("Failed", "Error")
    messages = " ".join(str(n.get("message", "")) for n in wf["status"]["nodes"].values())
    assert "nests deeper than 64 levels" in messages
    assert wf["_elapsed"] < 20


def test_catastrophic_backtracking_regex_does_not_block_the_controller(
        hostile_cluster: ClusterUnderTest, kube: Any, responsiveness: Responsiveness, log_meter: LogMeter) -> None:
    subject = "a" * 27 + "!"
    manifest = _steps([
        {"name": "main", "steps": [[
            {"name": "sprig", "template": "echo", "when": "{{=sprig.regexMatch('^(a+)+$', '" + subject + "')}}"},
            {"name": "expr", "template": "echo", "when": "{{='" + subject * 3 + "' matches '^(a+)+$'}}"},
            {"name": "govaluate", "template": "echo", "when": f"'{subject}' =~ '^(a|aa)+$'"},
            {"name": "backref", "template": "echo", "when": "aa =~ '(a)\\\\1'"},
        ]]},
        _echo()])
    wf = _attack(hostile_cluster, kube, responsiveness, log_meter, manifest)
    nodes = {n["displayName"]: n for n in wf["status"]["nodes"].values()}
    assert nodes["sprig"]["phase"] == "Skipped" and nodes["expr"]["phase"] == "Skipped"
    assert nodes["govaluate"]["phase"] == "Skipped"
    assert nodes["backref"]["phase"] == "Error"
    assert "invalid escape sequence" in nodes["backref"]["message"]
    assert wf["_elapsed"] < 20


def test_a_workflow_that_breaks_reconciling_ends_in_error_without_flooding_the_log(
        hostile_cluster: ClusterUnderTest, kube: Any, responsiveness: Responsiveness, log_meter: LogMeter) -> None:
    manifest = _steps([
        {"name": "main", "retryStrategy": {"limit": 3, "backoff": {"duration": "soon"}},
         "script": {"image": "alpine", "command": ["sh"], "source": "exit 1"}}])
    wf = _attack(hostile_cluster, kube, responsiveness, log_meter, manifest)
    assert wf["status"]["phase"] == "Error"
    assert wf["status"]["message"] == "ValueError: retryStrategy.backoff.duration: invalid duration 'soon'"
    assert len([line for line in log_meter.lines if wf["metadata"]["name"] in line]) == 2


def test_loop_bombs_fail_fast(
        hostile_cluster: ClusterUnderTest, kube: Any, responsiveness: Responsiveness, log_meter: LogMeter) -> None:
    manifest = _steps([
        {"name": "main", "steps": [[
            {"name": "seq", "template": "echo", "withSequence": {"count": "1000000000"}},
            {"name": "fmt", "template": "echo", "withSequence": {"count": "2", "format": "%999999999d"}},
            {"name": "param", "template": "echo", "withParam": "[" + ",".join(["1"] * 5001) + "]"},
        ]]},
        _echo()])
    wf = _attack(hostile_cluster, kube, responsiveness, log_meter, manifest)
    nodes = {n["displayName"]: n for n in wf["status"]["nodes"].values()}
    assert "the local cluster expands at most" in nodes["seq"]["message"]
    assert "width 999999999" in nodes["fmt"]["message"]
    assert "withParam has 5001 items" in nodes["param"]["message"]
    assert wf["status"]["phase"] == "Failed"
