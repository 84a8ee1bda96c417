"""Helpers of the preflight tests: raw Kubernetes calls to the session's local cluster, edits that are
always undone (the session cluster is shared), and readers / kubeconfigs for restricted tokens."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from airflow_argo_eci.hooks.argo_connection import parse_connection
from airflow_argo_eci.hooks.cluster import ClusterReader
from airflow_argo_eci.local.server import LocalCluster
from airflow_argo_eci.preflight import PreflightOptions, run_preflight
from airflow_argo_eci.preflight_checks import Report

CONTROLLER = "/apis/apps/v1/namespaces/argo/deployments/workflow-controller"
SERVER = "/apis/apps/v1/namespaces/argo/deployments/argo-server"
CONTROLLER_CM = "/api/v1/namespaces/argo/configmaps/workflow-controller-configmap"
NAMESPACE_REPOS = "/api/v1/namespaces/argo/configmaps/artifact-repositories"
ECI_PROFILE = "/api/v1/namespaces/kube-system/configmaps/eci-profile"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
IMAGECACHE_CRD = f"{CRDS}/imagecaches.eci.alibabacloud.com"
#: every check of a preflight, in the report's order
CHECK_IDS = ("argo.crds", "argo.version", "argo.resources.controller", "argo.resources.server", "argo.executor",
             "artifacts.repository", "eci.vswitches", "crds.imagecache", "crds.fluid", "rbac.workflows", "rbac.pods")
MINIO = "s3:\n  endpoint: minio:9000\n  bucket: my-bucket\n  insecure: true\n"


def api(client: Any, method: str, path: str, body: Any = None) -> Any:
    """One JSON request with the session's kubernetes ``ApiClient``."""
    return client.call_api(path, method, header_params={"Accept": "application/json",
                                                        "Content-Type": "application/json"},
                           body=body, response_types_map={200: "object", 201: "object", 202: "object"},
                           auth_settings=["BearerToken"], _return_http_data_only=True)


@contextmanager
def edited(client: Any, path: str, mutate: Callable[[dict[str, Any]], None]) -> Iterator[dict[str, Any]]:
    """PUT the object at ``path`` as ``mutate`` changes it; put the original back afterwards."""
    original = api(client, "GET", path)
    changed = copy.deepcopy(original)
    mutate(changed)
    try:
        yield api(client, "PUT", path, changed)
    finally:
        current = api(client, "GET", path)
        restored = copy.deepcopy(original)
        restored["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        api(client, "PUT", path, restored)


@contextmanager
def removed(client: Any, path: str) -> Iterator[dict[str, Any]]:
    """DELETE the object at ``path``; create it again afterwards."""
    original = api(client, "GET", path)
    api(client, "DELETE", path)
    try:
        yield original
    finally:
        again = copy.deepcopy(original)
        for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
            again["metadata"].pop(key, None)
        again.pop("status", None)
        api(client, "POST", path.rsplit("/", 1)[0], again)


def reader_for(cluster: LocalCluster, token: str | None = None) -> ClusterReader:
    """A reader of ``cluster`` (namespace ``argo``), with ``token`` instead of the admin's when given."""
    return ClusterReader(parse_connection("preflight-test", {"kube_config": kubeconfig_doc(cluster, token),
                                                             "namespace": "argo"}))


def kubeconfig_doc(cluster: LocalCluster, token: str | None = None) -> dict[str, Any]:
    """The cluster's kubeconfig, with every user's token replaced by ``token`` when given."""
    doc: dict[str, Any] = yaml.safe_load(Path(cluster.kubeconfig_path).read_text())
    if token is not None:
        for user in doc.get("users") or []:
            user["user"] = {"token": token}
    return doc


def write_kubeconfig(cluster: LocalCluster, path: Path, token: str | None = None) -> Path:
    """:func:`kubeconfig_doc` written to ``path`` (mode 0600)."""
    path.write_text(yaml.safe_dump(kubeconfig_doc(cluster, token)))
    path.chmod(0o600)
    return path


def preflight(cluster: LocalCluster, token: str | None = None, require: tuple[str, ...] = ()) -> Report:
    """The preflight of ``cluster`` for namespace ``argo``."""
    reader = reader_for(cluster, token)
    try:
        return run_preflight(reader, PreflightOptions("argo", require=require))
    finally:
        reader.close()


#: RBAC rules allowing everything the preflight reads (discovery and reviews need no rule)
READ_ALL = [
    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
]
