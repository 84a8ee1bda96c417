"""The Argo Server REST calls of the hook (``/api/v1/workflows/{ns}/{name}/stop`` ...) as
:class:`ApiRequest` builders, and each workflow operation written once over them
(:class:`ArgoServerOperations`). Request bodies follow the server's gRPC-gateway messages
(``{"name", "namespace", ...}``); query parameters its ``listOptions.*`` / ``logOptions.*`` names.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.hooks.argo_requests import (
    LIST_PAGE_SIZE,
    ApiRequest,
    Operation,
    QueryValue,
    WorkflowList,
    apply_object,
    call,
    check_body,
    check_uid,
    delete_precondition_params,
    list_pages,
)
from airflow_argo_eci.hooks.pod_log_lines import parse_log_lines, timestamp_key


def _q(value: str) -> str:
    return quote(value, safe="")


def _parameters(parameters: dict[str, Any] | None) -> list[str]:
    return [f"{k}={v}" for k, v in (parameters or {}).items()]


def workflow_path(namespace: str, name: str = "", action: str = "") -> str:
    """``/api/v1/workflows/{ns}[/{name}[/{action}]]``."""
    path = f"/api/v1/workflows/{_q(namespace)}"
    if name:
        path += f"/{_q(name)}"
    if action:
        path += f"/{action}"
    return path


#: the directions of Argo's ``/artifact-files`` route (``{artifactDiscriminator}``)
ARTIFACT_DIRECTIONS = ("outputs", "inputs")


def artifact_path(namespace: str, workflow: str, node_id: str, artifact_name: str, direction: str = "outputs") -> str:
    """``/artifact-files/{ns}/workflows/{name}/{nodeId}/{outputs|inputs}/{artifactName}``: Argo's
    ``ArtifactService_GetArtifactFile`` (listed in Argo's swagger, but served by the Argo Server's
    plain HTTP mux rather than the gRPC gateway: the body is the object, errors are plain text)."""
    if direction not in ARTIFACT_DIRECTIONS:
        raise WorkflowSpecError(f"direction must be one of {', '.join(ARTIFACT_DIRECTIONS)}, got {direction!r}")
    for what, value in (("workflow", workflow), ("node_id", node_id), ("artifact_name", artifact_name)):
        if not isinstance(value, str) or not value or "/" in value or value in (".", ".."):
            raise WorkflowSpecError(f"{what} must be a non-empty name without '/', got {value!r}")
    return (f"/artifact-files/{_q(namespace)}/workflows/{_q(workflow)}/{_q(node_id)}/{direction}/"
            f"{_q(artifact_name)}")


def get_request(name: str, namespace: str) -> ApiRequest:
    """GET one Workflow."""
    return ApiRequest("GET", workflow_path(namespace, name), f"get workflow {namespace}/{name}")


def list_request(namespace: str, label_selector: str, field_selector: str, token: str = "") -> ApiRequest:
    """GET one page of workflows (empty selectors are left out)."""
    query: list[tuple[str, QueryValue]] = [("listOptions.limit", LIST_PAGE_SIZE)]
    if label_selector:
        query.append(("listOptions.labelSelector", label_selector))
    if field_selector:
        query.append(("listOptions.fieldSelector", field_selector))
    if token:
        query.append(("listOptions.continue", token))
    return ApiRequest("GET", workflow_path(namespace), f"list workflows in {namespace}", tuple(query))


def action_request(
    verb: str, name: str, namespace: str, body: dict[str, Any], *, idempotent: bool = True
) -> ApiRequest:
    """PUT ``/api/v1/workflows/{ns}/{name}/{verb}`` (stop, terminate, suspend, resume, retry, resubmit)."""
    return ApiRequest("PUT", workflow_path(namespace, name, verb), f"{verb} workflow {namespace}/{name}",
                      body={"name": name, "namespace": namespace, **body}, idempotent=idempotent)


def delete_request(name: str, namespace: str, uid: str = "") -> ApiRequest:
    """DELETE a Workflow; with ``uid``, ``deleteOptions.preconditions.uid`` fences it."""
    return ApiRequest("DELETE", workflow_path(namespace, name), f"delete workflow {namespace}/{name}",
                      tuple(delete_precondition_params(uid).items()))


def template_path(namespace: str, name: str = "") -> str:
    """``/api/v1/workflow-templates/{ns}[/{name}]``."""
    path = f"/api/v1/workflow-templates/{_q(namespace)}"
    return f"{path}/{_q(name)}" if name else path


def get_template_request(name: str, namespace: str) -> ApiRequest:
    """GET one WorkflowTemplate."""
    return ApiRequest("GET", template_path(namespace, name), f"get workflow template {namespace}/{name}")


def create_template_request(body: dict[str, Any], namespace: str) -> ApiRequest:
    """POST a WorkflowTemplate (``WorkflowTemplateCreateRequest``; a repeat answers 409)."""
    return ApiRequest("POST", template_path(namespace),
                      f"create workflow template {namespace}/{body['metadata']['name']}",
                      body={"namespace": namespace, "template": body}, idempotent=False)


def update_template_request(body: dict[str, Any], namespace: str) -> ApiRequest:
    """PUT a whole WorkflowTemplate (``WorkflowTemplateUpdateRequest``; a stale resourceVersion is a 409)."""
    name = body["metadata"]["name"]
    return ApiRequest("PUT", template_path(namespace, name), f"update workflow template {namespace}/{name}",
                      body={"name": name, "namespace": namespace, "template": body})


class ArgoServerOperations:
    """The workflow operations over the Argo Server (see :class:`WorkflowOperations`)."""

    def create_workflow(self, body: dict[str, Any], namespace: str) -> Operation[dict[str, Any]]:
        wf = check_body(body)
        created: dict[str, Any] = yield ApiRequest(
            "POST", workflow_path(namespace), f"create workflow in {namespace}",
            body={"namespace": namespace, "workflow": wf}, idempotent=False)
        return created

    def get_workflow(self, name: str, namespace: str) -> Operation[dict[str, Any]]:
        return call(get_request(name, namespace))

    def list_workflows(self, namespace: str, label_selector: str, field_selector: str) -> Operation[WorkflowList]:
        return list_pages(lambda token: list_request(namespace, label_selector, field_selector, token))

    def _fenced_action(self, verb: str, name: str, namespace: str, uid: str,
                       body: dict[str, Any]) -> Operation[dict[str, Any]]:
        """The Argo Server's stop/terminate take no precondition: the uid is checked just before
        (a same-named successor is refused with :class:`ConflictError`)."""
        if uid:
            check_uid((yield get_request(name, namespace)), uid)
        result: dict[str, Any] = yield action_request(verb, name, namespace, body)
        return result

    def stop_workflow(
        self, name: str, namespace: str, message: str | None, node_field_selector: str, uid: str
    ) -> Operation[dict[str, Any]]:
        body: dict[str, Any] = {}
        if message:
            body["message"] = message
        if node_field_selector:
            body["nodeFieldSelector"] = node_field_selector
        return self._fenced_action("stop", name, namespace, uid, body)

    def terminate_workflow(self, name: str, namespace: str, uid: str) -> Operation[dict[str, Any]]:
        return self._fenced_action("terminate", name, namespace, uid, {})

    def delete_workflow(self, name: str, namespace: str, uid: str) -> Operation[None]:
        yield delete_request(name, namespace, uid)

    def suspend_workflow(self, name: str, namespace: str) -> Operation[dict[str, Any]]:
        return call(action_request("suspend", name, namespace, {}))

    def resume_workflow(self, name: str, namespace: str, node_field_selector: str) -> Operation[dict[str, Any]]:
        body = {"nodeFieldSelector": node_field_selector} if node_field_selector else {}
        return call(action_request("resume", name, namespace, body))

    def retry_workflow(
        self, name: str, namespace: str, *, restart_successful: bool, node_field_selector: str,
        parameters: dict[str, Any] | None,
    ) -> Operation[dict[str, Any]]:
        body: dict[str, Any] = {"restartSuccessful": restart_successful}
        if node_field_selector:
            body["nodeFieldSelector"] = node_field_selector
        if parameters:
            body["parameters"] = _parameters(parameters)
        return call(action_request("retry", name, namespace, body, idempotent=False))

    def resubmit_workflow(
        self, name: str, namespace: str, parameters: dict[str, Any] | None
    ) -> Operation[dict[str, Any]]:
        body: dict[str, Any] = {"memoized": False}
        if parameters:
            body["parameters"] = _parameters(parameters)
        return call(action_request("resubmit", name, namespace, body, idempotent=False))

    def get_workflow_template(self, name: str, namespace: str) -> Operation[dict[str, Any]]:
        return call(get_template_request(name, namespace))

    def apply_workflow_template(self, body: dict[str, Any], namespace: str) -> Operation[dict[str, Any]]:
        name = body["metadata"]["name"]
        return apply_object(
            body, lambda: get_template_request(name, namespace),
            lambda new: create_template_request(new, namespace), lambda new: update_template_request(new, namespace))

    def get_cluster_workflow_template(self, name: str) -> Operation[dict[str, Any]]:
        return call(ApiRequest("GET", f"/api/v1/cluster-workflow-templates/{_q(name)}",
                               f"get cluster workflow template {name}"))

    def read_pod_log(
        self, pod_name: str, namespace: str, *, container: str, since_time: str | None, workflow: str | None
    ) -> Operation[list[tuple[str, str]]]:
        """The Argo Server serves pod logs per workflow, as one NDJSON entry per log line."""
        if not workflow:
            raise WorkflowSpecError(
                "read_pod_log over the argo_server transport needs workflow=<the workflow's name>: the Argo "
                "Server serves pod logs per workflow"
            )
        query: list[tuple[str, QueryValue]] = [
            ("podName", pod_name), ("logOptions.container", container), ("logOptions.timestamps", "true")]
        if since_time:
            query.append(("logOptions.sinceTime.seconds", timestamp_key(since_time)[0]))
        results = yield ApiRequest("GET", f"{workflow_path(namespace, workflow)}/log",
                                   f"read log of pod {namespace}/{pod_name}", tuple(query), response="ndjson")
        # one entry per log line (Hera's reader mishandles these for multi-line logs)
        lines = [str(r.get("content", "")) for r in results if r.get("podName", pod_name) == pod_name]
        return parse_log_lines("\n".join(lines), since_time)

    def probe(self, namespace: str) -> Operation[None]:
        yield ApiRequest("GET", workflow_path(namespace), f"list workflows in {namespace}",
                         (("listOptions.limit", 1),), retries=0)
