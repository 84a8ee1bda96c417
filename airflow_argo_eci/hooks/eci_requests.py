"""The Kubernetes API calls of the ECI hook: ImageCaches (cluster-scoped,
``/apis/eci.alibabacloud.com/v1/imagecaches``) as :class:`ApiRequest` builders, and each operation
written once over them (:class:`EciOperations`), run by the ``kubernetes`` transport's sync and
async drivers.

The requests are what the official client's ``CustomObjectsApi`` cluster-custom-object methods
send: the same paths, query parameter names and order, and ``DeleteOptions`` bodies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from airflow_argo_eci.eci_conventions import API_VERSION, GROUP, IMAGE_CACHE_KIND, IMAGE_CACHES, VERSION
from airflow_argo_eci.errors import WorkflowSpecError
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

#: the collection of ImageCaches (cluster-scoped: no namespace in the path)
IMAGE_CACHES_PATH = f"/apis/{GROUP}/{VERSION}/{IMAGE_CACHES}"


def image_cache_path(name: str = "") -> str:
    """``/apis/eci.alibabacloud.com/v1/imagecaches[/{name}]``."""
    return f"{IMAGE_CACHES_PATH}/{quote(name, safe='')}" if name else IMAGE_CACHES_PATH


def check_image_cache(body: Any) -> dict[str, Any]:
    """An ImageCache body as a new dict with ``apiVersion``/``kind`` defaulted and ``status`` and
    any ``metadata.namespace`` dropped (the kind is cluster-scoped); errors name the field."""
    obj = check_custom_object(IMAGE_CACHE_KIND, API_VERSION, body)
    meta = obj["metadata"]
    spec = obj.get("spec")
    if not isinstance(spec, Mapping) or not spec.get("images"):
        raise WorkflowSpecError(f"{IMAGE_CACHE_KIND} body: spec.images must list at least one image")
    obj["metadata"] = {k: v for k, v in meta.items() if k != "namespace"}
    return obj


def list_request(label_selector: str, field_selector: str, token: str = "") -> ApiRequest:
    """GET one page of ImageCaches."""
    return ApiRequest("GET", IMAGE_CACHES_PATH, f"list {IMAGE_CACHES}",
                      list_page_query(label_selector, field_selector, token))


class EciOperations:
    """The ImageCache operations over the Kubernetes API, each a generator of requests."""

    def create_image_cache(self, body: Mapping[str, Any]) -> Operation[dict[str, Any]]:
        """POST an ImageCache (not idempotent: never repeated after a failure that may have taken effect)."""
        obj = check_image_cache(body)
        created: dict[str, Any] = yield ApiRequest("POST", IMAGE_CACHES_PATH, f"create {IMAGE_CACHE_KIND}",
                                                   body=obj, idempotent=False)
        return created

    def get_image_cache(self, name: str) -> Operation[dict[str, Any]]:
        """GET one ImageCache."""
        return call(ApiRequest("GET", image_cache_path(name), f"get {IMAGE_CACHE_KIND} {name}"))

    def list_image_caches(self, label_selector: str, field_selector: str) -> Operation[WorkflowList]:
        """Every ImageCache matching the selectors (pages followed) and the list's resourceVersion."""
        return list_pages(lambda token: list_request(label_selector, field_selector, token))

    def delete_image_cache(self, name: str, uid: str) -> Operation[None]:
        """DELETE an ImageCache; with ``uid``, ``preconditions.uid`` refuses a same-named successor (409)."""
        yield ApiRequest("DELETE", image_cache_path(name), f"delete {IMAGE_CACHE_KIND} {name}",
                         body=delete_options(uid))

    def probe(self) -> Operation[None]:
        """List one ImageCache without retries (a connection test: the ImageCache API is served)."""
        yield ApiRequest("GET", IMAGE_CACHES_PATH, f"list {IMAGE_CACHES}", (("limit", 1),), retries=0)
