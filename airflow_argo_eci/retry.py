"""What ``argo retry`` and ``argo resubmit`` do to a workflow object, as pure functions (no HTTP,
no Airflow).

Mirrors Argo's ``util.FormulateRetryWorkflow``: failed (and, with ``restart_successful`` and a
``node_field_selector``, selected) pod nodes and every ``onExit`` node are removed, their ancestors
(step/DAG boundaries) are reset to ``Running``, the workflow's ``phase``/``finishedAt``/``message``
and the ``Completed`` condition are cleared, ``spec.shutdown`` is dropped and the
``workflows.argoproj.io/completed`` label removed. The caller deletes the pods of the removed nodes
and writes the new object back. :func:`formulate_resubmit` is ``argo resubmit`` (a new workflow
with the old spec and ``generateName``). Used by the hook's Kubernetes transport; the local Argo
Server could share them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from airflow_argo_eci.errors import WorkflowSpecError

API_VERSION = "argoproj.io/v1alpha1"
LABEL_COMPLETED = "workflows.argoproj.io/completed"
LABEL_PHASE = "workflows.argoproj.io/phase"
LABEL_CREATOR = "workflows.argoproj.io/creator"
LABEL_RESUBMITTED_FROM = "workflows.argoproj.io/resubmitted-from-workflow"
_BOUNDARY_TYPES = ("Steps", "DAG", "Retry", "StepGroup", "TaskGroup")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_value(node: Mapping[str, Any], key: str) -> str | None:
    match = re.fullmatch(r"inputs\.parameters\.([^.]+)\.value", key)
    if match:
        for param in (node.get("inputs") or {}).get("parameters") or []:
            if param.get("name") == match.group(1):
                return str(param.get("value", ""))
        return None
    value: Any = node
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return None if value is None else str(value)


def node_field_selector(selector: str) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate for Argo's ``nodeFieldSelector`` (``displayName=x,phase!=Succeeded``...)."""
    requirements: list[tuple[str, bool, str]] = []
    for part in (p.strip() for p in selector.split(",")):
        if not part:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(!=|==|=)\s*(.*)", part)
        if not match:
            raise WorkflowSpecError(
                f'node_field_selector: cannot parse "{part}"; use key=value or key!=value, e.g. displayName=step-a'
            )
        requirements.append((match.group(1), match.group(2) != "!=", match.group(3)))

    def matches(node: Mapping[str, Any]) -> bool:
        return all((_node_value(node, key) == value) == equal for key, equal, value in requirements)

    return matches


def apply_parameters(spec: dict[str, Any], parameters: Mapping[str, Any] | None) -> None:
    """Set ``spec.arguments.parameters`` values (``argo retry -p name=value``)."""
    if not parameters:
        return
    params = spec.setdefault("arguments", {}).setdefault("parameters", [])
    for name, value in parameters.items():
        for param in params:
            if param.get("name") == name:
                param["value"] = str(value)
                param.pop("valueFrom", None)
                break
        else:
            params.append({"name": name, "value": str(value)})


