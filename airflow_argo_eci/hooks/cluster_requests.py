"""The reads of the preflight as :class:`ApiRequest` builders, each written once (:class:`ClusterOperations`):
API discovery, CustomResourceDefinitions, Deployments, ConfigMaps, SelfSubjectAccessReviews (Kubernetes
API) and the Argo Server's version (``/api/v1/version``).

The requests are what the official client's ``CustomObjectsApi`` / ``AppsV1Api`` / ``CoreV1Api`` /
``AuthorizationV1Api`` methods send. None is retried more than once: a preflight reports what it cannot
read instead of waiting for it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow_argo_eci.hooks.argo_requests import ApiRequest, Operation, call

#: retries of each preflight read (one: a blip is forgiven, an unreachable cluster is reported quickly)
READ_RETRIES = 1
#: the API group and version of SelfSubjectAccessReview
AUTHORIZATION_API_VERSION = "authorization.k8s.io/v1"
_CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def _q(value: str) -> str:
    return quote(value, safe="")


def discovery_path(group: str, version: str) -> str:
    """``/apis/{group}/{version}`` (``/api/v1`` for the core group)."""
    return f"/apis/{_q(group)}/{_q(version)}" if group else f"/api/{_q(version)}"


def access_review_body(namespace: str, verb: str, resource: str, group: str = "",
                       subresource: str = "") -> dict[str, Any]:
    """A SelfSubjectAccessReview asking whether the caller may ``verb`` ``resource`` in ``namespace``."""
    attributes = {"namespace": namespace, "verb": verb, "group": group, "resource": resource}
    if subresource:
        attributes["subresource"] = subresource
    return {"apiVersion": AUTHORIZATION_API_VERSION, "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes}}


class ClusterOperations:
    """The preflight's reads, each an operation of one request."""

    def discovery(self, group: str, version: str) -> Operation[dict[str, Any]]:
        """GET the ``APIResourceList`` of ``group/version`` (404: not served)."""
        return call(ApiRequest("GET", discovery_path(group, version), f"discover {group or 'core'}/{version}",
                               retries=READ_RETRIES))

    def get_crd(self, name: str) -> Operation[dict[str, Any]]:
        """GET the CustomResourceDefinition ``name`` (``<plural>.<group>``)."""
        return call(ApiRequest("GET", f"{_CRDS}/{_q(name)}", f"get customresourcedefinition {name}",
                               retries=READ_RETRIES))

    def get_deployment(self, namespace: str, name: str) -> Operation[dict[str, Any]]:
        """GET the Deployment ``namespace/name``."""
        return call(ApiRequest("GET", f"/apis/apps/v1/namespaces/{_q(namespace)}/deployments/{_q(name)}",
                               f"get deployment {namespace}/{name}", retries=READ_RETRIES))

    def get_config_map(self, namespace: str, name: str) -> Operation[dict[str, Any]]:
        """GET the ConfigMap ``namespace/name``."""
        return call(ApiRequest("GET", f"/api/v1/namespaces/{_q(namespace)}/configmaps/{_q(name)}",
                               f"get configmap {namespace}/{name}", retries=READ_RETRIES))

    def access_review(self, namespace: str, verb: str, resource: str, group: str = "",
                      subresource: str = "") -> Operation[dict[str, Any]]:
        """POST a SelfSubjectAccessReview (creates nothing, so it is safe to repeat)."""
        what = f"{resource}/{subresource}" if subresource else resource
        return call(ApiRequest("POST", f"/apis/{AUTHORIZATION_API_VERSION}/selfsubjectaccessreviews",
                               f"review access: {verb} {what} in {namespace}",
                               body=access_review_body(namespace, verb, resource, group, subresource),
                               retries=READ_RETRIES))

    def server_version(self) -> Operation[dict[str, Any]]:
        """GET the Argo Server's ``/api/v1/version``."""
        return call(ApiRequest("GET", "/api/v1/version", "get the Argo Server's version", retries=READ_RETRIES))
