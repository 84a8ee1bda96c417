"""FluidHook against the local API server over real HTTPS: create/get/list/delete/watch of Fluid's
kinds, sync and async, typed errors, the uid fence, and what it refuses before sending."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_argo_eci.errors import ConflictError, InvalidError, NotFoundError, WorkflowSpecError
from airflow_argo_eci.fluid_conventions import API_VERSION, KINDS, RUNTIME_PLURALS
from airflow_argo_eci.hooks.fluid import FluidHook, FluidObjectSource
from tests.hooks.fluid_cluster import FluidArranger
from tests.hooks.watching import phases_until_deleted
from tests.triggers.cluster import InstrumentedCluster, start_instrumented_cluster

CONN = "fluid_hook_test"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstrumentedCluster]:
    started = start_instrumented_cluster(tmp_path_factory.mktemp("fluid-hook"))
    env = started.connection_uri_env(CONN)
    env[f"AIRFLOW_CONN_{CONN.upper()}_SERVER"] = started.connection_uri_env(
        "x", transport="argo_server")["AIRFLOW_CONN_X"]
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield started
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        started.stop()


@pytest.fixture
def hook(cluster: InstrumentedCluster) -> Iterator[FluidHook]:
    made = FluidHook(argo_conn_id=CONN)
    yield made
    made.close()


def dataload(name: str, dataset: str = "ds", **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels},
            "spec": {"dataset": {"name": dataset, "namespace": "argo"}, "loadMetadata": True}}


def test_create_get_list_delete_every_kind(hook: FluidHook) -> None:
    for kind in KINDS:
        name = f"crud-{kind.lower()}"
        spec: dict[str, Any] = {"replicas": 1} if kind in RUNTIME_PLURALS else (
            {"dataset": {"name": "ds"}} if kind == "DataLoad" else {"mounts": []})
        created = hook.create_object(kind, {"metadata": {"name": name, "labels": {"suite": "crud"}}, "spec": spec})
        assert created["apiVersion"] == API_VERSION and created["kind"] == kind
        assert created["metadata"]["namespace"] == "argo" and created["metadata"]["uid"]
        assert hook.get_object(kind, name)["metadata"]["uid"] == created["metadata"]["uid"]
        listed = hook.list_objects(kind, label_selector="suite=crud")
        assert [obj["metadata"]["name"] for obj in listed] == [name] and listed.resource_version
        hook.delete_object(kind, name, uid=created["metadata"]["uid"])
        with pytest.raises(NotFoundError, match=f"get {kind} argo/{name}"):
            hook.get_object(kind, name)


def test_typed_errors(hook: FluidHook) -> None:
    hook.create_object("DataLoad", dataload("typed"))
    with pytest.raises(ConflictError):
        hook.create_object("DataLoad", dataload("typed"))
    with pytest.raises(ConflictError):  # the uid fence refuses to delete a same-named successor
        hook.delete_object("DataLoad", "typed", uid="not-the-uid")
    assert hook.get_dataload("typed")["metadata"]["name"] == "typed"
    with pytest.raises(InvalidError):
        hook.create_object("DataLoad", dataload("Not_A_Name"))
    with pytest.raises(NotFoundError) as info:
        hook.delete_object("DataLoad", "never-there")
    assert info.value.status == 404
    hook.delete_object("DataLoad", "typed")


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        ("SparkRuntime", {"metadata": {"name": "x"}, "spec": {}}, "kind 'SparkRuntime' is not a Fluid kind"),
        ("DataLoad", {"kind": "Dataset", "metadata": {"name": "x"}, "spec": {}}, "kind must be 'DataLoad'"),
        ("DataLoad", {"metadata": {}, "spec": {}}, "metadata.name or metadata.generateName is required"),
        ("DataLoad", {"metadata": {"name": "x"}}, "spec must be a mapping"),
        ("DataLoad", ["not", "a", "mapping"], "DataLoad body must be a mapping"),
    ],
)
def test_bad_bodies_are_refused_before_sending(hook: FluidHook, cluster: InstrumentedCluster, kind: str,
                                               body: Any, message: str) -> None:
    before = len(cluster.requests())
    with pytest.raises(WorkflowSpecError) as info:
        hook.create_object(kind, body)
    assert message in str(info.value)
    assert len(cluster.requests()) == before


def test_argo_server_connections_are_refused(cluster: InstrumentedCluster) -> None:
    hook = FluidHook(argo_conn_id=f"{CONN}_server")
    with pytest.raises(WorkflowSpecError, match="only through a connection with transport 'kubernetes'"):
        hook.get_dataset("x")


def test_find_runtime_claims_and_secrets(hook: FluidHook, cluster: InstrumentedCluster) -> None:
    arranger = FluidArranger(cluster)
    arranger.bound_dataset("rt-ds")
    assert hook.find_runtime("rt-ds") is None
    arranger.create("AlluxioRuntime", "rt-ds", {"replicas": 2})
    found = hook.find_runtime("rt-ds")
    assert found is not None and found[0] == "AlluxioRuntime" and found[1]["spec"]["replicas"] == 2
    assert hook.get_claim("rt-ds")["metadata"]["name"] == "rt-ds"
    hook.create_secret({"metadata": {"name": "rt-ds-oss"}, "stringData": {"k": "v"}})
    assert hook.get_secret("rt-ds-oss")["metadata"]["name"] == "rt-ds-oss"
    hook.delete_secret("rt-ds-oss")
    with pytest.raises(NotFoundError):
        hook.get_secret("rt-ds-oss")


def test_test_connection(hook: FluidHook) -> None:
    ok, message = hook.test_connection()
    assert ok, message
    assert "listed Fluid datasets in namespace 'argo'" in message


def test_async_twins_and_the_watch(hook: FluidHook, cluster: InstrumentedCluster) -> None:
    arranger = FluidArranger(cluster)

    async def scenario() -> list[tuple[str, str]]:
        created = await hook.acreate_object("DataLoad", dataload("async-one", suite="async"))
        got = await hook.aget_object("DataLoad", "async-one")
        assert got["metadata"]["uid"] == created["metadata"]["uid"]
        listed = await hook.alist_objects("DataLoad", label_selector="suite=async")
        seen: list[tuple[str, str]] = []

        stream = hook.awatch_objects("DataLoad", resource_version=listed.resource_version, label_selector="suite=async",
                                     timeout_seconds=5)
        watcher = asyncio.ensure_future(phases_until_deleted(stream, seen))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(arranger.set_status, "DataLoad", "async-one", {"phase": "Executing"})
        await hook.adelete_object("DataLoad", "async-one", uid=created["metadata"]["uid"])
        await asyncio.wait_for(watcher, 10)
        with pytest.raises(NotFoundError):
            await hook.aget_object("DataLoad", "async-one")
        await hook.aclose()
        return seen

    assert asyncio.run(scenario()) == [("MODIFIED", "Executing"), ("DELETED", "Executing")]
    watch = [r for r in cluster.watches() if r.path.endswith("/dataloads")]
    assert watch and watch[-1].path == "/apis/data.fluid.io/v1alpha1/namespaces/argo/dataloads"


def test_object_source_is_the_hubs_view_of_one_kind(hook: FluidHook) -> None:
    source = FluidObjectSource(hook, "DataLoad")

    async def scenario() -> tuple[str, int]:
        await hook.acreate_object("DataLoad", dataload("source-one", suite="source"))
        got = await source.aget_workflow("source-one", "argo")
        listed = await source.alist_workflows("argo", label_selector="suite=source")
        await hook.adelete_object("DataLoad", "source-one")
        await source.aclose()
        return got["kind"], len(listed)

    assert asyncio.run(scenario()) == ("DataLoad", 1)
    with pytest.raises(WorkflowSpecError, match="not a Fluid kind"):
        FluidObjectSource(hook, "Workflow")

