"""API limits as a real API server has them: body and object size, strict JSON, query parameters,
names and container names; bad input is a 4xx ``Status``, never a 500."""

from __future__ import annotations

import json
import logging
import socket
from typing import Any

import httpx
import pytest

from airflow_argo_eci.local.api.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH, MAX_OBJECT_BYTES
from tests.local.api.apiserver_helpers import ApiServer

WF = "/apis/argoproj.io/v1alpha1/namespaces/argo/workflows"
PODS = "/api/v1/namespaces/argo/pods"


@pytest.fixture(scope="module")
def http(api_server: ApiServer) -> httpx.Client:
    return httpx.Client(base_url=api_server.url, headers={"Authorization": f"Bearer {api_server.token}"},
                        timeout=30)


def _wf(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name},
            "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "alpine"}}],
                     **spec}}


def _post_raw(http: httpx.Client, path: str, raw: bytes | str,
              content_type: str = "application/json") -> httpx.Response:
    return http.post(path, content=raw, headers={"Content-Type": content_type})


def _status(resp: httpx.Response, code: int, reason: str) -> dict[str, Any]:
    assert resp.status_code == code, resp.text[:500]
    body: dict[str, Any] = resp.json()
    assert body["kind"] == "Status" and body["code"] == code and body["reason"] == reason, body
    return body


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity", "NaN", "1e400", "99999999999999999999"])
def test_non_finite_or_out_of_range_numbers_are_400_and_never_stored(http: httpx.Client, literal: str) -> None:
    name = f"num-{abs(hash(literal)) % 10**8}"
    raw = json.dumps(_wf(name)).replace('"entrypoint"', f'"activeDeadlineSeconds": {literal}, "entrypoint"')
    body = _status(_post_raw(http, WF, raw), 400, "BadRequest")
    assert "not acceptable JSON" in body["message"]
    assert http.get(f"{WF}/{name}").status_code == 404
    listed = http.get(WF)
    assert listed.status_code == 200 and isinstance(listed.json()["items"], list)


def test_int64_bounds_are_accepted(http: httpx.Client) -> None:
    raw = json.dumps(_wf("int64-edge", activeDeadlineSeconds=2**63 - 1, priority=-(2**63)))
    assert _post_raw(http, WF, raw).status_code == 201


def test_patch_and_status_refuse_infinity(http: httpx.Client) -> None:
    assert _post_raw(http, WF, json.dumps(_wf("patch-inf"))).status_code == 201
    for path in (f"{WF}/patch-inf", f"{WF}/patch-inf/status"):
        resp = http.patch(path, content='{"status": {"progress": Infinity}}',
                          headers={"Content-Type": "application/merge-patch+json"})
        _status(resp, 400, "BadRequest")
    assert http.get(WF).status_code == 200


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1000, 100_000])
def test_deep_json_is_400(http: httpx.Client, depth: int) -> None:
    raw = '{"metadata": {"name": "deep"}, "spec": ' + "[" * depth + "]" * depth + "}"
    body = _status(_post_raw(http, WF, raw), 400, "BadRequest")
    assert "deeper than" in body["message"]


def test_json_at_the_depth_limit_is_accepted(http: httpx.Client) -> None:
    inner = MAX_JSON_DEPTH - 2  # the object and "spec" are two levels
    raw = '{"metadata": {"name": "deep-ok"}, "spec": ' + "[" * inner + "]" * inner + "}"
    assert _post_raw(http, "/api/v1/namespaces/argo/configmaps", raw).status_code in (201, 422)


def test_body_over_3mib_is_413_without_reading_it(http: httpx.Client, api_server: ApiServer) -> None:
    resp = _post_raw(http, WF, b" " * (MAX_BODY_BYTES + 1))
    body = _status(resp, 413, "RequestEntityTooLarge")
    assert body["message"] == f"Request entity too large: limit is {MAX_BODY_BYTES}"


def test_chunked_body_over_3mib_is_413(http: httpx.Client) -> None:
    def chunks() -> Any:
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    resp = http.post(WF, content=chunks(), headers={"Content-Type": "application/json"})
    _status(resp, 413, "RequestEntityTooLarge")


def test_object_over_etcd_limit_is_413_on_create_update_patch_and_status(http: httpx.Client) -> None:
    big = "x" * (MAX_OBJECT_BYTES + 10)
    wf = _wf("too-big")
    wf["metadata"]["annotations"] = {"a": "b"}
    wf["spec"]["arguments"] = {"parameters": [{"name": "p", "value": big}]}
    body = _status(_post_raw(http, WF, json.dumps(wf)), 413, "RequestEntityTooLarge")
    assert "etcdserver: request is too large" in body["message"]
    assert http.get(f"{WF}/too-big").status_code == 404
    assert _post_raw(http, WF, json.dumps(_wf("grows"))).status_code == 201
    current = http.get(f"{WF}/grows").json()
    current["spec"]["arguments"] = {"parameters": [{"name": "p", "value": big}]}
    _status(http.put(f"{WF}/grows", json=current), 413, "RequestEntityTooLarge")
    patch = {"spec": {"arguments": {"parameters": [{"name": "p", "value": big}]}}}
    _status(http.patch(f"{WF}/grows", json=patch, headers={"Content-Type": "application/merge-patch+json"}),
            413, "RequestEntityTooLarge")
    status_patch = {"status": {"message": big}}
    _status(http.patch(f"{WF}/grows/status", json=status_patch,
                       headers={"Content-Type": "application/merge-patch+json"}), 413, "RequestEntityTooLarge")
    assert "x" * 1000 not in http.get(f"{WF}/grows").text


