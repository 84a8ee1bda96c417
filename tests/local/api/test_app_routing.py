"""Routing of ``create_app``: later routers under ``/api/v1`` still reachable and protected, types
registered after the app was built are served, unknown paths and verbs give Status errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter

from airflow_argo_eci.local.api import resources
from airflow_argo_eci.local.api.k8s_routes import parse_target
from tests.local.api.apiserver_helpers import TOKEN, start_api_server

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def http(tmp_path: Path) -> Iterator[httpx.Client]:
    extra = APIRouter()

    @extra.get("/api/v1/workflows/{namespace}")
    async def argo_list(namespace: str) -> dict[str, str]:
        return {"served_by": "argo-server", "namespace": namespace}

    @extra.post("/api/v1/events/{namespace}/{discriminator}")
    async def argo_event(namespace: str, discriminator: str) -> dict[str, str]:
        return {"served_by": "argo-events", "discriminator": discriminator}

    srv = start_api_server(tmp_path, routers=[extra])
    with httpx.Client(base_url=srv.url) as client:
        yield client
    srv.stop()


def test_later_router_falls_through_and_is_protected(http: httpx.Client) -> None:
    r = http.get("/api/v1/workflows/argo", headers=AUTH)
    assert r.status_code == 200 and r.json() == {"served_by": "argo-server", "namespace": "argo"}
    r = http.post("/api/v1/events/argo/disc", headers=AUTH)
    assert r.json() == {"served_by": "argo-events", "discriminator": "disc"}
    r = http.get("/api/v1/workflows/argo")
    assert r.status_code == 401 and r.json()["reason"] == "Unauthorized"
    # the core "events" resource is still the Kubernetes one
    r = http.get("/api/v1/namespaces/argo/events", headers=AUTH)
    assert r.status_code == 200 and r.json()["kind"] == "EventList"


def test_type_registered_after_app_creation(http: httpx.Client) -> None:
    rt = resources.ResourceType("widgets.example.io", "v1alpha1", "widgets", "Widget", True, "widget")
    assert http.get("/apis/widgets.example.io/v1alpha1/namespaces/argo/widgets", headers=AUTH).status_code == 404
    resources.register(rt)
    try:
        r = http.post(
            "/apis/widgets.example.io/v1alpha1/namespaces/argo/widgets",
            headers=AUTH,
            json={"metadata": {"name": "d1"}},
        )
        assert r.status_code == 201 and r.json()["kind"] == "Widget"
        r = http.get("/apis/widgets.example.io/v1alpha1/namespaces/argo/widgets/d1", headers=AUTH)
        assert r.json()["apiVersion"] == "widgets.example.io/v1alpha1"
        groups = http.get("/apis", headers=AUTH).json()["groups"]
        assert "widgets.example.io" in [g["name"] for g in groups]
        res = http.get("/apis/widgets.example.io/v1alpha1", headers=AUTH).json()["resources"]
        assert [x["name"] for x in res] == ["widgets"]
    finally:
        del resources.REGISTRY[rt.key]


def test_status_errors_for_paths_and_verbs(http: httpx.Client) -> None:
    r = http.get("/api/v1/namespaces/argo/nothings", headers=AUTH)
    assert r.status_code == 404 and r.json()["reason"] == "NotFound"
    r = http.get("/apis/argoproj.io/v9/workflows", headers=AUTH)  # wrong version
    assert r.status_code == 404
    r = http.put("/api/v1/namespaces/argo/configmaps", headers=AUTH, json={})
    assert r.status_code == 405 and r.json()["reason"] == "MethodNotAllowed"
    r = http.post("/api/v1/configmaps", headers=AUTH, json={"metadata": {"name": "x"}})
    assert r.status_code == 405  # create needs a namespace in the path
    r = http.delete("/api/v1/namespaces/argo/pods/p/status", headers=AUTH)
    assert r.status_code == 405
    r = http.get("/api/v1/namespaces/argo/configmaps/x/status", headers=AUTH)
    assert r.status_code == 404  # configmaps have no status subresource
    r = http.post(
        "/api/v1/namespaces/argo/configmaps?dryRun=All", headers=AUTH, json={"metadata": {"name": "x"}}
    )
    assert r.status_code == 400 and "dryRun" in r.json()["message"]
    r = http.get("/api/v1/namespaces/argo/configmaps?limit=abc", headers=AUTH)
    assert r.status_code == 400 and '"limit"' in r.json()["message"]
    r = http.get("/api/v1/namespaces/argo/configmaps?watch=true&resourceVersion=xyz", headers=AUTH)
    assert r.status_code == 400 and "resourceVersion" in r.json()["message"]


def test_deletecollection(http: httpx.Client) -> None:
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        http.post(
            "/api/v1/namespaces/argo/configmaps",
            headers=AUTH,
            json={"metadata": {"name": name, "labels": {"app": app}}},
        )
    r = http.delete("/api/v1/namespaces/argo/configmaps?labelSelector=app%3Dx", headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "Success"
    items = http.get("/api/v1/namespaces/argo/configmaps", headers=AUTH).json()["items"]
    assert [i["metadata"]["name"] for i in items] == ["c"]


def test_namespace_status_path(http: httpx.Client) -> None:
    r = http.get("/api/v1/namespaces/argo/status", headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == {"phase": "Active"}


def test_parse_target() -> None:
    t = parse_target("", "v1", ["namespaces", "argo", "pods", "p", "log"])
    assert t is not None and (t.namespace, t.name, t.subresource) == ("argo", "p", "log")
    t = parse_target("", "v1", ["watch", "namespaces", "argo", "pods"])
    assert t is not None and t.watch_path and t.name is None
    t = parse_target("argoproj.io", "v1alpha1", ["clusterworkflowtemplates", "x"])
    assert t is not None and t.namespace is None and t.name == "x"
    assert parse_target("", "v1", ["pods", "p"]) is None  # namespaced object without namespace
    assert parse_target("", "v1", ["namespaces", "argo", "configmaps", "c", "log"]) is None
    assert parse_target("", "v1", ["namespaces", "argo", "pods", "p", "status", "x"]) is None
    assert parse_target("", "v1", ["namespaces", "argo", "workflows"]) is None
