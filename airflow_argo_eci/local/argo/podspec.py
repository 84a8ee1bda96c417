"""Pod-spec building blocks of the local controller: the template/workflow fields copied into a Pod
spec, ``podSpecPatch`` as a strategic merge, and the ``fieldRef`` values a pod's env may read."""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml

from airflow_argo_eci.local.api import errors
from airflow_argo_eci.local.api.downward_api import field_path_value, field_ref_causes
from airflow_argo_eci.local.argo.templates import SpecError

#: pod-spec fields of a template / the workflow copied into the Pod spec
POD_SPEC_FIELDS = ("nodeSelector", "tolerations", "affinity", "schedulerName", "priorityClassName",
                   "hostAliases", "securityContext", "dnsConfig", "dnsPolicy", "serviceAccountName",
                   "automountServiceAccountToken", "volumes", "imagePullSecrets", "hostNetwork",
                   "runtimeClassName", "terminationGracePeriodSeconds")


def field_ref_value(ref: dict[str, Any], pod: str, namespace: str, pod_ip: str = "127.0.0.1", *,
                    pod_object: dict[str, Any] | None = None, field: str = "valueFrom.fieldRef") -> str:
    """The value of an env ``valueFrom.fieldRef`` ``ref`` (at ``field``) of pod ``pod`` in
    ``namespace`` whose address is ``pod_ip``: every path Kubernetes lets env read
    (:data:`~airflow_argo_eci.local.api.downward_api.ENV_FIELD_PATHS`, labels and annotations by
    key). ``pod_object`` (the Pod as created: uid, labels, annotations, nodeName,
    serviceAccountName) supplies the rest; without it the uid is "", labels and annotations are
    empty, the node is ``local`` and the service account ``default``. A path Kubernetes refuses is
    a :class:`SpecError` with the API server's message (``pods "<pod>" is invalid: ...``)."""
    causes = field_ref_causes(ref, field)
    if causes:
        raise SpecError(errors.invalid("pods", "", pod, causes).message)
    source = pod_object or {}
    spec = {"nodeName": "local", "serviceAccountName": "default", **(source.get("spec") or {})}
    obj = {"metadata": {**(source.get("metadata") or {}), "name": pod, "namespace": namespace}, "spec": spec}
    return field_path_value(str(ref["fieldPath"]), obj, pod_ip)


def resolve_field_refs(env: list[dict[str, Any]], pod_object: dict[str, Any], pod_ip: str = "127.0.0.1",
                       field: str = "env") -> list[dict[str, Any]]:
    """A container's ``env`` with each ``valueFrom.fieldRef`` replaced by its value for the created
    ``pod_object`` (see :func:`field_ref_value`; ``field`` names the list in messages); other
    entries are kept as they are."""
    meta = pod_object.get("metadata") or {}
    out: list[dict[str, Any]] = []
    for index, var in enumerate(env):
        value_from = var.get("valueFrom") if isinstance(var, dict) else None
        if isinstance(value_from, dict) and value_from.get("fieldRef") is not None:
            value = field_ref_value(value_from["fieldRef"], str(meta.get("name", "")), str(meta.get("namespace", "")),
                                    pod_ip, pod_object=pod_object, field=f"{field}[{index}].valueFrom.fieldRef")
            out.append({"name": var.get("name"), "value": value})
        else:
            out.append(copy.deepcopy(var))
    return out


def apply_pod_spec_patch(spec: dict[str, Any], text: str, where: str) -> dict[str, Any]:
    """Apply a ``podSpecPatch`` (JSON or YAML) as a strategic merge: containers merge by name."""
    try:
        patch = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        try:
            if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader)):
                # aliases expand exponentially when merged ("billion laughs"); Kubernetes takes JSON
                raise SpecError(f"{where}: YAML aliases (*name) are not allowed in a podSpecPatch; "
                                "write the values out")
            patch = yaml.safe_load(text)
        except (yaml.YAMLError, RecursionError) as exc:
            raise SpecError(f"{where}: invalid podSpecPatch: {str(exc)[:300]}") from exc
    if not isinstance(patch, dict):
        raise SpecError(f"{where}: podSpecPatch must be an object")
    return _strategic_merge(spec, patch)


def _strategic_merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in ("containers", "initContainers", "volumes", "env", "volumeMounts") and \
                    isinstance(value, list) and isinstance(out.get(key), list):
                merged = [copy.deepcopy(x) for x in out[key]]
                for item in value:
                    if isinstance(item, dict) and item.get("name") is not None:
                        for i, existing in enumerate(merged):
                            if isinstance(existing, dict) and existing.get("name") == item["name"]:
                                merged[i] = _strategic_merge(existing, item)
                                break
                        else:
                            merged.append(copy.deepcopy(item))
                    else:
                        merged.append(copy.deepcopy(item))
                out[key] = merged
            else:
                out[key] = _strategic_merge(out.get(key), value) if key in out else copy.deepcopy(value)
        return out
    return copy.deepcopy(patch)
