"""Argo Workflows' conventions, written once: API group and version, label and annotation keys,
phase sets, the node-id and pod-name rules with their FNV-1a hash, and the timestamp format.

Pure (no HTTP, no Airflow, no local cluster): the hook, the operators, the sensors, the triggers and
the local cluster import these names from here and nowhere else. The rules mirror Argo's
``workflow/common/common.go`` (keys), ``workflow/util/pod_name.go`` (pod names) and
``Workflow.NodeID`` (node ids) of the release in :data:`ARGO_VERSION`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

#: the Argo Workflows release whose API and conventions this package follows
ARGO_VERSION = "v3.6.0"

GROUP = "argoproj.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
#: the plural resource names under :data:`API_VERSION`
WORKFLOWS = "workflows"
WORKFLOW_TEMPLATES = "workflowtemplates"
CLUSTER_WORKFLOW_TEMPLATES = "clusterworkflowtemplates"
CRON_WORKFLOWS = "cronworkflows"

_PREFIX = "workflows.argoproj.io/"
#: on a Pod: the workflow it belongs to
LABEL_WORKFLOW = _PREFIX + "workflow"
#: on a Workflow (``"true"``) once the controller has finished it; on a Pod once it is done
LABEL_COMPLETED = _PREFIX + "completed"
#: set by a CronWorkflow on the workflows it creates; Argo's ``{{workflow.scheduledTime}}``
ANNOTATION_SCHEDULED_TIME = _PREFIX + "scheduled-time"
#: on a Workflow: its phase, as the controller last wrote it
LABEL_PHASE = _PREFIX + "phase"
LABEL_CREATOR = _PREFIX + "creator"
LABEL_CREATOR_EMAIL = _PREFIX + "creator-email"
LABEL_WORKFLOW_ARCHIVING_STATUS = _PREFIX + "workflow-archiving-status"
LABEL_RESUBMITTED_FROM = _PREFIX + "resubmitted-from-workflow"
LABEL_WORKFLOW_TEMPLATE = _PREFIX + "workflow-template"
LABEL_CLUSTER_WORKFLOW_TEMPLATE = _PREFIX + "cluster-workflow-template"
LABEL_CRON_WORKFLOW = _PREFIX + "cron-workflow"
#: on a Pod: the id / name of the node it runs, its template and its outputs (executor -> controller)
ANNOTATION_NODE_ID = _PREFIX + "node-id"
ANNOTATION_NODE_NAME = _PREFIX + "node-name"
ANNOTATION_TEMPLATE = _PREFIX + "template"
ANNOTATION_OUTPUTS = _PREFIX + "outputs"
#: on a Workflow: ``v1`` pod names are node ids, ``v2`` (the default) is :func:`pod_name`
ANNOTATION_POD_NAME_FORMAT = _PREFIX + "pod-name-format"
#: on a ConfigMap of artifact repositories: the key of the namespace's default repository
ANNOTATION_DEFAULT_ARTIFACT_REPOSITORY = _PREFIX + "default-artifact-repository"
#: the finalizer Argo's controller puts on a workflow with ``artifactGC``, removed once the
#: ``OnWorkflowDeletion`` collection ran
FINALIZER_ARTIFACT_GC = _PREFIX + "artifact-gc"

#: phases after which a workflow never changes again
TERMINAL_PHASES = ("Succeeded", "Failed", "Error")
#: terminal phases that count as a failure (of a workflow or a node)
FAILED_PHASES = ("Failed", "Error")
#: phases (besides an empty/absent one) in which a workflow is still on its way
WAITING_PHASES = ("Pending", "Running")
#: phases after which a node never changes again
NODE_COMPLETED_PHASES = frozenset({"Succeeded", "Failed", "Error", "Skipped", "Omitted"})

MAX_K8S_RESOURCE_NAME_LENGTH = 253
K8S_NAMING_HASH_LENGTH = 10

#: hashes of node names already seen; FNV-1a has no finalisation, so the hash of a name is also the
#: state to continue from for a longer name (a child ``parent.child``): deep node trees hash only
#: their new suffixes instead of names hundreds of characters long, again and again
_FNV_CACHE: dict[str, int] = {}
_FNV_CACHE_SIZE = 50_000


def fnv32a(text: str) -> int:
    """The 32-bit FNV-1a hash of ``text`` (UTF-8), as Go's ``hash/fnv`` ``New32a``."""
    cached = _FNV_CACHE.get(text)
    if cached is not None:
        return cached
    value, start = 0x811C9DC5, 0
    cut = len(text)
    while True:
        cut = text.rfind(".", 0, cut)
        if cut <= 0:
            break
        prefix = _FNV_CACHE.get(text[:cut])
        if prefix is not None:
            value, start = prefix, cut
            break
    for byte in text[start:].encode("utf-8"):
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    if len(_FNV_CACHE) >= _FNV_CACHE_SIZE:
        _FNV_CACHE.clear()
    _FNV_CACHE[text] = value
    return value


def node_id(workflow_name: str, node_name: str) -> str:
    """Argo's ``Workflow.NodeID``: the workflow name for the root node, else ``<wf>-<fnv32a>``."""
    if node_name == workflow_name:
        return workflow_name
    return f"{workflow_name}-{fnv32a(node_name)}"


def pod_name(workflow_name: str, node_name: str, template_name: str) -> str:
    """Argo's v2 pod name for the node ``node_name`` running template ``template_name``:
    ``<wf>-<template>-<fnv32a(node name)>``, the prefix cut so the name fits 253 characters."""
    if workflow_name == node_name:
        return workflow_name
    prefix = workflow_name
    if ".inline" not in node_name and template_name:
        prefix = f"{workflow_name}-{template_name}"
    max_prefix = MAX_K8S_RESOURCE_NAME_LENGTH - K8S_NAMING_HASH_LENGTH
    if len(prefix) > max_prefix - 1:
        prefix = prefix[: max_prefix - 1]
    return f"{prefix}-{fnv32a(node_name)}"


def node_template_name(node: Mapping[str, Any]) -> str:
    """The template a node runs, by name or through its ``templateRef``."""
    return str(node.get("templateName") or (node.get("templateRef") or {}).get("template", "") or "")


def workflow_pod_name(workflow: Mapping[str, Any], node_id_: str, node: Mapping[str, Any]) -> str:
    """The pod of a ``Pod`` node of ``workflow``: :func:`pod_name` (v2), or the node id when the
    workflow's ``pod-name-format`` annotation says ``v1``."""
    meta = workflow.get("metadata") or {}
    if (meta.get("annotations") or {}).get(ANNOTATION_POD_NAME_FORMAT) == "v1":
        return node_id_
    return pod_name(str(meta.get("name", "")), str(node.get("name", "")), node_template_name(node))


def rfc3339(ts: float) -> str:
    """The UTC time ``ts`` (seconds since the epoch) as RFC 3339 with a ``Z`` suffix and second
    precision (``2024-01-01T00:00:00Z``, as Argo writes ``startedAt`` / ``finishedAt``)."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339() -> str:
    """The current UTC time as :func:`rfc3339` writes it."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
