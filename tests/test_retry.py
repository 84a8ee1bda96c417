"""The pure ``argo retry`` / ``resume`` helpers shared by the hook and the local Argo Server."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_argo_eci.retry import (
    RetryError,
    apply_parameters,
    formulate_retry,
    node_field_selector,
    parse_parameters,
    update_suspend_nodes,
)


def _suspended(**outputs: Any) -> dict[str, Any]:
    gate: dict[str, Any] = {"id": "g", "name": "wf.gate", "displayName": "gate", "type": "Suspend", "phase": "Running"}
    if outputs:
        gate["outputs"] = outputs
    done = {"id": "d", "name": "wf.done", "displayName": "done", "type": "Suspend", "phase": "Succeeded"}
    return {"metadata": {"name": "wf"}, "status": {"phase": "Running", "nodes": {"g": gate, "d": done}}}


def test_selector_errors_name_the_callers_field() -> None:
    with pytest.raises(RetryError, match=r'^nodeFieldSelector: cannot parse "oops"; use key=value'):
        node_field_selector("displayName=a,oops", "nodeFieldSelector")
    with pytest.raises(RetryError, match=r"^node_field_selector: cannot parse"):
        node_field_selector("oops")
    match = node_field_selector("displayName=gate,phase!=Succeeded")
    assert match({"displayName": "gate", "phase": "Running"})
    assert not match({"displayName": "gate", "phase": "Succeeded"})


def test_parse_parameters_checks_each_item() -> None:
    assert parse_parameters(["a=1", "b=x=y"], "parameters") == {"a": "1", "b": "x=y"}
    assert parse_parameters(None, "parameters") == {}
    with pytest.raises(RetryError, match=r'^submitOptions\.parameters must be a list of "name=value" strings$'):
        parse_parameters("a=1", "submitOptions.parameters")
    with pytest.raises(RetryError, match=r'^parameters: "=1" must look like name=value$'):
        parse_parameters(["a=1", "=1"], "parameters")
    spec: dict[str, Any] = {"arguments": {"parameters": [{"name": "a", "valueFrom": {"supplied": {}}}]}}
    apply_parameters(spec, {"a": 1, "b": "2"})
    assert spec["arguments"]["parameters"] == [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]


def test_update_suspend_nodes_returns_updated_copies() -> None:
    wf = _suspended(parameters=[{"name": "ok", "valueFrom": {"supplied": {}, "default": "yes"}}])
    changed = update_suspend_nodes(wf, "Succeeded")
    assert list(changed) == ["g"]
    assert changed["g"]["phase"] == "Succeeded" and changed["g"]["finishedAt"]
    assert changed["g"]["outputs"]["parameters"] == [{"name": "ok", "value": "yes"}]
    assert wf["status"]["nodes"]["g"]["phase"] == "Running"  # the input is left alone
    stopped = update_suspend_nodes(wf, "Failed", message="no", selector="displayName=gate")
    assert (stopped["g"]["phase"], stopped["g"]["message"]) == ("Failed", "no")


def test_update_suspend_nodes_errors() -> None:
    with pytest.raises(RetryError, match=r"^currently, set only targets suspend nodes: no suspend nodes matching "
                                         r"nodeFieldSelector: displayName=nope$"):
        update_suspend_nodes(_suspended(), "Succeeded", selector="displayName=nope", field="nodeFieldSelector")
    assert update_suspend_nodes(_suspended(), "Succeeded", selector="") != {}
    unset = _suspended(parameters=[{"name": "ok", "valueFrom": {"supplied": {}}}])
    with pytest.raises(RetryError, match="raw output parameter 'ok' of node g has not been set"):
        update_suspend_nodes(unset, "Succeeded")
    assert update_suspend_nodes(unset, "Failed")["g"]["phase"] == "Failed"


def test_formulate_retry_refuses_running_workflows() -> None:
    with pytest.raises(RetryError, match=r"^workflow must be Failed/Error to retry \(workflow wf is Running\)"):
        formulate_retry(_suspended())
