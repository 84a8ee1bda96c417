"""The object store with Kubernetes semantics: create, get, list (selectors, pages), replace, patch,
update and delete of the objects of every ``ResourceType``, on the SQLite database and event log of
:class:`~airflow_argo_eci.local.api.object_db.ObjectDatabase`.

Objects are plain JSON dicts. The store fills ``apiVersion``/``kind`` from the ``ResourceType``,
and on create ``metadata.uid`` (uuid4), ``metadata.resourceVersion``, ``metadata.creationTimestamp``
(RFC3339, ``Z``), ``metadata.name`` from ``generateName`` + 5 random ``[a-z0-9]`` chars,
``metadata.namespace`` for namespaced types, ``metadata.generation`` = 1.

Defaults applied on create: a ``Namespace`` gets ``status.phase: Active`` and the label
``kubernetes.io/metadata.name``; a ``Pod`` without ``status.phase`` gets ``Pending``; a
``PersistentVolumeClaim`` is ``Bound`` at once (a ``PersistentVolume`` ``Available``).
``metadata.generation`` is bumped whenever anything outside ``metadata`` (and outside ``status``
for types with a status subresource) changes.

Deletion (:class:`~airflow_argo_eci.local.api.object_deletion.ObjectDeletion`, see
:meth:`Store.delete`) honours ``metadata.finalizers`` (the object gets ``deletionTimestamp`` and
stays until a write removes its last finalizer), deletes running pods gracefully, and cascades to
the objects whose ``metadata.ownerReferences`` name the deleted one (the garbage collector).

Errors are :class:`~airflow_argo_eci.local.api.errors.ApiError` (Kubernetes ``Status``). In their
messages and ``details.kind`` the resource is named like the real API server does it, by its
plural and group (``workflows.argoproj.io "x" not found``).
"""

from __future__ import annotations

import base64
import binascii
import builtins
import copy
import json
import secrets
import string
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow_argo_eci.conventions import now_rfc3339
from airflow_argo_eci.local.api import errors
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.object_db import Listener, PeerLink, Pending
from airflow_argo_eci.local.api.object_deletion import ObjectDeletion
from airflow_argo_eci.local.api.object_rules import (
    check_name,
    check_namespace_matches,
    check_preconditions,
    check_subresource,
    generation_view,
    keep_deletion_marks,
    merge_for,
    resource_name,
    validate_common,
)
from airflow_argo_eci.local.api.patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from airflow_argo_eci.local.api.pod_deletion import stopped_while_waiting, waiting
from airflow_argo_eci.local.api.resources import NAMESPACES, ResourceType
from airflow_argo_eci.local.api.selectors import matches, parse_field_selector, parse_label_selector

__all__ = [
    "APPLY_PATCH",
    "INITIAL_NAMESPACES",
    "JSON_PATCH",
    "MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH",
    "Listener",
    "PeerLink",
    "Store",
]

#: namespaces that exist from the first open on
INITIAL_NAMESPACES = ("default", "argo")

_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits


