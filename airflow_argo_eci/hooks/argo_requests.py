"""API calls described as data: :class:`ApiRequest`, operations written once as generators of
requests (:data:`Operation`) with a sync and an async driver, and the pure pieces of requests
(workflow body checks, the uid fence: shutdown patch, delete preconditions, conflict checks)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from airflow_argo_eci.conventions import API_VERSION
from airflow_argo_eci.errors import ArgoApiError, ConflictError, WorkflowSpecError, api_error_from_status
from airflow_argo_eci.operation_drivers import arun_operation, run_operation

T = TypeVar("T")

#: the content type of a JSON merge patch (``kubectl patch --type=merge``)
MERGE_PATCH = "application/merge-patch+json"
#: items asked for per page when listing
LIST_PAGE_SIZE = 500

#: a query parameter value as the clients serialise it
QueryValue = str | int | bool
ResponseKind = Literal["json", "text", "ndjson"]


@dataclass(frozen=True)
class ApiRequest:
    """One HTTP request of the API, independent of the client that sends it.

    :param method: the HTTP method
    :param path: the path below the server's base URL, already quoted
    :param context: what the request does, for error messages (``get workflow argo/x``)
    :param query: query parameters in the order they are sent
    :param body: the JSON body (None: no body)
    :param content_type: the body's content type when not plain JSON (a merge patch)
    :param idempotent: safe to repeat: transient failures are retried (otherwise only when the
        server said the request did not take effect, e.g. 429)
    :param response: how the runner hands back the response: decoded ``json``, ``text``, or the
        ``result`` objects of a gRPC-gateway ``ndjson`` stream
    :param retries: the retry limit (None: the connection's ``max_retries``)
    :param timeout: the client-side timeout in seconds (None: the connection's ``request_timeout``)
    """

    method: str
    path: str
    context: str
    query: tuple[tuple[str, QueryValue], ...] = ()
    body: Any = None
    content_type: str | None = None
    idempotent: bool = True
    response: ResponseKind = "json"
    retries: int | None = None
    timeout: float | None = None


#: an operation: yields the requests to send, receives each response (or has the request's error
#: thrown in) and returns its result; :func:`run_operation` and :func:`arun_operation` drive it
Operation = Generator[ApiRequest, Any, T]


class RequestRunner:
    """What every transport shares: :meth:`run` / :meth:`arun` drive an operation with the
    transport's own :meth:`send` / :meth:`asend` (one request, with its retries and typed errors)."""

    def send(self, request: ApiRequest) -> Any:
        """Send one request and return its decoded response."""
        raise NotImplementedError

    async def asend(self, request: ApiRequest) -> Any:
        """Async :meth:`send`."""
        raise NotImplementedError

    def run(self, operation: Operation[T]) -> T:
        """Drive ``operation`` with :meth:`send`."""
        return run_operation(operation, self.send)

    async def arun(self, operation: Operation[T]) -> T:
        """Drive ``operation`` with :meth:`asend`."""
        return await arun_operation(operation, self.asend)


def call(request: ApiRequest) -> Operation[Any]:
    """The one-request operation: sends ``request`` and returns its response."""
    response = yield request
    return response


class WorkflowList(list[dict[str, Any]]):
    """All workflows a list returned (pages followed): a plain list of the objects that also carries
    the list's ``resource_version`` (to start a watch from). ``list_workflows`` and
    ``alist_workflows`` both return it."""

    def __init__(self, items: Iterable[dict[str, Any]] = (), resource_version: str = "") -> None:
        super().__init__(items)
        self.resource_version = resource_version


def list_pages(page_request: Callable[[str], ApiRequest]) -> Operation[WorkflowList]:
    """Follow ``metadata.continue`` over the pages ``page_request(token)`` asks for."""
    items: list[dict[str, Any]] = []
    token = ""
    while True:
        page = yield page_request(token)
        items.extend(page.get("items") or [])
        meta = page.get("metadata") or {}
        token = meta.get("continue") or ""
        if not token:
            return WorkflowList(items, str(meta.get("resourceVersion") or ""))


def check_name(kind: str, name: Any) -> str:
    """``name`` if it is a non-empty string, else a :class:`WorkflowSpecError` naming ``kind``."""
    if not isinstance(name, str) or not name:
        raise WorkflowSpecError(f"{kind} name must be a non-empty string, got {name!r}")
    return name


def shutdown_patch(strategy: str, uid: str = "") -> dict[str, Any]:
    """The merge patch of ``argo stop`` / ``argo terminate``; with ``uid`` it is fenced: the API
    server treats ``metadata.uid`` in a patch as a precondition and answers 409 when the object
    now is a same-named successor."""
    body: dict[str, Any] = {"spec": {"shutdown": strategy}}
    if uid:
        body["metadata"] = {"uid": uid}
    return body


def uid_conflict(error: ArgoApiError) -> ArgoApiError:
    """A fenced patch refused because ``metadata.uid`` differs (the API server answers 422
    "field is immutable" for it) is a :class:`ConflictError`; any other error is returned as is."""
    fields = {str(cause.get("field")) for cause in error.causes if isinstance(cause, dict)}
    if error.status == 422 and "metadata.uid" in fields:
        return ConflictError(f"{error.message} (a same-named successor: left alone)", status=409,
                             reason="Conflict", body=error.body)
    return error


def delete_options(uid: str = "") -> dict[str, Any] | None:
    """``DeleteOptions`` of a workflow delete; with ``uid``, ``preconditions.uid`` makes the API
    server refuse (409) to delete a same-named successor."""
    return {"preconditions": {"uid": uid}} if uid else None


def delete_precondition_params(uid: str = "") -> dict[str, str]:
    """The Argo Server's spelling of ``delete_options(uid)`` (grpc-gateway query parameters)."""
    return {"deleteOptions.preconditions.uid": uid} if uid else {}


def check_uid(workflow: Mapping[str, Any], uid: str) -> None:
    """:class:`ConflictError` when ``workflow`` is not the one with ``uid`` (a same-named successor)."""
    meta = workflow.get("metadata") or {}
    if uid and meta.get("uid") != uid:
        raise ConflictError(
            f"workflow {meta.get('namespace')}/{meta.get('name')} now has uid {meta.get('uid')}, not {uid}: "
            "it is a same-named successor, left alone", status=409, reason="Conflict")


def list_page_query(label_selector: str, field_selector: str, token: str = "") -> tuple[tuple[str, QueryValue], ...]:
    """The query of one page of a Kubernetes list: ``continue`` after the first page, both
    selectors (sent even when empty, as the client does) and ``limit``."""
    query: list[tuple[str, QueryValue]] = [("continue", token)] if token else []
    query += [("fieldSelector", field_selector), ("labelSelector", label_selector), ("limit", LIST_PAGE_SIZE)]
    return tuple(query)


def check_custom_object(kind: str, api_version: str, body: Any) -> dict[str, Any]:
    """A custom object body of ``kind`` as a new dict: ``apiVersion``/``kind`` defaulted and
    checked, ``metadata.name`` or ``generateName`` required, ``status`` dropped; errors name the field."""
    if not isinstance(body, Mapping):
        raise WorkflowSpecError(f"{kind} body must be a mapping, got {type(body).__name__}")
    obj = copy.deepcopy(dict(body))
    obj.setdefault("apiVersion", api_version)
    obj.setdefault("kind", kind)
    if obj["kind"] != kind:
        raise WorkflowSpecError(f"{kind} body: kind must be {kind!r}, got {obj['kind']!r}")
    if obj["apiVersion"] != api_version:
        raise WorkflowSpecError(f"{kind} body: apiVersion must be {api_version!r}, got {obj['apiVersion']!r}")
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping) or not (meta.get("name") or meta.get("generateName")):
        raise WorkflowSpecError(f"{kind} body: metadata.name or metadata.generateName is required")
    obj.pop("status", None)
    return obj


def check_body(body: Any) -> dict[str, Any]:
    """A Workflow body as a new dict with apiVersion/kind defaulted; errors name the field."""
    if not isinstance(body, Mapping):
        raise WorkflowSpecError(f"workflow body must be a mapping (a Workflow object), got {type(body).__name__}")
    wf = copy.deepcopy(dict(body))
    wf.setdefault("apiVersion", API_VERSION)
    wf.setdefault("kind", "Workflow")
    if wf["kind"] != "Workflow":
        raise WorkflowSpecError(f"workflow body: kind must be 'Workflow', got {wf['kind']!r}")
    meta = wf.get("metadata")
    if not isinstance(meta, Mapping) or not (meta.get("name") or meta.get("generateName")):
        raise WorkflowSpecError("workflow body: metadata.name or metadata.generateName is required")
    wf.pop("status", None)
    return wf


def status_error_from_event(obj: Mapping[str, Any], context: str) -> ArgoApiError:
    """The error an ERROR watch event (a ``Status`` object) stands for (410 -> GoneError)."""
    return api_error_from_status(int(obj.get("code") or 500), json.dumps(dict(obj)), context=context)


#: how often a create-or-update starts over after losing a race (409 from the create or the update)
APPLY_ATTEMPTS = 3


def check_template_body(body: Any, namespace: str) -> dict[str, Any]:
    """A WorkflowTemplate body as a new dict: apiVersion/kind defaulted, ``metadata.namespace`` set
    to ``namespace`` (a different one is an error), ``status``/``resourceVersion`` dropped."""
    if not isinstance(body, Mapping):
        raise WorkflowSpecError(f"workflow template body must be a mapping, got {type(body).__name__}")
    wt = copy.deepcopy(dict(body))
    wt.setdefault("apiVersion", API_VERSION)
    wt.setdefault("kind", "WorkflowTemplate")
    if wt["kind"] != "WorkflowTemplate":
        raise WorkflowSpecError(f"workflow template body: kind must be 'WorkflowTemplate', got {wt['kind']!r}")
    meta = wt.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise WorkflowSpecError("workflow template body: metadata.name is required (templates are applied by name)")
    if meta.get("namespace") not in (None, "", namespace):
        raise WorkflowSpecError(f"workflow template body: metadata.namespace {meta['namespace']!r} differs from the "
                                f"namespace {namespace!r} it is applied to: drop one of them")
    meta["namespace"] = namespace
    meta.pop("resourceVersion", None)
    wt.pop("status", None)
    return wt


def _unchanged(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether ``current`` already has ``desired``'s spec, labels and annotations."""
    cur_meta, new_meta = current.get("metadata") or {}, desired.get("metadata") or {}
    return current.get("spec") == desired.get("spec") and all(
        (cur_meta.get(k) or {}) == (new_meta.get(k) or {}) for k in ("labels", "annotations"))


def apply_object(
    desired: dict[str, Any],
    get: Callable[[], ApiRequest],
    create: Callable[[dict[str, Any]], ApiRequest],
    update: Callable[[dict[str, Any]], ApiRequest],
) -> Operation[dict[str, Any]]:
    """Create-or-update, idempotently: GET the object; absent -> ``create(desired)``; equal in spec,
    labels and annotations -> nothing is written; else ``update`` of ``desired`` carrying the read
    ``resourceVersion``. A 409 (another writer won the race) starts over, at most
    :data:`APPLY_ATTEMPTS` times. Returns the stored object."""
    last: ConflictError | None = None
    for _ in range(APPLY_ATTEMPTS):
        try:
            current = yield get()
        except ArgoApiError as exc:
            if exc.status != 404:
                raise
            try:
                created: dict[str, Any] = yield create(copy.deepcopy(desired))
            except ConflictError as conflict:
                last = conflict
                continue
            return created
        if _unchanged(current, desired):
            return dict(current)
        body = copy.deepcopy(desired)
        version = (current.get("metadata") or {}).get("resourceVersion")
        if version:
            body["metadata"]["resourceVersion"] = version
        try:
            updated: dict[str, Any] = yield update(body)
        except ConflictError as conflict:
            last = conflict
            continue
        return updated
    assert last is not None
    raise last
