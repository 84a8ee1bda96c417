"""The OpenAPI documents of the served kinds: ``/openapi/v3`` (the group-version index and one
document per group version) and ``/openapi/v2`` (JSON).

``kubectl create``/``apply`` validate a manifest by asking OpenAPI v3 whether the server checks
fields itself (a ``fieldValidation`` query parameter on the kind's PATCH operation, found through
the ``x-kubernetes-group-version-kind`` extension); it does here, so kubectl leaves validation to
the server. The schemas are permissive objects (``x-kubernetes-preserve-unknown-fields``) that name
their kind; the server keeps its own checks (metadata, pod specs) and answers 422 with the field.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from airflow_argo_eci.conventions import GROUP
from airflow_argo_eci.local.api import resources
from airflow_argo_eci.local.api.resources import ResourceType

#: the version the documents' ``info`` names
INFO_VERSION = "v1.30.0"

_QUERY_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation", "pretty")


def schema_name(rt: ResourceType) -> str:
    """The definition name of a kind, as the API server names them (``io.k8s.api.core.v1.Pod``,
    ``io.argoproj.workflow.v1alpha1.Workflow`` for Argo's group)."""
    if not rt.group:
        return f"io.k8s.api.core.{rt.version}.{rt.kind}"
    if rt.group == GROUP:
        return f"io.argoproj.workflow.{rt.version}.{rt.kind}"
    return ".".join([*reversed(rt.group.split(".")), rt.version, rt.kind])


def _gvk(rt: ResourceType) -> dict[str, str]:
    return {"group": rt.group, "kind": rt.kind, "version": rt.version}


def _prefix(rt: ResourceType) -> str:
    return f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"


def group_version_key(rt: ResourceType) -> str:
    """The index key of a kind's group version: ``api/v1`` or ``apis/<group>/<version>``."""
    return _prefix(rt).lstrip("/")


def _object_schema(rt: ResourceType) -> dict[str, Any]:
    return {
        "description": f"{rt.kind} ({rt.api_version}); fields are checked by the local cluster itself.",
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this "
                                                            "representation of an object."},
            "kind": {"type": "string", "description": "Kind is a string value representing the REST resource "
                                                     "this object represents."},
            "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                         "description": "Standard object's metadata."},
        },
        "x-kubernetes-preserve-unknown-fields": True,
        "x-kubernetes-group-version-kind": [_gvk(rt)],
    }


def _list_schema(rt: ResourceType, ref: str) -> dict[str, Any]:
    return {
        "description": f"{rt.kind}List is a list of {rt.kind}.",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "items": {"type": "array", "items": {"$ref": ref}},
        },
        "x-kubernetes-group-version-kind": [{**_gvk(rt), "kind": f"{rt.kind}List"}],
    }


def _operation(rt: ResourceType, action: str, verb: str, ref: str, *, v3: bool) -> dict[str, Any]:
    """One operation; writes list their query parameters (``fieldValidation`` among them: kubectl
    looks for it on the kind's PATCH operation)."""
    body = {"$ref": ref}
    op: dict[str, Any] = {
        "description": f"{action} {rt.kind}",
        "operationId": f"{verb}{rt.kind}",
        "tags": [group_version_key(rt).replace("/", "_")],
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(rt),
    }
    if v3:
        op["responses"] = {"200": {"description": "OK", "content": {"application/json": {"schema": body}}}}
        if verb in ("create", "replace", "patch"):
            # strategic merge patches are accepted but not advertised: kubectl then computes them from
            # its built-in types (the schemas here have no fields to compute them from)
            media = (["application/json-patch+json", "application/merge-patch+json"] if verb == "patch"
                     else ["application/json"])
            schema: dict[str, Any] = {"type": "object"} if verb == "patch" else body
            op["requestBody"] = {"required": True, "content": {m: {"schema": schema} for m in media}}
            op["parameters"] = [_parameter(q, "query", v3=True) for q in _QUERY_PARAMETERS]
    else:
        op["responses"] = {"200": {"description": "OK", "schema": body}}
        if verb in ("create", "replace", "patch"):
            schema = {"type": "object"} if verb == "patch" else body
            op["parameters"] = [{"name": "body", "in": "body", "required": True, "schema": schema},
                                *(_parameter(q, "query", v3=False) for q in _QUERY_PARAMETERS)]
    return op


def _parameter(name: str, where: str, *, v3: bool) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": where, "description": name}
    if where == "path":
        param["required"] = True
    if v3:
        param["schema"] = {"type": "string", "uniqueItems": True}
    else:
        param["type"] = "string"
        param["uniqueItems"] = True
    return param


