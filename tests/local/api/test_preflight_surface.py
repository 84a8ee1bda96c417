"""What the local cluster serves for the preflight: CustomResourceDefinitions that follow deletion,
the Argo installation's Deployments and ConfigMaps, and the controller's ConfigMap as the truth of
the default artifact repository."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import oss2
import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from airflow_argo_eci import conventions
from airflow_argo_eci import eci_conventions as eci
from airflow_argo_eci import fluid_conventions as fluid
from airflow_argo_eci.local.api import resources
from airflow_argo_eci.local.api.crds import crd_name
from airflow_argo_eci.local.api.resources import CONFIGMAPS, NAMESPACES, SECRETS
from airflow_argo_eci.local.server import ARTIFACT_BUCKET, OSS_CREDENTIALS_SECRET, LocalCluster
from tests.local.argo import clusterwf

ARGO_CRDS = {f"{plural}.{conventions.GROUP}" for plural in (
    conventions.WORKFLOWS, conventions.WORKFLOW_TEMPLATES, conventions.CRON_WORKFLOWS,
    conventions.CLUSTER_WORKFLOW_TEMPLATES)}


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in obj["status"]["conditions"] if c["type"] == kind]
    assert len(found) == 1, obj["status"]["conditions"]
    return found[0]


def _call(api: client.ApiClient, path: str, method: str = "GET", body: Any = None) -> Any:
    resp = api.call_api(path, method, body=body, header_params={"Content-Type": "application/json"},
                        auth_settings=["BearerToken"], _preload_content=False)
    return json.loads(resp.data)


def _get(api: client.ApiClient, path: str) -> Any:
    return _call(api, path)


def _crds(api: client.ApiClient) -> dict[str, dict[str, Any]]:
    listed = _get(api, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
    assert listed["kind"] == "CustomResourceDefinitionList"
    return {item["metadata"]["name"]: item for item in listed["items"]}


def test_crds_of_every_custom_kind_are_established(kube_api_client: client.ApiClient) -> None:
    crds = _crds(kube_api_client)
    expected = {crd_name(rt) for rt in resources.REGISTRY.values() if resources.is_custom(rt)}
    assert ARGO_CRDS <= expected
    assert f"{fluid.DATASETS}.{fluid.GROUP}" in expected
    assert set(crds) == expected, "exactly one CRD per custom kind, none for built-in ones"
    workflows = crds[f"workflows.{conventions.GROUP}"]
    assert workflows["spec"]["group"] == conventions.GROUP
    assert workflows["spec"]["scope"] == "Namespaced"
    assert workflows["spec"]["names"]["kind"] == "Workflow"
    assert workflows["spec"]["names"]["plural"] == "workflows"
    assert "wf" in workflows["spec"]["names"]["shortNames"]
    assert [(v["name"], v["served"], v["storage"]) for v in workflows["spec"]["versions"]] == [
        (conventions.VERSION, True, True)]
    cwft = crds[f"clusterworkflowtemplates.{conventions.GROUP}"]
    assert cwft["spec"]["scope"] == "Cluster"
    image_caches = crds[eci.IMAGE_CACHE_CRD]
    assert (image_caches["spec"]["group"], image_caches["spec"]["scope"]) == (eci.GROUP, "Cluster")
    assert image_caches["spec"]["names"]["kind"] == eci.IMAGE_CACHE_KIND
    for crd in crds.values():
        assert _condition(crd, "Established")["status"] == "True"
        assert _condition(crd, "NamesAccepted")["status"] == "True"
        assert crd["status"]["acceptedNames"]["kind"] == crd["spec"]["names"]["kind"]
    # the typed client reads them too (kubectl get crd)
    ext = client.ApiextensionsV1Api(kube_api_client)
    one = ext.read_custom_resource_definition(f"workflows.{conventions.GROUP}")
    assert one.spec.names.kind == "Workflow"


def _discovered(api: client.ApiClient, group: str, version: str) -> set[str] | None:
    try:
        listed = _get(api, f"/apis/{group}/{version}")
    except ApiException as exc:
        assert exc.status == 404
        return None
    return {r["name"] for r in listed["resources"]}


def test_deleting_a_crd_stops_serving_its_kind_until_it_is_created_again(
        local_cluster: LocalCluster, kube_api_client: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(kube_api_client)
    custom = client.CustomObjectsApi(kube_api_client)
    name = f"cronworkflows.{conventions.GROUP}"
    before = _get(kube_api_client, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    assert "cronworkflows" in (_discovered(kube_api_client, conventions.GROUP, conventions.VERSION) or set())
    custom.list_namespaced_custom_object(conventions.GROUP, conventions.VERSION, "argo", "cronworkflows")
    try:
        ext.delete_custom_resource_definition(name)
        served = _discovered(kube_api_client, conventions.GROUP, conventions.VERSION)
        assert served is not None and "cronworkflows" not in served and "workflows" in served
        groups = {g["name"] for g in _get(kube_api_client, "/apis")["groups"]}
        assert conventions.GROUP in groups  # the group's other kinds are still served
        with pytest.raises(ApiException) as gone:
            custom.list_namespaced_custom_object(conventions.GROUP, conventions.VERSION, "argo", "cronworkflows")
        assert gone.value.status == 404
        assert "could not find the requested resource" in gone.value.body
        custom.list_namespaced_custom_object(conventions.GROUP, conventions.VERSION, "argo", "workflows")
    finally:
        body = {k: v for k, v in before.items() if k != "status"}
        body["metadata"] = {"name": name}
        _call(kube_api_client, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "POST", body)
    assert "cronworkflows" in (_discovered(kube_api_client, conventions.GROUP, conventions.VERSION) or set())
    custom.list_namespaced_custom_object(conventions.GROUP, conventions.VERSION, "argo", "cronworkflows")
    again = ext.read_custom_resource_definition(name)
    assert {c.type: c.status for c in again.status.conditions} == {"NamesAccepted": "True", "Established": "True"}


def test_deleting_every_crd_of_a_group_removes_the_group_from_discovery(
        kube_api_client: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(kube_api_client)
    names = [crd_name(rt) for rt in resources.REGISTRY.values() if rt.group == fluid.GROUP]
    saved = [_get(kube_api_client, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{n}") for n in names]
    try:
        for name in names:
            ext.delete_custom_resource_definition(name)
        assert fluid.GROUP not in {g["name"] for g in _get(kube_api_client, "/apis")["groups"]}
        assert _discovered(kube_api_client, fluid.GROUP, fluid.VERSION) is None
    finally:
        for crd in saved:
            body = {k: v for k, v in crd.items() if k != "status"}
            body["metadata"] = {"name": crd["metadata"]["name"]}
            _call(kube_api_client, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "POST", body)
    assert fluid.GROUP in {g["name"] for g in _get(kube_api_client, "/apis")["groups"]}


def test_a_crd_for_a_kind_the_local_cluster_cannot_serve_is_invalid(kube_api_client: client.ApiClient) -> None:
    body = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                     "versions": [{"name": "v1", "served": True, "storage": True}]}}
    with pytest.raises(ApiException) as refused:
        _call(kube_api_client, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "POST", body)
    assert refused.value.status == 422
    assert "spec.group/spec.names.plural" in refused.value.body
    assert "widgets.example.com" in refused.value.body


def test_the_argo_installation_deployments(kube_api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(kube_api_client)
    expected = {eci.CONTROLLER_DEPLOYMENT: f"quay.io/argoproj/workflow-controller:{conventions.ARGO_VERSION}",
                eci.SERVER_DEPLOYMENT: f"quay.io/argoproj/argocli:{conventions.ARGO_VERSION}"}
    listed = {d.metadata.name: d for d in apps.list_namespaced_deployment(eci.ARGO_NAMESPACE).items}
    assert set(expected) <= set(listed)
    for name, image in expected.items():
        dep = apps.read_namespaced_deployment(name, eci.ARGO_NAMESPACE)
        assert dep.spec.replicas == 1
        [container] = dep.spec.template.spec.containers
        assert container.image == image
        assert container.resources.requests == {"cpu": "2", "memory": "4Gi"}
        assert container.resources.limits == {"cpu": "2", "memory": "4Gi"}
        assert dep.status.ready_replicas == 1 and dep.status.available_replicas == 1
        assert {c.type: c.status for c in dep.status.conditions}["Available"] == "True"
        assert "embedded in the local cluster process" in dep.metadata.annotations[
            "local.airflow-argo-eci.io/describes"]
    assert any(r["name"] == "deployments" for r in _get(kube_api_client, "/apis/apps/v1")["resources"])


def test_the_seeded_configmaps(local_cluster: LocalCluster, kube_api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api_client)
    cm = core.read_namespaced_config_map(eci.CONTROLLER_CONFIGMAP, eci.ARGO_NAMESPACE)
    assert "containerRuntimeExecutor" not in cm.data
    repo = yaml.safe_load(cm.data["artifactRepository"])
    assert local_cluster.oss is not None
    assert repo["oss"]["endpoint"] == local_cluster.oss.endpoint
    assert repo["oss"]["bucket"] == ARTIFACT_BUCKET
    for field in ("accessKeySecret", "secretKeySecret"):
        ref = repo["oss"][field]
        secret = core.read_namespaced_secret(ref["name"], eci.ARGO_NAMESPACE)
        assert ref["key"] in secret.data
    profile = core.read_namespaced_config_map(eci.ECI_PROFILE_CONFIGMAP, eci.ECI_PROFILE_NAMESPACE)
    vswitches = profile.data[eci.ECI_PROFILE_VSWITCHES].split(",")
    assert len(vswitches) == 2 and all(v.startswith("vsw-local") for v in vswitches)
    assert profile.data["vpcId"].startswith("vpc-local")
    assert profile.data["securityGroupId"].startswith("sg-local")


def test_seeding_keeps_what_a_previous_run_left(tmp_path_factory: pytest.TempPathFactory) -> None:
    state = tmp_path_factory.mktemp("seeded")
    with LocalCluster(state, run_controller=False) as first:
        assert first.store is not None
        first.store.update(CONFIGMAPS, eci.ECI_PROFILE_NAMESPACE, eci.ECI_PROFILE_CONFIGMAP,
                           lambda cm: {**cm, "data": {eci.ECI_PROFILE_VSWITCHES: "vsw-only-one"}})
        first.store.delete(resources.DEPLOYMENTS, eci.ARGO_NAMESPACE, eci.SERVER_DEPLOYMENT)
    with LocalCluster(state, run_controller=False) as second:
        assert second.store is not None
        kept = second.store.get(CONFIGMAPS, eci.ECI_PROFILE_NAMESPACE, eci.ECI_PROFILE_CONFIGMAP)
        assert kept["data"] == {eci.ECI_PROFILE_VSWITCHES: "vsw-only-one"}
        # a missing one is created again
        second.store.get(resources.DEPLOYMENTS, eci.ARGO_NAMESPACE, eci.SERVER_DEPLOYMENT)


# ------------------------------------------------------------------ the controller's default repository

_NAMESPACES = (f"preflight-default-repo-{i}" for i in itertools.count())
WORKFLOW = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{generateName: default-repo-, namespace: {namespace}}}
spec:
  entrypoint: make
  templates:
  - name: make
    container:
      image: alpine:3.23
      command: [sh, -c]
      args: ["echo hello > /tmp/out.txt"]
    outputs:
      artifacts:
      - {{name: out, path: /tmp/out.txt, archive: {{none: {{}}}}}}
"""


