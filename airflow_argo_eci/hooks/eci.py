"""``EciHook``: ECI's ImageCaches (``eci.alibabacloud.com/v1``, cluster-scoped) from Airflow.

ImageCaches are Kubernetes custom objects served by ack-virtual-node, reached over the same
``argo_workflows`` connection as :class:`~airflow_argo_eci.hooks.argo.ArgoWorkflowsHook` and its
``kubernetes`` transport: the same kubeconfig / in-cluster configuration, TLS settings, timeouts,
retries with backoff and typed errors (:class:`~airflow_argo_eci.errors.NotFoundError`,
``ConflictError``, ``InvalidError``..., each chaining its cause). A connection with the
``argo_server`` transport cannot reach them and is refused with a
:class:`~airflow_argo_eci.errors.WorkflowSpecError`.

Each call is one operation of :class:`~airflow_argo_eci.hooks.eci_requests.EciOperations` (the
requests it sends, described once) run by the transport's sync ``run`` or async ``arun``; every
method has an ``a``-prefixed async twin returning the same types. ImageCaches have no namespace:
no method takes one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.sdk import BaseHook

from airflow_argo_eci.eci_conventions import IMAGE_CACHE_KIND, IMAGE_CACHES
from airflow_argo_eci.hooks.argo_requests import WorkflowList, check_name
from airflow_argo_eci.hooks.eci_requests import IMAGE_CACHES_PATH, EciOperations
from airflow_argo_eci.hooks.kubernetes_objects import KubernetesObjectsMixin

__all__ = ["EciHook", "ImageCacheSource"]


class EciHook(KubernetesObjectsMixin, BaseHook):
    """ECI's ImageCaches through the Kubernetes API (see the module docstring).

    :param argo_conn_id: the ``argo_workflows`` connection (``kubernetes`` transport)
    """

    conn_type = "argo_workflows"
    conn_name_attr = "argo_conn_id"
    default_conn_name = "argo_default"
    hook_name = "ECI (Argo Workflows connection)"
    objects_title = "ECI's ImageCaches"

    def __init__(self, argo_conn_id: str = default_conn_name) -> None:
        super().__init__(argo_conn_id)
        self._operations = EciOperations()

    # ------------------------------------------------------------------ sync

    def create_image_cache(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create an ImageCache (``body`` is not modified; ``apiVersion``/``kind`` are defaulted);
        never repeated after a failure that may have taken effect."""
        return self.get_conn().run(self._operations.create_image_cache(body))

    def get_image_cache(self, name: str) -> dict[str, Any]:
        """The ImageCache ``name``; :class:`~airflow_argo_eci.errors.NotFoundError` when there is none."""
        return self.get_conn().run(self._operations.get_image_cache(check_name(IMAGE_CACHE_KIND, name)))

    def list_image_caches(self, label_selector: str = "", field_selector: str = "") -> WorkflowList:
        """Every ImageCache matching the selectors, with the list's ``resource_version``."""
        return self.get_conn().run(self._operations.list_image_caches(label_selector, field_selector))

    def delete_image_cache(self, name: str, *, uid: str = "") -> None:
        """Delete the ImageCache; with ``uid`` only that one (a same-named successor: ``ConflictError``)."""
        self.get_conn().run(self._operations.delete_image_cache(check_name(IMAGE_CACHE_KIND, name), uid))

    def test_connection(self) -> tuple[bool, str]:
        """List one ImageCache; ``(ok, message)``, never raises."""

        def probe() -> str:
            transport = self.get_conn()
            transport.run(self._operations.probe())
            return f"Connected to {transport.endpoint()}: listed ImageCaches"

        return self._test_connection(probe, "cannot reach ECI's ImageCache API")

    # ------------------------------------------------------------------ async

    async def acreate_image_cache(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Async :meth:`create_image_cache`."""
        return await (await self._atransport()).arun(self._operations.create_image_cache(body))

    async def aget_image_cache(self, name: str) -> dict[str, Any]:
        """Async :meth:`get_image_cache`."""
        operation = self._operations.get_image_cache(check_name(IMAGE_CACHE_KIND, name))
        return await (await self._atransport()).arun(operation)

    async def alist_image_caches(self, label_selector: str = "", field_selector: str = "") -> WorkflowList:
        """Async :meth:`list_image_caches`."""
        operation = self._operations.list_image_caches(label_selector, field_selector)
        return await (await self._atransport()).arun(operation)

    async def adelete_image_cache(self, name: str, *, uid: str = "") -> None:
        """Async :meth:`delete_image_cache`."""
        operation = self._operations.delete_image_cache(check_name(IMAGE_CACHE_KIND, name), uid)
        await (await self._atransport()).arun(operation)

    async def awatch_image_caches(
        self, resource_version: str = "", label_selector: str = "", field_selector: str = "",
        timeout_seconds: int = 300,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """``(event type, object)`` of a watch of ImageCaches from ``resource_version`` (``""``: the
        current state as ADDED events first), BOOKMARKs included; ends when the server closes the
        watch after ``timeout_seconds``; a too old version raises :class:`~airflow_argo_eci.errors.GoneError`."""
        t = await self._atransport()
        async for item in t.awatch_objects("", resource_version, label_selector, field_selector, timeout_seconds,
                                           path=IMAGE_CACHES_PATH, what=IMAGE_CACHES):
            yield item


class ImageCacheSource:
    """ImageCaches through an :class:`EciHook`, in the shape the watch hub reads objects
    (:class:`~airflow_argo_eci.triggers.watch_hub.WorkflowSource`); the namespace it is handed is
    ignored (the kind is cluster-scoped)."""

    supports_watch = True

    def __init__(self, hook: EciHook) -> None:
        self.hook = hook

    async def aget_workflow(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The ImageCache ``name``."""
        return await self.hook.aget_image_cache(name)

    async def alist_workflows(
        self, namespace: str | None = None, label_selector: str = "", field_selector: str = ""
    ) -> WorkflowList:
        """Every ImageCache."""
        return await self.hook.alist_image_caches(label_selector, field_selector)

    def awatch_workflows(
        self, namespace: str | None = None, resource_version: str = "", label_selector: str = "",
        field_selector: str = "", timeout_seconds: int = 300,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """A watch of ImageCaches."""
        return self.hook.awatch_image_caches(resource_version, label_selector, field_selector, timeout_seconds)

    async def ahydrate(self, workflow: dict[str, Any]) -> dict[str, Any]:
        """``workflow`` itself: only Argo offloads node status, these objects never hold any."""
        return workflow

    async def aclose(self) -> None:
        """Release the hook's async client."""
        await self.hook.aclose()