def _encode_continue(namespace: str, name: str, rv: int) -> str:
    raw = json.dumps({"ns": namespace, "name": name, "rv": rv}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[str, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        namespace, name = data["ns"], data["name"]
        if not isinstance(namespace, str) or not isinstance(name, str):
            raise ValueError("bad token fields")
        return namespace, name
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise errors.bad_request(f'invalid continue token "{token}": {exc}') from exc


class Store(ObjectDeletion):
    """Kubernetes-like object store on one SQLite database (see the module docstring)."""

    def __init__(self, db_path: str | Path, *, event_window: int = 10_000, peer: PeerLink | None = None) -> None:
        """Open (or create) the database and the :data:`INITIAL_NAMESPACES`. ``event_window`` change
        events are kept for WATCH; a watch from an older resourceVersion gets 410 Gone. ``peer``:
        another process writes the same database (:class:`~.object_db.PeerLink`)."""
        super().__init__(db_path, event_window=event_window, peer=peer)
        with self._lock:
            for ns in INITIAL_NAMESPACES:
                if self._row(NAMESPACES, "", ns) is None:
                    self.create(NAMESPACES, None, {"metadata": {"name": ns}})

    def _write_update(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        old: dict[str, Any],
        new: dict[str, Any],
        pending: Pending,
        prev_body: str | None = None,
    ) -> dict[str, Any]:
        """Store ``new`` as the successor of ``old`` (``prev_body``: ``old`` as stored, when the
        caller read it): identity fields are kept, generation bumped on spec changes; nothing is
        written when nothing changed."""
        old_meta = old["metadata"]
        meta = new.setdefault("metadata", {})
        for key in ("uid", "creationTimestamp", "name"):
            if key in old_meta:
                meta[key] = old_meta[key]
        if rt.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        new["apiVersion"] = rt.api_version
        new["kind"] = rt.kind
        keep_deletion_marks(rt, name, old_meta, meta)
        gen = int(old_meta.get("generation", 1))
        if generation_view(rt, new) != generation_view(rt, old):
            gen += 1
        meta["generation"] = gen
        meta["resourceVersion"] = old_meta.get("resourceVersion", "")
        if new == old:
            return old
        if stopped_while_waiting(rt, old, new):
            # the process of a pod in its grace period ended: the kubelet reports it, then removes it
            if meta.get("finalizers"):
                meta["deletionGracePeriodSeconds"] = 0
                return self._commit(rt, ns, name, "MODIFIED", new, old, pending, prev_body)
            final = copy.deepcopy(self._commit(rt, ns, name, "MODIFIED", new, old, pending, prev_body))
            final["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._remove(rt, ns, name, final, pending)
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not waiting(meta):
            # the last finalizer was removed from an object being deleted: the delete completes
            return self._remove(rt, ns, name, new, pending)
        return self._commit(rt, ns, name, "MODIFIED", new, old, pending, prev_body)

    # ------------------------------------------------------------------ CRUD

    def create(self, rt: ResourceType, namespace: str | None, obj: dict[str, Any]) -> dict[str, Any]:
        """Create; 409 AlreadyExists on a name clash, 422 Invalid without name/generateName,
        404 when the namespace does not exist (namespaced types; ``argo`` and ``default`` exist)."""
        ns = self._ns_key(rt, namespace)
        assert ns is not None
        meta_in = obj.get("metadata") if isinstance(obj, dict) else None
        hint = ""
        if isinstance(meta_in, dict):
            hint = str(meta_in.get("name") or meta_in.get("generateName") or "")
        new = validate_common(rt, obj, hint)
        meta = new["metadata"]
        check_namespace_matches(rt, ns, meta)
        name = meta.get("name") or ""
        generate = meta.get("generateName") or ""
        if not isinstance(name, str) or not isinstance(generate, str):
            raise errors.invalid(resource_name(rt), rt.group, str(name),
                                 [{"reason": "FieldValueInvalid", "field": "metadata.name",
                                   "message": "Invalid value: must be a string"}])
        check_name(rt, {"name": name, "generateName": generate})
        if not name and not generate:
            raise errors.invalid(
                resource_name(rt), rt.group, "",
                [{"reason": "FieldValueRequired", "field": "metadata.name",
                  "message": "Required value: name or generateName is required"}],
            )

        def work(pending: Pending) -> dict[str, Any]:
            nonlocal name
            if rt.namespaced:
                owner = self._row(NAMESPACES, "", ns)
                if owner is None:
                    raise errors.not_found("namespaces", "", ns)
                if owner["metadata"].get("deletionTimestamp"):
                    raise ApiError(
                        403, "Forbidden",
                        f'{resource_name(rt)} "{name or generate}" is forbidden: unable to create new content in '
                        f"namespace {ns} because it is being terminated",
                        name=name or generate, group=rt.group, kind=resource_name(rt),
                    )
            if not name:
                base = generate[:58]
                for _ in range(20):
                    candidate = base + "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
                    if self._row(rt, ns, candidate) is None:
                        name = candidate
                        break
                else:
                    raise errors.already_exists(resource_name(rt), rt.group, base)
            check_name(rt, {"name": name})
            if self._row(rt, ns, name) is not None:
                raise errors.already_exists(resource_name(rt), rt.group, name)
            meta["name"] = name
            if rt.namespaced:
                meta["namespace"] = ns
            else:
                meta.pop("namespace", None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            meta["generation"] = 1
            for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
                meta.pop(key, None)
            if rt.kind == "Namespace" and rt.group == "":
                meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
                new.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
                new.setdefault("status", {})["phase"] = "Active"
            elif rt.kind in ("PersistentVolumeClaim", "PersistentVolume") and rt.group == "":
                status = new.setdefault("status", {})
                if isinstance(status, dict):  # the local cluster binds every claim at once
                    status.setdefault("phase", "Bound" if rt.kind == "PersistentVolumeClaim" else "Available")
                    claim_spec = new.get("spec") if rt.kind == "PersistentVolumeClaim" else None
                    if isinstance(claim_spec, dict):
                        status.setdefault("accessModes", claim_spec.get("accessModes") or ["ReadWriteOnce"])
                        size = ((claim_spec.get("resources") or {}).get("requests") or {}).get("storage")
                        if size is not None:
                            status.setdefault("capacity", {"storage": size})
            elif rt.kind == "Pod" and rt.group == "":
                status = new.setdefault("status", {})
                if isinstance(status, dict):
                    status.setdefault("phase", "Pending")
            return self._commit(rt, ns, name, "ADDED", new, None, pending)

        return self._transaction(work)

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        """Return a deep copy; 404 NotFound."""
        ns = self._ns_key(rt, namespace)
        assert ns is not None
        with self._lock:
            return self._get_row(rt, ns, name)

    def find(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        """Like :meth:`get`, but None when the object does not exist (other errors, such as a
        namespaced type asked without a namespace, are raised)."""
        ns = self._ns_key(rt, namespace)
        assert ns is not None
        with self._lock:
            return self._row(rt, ns, name)

    def get_raw(self, rt: ResourceType, namespace: str | None, name: str) -> str:
        """The stored JSON text of one object (no parsing); 404 NotFound."""
        ns = self._ns_key(rt, namespace)
        assert ns is not None
        with self._lock:
            row = self._conn.execute(
                'SELECT body FROM objects WHERE "group"=? AND plural=? AND namespace=? AND name=?',
                (rt.group, rt.plural, ns, name),
            ).fetchone()
        if row is None:
            raise errors.not_found(resource_name(rt), rt.group, name)
        return str(row[0])

    def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
    ) -> tuple[list[dict[str, Any]], str, str]:
        """Return (items, list resourceVersion, continue token or "").

        Items are ordered by namespace then name. With ``limit`` > 0 at most that many items are
        returned and the continue token (opaque) resumes after the last one; it is "" when no
        further matching item exists. ``namespace`` None lists all namespaces.
        """
        rows, rv, token = self._select(rt, namespace, label_selector, field_selector, limit, continue_token)
        return [obj if obj is not None else json.loads(body) for body, obj in rows], rv, token

    def list_raw(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
    ) -> tuple[builtins.list[str], str, str]:
        """:meth:`list` with the stored JSON text of each item (parsed only to apply selectors)."""
        rows, rv, token = self._select(rt, namespace, label_selector, field_selector, limit, continue_token)
        return [body for body, _ in rows], rv, token

    def _select(
        self, rt: ResourceType, namespace: str | None, label_selector: str, field_selector: str, limit: int,
        continue_token: str,
    ) -> tuple[builtins.list[tuple[str, dict[str, Any] | None]], str, str]:
        """(stored text, parsed object if selectors needed it) of the selected items, list rv, token."""
        if limit < 0:
            raise errors.bad_request(f"limit must be >= 0, got {limit}")
        ns = self._ns_key(rt, namespace, for_list=True)
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, rt.kind)
        selective = bool(labels.requirements or fields.requirements)
        sql = 'SELECT namespace, name, body FROM objects WHERE "group"=? AND plural=?'
        params: builtins.list[Any] = [rt.group, rt.plural]
        if ns is not None:
            sql += " AND namespace=?"
            params.append(ns)
        if continue_token:
            after_ns, after_name = _decode_continue(continue_token)
            sql += " AND (namespace, name) > (?, ?)"
            params += [after_ns, after_name]
        sql += " ORDER BY namespace, name"
        items: builtins.list[tuple[str, dict[str, Any] | None]] = []
        token = ""
        with self._lock:
            # with a peer process writing too, the rows and the resourceVersion come from one snapshot
            snapshot = self._peer is not None and not self._conn.in_transaction
            if snapshot:
                self._conn.execute("BEGIN")
            cursor = None
            try:
                self._sync_rv()
                list_rv = self._rv
                last: tuple[str, str] | None = None
                cursor = self._conn.execute(sql, params)
                for row_ns, row_name, body in cursor:
                    obj = json.loads(body) if selective else None
                    if obj is not None and not matches(obj, labels, fields):
                        continue
                    if limit and len(items) >= limit:
                        assert last is not None
                        token = _encode_continue(last[0], last[1], list_rv)
                        break
                    items.append((body, obj))
                    last = (row_ns, row_name)
            finally:
                if cursor is not None:
                    cursor.close()
                if snapshot:
                    self._conn.execute("COMMIT")
        return items, str(list_rv), token

    def replace(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        obj: dict[str, Any],
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """PUT. If ``obj.metadata.resourceVersion`` is set and differs: 409 Conflict.

        ``subresource="status"`` replaces only ``status``; without it, ``status`` of types that
        have a status subresource is kept from the stored object (internal callers such as the
        controller use ``subresource="status"`` or :meth:`update` to write status). A name in the
        body that differs from ``name`` is 422 Invalid.
        """
        ns = self._ns_key(rt, namespace)
        assert ns is not None
        check_subresource(rt, subresource)
        body = validate_common(rt, obj, name)
        meta = body["metadata"]
        check_namespace_matches(rt, ns, meta)
        if meta.get("name") not in (None, "", name):
            raise errors.invalid(
                resource_name(rt), rt.group, name,
                [{"reason": "FieldValueInvalid", "field": "metadata.name",
                  "message": f'Invalid value: "{meta.get("name")}": must match the name in the URL '
                             f'"{name}"'}],
            )

        def work(pending: Pending) -> dict[str, Any]:
            old = self._get_row(rt, ns, name)
            check_preconditions(rt, name, old, meta)
            return self._write_update(rt, ns, name, old, merge_for(rt, old, body, subresource), pending)

        return self._transaction(work)

    def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        patch: Any,
        content_type: str,
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """merge-patch (``application/merge-patch+json``), strategic-merge-patch (built-in kinds; a
        merge patch for the others), JSON-patch (``application/json-patch+json``, RFC 6902 incl. ``test``).

        A failing JSON patch is 422 Invalid (field ``patch``); an unsupported content type is 415;
        a ``metadata.resourceVersion`` in the patched result that differs from the stored one is
        409 Conflict. Identity fields (name, namespace, uid, creationTimestamp) cannot be changed.
        """
        ns = self._ns_key(rt, namespace)
        assert ns is not None
        check_subresource(rt, subresource)
        media = content_type.split(";", 1)[0].strip().lower()
        if media in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
            if not isinstance(patch, dict):
                raise errors.bad_request("a merge patch must be a JSON object")
        elif media == JSON_PATCH:
            if not isinstance(patch, list):
                raise errors.bad_request("a JSON patch must be a JSON array of operations")
        elif media == APPLY_PATCH:
            raise ApiError(
                415, "UnsupportedMediaType",
                "server-side apply (application/apply-patch+yaml) is not supported by the local cluster; "
                "use a merge patch or a JSON patch",
            )
        else:
            raise ApiError(
                415, "UnsupportedMediaType",
                f'the patch content type "{content_type}" is not supported; use one of {MERGE_PATCH}, '
                f"{STRATEGIC_MERGE_PATCH}, {JSON_PATCH}",
            )

        def work(pending: Pending) -> dict[str, Any]:
            old = self._get_row(rt, ns, name)
            try:
                if media == JSON_PATCH:
                    patched = json_patch(old, patch)
                elif media == STRATEGIC_MERGE_PATCH and not rt.group:  # built-in kinds; CRDs merge
                    patched = strategic_merge_patch(old, patch)
                else:
                    patched = merge_patch(old, patch)
            except PatchError as exc:
                raise errors.invalid(
                    resource_name(rt), rt.group, name,
                    [{"reason": "FieldValueInvalid", "field": "patch", "message": str(exc)}],
                ) from exc
            body = validate_common(rt, patched, name)
            meta = body["metadata"]
            for key in ("name", "namespace", "uid"):
                if key in meta and meta[key] != old["metadata"].get(key) and not (
                    key == "namespace" and not rt.namespaced
                ):
                    raise errors.invalid(
                        resource_name(rt), rt.group, name,
                        [{"reason": "FieldValueInvalid", "field": f"metadata.{key}",
                          "message": f"Invalid value: {meta[key]!r}: field is immutable"}],
                    )
            check_preconditions(rt, name, old, meta)
            return self._write_update(rt, ns, name, old, merge_for(rt, old, body, subresource), pending)

        return self._transaction(work)

    def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        mutate: Callable[[dict[str, Any]], dict[str, Any] | None],
    ) -> dict[str, Any]:
        """Internal read-modify-write under the lock (no conflict possible): ``mutate`` gets a deep
        copy and returns the new object (or mutates in place and returns None). Status included.
        Bumps resourceVersion and emits MODIFIED only if the object changed. ``mutate`` runs inside
        the store's write transaction, so it must not call the store itself."""
        ns = self._ns_key(rt, namespace)
        assert ns is not None

        def work(pending: Pending) -> dict[str, Any]:
            text = self._get_row_text(rt, ns, name)
            # two parses of the stored JSON are cheaper than a deep copy of one (C against Python)
            old, draft = json.loads(text), json.loads(text)
            result = mutate(draft)
            if result is not None and not isinstance(result, dict):
                raise TypeError(f"update() mutate for {rt.plural}/{name} must produce a dict object")
            # the draft is this call's own; an object ``mutate`` returned may be shared with its caller
            new = draft if result is None else copy.deepcopy(result)
            if not isinstance(new.get("metadata", {}), dict):
                raise TypeError(f"update() mutate for {rt.plural}/{name} must produce a dict object")
            return self._write_update(rt, ns, name, old, new, pending, prev_body=text)

        # every object ``work`` returns was parsed or copied by it: the caller's alone
        return self._transaction(work, owned=True)
