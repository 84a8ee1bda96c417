"""The rules a write to the object store follows: body validation, name and namespace checks,
preconditions, what a write through the ``status`` subresource may change, and when
``metadata.generation`` moves (errors are Kubernetes ``Status`` errors, :class:`~.errors.ApiError`)."""

from __future__ import annotations

import copy
import json
from typing import Any

from airflow_argo_eci.local.api import errors
from airflow_argo_eci.local.api.downward_api import default_field_refs, env_field_ref_causes
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import IMAGE_CACHES, PODS, ResourceType
from airflow_argo_eci.local.api.validation import metadata_causes, name_causes, pod_causes
from airflow_argo_eci.local.eci.specs import image_cache_causes


def resource_name(rt: ResourceType) -> str:
    """How the API server names a resource in messages: ``plural`` or ``plural.group``."""
    return rt.plural


def generation_view(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """The part of an object whose change bumps ``metadata.generation``."""
    skip = {"metadata", "resourceVersion"} | ({"status"} if rt.has_status else set())
    return {k: v for k, v in obj.items() if k not in skip}


def validate_common(rt: ResourceType, obj: Any, name_hint: str) -> dict[str, Any]:
    """A deep copy of the body ``obj`` of a ``rt`` with ``apiVersion``/``kind`` filled in; 400 for a
    body that is not an object, 422 Invalid for a wrong kind/apiVersion, bad metadata or pod spec."""
    if not isinstance(obj, dict):
        raise errors.bad_request(
            f"the body of a {rt.kind} must be a JSON object, got {type(obj).__name__}"
        )
    causes: list[dict[str, str]] = []
    kind = obj.get("kind")
    if kind not in (None, "", rt.kind):
        causes.append({"reason": "FieldValueInvalid", "field": "kind",
                       "message": f'Invalid value: "{kind}": must be {rt.kind}'})
    api_version = obj.get("apiVersion")
    if api_version not in (None, "", rt.api_version):
        causes.append({"reason": "FieldValueInvalid", "field": "apiVersion",
                       "message": f'Invalid value: "{api_version}": must be {rt.api_version}'})
    meta = obj.get("metadata")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        causes.append({"reason": "FieldValueInvalid", "field": "metadata",
                       "message": "Invalid value: must be an object"})
    else:
        for field in ("labels", "annotations"):
            value = meta.get(field)
            if value is None:
                continue
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                causes.append({"reason": "FieldValueInvalid", "field": f"metadata.{field}",
                               "message": "Invalid value: must be a map of string to string"})
        if not causes:
            causes += metadata_causes(meta)
    if rt.key == PODS.key:
        causes += pod_causes(obj) + env_field_ref_causes(obj)
    elif rt.key == IMAGE_CACHES.key:
        causes += image_cache_causes(obj)
    if causes:
        raise errors.invalid(resource_name(rt), rt.group, name_hint, causes)
    out = copy.deepcopy(obj)
    out["apiVersion"] = rt.api_version
    out["kind"] = rt.kind
    out["metadata"] = copy.deepcopy(meta)
    if rt.key == PODS.key:
        default_field_refs(out)
    return out


def check_name(rt: ResourceType, meta: dict[str, Any]) -> None:
    """422 Invalid when ``metadata.name`` / ``generateName`` is not a valid name for ``rt``."""
    causes = name_causes(rt.kind, meta)
    if causes:
        hint = str(meta.get("name") or meta.get("generateName") or "")
        raise errors.invalid(resource_name(rt), rt.group, hint, causes)


def check_namespace_matches(rt: ResourceType, ns: str, meta: dict[str, Any]) -> None:
    """400 when the body names another namespace than the request path ``ns``."""
    body_ns = meta.get("namespace")
    if rt.namespaced and body_ns not in (None, "", ns):
        raise errors.bad_request(
            f'the namespace of the provided object ("{body_ns}") does not match the namespace sent '
            f'on the request ("{ns}")'
        )


def check_subresource(rt: ResourceType, subresource: str) -> None:
    """400 for a subresource other than ``status``; 404 for ``status`` of a type without one."""
    if subresource not in ("", "status"):
        raise errors.bad_request(f'unknown subresource "{subresource}" of {rt.plural}')
    if subresource == "status" and not rt.has_status:
        raise errors.not_found(resource_name(rt) + "/status", rt.group, subresource)


def check_preconditions(rt: ResourceType, name: str, old: dict[str, Any], meta: dict[str, Any]) -> None:
    """409 Conflict when the ``resourceVersion`` or ``uid`` in ``meta`` differs from the stored ``old``."""
    rv = meta.get("resourceVersion")
    if rv not in (None, "") and str(rv) != old["metadata"].get("resourceVersion"):
        raise errors.conflict(resource_name(rt), rt.group, name)
    uid = meta.get("uid")
    if uid not in (None, "") and uid != old["metadata"].get("uid"):
        raise ApiError(
            409, "Conflict",
            f'Operation cannot be fulfilled on {resource_name(rt)} "{name}": Precondition failed: '
            f"UID in precondition: {uid}, UID in object meta: {old['metadata'].get('uid')}",
            name=name, group=rt.group, kind=resource_name(rt),
        )


def merge_for(rt: ResourceType, old: dict[str, Any], body: dict[str, Any], subresource: str) -> dict[str, Any]:
    """What a write through the main resource or the status subresource may change."""
    if subresource == "status":
        new = copy.deepcopy(old)
        if "status" in body:
            new["status"] = body["status"]
        else:
            new.pop("status", None)
        return new
    new = copy.deepcopy(body)
    if rt.has_status:
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)
    return new


def keep_deletion_marks(rt: ResourceType, name: str, old_meta: dict[str, Any], meta: dict[str, Any]) -> None:
    """Writes cannot set, change or clear ``deletionTimestamp``/``deletionGracePeriodSeconds`` (only
    DELETE does), nor add a finalizer to an object being deleted (422 Invalid)."""
    for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
        if key in old_meta:
            meta[key] = old_meta[key]
        else:
            meta.pop(key, None)
    if not old_meta.get("deletionTimestamp"):
        return
    before = old_meta.get("finalizers") or []
    added = [f for f in meta.get("finalizers") or [] if f not in before]
    if added:
        raise errors.invalid(
            resource_name(rt), rt.group, name,
            [{"reason": "FieldValueForbidden", "field": "metadata.finalizers",
              "message": f"Forbidden: no new finalizers can be added if the object is being deleted, found new "
                         f"finalizers {json.dumps(added)}"}],
        )
