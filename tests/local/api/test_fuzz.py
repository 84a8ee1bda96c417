"""Property-based fuzzing (Hypothesis) of what the API parses from clients: label and field
selectors, JSON bodies, merge and JSON patches, query parameters. No input may give a 500, an
exception other than the 4xx ``ApiError``/``PatchError``, or take longer than a small budget."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.limits import decode_json
from airflow_argo_eci.local.api.patch import JSON_PATCH, MERGE_PATCH, PatchError, json_patch, merge_patch
from airflow_argo_eci.local.api.resources import CONFIGMAPS, WORKFLOW_TEMPLATES, WORKFLOWS
from airflow_argo_eci.local.api.selectors import parse_field_selector, parse_label_selector
from airflow_argo_eci.local.api.store import Store
from tests.local.api.apiserver_helpers import ApiServer, start_api_server

#: seconds one parse may take, whatever the input
BUDGET = 0.5
FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

selector_alphabet = st.sampled_from([*"abcxyz019-_./=!,() \t<>", "in", "notin", "!=", "==", "\u00e9", "\x00"])
selector_text = st.lists(selector_alphabet, max_size=60).map("".join) | st.text(max_size=80)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(
    max_size=8)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=5), inner, max_size=4), max_leaves=20)
pointers = st.lists(st.sampled_from(["a", "b", "0", "1", "-", "~0", "~1", "", "metadata", "data"]), max_size=4).map(
    lambda parts: "".join("/" + p for p in parts)) | st.text(max_size=10)
operations = st.fixed_dictionaries({"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "x"]),
                                    "path": pointers}, optional={"from": pointers, "value": json_values})


def _timed(fn: Any, *args: Any) -> Any:
    started = time.perf_counter()
    try:
        return fn(*args)
    finally:
        assert time.perf_counter() - started < BUDGET, f"{fn.__name__} took too long on {args!r:.200}"


@FUZZ
@given(selector_text)
def test_label_selector_parser_never_fails_unexpectedly(text: str) -> None:
    try:
        parsed = _timed(parse_label_selector, text)
    except ApiError as exc:
        assert exc.code == 400
    else:
        assert parsed.matches({"a": "b"}) in (True, False)


@FUZZ
@given(selector_text, st.sampled_from(["", "Pod", "Event", "Workflow"]))
def test_field_selector_parser_never_fails_unexpectedly(text: str, kind: str) -> None:
    try:
        parsed = _timed(parse_field_selector, text, kind)
    except ApiError as exc:
        assert exc.code == 400
    else:
        assert parsed.matches({"metadata": {"name": "x"}}) in (True, False)


@FUZZ
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode())
       | st.sampled_from([b"NaN", b"[Infinity]", b'{"a": -Infinity}', b"1e999", b"-" + b"9" * 30, b"[" * 5000]))
def test_json_body_decoder_accepts_or_400s(raw: bytes) -> None:
    try:
        value = _timed(decode_json, raw)
    except ApiError as exc:
        assert exc.code == 400 and exc.reason == "BadRequest"
    else:
        json.dumps(value, allow_nan=False)  # whatever is accepted can be stored and served


@FUZZ
@given(json_values, json_values)
def test_merge_patch_is_total(target: Any, patch: Any) -> None:
    result = _timed(merge_patch, target, patch)
    json.dumps(result, allow_nan=False)


@FUZZ
@given(json_values, st.lists(operations, max_size=6) | json_values)
def test_json_patch_applies_or_raises_patch_error(doc: Any, ops: Any) -> None:
    try:
        _timed(json_patch, doc, ops)
    except PatchError:
        pass


@FUZZ
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=4), st.lists(operations, max_size=5),
       st.sampled_from([MERGE_PATCH, JSON_PATCH, "application/strategic-merge-patch+json", "text/plain"]))
def test_store_patch_gives_only_4xx(tmp_path_factory: pytest.TempPathFactory, merge: dict[str, Any],
                                    ops: list[Any], content_type: str) -> None:
    store = _store(tmp_path_factory)
    body: Any = ops if content_type == JSON_PATCH else merge
    try:
        _timed(store.patch, CONFIGMAPS, "argo", "target", body, content_type)
    except ApiError as exc:
        assert 400 <= exc.code < 500, exc.status()


_STORES: dict[str, Store] = {}


def _store(factory: pytest.TempPathFactory) -> Store:
    if "s" not in _STORES:
        store = Store(factory.mktemp("fuzz") / "db.sqlite")
        store.create(CONFIGMAPS, "argo", {"metadata": {"name": "target", "labels": {"a": "b"}}, "data": {"k": "v"}})
        _STORES["s"] = store
    return _STORES["s"]


query_values = st.text(max_size=30) | st.sampled_from(["1e20", "-1", "9" * 400, "\u00b2", "0x10", " 1", "1_0"])


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["limit", "timeoutSeconds", "resourceVersion", "labelSelector", "fieldSelector",
                        "continue", "watch"]), query_values, st.booleans())
def test_query_parameters_never_give_500(api_server: ApiServer, name: str, value: str, watch: bool) -> None:
    query = f"{name}={quote(value, safe='')}"
    if watch and name != "watch":
        query += "&watch=true&timeoutSeconds=1" if name != "timeoutSeconds" else "&watch=true"
    with httpx.stream("GET", f"{api_server.url}/api/v1/namespaces/argo/configmaps?{query}", timeout=10,
                      headers={"Authorization": f"Bearer {api_server.token}"}) as resp:
        assert resp.status_code < 500
        if resp.status_code >= 400:
            assert json.loads(resp.read())["kind"] == "Status"


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(json_values | st.fixed_dictionaries({"metadata": st.dictionaries(
    st.sampled_from(["name", "generateName", "labels", "annotations", "namespace"]),
    json_values | st.text(max_size=70), max_size=3)}, optional={"spec": json_values}))
def test_create_bodies_never_give_500(api_server: ApiServer, body: Any) -> None:
    resp = httpx.post(f"{api_server.url}/api/v1/namespaces/argo/pods", json=body, timeout=10,
                      headers={"Authorization": f"Bearer {api_server.token}"})
    assert resp.status_code < 500, resp.text[:300]
    if resp.status_code < 300:
        httpx.delete(f"{api_server.url}/api/v1/namespaces/argo/pods/{resp.json()['metadata']['name']}",
                     headers={"Authorization": f"Bearer {api_server.token}"})


@pytest.fixture(scope="module")
def argo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    srv = start_api_server(tmp_path_factory.mktemp("argo-fuzz"), argo_server=True)
    spec = {"entrypoint": "main", "templates": [{"name": "main", "suspend": {}}]}
    srv.store.create(WORKFLOWS, "argo", {"metadata": {"name": "w"}, "spec": spec,
                                         "status": {"phase": "Failed", "nodes": {}}})
    srv.store.create(WORKFLOW_TEMPLATES, "argo", {"metadata": {"name": "t"}, "spec": spec})
    yield srv
    srv.stop()


argo_bodies = json_values | st.fixed_dictionaries({}, optional={
    "workflow": json_values | st.fixed_dictionaries({"metadata": json_values, "spec": json_values}),
    "template": json_values | st.fixed_dictionaries({"metadata": json_values, "spec": json_values}),
    "resourceKind": st.sampled_from(["WorkflowTemplate", "CronWorkflow", "x"]) | json_values,
    "resourceName": st.text(max_size=10) | json_values,
    "submitOptions": json_values, "parameters": json_values, "nodeFieldSelector": json_values,
    "restartSuccessful": json_values, "message": json_values, "serverDryRun": json_values})


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from([
    ("POST", "/api/v1/workflows/argo"), ("POST", "/api/v1/workflows/argo/lint"),
    ("POST", "/api/v1/workflows/argo/submit"), ("PUT", "/api/v1/workflows/argo/w/stop"),
    ("PUT", "/api/v1/workflows/argo/w/retry"), ("PUT", "/api/v1/workflows/argo/w/resubmit"),
    ("PUT", "/api/v1/workflows/argo/w/resume"), ("DELETE", "/api/v1/workflows/argo/w"),
    ("POST", "/api/v1/workflow-templates/argo"), ("PUT", "/api/v1/workflow-templates/argo/t"),
    ("POST", "/api/v1/cluster-workflow-templates/lint"),
]), argo_bodies)
def test_argo_server_bodies_never_give_500(argo_server: ApiServer, route: tuple[str, str], body: Any) -> None:
    method, path = route
    resp = httpx.request(method, f"{argo_server.url}{path}", json=body, timeout=10,
                         headers={"Authorization": f"Bearer {argo_server.token}"})
    assert resp.status_code < 500, (resp.status_code, resp.text[:300])
