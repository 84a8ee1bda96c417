"""Unit tests of the merge patch / JSON patch functions and the selector parsers."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.patch import PatchError, json_patch, merge_patch
from airflow_argo_eci.local.api.selectors import parse_field_selector, parse_label_selector


def test_merge_patch_rfc7386_examples() -> None:
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert merge_patch(["a"], {"a": "b"}) == {"a": "b"}
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    target = {"a": {"b": 1}}
    merge_patch(target, {"a": {"b": 2}})
    assert target == {"a": {"b": 1}}  # input untouched


@pytest.mark.parametrize(
    ("doc", "ops", "expected"),
    [
        ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"foo": "bar", "baz": "qux"}),
        (
            {"foo": ["bar", "baz"]},
            [{"op": "add", "path": "/foo/1", "value": "qux"}],
            {"foo": ["bar", "qux", "baz"]},
        ),
        ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": "x"}], {"foo": ["bar", "x"]}),
        ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
        ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
        ({"baz": "qux"}, [{"op": "replace", "path": "/baz", "value": "boo"}], {"baz": "boo"}),
        (
            {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
            [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
            {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
        ),
        ({"a": [1, 2]}, [{"op": "copy", "from": "/a/0", "path": "/a/-"}], {"a": [1, 2, 1]}),
        (
            {"a/b": 1, "m~n": 2},
            [{"op": "replace", "path": "/a~1b", "value": 3}, {"op": "remove", "path": "/m~0n"}],
            {"a/b": 3},
        ),
        ({"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}], {"b": 2}),
    ],
)
def test_json_patch_ok(doc: Any, ops: list[dict[str, Any]], expected: Any) -> None:
    assert json_patch(doc, ops) == expected


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ([{"op": "test", "path": "/a", "value": 2}], 'test operation 0 failed: value at "/a" is 1, not 2'),
        ([{"op": "test", "path": "/a", "value": True}], "test operation 0 failed"),
        ([{"op": "remove", "path": "/missing"}], 'cannot remove "/missing": path does not exist'),
        ([{"op": "replace", "path": "/x/y", "value": 1}], 'path "/x/y" does not exist: missing "x"'),
        ([{"op": "add", "path": "/l/5", "value": 1}], 'array index 5 out of range in path "/l/5"'),
        ([{"op": "add", "path": "/l/01", "value": 1}], 'invalid array index "01"'),
        ([{"op": "add", "path": "a", "value": 1}], 'invalid JSON pointer "a"'),
        ([{"op": "add", "path": "/b"}], 'operation 0 ("add") is missing "value"'),
        ([{"op": "frobnicate", "path": "/a"}], 'unknown op "frobnicate"'),
        ([{"op": "move", "from": "/l", "path": "/l/0"}], "cannot move"),
        ({"op": "add"}, "must be a JSON array"),
    ],
)
def test_json_patch_errors(ops: Any, message: str) -> None:
    with pytest.raises(PatchError) as e:
        json_patch({"a": 1, "l": [0]}, ops)
    assert message in str(e.value)


def test_label_selector_parsing() -> None:
    sel = parse_label_selector("app.kubernetes.io/name in (a, b),!gone,tier,env notin (prod),x=1,y!=2")
    assert sel.matches({"app.kubernetes.io/name": "a", "tier": "", "x": "1"})
    assert not sel.matches({"app.kubernetes.io/name": "c", "tier": "", "x": "1"})
    assert not sel.matches({"app.kubernetes.io/name": "a", "tier": "", "x": "1", "gone": "z"})
    assert not sel.matches({"app.kubernetes.io/name": "a", "tier": "", "x": "1", "env": "prod"})
    assert not sel.matches({"app.kubernetes.io/name": "a", "tier": "", "x": "1", "y": "2"})
    assert parse_label_selector("").matches(None)
    assert parse_label_selector("a=").matches({"a": ""})
    for bad in ("a in ()", "-a=b", "a=b c", "a in (b", "a,,b", "a=b=c"):
        with pytest.raises(ApiError) as e:
            parse_label_selector(bad)
        assert e.value.code == 400, bad


def test_field_selector_parsing() -> None:
    sel = parse_field_selector("metadata.name==a,status.phase!=Failed", "Pod")
    assert sel.matches({"metadata": {"name": "a"}, "status": {"phase": "Running"}})
    assert not sel.matches({"metadata": {"name": "a"}, "status": {"phase": "Failed"}})
    assert parse_field_selector("involvedObject.name=wf", "Event").matches({"involvedObject": {"name": "wf"}})
    with pytest.raises(ApiError) as e:
        parse_field_selector("status.phase=Running", "ConfigMap")
    assert e.value.code == 400 and '"status.phase" is not a known field selector' in e.value.message
    with pytest.raises(ApiError) as e:
        parse_field_selector("metadata.name", "Pod")
    assert e.value.code == 400 and "has no operator" in e.value.message
