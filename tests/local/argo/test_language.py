"""Pure parts: node ids / pod names, the {{...}} substitution, expr and govaluate expressions,
jsonpath, sprig, enhanced depends and withSequence."""

from __future__ import annotations

import pytest

from airflow_argo_eci.conventions import fnv32a, node_id, pod_name
from airflow_argo_eci.local.argo.depends import evaluate_depends
from airflow_argo_eci.local.argo.expressions import ExpressionError, evaluate, evaluate_when, jsonpath, nest
from airflow_argo_eci.local.argo.items import expand_sequence
from airflow_argo_eci.local.argo.nodes import expanded_name, go_json, parse_duration
from airflow_argo_eci.local.argo.podspec import apply_pod_spec_patch
from airflow_argo_eci.local.argo.templates import SpecError
from airflow_argo_eci.local.argo.variables import Scope, TemplateError, substitute


def test_fnv32a_matches_go() -> None:
    assert fnv32a("") == 0x811C9DC5
    assert fnv32a("a") == 0xE40C292C
    assert fnv32a("foobar") == 0xBF9CF968


def test_node_ids_and_pod_names() -> None:
    assert node_id("wf", "wf") == "wf"
    assert node_id("wf", "wf[0].a") == f"wf-{fnv32a('wf[0].a')}"
    assert pod_name("wf", "wf", "t") == "wf"
    assert pod_name("wf", "wf[0].a", "print") == f"wf-print-{fnv32a('wf[0].a')}"
    assert pod_name("wf", "wf.inline", "") == f"wf-{fnv32a('wf.inline')}"
    long = pod_name("w" * 200, "n", "t" * 100)
    assert len(long) <= 253 and long.endswith(f"-{fnv32a('n')}")
    assert len(long.rsplit("-", 1)[0]) == 242


def test_expanded_names() -> None:
    assert expanded_name("s", 0, "hello world") == "s(0:hello world)"
    assert expanded_name("s", 1, {"tag": "x", "command": "y"}) == "s(1:command:y,tag:x)"
    assert expanded_name("s", 2, 3) == "s(2:3)"
    assert go_json({"b": 1.0, "a": [True, None]}) == '{"a":[true,null],"b":1}'


def test_substitute_simple_and_unresolved() -> None:
    scope = Scope({"inputs.parameters.m": "hi", "item": {"a": 1}})
    assert substitute("say {{inputs.parameters.m}} {{ item }}", scope) == 'say hi {"a":1}'
    assert substitute("{{steps.x.outputs.result}}", scope) == "{{steps.x.outputs.result}}"
    with pytest.raises(TemplateError, match="failed to resolve"):
        substitute("{{steps.x.outputs.result}}", scope, allow_unresolved=False)


def test_substitute_expressions() -> None:
    scope = Scope({"inputs.parameters.foo": "3", "workflow.parameters.p": '{"a": "1"}'})
    assert substitute("{{=asInt(inputs.parameters.foo) * 10}}", scope) == "30"
    assert substitute("{{=jsonpath(workflow.parameters.p, '$.a')}}", scope) == "1"
    assert substitute("{{=item}}", scope) == "{{=item}}"
    assert substitute("{{=toJson(filter([1, 3], {# > 1}))}}", scope) == "[3]"
    assert substitute("{{=sprig.upper(sprig.trim('  x '))}}", scope) == "X"
    assert substitute("{{=sprig.int('7') + 1}}", scope) == "8"


def test_expr_language() -> None:
    env = nest({"steps.flip-coin.outputs.result": "heads", "steps.heads.outputs.result": "H"})
    expr = "steps['flip-coin'].outputs.result == 'heads' ? steps.heads.outputs.result : steps.tails.outputs.result"
    assert evaluate(expr, env) == "H"
    assert evaluate("missing.x ?? 'fb'", env) == "fb"
    assert evaluate("'a' in ['a', 'b'] && !(1 > 2) and 2 ** 3 == 8", {}) is True
    assert evaluate("{a: 1, b: [1, 2]}.b[1]", {}) == 2
    assert evaluate("map([1, 2], {# * 2})", {}) == [2, 4]
    assert evaluate("fromJSON('{\"x\": [1]}').x[0] + len('abc')", {}) == 4
    with pytest.raises(ExpressionError):
        evaluate("1 +", {})
    with pytest.raises(ExpressionError, match="unknown name"):
        evaluate("nope == 1", {})


