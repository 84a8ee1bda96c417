"""Property-based fuzzing of the expression languages: whatever the text (token soups, deep
nesting, long strings, regular expressions, template tags), evaluation raises nothing but
:class:`ExpressionError` (or :class:`TemplateError` for template tags) and ends within a budget."""

from __future__ import annotations

import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_argo_eci.local.argo.depends import evaluate_depends
from airflow_argo_eci.local.argo.expressions import ExpressionError, evaluate, evaluate_when
from airflow_argo_eci.local.argo.variables import Scope, TemplateError, substitute

#: seconds one evaluation may take (the evaluator's own time budget is 1 s)
BUDGET_SECONDS = 2.0

TOKENS = [
    "(", ")", "[", "]", "{", "}", ",", ".", "?.", "?", ":", "!", "not", "-", "+", "*", "/", "%", "**",
    "==", "!=", "<", "<=", ">", ">=", "&&", "||", "and", "or", "??", "in", "matches", "contains", "=~",
    "startsWith", "endsWith", "..", "#", "1", "0", "-1", "2.5", "1e308", "99999999999999999999", "'a'",
    '"b"', "`c`", "true", "false", "nil", "x", "items", "len", "map", "filter", "all", "any", "count",
    "toJson", "fromJson", "asInt", "asFloat", "string", "jsonpath", "keys", "split", "join", "sprig",
    "sprig.repeat", "sprig.regexMatch", "sprig.regexFind", "sprig.regexReplaceAll", "sprig.regexSplit",
    "sprig.date", "sprig.b64dec", "sprig.div", "sprig.mod", "'^(a+)+$'", "'(a)\\\\1'", "'(?<=a)b'",
    "'aaaaaaaaaaaaaaaaaaaaaaaaaaaa!'", "'$.a[*]'", "'[[[['", "{#}", "{# > 1}",
]
ENV: dict[str, Any] = {"x": 3, "items": [1, 2, {"a": "b"}], "s": "a" * 1000, "m": {"k": [1, 2]}}

REGEX_ALPHABET = "a()[]{}*+?|^$\\.-,:=<>!PLpdwsbBzAQE0123456789"

soups = st.lists(st.sampled_from(TOKENS), max_size=60).map(" ".join)
nested = st.tuples(st.integers(0, 6000), st.sampled_from(["1", "x", "[", "-", "!"]), st.integers(0, 6000)).map(
    lambda t: "(" * t[0] + t[1] + ")" * t[2])
chained = st.tuples(st.sampled_from(["!", "-", "1?1:", "[", "f(", "2**", "a.", "{"]), st.integers(1, 5000)).map(
    lambda t: t[0] * t[1] + "1")
long_strings = st.integers(0, 200_000).map(lambda n: "'" + "a" * n + "' + 'b'")
regexes = st.tuples(st.text(REGEX_ALPHABET, max_size=40), st.text("ab!\n", max_size=60),
                    st.sampled_from(["sprig.regexMatch({p}, {s})", "{s} matches {p}", "sprig.regexFind({p}, {s})",
                                     "sprig.regexReplaceAll({p}, {s}, '$1${2}$$')", "sprig.regexSplit({p}, {s}, -1)",
                                     "sprig.regexFindAll({p}, {s}, 3)"])).map(
    lambda t: t[2].replace("{p}", repr(t[0])).replace("{s}", repr(t[1])))
anything = st.text(max_size=300)
expressions = st.one_of(soups, nested, chained, long_strings, regexes, anything)


def _timed(fn: Any, *args: Any) -> None:
    started = time.monotonic()
    try:
        fn(*args)
    except ExpressionError:
        pass
    elapsed = time.monotonic() - started
    assert elapsed < BUDGET_SECONDS, f"{elapsed:.2f}s for {str(args[0])[:200]!r}"


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(expressions)
def test_evaluate_raises_only_expression_errors_within_budget(text: str) -> None:
    _timed(evaluate, text, ENV)


