"""The preflight end to end: a fake reader (what is read, unreachable clusters, the argo_server
transport) and the session's local cluster, healthy and broken in each check's way (always restored)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_argo_eci.errors import ArgoEciError, NotFoundError, TransientError, UnauthorizedError
from airflow_argo_eci.local.server import LocalCluster
from airflow_argo_eci.preflight import PreflightOptions, parse_require, run_preflight
from tests.preflight_edits import (
    CHECK_IDS,
    CONTROLLER,
    CONTROLLER_CM,
    ECI_PROFILE,
    IMAGECACHE_CRD,
    MINIO,
    NAMESPACE_REPOS,
    READ_ALL,
    SERVER,
    edited,
    preflight,
    removed,
)

# ------------------------------------------------------------------ a fake reader


class FakeReads:
    """Answers from ``objects`` (a key -> object or exception); records every read."""

    def __init__(self, objects: dict[Any, Any], transport: str = "kubernetes") -> None:
        self.objects = objects
        self.calls: list[Any] = []
        self.transport_name = transport

    def _answer(self, key: Any) -> dict[str, Any]:
        self.calls.append(key)
        value = self.objects.get(key, self.objects.get("*", NotFoundError("not found", status=404)))
        if isinstance(value, Exception):
            raise value
        return dict(value)

    def where(self) -> str:
        return "a fake cluster"

    def discovery(self, group: str, version: str) -> dict[str, Any]:
        return self._answer(("discovery", group))

    def get_crd(self, name: str) -> dict[str, Any]:
        return self._answer(("crd", name))

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return self._answer(("deployment", namespace, name))

    def get_config_map(self, namespace: str, name: str) -> dict[str, Any]:
        return self._answer(("configmap", namespace, name))

    def access_review(self, namespace: str, verb: str, resource: str, group: str = "",
                      subresource: str = "") -> dict[str, Any]:
        return self._answer(("review", namespace, verb, resource, subresource))

    def server_version(self) -> dict[str, Any]:
        return self._answer("version")


def test_unreachable_cluster_is_read_once_and_every_check_is_unknown() -> None:
    fake = FakeReads({"*": TransientError("connection refused", status=None)})
    report = run_preflight(fake, PreflightOptions("argo"))
    assert [c.id for c in report.checks] == list(CHECK_IDS)
    for check in report.checks:
        # the optional CRDs are not required: reported as info, whatever could be read
        expected = ("pass", "info") if check.id.startswith("crds.") else ("unknown", check.severity)
        assert (check.status, check.severity) == expected, report.table()
    assert len(fake.calls) == 1 and "connection refused" in report.error
    assert "create workflows.argoproj.io, get workflows.argoproj.io" in report.by_id()["rbac.workflows"].evidence
    assert "connection refused" in report.by_id()["argo.version"].evidence


def test_argo_server_transport_reads_only_the_version() -> None:
    not_kube = ArgoEciError("the argo_server transport reaches only the Argo Server")
    fake = FakeReads({"*": not_kube, "version": {"version": "v3.5.2"}}, transport="argo_server")
    report = run_preflight(fake, PreflightOptions("argo"))
    checks = report.by_id()
    assert checks["argo.version"].status == "pass" and "v3.5.2" in checks["argo.version"].evidence
    assert checks["argo.executor"].status == "pass"  # v3.5 has only emissary
    assert report.error == ""
    for check_id in ("argo.crds", "argo.resources.controller", "artifacts.repository", "eci.vswitches",
                     "rbac.workflows", "rbac.pods"):
        assert checks[check_id].status == "unknown", checks[check_id]
        assert "Argo Server" in checks[check_id].evidence


def test_forbidden_reads_are_unknown_never_pass() -> None:
    report = run_preflight(FakeReads({"*": UnauthorizedError("forbidden", status=403, reason="Forbidden")}),
                           PreflightOptions("argo", require=("imagecache", "fluid")))
    assert report.error == ""
    assert {c.status for c in report.checks} == {"unknown"}, report.table()
    assert "403 Forbidden" in report.by_id()["argo.resources.server"].evidence


def test_options() -> None:
    assert parse_require("ImageCache, fluid,,imagecache") == ("imagecache", "fluid")
    assert parse_require(["fluid"]) == ("fluid",) and parse_require(None) == ()
    with pytest.raises(ArgoEciError, match="cannot require gpu"):
        PreflightOptions("argo", require=("gpu",))


# ------------------------------------------------------------------ the local cluster


def test_healthy_local_cluster_passes_every_check(local_cluster: LocalCluster) -> None:
    report = preflight(local_cluster, require=("imagecache", "fluid"))
    checks = report.by_id()
    assert list(checks) == list(CHECK_IDS)
    for check_id in CHECK_IDS:
        assert checks[check_id].status == "pass", report.table()
        assert checks[check_id].severity == "critical" or check_id in (
            "argo.resources.controller", "argo.resources.server", "eci.vswitches")
    assert "v3.6.0" in checks["argo.version"].evidence
    assert "cpu=2 memory=4.00 GiB" in checks["argo.resources.controller"].evidence
    assert "oss (endpoint" in checks["artifacts.repository"].evidence
    assert "vsw-local0zonea, vsw-local0zoneb" in checks["eci.vswitches"].evidence
    assert "delete workflows.argoproj.io" in checks["rbac.workflows"].evidence
    assert "get pods/log" in checks["rbac.pods"].evidence


def _with_resources(cpu: str, memory: str) -> Any:
    def mutate(obj: dict[str, Any]) -> None:
        for container in obj["spec"]["template"]["spec"]["containers"]:
            container["resources"] = {"requests": {"cpu": cpu, "memory": memory},
                                      "limits": {"cpu": cpu, "memory": memory}}
    return mutate


def test_small_controller_and_server_warn(local_cluster: LocalCluster, kube_api_client: Any) -> None:
    with edited(kube_api_client, CONTROLLER, _with_resources("1", "4Gi")), \
            edited(kube_api_client, SERVER, _with_resources("2000m", "2048Mi")):
        checks = preflight(local_cluster).by_id()
    controller, server = checks["argo.resources.controller"], checks["argo.resources.server"]
    assert controller.status == "warn" and "cpu 1 < 2" in controller.evidence
    assert server.status == "warn" and "memory 2.00 GiB < 4.00 GiB" in server.evidence
    assert "memory: 4Gi" in server.fix
    assert preflight(local_cluster).by_id()["argo.resources.controller"].status == "pass"


def test_old_argo_with_a_docker_executor_fails(local_cluster: LocalCluster, kube_api_client: Any) -> None:
    def old_image(obj: dict[str, Any]) -> None:
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = "quay.io/argoproj/workflow-controller:v3.3.9"

    def docker(obj: dict[str, Any]) -> None:
        obj.setdefault("data", {})["containerRuntimeExecutor"] = "docker"

    with edited(kube_api_client, CONTROLLER_CM, docker):
        ignored = preflight(local_cluster).by_id()["argo.executor"]
        assert ignored.status == "warn" and "ignored" in ignored.evidence
        with edited(kube_api_client, CONTROLLER, old_image):
            checks = preflight(local_cluster).by_id()
    assert checks["argo.version"].status == "fail" and "v3.3.9 < v3.4" in checks["argo.version"].evidence
    executor = checks["argo.executor"]
    assert executor.status == "fail" and "docker" in executor.evidence and "emissary" in executor.fix
    healthy = preflight(local_cluster).by_id()
    assert healthy["argo.version"].status == healthy["argo.executor"].status == "pass"


def test_minio_repository_warns_and_none_fails(local_cluster: LocalCluster, kube_api_client: Any) -> None:
    def minio(obj: dict[str, Any]) -> None:
        annotations = obj["metadata"].get("annotations") or {}
        key = annotations["workflows.argoproj.io/default-artifact-repository"]
        obj["data"][key] = MINIO

    with edited(kube_api_client, NAMESPACE_REPOS, minio):
        warned = preflight(local_cluster).by_id()["artifacts.repository"]
    assert warned.status == "warn" and "MinIO" in warned.evidence and "minio:9000" in warned.evidence

    def no_repository(obj: dict[str, Any]) -> None:
        obj.setdefault("data", {}).pop("artifactRepository", None)

    with removed(kube_api_client, NAMESPACE_REPOS), edited(kube_api_client, CONTROLLER_CM, no_repository):
        failed = preflight(local_cluster).by_id()["artifacts.repository"]
    assert failed.status == "fail" and "not set" in failed.evidence and "OSS" in failed.fix
    assert preflight(local_cluster).by_id()["artifacts.repository"].status == "pass"


def test_one_vswitch_warns_and_none_fails(local_cluster: LocalCluster, kube_api_client: Any) -> None:
    def vswitches(value: str) -> Any:
        def mutate(obj: dict[str, Any]) -> None:
            obj["data"]["vSwitchIds"] = value
        return mutate

    with edited(kube_api_client, ECI_PROFILE, vswitches("vsw-local0zonea")):
        one = preflight(local_cluster).by_id()["eci.vswitches"]
    assert one.status == "warn" and "single zone" in one.evidence
    assert "each vSwitch is counted as one zone" in one.evidence
    with edited(kube_api_client, ECI_PROFILE, vswitches("")):
        assert preflight(local_cluster).by_id()["eci.vswitches"].status == "fail"
    assert preflight(local_cluster).by_id()["eci.vswitches"].status == "pass"


def test_missing_imagecache_crd_fails_only_when_required(local_cluster: LocalCluster, kube_api_client: Any) -> None:
    with removed(kube_api_client, IMAGECACHE_CRD):
        required = preflight(local_cluster, require=("imagecache",)).by_id()["crds.imagecache"]
        optional = preflight(local_cluster).by_id()["crds.imagecache"]
    assert required.status == "fail" and "imagecaches" in required.evidence and "ImageCache" in required.fix
    assert (optional.status, optional.severity) == ("pass", "info")
    assert "not required (ECI ImageCache: not served" in optional.evidence
    assert preflight(local_cluster, require=("imagecache",)).by_id()["crds.imagecache"].status == "pass"


def test_token_without_workflow_delete_fails_rbac(local_cluster: LocalCluster) -> None:
    token = local_cluster.add_token("preflight-no-delete", [
        {"apiGroups": ["argoproj.io"], "resources": ["workflows"],
         "verbs": ["create", "get", "list", "watch", "patch"]},
        {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]},
    ])
    checks = preflight(local_cluster, token).by_id()
    assert checks["rbac.workflows"].status == "fail", checks["rbac.workflows"]
    assert "denied: delete workflows.argoproj.io" in checks["rbac.workflows"].evidence
    assert checks["rbac.pods"].status == "pass"


def test_token_that_cannot_read_deployments_gets_unknown(local_cluster: LocalCluster) -> None:
    rules = [{**READ_ALL[0], "apiGroups": ["", "argoproj.io", "apiextensions.k8s.io", "authorization.k8s.io"]}]
    checks = preflight(local_cluster, local_cluster.add_token("preflight-no-deployments", rules)).by_id()
    for check_id in ("argo.version", "argo.resources.controller", "argo.resources.server"):
        assert checks[check_id].status == "unknown", checks[check_id]
        assert "403" in checks[check_id].evidence
    assert checks["argo.executor"].status == "unknown"  # the version decides, and it is unknown
    assert checks["eci.vswitches"].status == "pass"
