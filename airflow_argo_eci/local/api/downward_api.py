"""The downward API of a pod's env (``valueFrom.fieldRef``): the field paths Kubernetes accepts, the
422 causes of the others worded as the API server words them, and a path's value for a pod."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from airflow_argo_eci.local.api.validation import qualified_name

#: the fieldPaths an env var may read (Kubernetes' ``validEnvDownwardAPIFieldPathExpressions``);
#: besides them only ``metadata.labels['<key>']`` and ``metadata.annotations['<key>']``
ENV_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                   "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP",
                   "status.podIPs")
#: the field labels of a v1 Pod the downward API knows at all (env accepts only some of them)
_POD_FIELD_LABELS = frozenset({*ENV_FIELD_PATHS, "metadata.annotations", "metadata.labels", "spec.restartPolicy",
                               "spec.schedulerName", "status.phase", "spec.terminationGracePeriodSeconds"})
#: the address of the local cluster's one node
HOST_IP = "127.0.0.1"

Cause = dict[str, str]


def split_subscript(path: str) -> tuple[str, str] | None:
    """``metadata.labels['key']`` -> (``metadata.labels``, ``key``); None when ``path`` has no subscript."""
    if not path.endswith("']"):
        return None
    head, sep, key = path[:-2].partition("['")
    if not sep or not head:
        return None
    return head, key


def _shown(value: str) -> str:
    return value if len(value) <= 80 else value[:80] + "..."


def _invalid(field: str, value: str, message: str) -> Cause:
    return {"reason": "FieldValueInvalid", "field": field, "message": f'Invalid value: "{_shown(value)}": {message}'}


def field_ref_causes(ref: Any, field: str) -> list[Cause]:
    """What is wrong with the env ``fieldRef`` ``ref`` found at ``field`` (e.g.
    ``spec.containers[0].env[0].valueFrom.fieldRef``); empty when Kubernetes would accept it.

    A path the downward API does not know is ``Invalid`` ("error converting fieldPath"), a pod
    field env cannot read (``status.phase``) is ``Unsupported value`` listing the env paths, a
    label or annotation key that is not a qualified name is ``Invalid`` on ``field`` itself.
    """
    if not isinstance(ref, dict):
        return [_invalid(field, type(ref).__name__, "must be an object")]
    path = ref.get("fieldPath")
    if not isinstance(path, str) or not path:
        return [{"reason": "FieldValueRequired", "field": f"{field}.fieldPath", "message": "Required value"}]
    version = ref.get("apiVersion") or "v1"
    if version != "v1":
        return [_invalid(f"{field}.fieldPath", path, f"error converting fieldPath: unsupported pod version: {version}")]
    subscripted = split_subscript(path)
    if subscripted is not None:
        head, key = subscripted
        if head not in ("metadata.labels", "metadata.annotations"):
            return [_invalid(f"{field}.fieldPath", path,
                             f"error converting fieldPath: field label does not support subscript: {path}")]
        problems = qualified_name(key.lower() if head == "metadata.annotations" else key)
        return [_invalid(field, key, problem) for problem in problems]
    if path == "spec.host":  # the old v1 name of spec.nodeName, still converted
        path = "spec.nodeName"
    if path not in _POD_FIELD_LABELS:
        return [_invalid(f"{field}.fieldPath", path, f"error converting fieldPath: field label not supported: {path}")]
    if path not in ENV_FIELD_PATHS:
        supported = ", ".join(f'"{p}"' for p in sorted(ENV_FIELD_PATHS))
        return [{"reason": "FieldValueNotSupported", "field": f"{field}.fieldPath",
                 "message": f'Unsupported value: "{_shown(path)}": supported values: {supported}'}]
    return []


def _env_field_refs(pod: dict[str, Any]) -> Iterator[tuple[Any, str]]:
    """Each env ``valueFrom.fieldRef`` of a Pod's containers with where it is."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    for group in ("initContainers", "containers", "ephemeralContainers"):
        containers = spec.get(group)
        if not isinstance(containers, list):
            continue
        for index, container in enumerate(containers):
            env = container.get("env") if isinstance(container, dict) else None
            if not isinstance(env, list):
                continue
            for position, var in enumerate(env):
                value_from = var.get("valueFrom") if isinstance(var, dict) else None
                if isinstance(value_from, dict) and value_from.get("fieldRef") is not None:
                    yield value_from["fieldRef"], f"spec.{group}[{index}].env[{position}].valueFrom.fieldRef"


def env_field_ref_causes(pod: dict[str, Any]) -> list[Cause]:
    """The :func:`field_ref_causes` of every env ``valueFrom.fieldRef`` of a Pod's containers."""
    causes: list[Cause] = []
    for ref, field in _env_field_refs(pod):
        causes += field_ref_causes(ref, field)
    return causes


def default_field_refs(pod: dict[str, Any]) -> None:
    """Give every env ``fieldRef`` of a Pod without an ``apiVersion`` the default ``v1`` (in place)."""
    for ref, _ in _env_field_refs(pod):
        if isinstance(ref, dict) and not ref.get("apiVersion"):
            ref["apiVersion"] = "v1"


def field_path_value(path: str, pod: dict[str, Any], pod_ip: str, host_ip: str = HOST_IP) -> str:
    """The value of the (valid, see :func:`field_ref_causes`) env ``fieldPath`` ``path`` for ``pod``
    (a Pod object: its metadata and spec) whose address is ``pod_ip``, as the kubelet sets it: a
    missing label or annotation is "", ``status.podIPs`` / ``status.hostIPs`` join the addresses
    with commas (the local cluster gives a pod one address)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    subscripted = split_subscript(path)
    if subscripted is not None:
        head, key = subscripted
        return str((meta.get(head.partition(".")[2]) or {}).get(key, ""))
    values = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.host": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
    }
    if path not in values:
        raise ValueError(f"fieldPath {path!r} is not one an env var may read")
    return str(values[path] or "")
