"""``ArgoWorkflowsHook``: submit, inspect and control Argo Workflows from Airflow.

One interface over two transports, chosen by the connection's ``transport`` extra:

``kubernetes`` (default)
    The ``argoproj.io/v1alpha1`` custom resources through the Kubernetes API, with the official
    ``kubernetes`` (sync) and ``kubernetes_asyncio`` (async) clients. Extras: ``kube_config_path``,
    ``kube_config`` (inline YAML/JSON, masked), ``in_cluster``, ``context``, ``namespace``,
    ``verify_ssl``, ``ssl_ca_cert``/``ca_cert_path``, ``request_timeout``, ``ui_url``,
    ``max_retries``, ``retry_backoff``, and ``argo_server_url`` / ``argo_server_token`` (masked):
    the Argo Server that serves the node status Argo offloads to its database (TLS verified with
    the connection's CA settings).
``argo_server``
    The Argo Server REST API over httpx. Connection ``host`` (an https URL; ``schema`` and
    ``port`` are honoured), ``password`` = bearer token (masked). Extras: ``namespace``,
    ``verify_ssl``, ``ca_cert_path``, ``request_timeout``, ``ui_url``, ``max_retries``,
    ``retry_backoff``.

Any other extra is an error naming the key and the allowed ones. TLS is verified unless
``verify_ssl`` is false (which logs a warning). Failures raise the typed errors of
:mod:`airflow_argo_eci.errors`; transient ones (429, 5xx, connection resets, timeouts) are retried
with exponential backoff and jitter first (``max_retries`` attempts, default 4). Heavy clients are
imported on first use, so importing this module stays cheap.

Each call is one operation of the transport's
:class:`~airflow_argo_eci.hooks.argo_transport.WorkflowOperations` (the requests it sends, described
once), run by the transport's sync ``run`` or async ``arun``: a method and its ``a``-prefixed async
twin run the same operation to the same result (``list_workflows`` and ``alist_workflows`` both
return a :class:`~airflow_argo_eci.hooks.argo_requests.WorkflowList`: the objects, plus the list's
``resource_version``).

Workflows read over the Kubernetes API may have their nodes offloaded (``nodeStatusOffLoad``):
:meth:`ArgoWorkflowsHook.hydrate` / :meth:`~ArgoWorkflowsHook.ahydrate` return them with their
nodes, read from the Argo Server as Argo's clients do (:mod:`~airflow_argo_eci.hooks.argo_offload`);
every reader of nodes (results, failure messages, pod logs, artifacts, the Argo view) goes through it.

Example connection (environment variable)::

    AIRFLOW_CONN_ARGO_DEFAULT='{"conn_type": "argo_workflows",
        "extra": {"transport": "kubernetes", "kube_config_path": "~/.kube/config", "namespace": "argo"}}'
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

from airflow_argo_eci.errors import ArgoEciError, WorkflowSpecError
from airflow_argo_eci.hooks.argo_connection import ArgoConnectionMixin, ArgoConnectionSettings
from airflow_argo_eci.hooks.argo_offload import hydrate_workflow, offload_version
from airflow_argo_eci.hooks.argo_requests import WorkflowList, check_name, check_template_body
from airflow_argo_eci.hooks.argo_transport import WorkflowTransport
from airflow_argo_eci.hooks.connection_form import UI_FIELD_BEHAVIOUR
from airflow_argo_eci.hooks.transports import transport_for
from airflow_argo_eci.workflows import workflow_pods

__all__ = ["ArgoConnectionSettings", "ArgoWorkflowsHook", "WorkflowList"]


class ArgoWorkflowsHook(ArgoConnectionMixin, BaseHook):
    """Argo Workflows over the Kubernetes API or the Argo Server (see the module docstring).

    :param argo_conn_id: the ``argo_workflows`` connection to use
    """

    conn_type = "argo_workflows"
    conn_name_attr = "argo_conn_id"
    default_conn_name = "argo_default"
    hook_name = "Argo Workflows"

    def __init__(self, argo_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.argo_conn_id = argo_conn_id
        self._settings: ArgoConnectionSettings | None = None
        self._transport: WorkflowTransport | None = None

    # ------------------------------------------------------------------ connection form

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden and relabeled connection form fields with placeholders.

        Airflow >= 3.2 reads the same data (and the extra fields, ``connection_form.CONN_FIELDS``) declaratively
        from the provider info; wtforms-based ``get_connection_form_widgets`` is not provided
        because Airflow 3 no longer ships wtforms."""
        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
        }

    # ------------------------------------------------------------------ settings and transport

    def _make_transport(self, settings: ArgoConnectionSettings) -> WorkflowTransport:
        if self._transport is None:
            self._transport = transport_for(settings)
        return self._transport

    def get_conn(self) -> WorkflowTransport:
        """The transport object for this connection (created once)."""
        return self._make_transport(self.settings)

    async def _atransport(self) -> WorkflowTransport:
        return self._make_transport(await self.asettings())

    @property
    def supports_watch(self) -> bool:
        """Whether :meth:`awatch_workflows` works (False for ``argo_server``: callers poll)."""
        return self.settings.transport == "kubernetes"

    def _ns(self, namespace: str | None) -> str:
        return namespace or self.get_conn().default_namespace

    async def _ans(self, namespace: str | None) -> str:
        return namespace or (await self._atransport()).default_namespace

    def close(self) -> None:
        """Release the sync client's connections."""
        if self._transport is not None:
            self._transport.close()

    async def aclose(self) -> None:
        """Release the async client's connections."""
        if self._transport is not None:
            await self._transport.aclose()

    # ------------------------------------------------------------------ workflows (sync)

    def create_workflow(self, body: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Create a Workflow (``body`` is not modified); returns the stored object.

        Not retried on errors where the request may already have taken effect (5xx, read
        timeouts), so a retry can never create a second workflow.
        """
        t = self.get_conn()
        return t.run(t.operations.create_workflow(dict(body), self._ns(namespace)))

    def get_workflow(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The Workflow ``name``; :class:`~airflow_argo_eci.errors.NotFoundError` if there is none."""
        t = self.get_conn()
        return t.run(t.operations.get_workflow(check_name("workflow", name), self._ns(namespace)))

    def list_workflows(
        self, namespace: str | None = None, label_selector: str = "", field_selector: str = ""
    ) -> WorkflowList:
        """All Workflows matching the selectors (pages are followed), with the list's
        ``resource_version`` to start a watch from."""
        t = self.get_conn()
        return t.run(t.operations.list_workflows(self._ns(namespace), label_selector, field_selector))

    def stop_workflow(
        self, name: str, namespace: str | None = None, message: str | None = None, *, node_field_selector: str = "",
        uid: str = "",
    ) -> dict[str, Any]:
        """``argo stop``: ``spec.shutdown: Stop`` (exit handlers still run). With
        ``node_field_selector``, only the matching Suspend nodes are failed, with ``message``.
        With ``uid``, a same-named successor is refused with :class:`ConflictError`."""
        t = self.get_conn()
        return t.run(t.operations.stop_workflow(
            check_name("workflow", name), self._ns(namespace), message, node_field_selector, uid
        ))

    def terminate_workflow(self, name: str, namespace: str | None = None, *, uid: str = "") -> dict[str, Any]:
        """``argo terminate``: ``spec.shutdown: Terminate`` (no exit handlers); fenced by ``uid``."""
        t = self.get_conn()
        return t.run(t.operations.terminate_workflow(check_name("workflow", name), self._ns(namespace), uid))

    def delete_workflow(self, name: str, namespace: str | None = None, *, uid: str = "") -> None:
        """Delete the Workflow (its pods go with it); with ``uid``, only that workflow
        (``preconditions.uid``: a same-named successor is refused with :class:`ConflictError`)."""
        t = self.get_conn()
        t.run(t.operations.delete_workflow(check_name("workflow", name), self._ns(namespace), uid))

    def retry_workflow(
        self,
        name: str,
        namespace: str | None = None,
        *,
        restart_successful: bool = False,
        node_field_selector: str = "",
        parameters: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``argo retry`` of a Failed/Error workflow: failed nodes and their pods are removed and run
        again. A workflow in another phase raises :class:`~airflow_argo_eci.errors.InvalidError`."""
        t = self.get_conn()
        return t.run(t.operations.retry_workflow(
            check_name("workflow", name), self._ns(namespace), restart_successful=restart_successful,
            node_field_selector=node_field_selector, parameters=dict(parameters) if parameters else None,
        ))

    def resubmit_workflow(
        self, name: str, namespace: str | None = None, *, parameters: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """``argo resubmit``: a new Workflow (``generateName``) with the same spec; returns it."""
        t = self.get_conn()
        return t.run(t.operations.resubmit_workflow(
            check_name("workflow", name), self._ns(namespace), dict(parameters) if parameters else None
        ))

    def suspend_workflow(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """``argo suspend``: ``spec.suspend: true`` (running pods finish, no new ones start)."""
        t = self.get_conn()
        return t.run(t.operations.suspend_workflow(check_name("workflow", name), self._ns(namespace)))

    def resume_workflow(
        self, name: str, namespace: str | None = None, *, node_field_selector: str = ""
    ) -> dict[str, Any]:
        """``argo resume``: clears ``spec.suspend`` and completes running Suspend nodes (only those
        matching ``node_field_selector`` when given)."""
        t = self.get_conn()
        return t.run(t.operations.resume_workflow(check_name("workflow", name), self._ns(namespace),
                                                  node_field_selector))

    def get_workflow_template(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The WorkflowTemplate ``name``."""
        t = self.get_conn()
        return t.run(t.operations.get_workflow_template(check_name("workflow template", name), self._ns(namespace)))

    def apply_workflow_template(self, body: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Create the WorkflowTemplate ``body`` or update the one of its name (``metadata.name``) to
        it: idempotent, an unchanged template is not written again; a concurrent writer's 409 makes
        it read and try again. ``namespace`` defaults to ``metadata.namespace``, then the
        connection's. Returns the stored WorkflowTemplate."""
        meta = body.get("metadata") if isinstance(body, Mapping) else None
        ns = self._ns(namespace or (meta.get("namespace") if isinstance(meta, Mapping) else None) or None)
        t = self.get_conn()
        return t.run(t.operations.apply_workflow_template(check_template_body(body, ns), ns))

    def get_cluster_workflow_template(self, name: str) -> dict[str, Any]:
        """The ClusterWorkflowTemplate ``name``."""
        t = self.get_conn()
        return t.run(t.operations.get_cluster_workflow_template(check_name("cluster workflow template", name)))

    def read_pod_log(
        self,
        pod_name: str,
        namespace: str | None = None,
        *,
        container: str = "main",
        since_time: str | None = None,
        workflow: str | None = None,
    ) -> list[tuple[str, str]]:
        """``(RFC 3339 timestamp, line)`` pairs of a pod's container log.

        :param since_time: only lines strictly after this timestamp (pass the last one seen to
            continue without repeating lines)
        :param workflow: the pod's workflow name; required by the ``argo_server`` transport, which
            serves logs per workflow
        """
        t = self.get_conn()
        return t.run(t.operations.read_pod_log(
            check_name("pod", pod_name), self._ns(namespace), container=container, since_time=since_time,
            workflow=workflow,
        ))

    def hydrate(self, workflow: dict[str, Any]) -> dict[str, Any]:
        """``workflow`` (as a get, list or watch returned it) with its nodes: when Argo offloaded
        them (``status.offloadNodeStatusVersion``), a copy holding the nodes the Argo Server serves
        (the connection's ``argo_server_url`` on the kubernetes transport), checked to be of the
        same workflow (uid) and version; otherwise ``workflow`` itself, without a request.
        Raises :class:`~airflow_argo_eci.workflows.OffloadedNodesError` naming the extra to set
        when the connection cannot reach an Argo Server."""
        if not offload_version(workflow):
            return workflow
        t = self.get_conn()
        return t.run(hydrate_workflow(workflow, t.operations.get_workflow))

    async def ahydrate(self, workflow: dict[str, Any]) -> dict[str, Any]:
        """Async :meth:`hydrate`."""
        if not offload_version(workflow):
            return workflow
        t = await self._atransport()
        return await t.arun(hydrate_workflow(workflow, t.operations.get_workflow))

    @staticmethod
    def pods_of(workflow: Mapping[str, Any]) -> list[tuple[str, str]]:
        """``(node display name, pod name)`` for every pod node of ``workflow``, in start order."""
        return workflow_pods(workflow)

    def download_artifact(
        self,
        workflow: str,
        node_id: str,
        artifact_name: str,
        destination: str | os.PathLike[str],
        namespace: str | None = None,
        *,
        direction: str = "outputs",
    ) -> Path:
        """Download an artifact of node ``node_id`` through the Argo Server's artifact route
        (``/artifact-files/{ns}/workflows/{workflow}/{node_id}/{direction}/{artifact_name}``) into the
        file ``destination``; returns its path.

        The body is streamed to a temporary file beside ``destination`` and renamed into place once
        its size (``Content-Length``) and CRC-64 (``x-oss-hash-crc64ecma``) match, when the server
        sends them. The file is the object as stored: a tar-archived artifact (Argo's default)
        arrives as its ``.tgz`` (:func:`airflow_argo_eci.archives.unpack_tgz` unpacks it).
        ``direction`` is ``outputs`` or ``inputs``. Only the ``argo_server`` transport has artifact
        routes; over ``kubernetes`` this raises :class:`~airflow_argo_eci.errors.WorkflowSpecError`
        pointing to :meth:`airflow_argo_eci.hooks.oss.OSSArtifactHook.download_artifact`.
        """
        from airflow_argo_eci.hooks.argo_server_requests import artifact_path
        from airflow_argo_eci.hooks.argo_server_transport import ArgoServerTransport

        transport = self.get_conn()
        if not isinstance(transport, ArgoServerTransport):
            raise WorkflowSpecError(
                f"connection {self.argo_conn_id!r} uses the {self.settings.transport} transport, which has no "
                "artifact download route; read the artifact from its repository instead: "
                "OSSArtifactHook(...).download_artifact(workflow_artifacts(hook.get_workflow(workflow), "
                "node=node_id, name=artifact_name)[0], destination) (airflow_argo_eci.hooks.oss and "
                "airflow_argo_eci.hooks.oss_artifacts)"
            )
        ns = self._ns(namespace)
        path = artifact_path(ns, workflow, node_id, artifact_name, direction)
        target = Path(destination)
        transport.download(path, target, f"download artifact {artifact_name} of {ns}/{workflow} node {node_id}")
        return target

    def workflow_url(self, name: str, namespace: str | None = None) -> str | None:
        """``<ui_url>/workflows/<namespace>/<name>``, or None without a ``ui_url`` extra."""
        ui_url = self.settings.ui_url
        if not ui_url:
            return None
        return f"{ui_url}/workflows/{self._ns(namespace)}/{name}"

    def test_connection(self) -> tuple[bool, str]:
        """List one workflow in the connection's namespace; ``(ok, message)``, never raises."""

        def probe() -> str:
            transport = self.get_conn()
            namespace = transport.default_namespace
            transport.run(transport.operations.probe(namespace))
            return f"Connected to {transport.endpoint()}: listed workflows in namespace {namespace!r}"

        return self._test_connection(probe, "failed")

    # ------------------------------------------------------------------ async

    async def aget_workflow(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """Async :meth:`get_workflow`."""
        t = await self._atransport()
        return await t.arun(t.operations.get_workflow(check_name("workflow", name), await self._ans(namespace)))

    async def alist_workflows(
        self, namespace: str | None = None, label_selector: str = "", field_selector: str = ""
    ) -> WorkflowList:
        """Async :meth:`list_workflows` (the same :class:`WorkflowList`)."""
        t = await self._atransport()
        return await t.arun(t.operations.list_workflows(await self._ans(namespace), label_selector, field_selector))

    async def awatch_workflows(
        self,
        namespace: str | None = None,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
        timeout_seconds: int = 300,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """``(event type, object)`` of a watch from ``resource_version`` (``""``: current state as
        ADDED events first). BOOKMARK events are yielded too (their object carries only
        ``metadata.resourceVersion``), so callers can track where to resume. Ends when the server
        closes the watch after ``timeout_seconds``; raises
        :class:`~airflow_argo_eci.errors.GoneError` when ``resource_version`` is too old (relist).
        Only the ``kubernetes`` transport can watch (see :attr:`supports_watch`)."""
        transport = await self._atransport()
        if not transport.supports_watch:
            raise ArgoEciError(
                f"connection {self.argo_conn_id!r} uses the argo_server transport, which cannot watch; check "
                "hook.supports_watch and poll aget_workflow/alist_workflows instead"
            )
        async for item in transport.awatch_workflows(
            await self._ans(namespace), resource_version, label_selector, field_selector, timeout_seconds
        ):
            yield item

    async def astop_workflow(
        self, name: str, namespace: str | None = None, message: str | None = None, *, node_field_selector: str = "",
        uid: str = "",
    ) -> dict[str, Any]:
        """Async :meth:`stop_workflow`, fenced by ``uid``."""
        t = await self._atransport()
        return await t.arun(t.operations.stop_workflow(
            check_name("workflow", name), await self._ans(namespace), message, node_field_selector, uid
        ))

    async def aterminate_workflow(self, name: str, namespace: str | None = None, *, uid: str = "") -> dict[str, Any]:
        """Async :meth:`terminate_workflow`, fenced by ``uid``."""
        t = await self._atransport()
        return await t.arun(t.operations.terminate_workflow(check_name("workflow", name), await self._ans(namespace),
                                                            uid))

    async def adelete_workflow(self, name: str, namespace: str | None = None, *, uid: str = "") -> None:
        """Async :meth:`delete_workflow`, fenced by ``uid``."""
        t = await self._atransport()
        await t.arun(t.operations.delete_workflow(check_name("workflow", name), await self._ans(namespace), uid))
