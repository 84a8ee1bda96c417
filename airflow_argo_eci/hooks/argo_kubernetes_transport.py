"""The hook's ``kubernetes`` transport: Argo custom resources through the Kubernetes API.

The requests :class:`~airflow_argo_eci.hooks.argo_kubernetes_requests.KubernetesOperations`
describes are sent with ``ApiClient.call_api`` of the official ``kubernetes`` client (sync) and
of ``kubernetes_asyncio`` (async); both load the same configuration (kubeconfig file, inline
kubeconfig, or in-cluster service account), which brings its auth, TLS settings and timeouts.
The clients are imported lazily. Requests only the Argo Server answers (reading offloaded nodes,
:class:`~airflow_argo_eci.hooks.argo_offload.ArgoServerRequest`) go to the connection's
``argo_server_url``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml

from airflow_argo_eci.errors import (
    ArgoApiError,
    ArgoEciError,
    GoneError,
    TransientError,
    WorkflowSpecError,
    api_error_from_status,
)
from airflow_argo_eci.hooks._masking import mask_kubeconfig
from airflow_argo_eci.hooks.api_clients import CachedClients
from airflow_argo_eci.hooks.api_retry import Retrying, backoff_delay
from airflow_argo_eci.hooks.argo_connection import ArgoConnectionSettings
from airflow_argo_eci.hooks.argo_kubernetes_requests import KubernetesOperations, watch_request
from airflow_argo_eci.hooks.argo_offload import ArgoServerRequest, argo_server_transport
from airflow_argo_eci.hooks.argo_requests import (
    ApiRequest,
    RequestRunner,
    status_error_from_event,
)

log = logging.getLogger(__name__)


_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
#: every success status decodes to the JSON object (the generated methods list one or two of these)
_RESPONSE_TYPES = {200: "object", 201: "object", 202: "object"}


class KubernetesTransport(CachedClients, RequestRunner):
    """Workflows, templates and pod logs through the Kubernetes API (see the module docstring)."""

    supports_watch = True

    def __init__(self, settings: ArgoConnectionSettings) -> None:
        self.settings = settings
        self.retrying = Retrying(settings)
        self._namespace: str | None = settings.namespace
        self._operations = KubernetesOperations()
        self._argo_server: Any = None

    @property
    def operations(self) -> KubernetesOperations:
        """The Kubernetes API calls."""
        return self._operations

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

    def endpoint(self) -> str:
        """The kubeconfig source and the API server's URL."""
        return f"{self.settings.describe()} at {self.retrying.url}"

    # ------------------------------------------------------------------ sending requests

    def _server(self, request: ApiRequest) -> Any:
        """The ``argo_server`` transport to ``argo_server_url`` (made once) for ``request``."""
        if self._argo_server is None:
            self._argo_server = argo_server_transport(self.settings, request.context)
        return self._argo_server

    def close(self) -> None:
        """Close the sync clients (also the Argo Server's)."""
        super().close()
        if self._argo_server is not None:
            self._argo_server.close()

    async def aclose(self) -> None:
        """Close the async clients (also the Argo Server's)."""
        await super().aclose()
        if self._argo_server is not None:
            await self._argo_server.aclose()

    def _call_args(self, request: ApiRequest) -> dict[str, Any]:
        """``call_api`` keyword arguments for ``request``, as the generated API methods pass them."""
        headers = {"Accept": "application/json"}
        if request.content_type:
            headers["Content-Type"] = request.content_type
        return {
            "query_params": list(request.query), "header_params": headers, "body": request.body,
            "post_params": [], "files": {}, "response_types_map": _RESPONSE_TYPES, "auth_settings": ["BearerToken"],
            "_return_http_data_only": True, "collection_formats": {},
            "_preload_content": request.response == "json",
            "_request_timeout": self.settings.request_timeout if request.timeout is None else request.timeout,
        }

    def send(self, request: ApiRequest) -> Any:
        """Send ``request`` with the sync client; retries and typed errors per :class:`Retrying`."""
        if isinstance(request, ArgoServerRequest):
            return self._server(request).send(request)
        api = self._api()

        def attempt() -> Any:
            result = api.call_api(request.path, request.method, **self._call_args(request))
            if request.response == "json":
                return result
            # _preload_content=False: kubernetes 36 mangles str responses (kubernetes-client/python#2596)
            try:
                return bytes(result.data).decode("utf-8", errors="replace")
            finally:
                result.release_conn()

        return self.retrying.call(request.context, attempt, idempotent=request.idempotent, retries=request.retries)

    async def asend(self, request: ApiRequest) -> Any:
        """Async :meth:`send` with the running loop's ``kubernetes_asyncio`` client."""
        if isinstance(request, ArgoServerRequest):
            return await self._server(request).asend(request)
        api = await self._aapi()

        async def attempt() -> Any:
            result = await api.call_api(request.path, request.method, **self._call_args(request))
            if request.response == "json":
                return result
            try:
                data = await result.read()
                if not 200 <= result.status <= 299:  # not checked by the client without preloading
                    raise api_error_from_status(result.status, data, context=request.context)
                return data.decode("utf-8", errors="replace")
            finally:
                result.release()

        return await self.retrying.acall(request.context, attempt, idempotent=request.idempotent,
                                         retries=request.retries)

    # ------------------------------------------------------------------ watch

    def awatch_workflows(
        self, namespace: str, resource_version: str, label_selector: str, field_selector: str, timeout_seconds: int
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Watch events of workflows (see :meth:`awatch_objects`)."""
        return self.awatch_objects(namespace, resource_version, label_selector, field_selector, timeout_seconds)

    async def awatch_objects(
        self, namespace: str, resource_version: str, label_selector: str, field_selector: str, timeout_seconds: int,
        *, path: str = "", what: str = "workflows",
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Watch events of workflows (or of the collection at ``path``, e.g. Fluid's DataLoads,
        named ``what`` in messages) until the server ends the watch after ``timeout_seconds``.

        A dropped connection is resumed from the last resourceVersion seen (events or BOOKMARKs)
        with backoff, up to ``max_retries`` consecutive failures; a 410 raises :class:`GoneError`.
        """
        api = await self._aapi()
        context = f"watch {what} in {namespace}"
        last_rv = resource_version
        failures = 0
        while True:
            request = watch_request(namespace, last_rv, label_selector, field_selector, timeout_seconds,
                                    self.settings.request_timeout, path=path, what=what)
            try:
                response = await api.call_api(request.path, request.method,
                                              **{**self._call_args(request), "_preload_content": False})
                try:
                    if not 200 <= response.status <= 299:
                        raise api_error_from_status(response.status, await response.read(), context=context)
                    while line := await response.content.readline():
                        kind, obj = _watch_event(line, context)
                        if not kind:
                            continue
                        failures = 0
                        last_rv = str((obj.get("metadata") or {}).get("resourceVersion") or last_rv)
                        yield kind, obj
                finally:
                    response.release()
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


def _watch_event(line: bytes, context: str) -> tuple[str, dict[str, Any]]:
    """``(type, object)`` of one line of a watch stream (``("", {})`` for a blank line); an ERROR
    event or a bare ``Status`` raises the error it stands for (410: :class:`GoneError`)."""
    text = line.decode("utf-8").strip()
    if not text:
        return "", {}
    event = json.loads(text)
    if "type" not in event or "object" not in event:
        if "code" in event:
            raise status_error_from_event(event, context)
        raise ArgoEciError(f"{context}: malformed watch event (no type or object): {text[:300]}")
    obj = event["object"] or {}
    if str(event["type"]) == "ERROR":
        raise status_error_from_event(obj, context)
    return str(event["type"]), obj
