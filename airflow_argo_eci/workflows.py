"""Pure helpers around Argo ``Workflow`` objects: loading, labelling, phase outcome and results.

Nothing here talks to a cluster or imports Airflow: the functions take and return plain dicts
(the JSON shape of ``argoproj.io/v1alpha1`` objects), so the operator, the sensor, the trigger
and the local cluster can all share them. Hera is imported lazily, only when handed a Hera object.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import os
import re
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from airflow_argo_eci.conventions import API_VERSION, FAILED_PHASES, TERMINAL_PHASES, WAITING_PHASES, workflow_pod_name
from airflow_argo_eci.errors import ArgoEciError, WorkflowSpecError

__all__ = [
    "API_VERSION",
    "FAILED_PHASES",
    "LABEL_PREFIX",
    "TERMINAL_PHASES",
    "WAITING_PHASES",
    "OffloadedNodesError",
    "failed_nodes",
    "failure_message",
    "is_valid_label_key",
    "is_valid_label_value",
    "load_workflow",
    "merge_metadata",
    "merge_string_map",
    "phase_outcome",
    "reattach_selector",
    "set_parameters",
    "ti_labels",
    "validate_workflow",
    "workflow_from_template_ref",
    "workflow_nodes",
    "workflow_pods",
    "workflow_result",
]

#: every label :func:`ti_labels` writes lives under this prefix
LABEL_PREFIX = "airflow.apache.org/"

_LABEL_DAG_ID = LABEL_PREFIX + "dag-id"
_LABEL_TASK_ID = LABEL_PREFIX + "task-id"
_LABEL_RUN_ID = LABEL_PREFIX + "run-id"
_LABEL_MAP_INDEX = LABEL_PREFIX + "map-index"
_LABEL_TRY_NUMBER = LABEL_PREFIX + "try-number"

_LABEL_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_DNS_SUBDOMAIN = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
_LABEL_VALUE_RE = re.compile(rf"^(?:{_LABEL_NAME})?$")
_LABEL_KEY_RE = re.compile(rf"^(?:{_DNS_SUBDOMAIN}/)?{_LABEL_NAME}$")
_RESOURCE_NAME_RE = re.compile(rf"^{_DNS_SUBDOMAIN}$")
_WORKFLOW_SUFFIXES = (".yaml", ".yml", ".json")
_HASH_LEN = 10
_MAX_MESSAGE = 500
_MAX_LISTED_NODES = 10


# --------------------------------------------------------------------------------------------
# labels
# --------------------------------------------------------------------------------------------


def is_valid_label_value(value: str) -> bool:
    """Whether ``value`` is a valid Kubernetes label value (<= 63 chars, ``[-_.A-Za-z0-9]``,
    alphanumeric first and last character, or empty)."""
    return isinstance(value, str) and bool(_LABEL_VALUE_RE.match(value))


def is_valid_label_key(key: str) -> bool:
    """Whether ``key`` is a valid Kubernetes label/annotation key (``[prefix/]name``)."""
    if not isinstance(key, str) or not _LABEL_KEY_RE.match(key):
        return False
    prefix, _, _ = key.rpartition("/")
    return len(prefix) <= 253


def _label_value(raw: str) -> str:
    """``raw`` itself when it is a valid label value, else a readable prefix plus a stable hash.

    The hash covers the whole raw value, so two different values never share a label value
    (barring a SHA-256 collision) and the same value always maps to the same label value.
    """
    if is_valid_label_value(raw) and raw:
        return raw
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:_HASH_LEN]
    readable = re.sub(r"[^-A-Za-z0-9_.]+", "-", raw)[: 63 - _HASH_LEN - 1]
    readable = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", readable)
    return f"{readable}-{digest}" if readable else digest


def ti_labels(dag_id: str, task_id: str, run_id: str, map_index: int, try_number: int) -> dict[str, str]:
    """Labels that identify one Airflow task instance try on the workflow it submits.

    Keys live under ``airflow.apache.org/`` (``dag-id``, ``task-id``, ``run-id``, ``map-index``,
    ``try-number``). Values are valid Kubernetes label values: a value that is too long or holds
    characters labels do not allow (``run_id`` usually has ``:`` and ``+``) becomes a readable
    prefix plus a deterministic hash. ``map-index`` is left out for unmapped tasks (``map_index``
    ``-1``, which is not a valid label value); :func:`reattach_selector` then requires its absence.
    """
    for field_name, value in (("dag_id", dag_id), ("task_id", task_id), ("run_id", run_id)):
        if not isinstance(value, str) or not value:
            raise WorkflowSpecError(f"{field_name} must be a non-empty string, got {value!r}")
    if isinstance(map_index, bool) or not isinstance(map_index, int) or map_index < -1:
        raise WorkflowSpecError(f"map_index must be an int >= -1 (-1 for an unmapped task), got {map_index!r}")
    if isinstance(try_number, bool) or not isinstance(try_number, int) or try_number < 0:
        raise WorkflowSpecError(f"try_number must be an int >= 0, got {try_number!r}")
    labels = {
        _LABEL_DAG_ID: _label_value(dag_id),
        _LABEL_TASK_ID: _label_value(task_id),
        _LABEL_RUN_ID: _label_value(run_id),
    }
    if map_index >= 0:
        labels[_LABEL_MAP_INDEX] = str(map_index)
    labels[_LABEL_TRY_NUMBER] = str(try_number)
    return labels


def reattach_selector(labels: Mapping[str, str]) -> str:
    """A label selector that matches the workflows of the same task instance, whatever the try.

    ``labels`` is what :func:`ti_labels` returned. ``try-number`` is dropped; when ``map-index``
    is absent (an unmapped task) the selector requires it to be absent (``!airflow.apache.org/map-index``)
    so an unmapped task never reattaches to a mapped one's workflow.
    """
    missing = [k for k in (_LABEL_DAG_ID, _LABEL_TASK_ID, _LABEL_RUN_ID) if k not in labels]
    if missing:
        raise WorkflowSpecError(
            f"reattach_selector needs the labels made by ti_labels(); missing: {', '.join(missing)}")
    parts = []
    for key in sorted(labels):
        if key == _LABEL_TRY_NUMBER:
            continue
        value = labels[key]
        if not is_valid_label_key(key) or not is_valid_label_value(value):
            raise WorkflowSpecError(f"label {key}={value!r} is not a valid Kubernetes label")
        parts.append(f"{key}={value}")
    if _LABEL_MAP_INDEX not in labels:
        parts.append(f"!{_LABEL_MAP_INDEX}")
    return ",".join(parts)


def merge_metadata(
    workflow: Mapping[str, Any], labels: Mapping[str, str], annotations: Mapping[str, str]
) -> dict[str, Any]:
    """A copy of ``workflow`` with ``labels``/``annotations`` added to its ``metadata``.

    Keys the workflow already has keep their value; a key it has with a *different* value raises
    :class:`WorkflowSpecError` naming the key (nothing is overwritten silently).
    """
    result = copy.deepcopy(dict(workflow))
    metadata = result.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        raise WorkflowSpecError("workflow.metadata must be a mapping")
    for kind, extra in (("labels", labels), ("annotations", annotations)):
        if not extra:
            continue
        current = metadata.setdefault(kind, {})
        if not isinstance(current, dict):
            raise WorkflowSpecError(f"workflow.metadata.{kind} must be a mapping of strings")
        merge_string_map(current, extra, where=f"workflow.metadata.{kind}", check_label_values=kind == "labels")
    return result


def merge_string_map(
    target: dict[str, Any], extra: Mapping[str, str], *, where: str, check_label_values: bool = False
) -> None:
    """Add ``extra`` into ``target`` in place, refusing to change a value ``target`` already has.

    Used for labels and annotations everywhere in this package: equal values are fine, a
    different value raises :class:`WorkflowSpecError` naming ``where`` and the key.
    """
    for key, value in extra.items():
        if not is_valid_label_key(key):
            raise WorkflowSpecError(
                f"{where}: {key!r} is not a valid Kubernetes key: use [prefix/]name, where name is at most "
                "63 characters of [-_.A-Za-z0-9] starting and ending with a letter or digit")
        if not isinstance(value, str):
            raise WorkflowSpecError(f"{where}.{key}: value must be a string, got {value!r}")
        if check_label_values and not is_valid_label_value(value):
            raise WorkflowSpecError(
                f"{where}.{key}: {value!r} is not a valid label value: at most 63 characters of "
                "[-_.A-Za-z0-9], starting and ending with a letter or digit")
        if key in target and target[key] != value:
            raise WorkflowSpecError(
                f"{where}.{key} is already set to {target[key]!r}, which conflicts with {value!r}: remove it "
                "from the workflow or give the same value")
        target[key] = value


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------


def load_workflow(source: Any) -> dict[str, Any]:
    """A validated deep copy of a ``Workflow`` given in any of the supported forms.

    ``source`` may be a mapping, YAML or JSON text, a path (``str`` or :class:`os.PathLike`) to a
    ``.yaml``/``.yml``/``.json`` file, or a Hera ``Workflow`` (via ``to_dict()``). YAML is read with
    ``safe_load``. The result must be an ``argoproj.io/v1alpha1`` ``Workflow`` whose ``spec`` has an
    ``entrypoint`` naming one of its templates, or a ``workflowTemplateRef``. Every problem raises
    :class:`WorkflowSpecError` naming the field and the fix (YAML/JSON syntax errors give line and
    column).
    """
    if isinstance(source, Mapping):
        data: Any = copy.deepcopy(dict(source))
    elif isinstance(source, os.PathLike):
        data = _read_file(Path(os.fspath(source)))
    elif isinstance(source, str):
        data = _load_text_or_path(source)
    elif isinstance(source, bytes):
        data = _parse_text(source.decode("utf-8"), origin="workflow text")
    else:
        data = _from_hera(source)
    validate_workflow(data)
    result: dict[str, Any] = data
    return result


def _load_text_or_path(text: str) -> Any:
    stripped = text.strip()
    if not stripped:
        raise WorkflowSpecError("workflow is empty: pass a Workflow as a dict, YAML/JSON text or a file path")
    looks_like_path = "\n" not in stripped and stripped.lower().endswith(_WORKFLOW_SUFFIXES)
    if looks_like_path:
        return _read_file(Path(stripped).expanduser())
    data = _parse_text(text, origin="workflow text")
    if isinstance(data, str) and "\n" not in stripped:
        raise WorkflowSpecError(
            f"workflow {stripped!r} is neither a Workflow nor a workflow file: a file path must end in .yaml, .yml "
            "or .json")
    return data


def _read_file(path: Path) -> Any:
    if path.suffix.lower() not in _WORKFLOW_SUFFIXES:
        raise WorkflowSpecError(
            f"workflow file {path}: unsupported extension {path.suffix!r}: use .yaml, .yml or .json")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowSpecError(f"workflow file {path} does not exist: check the path") from None
    except OSError as exc:
        raise WorkflowSpecError(f"workflow file {path} cannot be read: {exc}") from exc
    return _parse_text(text, origin=str(path), json_only=path.suffix.lower() == ".json")


def _parse_text(text: str, *, origin: str, json_only: bool = False) -> Any:
    if json_only or text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise WorkflowSpecError(
                f"{origin}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    import yaml

    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise WorkflowSpecError(f"{origin}: invalid YAML{where}: {problem}") from None
    if len(documents) != 1:
        raise WorkflowSpecError(
            f"{origin}: expected exactly one YAML document with a Workflow, found {len(documents)}")
    return documents[0]


def _from_hera(source: Any) -> dict[str, Any]:
    module = type(source).__module__ or ""
    if not module.startswith("hera."):
        raise WorkflowSpecError(
            f"workflow must be a dict, YAML/JSON text, a .yaml/.yml/.json path or a Hera Workflow, "
            f"got {type(source).__name__}")
    from hera.workflows import Workflow as HeraWorkflow

    if not isinstance(source, HeraWorkflow):
        raise WorkflowSpecError(
            f"workflow: a Hera {type(source).__name__} is not a Workflow: wrap it in hera.workflows.Workflow")
    try:
        data: dict[str, Any] = source.to_dict()
    except Exception as exc:  # Hera raises assorted pydantic/value errors while building
        raise WorkflowSpecError(f"workflow: the Hera Workflow cannot be built: {exc}") from exc
    return data


def validate_workflow(data: Any) -> None:
    """Raise :class:`WorkflowSpecError` unless ``data`` is a submittable ``Workflow`` mapping."""
    if not isinstance(data, dict):
        raise WorkflowSpecError(f"workflow must be a mapping (a Workflow object), got {type(data).__name__}")
    api_version = data.get("apiVersion")
    if api_version is None:
        raise WorkflowSpecError(f"workflow.apiVersion is missing: set apiVersion: {API_VERSION}")
    if api_version != API_VERSION:
        raise WorkflowSpecError(f"workflow.apiVersion is {api_version!r}: set apiVersion: {API_VERSION}")
    kind = data.get("kind")
    if kind != "Workflow":
        hint = ""
        if kind in ("WorkflowTemplate", "ClusterWorkflowTemplate"):
            hint = " (to run a template, use workflow_template_ref / cluster_workflow_template_ref)"
        raise WorkflowSpecError(f"workflow.kind is {kind!r}: set kind: Workflow{hint}")
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict):
        raise WorkflowSpecError("workflow.metadata must be a mapping with name or generateName")
    for key in ("name", "generateName"):
        value = metadata.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise WorkflowSpecError(f"workflow.metadata.{key} must be a non-empty string, got {value!r}")
    spec = data.get("spec")
    if not isinstance(spec, dict):
        raise WorkflowSpecError("workflow.spec is missing: set spec.entrypoint and spec.templates, "
                                "or spec.workflowTemplateRef")
    ref = spec.get("workflowTemplateRef")
    if ref is not None:
        if not isinstance(ref, dict) or not isinstance(ref.get("name"), str) or not ref.get("name"):
            raise WorkflowSpecError("workflow.spec.workflowTemplateRef.name is missing: set it to the "
                                    "name of a WorkflowTemplate (clusterScope: true for a ClusterWorkflowTemplate)")
    templates = spec.get("templates")
    if templates is not None:
        if not isinstance(templates, list):
            raise WorkflowSpecError("workflow.spec.templates must be a list of templates")
        for i, template in enumerate(templates):
            if not isinstance(template, dict) or not isinstance(template.get("name"), str) or not template["name"]:
                raise WorkflowSpecError(f"workflow.spec.templates[{i}].name is missing: give every template a name")
    entrypoint = spec.get("entrypoint")
    if entrypoint is None:
        if ref is None:
            raise WorkflowSpecError("workflow.spec.entrypoint is missing: set spec.entrypoint to the name of "
                                    "a template or use workflowTemplateRef")
        return
    if not isinstance(entrypoint, str) or not entrypoint:
        raise WorkflowSpecError(f"workflow.spec.entrypoint must be a template name, got {entrypoint!r}")
    names = [t["name"] for t in templates or []]
    if ref is None and entrypoint not in names and "{{" not in entrypoint:
        known = ", ".join(names) if names else "none (spec.templates is empty)"
        raise WorkflowSpecError(
            f"workflow.spec.entrypoint {entrypoint!r} names no template: templates are {known}")


def workflow_from_template_ref(
    name: str, *, cluster_scope: bool = False, generate_name: str | None = None
) -> dict[str, Any]:
    """A ``Workflow`` that runs the ``WorkflowTemplate`` (or ``ClusterWorkflowTemplate``) ``name``."""
    if not isinstance(name, str) or not _RESOURCE_NAME_RE.match(name) or len(name) > 253:
        raise WorkflowSpecError(
            f"workflow template name {name!r} is not a valid Kubernetes name: use lower-case letters, digits, "
            "'-' and '.', starting and ending with a letter or digit")
    prefix = generate_name if generate_name is not None else f"{name[:57]}-"
    if not isinstance(prefix, str) or not re.match(r"^[a-z0-9][-a-z0-9.]*$", prefix) or len(prefix) > 248:
        raise WorkflowSpecError(f"generate_name {prefix!r} is not a valid name prefix: use lower-case letters, "
                                "digits, '-' and '.', starting with a letter or digit")
    ref: dict[str, Any] = {"name": name}
    if cluster_scope:
        ref["clusterScope"] = True
    return {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {"generateName": prefix},
        "spec": {"workflowTemplateRef": ref},
    }


def _parameter_value(name: str, value: Any) -> str:
    if value is None:
        raise WorkflowSpecError(f"parameter {name!r} is None: give it a value (an empty string for nothing)")
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    try:
        return json.dumps(value, sort_keys=False, default=str)
    except (TypeError, ValueError) as exc:
        raise WorkflowSpecError(f"parameter {name!r}: value cannot be turned into a string: {exc}") from exc


def set_parameters(workflow: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``workflow`` with ``spec.arguments.parameters`` set from ``parameters``.

    A parameter the workflow already lists gets its ``value`` replaced (other fields such as
    ``enum`` stay); new ones are appended in ``parameters`` order. Values become strings as Argo
    expects: booleans ``true``/``false``, numbers ``str()``, lists and dicts JSON.
    """
    result = copy.deepcopy(dict(workflow))
    if not parameters:
        return result
    spec = result.get("spec")
    if not isinstance(spec, dict):
        raise WorkflowSpecError("workflow.spec is missing: load the workflow with load_workflow() first")
    arguments = spec.setdefault("arguments", {})
    if not isinstance(arguments, dict):
        raise WorkflowSpecError("workflow.spec.arguments must be a mapping")
    current = arguments.setdefault("parameters", [])
    if not isinstance(current, list):
        raise WorkflowSpecError("workflow.spec.arguments.parameters must be a list of {name, value}")
    by_name = {p.get("name"): p for p in current if isinstance(p, dict)}
    for name, value in parameters.items():
        if not isinstance(name, str) or not name:
            raise WorkflowSpecError(f"parameter names must be non-empty strings, got {name!r}")
        text = _parameter_value(name, value)
        existing = by_name.get(name)
        if existing is not None:
            existing.pop("valueFrom", None)
            existing["value"] = text
        else:
            entry = {"name": name, "value": text}
            current.append(entry)
            by_name[name] = entry
    return result