def formulate_retry(
    workflow: Mapping[str, Any],
    *,
    restart_successful: bool = False,
    node_field_selector_text: str = "",
    parameters: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], set[str]]:
    """The retried workflow and the ids of the nodes whose pods must be deleted.

    Raises :class:`WorkflowSpecError` unless the workflow is ``Failed`` or ``Error``.
    """
    phase = (workflow.get("status") or {}).get("phase")
    name = workflow["metadata"]["name"]
    if phase not in ("Failed", "Error"):
        raise WorkflowSpecError(
            f"workflow must be Failed/Error to retry (workflow {name} is {phase or 'Pending'}); "
            "wait for it to finish or stop it first"
        )
    new = copy.deepcopy(dict(workflow))
    status = new.setdefault("status", {})
    nodes: dict[str, dict[str, Any]] = status.get("nodes") or {}
    parents: dict[str, str] = {}
    for node_id, node in nodes.items():
        for child in node.get("children") or []:
            parents.setdefault(child, node_id)

    forced: set[str] = set()
    if restart_successful and node_field_selector_text:
        match = node_field_selector(node_field_selector_text)
        stack = [node_id for node_id, node in nodes.items() if match(node)]
        while stack:
            node_id = stack.pop()
            if node_id in forced or node_id not in nodes:
                continue
            forced.add(node_id)
            stack.extend(nodes[node_id].get("children") or [])

    on_exit = f"{name}.onExit"
    deleted: set[str] = set()
    reset: set[str] = set()
    for node_id, node in nodes.items():
        node_phase = node.get("phase")
        boundary = node.get("type") in _BOUNDARY_TYPES
        if str(node.get("name", "")).startswith(on_exit):
            deleted.add(node_id)
        elif node_phase in ("Succeeded", "Skipped") and node_id not in forced:
            continue
        elif node_phase in ("Failed", "Error", "Omitted") or node_id in forced:
            (reset if boundary else deleted).add(node_id)
        elif node.get("type") == "Suspend":
            deleted.add(node_id)
    # the ancestors of every removed node run again
    for node_id in list(deleted):
        parent = parents.get(node_id)
        while parent is not None and parent not in reset:
            if nodes[parent].get("type") in (*_BOUNDARY_TYPES, "Pod"):
                reset.add(parent)
            parent = parents.get(parent)
    for node_id in deleted:
        nodes.pop(node_id, None)
    for node_id in reset - deleted:
        node = nodes[node_id]
        node["phase"] = "Running"
        node["startedAt"] = _now()
        for key in ("finishedAt", "message", "outputs"):
            node.pop(key, None)
    for node in nodes.values():
        if node.get("children"):
            node["children"] = [c for c in node["children"] if c not in deleted]
        if node.get("outboundNodes"):
            node["outboundNodes"] = [c for c in node["outboundNodes"] if c not in deleted]
    status["nodes"] = nodes
    status["phase"] = "Running"
    for key in ("finishedAt", "message", "outputs"):
        status.pop(key, None)
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != "Completed"]
    spec = new.setdefault("spec", {})
    spec.pop("shutdown", None)
    if spec.get("activeDeadlineSeconds") is not None and int(spec["activeDeadlineSeconds"]) <= 0:
        spec.pop("activeDeadlineSeconds")
    apply_parameters(spec, parameters)
    labels = new["metadata"].setdefault("labels", {})
    labels.pop(LABEL_COMPLETED, None)
    labels[LABEL_PHASE] = "Running"
    return new, deleted


def formulate_resubmit(workflow: Mapping[str, Any], parameters: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A new Workflow with the spec of ``workflow`` and ``generateName`` (``argo resubmit``)."""
    meta = workflow["metadata"]
    skip = (LABEL_CREATOR, LABEL_PHASE, LABEL_COMPLETED, "workflows.argoproj.io/creator-email",
            "workflows.argoproj.io/workflow-archiving-status")
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in skip}
    labels[LABEL_RESUBMITTED_FROM] = meta["name"]
    new_meta: dict[str, Any] = {"generateName": meta.get("generateName") or f"{meta['name']}-", "labels": labels}
    if meta.get("annotations"):
        new_meta["annotations"] = dict(meta["annotations"])
    if meta.get("ownerReferences"):
        new_meta["ownerReferences"] = list(meta["ownerReferences"])
    spec = copy.deepcopy(dict(workflow.get("spec") or {}))
    spec.pop("shutdown", None)
    if spec.get("activeDeadlineSeconds") is not None and int(spec["activeDeadlineSeconds"]) <= 0:
        spec.pop("activeDeadlineSeconds")
    apply_parameters(spec, parameters)
    return {"apiVersion": API_VERSION, "kind": "Workflow", "metadata": new_meta, "spec": spec}
