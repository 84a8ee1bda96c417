"""The Kubernetes API calls of the hook: Argo's custom resources
(``/apis/argoproj.io/v1alpha1/...``) and pods (``/api/v1/...``) as :class:`ApiRequest` builders,
and each workflow operation written once over them (:class:`KubernetesOperations`).

The requests are what the official client's ``CustomObjectsApi`` / ``CoreV1Api`` methods send:
the same paths, query parameter names and order, bodies and merge-patch content type.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow_argo_eci.conventions import (
    ANNOTATION_NODE_ID,
    CLUSTER_WORKFLOW_TEMPLATES,
    GROUP,
    LABEL_WORKFLOW,
    VERSION,
    WORKFLOW_TEMPLATES,
    WORKFLOWS,
)
from airflow_argo_eci.errors import InvalidError, NotFoundError, WorkflowSpecError
from airflow_argo_eci.hooks.argo_offload import hydrate_workflow, offload_version
from airflow_argo_eci.hooks.argo_requests import (
    MERGE_PATCH,
    ApiRequest,
    Operation,
    QueryValue,
    WorkflowList,
    apply_object,
    call,
    check_body,
    delete_options,
    list_page_query,
    list_pages,
    shutdown_patch,
    uid_conflict,
)
from airflow_argo_eci.hooks.pod_log_lines import parse_log_lines, since_seconds
from airflow_argo_eci.retry import RetryError, formulate_resubmit, formulate_retry, update_suspend_nodes
from airflow_argo_eci.retry import node_field_selector as parse_node_field_selector
from airflow_argo_eci.workflows import workflow_nodes

_ARGO = f"/apis/{GROUP}/{VERSION}"


def _q(value: str) -> str:
    return quote(value, safe="")


def resource_path(namespace: str, plural: str, name: str = "", subresource: str = "") -> str:
    """``/apis/argoproj.io/v1alpha1/namespaces/{ns}/{plural}[/{name}[/{subresource}]]``."""
    path = f"{_ARGO}/namespaces/{_q(namespace)}/{plural}"
    if name:
        path += f"/{_q(name)}"
    if subresource:
        path += f"/{subresource}"
    return path


def create_request(body: dict[str, Any], namespace: str) -> ApiRequest:
    """POST a Workflow (not idempotent: a retry could create a second one)."""
    return ApiRequest("POST", resource_path(namespace, WORKFLOWS), f"create workflow in {namespace}", body=body,
                      idempotent=False)


def get_request(name: str, namespace: str, plural: str = WORKFLOWS, kind: str = "workflow") -> ApiRequest:
    """GET one namespaced Argo object."""
    return ApiRequest("GET", resource_path(namespace, plural, name), f"get {kind} {namespace}/{name}")


def list_request(namespace: str, label_selector: str, field_selector: str, token: str = "") -> ApiRequest:
    """GET one page of workflows (the selectors are sent even when empty, as the client does)."""
    return ApiRequest("GET", resource_path(namespace, WORKFLOWS), f"list workflows in {namespace}",
                      list_page_query(label_selector, field_selector, token))


def watch_request(
    namespace: str, resource_version: str, label_selector: str, field_selector: str, timeout_seconds: int,
    request_timeout: float, *, path: str = "", what: str = "workflows",
) -> ApiRequest:
    """GET a watch of workflows (or of the collection at ``path``, named ``what`` in messages) from
    ``resource_version`` (``""``: current state first), with bookmarks, ended by the server after
    ``timeout_seconds``."""
    query: list[tuple[str, QueryValue]] = [
        ("allowWatchBookmarks", True), ("fieldSelector", field_selector), ("labelSelector", label_selector)]
    if resource_version:
        query.append(("resourceVersion", resource_version))
    query += [("timeoutSeconds", timeout_seconds), ("watch", True)]
    return ApiRequest("GET", path or resource_path(namespace, WORKFLOWS), f"watch {what} in {namespace}", tuple(query),
                      timeout=timeout_seconds + request_timeout)


def patch_request(context: str, name: str, namespace: str, body: dict[str, Any], subresource: str = "") -> ApiRequest:
    """A JSON merge patch of a Workflow (or of its ``status`` subresource)."""
    return ApiRequest("PATCH", resource_path(namespace, WORKFLOWS, name, subresource), context, body=body,
                      content_type=MERGE_PATCH)


def replace_request(context: str, name: str, namespace: str, body: dict[str, Any], subresource: str = "") -> ApiRequest:
    """PUT a whole Workflow (or its ``status`` subresource)."""
    return ApiRequest("PUT", resource_path(namespace, WORKFLOWS, name, subresource), context, body=body)


def delete_request(name: str, namespace: str, uid: str = "") -> ApiRequest:
    """DELETE a Workflow; with ``uid``, ``DeleteOptions.preconditions.uid`` fences it."""
    return ApiRequest("DELETE", resource_path(namespace, WORKFLOWS, name), f"delete workflow {namespace}/{name}",
                      body=delete_options(uid))


def create_template_request(body: dict[str, Any], namespace: str) -> ApiRequest:
    """POST a WorkflowTemplate (a repeat after it took effect answers 409 AlreadyExists)."""
    return ApiRequest("POST", resource_path(namespace, WORKFLOW_TEMPLATES),
                      f"create workflow template {namespace}/{body['metadata']['name']}", body=body, idempotent=False)


def replace_template_request(body: dict[str, Any], namespace: str) -> ApiRequest:
    """PUT a whole WorkflowTemplate (``metadata.resourceVersion`` makes a stale write a 409)."""
    name = body["metadata"]["name"]
    return ApiRequest("PUT", resource_path(namespace, WORKFLOW_TEMPLATES, name),
                      f"update workflow template {namespace}/{name}", body=body)


def pods_request(context: str, namespace: str, label_selector: str) -> ApiRequest:
    """GET the pods matching ``label_selector``."""
    return ApiRequest("GET", f"/api/v1/namespaces/{_q(namespace)}/pods", context,
                      (("labelSelector", label_selector),))


def delete_pod_request(context: str, name: str, namespace: str) -> ApiRequest:
    """DELETE a pod."""
    return ApiRequest("DELETE", f"/api/v1/namespaces/{_q(namespace)}/pods/{_q(name)}", context)


def pod_log_request(pod_name: str, namespace: str, container: str, since_time: str | None) -> ApiRequest:
    """GET a container's log with timestamps (``sinceSeconds``: the API has no sub-second ``sinceTime``)."""
    query: list[tuple[str, QueryValue]] = [("container", container)]
    if since_time:
        query.append(("sinceSeconds", since_seconds(since_time)))
    query.append(("timestamps", True))
    return ApiRequest("GET", f"/api/v1/namespaces/{_q(namespace)}/pods/{_q(pod_name)}/log",
                      f"read log of pod {namespace}/{pod_name}", tuple(query), response="text")