@FUZZ
@given(expressions)
def test_when_raises_only_expression_errors_within_budget(text: str) -> None:
    _timed(evaluate_when, text)


@FUZZ
@given(st.one_of(soups, nested, anything))
def test_depends_raises_only_expression_errors_within_budget(text: str) -> None:
    states = {"A": {"Succeeded": True, "_default": True}, "B": {"Failed": True, "_default": False}}
    _timed(evaluate_depends, text, states)


@FUZZ
@given(st.one_of(expressions.map(lambda e: "{{=" + e + "}}"), st.text("{}=x ", max_size=2000),
                 st.integers(0, 100_000).map(lambda n: "{{" * n + "}")))
def test_template_substitution_raises_only_template_errors(text: str) -> None:
    scope = Scope({"inputs.parameters.x": "1", "workflow.name": "wf"})
    started = time.monotonic()
    for allow in (True, False):
        try:
            substitute(text, scope, allow_unresolved=allow)
        except TemplateError:
            pass
    assert time.monotonic() - started < 2 * BUDGET_SECONDS


def test_the_issues_inputs_end_quickly() -> None:
    for text in ["(" * 3000 + "true" + ")" * 3000,
                 "sprig.regexMatch('^(a+)+$', '" + "a" * 27 + "!')",
                 "'" + "a" * 27 + "!' matches '^(a+)+$'",
                 "map(1..100000000, {#})",
                 "sprig.repeat(1000000000, 'x')",
                 "len(map(1..150000, {map(1..150000, {#})}))"]:
        started = time.monotonic()
        try:
            evaluate(text, {})
        except ExpressionError as exc:
            assert str(exc)
        assert time.monotonic() - started < 1.5, text[:80]


# ---------------------------------------------------------------- through the controller

_HARNESS: list[Any] = []


def _harness() -> Any:
    """One store + controller (not started: each example runs one pass) for the whole module."""
    if not _HARNESS:
        import tempfile
        from pathlib import Path

        from tests.local.argo.conftest import Harness

        _HARNESS.append(Harness(Path(tempfile.mkdtemp(prefix="fuzz-controller-")) / "state"))
    return _HARNESS[0]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions, st.sampled_from(["when", "tag", "withParam", "depends", "retry", "output"]))
def test_a_reconcile_pass_never_raises_whatever_the_expressions(text: str, where: str) -> None:
    from airflow_argo_eci.local.argo.reconcile import WorkflowReconciler

    harness = _harness()
    leaf = {"name": "leaf", "inputs": {"parameters": [{"name": "x", "value": "0"}]},
            "container": {"image": "busybox", "args": ["echo", "{{inputs.parameters.x}}"]}}
    task: dict[str, Any] = {"name": "b", "template": "leaf"}
    if where == "when":
        task["when"] = text
    elif where == "tag":
        task["arguments"] = {"parameters": [{"name": "x", "value": "{{=" + text + "}}"}]}
    elif where == "withParam":
        task["withParam"] = "{{=" + text + "}}"
    elif where == "depends":
        task["depends"] = text
    elif where == "retry":
        leaf["retryStrategy"] = {"limit": 1, "expression": text}
    else:
        leaf["outputs"] = {"parameters": [{"name": "o", "valueFrom": {"expression": text}}]}
    spec = {"entrypoint": "d", "templates": [
        {"name": "d", "dag": {"tasks": [{"name": "a", "template": "leaf"}, task]}}, leaf]}
    name = harness.submit(spec, f"fz-{time.monotonic_ns()}")
    started = time.monotonic()
    for _ in range(3):  # later passes see the earlier ones' nodes, as the controller's loop would
        wf = harness.get(name)
        if (wf.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Error"):
            break
        WorkflowReconciler(harness.controller, wf).run()  # a pass on its own, then one that is written back
        harness.controller.reconcile(harness.get(name))
    assert time.monotonic() - started < 4 * BUDGET_SECONDS
