"""The preflight's decisions, one check at a time, over pass / warn / fail / unknown inputs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from airflow_argo_eci.preflight_checks import (
    Access,
    ArgoVersion,
    Check,
    Report,
    Unreadable,
    argo_version,
    check_access,
    check_argo_crds,
    check_argo_version,
    check_artifact_repository,
    check_component_resources,
    check_executor,
    check_optional_crds,
    check_vswitches,
    configured_executors,
    image_tag,
    parse_quantity,
    parse_version,
)

FORBIDDEN = Unreadable("deployment argo/workflow-controller", "403 Forbidden: no", 403)
MISSING = Unreadable("deployment argo/workflow-controller", "404 NotFound: gone", 404)
OFFLINE = Unreadable("deployment argo/workflow-controller", "TransientError: connection refused", None)


def deployment(image: str = "quay.io/argoproj/workflow-controller:v3.6.0", **resources: Any) -> dict[str, Any]:
    container = {"name": "workflow-controller", "image": image, "resources": resources}
    return {"spec": {"template": {"spec": {"containers": [container]}}}}


def config_map(data: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"annotations": annotations or {}}, "data": data or {}}


V36 = ArgoVersion((3, 6, 0), "workflow-controller image x:v3.6.0")
V33 = ArgoVersion((3, 3, 9), "workflow-controller image x:v3.3.9")
V32 = ArgoVersion((3, 2, 0), "workflow-controller image x:v3.2.0")
NO_VERSION = ArgoVersion(None, "deployment argo/workflow-controller: 403 Forbidden")


# ------------------------------------------------------------------ quantities, versions, images


@pytest.mark.parametrize(("text", "value"), [
    ("2", Decimal(2)), ("2000m", Decimal(2)), ("500m", Decimal("0.5")), ("1.5", Decimal("1.5")),
    ("4Gi", Decimal(4 * 2 ** 30)), ("4096Mi", Decimal(4 * 2 ** 30)), ("4G", Decimal(4 * 10 ** 9)),
    ("4194304Ki", Decimal(4 * 2 ** 30)), ("1e3", Decimal(1000)), ("2k", Decimal(2000)), (2, Decimal(2)),
])
def test_parse_quantity(text: Any, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "two", "4GB", "4 Gi", "Gi", True])
def test_parse_quantity_rejects_malformed(text: Any) -> None:
    with pytest.raises(ValueError, match="not a quantity"):
        parse_quantity(text)


def test_versions_and_image_tags() -> None:
    assert parse_version("v3.4.8-eb4e3ab4-aliyun") == (3, 4, 8)
    assert parse_version("3.5") == (3, 5, 0)
    assert parse_version("latest") is None
    assert image_tag("registry.cn-hangzhou.aliyuncs.com/acs/argoexec:v3.3-0d060b7") == "v3.3-0d060b7"
    assert image_tag("localhost:5000/argo/workflow-controller") == ""
    assert image_tag("quay.io/argoproj/workflow-controller@sha256:abc") == ""
    assert image_tag("quay.io/argoproj/workflow-controller:v3.6.0@sha256:abc") == "v3.6.0"


def test_argo_version_sources_in_order() -> None:
    server = deployment("quay.io/argoproj/argocli:v3.5.1")
    assert argo_version(deployment(), server).version == (3, 6, 0)
    # the controller's tag says nothing: the server's image
    found = argo_version(deployment("quay.io/argoproj/workflow-controller:latest"), server)
    assert found.version == (3, 5, 1) and "argo-server image" in found.evidence
    # neither readable: the Argo Server's /api/v1/version
    assert argo_version(FORBIDDEN, MISSING, {"version": "v3.4.2"}).version == (3, 4, 2)
    unknown = argo_version(FORBIDDEN, MISSING, Unreadable("Argo Server /api/v1/version", "401 Unauthorized", 401))
    assert unknown.version is None and "403 Forbidden" in unknown.evidence and "401" in unknown.evidence


# ------------------------------------------------------------------ Argo


def discovery(*plurals: str) -> dict[str, Any]:
    return {"resources": [{"name": p} for p in plurals] + [{"name": "workflows/status"}]}


ALL_ARGO = ("workflows", "workflowtemplates", "cronworkflows", "clusterworkflowtemplates")


def test_argo_crds() -> None:
    assert check_argo_crds(discovery(*ALL_ARGO)).status == "pass"
    partial = check_argo_crds(discovery("workflows", "workflowtemplates"))
    assert partial.status == "fail" and "cronworkflows, clusterworkflowtemplates" in partial.evidence
    absent = check_argo_crds(Unreadable("discovery", "404 NotFound", 404))
    assert absent.status == "fail" and "not served" in absent.evidence and "install Argo" in absent.fix
    assert check_argo_crds(Unreadable("discovery", "403 Forbidden", 403)).status == "unknown"


def test_argo_crds_from_crd_objects_when_discovery_is_unreadable() -> None:
    established = {"status": {"conditions": [{"type": "Established", "status": "True"}]}}
    pending = {"status": {"conditions": [{"type": "Established", "status": "False"}]}}
    forbidden = Unreadable("discovery", "403 Forbidden", 403)
    assert check_argo_crds(forbidden, dict.fromkeys(ALL_ARGO, established)).status == "pass"
    crds: dict[str, Any] = {**dict.fromkeys(ALL_ARGO, established), "cronworkflows": pending}
    failed = check_argo_crds(forbidden, crds)
    assert failed.status == "fail" and "cronworkflows: not Established" in failed.evidence
    crds["cronworkflows"] = Unreadable("crd", "403 Forbidden", 403)
    assert check_argo_crds(forbidden, crds).status == "unknown"


def test_argo_version() -> None:
    assert check_argo_version(V36).status == "pass"
    old = check_argo_version(V33)
    assert old.status == "fail" and "v3.3.9 < v3.4" in old.evidence and "upgrade" in old.fix
    unknown = check_argo_version(NO_VERSION)
    assert unknown.status == "unknown" and "403" in unknown.evidence


@pytest.mark.parametrize(("resources", "status", "evidence"), [
    ({"requests": {"cpu": "2", "memory": "4Gi"}}, "pass", "requests cpu=2 memory=4.00 GiB"),
    ({"limits": {"cpu": "2000m", "memory": "4096Mi"}}, "pass", "limits cpu=2 memory=4.00 GiB"),
    ({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}}, "pass", "limits cpu=4"),
    ({"requests": {"cpu": "1", "memory": "4Gi"}}, "warn", "cpu 1 < 2"),
    ({"requests": {"cpu": "2", "memory": "4G"}}, "warn", "memory 3.73 GiB < 4.00 GiB"),
    ({}, "warn", "requests cpu unset memory unset"),
])
def test_component_resources(resources: dict[str, Any], status: str, evidence: str) -> None:
    check = check_component_resources("argo.resources.controller", "workflow-controller",
                                      deployment(**resources), "argo")
    assert check.status == status and evidence in check.evidence
    assert bool(check.fix) == (status != "pass")


def test_component_resources_sum_the_pods_containers_and_report_unreadable() -> None:
    two = {"spec": {"template": {"spec": {"containers": [
        {"name": "a", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}},
        {"name": "b", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}]}}}}
    assert check_component_resources("argo.resources.server", "argo-server", two, "argo").status == "pass"
    hidden = check_component_resources("argo.resources.controller", "workflow-controller", MISSING, "argo")
    assert hidden.status == "unknown" and "404" in hidden.evidence and "ACK One" in hidden.fix
    assert check_component_resources("x", "y", FORBIDDEN, "argo").status == "unknown"
    bad = check_component_resources("x", "y", deployment(requests={"cpu": "lots"}), "argo")
    assert bad.status == "unknown" and "not a quantity" in bad.evidence


def test_executor() -> None:
    plain = config_map()
    docker = config_map({"containerRuntimeExecutor": "docker"})
    nested = config_map({"config": "containerRuntimeExecutor: pns\n"})
    listed = config_map({"containerRuntimeExecutors": "- name: k8sapi\n  selector: {}\n"})
    assert configured_executors(nested) == ["pns"] and configured_executors(listed) == ["k8sapi"]
    assert check_executor(V36, plain, "argo").status == "pass"
    assert check_executor(V36, FORBIDDEN, "argo").status == "pass"  # v3.4+ implies emissary
    ignored = check_executor(V36, docker, "argo")
    assert ignored.status == "warn" and "ignored" in ignored.evidence and "remove" in ignored.fix
    assert check_executor(V33, docker, "argo").status == "fail"
    assert check_executor(V33, nested, "argo").status == "fail"
    assert check_executor(V33, plain, "argo").status == "pass"  # emissary is v3.3's default
    assert check_executor(V33, config_map({"containerRuntimeExecutor": "emissary"}), "argo").status == "pass"
    assert check_executor(V32, plain, "argo").status == "fail"  # docker was the default before v3.3
    assert check_executor(V33, MISSING, "argo").status == "pass"
    assert check_executor(V33, FORBIDDEN, "argo").status == "unknown"
    assert check_executor(NO_VERSION, docker, "argo").status == "unknown"
    assert check_executor(NO_VERSION, plain, "argo").status == "unknown"
    assert check_executor(NO_VERSION, config_map({"containerRuntimeExecutor": "emissary"}), "argo").status == "pass"


# ------------------------------------------------------------------ the artifact repository

OSS = "oss:\n  endpoint: https://oss-cn-hangzhou-internal.aliyuncs.com\n  bucket: argo\n"
MINIO = "s3:\n  endpoint: minio:9000\n  bucket: my-bucket\n  insecure: true\n"
NS_MISSING = Unreadable("configmap argo/artifact-repositories", "404 NotFound", 404)
ANNOTATION = "workflows.argoproj.io/default-artifact-repository"


def repo_check(ns_repos: Any, controller_cm: Any, present: bool | None = True) -> Check:
    return check_artifact_repository(ns_repos, controller_cm, "argo", "argo", present)


def test_artifact_repository_from_the_controller() -> None:
    passed = repo_check(NS_MISSING, config_map({"artifactRepository": OSS}))
    assert passed.status == "pass" and "oss (endpoint https://oss-cn-hangzhou-internal.aliyuncs.com" in passed.evidence
    minio = repo_check(NS_MISSING, config_map({"artifactRepository": MINIO}))
    assert minio.status == "warn" and "MinIO" in minio.evidence and "OSS" in minio.fix
    gcs = repo_check(NS_MISSING, config_map({"artifactRepository": "gcs:\n  bucket: b\n"}))
    assert gcs.status == "warn" and "not OSS" in gcs.evidence
    s3_oss = repo_check(NS_MISSING,
                        config_map({"artifactRepository": "s3:\n  endpoint: oss-cn-beijing.aliyuncs.com\n"}))
    assert s3_oss.status == "pass"
    whole = repo_check(NS_MISSING, config_map({"config": "artifactRepository:\n  oss:\n    bucket: b\n"}))
    assert whole.status == "pass"
    assert repo_check(NS_MISSING, config_map()).status == "fail"
    assert repo_check(NS_MISSING, config_map({"artifactRepository": "archiveLogs: true\n"})).status == "fail"


def test_artifact_repository_of_the_namespace_takes_precedence() -> None:
    ns = config_map({"default-v1": MINIO}, {ANNOTATION: "default-v1"})
    assert repo_check(ns, config_map({"artifactRepository": OSS})).status == "warn"
    # no annotation (or a key that is not there): Argo falls back to the controller's
    unannotated = repo_check(config_map({"default-v1": MINIO}), config_map({"artifactRepository": OSS}))
    assert unannotated.status == "pass" and "no default key" in unannotated.evidence
    assert repo_check(ns, FORBIDDEN).status == "warn"


def test_artifact_repository_unknown_and_missing() -> None:
    cm_missing = Unreadable("configmap argo/workflow-controller-configmap", "404 NotFound", 404)
    assert repo_check(NS_MISSING, cm_missing, present=True).status == "fail"
    # a managed control plane: the controller (and its ConfigMap) are not in the cluster
    hidden = repo_check(NS_MISSING, cm_missing, present=False)
    assert hidden.status == "unknown" and "ACK One" in hidden.fix
    assert repo_check(NS_MISSING, FORBIDDEN).status == "unknown"
    ns_forbidden = repo_check(Unreadable("configmap argo/artifact-repositories", "403 Forbidden", 403),
                              config_map({"artifactRepository": OSS}))
    assert ns_forbidden.status == "unknown" and "precedence" in ns_forbidden.evidence


# ------------------------------------------------------------------ ECI


def test_vswitches() -> None:
    two = check_vswitches(config_map({"vSwitchIds": "vsw-a, vsw-b,vsw-a"}))
    assert two.status == "pass" and "vsw-a, vsw-b" in two.evidence and "does not show a vSwitch's zone" in two.evidence
    one = check_vswitches(config_map({"vSwitchIds": "vsw-a"}))
    assert one.status == "warn" and "single zone" in one.evidence and "another zone" in one.fix
    assert check_vswitches(config_map({"vpcId": "vpc-1"})).status == "fail"
    assert check_vswitches(Unreadable("configmap kube-system/eci-profile", "404 NotFound", 404)).status == "fail"
    assert check_vswitches(Unreadable("configmap kube-system/eci-profile", "403 Forbidden", 403)).status == "unknown"


def test_optional_crds() -> None:
    def run(read: Any, required: bool) -> Check:
        return check_optional_crds("crds.imagecache", "ECI ImageCache", "eci.alibabacloud.com/v1", ("imagecaches",),
                                   read, required, "install it")

    served, absent = discovery("imagecaches"), Unreadable("discovery", "404 NotFound", 404)
    assert run(served, True).status == "pass"
    failed = run(absent, True)
    assert failed.status == "fail" and failed.fix == "install it"
    assert run(Unreadable("discovery", "403 Forbidden", 403), True).status == "unknown"
    for read, state in ((served, "served"), (absent, "not served"),
                        (Unreadable("discovery", "403 Forbidden", 403), "unreadable")):
        note = run(read, False)
        assert (note.status, note.severity) == ("pass", "info")
        assert f"not required (ECI ImageCache: {state}" in note.evidence


# ------------------------------------------------------------------ RBAC


def test_access() -> None:
    get, delete = Access("get", "workflows", "argoproj.io"), Access("delete", "workflows", "argoproj.io")
    log = Access("get", "pods", subresource="log")
    assert log.describe() == "get pods/log" and delete.describe() == "delete workflows.argoproj.io"
    yes, no = {"status": {"allowed": True}}, {"status": {"allowed": False, "reason": "no RBAC rule"}}
    assert check_access("rbac.workflows", "t", "argo", [(get, yes), (delete, yes)]).status == "pass"
    denied = check_access("rbac.workflows", "t", "argo", [(get, yes), (delete, no)])
    assert denied.status == "fail" and "denied: delete workflows.argoproj.io (no RBAC rule)" in denied.evidence
    assert "get workflows.argoproj.io, delete workflows.argoproj.io" in denied.fix
    unknown = check_access("rbac.pods", "t", "argo", [(log, Unreadable("review", "403 Forbidden", 403))])
    assert unknown.status == "unknown" and "not answered: get pods/log" in unknown.evidence
    # a denial outweighs what could not be asked
    assert check_access("rbac.pods", "t", "argo", [(get, no), (log, Unreadable("r", "x"))]).status == "fail"


# ------------------------------------------------------------------ the report


def test_report_table_json_and_counts() -> None:
    checks = (Check("a.one", "first", "pass", "critical", "read this"),
              Check("b.two", "second", "fail", "recommended", "read that", "do this"),
              Check("c.three", "third", "unknown", "critical", "403", "grant it"))
    report = Report("the cluster", "argo", checks)
    assert report.counts() == {"pass": 1, "warn": 0, "fail": 1, "unknown": 1}
    assert [c.id for c in report.matching(("fail", "unknown"))] == ["b.two", "c.three"]
    data = report.to_dict()
    assert data["summary"]["fail"] == 1 and data["checks"][1] == {
        "id": "b.two", "title": "second", "status": "fail", "severity": "recommended", "evidence": "read that",
        "fix": "do this"}
    table = report.table()
    assert "FAIL     b.two" in table and "fix:      do this" in table and "1 pass, 0 warn, 1 fail, 1 unknown" in table
    assert table.count("fix:") == 2  # not for the pass