def _paths(rt: ResourceType, ref: str, list_ref: str, *, v3: bool) -> dict[str, Any]:
    base = _prefix(rt) + ("/namespaces/{namespace}" if rt.namespaced else "")
    scope = [_parameter("namespace", "path", v3=v3)] if rt.namespaced else []
    queries = [_parameter("pretty", "query", v3=v3)]
    collection = {
        "parameters": [*scope, *queries],
        "get": _operation(rt, "list", "list", list_ref, v3=v3),
        "post": _operation(rt, "post", "create", ref, v3=v3),
        "delete": _operation(rt, "deletecollection", "deletecollection", ref, v3=v3),
    }
    item = {
        "parameters": [_parameter("name", "path", v3=v3), *scope, *queries],
        "get": _operation(rt, "get", "read", ref, v3=v3),
        "put": _operation(rt, "put", "replace", ref, v3=v3),
        "patch": _operation(rt, "patch", "patch", ref, v3=v3),
        "delete": _operation(rt, "delete", "delete", ref, v3=v3),
    }
    return {f"{base}/{rt.plural}": collection, f"{base}/{rt.plural}/{{name}}": item}


def _kinds(key: str | None) -> list[ResourceType]:
    return [rt for rt in resources.REGISTRY.values() if key is None or group_version_key(rt) == key]


def v3_document(key: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one group version (``api/v1``, ``apis/argoproj.io/v1alpha1``);
    None when no served kind is in it."""
    kinds = _kinds(key)
    if not kinds:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rt in kinds:
        name = schema_name(rt)
        ref, list_ref = f"#/components/schemas/{name}", f"#/components/schemas/{name}List"
        schemas[name] = _object_schema(rt)
        schemas[f"{name}List"] = _list_schema(rt, ref)
        paths.update(_paths(rt, ref, list_ref, v3=True))
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": INFO_VERSION},
            "paths": paths, "components": {"schemas": schemas}}


def v3_index() -> dict[str, Any]:
    """``/openapi/v3``: each served group version and the URL of its document (with a content hash,
    so clients may cache it)."""
    out: dict[str, Any] = {}
    for key in sorted({group_version_key(rt) for rt in resources.REGISTRY.values()}):
        doc = v3_document(key)
        digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:64].upper()
        out[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": out}


def _v2_definition(rt: ResourceType) -> dict[str, Any]:
    """A v2 definition: any object, naming no kind (see :func:`v2_document`)."""
    return {"description": f"{rt.kind} ({rt.api_version}); fields are checked by the local cluster itself.",
            "x-kubernetes-preserve-unknown-fields": True}


def v2_document() -> dict[str, Any]:
    """``/openapi/v2``: one Swagger 2.0 document of all served kinds.

    Its definitions name no kind (no ``x-kubernetes-group-version-kind``): kubectl falls back to v2
    only where v3 says the server does not check fields (``kind: List`` files), and then finds no
    schema to check against, so the server's checks decide; ``kubectl apply`` computes strategic
    merge patches from its built-in types instead of these permissive schemas.
    """
    paths: dict[str, Any] = {}
    definitions: dict[str, Any] = {}
    for rt in _kinds(None):
        name = schema_name(rt)
        ref, list_ref = f"#/definitions/{name}", f"#/definitions/{name}List"
        definitions[name] = _v2_definition(rt)
        definitions[f"{name}List"] = {"description": f"{rt.kind}List is a list of {rt.kind}.",
                                      "x-kubernetes-preserve-unknown-fields": True}
        paths.update(_paths(rt, ref, list_ref, v3=False))
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": INFO_VERSION},
            "paths": paths, "definitions": definitions}


# ------------------------------------------------------------------ protobuf form of v2

#: the media type kubectl asks ``/openapi/v2`` for (gnostic's ``openapi.v2.Document`` message)
V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
#: the content type of that answer (the media type with ``.`` for ``@``, which MIME parsers refuse)
V2_PROTOBUF_CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes | str) -> bytes:
    """One length-delimited protobuf field (strings and embedded messages)."""
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _schema_message(schema: dict[str, Any]) -> bytes:
    """gnostic ``Schema``: description (4) and vendor extensions (31, ``NamedAny`` of YAML text)."""
    out = _field(4, str(schema.get("description", "")))
    for key, value in schema.items():
        if key.startswith("x-"):
            any_value = _field(2, json.dumps(value) + "\n")  # JSON is YAML
            out += _field(31, _field(1, key) + _field(2, any_value))
    return out


def v2_protobuf() -> bytes:
    """:func:`v2_document` as the protobuf message kubectl reads: swagger (1), info (2) and the
    definitions (9); the paths are in the JSON form."""
    doc = v2_document()
    info = _field(1, doc["info"]["title"]) + _field(2, doc["info"]["version"])
    definitions = b"".join(_field(1, _field(1, name) + _field(2, _schema_message(schema)))
                           for name, schema in doc["definitions"].items())
    return _field(1, doc["swagger"]) + _field(2, info) + _field(9, definitions)