class KubernetesOperations:
    """The workflow operations over the Kubernetes API (see :class:`WorkflowOperations`)."""

    def create_workflow(self, body: dict[str, Any], namespace: str) -> Operation[dict[str, Any]]:
        wf = check_body(body)
        created: dict[str, Any] = yield create_request(wf, namespace)
        return created

    def get_workflow(self, name: str, namespace: str) -> Operation[dict[str, Any]]:
        return call(get_request(name, namespace))

    def list_workflows(self, namespace: str, label_selector: str, field_selector: str) -> Operation[WorkflowList]:
        return list_pages(lambda token: list_request(namespace, label_selector, field_selector, token))

    def _shutdown(self, name: str, namespace: str, strategy: str, uid: str) -> Operation[dict[str, Any]]:
        """``spec.shutdown`` as a merge patch; with ``uid`` the patch carries it as a precondition and
        the API server's 422 for a same-named successor becomes a :class:`ConflictError`."""
        try:
            result: dict[str, Any] = yield patch_request(
                f"{strategy.lower()} workflow {namespace}/{name}", name, namespace, shutdown_patch(strategy, uid))
        except InvalidError as exc:
            raise uid_conflict(exc) from exc
        return result

    def _write_status(
        self, context: str, name: str, namespace: str, status_patch: dict[str, Any]
    ) -> Operation[dict[str, Any]]:
        """Merge-patch ``status`` through the status subresource; clusters whose Workflow CRD has
        none (Argo's own CRDs) answer 404 and get the patch on the main resource instead."""
        try:
            result: dict[str, Any] = yield patch_request(context, name, namespace, {"status": status_patch}, "status")
        except NotFoundError:
            result = yield patch_request(context, name, namespace, {"status": status_patch})
        return result

    def _suspend_node_changes(
        self, context: str, name: str, namespace: str, phase: str, *, message: str = "", selector: str = ""
    ) -> Operation[dict[str, Any]]:
        """The status merge patch that moves the Suspend nodes to ``phase``: ``{"nodes": changed}``.
        Offloaded nodes are read from the Argo Server and all written back, hydrated (Argo's
        controller would replace changed nodes of a still offloaded status with its stored ones)."""
        wf = yield get_request(name, namespace)
        offloaded = bool(offload_version(wf))
        if offloaded:
            wf = yield from hydrate_workflow(wf, self.get_workflow)
        try:
            changed = update_suspend_nodes(wf, phase, message=message, selector=selector)
        except RetryError as exc:
            raise InvalidError(f"{context}: {exc}", reason="BadRequest") from exc
        if offloaded and changed:
            return {"nodes": {**workflow_nodes(wf["status"]), **changed}, "offloadNodeStatusVersion": None}
        return {"nodes": changed}

    def _set_suspend_nodes(
        self, name: str, namespace: str, phase: str, message: str, selector: str, verb: str
    ) -> Operation[dict[str, Any]]:
        try:
            parse_node_field_selector(selector)  # bad input fails before any request
        except RetryError as exc:
            raise WorkflowSpecError(str(exc)) from None
        context = f"{verb} workflow {namespace}/{name}"
        patch = yield from self._suspend_node_changes(context, name, namespace, phase, message=message,
                                                      selector=selector)
        return (yield from self._write_status(context, name, namespace, patch))

    def stop_workflow(
        self, name: str, namespace: str, message: str | None, node_field_selector: str, uid: str
    ) -> Operation[dict[str, Any]]:
        if node_field_selector:
            return self._set_suspend_nodes(name, namespace, "Failed", message or "", node_field_selector, "stop")
        return self._shutdown(name, namespace, "Stop", uid)

    def terminate_workflow(self, name: str, namespace: str, uid: str) -> Operation[dict[str, Any]]:
        return self._shutdown(name, namespace, "Terminate", uid)

    def delete_workflow(self, name: str, namespace: str, uid: str) -> Operation[None]:
        yield delete_request(name, namespace, uid)

    def suspend_workflow(self, name: str, namespace: str) -> Operation[dict[str, Any]]:
        return call(patch_request(f"suspend workflow {namespace}/{name}", name, namespace, {"spec": {"suspend": True}}))

    def resume_workflow(self, name: str, namespace: str, node_field_selector: str) -> Operation[dict[str, Any]]:
        if node_field_selector:
            result = yield from self._set_suspend_nodes(name, namespace, "Succeeded", "", node_field_selector,
                                                        "resume")
            return result
        context = f"resume workflow {namespace}/{name}"
        patch = yield from self._suspend_node_changes(context, name, namespace, "Succeeded")
        if patch["nodes"]:
            yield from self._write_status(context, name, namespace, patch)
        resumed: dict[str, Any] = yield patch_request(context, name, namespace, {"spec": {"suspend": None}})
        return resumed

    def retry_workflow(
        self, name: str, namespace: str, *, restart_successful: bool, node_field_selector: str,
        parameters: dict[str, Any] | None,
    ) -> Operation[dict[str, Any]]:
        context = f"retry workflow {namespace}/{name}"
        wf = yield get_request(name, namespace)
        # offloaded nodes: read from the connection's Argo Server; written back with the retry
        wf = yield from hydrate_workflow(wf, self.get_workflow)
        try:
            new, deleted = formulate_retry(
                wf, restart_successful=restart_successful, node_field_selector_text=node_field_selector,
                parameters=parameters,
            )
        except RetryError as exc:
            raise InvalidError(f"{context}: {exc}", reason="BadRequest") from exc
        # as `argo retry`: first the pods of the removed nodes, then the workflow itself
        pods = yield pods_request(f"{context}: list pods", namespace, f"{LABEL_WORKFLOW}={name}")
        for pod in pods.get("items") or []:
            meta = pod.get("metadata") or {}
            if (meta.get("annotations") or {}).get(ANNOTATION_NODE_ID) not in deleted:
                continue
            try:
                yield delete_pod_request(f"{context}: delete pod {meta.get('name')}", meta["name"], namespace)
            except NotFoundError:
                pass
        # status first (the workflow is Running again) while it still carries the completed label,
        # so a controller never sees an incomplete workflow with the old Failed status
        try:
            written = yield replace_request(context, name, namespace, new, "status")
            new["metadata"]["resourceVersion"] = written["metadata"]["resourceVersion"]
        except NotFoundError:
            pass  # no status subresource (Argo's CRDs): the replace below writes status too
        result: dict[str, Any] = yield replace_request(context, name, namespace, new)
        return result

    def resubmit_workflow(
        self, name: str, namespace: str, parameters: dict[str, Any] | None
    ) -> Operation[dict[str, Any]]:
        wf = yield get_request(name, namespace)
        return (yield from self.create_workflow(formulate_resubmit(wf, parameters), namespace))

    def get_workflow_template(self, name: str, namespace: str) -> Operation[dict[str, Any]]:
        return call(get_request(name, namespace, WORKFLOW_TEMPLATES, "workflow template"))

    def apply_workflow_template(self, body: dict[str, Any], namespace: str) -> Operation[dict[str, Any]]:
        name = body["metadata"]["name"]
        return apply_object(
            body, lambda: get_request(name, namespace, WORKFLOW_TEMPLATES, "workflow template"),
            lambda new: create_template_request(new, namespace), lambda new: replace_template_request(new, namespace))

    def get_cluster_workflow_template(self, name: str) -> Operation[dict[str, Any]]:
        return call(ApiRequest("GET", f"{_ARGO}/{CLUSTER_WORKFLOW_TEMPLATES}/{_q(name)}",
                               f"get cluster workflow template {name}"))

    def read_pod_log(
        self, pod_name: str, namespace: str, *, container: str, since_time: str | None, workflow: str | None
    ) -> Operation[list[tuple[str, str]]]:
        text = yield pod_log_request(pod_name, namespace, container, since_time)
        return parse_log_lines(text, since_time)

    def probe(self, namespace: str) -> Operation[None]:
        yield ApiRequest("GET", resource_path(namespace, WORKFLOWS), f"list workflows in {namespace}",
                         (("limit", 1),), retries=0)
