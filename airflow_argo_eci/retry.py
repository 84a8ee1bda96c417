"""What ``argo retry``, ``argo resubmit``, ``argo resume`` and ``argo stop --node-field-selector`` do to a
workflow object, as pure functions (no HTTP, no Airflow).

:func:`formulate_retry` mirrors Argo's ``util.FormulateRetryWorkflow``: failed (and, with
``restart_successful`` and a node field selector, selected) pod nodes and every ``onExit`` node are
removed, their ancestors (step/DAG boundaries) are reset to ``Running``, the workflow's
``phase``/``finishedAt``/``message`` and the ``Completed`` condition are cleared, ``spec.shutdown`` is
dropped and the ``workflows.argoproj.io/completed`` label removed. The caller deletes the pods of the
removed nodes and writes the new object back. :func:`formulate_resubmit` is ``argo resubmit`` (a new
workflow with the old spec and ``generateName``); :func:`update_suspend_nodes` is the Suspend-node
update of ``argo resume`` / ``argo stop --node-field-selector``.

Used by the hook's Kubernetes transport and by the local Argo Server; bad input raises
:class:`RetryError`, which each caller turns into its own error type. ``field`` arguments name the
offending input in messages the way the caller's user spells it (``node_field_selector`` for the hook,
``nodeFieldSelector`` for the Argo Server API).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

from airflow_argo_eci.conventions import (
    API_VERSION,
    LABEL_COMPLETED,
    LABEL_CREATOR,
    LABEL_CREATOR_EMAIL,
    LABEL_PHASE,
    LABEL_RESUBMITTED_FROM,
    LABEL_WORKFLOW_ARCHIVING_STATUS,
    now_rfc3339,
)
from airflow_argo_eci.workflows import workflow_nodes

_BOUNDARY_TYPES = ("Steps", "DAG", "Retry", "StepGroup", "TaskGroup")


class RetryError(ValueError):
    """A retry/resubmit/resume/stop request that cannot be applied; the message names the field and the fix."""


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


def node_field_selector(selector: str, field: str = "node_field_selector") -> Callable[[Mapping[str, Any]], bool]:
    """A predicate for Argo's ``nodeFieldSelector`` (``displayName=x,phase!=Succeeded``...)."""
    requirements: list[tuple[str, bool, str]] = []
    for part in (p.strip() for p in selector.split(",")):
        if not part:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(!=|==|=)\s*(.*)", part)
        if not match:
            raise RetryError(
                f'{field}: cannot parse "{part}"; use key=value or key!=value, e.g. displayName=step-a'
            )
        requirements.append((match.group(1), match.group(2) != "!=", match.group(3)))

    def matches(node: Mapping[str, Any]) -> bool:
        return all((_node_value(node, key) == value) == equal for key, equal, value in requirements)

    return matches


def parse_parameters(items: Any, field: str) -> dict[str, str]:
    """``["name=value", ...]`` (the Argo Server's ``parameters``) as a dict; errors name ``field``."""
    if not items:
        return {}
    if not isinstance(items, list) or not all(isinstance(p, str) for p in items):
        raise RetryError(f'{field} must be a list of "name=value" strings')
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise RetryError(f'{field}: "{item}" must look like name=value')
        out[name] = value
    return out


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


def update_suspend_nodes(
    workflow: Mapping[str, Any], phase: str, *, message: str = "", selector: str = "",
    field: str = "node_field_selector",
) -> dict[str, dict[str, Any]]:
    """The changed nodes (id -> updated copy) when Suspend nodes get ``phase``, as ``argo resume`` /
    ``argo stop --node-field-selector`` do: without ``selector`` the running Suspend nodes (none is
    fine), with one the matching Suspend nodes (none is a :class:`RetryError`). Output parameters with
    ``valueFrom.supplied`` take their default; without one, ``Succeeded`` is a :class:`RetryError`."""
    match = node_field_selector(selector, field) if selector else None
    nodes: dict[str, Any] = workflow_nodes(workflow.get("status"))
    now = now_rfc3339()
    changed: dict[str, dict[str, Any]] = {}
    for node_id, original in nodes.items():
        if original.get("type") != "Suspend":
            continue
        if (match is None and original.get("phase") != "Running") or (match is not None and not match(original)):
            continue
        node = copy.deepcopy(original)
        for param in (node.get("outputs") or {}).get("parameters") or []:
            value_from = param.get("valueFrom") or {}
            if "supplied" in value_from and "value" not in param:
                if "default" in value_from:
                    param["value"] = value_from["default"]
                    param.pop("valueFrom", None)
                elif phase == "Succeeded":
                    raise RetryError(
                        f"raw output parameter '{param.get('name')}' of node {node_id} has not been set and does "
                        "not have a default value; set it before resuming"
                    )
        node["phase"] = phase
        node["finishedAt"] = now
        if message:
            node["message"] = message
        changed[node_id] = node
    if selector and not changed:
        raise RetryError(
            f"currently, set only targets suspend nodes: no suspend nodes matching {field}: {selector}"
        )
    return changed


def formulate_retry(
    workflow: Mapping[str, Any],
    *,
    restart_successful: bool = False,
    node_field_selector_text: str = "",
    parameters: Mapping[str, Any] | None = None,
    field: str = "node_field_selector",
) -> tuple[dict[str, Any], set[str]]:
    """The retried workflow and the ids of the nodes whose pods must be deleted.

    Raises :class:`RetryError` unless the workflow is ``Failed`` or ``Error`` (or when the selector,
    named ``field`` in the message, cannot be parsed).
    """
    phase = (workflow.get("status") or {}).get("phase")
    name = workflow["metadata"]["name"]
    if phase not in ("Failed", "Error"):
        raise RetryError(
            f"workflow must be Failed/Error to retry (workflow {name} is {phase or 'Pending'}); "
            "wait for it to finish or stop it first"
        )
    new = copy.deepcopy(dict(workflow))
    status = new.setdefault("status", {})
    nodes: dict[str, dict[str, Any]] = workflow_nodes(status)
    status.pop("compressedNodes", None)  # written back uncompressed; the controller packs it again
    parents: dict[str, str] = {}
    for node_id, node in nodes.items():
        for child in node.get("children") or []:
            parents.setdefault(child, node_id)

    forced: set[str] = set()
    if restart_successful and node_field_selector_text:
        match = node_field_selector(node_field_selector_text, field)
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
        node["startedAt"] = now_rfc3339()
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
    skip = (LABEL_CREATOR, LABEL_PHASE, LABEL_COMPLETED, LABEL_CREATOR_EMAIL, LABEL_WORKFLOW_ARCHIVING_STATUS)
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
