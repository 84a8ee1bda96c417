"""The pure helpers of the reconcile pass: task order, loop items, pod-spec values, spec numbers and
node-status rules (no store, no controller)."""

from __future__ import annotations

import pytest

from airflow_argo_eci.local.argo.budget import MAX_LOOP_ITEMS
from airflow_argo_eci.local.argo.depends import dependency_order
from airflow_argo_eci.local.argo.items import bounded_items, item_scope
from airflow_argo_eci.local.argo.nodes import aggregate_phase, continues_on, mem_units
from airflow_argo_eci.local.argo.podspec import field_ref_value
from airflow_argo_eci.local.argo.templates import (
    SpecError,
    artifacts_of,
    node_type,
    params_of,
    spec_parallelism,
    spec_seconds,
)


def test_dependency_order_puts_dependencies_first_and_only_what_targets_need() -> None:
    deps = {"a": [], "b": ["a"], "c": ["a", "b"], "unused": []}
    assert dependency_order(["c"], deps) == ["a", "b", "c"]
    chain = {f"t{i}": [f"t{i - 1}"] if i else [] for i in range(5000)}
    order = dependency_order(["t4999"], chain)  # iterative: no recursion limit on long chains
    assert order[0] == "t0" and order[-1] == "t4999" and len(order) == 5000


def test_items_bound_and_scope() -> None:
    assert bounded_items([1, 2], "s", "withItems") == [1, 2]
    with pytest.raises(SpecError, match="withItems has"):
        bounded_items(list(range(MAX_LOOP_ITEMS + 1)), "s", "withItems")
    assert item_scope("x") == {"item": "x"}
    assert item_scope({"a": 1}) == {"item": {"a": 1}, "item.a": 1}


def test_field_ref_values() -> None:
    assert field_ref_value({"fieldPath": "metadata.name"}, "p", "ns") == "p"
    assert field_ref_value({"fieldPath": "metadata.namespace"}, "p", "ns") == "ns"
    # every path Kubernetes lets env read is served now (tests/local/argo/test_podspec.py); others
    # fail like the API server refuses them
    assert field_ref_value({"fieldPath": "metadata.uid"}, "p", "ns", pod_object={"metadata": {"uid": "u-1"}}) == "u-1"
    with pytest.raises(SpecError, match=r'fieldPath: Unsupported value: "status\.phase": supported values: '):
        field_ref_value({"fieldPath": "status.phase"}, "p", "ns")


def test_spec_numbers() -> None:
    assert spec_seconds("30", "f") == 30.0
    for bad in (-1, "x", True, None):
        with pytest.raises(SpecError, match="f: must be a non-negative number of seconds"):
            spec_seconds(bad, "f")
    assert spec_parallelism(None, "p") is None
    assert spec_parallelism(" 3 ", "p") == 3
    assert spec_parallelism(2.0, "p") == 2
    for bad in (-1, 1.5, "two", False):
        with pytest.raises(SpecError, match="p: must be a non-negative integer"):
            spec_parallelism(bad, "p")


def test_template_fields() -> None:
    assert node_type({"steps": []}) == "Steps"
    assert node_type({"dag": {}}) == "DAG"
    assert node_type({"suspend": {}}) == "Suspend"
    assert node_type({"container": {}}) == "Pod"
    assert node_type(None) == "Pod"
    assert params_of({"parameters": [{"name": "a"}, "junk"]}) == [{"name": "a"}]
    assert artifacts_of({"artifacts": [None, {"name": "b"}]}) == [{"name": "b"}]
    assert params_of(None) == [] and artifacts_of({}) == []


def test_node_status_rules() -> None:
    assert aggregate_phase(["Succeeded", "Error"]) == "Failed"
    assert aggregate_phase(["Skipped", "Omitted"]) == "Skipped"
    assert aggregate_phase(["Succeeded", "Skipped"]) == "Succeeded"
    assert continues_on({"continueOn": {"failed": True}}, "Failed")
    assert not continues_on({"continueOn": {"failed": True}}, "Error")
    assert continues_on({"continueOn": {"error": True}}, "Error")
    assert not continues_on({}, "Failed")
    assert mem_units(None) == 1.0
    assert mem_units("200Mi") == 2.0
    assert mem_units("not a quantity") == 1.0
