"""CustomResourceDefinitions of the custom kinds, and which of those kinds are served right now.

The local cluster holds one ``apiextensions.k8s.io/v1`` CustomResourceDefinition per custom kind
of :data:`~airflow_argo_eci.local.api.resources.REGISTRY` (Argo's, Fluid's, ECI's ImageCache once
registered): created when missing, derived from the registry, never written by hand. A kind is
served while its CRD exists with its version ``served: true``: deleting the CRD takes the kind out
of discovery and its routes answer 404, creating it again brings both back. Unlike a real API
server, the objects of a kind whose CRD was deleted are kept in the store (and the embedded
controllers keep reconciling them); only the API stops serving them.

A CRD can only be created for a kind the local cluster implements (the API server cannot serve an
arbitrary schema here): anything else is 422 naming ``spec.group`` / ``spec.names.plural``.
"""

from __future__ import annotations

import threading
from typing import Any

from airflow_argo_eci.conventions import now_rfc3339
from airflow_argo_eci.local.api import errors, resources
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import CUSTOM_RESOURCE_DEFINITIONS, ResourceType
from airflow_argo_eci.local.api.store import Store

#: an annotation on the CRDs the local cluster made itself
ANNOTATION_LOCAL = "local.airflow-argo-eci.io/served-by"
_LOCAL_NOTE = "the local cluster's API server (airflow_argo_eci.local); created at start when missing"


def crd_name(rt: ResourceType) -> str:
    """``<plural>.<group>``, the name of the CRD of ``rt``."""
    return f"{rt.plural}.{rt.group}"


def _names(rt: ResourceType) -> dict[str, Any]:
    names: dict[str, Any] = {"plural": rt.plural, "singular": rt.singular or rt.kind.lower(), "kind": rt.kind,
                             "listKind": f"{rt.kind}List"}
    if rt.short_names:
        names["shortNames"] = list(rt.short_names)
    return names


