"""The hook's ``argo_server`` transport: the Argo Server REST API (``/api/v1/...``) over httpx.

httpx is used directly rather than Hera's ``WorkflowsService``, whose ``workflow_logs`` breaks on
multi-line logs. Errors are the server's gRPC-gateway JSON (``{"code": <grpc>, "message": ...}``).
The Argo Server has no Kubernetes-style watch, so :attr:`supports_watch` is False: callers poll.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote

from airflow_argo_eci.errors import WorkflowSpecError, api_error_from_status
from airflow_argo_eci.hooks._argo_common import (
    LIST_PAGE_SIZE,
    ArgoConnectionSettings,
    CachedClients,
    Retrying,
    check_body,
    check_uid,
    delete_precondition_params,
    parse_log_lines,
    timestamp_key,
)


def _q(value: str) -> str:
    return quote(value, safe="")


def _parameters(parameters: dict[str, Any] | None) -> list[str]:
    return [f"{k}={v}" for k, v in (parameters or {}).items()]


class ArgoServerTransport(CachedClients):
    """Workflows, templates and logs through the Argo Server (see the module docstring)."""

    supports_watch = False

    def __init__(self, settings: ArgoConnectionSettings) -> None:
        assert settings.host is not None
        self.settings = settings
        self.base = settings.host
        self.retrying = Retrying(settings, url=settings.host)

    @property
    def default_namespace(self) -> str:
        """The connection's namespace, else ``default``."""
        return self.settings.namespace or "default"

    # ------------------------------------------------------------------ clients

    def _verify(self) -> ssl.SSLContext | bool:
        s = self.settings
        if not s.verify_ssl:
            return False
        if s.ca_cert_path:
            path = Path(s.ca_cert_path).expanduser()
            if not path.is_file():
                raise WorkflowSpecError(
                    f"connection {s.conn_id!r}: CA certificate file {s.ca_cert_path!r} does not exist"
                )
            return ssl.create_default_context(cafile=str(path))
        return True

    def _client_kwargs(self) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"
        return {"base_url": self.base, "headers": headers, "verify": self._verify(),
                "timeout": self.settings.request_timeout}

    def _client(self) -> Any:
        if self._sync is None:
            import httpx

            self._sync = httpx.Client(**self._client_kwargs())
        return self._sync

    def _aclient(self) -> Any:
        client = self._loop_client()
        if client is None:
            import httpx

            client = self._keep_loop_client(httpx.AsyncClient(**self._client_kwargs()))
        return client

    async def _close_async_client(self, client: Any) -> None:
        await client.aclose()

    @staticmethod
    def _decode(response: Any, context: str) -> Any:
        if response.status_code >= 400:
            raise api_error_from_status(response.status_code, response.content, context=context)
        if not response.content:
            return {}
        return response.json()

    def _request(
        self, context: str, method: str, path: str, *, idempotent: bool = True, retries: int | None = None,
        **kwargs: Any,
    ) -> Any:
        client = self._client()
        return self.retrying.call(
            context, lambda: self._decode(client.request(method, path, **kwargs), context),
            idempotent=idempotent, retries=retries,
        )

    async def _arequest(self, context: str, method: str, path: str, **kwargs: Any) -> Any:
        client = self._aclient()

        async def run() -> Any:
            return self._decode(await client.request(method, path, **kwargs), context)

        return await self.retrying.acall(context, run)

    # ------------------------------------------------------------------ workflows (sync)

    @staticmethod
    def _wf(namespace: str, name: str = "", action: str = "") -> str:
        path = f"/api/v1/workflows/{_q(namespace)}"
        if name:
            path += f"/{_q(name)}"
        if action:
            path += f"/{action}"
        return path

    def create_workflow(self, body: dict[str, Any], namespace: str) -> dict[str, Any]:
        wf = check_body(body)
        result: dict[str, Any] = self._request(
            f"create workflow in {namespace}", "POST", self._wf(namespace),
            json={"namespace": namespace, "workflow": wf}, idempotent=False,
        )
        return result

    def get_workflow(self, name: str, namespace: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request(f"get workflow {namespace}/{name}", "GET", self._wf(namespace, name))
        return result

    @staticmethod
    def _list_params(label_selector: str, field_selector: str, token: str) -> dict[str, Any]:
        params: dict[str, Any] = {"listOptions.limit": LIST_PAGE_SIZE}
        if label_selector:
            params["listOptions.labelSelector"] = label_selector
        if field_selector:
            params["listOptions.fieldSelector"] = field_selector
        if token:
            params["listOptions.continue"] = token
        return params

    def list_workflows(self, namespace: str, label_selector: str, field_selector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            page = self._request(f"list workflows in {namespace}", "GET", self._wf(namespace),
                                 params=self._list_params(label_selector, field_selector, token))
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return items

    def _put(self, verb: str, name: str, namespace: str, body: dict[str, Any], *, idempotent: bool = True) -> Any:
        return self._request(f"{verb} workflow {namespace}/{name}", "PUT", self._wf(namespace, name, verb),
                             json={"name": name, "namespace": namespace, **body}, idempotent=idempotent)

    def _fence(self, name: str, namespace: str, uid: str) -> None:
        """The Argo Server's stop/terminate take no precondition: check the uid just before
        (a same-named successor is refused with :class:`ConflictError`)."""
        if uid:
            check_uid(self.get_workflow(name, namespace), uid)

    def stop_workflow(
        self, name: str, namespace: str, message: str | None, node_field_selector: str, uid: str = ""
    ) -> dict[str, Any]:
        self._fence(name, namespace, uid)
        body: dict[str, Any] = {}
        if message:
            body["message"] = message
        if node_field_selector:
            body["nodeFieldSelector"] = node_field_selector
        result: dict[str, Any] = self._put("stop", name, namespace, body)
        return result

    def terminate_workflow(self, name: str, namespace: str, uid: str = "") -> dict[str, Any]:
        self._fence(name, namespace, uid)
        result: dict[str, Any] = self._put("terminate", name, namespace, {})
        return result

    def delete_workflow(self, name: str, namespace: str, uid: str = "") -> None:
        self._request(f"delete workflow {namespace}/{name}", "DELETE", self._wf(namespace, name),
                      params=delete_precondition_params(uid))

    def suspend_workflow(self, name: str, namespace: str) -> dict[str, Any]:
        result: dict[str, Any] = self._put("suspend", name, namespace, {})
        return result

    def resume_workflow(self, name: str, namespace: str, node_field_selector: str) -> dict[str, Any]:
        body = {"nodeFieldSelector": node_field_selector} if node_field_selector else {}
        result: dict[str, Any] = self._put("resume", name, namespace, body)
        return result

    def retry_workflow(
        self, name: str, namespace: str, *, restart_successful: bool, node_field_selector: str,
        parameters: dict[str, Any] | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"restartSuccessful": restart_successful}
        if node_field_selector:
            body["nodeFieldSelector"] = node_field_selector
        if parameters:
            body["parameters"] = _parameters(parameters)
        result: dict[str, Any] = self._put("retry", name, namespace, body, idempotent=False)
        return result

    def resubmit_workflow(self, name: str, namespace: str, parameters: dict[str, Any] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"memoized": False}
        if parameters:
            body["parameters"] = _parameters(parameters)
        result: dict[str, Any] = self._put("resubmit", name, namespace, body, idempotent=False)
        return result

    def get_workflow_template(self, name: str, namespace: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request(
            f"get workflow template {namespace}/{name}", "GET",
            f"/api/v1/workflow-templates/{_q(namespace)}/{_q(name)}",
        )
        return result

    def get_cluster_workflow_template(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request(
            f"get cluster workflow template {name}", "GET", f"/api/v1/cluster-workflow-templates/{_q(name)}"
        )
        return result

    def read_pod_log(
        self, pod_name: str, namespace: str, *, container: str, since_time: str | None, workflow: str | None
    ) -> list[tuple[str, str]]:
        if not workflow:
            raise WorkflowSpecError(
                "read_pod_log over the argo_server transport needs workflow=<the workflow's name>: the Argo "
                "Server serves pod logs per workflow"
            )
        params: dict[str, Any] = {"podName": pod_name, "logOptions.container": container,
                                  "logOptions.timestamps": "true"}
        if since_time:
            params["logOptions.sinceTime.seconds"] = timestamp_key(since_time)[0]
        context = f"read log of pod {namespace}/{pod_name}"
        client = self._client()

        def read() -> str:
            response = client.get(f"{self._wf(namespace, workflow)}/log", params=params)
            if response.status_code >= 400:
                raise api_error_from_status(response.status_code, response.content, context=context)
            lines: list[str] = []
            for raw in response.text.splitlines():
                if not raw.strip():
                    continue
                entry = json.loads(raw)
                if "error" in entry:
                    raise api_error_from_status(0, json.dumps(entry["error"]), context=context)
                result = entry.get("result") or {}
                if result.get("podName", pod_name) == pod_name:
                    # one NDJSON entry per log line (Hera's reader mishandles these for multi-line logs)
                    lines.append(str(result.get("content", "")))
            return "\n".join(lines)

        return parse_log_lines(self.retrying.call(context, read), since_time)

    def probe(self, namespace: str) -> str:
        """List one workflow (no retries); returns where it connected."""
        self._request(f"list workflows in {namespace}", "GET", self._wf(namespace),
                      params={"listOptions.limit": 1}, retries=0)
        return self.settings.describe()

    # ------------------------------------------------------------------ async

    async def aget_workflow(self, name: str, namespace: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._arequest(f"get workflow {namespace}/{name}", "GET",
                                                      self._wf(namespace, name))
        return result

    async def alist_workflows(
        self, namespace: str, label_selector: str, field_selector: str
    ) -> tuple[list[dict[str, Any]], str]:
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            page = await self._arequest(f"list workflows in {namespace}", "GET", self._wf(namespace),
                                        params=self._list_params(label_selector, field_selector, token))
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    async def _aput(self, verb: str, name: str, namespace: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._arequest(
            f"{verb} workflow {namespace}/{name}", "PUT", self._wf(namespace, name, verb),
            json={"name": name, "namespace": namespace},
        )
        return result

    async def _afence(self, name: str, namespace: str, uid: str) -> None:
        if uid:
            check_uid(await self.aget_workflow(name, namespace), uid)

    async def astop_workflow(self, name: str, namespace: str, uid: str = "") -> dict[str, Any]:
        await self._afence(name, namespace, uid)
        return await self._aput("stop", name, namespace)

    async def aterminate_workflow(self, name: str, namespace: str, uid: str = "") -> dict[str, Any]:
        await self._afence(name, namespace, uid)
        return await self._aput("terminate", name, namespace)

    async def adelete_workflow(self, name: str, namespace: str, uid: str = "") -> None:
        await self._arequest(f"delete workflow {namespace}/{name}", "DELETE", self._wf(namespace, name),
                             params=delete_precondition_params(uid))
