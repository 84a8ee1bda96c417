"""Pod-spec building blocks of the local controller: the template/workflow fields copied into a Pod
spec, ``podSpecPatch`` as a strategic merge, and the ``fieldRef`` values a pod's env may read."""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml

from airflow_argo_eci.local.argo.templates import SpecError

#: pod-spec fields of a template / the workflow copied into the Pod spec
POD_SPEC_FIELDS = ("nodeSelector", "tolerations", "affinity", "schedulerName", "priorityClassName",
                   "hostAliases", "securityContext", "dnsConfig", "dnsPolicy", "serviceAccountName",
                   "automountServiceAccountToken", "volumes", "imagePullSecrets", "hostNetwork",
                   "runtimeClassName", "terminationGracePeriodSeconds")


def field_ref_value(ref: dict[str, Any], pod: str, namespace: str) -> str:
    """The value of an env ``valueFrom.fieldRef`` of pod ``pod`` (the fields the local cluster knows)."""
    path = ref.get("fieldPath", "")
    values = {"metadata.name": pod, "metadata.namespace": namespace, "spec.nodeName": "local",
              "spec.serviceAccountName": "default", "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1"}
    if path not in values:
        raise SpecError(f"fieldRef {path} is not supported by the local cluster")
    return values[path]


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