# --------------------------------------------------------------------------------------------
# status
# --------------------------------------------------------------------------------------------


def phase_outcome(phase: str | None) -> Literal["wait", "success", "failure"]:
    """THE mapping from a workflow phase to what the caller does next.

    ``Succeeded`` -> ``"success"``; ``Failed``/``Error`` -> ``"failure"``; ``""``/``None``
    (not yet picked up by the controller), ``Pending`` and ``Running`` -> ``"wait"``. Any other
    phase raises :class:`ArgoEciError`, so a new Argo phase is noticed instead of waited on forever.
    """
    if phase == "Succeeded":
        return "success"
    if phase in FAILED_PHASES:
        return "failure"
    if phase is None or phase == "" or phase in WAITING_PHASES:
        return "wait"
    raise ArgoEciError(
        f"unknown workflow phase {phase!r}: expected one of '', Pending, Running, Succeeded, Failed, Error")


#: the most ``status.compressedNodes`` may inflate to (a gzip bomb is refused, not inflated)
MAX_INFLATED_NODES_BYTES = 64 * 1024 * 1024


class OffloadedNodesError(ArgoEciError):
    """The workflow's nodes were offloaded to the Argo Server's database
    (``status.offloadNodeStatusVersion``, Argo's ``nodeStatusOffLoad``): the Kubernetes object
    does not hold them, only the Argo Server (which hydrates them) can serve them."""