def established_status(rt: ResourceType, names: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``status`` of a CRD the API server accepted: NamesAccepted and Established ``True``."""
    at = now_rfc3339()
    return {
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": at, "reason": "NoConflicts",
             "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": at, "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted"},
        ],
        "acceptedNames": dict(names if names is not None else _names(rt)),
        "storedVersions": [rt.version],
    }


def crd_object(rt: ResourceType) -> dict[str, Any]:
    """The CustomResourceDefinition of the custom kind ``rt``, as an installation manifest holds it
    (with the status the API server gives it)."""
    version: dict[str, Any] = {
        "name": rt.version, "served": True, "storage": True,
        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    }
    if rt.has_status:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": CUSTOM_RESOURCE_DEFINITIONS.api_version, "kind": CUSTOM_RESOURCE_DEFINITIONS.kind,
        "metadata": {"name": crd_name(rt), "annotations": {ANNOTATION_LOCAL: _LOCAL_NOTE}},
        "spec": {"group": rt.group, "names": _names(rt), "scope": "Namespaced" if rt.namespaced else "Cluster",
                 "versions": [version]},
        "status": established_status(rt),
    }


def custom_kinds() -> list[ResourceType]:
    """Every registered custom kind, in registration order."""
    return [rt for rt in resources.REGISTRY.values() if resources.is_custom(rt)]


def _invalid(name: str, field: str, value: Any, message: str) -> ApiError:
    shown = str(value)[:120]
    return errors.invalid("customresourcedefinitions", CUSTOM_RESOURCE_DEFINITIONS.group, name,
                          [{"reason": "FieldValueInvalid", "field": field,
                            "message": f'Invalid value: "{shown}": {message}'}])


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def admit_crd(body: Any) -> Any:
    """Check a CRD body sent to the API (create/replace) and give it the status the API server
    would: 422 unless it defines a kind the local cluster implements, under its own name, with that
    kind's version. Bodies that are not objects are returned unchanged (the store refuses them)."""
    if not isinstance(body, dict):
        return body
    meta = _mapping(body.get("metadata"))
    name = str(meta.get("name") or "")
    spec = _mapping(body.get("spec"))
    names = _mapping(spec.get("names"))
    group, plural = spec.get("group"), names.get("plural")
    rt = resources.lookup(str(group or ""), str(plural or ""))
    if not group or not isinstance(group, str) or rt is None or not resources.is_custom(rt):
        served = ", ".join(crd_name(k) for k in custom_kinds())
        field = "spec.group" if not any(k.group == group for k in custom_kinds()) else "spec.names.plural"
        raise _invalid(name, field, f"{plural}.{group}",
                       f"the local cluster cannot serve spec.group/spec.names.plural {plural}.{group}: it "
                       f"implements only {served}")
    if name != crd_name(rt):
        raise _invalid(name, "metadata.name", name, f'must be spec.names.plural+"."+spec.group ({crd_name(rt)})')
    if names.get("kind") not in (None, rt.kind):
        raise _invalid(name, "spec.names.kind", names.get("kind"), f"the local cluster serves {crd_name(rt)} as "
                       f"kind {rt.kind}")
    scope = "Namespaced" if rt.namespaced else "Cluster"
    if spec.get("scope") not in (None, scope):
        raise _invalid(name, "spec.scope", spec.get("scope"), f"{crd_name(rt)} is {scope} on the local cluster")
    versions = spec.get("versions")
    if not isinstance(versions, list) or not any(isinstance(v, dict) and v.get("name") == rt.version
                                                  for v in versions):
        raise _invalid(name, "spec.versions", [v.get("name") for v in versions or [] if isinstance(v, dict)],
                       f"the local cluster serves {crd_name(rt)} at version {rt.version}: list it")
    out = dict(body)
    out["status"] = established_status(rt, {**_names(rt), **{k: v for k, v in names.items() if v}})
    return out


def _served_keys(crd: dict[str, Any]) -> set[tuple[str, str]]:
    """The (group, plural) a stored CRD serves: its kind, when the kind's version is served."""
    spec = crd.get("spec") or {}
    plural = (spec.get("names") or {}).get("plural")
    rt = resources.lookup(str(spec.get("group") or ""), str(plural or ""))
    if rt is None or (crd.get("metadata") or {}).get("deletionTimestamp"):
        return set()
    for version in spec.get("versions") or []:
        if isinstance(version, dict) and version.get("name") == rt.version and version.get("served", True):
            return {rt.key}
    return set()


class ServedKinds:
    """Which custom kinds the API serves: an in-memory set kept from the store's CRD changes, so the
    check per request costs a set lookup (no database read).

    With ``manage_crds`` (the local cluster's API), construction creates the missing CRD of every
    registered custom kind, a kind registered later gets its CRD on the first check after its
    registration, and a custom kind is served only while a CRD serves it. Without it (a bare API
    over a store, as some tests build one), every registered kind is served and CRDs are plain
    stored objects.
    """

    def __init__(self, store: Store, *, manage_crds: bool = True) -> None:
        self.store = store
        self.manage_crds = manage_crds
        self._lock = threading.RLock()
        self._by_crd: dict[str, set[tuple[str, str]]] = {}
        self._ensured: set[tuple[str, str]] = set()
        self._registry_size = -1
        self._served: frozenset[tuple[str, str]] = frozenset()
        if not manage_crds:
            return
        store.add_listener(self._on_change, kinds=[CUSTOM_RESOURCE_DEFINITIONS])
        items, _, _ = store.list(CUSTOM_RESOURCE_DEFINITIONS, None)
        with self._lock:
            for crd in items:
                self._by_crd.setdefault(crd["metadata"]["name"], _served_keys(crd))
            self._refresh()
        self._sync_registry()

    def _refresh(self) -> None:
        self._served = frozenset(key for keys in self._by_crd.values() for key in keys)

    def _on_change(self, event: str, rt: ResourceType, obj: dict[str, Any]) -> None:
        if rt.key != CUSTOM_RESOURCE_DEFINITIONS.key:
            return
        name = (obj.get("metadata") or {}).get("name", "")
        with self._lock:
            if event == "DELETED":
                self._by_crd.pop(name, None)
            else:
                self._by_crd[name] = _served_keys(obj)
            self._refresh()

    def _sync_registry(self) -> None:
        """Create the CRD of each custom kind registered since the last look (missing ones only)."""
        with self._lock:
            if len(resources.REGISTRY) == self._registry_size:
                return
            self._registry_size = len(resources.REGISTRY)
            for rt in custom_kinds():
                if rt.key in self._ensured:
                    continue
                self._ensured.add(rt.key)
                if self.store.find(CUSTOM_RESOURCE_DEFINITIONS, None, crd_name(rt)) is None:
                    try:
                        self.store.create(CUSTOM_RESOURCE_DEFINITIONS, None, crd_object(rt))
                    except ApiError as exc:
                        if exc.code != 409:  # created concurrently: fine
                            raise

    def is_served(self, rt: ResourceType) -> bool:
        """Whether the API serves ``rt`` now (built-in kinds always)."""
        if not self.manage_crds or not resources.is_custom(rt):
            return True
        if len(resources.REGISTRY) != self._registry_size:
            self._sync_registry()
        return rt.key in self._served
