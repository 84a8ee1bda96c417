"""The Kubernetes API calls of the Fluid hook: Fluid's custom objects
(``/apis/data.fluid.io/v1alpha1/...``), Secrets and PersistentVolumeClaims as :class:`ApiRequest`
builders, and each operation written once over them (:class:`FluidOperations`), run by the
``kubernetes`` transport's sync and async drivers.

The requests are what the official client's ``CustomObjectsApi`` / ``CoreV1Api`` methods send: the
same paths, query parameter names and order, and ``DeleteOptions`` bodies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.fluid_conventions import API_VERSION, DATASET_KIND, GROUP, KINDS, VERSION
from airflow_argo_eci.hooks.argo_requests import (
    ApiRequest,
    Operation,
    WorkflowList,
    call,
    check_custom_object,
    delete_options,
    list_page_query,
    list_pages,
)

_FLUID = f"/apis/{GROUP}/{VERSION}"


def _q(value: str) -> str:
    return quote(value, safe="")


def plural_of(kind: str) -> str:
    """The plural of a Fluid ``kind``; any other kind raises :class:`WorkflowSpecError` naming them."""
    plural = KINDS.get(kind)
    if plural is None:
        raise WorkflowSpecError(f"kind {kind!r} is not a Fluid kind: use one of {', '.join(KINDS)}")
    return plural


def fluid_path(namespace: str, kind: str, name: str = "") -> str:
    """``/apis/data.fluid.io/v1alpha1/namespaces/{ns}/{plural}[/{name}]``."""
    path = f"{_FLUID}/namespaces/{_q(namespace)}/{plural_of(kind)}"
    return f"{path}/{_q(name)}" if name else path


def check_object(kind: str, body: Any) -> dict[str, Any]:
    """A Fluid object body as a new dict with ``apiVersion``/``kind`` defaulted and ``status``
    dropped; errors name the field."""
    plural_of(kind)
    obj = check_custom_object(kind, API_VERSION, body)
    if not isinstance(obj.get("spec"), Mapping):
        raise WorkflowSpecError(f"{kind} body: spec must be a mapping")
    return obj


def list_request(kind: str, namespace: str, label_selector: str, field_selector: str, token: str = "") -> ApiRequest:
    """GET one page of a Fluid kind's objects."""
    return ApiRequest("GET", fluid_path(namespace, kind), f"list {plural_of(kind)} in {namespace}",
                      list_page_query(label_selector, field_selector, token))


def _core_path(namespace: str, plural: str, name: str = "") -> str:
    path = f"/api/v1/namespaces/{_q(namespace)}/{plural}"
    return f"{path}/{_q(name)}" if name else path


class FluidOperations:
    """The Fluid operations over the Kubernetes API, each a generator of requests."""

    def create_object(self, kind: str, body: Mapping[str, Any], namespace: str) -> Operation[dict[str, Any]]:
        """POST a Fluid object (not idempotent: a retry could create a second one)."""
        obj = check_object(kind, body)
        created: dict[str, Any] = yield ApiRequest(
            "POST", fluid_path(namespace, kind), f"create {kind} in {namespace}", body=obj, idempotent=False)
        return created

    def get_object(self, kind: str, name: str, namespace: str) -> Operation[dict[str, Any]]:
        """GET one Fluid object."""
        return call(ApiRequest("GET", fluid_path(namespace, kind, name), f"get {kind} {namespace}/{name}"))

    def list_objects(
        self, kind: str, namespace: str, label_selector: str, field_selector: str
    ) -> Operation[WorkflowList]:
        """Every object of ``kind`` matching the selectors (pages followed) and the list's resourceVersion."""
        return list_pages(lambda token: list_request(kind, namespace, label_selector, field_selector, token))

    def delete_object(self, kind: str, name: str, namespace: str, uid: str) -> Operation[None]:
        """DELETE a Fluid object; with ``uid``, ``preconditions.uid`` refuses a same-named successor (409)."""
        yield ApiRequest("DELETE", fluid_path(namespace, kind, name), f"delete {kind} {namespace}/{name}",
                         body=delete_options(uid))

    def get_claim(self, name: str, namespace: str) -> Operation[dict[str, Any]]:
        """GET a PersistentVolumeClaim (a bound Dataset's has the Dataset's name)."""
        return call(ApiRequest("GET", _core_path(namespace, "persistentvolumeclaims", name),
                               f"get persistentvolumeclaim {namespace}/{name}"))

    def get_secret(self, name: str, namespace: str) -> Operation[dict[str, Any]]:
        """GET a Secret."""
        return call(ApiRequest("GET", _core_path(namespace, "secrets", name), f"get secret {namespace}/{name}"))

    def create_secret(self, body: Mapping[str, Any], namespace: str) -> Operation[dict[str, Any]]:
        """POST a Secret."""
        created: dict[str, Any] = yield ApiRequest(
            "POST", _core_path(namespace, "secrets"), f"create secret in {namespace}",
            body={"apiVersion": "v1", "kind": "Secret", **dict(body)}, idempotent=False)
        return created

    def delete_secret(self, name: str, namespace: str) -> Operation[None]:
        """DELETE a Secret."""
        yield ApiRequest("DELETE", _core_path(namespace, "secrets", name), f"delete secret {namespace}/{name}")

    def probe(self, namespace: str) -> Operation[None]:
        """List one Dataset without retries (a connection test: Fluid's API is served)."""
        yield ApiRequest("GET", fluid_path(namespace, DATASET_KIND), f"list datasets in {namespace}", (("limit", 1),),
                         retries=0)