def _run(api_client: client.ApiClient, namespace: str) -> dict[str, Any]:
    """Run :data:`WORKFLOW` in ``namespace`` to its end."""
    return clusterwf.run(api_client, WORKFLOW.format(namespace=namespace), namespace=namespace)


@pytest.fixture
def repo_namespace(local_cluster: LocalCluster) -> Iterator[str]:
    """A namespace without an artifact-repositories ConfigMap (the controller's default applies),
    holding the Secret the default repository names; the controller ConfigMap restored after."""
    store = local_cluster.store
    assert store is not None
    namespace = next(_NAMESPACES)
    store.create(NAMESPACES, None, {"metadata": {"name": namespace}})
    secret = store.get(SECRETS, eci.ARGO_NAMESPACE, OSS_CREDENTIALS_SECRET)
    store.create(SECRETS, namespace, {"metadata": {"name": OSS_CREDENTIALS_SECRET, "namespace": namespace},
                                      "type": "Opaque", "data": secret["data"]})
    saved = store.get(CONFIGMAPS, eci.ARGO_NAMESPACE, eci.CONTROLLER_CONFIGMAP)["data"]
    try:
        yield namespace
    finally:
        store.update(CONFIGMAPS, eci.ARGO_NAMESPACE, eci.CONTROLLER_CONFIGMAP, lambda cm: {**cm, "data": saved})
        store.delete(NAMESPACES, None, namespace)