def test_json_patch_copy_cannot_grow_past_the_object_limit(http: httpx.Client) -> None:
    assert _post_raw(http, "/api/v1/namespaces/argo/configmaps",
                     json.dumps({"metadata": {"name": "doubling"}, "data": {"a": "y" * 100_000}})).status_code == 201
    ops = [{"op": "copy", "from": "/data", "path": "/d0"}]
    ops += [{"op": "copy", "from": f"/d{i}", "path": f"/d{i + 1}"} for i in range(40)]
    resp = http.patch("/api/v1/namespaces/argo/configmaps/doubling", json=ops,
                      headers={"Content-Type": "application/json-patch+json"})
    assert resp.status_code in (413, 422), resp.text[:300]


@pytest.mark.parametrize("query", [
    "limit=1e20", "limit=-1", "limit=abc", "limit=1.5", "limit=" + "9" * 30, "limit=%C2%B2",
    "timeoutSeconds=" + "9" * 400, "timeoutSeconds=-5", "resourceVersion=abc", "resourceVersion=-3",
    "labelSelector=a%20in%20(", "labelSelector=%21%21%21", "fieldSelector=spec.nope%3Dx", "fieldSelector=x",
    "continue=%25%25%25", "continue=" + "A" * 50,
])
@pytest.mark.parametrize("watch", [False, True])
def test_bad_query_parameters_are_400(http: httpx.Client, query: str, watch: bool) -> None:
    if watch:
        query += "&watch=true&timeoutSeconds=1" if "timeoutSeconds" not in query else "&watch=true"
    resp = http.get(f"{WF}?{query}")
    _status(resp, 400, "BadRequest")


def test_watch_with_400_digit_timeout_is_400(http: httpx.Client) -> None:
    resp = http.get(f"/apis/argoproj.io/v1alpha1/watch/namespaces/argo/workflows?timeoutSeconds={'4' * 400}")
    _status(resp, 400, "BadRequest")


@pytest.mark.parametrize(("meta", "field"), [
    ({"name": "Upper"}, "metadata.name"),
    ({"name": "a/b"}, "metadata.name"),
    ({"name": "x" * 254}, "metadata.name"),
    ({"name": "-lead"}, "metadata.name"),
    ({"generateName": "Bad_"}, "metadata.generateName"),
    ({"name": "ok", "labels": {"bad key!": "v"}}, "metadata.labels"),
    ({"name": "ok2", "labels": {"k": "bad value!"}}, "metadata.labels[k]"),
    ({"name": "ok3", "labels": {"k": "v" * 64}}, "metadata.labels[k]"),
    ({"name": "ok4", "annotations": {"UPPER/x": "v"}}, "metadata.annotations"),
])
def test_names_and_labels_are_validated(http: httpx.Client, meta: dict[str, Any], field: str) -> None:
    wf = _wf("x")
    wf["metadata"] = meta
    body = _status(_post_raw(http, WF, json.dumps(wf)), 422, "Invalid")
    assert field in [c["field"] for c in body["details"]["causes"]], body


