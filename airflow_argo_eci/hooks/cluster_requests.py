"""The reads of the preflight as :class:`ApiRequest` builders, each written once (:class:`ClusterOperations`):
API discovery, CustomResourceDefinitions, Deployments, ConfigMaps, SelfSubjectAccessReviews (Kubernetes
API) and the Argo Server's version (``/api/v1/version``); and one write, a ConfigMap's create-or-update
(:meth:`ClusterOperations.apply_config_map`: a job queue's semaphore limit).

The requests are what the official client's ``CustomObjectsApi`` / ``AppsV1Api`` / ``CoreV1Api`` /
``AuthorizationV1Api`` methods send. None is retried more than once: a preflight reports what it cannot
read instead of waiting for it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow_argo_eci.errors import ConflictError, NotFoundError
from airflow_argo_eci.hooks.argo_requests import ApiRequest, Operation, call

#: retries of each preflight read (one: a blip is forgiven, an unreachable cluster is reported quickly)
READ_RETRIES = 1
#: how many times a ConfigMap's create-or-update starts over after a 409 (a race with another writer)
APPLY_ATTEMPTS = 3
#: the API group and version of SelfSubjectAccessReview
AUTHORIZATION_API_VERSION = "authorization.k8s.io/v1"
_CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def _q(value: str) -> str:
    return quote(value, safe="")


def discovery_path(group: str, version: str) -> str:
    """``/apis/{group}/{version}`` (``/api/v1`` for the core group)."""
    return f"/apis/{_q(group)}/{_q(version)}" if group else f"/api/{_q(version)}"


def config_map_path(namespace: str, name: str = "") -> str:
    """``/api/v1/namespaces/{ns}/configmaps[/{name}]``."""
    path = f"/api/v1/namespaces/{_q(namespace)}/configmaps"
    return f"{path}/{_q(name)}" if name else path


def create_config_map_request(namespace: str, body: dict[str, Any]) -> ApiRequest:
    """POST a ConfigMap (a repeat answers 409 AlreadyExists, so the create is not retried)."""
    name = (body.get("metadata") or {}).get("name", "")
    return ApiRequest("POST", config_map_path(namespace), f"create configmap {namespace}/{name}",
                      body=body, idempotent=False)


def replace_config_map_request(namespace: str, body: dict[str, Any]) -> ApiRequest:
    """PUT a ConfigMap; its ``metadata.resourceVersion`` makes a stale replace a 409 Conflict."""
    name = (body.get("metadata") or {}).get("name", "")
    return ApiRequest("PUT", config_map_path(namespace, name), f"replace configmap {namespace}/{name}", body=body)


def _config_map_differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether ``current`` lacks ``wanted``'s data or labels (other keys and labels are left alone)."""
    data = current.get("data") or {}
    labels = (current.get("metadata") or {}).get("labels") or {}
    wanted_labels = (wanted.get("metadata") or {}).get("labels") or {}
    return any(data.get(k) != v for k, v in (wanted.get("data") or {}).items()) or \
        any(labels.get(k) != v for k, v in wanted_labels.items())


def _merged(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """``current`` (with its ``resourceVersion``) with ``wanted``'s data keys and labels set."""
    meta = dict(current.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), **((wanted.get("metadata") or {}).get("labels") or {})}
    return {**current, "metadata": meta, "data": {**(current.get("data") or {}), **(wanted.get("data") or {})}}


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

    def apply_config_map(self, namespace: str, body: dict[str, Any]) -> Operation[dict[str, Any]]:
        """Create-or-update the ConfigMap ``body``: GET it; absent: POST it; present with other values
        for ``body``'s data keys or labels: PUT it with those merged in (its other keys kept); present
        and equal: no write. A create that lost a race or a replace that went stale (409) starts
        again from a fresh GET, at most :data:`APPLY_ATTEMPTS` times in all. Returns the ConfigMap as
        the server holds it."""
        name = str((body.get("metadata") or {}).get("name", ""))
        for attempt in range(1, APPLY_ATTEMPTS + 1):
            try:
                current: dict[str, Any] = yield ApiRequest(
                    "GET", config_map_path(namespace, name), f"get configmap {namespace}/{name}")
            except NotFoundError:
                current = {}
            if current and not _config_map_differs(current, body):
                return current
            try:
                if not current:
                    created: dict[str, Any] = yield create_config_map_request(namespace, body)
                    return created
                replaced: dict[str, Any] = yield replace_config_map_request(namespace, _merged(current, body))
                return replaced
            except ConflictError:
                if attempt == APPLY_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover - the last attempt returns or raises

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