def _set_repository(cluster: LocalCluster, value: str) -> None:
    assert cluster.store is not None

    def edit(cm: dict[str, Any]) -> dict[str, Any]:
        cm["data"] = {**(cm.get("data") or {}), "artifactRepository": value}
        return cm

    cluster.store.update(CONFIGMAPS, eci.ARGO_NAMESPACE, eci.CONTROLLER_CONFIGMAP, edit)


def test_the_controller_configmap_is_the_default_repository(local_cluster: LocalCluster, repo_namespace: str,
                                                             kube_api_client: client.ApiClient) -> None:
    assert local_cluster.oss is not None and local_cluster.store is not None
    wf = _run(kube_api_client, repo_namespace)
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    ref = wf["status"]["artifactRepositoryRef"]
    assert ref["default"] is True
    seeded = yaml.safe_load(local_cluster.store.get(CONFIGMAPS, eci.ARGO_NAMESPACE,
                                                    eci.CONTROLLER_CONFIGMAP)["data"]["artifactRepository"])
    assert ref["artifactRepository"] == seeded

    # another bucket in the ConfigMap: the next workflow's artifacts go there
    key_id, secret = next(iter(local_cluster.oss_credentials().items()))
    other = oss2.Bucket(oss2.Auth(key_id, secret), local_cluster.oss.endpoint, "preflight-other-bucket",
                        session=local_cluster.oss.session())
    other.create_bucket()
    moved = {"oss": {**seeded["oss"], "bucket": "preflight-other-bucket"}}
    _set_repository(local_cluster, yaml.safe_dump(moved))
    wf = _run(kube_api_client, repo_namespace)
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    [node] = [n for n in wf["status"]["nodes"].values() if n.get("outputs")]
    [art] = node["outputs"]["artifacts"]
    assert art["oss"]["bucket"] == "preflight-other-bucket"
    assert other.get_object(art["oss"]["key"]).read() == b"hello\n"

    # malformed: the workflow that needs the default fails, naming the ConfigMap key
    _set_repository(local_cluster, "oss: [not, a, mapping")
    wf = _run(kube_api_client, repo_namespace)
    assert wf["status"]["phase"] in ("Failed", "Error")
    message = wf["status"].get("message", "")
    assert "workflow-controller-configmap" in message and "artifactRepository" in message, message


def test_without_the_key_the_builtin_default_applies(local_cluster: LocalCluster, repo_namespace: str,
                                                     kube_api_client: client.ApiClient) -> None:
    assert local_cluster.store is not None

    def drop(cm: dict[str, Any]) -> dict[str, Any]:
        cm["data"] = {k: v for k, v in (cm.get("data") or {}).items() if k != "artifactRepository"}
        return cm

    local_cluster.store.update(CONFIGMAPS, eci.ARGO_NAMESPACE, eci.CONTROLLER_CONFIGMAP, drop)
    wf = _run(kube_api_client, repo_namespace)
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    repo = wf["status"]["artifactRepositoryRef"]["artifactRepository"]["oss"]
    assert repo["bucket"] == ARTIFACT_BUCKET
    assert "accessKeySecret" not in repo  # the built-in default uses the controller's own keys