@pytest.mark.parametrize("name", ["../../etc/x", "Main", "a_b", "x" * 64, ""])
def test_pod_container_names_are_dns_labels(http: httpx.Client, name: str) -> None:
    pod = {"metadata": {"name": f"bad-container-{len(name)}"},
           "spec": {"containers": [{"name": name, "image": "alpine"}]}}
    body = _status(_post_raw(http, PODS, json.dumps(pod)), 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "spec.containers[0].name"


def test_pod_container_names_stay_validated_on_update_and_patch(http: httpx.Client) -> None:
    pod = {"metadata": {"name": "renamed"}, "spec": {"containers": [{"name": "main", "image": "alpine"}]}}
    assert _post_raw(http, PODS, json.dumps(pod)).status_code == 201
    ops = [{"op": "replace", "path": "/spec/containers/0/name", "value": "../../../x"}]
    resp = http.patch(f"{PODS}/renamed", json=ops, headers={"Content-Type": "application/json-patch+json"})
    _status(resp, 422, "Invalid")
    current = http.get(f"{PODS}/renamed").json()
    current["spec"]["initContainers"] = [{"name": "main", "image": "alpine"}]
    body = _status(http.put(f"{PODS}/renamed", json=current), 422, "Invalid")
    assert "Duplicate value" in body["message"]


@pytest.mark.parametrize("container", ["../../../../etc/passwd", "..", "main/../../x", "MAIN"])
def test_pod_log_container_cannot_name_a_host_file(http: httpx.Client, api_server: ApiServer,
                                                   container: str) -> None:
    pod = {"metadata": {"name": "logpod"}, "spec": {"containers": [{"name": "main", "image": "alpine"}]}}
    if http.get(f"{PODS}/logpod").status_code == 404:
        assert _post_raw(http, PODS, json.dumps(pod)).status_code == 201
    resp = http.get(f"{PODS}/logpod/log", params={"container": container})
    assert resp.status_code in (400, 404), resp.text
    assert "root:" not in resp.text


def test_unexpected_error_is_one_line_500_status(api_server_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaput\nsecond line")

    srv: ApiServer = api_server_factory(routers=[router])
    with caplog.at_level(logging.ERROR, logger="airflow_argo_eci.local.api.limits"):
        resp = httpx.get(srv.url + "/boom", headers={"Authorization": f"Bearer {srv.token}"})
    body = _status(resp, 500, "InternalError")
    assert "RuntimeError" in body["message"] and "kaput" not in body["message"]
    records = [r for r in caplog.records if r.name == "airflow_argo_eci.local.api.limits"]
    assert len(records) == 1 and "\n" not in records[0].getMessage() and records[0].exc_info is None


def test_argo_server_routes_refuse_bad_input_with_4xx(api_server_factory: Any) -> None:
    srv: ApiServer = api_server_factory(argo_server=True)
    client = httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {srv.token}"}, timeout=30)
    cases = [
        ("POST", "/api/v1/workflows/argo", '{"workflow": {"spec": {"activeDeadlineSeconds": Infinity}}}'),
        ("POST", "/api/v1/workflows/argo", "[" * 5000 + "]" * 5000),
        ("GET", "/api/v1/workflows/argo?listOptions.limit=1e20", None),
        ("GET", "/api/v1/workflows/argo?listOptions.limit=" + "9" * 400, None),
        ("GET", "/api/v1/workflows/argo?listOptions.labelSelector=a%20in%20(", None),
        ("GET", "/api/v1/workflow-templates/argo?listOptions.limit=-1", None),
    ]
    for method, path, body in cases:
        resp = client.request(method, path, content=body, headers={"Content-Type": "application/json"})
        assert resp.status_code == 400, (path, resp.status_code, resp.text[:300])
    big = client.post("/api/v1/workflows/argo", content=b" " * (MAX_BODY_BYTES + 1))
    assert big.status_code == 413


def test_argo_server_log_container_and_grep_are_checked(api_server_factory: Any) -> None:
    srv: ApiServer = api_server_factory(argo_server=True)
    client = httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {srv.token}"}, timeout=30)
    wf = {"workflow": _wf("logs-wf")}
    assert client.post("/api/v1/workflows/argo", json=wf).status_code == 200
    resp = client.get("/api/v1/workflows/argo/logs-wf/log", params={"logOptions.container": "../../../server"})
    assert resp.status_code == 400 and "container" in resp.json()["message"]
    resp = client.get("/api/v1/workflows/argo/logs-wf/log", params={"grep": "(a+)+$("})
    assert resp.status_code == 400 and "grep" in resp.json()["message"]
    resp = client.get("/api/v1/workflows/argo/logs-wf/log", params={"grep": "^(a+)+$"})
    assert resp.status_code == 200


def test_unauthenticated_huge_body_is_401_quickly(api_server: ApiServer) -> None:
    host, port = api_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST " + WF.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 52428800\r\n\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 401")


def test_json_patch_copying_the_whole_document_cannot_double_it_forever(http: httpx.Client) -> None:
    assert _post_raw(http, "/api/v1/namespaces/argo/configmaps",
                     json.dumps({"metadata": {"name": "doubler"}, "data": {"a": "z" * 1000}})).status_code == 201
    ops = [{"op": "copy", "from": "", "path": f"/c{i}"} for i in range(60)]
    resp = http.patch("/api/v1/namespaces/argo/configmaps/doubler", json=ops,
                      headers={"Content-Type": "application/json-patch+json"})
    body = _status(resp, 422, "Invalid")
    assert "copy operations" in body["message"]
    too_many = [{"op": "test", "path": "/kind", "value": "ConfigMap"}] * 10_001
    resp = http.patch("/api/v1/namespaces/argo/configmaps/doubler", json=too_many,
                      headers={"Content-Type": "application/json-patch+json"})
    assert _status(resp, 422, "Invalid")


def test_argo_server_log_selector_is_checked_before_streaming(api_server_factory: Any) -> None:
    srv: ApiServer = api_server_factory(argo_server=True)
    client = httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {srv.token}"}, timeout=30)
    assert client.post("/api/v1/workflows/argo", json={"workflow": _wf("sel-wf")}).status_code == 200
    resp = client.get("/api/v1/workflows/argo/sel-wf/log", params={"selector": "a in (("})
    assert resp.status_code == 400 and "labelSelector" in resp.json()["message"]
