"""Resource conditions, kubectl JSONPath and the jq subset of resource outputs (pure functions)."""

from __future__ import annotations

import pytest

from airflow_argo_eci.local.argo.jsonquery import QueryError, jq, jsonpath, parse_condition

JOB = {
    "metadata": {"name": "job-1", "labels": {"app": "x"}},
    "status": {"succeeded": 1, "failed": 0, "phase": "Running", "ok": True},
    "items": [{"name": "a", "n": 1}, {"name": "b", "n": 2}],
}


@pytest.mark.parametrize(("condition", "expected"), [
    ("status.succeeded > 0", True),
    ("status.succeeded > 1", False),
    ("status.failed < 1", True),
    ("status.phase == Running", True),
    ("status.phase = Running, status.succeeded > 0", True),
    ("status.phase != Running", False),
    ("status.phase in (Pending,Running)", True),
    ("status.phase notin (Pending,Running)", False),
    ("status.missing != x", True),
    ("status.ok == true", True),
    ("status.phase", True),
    ("!status.phase", False),
    ("!status.missing", True),
    ("items.# > 1", True),
    ("items.1.name == b", True),
    ("status.phase > 0", False),
])
def test_conditions(condition: str, expected: bool) -> None:
    assert all(r.matches(JOB) for r in parse_condition(condition)) is expected


def test_requirement_text_is_kubernetes_style() -> None:
    assert [str(r) for r in parse_condition("a == b, c in (d,e), !f, g > 3")] == ["a==b", "c in (d,e)", "!f", "g>3"]


@pytest.mark.parametrize("condition", ["a > x", "a in b", "a, ,b", "!a == b", "a b"])
def test_bad_conditions(condition: str) -> None:
    with pytest.raises(QueryError):
        parse_condition(condition)


@pytest.mark.parametrize(("template", "expected"), [
    ("{.metadata.name}", "job-1"),
    ("name={.metadata.name} ok={.status.ok}", "name=job-1 ok=true"),
    ("{.items[*].name}", "a b"),
    ("{.items[1].n}", "2"),
    ("{.metadata.labels['app']}", "x"),
    ("{.metadata.labels}", '{"app":"x"}'),
    ("{.nothing}", ""),
])
def test_jsonpath(template: str, expected: str) -> None:
    assert jsonpath(JOB, template) == expected


@pytest.mark.parametrize("template", ["{.items[?(@.n>1)].name}", "{range .items[*]}{.name}{end}", "{..name}"])
def test_jsonpath_unsupported(template: str) -> None:
    with pytest.raises(QueryError, match="not supported by the local cluster"):
        jsonpath(JOB, template)


@pytest.mark.parametrize(("program", "expected"), [
    (".metadata.name", "job-1"),
    (".items | length", "2"),
    (".items[].name", "a\nb"),
    (".items[0]", '{"name":"a","n":1}'),
    (".items[-1].n", "2"),
    ('.metadata.labels["app"]', "x"),
    (".status | keys", '["failed","ok","phase","succeeded"]'),
    (".metadata.name, .status.phase", "job-1\nRunning"),
    (".nothing", "null"),
    (".items | first | .name", "a"),
    (".", '{"metadata":{"name":"job-1","labels":{"app":"x"}},"status":{"succeeded":1,"failed":0,"phase":"Running",'
          '"ok":true},"items":[{"name":"a","n":1},{"name":"b","n":2}]}'),
])
def test_jq(program: str, expected: str) -> None:
    assert jq(JOB, program) == expected


@pytest.mark.parametrize("program", ["map(.n)", ".items | select(.n > 1)", ".a + 1", ".metadata.name.x"])
def test_jq_unsupported_is_a_clear_error(program: str) -> None:
    with pytest.raises(QueryError, match="jqFilter"):
        jq(JOB, program)
