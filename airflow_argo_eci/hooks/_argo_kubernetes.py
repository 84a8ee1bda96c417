"""The hook's ``kubernetes`` transport: Argo custom resources through the Kubernetes API.

Sync calls use the official ``kubernetes`` client, async calls ``kubernetes_asyncio``; both load
the same configuration (kubeconfig file, inline kubeconfig, or in-cluster service account) and
are imported lazily.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import yaml

from airflow_argo_eci.conventions import ANNOTATION_NODE_ID, GROUP, LABEL_WORKFLOW, VERSION, WORKFLOWS
from airflow_argo_eci.errors import (
    ArgoApiError,
    ArgoEciError,
    GoneError,
    InvalidError,
    NotFoundError,
    TransientError,
    WorkflowSpecError,
)
from airflow_argo_eci.hooks._argo_common import (
    LIST_PAGE_SIZE,
    ArgoConnectionSettings,
    CachedClients,
    Retrying,
    backoff_delay,
    check_body,
    delete_options,
    parse_log_lines,
    shutdown_patch,
    since_seconds,
    status_error_from_event,
    uid_conflict,
)
from airflow_argo_eci.hooks._masking import mask_kubeconfig
from airflow_argo_eci.retry import (
    RetryError,
    formulate_resubmit,
    formulate_retry,
    update_suspend_nodes,
)
from airflow_argo_eci.retry import (
    node_field_selector as parse_node_field_selector,
)

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class KubernetesTransport(CachedClients):
    """Workflows, templates and pod logs through the Kubernetes API (see the module docstring)."""

    supports_watch = True

    def __init__(self, settings: ArgoConnectionSettings) -> None:
        self.settings = settings
        self.retrying = Retrying(settings)
        self._namespace: str | None = settings.namespace

    # ------------------------------------------------------------------ configuration

    def _kubeconfig_doc(self) -> dict[str, Any] | None:
        s = self.settings
        if s.kube_config is not None:
            return s.kube_config
        if s.in_cluster:
            return None
        import os

        path = s.kube_config_path or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or "~/.kube/config"
        try:
            doc = yaml.safe_load(Path(path).expanduser().read_text())
        except (OSError, yaml.YAMLError):
            return None
        return doc if isinstance(doc, dict) else None

    @property
    def default_namespace(self) -> str:
        """The connection's namespace, else the kubeconfig context's (or the pod's), else ``default``."""
        if self._namespace:
            return self._namespace
        namespace = ""
        if self.settings.in_cluster:
            try:
                namespace = _SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
            except OSError:
                namespace = ""
        else:
            doc = self._kubeconfig_doc() or {}
            wanted = self.settings.context or doc.get("current-context")
            for ctx in doc.get("contexts") or []:
                if isinstance(ctx, dict) and ctx.get("name") == wanted:
                    namespace = str((ctx.get("context") or {}).get("namespace") or "")
        self._namespace = namespace or "default"
        return self._namespace

    def _config_error(self, exc: Exception) -> ArgoEciError:
        return WorkflowSpecError(
            f"connection {self.settings.conn_id!r}: cannot load the Kubernetes configuration from "
            f"{self.settings.describe()}: {exc}"
        )

    def _tune(self, cfg: Any) -> None:
        s = self.settings
        if s.ca_cert_path:
            if not Path(s.ca_cert_path).expanduser().is_file():
                raise WorkflowSpecError(
                    f"connection {s.conn_id!r}: CA certificate file {s.ca_cert_path!r} does not exist"
                )
            cfg.ssl_ca_cert = str(Path(s.ca_cert_path).expanduser())
        if not s.verify_ssl:
            cfg.verify_ssl = False

    def _api(self) -> Any:
        if self._sync is None:
            from kubernetes import client, config
            from kubernetes.config.config_exception import ConfigException

            cfg = client.Configuration()
            s = self.settings
            try:
                if s.in_cluster:
                    config.load_incluster_config(client_configuration=cfg)
                elif s.kube_config is not None:
                    config.load_kube_config_from_dict(
                        s.kube_config, context=s.context, client_configuration=cfg, persist_config=False
                    )
                else:
                    mask_kubeconfig(self._kubeconfig_doc())
                    config.load_kube_config(
                        config_file=s.kube_config_path, context=s.context, client_configuration=cfg,
                        persist_config=False,
                    )
            except (ConfigException, OSError, TypeError, ValueError) as exc:
                raise self._config_error(exc) from exc
            self._tune(cfg)
            self._sync = client.ApiClient(configuration=cfg)
            self.retrying.url = cfg.host or ""
        return self._sync

    async def _aapi(self) -> Any:
        if self._loop_client() is None:
            from kubernetes_asyncio import client, config
            from kubernetes_asyncio.config.config_exception import ConfigException

            cfg = client.Configuration()
            s = self.settings
            try:
                if s.in_cluster:
                    config.load_incluster_config(client_configuration=cfg)
                elif s.kube_config is not None:
                    await config.load_kube_config_from_dict(s.kube_config, context=s.context, client_configuration=cfg)
                else:
                    mask_kubeconfig(self._kubeconfig_doc())
                    await config.load_kube_config(
                        config_file=s.kube_config_path, context=s.context, client_configuration=cfg,
                        persist_config=False,
                    )
            except (ConfigException, OSError, TypeError, ValueError) as exc:
                raise self._config_error(exc) from exc
            self._tune(cfg)
            self._keep_loop_client(client.ApiClient(configuration=cfg))
            self.retrying.url = cfg.host or ""
        return self._async

    def _custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self._api())

    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self._api())

    async def _acustom(self) -> Any:
        from kubernetes_asyncio import client

        return client.CustomObjectsApi(await self._aapi())

    @property
    def _timeout(self) -> float:
        return self.settings.request_timeout

    def _call(self, context: str, fn: Callable[[], Any], *, idempotent: bool = True) -> Any:
        return self.retrying.call(context, fn, idempotent=idempotent)

    # ------------------------------------------------------------------ workflows (sync)

    def create_workflow(self, body: dict[str, Any], namespace: str) -> dict[str, Any]:
        wf = check_body(body)
        custom = self._custom()
        return self._call(
            f"create workflow in {namespace}",
            lambda: custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, WORKFLOWS, wf, _request_timeout=self._timeout
            ),
            idempotent=False,
        )

    def get_workflow(self, name: str, namespace: str) -> dict[str, Any]:
        custom = self._custom()
        return self._call(
            f"get workflow {namespace}/{name}",
            lambda: custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, WORKFLOWS, name, _request_timeout=self._timeout
            ),
        )

    def list_workflows(self, namespace: str, label_selector: str, field_selector: str) -> list[dict[str, Any]]:
        custom = self._custom()
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            page = self._call(
                f"list workflows in {namespace}",
                lambda t=token: custom.list_namespaced_custom_object(  # type: ignore[misc]
                    GROUP, VERSION, namespace, WORKFLOWS, label_selector=label_selector,
                    field_selector=field_selector, limit=LIST_PAGE_SIZE, _continue=t or None,
                    _request_timeout=self._timeout,
                ),
            )
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return items

    def _patch(self, context: str, name: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        custom = self._custom()
        return self._call(
            context,
            lambda: custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, WORKFLOWS, name, body, _content_type=MERGE_PATCH,
                _request_timeout=self._timeout,
            ),
        )

    def _write_status(self, context: str, name: str, namespace: str, status_patch: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch ``status`` through the status subresource; clusters whose Workflow CRD has
        none (Argo's own CRDs) answer 404 and get the patch on the main resource instead."""
        custom = self._custom()
        try:
            result: dict[str, Any] = self._call(
                context,
                lambda: custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, WORKFLOWS, name, {"status": status_patch},
                    _content_type=MERGE_PATCH, _request_timeout=self._timeout,
                ),
            )
            return result
        except NotFoundError:
            return self._patch(context, name, namespace, {"status": status_patch})

    def _shutdown(self, name: str, namespace: str, strategy: str, uid: str = "") -> dict[str, Any]:
        try:
            return self._patch(f"{strategy.lower()} workflow {namespace}/{name}", name, namespace,
                               shutdown_patch(strategy, uid))
        except InvalidError as exc:
            raise uid_conflict(exc) from exc

    def stop_workflow(
        self, name: str, namespace: str, message: str | None, node_field_selector: str, uid: str = ""
    ) -> dict[str, Any]:
        if node_field_selector:
            return self._set_suspend_nodes(name, namespace, "Failed", message or "", node_field_selector, "stop")
        return self._shutdown(name, namespace, "Stop", uid)

    def terminate_workflow(self, name: str, namespace: str, uid: str = "") -> dict[str, Any]:
        return self._shutdown(name, namespace, "Terminate", uid)

    def delete_workflow(self, name: str, namespace: str, uid: str = "") -> None:
        custom = self._custom()
        self._call(
            f"delete workflow {namespace}/{name}",
            lambda: custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, WORKFLOWS, name, body=delete_options(uid), _request_timeout=self._timeout
            ),
        )

    def suspend_workflow(self, name: str, namespace: str) -> dict[str, Any]:
        return self._patch(f"suspend workflow {namespace}/{name}", name, namespace, {"spec": {"suspend": True}})

    def _set_suspend_nodes(
        self, name: str, namespace: str, phase: str, message: str, selector: str, verb: str
    ) -> dict[str, Any]:
        try:
            parse_node_field_selector(selector)  # bad input fails before any request
        except RetryError as exc:
            raise WorkflowSpecError(str(exc)) from None
        context = f"{verb} workflow {namespace}/{name}"
        changed = self._suspend_node_changes(context, name, namespace, phase, message=message, selector=selector)
        return self._write_status(context, name, namespace, {"nodes": changed})

    def _suspend_node_changes(
        self, context: str, name: str, namespace: str, phase: str, *, message: str = "", selector: str = ""
    ) -> dict[str, dict[str, Any]]:
        wf = self.get_workflow(name, namespace)
        try:
            return update_suspend_nodes(wf, phase, message=message, selector=selector)
        except RetryError as exc:
            raise InvalidError(f"{context}: {exc}", reason="BadRequest") from exc

    def resume_workflow(self, name: str, namespace: str, node_field_selector: str) -> dict[str, Any]:
        context = f"resume workflow {namespace}/{name}"
        if node_field_selector:
            return self._set_suspend_nodes(name, namespace, "Succeeded", "", node_field_selector, "resume")
        changed = self._suspend_node_changes(context, name, namespace, "Succeeded")
        if changed:
            self._write_status(context, name, namespace, {"nodes": changed})
        return self._patch(context, name, namespace, {"spec": {"suspend": None}})

    def retry_workflow(
        self, name: str, namespace: str, *, restart_successful: bool, node_field_selector: str,
        parameters: dict[str, Any] | None,
    ) -> dict[str, Any]:
        context = f"retry workflow {namespace}/{name}"
        wf = self.get_workflow(name, namespace)
        try:
            new, deleted = formulate_retry(
                wf, restart_successful=restart_successful, node_field_selector_text=node_field_selector,
                parameters=parameters,
            )
        except RetryError as exc:
            raise InvalidError(f"{context}: {exc}", reason="BadRequest") from exc
        # as `argo retry`: first the pods of the removed nodes, then the workflow itself
        core = self._core()
        pods = self._call(
            f"{context}: list pods",
            lambda: core.list_namespaced_pod(
                namespace, label_selector=f"{LABEL_WORKFLOW}={name}", _request_timeout=self._timeout
            ),
        )
        for pod in pods.items:
            annotations = pod.metadata.annotations or {}
            if annotations.get(ANNOTATION_NODE_ID) not in deleted:
                continue
            try:
                self._call(
                    f"{context}: delete pod {pod.metadata.name}",
                    lambda p=pod.metadata.name: core.delete_namespaced_pod(  # type: ignore[misc]
                        p, namespace, _request_timeout=self._timeout
                    ),
                )
            except NotFoundError:
                pass
        custom = self._custom()
        # status first (the workflow is Running again) while it still carries the completed label,
        # so a controller never sees an incomplete workflow with the old Failed status
        try:
            written: dict[str, Any] = self._call(
                context,
                lambda: custom.replace_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, WORKFLOWS, name, new, _request_timeout=self._timeout
                ),
            )
            new["metadata"]["resourceVersion"] = written["metadata"]["resourceVersion"]
        except NotFoundError:
            pass  # no status subresource (Argo's CRDs): the replace below writes status too
        result: dict[str, Any] = self._call(
            context,
            lambda: custom.replace_namespaced_custom_object(
                GROUP, VERSION, namespace, WORKFLOWS, name, new, _request_timeout=self._timeout
            ),
        )
        return result

    def resubmit_workflow(self, name: str, namespace: str, parameters: dict[str, Any] | None) -> dict[str, Any]:
        wf = self.get_workflow(name, namespace)
        return self.create_workflow(formulate_resubmit(wf, parameters), namespace)

    def get_workflow_template(self, name: str, namespace: str) -> dict[str, Any]:
        custom = self._custom()
        return self._call(
            f"get workflow template {namespace}/{name}",
            lambda: custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "workflowtemplates", name, _request_timeout=self._timeout
            ),
        )

    def get_cluster_workflow_template(self, name: str) -> dict[str, Any]:
        custom = self._custom()
        return self._call(
            f"get cluster workflow template {name}",
            lambda: custom.get_cluster_custom_object(
                GROUP, VERSION, "clusterworkflowtemplates", name, _request_timeout=self._timeout
            ),
        )

    def read_pod_log(
        self, pod_name: str, namespace: str, *, container: str, since_time: str | None, workflow: str | None
    ) -> list[tuple[str, str]]:
        core = self._core()
        kwargs: dict[str, Any] = {"container": container, "timestamps": True, "_preload_content": False,
                                  "_request_timeout": self._timeout}
        if since_time:
            kwargs["since_seconds"] = since_seconds(since_time)

        def read() -> str:
            # _preload_content=False: kubernetes 36 mangles str responses (kubernetes-client/python#2596)
            response = core.read_namespaced_pod_log(pod_name, namespace, **kwargs)
            try:
                return bytes(response.data).decode("utf-8", errors="replace")
            finally:
                response.release_conn()

        return parse_log_lines(self._call(f"read log of pod {namespace}/{pod_name}", read), since_time)

    def probe(self, namespace: str) -> str:
        """List one workflow (no retries); returns where it connected."""
        custom = self._custom()
        self.retrying.call(
            f"list workflows in {namespace}",
            lambda: custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, WORKFLOWS, limit=1, _request_timeout=self._timeout
            ),
            retries=0,
        )
        return f"{self.settings.describe()} at {self.retrying.url}"

    # ------------------------------------------------------------------ async

    async def aget_workflow(self, name: str, namespace: str) -> dict[str, Any]:
        custom = await self._acustom()
        result: dict[str, Any] = await self.retrying.acall(
            f"get workflow {namespace}/{name}",
            lambda: custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, WORKFLOWS, name, _request_timeout=self._timeout
            ),
        )
        return result

    async def alist_workflows(
        self, namespace: str, label_selector: str, field_selector: str
    ) -> tuple[list[dict[str, Any]], str]:
        custom = await self._acustom()
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            page: dict[str, Any] = await self.retrying.acall(
                f"list workflows in {namespace}",
                lambda t=token: custom.list_namespaced_custom_object(  # type: ignore[misc]
                    GROUP, VERSION, namespace, WORKFLOWS, label_selector=label_selector,
                    field_selector=field_selector, limit=LIST_PAGE_SIZE, _continue=t or None,
                    _request_timeout=self._timeout,
                ),
            )
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    async def _apatch(self, context: str, name: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        custom = await self._acustom()
        result: dict[str, Any] = await self.retrying.acall(
            context,
            lambda: custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, WORKFLOWS, name, body, _content_type=MERGE_PATCH,
                _request_timeout=self._timeout,
            ),
        )
        return result

    async def _ashutdown(self, name: str, namespace: str, strategy: str, uid: str) -> dict[str, Any]:
        try:
            return await self._apatch(f"{strategy.lower()} workflow {namespace}/{name}", name, namespace,
                                      shutdown_patch(strategy, uid))
        except InvalidError as exc:
            raise uid_conflict(exc) from exc

    async def astop_workflow(self, name: str, namespace: str, uid: str = "") -> dict[str, Any]:
        return await self._ashutdown(name, namespace, "Stop", uid)

    async def aterminate_workflow(self, name: str, namespace: str, uid: str = "") -> dict[str, Any]:
        return await self._ashutdown(name, namespace, "Terminate", uid)

    async def adelete_workflow(self, name: str, namespace: str, uid: str = "") -> None:
        custom = await self._acustom()
        await self.retrying.acall(
            f"delete workflow {namespace}/{name}",
            lambda: custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, WORKFLOWS, name, body=delete_options(uid), _request_timeout=self._timeout
            ),
        )

    async def awatch_workflows(
        self, namespace: str, resource_version: str, label_selector: str, field_selector: str, timeout_seconds: int
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Watch events until the server ends the watch after ``timeout_seconds``.

        A dropped connection is resumed from the last resourceVersion seen (events or BOOKMARKs)
        with backoff, up to ``max_retries`` consecutive failures; a 410 raises :class:`GoneError`.
        """
        from kubernetes_asyncio import watch

        custom = await self._acustom()
        context = f"watch workflows in {namespace}"
        last_rv = resource_version
        failures = 0
        while True:
            kwargs: dict[str, Any] = {
                "allow_watch_bookmarks": True, "timeout_seconds": timeout_seconds,
                "label_selector": label_selector, "field_selector": field_selector,
                "_request_timeout": timeout_seconds + self._timeout,
            }
            if last_rv:
                kwargs["resource_version"] = last_rv
            w = watch.Watch()
            try:
                async with w.stream(custom.list_namespaced_custom_object, GROUP, VERSION, namespace, WORKFLOWS,
                                    **kwargs) as stream:
                    async for event in stream:
                        kind = str(event.get("type", ""))
                        obj = event.get("raw_object") or event.get("object") or {}
                        if kind == "ERROR":
                            raise status_error_from_event(obj, context)
                        failures = 0
                        last_rv = str((obj.get("metadata") or {}).get("resourceVersion") or last_rv)
                        yield kind, obj
                return
            except ArgoApiError:
                raise
            except Exception as exc:
                error = self.retrying.convert(exc, context)
                if error is None:
                    raise
                if isinstance(error, GoneError) or not isinstance(error, TransientError) \
                        or failures >= self.settings.max_retries:
                    raise error from exc
            delay = backoff_delay(failures, self.settings.retry_backoff)
            log.info("%s: connection lost, resuming from resourceVersion %s in %.1fs", context, last_rv, delay)
            await asyncio.sleep(delay)
            failures += 1
