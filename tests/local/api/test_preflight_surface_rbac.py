"""Restricted identities on the local cluster: SelfSubjectAccessReview answers from the calling
token's rules, and the API enforces the same rules on every request (403 with Kubernetes' message)."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from airflow_argo_eci import conventions
from airflow_argo_eci.local.api.rbac import ADMIN_USER, Attributes, request_attributes
from airflow_argo_eci.local.server import LocalCluster

NS = "argo"
_NAMES = (f"preflight-user-{i}" for i in itertools.count())
#: what the provider's RBAC check asks for: workflows (create/get/list/watch/patch/delete) and pods/log
WORKFLOW_RULES = [
    {"apiGroups": [conventions.GROUP], "resources": ["workflows"],
     "verbs": ["create", "get", "list", "watch", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]},
]


def _client_for(base: client.ApiClient, token: str) -> Iterator[client.ApiClient]:
    configuration = copy.copy(base.configuration)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    configuration.api_key_prefix = {}
    configuration.refresh_api_key_hook = None  # the kubeconfig loader's hook would put the admin token back
    api = client.ApiClient(configuration)
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def workflow_user(local_cluster: LocalCluster, kube_api_client: client.ApiClient) -> Iterator[client.ApiClient]:
    """A client whose token may only work with workflows and read pods and their logs."""
    yield from _client_for(kube_api_client, local_cluster.add_token(next(_NAMES), WORKFLOW_RULES))


def _review(api: client.ApiClient, **attrs: str) -> client.V1SubjectAccessReviewStatus:
    body = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=client.V1ResourceAttributes(**attrs)))
    return client.AuthorizationV1Api(api).create_self_subject_access_review(body).status


def test_the_admin_token_may_do_everything(kube_api_client: client.ApiClient) -> None:
    for verb in ("create", "get", "list", "watch", "patch", "delete"):
        status = _review(kube_api_client, namespace=NS, verb=verb, group=conventions.GROUP, resource="workflows")
        assert status.allowed is True
        assert ADMIN_USER in status.reason
    assert _review(kube_api_client, namespace=NS, verb="get", resource="pods", subresource="log").allowed
    discovered = client.ApisApi(kube_api_client).get_api_versions()
    assert "authorization.k8s.io" in {g.name for g in discovered.groups}
    resources = client.AuthorizationV1Api(kube_api_client).get_api_resources().resources
    [ssar] = [r for r in resources if r.name == "selfsubjectaccessreviews"]
    assert ssar.verbs == ["create"] and ssar.kind == "SelfSubjectAccessReview"


def test_a_restricted_token_is_reviewed_by_its_rules(workflow_user: client.ApiClient) -> None:
    for verb in ("create", "get", "list", "watch", "patch", "delete"):
        status = _review(workflow_user, namespace=NS, verb=verb, group=conventions.GROUP, resource="workflows")
        assert status.allowed is True, verb
        assert "RBAC: allowed by rule 0" in status.reason
    assert _review(workflow_user, namespace=NS, verb="get", resource="pods", subresource="log").allowed
    denied = _review(workflow_user, namespace=NS, verb="update", group=conventions.GROUP, resource="workflows")
    assert denied.allowed is False
    assert not _review(workflow_user, namespace=NS, verb="list", resource="secrets").allowed
    assert not _review(workflow_user, namespace=NS, verb="create", group=conventions.GROUP,
                       resource="workflowtemplates").allowed


def test_a_restricted_token_gets_403_for_what_its_rules_do_not_allow(workflow_user: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(workflow_user)
    assert custom.list_namespaced_custom_object(conventions.GROUP, conventions.VERSION, NS, "workflows")["kind"] \
        == "WorkflowList"
    client.CoreV1Api(workflow_user).list_namespaced_pod(NS)
    with pytest.raises(ApiException) as no_pod:  # authorized (pods/log), so the API answers: no such pod
        client.CoreV1Api(workflow_user).read_namespaced_pod_log("no-such-pod", NS)
    assert no_pod.value.status == 404
    with pytest.raises(ApiException) as no_exec:  # pods/exec is not in the rules
        client.CoreV1Api(workflow_user).api_client.call_api(
            f"/api/v1/namespaces/{NS}/pods/no-such-pod/exec", "POST", auth_settings=["BearerToken"])
    assert no_exec.value.status == 403
    assert 'cannot create resource "pods/exec"' in json.loads(no_exec.value.body)["message"]
    with pytest.raises(ApiException) as refused:
        client.CoreV1Api(workflow_user).read_namespaced_secret("argo-oss-credentials", NS)
    assert refused.value.status == 403
    status = json.loads(refused.value.body)
    assert status["reason"] == "Forbidden"
    user = status["message"].split('User "')[1].split('"')[0]
    assert status["message"] == (f'secrets "argo-oss-credentials" is forbidden: User "{user}" cannot get resource '
                                 f'"secrets" in API group "" in the namespace "{NS}"')
    assert status["details"] == {"name": "argo-oss-credentials", "kind": "secrets"}
    with pytest.raises(ApiException) as listing:
        custom.list_namespaced_custom_object(conventions.GROUP, conventions.VERSION, NS, "workflowtemplates")
    assert listing.value.status == 403
    message = json.loads(listing.value.body)["message"]
    assert message.startswith('workflowtemplates.argoproj.io is forbidden: User "')
    assert message.endswith(f'cannot list resource "workflowtemplates" in API group "argoproj.io" in the namespace '
                            f'"{NS}"')
    # discovery stays readable, as for every authenticated user of a real cluster
    assert client.ApisApi(workflow_user).get_api_versions().groups


def test_the_argo_server_routes_are_admin_only(local_cluster: LocalCluster) -> None:
    token = local_cluster.add_token(next(_NAMES), [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}])
    with httpx.Client(base_url=local_cluster.url, verify=str(local_cluster.paths.tls_cert)) as http:
        refused = http.get(f"/api/v1/workflows/{NS}", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 403, refused.text
        assert f'cannot get path "/api/v1/workflows/{NS}"' in refused.json()["message"]
        # every Kubernetes request is allowed by the wildcard rule
        assert http.get(f"/api/v1/namespaces/{NS}/configmaps",
                        headers={"Authorization": f"Bearer {token}"}).status_code == 200
        admin = http.get(f"/api/v1/workflows/{NS}", headers={"Authorization": f"Bearer {local_cluster.token}"})
        assert admin.status_code == 200
        unknown = http.get("/version", headers={"Authorization": "Bearer not-a-token"})
        assert unknown.status_code == 401


def test_namespaces_limit_a_restricted_token(local_cluster: LocalCluster, kube_api_client: client.ApiClient) -> None:
    name = next(_NAMES)
    token = local_cluster.add_token(name, [{"apiGroups": [""], "resources": ["configmaps"],
                                            "verbs": ["get", "list"]}], namespaces=["default"])
    for api in _client_for(kube_api_client, token):
        core = client.CoreV1Api(api)
        core.list_namespaced_config_map("default")
        with pytest.raises(ApiException) as refused:
            core.list_namespaced_config_map(NS)
        assert refused.value.status == 403
        with pytest.raises(ApiException) as cluster_wide:
            core.list_config_map_for_all_namespaces()
        assert cluster_wide.value.status == 403
        assert json.loads(cluster_wide.value.body)["message"] == (
            f'configmaps is forbidden: User "{name}" cannot list resource "configmaps" in API group "" at the '
            f'cluster scope: the rules of "{name}" hold only in namespaces default, not in the cluster scope')


def test_resource_names_and_wildcard_subresources(local_cluster: LocalCluster,
                                                  kube_api_client: client.ApiClient) -> None:
    token = local_cluster.add_token(next(_NAMES), [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
         "resourceNames": ["workflow-controller-configmap"]},
        {"apiGroups": ["apps"], "resources": ["*/status"], "verbs": ["get"]}])
    for api in _client_for(kube_api_client, token):
        core = client.CoreV1Api(api)
        assert core.read_namespaced_config_map("workflow-controller-configmap", NS).data
        with pytest.raises(ApiException) as other:
            core.read_namespaced_config_map("artifact-repositories", NS)
        assert other.value.status == 403
        assert _review(api, namespace=NS, verb="get", group="apps", resource="deployments",
                       subresource="status").allowed
        assert not _review(api, namespace=NS, verb="get", group="apps", resource="deployments").allowed


@pytest.mark.parametrize(("method", "path", "query", "expected"), [
    ("GET", "/api/v1/namespaces/argo/pods", {}, Attributes("list", "", "pods", "", "argo", "")),
    ("GET", "/api/v1/namespaces/argo/pods", {"watch": "true"}, Attributes("watch", "", "pods", "", "argo", "")),
    ("GET", "/api/v1/watch/namespaces/argo/pods/p", {}, Attributes("watch", "", "pods", "", "argo", "p")),
    ("GET", "/api/v1/namespaces/argo/pods/p/log", {}, Attributes("get", "", "pods", "log", "argo", "p")),
    ("DELETE", "/apis/argoproj.io/v1alpha1/namespaces/argo/workflows", {},
     Attributes("deletecollection", "argoproj.io", "workflows", "", "argo", "")),
    ("PATCH", "/apis/argoproj.io/v1alpha1/namespaces/argo/workflows/w",
     {}, Attributes("patch", "argoproj.io", "workflows", "", "argo", "w")),
    # as in Kubernetes, a namespace's own requests carry the namespace too
    ("PUT", "/api/v1/namespaces/argo", {}, Attributes("update", "", "namespaces", "", "argo", "argo")),
    ("PUT", "/api/v1/namespaces/argo/finalize", {},
     Attributes("update", "", "namespaces", "finalize", "argo", "argo")),
    ("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", {},
     Attributes("create", "apiextensions.k8s.io", "customresourcedefinitions", "", "", "")),
    ("GET", "/api/v1/workflows/argo", {}, None),
    ("GET", "/apis/argoproj.io/v1alpha1", {}, None),
])
def test_request_attributes_follow_kubernetes(method: str, path: str, query: dict[str, str],
                                              expected: Any) -> None:
    assert request_attributes(method, path, query) == expected


def test_malformed_rules_are_refused_naming_the_field(local_cluster: LocalCluster) -> None:
    with pytest.raises(ValueError, match=r"PolicyRule\.verbs must be a non-empty list of strings"):
        local_cluster.add_token(next(_NAMES), [{"apiGroups": [""], "resources": ["pods"], "verbs": []}])
    with pytest.raises(ValueError, match="unknown PolicyRule fields: resource"):
        local_cluster.add_token(next(_NAMES), [{"apiGroups": [""], "resource": ["pods"], "verbs": ["get"]}])


def test_a_review_needs_exactly_one_kind_of_attributes(kube_api_client: client.ApiClient) -> None:
    with pytest.raises(ApiException) as refused:
        kube_api_client.call_api("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "POST",
                                 body={"kind": "SelfSubjectAccessReview", "spec": {}},
                                 auth_settings=["BearerToken"], _preload_content=False)
    assert refused.value.status == 422
    assert "exactly one of nonResourceAttributes or resourceAttributes" in json.loads(refused.value.body)["message"]
    non_resource = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
        non_resource_attributes=client.V1NonResourceAttributes(path="/version", verb="get")))
    assert client.AuthorizationV1Api(kube_api_client).create_self_subject_access_review(non_resource).status.allowed