def workflow_nodes(status: Mapping[str, Any] | None) -> dict[str, Any]:
    """The node map of a Workflow ``status``: ``status.nodes``, or, when Argo compressed it because
    the workflow grew too large, ``status.compressedNodes`` (base64 of gzipped JSON) inflated.

    Raises :class:`~airflow_argo_eci.errors.ArgoEciError` when ``compressedNodes`` is not valid
    base64/gzip/JSON or inflates beyond :data:`MAX_INFLATED_NODES_BYTES`, and
    :class:`OffloadedNodesError` when Argo offloaded the nodes (``status.offloadNodeStatusVersion``
    with neither field): read such a workflow through the Argo Server, which returns it with its
    nodes, as ``argo get`` does (``ArgoWorkflowsHook.hydrate``).
    """
    if not isinstance(status, Mapping):
        return {}
    nodes = status.get("nodes")
    plain = dict(nodes) if isinstance(nodes, Mapping) else {}
    packed = status.get("compressedNodes")
    offloaded = status.get("offloadNodeStatusVersion")
    if not packed and not plain and offloaded:
        raise OffloadedNodesError(
            f"the workflow's node status is offloaded to the Argo Server's database (status.offloadNodeStatusVersion="
            f"{offloaded}, Argo's nodeStatusOffLoad for workflows over 1 MB): the Kubernetes API does not hold the "
            "nodes. Read the workflow through the Argo Server, which hydrates them: ArgoWorkflowsHook.hydrate() with "
            "the connection's extra \"argo_server_url\" (kubernetes transport) set to the Argo Server's URL, or the "
            '"transport": "argo_server" connection extra, or run `argo get`.')
    if not packed:
        return plain
    try:
        raw = base64.b64decode(str(packed), validate=True)
        inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32)  # gzip or zlib header
        text = inflater.decompress(raw, MAX_INFLATED_NODES_BYTES + 1)
        if len(text) > MAX_INFLATED_NODES_BYTES or inflater.unconsumed_tail:
            raise ArgoEciError(f"status.compressedNodes inflates to more than {MAX_INFLATED_NODES_BYTES} bytes; "
                               "refusing to read it")
        decoded = json.loads(text)
    except (binascii.Error, zlib.error, ValueError) as exc:
        raise ArgoEciError(f"status.compressedNodes is not base64-encoded gzipped JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise ArgoEciError("status.compressedNodes does not hold a JSON object of nodes")
    decoded.update(plain)  # nodes merge-patched into a compressed status (argo stop/resume) win
    return decoded


def _nodes(workflow: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The workflow's nodes for messages and results; unreadable compressed nodes count as none."""
    try:
        nodes = workflow_nodes(workflow.get("status"))
    except ArgoEciError:
        return {}
    return {k: v for k, v in nodes.items() if isinstance(v, dict)}


def _parents(nodes: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    parents: dict[str, str] = {}
    for node_id, node in nodes.items():
        for child in node.get("children") or []:
            parents.setdefault(child, node_id)
    return parents


def _node_sort_key(item: tuple[str, Mapping[str, Any]]) -> tuple[str, str, str, str]:
    node_id, node = item
    return (str(node.get("startedAt") or ""), str(node.get("finishedAt") or ""),
            str(node.get("displayName") or node.get("name") or ""), node_id)


def _trim(text: str, limit: int = _MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reaches_failed(start: str, nodes: Mapping[str, Mapping[str, Any]], failed: Mapping[str, Any]) -> bool:
    """Whether another failed node is reachable from ``start`` through ``children`` links.

    Argo chains steps through ``children`` (a step group's pod points to the next group), so a
    failure anywhere below or after a Steps/DAG node is reachable from it.
    """
    seen = {start}
    stack = list(nodes.get(start, {}).get("children") or [])
    while stack:
        node_id = stack.pop()
        if node_id in seen:
            continue
        if node_id in failed:
            return True
        seen.add(node_id)
        stack.extend(nodes.get(node_id, {}).get("children") or [])
    return False


def failed_nodes(workflow: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The failed leaf nodes of a workflow, oldest first.

    A failed (``Failed``/``Error``) node is reported when it is a ``Pod`` node, or another node
    that carries its own message and from which no other failed node is reachable (e.g. a DAG that
    failed validation): the root cause, not every Steps/DAG node above it.
    Of a ``Retry`` node's attempts only the last one is reported. Each entry has ``id``,
    ``display_name``, ``type``, ``phase``, ``message``, ``template_name`` and ``exit_code``
    (``None`` when unknown).
    """
    nodes = _nodes(workflow)
    failed = {k: v for k, v in nodes.items() if v.get("phase") in FAILED_PHASES}
    superseded: set[str] = set()
    for node in nodes.values():
        if node.get("type") == "Retry":
            attempts = [c for c in node.get("children") or [] if c in nodes]
            superseded.update(attempts[:-1])
    result = []
    for node_id, node in sorted(failed.items(), key=_node_sort_key):
        if node_id in superseded:
            continue
        if node.get("type") != "Pod" and (not node.get("message") or _reaches_failed(node_id, nodes, failed)):
            continue
        outputs = node.get("outputs") or {}
        exit_code = outputs.get("exitCode") if isinstance(outputs, Mapping) else None
        result.append({
            "id": node_id,
            "display_name": str(node.get("displayName") or node.get("name") or node_id),
            "type": str(node.get("type") or ""),
            "phase": str(node.get("phase")),
            "message": _trim(str(node.get("message") or "")),
            "template_name": str(node.get("templateName") or (node.get("templateRef") or {}).get("template") or ""),
            "exit_code": None if exit_code is None else str(exit_code),
        })
    return result


def failure_message(workflow: Mapping[str, Any]) -> str:
    """One line for a failed workflow: ``Workflow X Failed: <message>; failed nodes: a (Error: ...), ...``."""
    metadata = workflow.get("metadata") or {}
    status = workflow.get("status") or {}
    name = metadata.get("name") or metadata.get("generateName") or "<unnamed>"
    phase = status.get("phase") or "Failed"
    text = f"Workflow {name} {phase}"
    if status.get("message"):
        text += f": {_trim(str(status['message']))}"
    nodes = failed_nodes(workflow)
    if nodes:
        described = []
        for node in nodes[:_MAX_LISTED_NODES]:
            detail = node["phase"]
            if node["message"]:
                detail += f": {node['message']}"
            if node["exit_code"] not in (None, "0") and "exit code" not in node["message"]:
                detail += f" (exit code {node['exit_code']})"
            described.append(f"{node['display_name']} ({detail})")
        if len(nodes) > _MAX_LISTED_NODES:
            described.append(f"and {len(nodes) - _MAX_LISTED_NODES} more")
        text += "; failed nodes: " + ", ".join(described)
    return text


def _artifact_location(artifact: Mapping[str, Any]) -> dict[str, Any] | None:
    for kind in ("oss", "s3", "gcs", "azure", "hdfs", "artifactory", "http", "git", "raw"):
        location = artifact.get(kind)
        if not isinstance(location, Mapping):
            continue
        entry: dict[str, Any] = {"type": kind}
        for field_name in ("key", "bucket", "endpoint", "container", "path", "url", "repo", "blob"):
            value = location.get(field_name)
            if isinstance(value, str) and value:
                entry[field_name] = value
        bucket = entry.get("bucket") or entry.get("container")
        if kind in ("oss", "s3", "gcs") and bucket and "key" in entry:
            entry["location"] = f"{kind}://{bucket}/{entry['key']}"
        elif "url" in entry:
            entry["location"] = entry["url"]
        return entry
    return None


def _archive_kind(artifact: Mapping[str, Any]) -> str:
    """How an output artifact was stored: Argo's default is a gzipped tar unless ``archive`` says otherwise."""
    archive = artifact.get("archive")
    if isinstance(archive, Mapping):
        for kind in ("none", "zip", "tar"):
            if kind in archive:
                return kind
    return "tar"


def workflow_result(workflow: Mapping[str, Any]) -> dict[str, Any]:
    """The XCom return value of a finished workflow (JSON-serializable).

    ``name``, ``namespace``, ``uid``, ``phase``, ``message``, ``started_at``, ``finished_at``,
    ``progress``, ``resources_duration`` (``status.resourcesDuration``), ``parameters`` (the
    workflow's global outputs, ``status.outputs.parameters``, as ``{name: value}``),
    ``node_outputs`` (``{displayName: {parameter: value}}`` of every node with output parameters;
    a retried step appears once, under its own name) and ``artifacts`` (``[{node, name, type, key,
    bucket?, endpoint?, location?, archive}]`` (``archive``: ``tar`` | ``none`` | ``zip``) from the
    nodes' ``outputs.artifacts``; repository credentials are never included).
    """
    metadata = workflow.get("metadata") or {}
    status = workflow.get("status") or {}
    nodes = _nodes(workflow)
    parents = _parents(nodes)

    global_params = {}
    for param in ((status.get("outputs") or {}).get("parameters") or []):
        if isinstance(param, Mapping) and param.get("name"):
            global_params[str(param["name"])] = param.get("value")

    node_outputs: dict[str, dict[str, Any]] = {}
    artifacts: list[dict[str, Any]] = []
    for node_id, node in sorted(nodes.items(), key=_node_sort_key):
        parent = nodes.get(parents.get(node_id, ""))
        if parent is not None and parent.get("type") == "Retry":
            continue  # the Retry node carries the outputs of its successful attempt
        outputs = node.get("outputs") or {}
        if not isinstance(outputs, Mapping):
            continue
        display = str(node.get("displayName") or node.get("name") or node_id)
        params = {str(p["name"]): p.get("value") for p in outputs.get("parameters") or []
                  if isinstance(p, Mapping) and p.get("name")}
        if params:
            key = display if display not in node_outputs else f"{display} ({node_id})"
            node_outputs[key] = params
        for artifact in outputs.get("artifacts") or []:
            if not isinstance(artifact, Mapping):
                continue
            location = _artifact_location(artifact)
            if location is None:
                continue
            artifacts.append({"node": display, "name": str(artifact.get("name") or ""), **location,
                              "archive": _archive_kind(artifact)})

    return {
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace"),
        "uid": metadata.get("uid"),
        "phase": status.get("phase"),
        "message": status.get("message"),
        "started_at": status.get("startedAt"),
        "finished_at": status.get("finishedAt"),
        "progress": status.get("progress"),
        "resources_duration": dict(status.get("resourcesDuration") or {}),
        "parameters": global_params,
        "node_outputs": node_outputs,
        "artifacts": artifacts,
    }


def workflow_pods(workflow: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(node display name, pod name)`` of every pod node of ``workflow``, in start order."""
    nodes = workflow_nodes(workflow.get("status")).items()
    pods = [(node.get("startedAt") or "", str(node.get("displayName") or node.get("name") or node_id),
             workflow_pod_name(workflow, node_id, node))
            for node_id, node in nodes if node.get("type") == "Pod"]
    return [(display, pod) for _, display, pod in sorted(pods)]