def test_govaluate_when() -> None:
    assert evaluate_when("heads == heads")
    assert not evaluate_when("heads != heads")
    assert evaluate_when("( tails == heads && a == a ) || ( tails == tails )")
    assert evaluate_when("tails =~ tai") and not evaluate_when("tails =~ hea")
    assert evaluate_when("Failed == Failed") and evaluate_when("true")
    assert evaluate_when("10 > 9") and evaluate_when("'a b' == 'a b'")
    assert not evaluate_when("false")
    with pytest.raises(ExpressionError):
        evaluate_when("1 + 1")


def test_jsonpath() -> None:
    doc = {"employees": [{"name": "Baris", "age": 43}, {"name": "Mo", "age": 42}, {"name": "Jai", "age": 44}]}
    assert jsonpath(doc, "$.employees[?(@.name==\"Baris\")].age") == [43]
    assert jsonpath(doc, "$.employees[?(@.age>42 && @.age<44)].age") == [43]
    assert jsonpath(doc, "$.employees[0:1]") == [{"name": "Baris", "age": 43}]
    assert jsonpath(doc, "$.employees[*].name") == ["Baris", "Mo", "Jai"]
    assert jsonpath(doc, "$.employees[1].name") == "Mo"
    assert jsonpath(doc, "$..age") == [43, 42, 44]
    with pytest.raises(ExpressionError):
        jsonpath(doc, "$.nope")


def test_enhanced_depends() -> None:
    ok = {"Succeeded": True, "Failed": False, "Errored": False, "Skipped": False, "Omitted": False,
          "Daemoned": False, "AnySucceeded": True, "AllFailed": False, "_default": True}
    bad = {**ok, "Succeeded": False, "Failed": True, "AnySucceeded": False, "AllFailed": True, "_default": False}
    states = {"A": ok, "C": bad, "my-task": ok}
    assert evaluate_depends("A && (C.Succeeded || C.Failed)", states)
    assert not evaluate_depends("A && C", states)
    assert evaluate_depends("A || C", states)
    assert evaluate_depends("!C.Succeeded && C.AllFailed && my-task.AnySucceeded", states)
    with pytest.raises(ExpressionError, match="unknown or unfinished task"):
        evaluate_depends("Z", states)


def test_with_sequence() -> None:
    assert expand_sequence({"count": "3"}, "s") == ["0", "1", "2"]
    assert expand_sequence({"start": "1", "end": "0"}, "s") == ["1", "0"]
    assert expand_sequence({"start": 2, "end": 4, "format": "v%02d"}, "s") == ["v02", "v03", "v04"]
    with pytest.raises(SpecError, match="only one of count or end"):
        expand_sequence({"count": 1, "end": 2}, "s")


def test_pod_spec_patch_and_durations() -> None:
    spec = {"containers": [{"name": "main", "image": "x", "resources": {"limits": {"cpu": "1"}}}]}
    out = apply_pod_spec_patch(spec, '{"containers":[{"name":"main","resources":{"limits":{"memory":"1Gi"}}}]}', "p")
    assert out["containers"][0]["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    out = apply_pod_spec_patch(spec, "containers:\n- name: side\n  image: y\n", "p")
    assert [c["name"] for c in out["containers"]] == ["main", "side"]
    with pytest.raises(SpecError, match="podSpecPatch must be an object"):
        apply_pod_spec_patch(spec, "[1]", "p")
    assert parse_duration("1m30s", field="f") == 90 and parse_duration("500ms", field="f") == 0.5
    assert parse_duration(10, field="f") == 10
