"""``FluidHook``: Fluid's Datasets, runtimes and DataLoads (``data.fluid.io/v1alpha1``) from Airflow.

Fluid is reached through Kubernetes custom objects, with no SDK of its own, over the same
``argo_workflows`` connection as :class:`~airflow_argo_eci.hooks.argo.ArgoWorkflowsHook` and its
``kubernetes`` transport (:class:`~airflow_argo_eci.hooks.argo_kubernetes_transport.KubernetesTransport`):
the same kubeconfig / in-cluster configuration, TLS settings, timeouts, retries with backoff and
typed errors (:class:`~airflow_argo_eci.errors.NotFoundError`, ``ConflictError``, ``InvalidError``...,
each chaining its cause). A connection with the ``argo_server`` transport cannot reach Fluid and
is refused with a :class:`~airflow_argo_eci.errors.WorkflowSpecError`.

Each call is one operation of :class:`~airflow_argo_eci.hooks.fluid_requests.FluidOperations` (the
requests it sends, described once) run by the transport's sync ``run`` or async ``arun``; every
method has an ``a``-prefixed async twin returning the same types. Methods take the Fluid ``kind``
(``Dataset``, ``DataLoad``, ``JindoRuntime``, ``AlluxioRuntime``, ``JuiceFSRuntime``,
``ThinRuntime``); any other kind is a :class:`WorkflowSpecError` naming the kinds Fluid has.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.sdk import BaseHook

from airflow_argo_eci.errors import NotFoundError
from airflow_argo_eci.fluid_conventions import DATALOAD_KIND, DATASET_KIND, RUNTIME_PLURALS
from airflow_argo_eci.hooks.argo_requests import WorkflowList, check_name
from airflow_argo_eci.hooks.fluid_requests import FluidOperations, fluid_path, plural_of
from airflow_argo_eci.hooks.kubernetes_objects import KubernetesObjectsMixin

__all__ = ["FluidHook", "FluidObjectSource"]


class FluidHook(KubernetesObjectsMixin, BaseHook):
    """Fluid's custom objects through the Kubernetes API (see the module docstring).

    :param argo_conn_id: the ``argo_workflows`` connection (``kubernetes`` transport)
    """

    conn_type = "argo_workflows"
    conn_name_attr = "argo_conn_id"
    default_conn_name = "argo_default"
    hook_name = "Fluid (through Argo Workflows' Kubernetes connection)"
    objects_title = "Fluid's objects"

    def __init__(self, argo_conn_id: str = default_conn_name) -> None:
        super().__init__(argo_conn_id)
        self._operations = FluidOperations()

    # ------------------------------------------------------------------ namespace

    def _ns(self, namespace: str | None) -> str:
        return namespace or self.get_conn().default_namespace

    async def _ans(self, namespace: str | None) -> str:
        return namespace or (await self._atransport()).default_namespace

    # ------------------------------------------------------------------ objects (sync)

    def create_object(self, kind: str, body: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Create a Fluid object (``body`` is not modified; ``apiVersion``/``kind`` are defaulted);
        never repeated after a failure that may have taken effect."""
        return self.get_conn().run(self._operations.create_object(kind, body, self._ns(namespace)))

    def get_object(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The object ``name`` of ``kind``; :class:`NotFoundError` when there is none."""
        return self.get_conn().run(self._operations.get_object(kind, check_name(kind, name), self._ns(namespace)))

    def list_objects(
        self, kind: str, namespace: str | None = None, label_selector: str = "", field_selector: str = ""
    ) -> WorkflowList:
        """Every object of ``kind`` matching the selectors, with the list's ``resource_version``."""
        return self.get_conn().run(
            self._operations.list_objects(kind, self._ns(namespace), label_selector, field_selector))

    def delete_object(self, kind: str, name: str, namespace: str | None = None, *, uid: str = "") -> None:
        """Delete the object; with ``uid`` only that one (a same-named successor: :class:`ConflictError`)."""
        self.get_conn().run(self._operations.delete_object(kind, check_name(kind, name), self._ns(namespace), uid))

    def get_dataset(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The Dataset ``name``."""
        return self.get_object(DATASET_KIND, name, namespace)

    def get_dataload(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The DataLoad ``name``."""
        return self.get_object(DATALOAD_KIND, name, namespace)

    def find_runtime(self, name: str, namespace: str | None = None) -> tuple[str, dict[str, Any]] | None:
        """``(kind, object)`` of the Dataset ``name``'s runtime (Fluid's rule: the runtime object with
        the Dataset's name in its namespace, of any runtime kind), or None when there is none."""
        for kind in RUNTIME_PLURALS:
            try:
                return kind, self.get_object(kind, name, namespace)
            except NotFoundError:
                continue
        return None

    def get_claim(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The PersistentVolumeClaim ``name`` (a bound Dataset's has the Dataset's name)."""
        return self.get_conn().run(self._operations.get_claim(check_name("claim", name), self._ns(namespace)))

    def get_secret(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The Secret ``name``."""
        return self.get_conn().run(self._operations.get_secret(check_name("secret", name), self._ns(namespace)))

    def create_secret(self, body: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Create a Secret (``body``: ``metadata`` and ``stringData``/``data``)."""
        return self.get_conn().run(self._operations.create_secret(body, self._ns(namespace)))

    def delete_secret(self, name: str, namespace: str | None = None) -> None:
        """Delete a Secret."""
        self.get_conn().run(self._operations.delete_secret(check_name("secret", name), self._ns(namespace)))

    def test_connection(self) -> tuple[bool, str]:
        """List one Dataset in the connection's namespace; ``(ok, message)``, never raises."""

        def probe() -> str:
            transport = self.get_conn()
            namespace = transport.default_namespace
            transport.run(self._operations.probe(namespace))
            return f"Connected to {transport.endpoint()}: listed Fluid datasets in namespace {namespace!r}"

        return self._test_connection(probe, "cannot reach Fluid's API")

    # ------------------------------------------------------------------ objects (async)

    async def acreate_object(
        self, kind: str, body: Mapping[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        """Async :meth:`create_object`."""
        t = await self._atransport()
        return await t.arun(self._operations.create_object(kind, body, await self._ans(namespace)))

    async def aget_object(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        """Async :meth:`get_object`."""
        t = await self._atransport()
        return await t.arun(self._operations.get_object(kind, check_name(kind, name), await self._ans(namespace)))

    async def alist_objects(
        self, kind: str, namespace: str | None = None, label_selector: str = "", field_selector: str = ""
    ) -> WorkflowList:
        """Async :meth:`list_objects`."""
        t = await self._atransport()
        return await t.arun(
            self._operations.list_objects(kind, await self._ans(namespace), label_selector, field_selector))

    async def adelete_object(self, kind: str, name: str, namespace: str | None = None, *, uid: str = "") -> None:
        """Async :meth:`delete_object`."""
        t = await self._atransport()
        await t.arun(self._operations.delete_object(kind, check_name(kind, name), await self._ans(namespace), uid))

    async def awatch_objects(
        self,
        kind: str,
        namespace: str | None = None,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
        timeout_seconds: int = 300,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """``(event type, object)`` of a watch of ``kind`` from ``resource_version`` (``""``: the
        current state as ADDED events first), BOOKMARKs included; ends when the server closes the
        watch after ``timeout_seconds``; a too old version raises :class:`~airflow_argo_eci.errors.GoneError`."""
        t = await self._atransport()
        ns = await self._ans(namespace)
        async for item in t.awatch_objects(ns, resource_version, label_selector, field_selector, timeout_seconds,
                                           path=fluid_path(ns, kind), what=plural_of(kind)):
            yield item


class FluidObjectSource:
    """One Fluid kind through a :class:`FluidHook`, in the shape the watch hub reads objects
    (:class:`~airflow_argo_eci.triggers.watch_hub.WorkflowSource`: get, list, watch)."""

    supports_watch = True

    def __init__(self, hook: FluidHook, kind: str) -> None:
        plural_of(kind)
        self.hook = hook
        self.kind = kind

    async def aget_workflow(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The object ``name`` of the kind."""
        return await self.hook.aget_object(self.kind, name, namespace)

    async def alist_workflows(
        self, namespace: str | None = None, label_selector: str = "", field_selector: str = ""
    ) -> WorkflowList:
        """Every object of the kind in ``namespace``."""
        return await self.hook.alist_objects(self.kind, namespace, label_selector, field_selector)

    def awatch_workflows(
        self, namespace: str | None = None, resource_version: str = "", label_selector: str = "",
        field_selector: str = "", timeout_seconds: int = 300,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """A watch of the kind."""
        return self.hook.awatch_objects(self.kind, namespace, resource_version, label_selector, field_selector,
                                        timeout_seconds)

    async def ahydrate(self, workflow: dict[str, Any]) -> dict[str, Any]:
        """``workflow`` itself: only Argo offloads node status, these objects never hold any."""
        return workflow

    async def aclose(self) -> None:
        """Release the hook's async client."""
        await self.hook.aclose()
