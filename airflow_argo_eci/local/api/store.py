"""SQLite-backed object store with Kubernetes semantics.

Everything the local cluster keeps lives here: every object of every ``ResourceType`` and a
bounded log of change events that WATCH replays. One global, monotonically increasing integer
``resourceVersion`` (as a string in objects) orders all changes, exactly like etcd's revision.

Thread-safety: the store is called from the HTTP server's event loop threads (via
``run_in_threadpool``), from the controller thread, and from runtime threads. All methods are
thread-safe (one ``threading.RLock`` around one ``sqlite3`` connection opened with
``check_same_thread=False``, WAL mode).

Objects are plain JSON dicts. The store fills ``apiVersion``/``kind`` from the ``ResourceType``,
and on create ``metadata.uid`` (uuid4), ``metadata.resourceVersion``, ``metadata.creationTimestamp``
(RFC3339, ``Z``), ``metadata.name`` from ``generateName`` + 5 random ``[a-z0-9]`` chars,
``metadata.namespace`` for namespaced types, ``metadata.generation`` = 1.

Defaults applied on create: a ``Namespace`` gets ``status.phase: Active`` and the label
``kubernetes.io/metadata.name``; a ``Pod`` without ``status.phase`` gets ``Pending``.
``metadata.generation`` is bumped whenever anything outside ``metadata`` (and outside ``status``
for types with a status subresource) changes.

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
import logging
import secrets
import sqlite3
import string
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow_argo_eci.local.api import errors
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.limits import MAX_OBJECT_BYTES, object_too_large
from airflow_argo_eci.local.api.patch import PatchError, json_patch, merge_patch
from airflow_argo_eci.local.api.resources import NAMESPACES, PODS, REGISTRY, ResourceType
from airflow_argo_eci.local.api.selectors import (
    FieldSelector,
    LabelSelector,
    matches,
    parse_field_selector,
    parse_label_selector,
)
from airflow_argo_eci.local.api.validation import metadata_causes, name_causes, pod_causes

log = logging.getLogger(__name__)

#: Listener signature: (event_type "ADDED"|"MODIFIED"|"DELETED", resource type, object after change)
Listener = Callable[[str, ResourceType, dict[str, Any]], None]

#: namespaces that exist from the first open on
INITIAL_NAMESPACES = ("default", "argo")

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    "group" TEXT NOT NULL,
    plural TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    rv INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY ("group", plural, namespace, name)
);
CREATE TABLE IF NOT EXISTS events (
    rv INTEGER PRIMARY KEY,
    "group" TEXT NOT NULL,
    plural TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    prev TEXT
);
CREATE INDEX IF NOT EXISTS events_by_type ON events ("group", plural, rv);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def now_rfc3339() -> str:
    """The current UTC time as RFC 3339 with seconds precision and ``Z`` (like ``creationTimestamp``)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=False)


def _dumps_stored(rt: ResourceType, name: str, obj: dict[str, Any]) -> str:
    """The stored form of ``obj``: strict JSON (no NaN/Infinity) of at most etcd's request size."""
    try:
        body = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise errors.bad_request(
            f'{_resource(rt)} "{name}" holds a number JSON cannot represent ({exc}); use a finite number'
        ) from None
    size = len(body) if body.isascii() else len(body.encode())
    if size > MAX_OBJECT_BYTES:
        raise object_too_large(_resource(rt), name, size)
    return body


def _resource(rt: ResourceType) -> str:
    """How the API server names a resource in messages: ``plural`` or ``plural.group``."""
    return rt.plural


def _generation_view(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """The part of an object whose change bumps ``metadata.generation``."""
    skip = {"metadata", "resourceVersion"} | ({"status"} if rt.has_status else set())
    return {k: v for k, v in obj.items() if k not in skip}


def _without_rv(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta.pop("resourceVersion", None)
    out["metadata"] = meta
    return out


def _encode_continue(namespace: str, name: str, rv: int) -> str:
    raw = _dumps({"ns": namespace, "name": name, "rv": rv}).encode()
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


class Store:
    """Kubernetes-like object store on one SQLite database (see the module docstring)."""

    def __init__(self, db_path: str | Path, *, event_window: int = 10_000) -> None:
        """Open (or create) the database. ``event_window`` change events are kept for WATCH;
        a watch from an older resourceVersion gets 410 Gone."""
        if event_window < 1:
            raise ValueError(f"event_window must be >= 1, got {event_window}")
        self._event_window = event_window
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._listeners: list[Listener] = []
        self._closed = False
        self._conn = sqlite3.connect(str(db_path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key='rv'").fetchone()
            self._rv: int = int(row[0]) if row else 0
            row = self._conn.execute("SELECT MIN(rv) FROM events").fetchone()
            self._compacted: int = (int(row[0]) - 1) if row and row[0] is not None else self._rv
            for ns in INITIAL_NAMESPACES:
                if self._row(NAMESPACES, "", ns) is None:
                    self.create(NAMESPACES, None, {"metadata": {"name": ns}})

    # ------------------------------------------------------------------ basics

    def close(self) -> None:
        """Close the database; further calls fail."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
                self._changed.notify_all()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (watchers use it to end their streams)."""
        return self._closed

    @property
    def resource_version(self) -> int:
        """The current (latest) global resourceVersion."""
        with self._lock:
            return self._rv

    @property
    def compacted_resource_version(self) -> int:
        """The newest resourceVersion whose change event is no longer kept (watching from an older
        one gets 410 Gone)."""
        with self._lock:
            return self._compacted

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` after each committed change, outside the lock, in the writer's thread."""
        with self._lock:
            self._listeners.append(listener)

    def wait_for_change(self, after_rv: int, timeout: float) -> bool:
        """Block (threading.Condition) until resourceVersion > after_rv or timeout; True on change."""
        with self._changed:
            return self._changed.wait_for(lambda: self._rv > after_rv or self._closed, timeout)

    # ------------------------------------------------------------------ helpers

    def _ns_key(self, rt: ResourceType, namespace: str | None, *, for_list: bool = False) -> str | None:
        if not rt.namespaced:
            return ""
        if not namespace:
            if for_list:
                return None
            raise errors.bad_request(f"a namespace is required for namespaced resource {rt.plural}")
        return namespace

    def _row(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            'SELECT body FROM objects WHERE "group"=? AND plural=? AND namespace=? AND name=?',
            (rt.group, rt.plural, ns, name),
        ).fetchone()
        return json.loads(row[0]) if row else None

    def _get_row(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any]:
        obj = self._row(rt, ns, name)
        if obj is None:
            raise errors.not_found(_resource(rt), rt.group, name)
        return obj

    def _validate_common(self, rt: ResourceType, obj: Any, name_hint: str) -> dict[str, Any]:
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
            causes += pod_causes(obj)
        if causes:
            raise errors.invalid(_resource(rt), rt.group, name_hint, causes)
        out = copy.deepcopy(obj)
        out["apiVersion"] = rt.api_version
        out["kind"] = rt.kind
        out["metadata"] = copy.deepcopy(meta)
        return out

    def _check_name(self, rt: ResourceType, meta: dict[str, Any]) -> None:
        causes = name_causes(rt.kind, meta)
        if causes:
            hint = str(meta.get("name") or meta.get("generateName") or "")
            raise errors.invalid(_resource(rt), rt.group, hint, causes)

    def _check_namespace_matches(self, rt: ResourceType, ns: str, meta: dict[str, Any]) -> None:
        body_ns = meta.get("namespace")
        if rt.namespaced and body_ns not in (None, "", ns):
            raise errors.bad_request(
                f'the namespace of the provided object ("{body_ns}") does not match the namespace sent '
                f'on the request ("{ns}")'
            )

    def _commit(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        event_type: str,
        obj: dict[str, Any],
        prev: dict[str, Any] | None,
        pending: list[tuple[str, ResourceType, dict[str, Any]]],
    ) -> dict[str, Any]:
        """Write one change with a fresh resourceVersion (lock held, inside a transaction)."""
        rv = self._rv + 1
        obj["metadata"]["resourceVersion"] = str(rv)
        body = _dumps_stored(rt, name, obj) if event_type != "DELETED" else _dumps(obj)
        if event_type == "DELETED":
            self._conn.execute(
                'DELETE FROM objects WHERE "group"=? AND plural=? AND namespace=? AND name=?',
                (rt.group, rt.plural, ns, name),
            )
        else:
            self._conn.execute(
                'INSERT OR REPLACE INTO objects ("group", plural, namespace, name, rv, body) '
                "VALUES (?, ?, ?, ?, ?, ?)",
                (rt.group, rt.plural, ns, name, rv, body),
            )
        self._conn.execute(
            'INSERT INTO events (rv, "group", plural, namespace, name, type, body, prev) '
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (rv, rt.group, rt.plural, ns, name, event_type, body, _dumps(prev) if prev is not None else None),
        )
        self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('rv', ?)", (rv,))
        self._rv = rv
        pending.append((event_type, rt, copy.deepcopy(obj)))
        return obj

    def _transaction(
        self, work: Callable[[list[tuple[str, ResourceType, dict[str, Any]]]], dict[str, Any]]
    ) -> dict[str, Any]:
        """Run ``work`` in one write transaction, then prune, notify waiters and call listeners."""
        pending: list[tuple[str, ResourceType, dict[str, Any]]] = []
        with self._lock:
            if self._closed:
                raise RuntimeError("the store is closed")
            start_rv = self._rv
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(pending)
                floor = self._rv - self._event_window
                if floor > self._compacted:
                    self._conn.execute("DELETE FROM events WHERE rv <= ?", (floor,))
                    self._compacted = floor
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                self._rv = start_rv
                raise
            if pending:
                self._changed.notify_all()
        for event_type, rt, obj in pending:
            for listener in list(self._listeners):
                try:
                    listener(event_type, rt, obj)
                except Exception:
                    log.exception("store listener %r failed on %s %s", listener, event_type, rt.plural)
        return copy.deepcopy(result)

    def _write_update(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        old: dict[str, Any],
        new: dict[str, Any],
        pending: list[tuple[str, ResourceType, dict[str, Any]]],
    ) -> dict[str, Any]:
        """Store ``new`` as the successor of ``old``: identity fields are kept, generation bumped
        on spec changes; nothing is written when nothing changed."""
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
        gen = int(old_meta.get("generation", 1))
        if _generation_view(rt, new) != _generation_view(rt, old):
            gen += 1
        meta["generation"] = gen
        meta["resourceVersion"] = old_meta.get("resourceVersion", "")
        if new == old:
            return old
        return self._commit(rt, ns, name, "MODIFIED", new, old, pending)

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
        new = self._validate_common(rt, obj, hint)
        meta = new["metadata"]
        self._check_namespace_matches(rt, ns, meta)
        name = meta.get("name") or ""
        generate = meta.get("generateName") or ""
        if not isinstance(name, str) or not isinstance(generate, str):
            raise errors.invalid(_resource(rt), rt.group, str(name),
                                 [{"reason": "FieldValueInvalid", "field": "metadata.name",
                                   "message": "Invalid value: must be a string"}])
        self._check_name(rt, {"name": name, "generateName": generate})
        if not name and not generate:
            raise errors.invalid(
                _resource(rt), rt.group, "",
                [{"reason": "FieldValueRequired", "field": "metadata.name",
                  "message": "Required value: name or generateName is required"}],
            )

        def work(pending: list[tuple[str, ResourceType, dict[str, Any]]]) -> dict[str, Any]:
            nonlocal name
            if rt.namespaced and self._row(NAMESPACES, "", ns) is None:
                raise errors.not_found("namespaces", "", ns)
            if not name:
                base = generate[:58]
                for _ in range(20):
                    candidate = base + "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
                    if self._row(rt, ns, candidate) is None:
                        name = candidate
                        break
                else:
                    raise errors.already_exists(_resource(rt), rt.group, base)
            self._check_name(rt, {"name": name})
            if self._row(rt, ns, name) is not None:
                raise errors.already_exists(_resource(rt), rt.group, name)
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
            raise errors.not_found(_resource(rt), rt.group, name)
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
            list_rv = self._rv
            last: tuple[str, str] | None = None
            for row_ns, row_name, body in self._conn.execute(sql, params):
                obj = json.loads(body) if selective else None
                if obj is not None and not matches(obj, labels, fields):
                    continue
                if limit and len(items) >= limit:
                    assert last is not None
                    token = _encode_continue(last[0], last[1], list_rv)
                    break
                items.append((body, obj))
                last = (row_ns, row_name)
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
        self._check_subresource(rt, subresource)
        body = self._validate_common(rt, obj, name)
        meta = body["metadata"]
        self._check_namespace_matches(rt, ns, meta)
        if meta.get("name") not in (None, "", name):
            raise errors.invalid(
                _resource(rt), rt.group, name,
                [{"reason": "FieldValueInvalid", "field": "metadata.name",
                  "message": f'Invalid value: "{meta.get("name")}": must match the name in the URL '
                             f'"{name}"'}],
            )

        def work(pending: list[tuple[str, ResourceType, dict[str, Any]]]) -> dict[str, Any]:
            old = self._get_row(rt, ns, name)
            self._check_preconditions(rt, name, old, meta)
            return self._write_update(rt, ns, name, old, self._merge_for(rt, old, body, subresource), pending)

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
        """merge-patch (``application/merge-patch+json``, also used for strategic-merge),
        JSON-patch (``application/json-patch+json``, RFC 6902 incl. ``test``).

        A failing JSON patch is 422 Invalid (field ``patch``); an unsupported content type is 415;
        a ``metadata.resourceVersion`` in the patched result that differs from the stored one is
        409 Conflict. Identity fields (name, namespace, uid, creationTimestamp) cannot be changed.
        """
        ns = self._ns_key(rt, namespace)
        assert ns is not None
        self._check_subresource(rt, subresource)
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

        def work(pending: list[tuple[str, ResourceType, dict[str, Any]]]) -> dict[str, Any]:
            old = self._get_row(rt, ns, name)
            try:
                patched = merge_patch(old, patch) if media != JSON_PATCH else json_patch(old, patch)
            except PatchError as exc:
                raise errors.invalid(
                    _resource(rt), rt.group, name,
                    [{"reason": "FieldValueInvalid", "field": "patch", "message": str(exc)}],
                ) from exc
            body = self._validate_common(rt, patched, name)
            meta = body["metadata"]
            for key in ("name", "namespace", "uid"):
                if key in meta and meta[key] != old["metadata"].get(key) and not (
                    key == "namespace" and not rt.namespaced
                ):
                    raise errors.invalid(
                        _resource(rt), rt.group, name,
                        [{"reason": "FieldValueInvalid", "field": f"metadata.{key}",
                          "message": f"Invalid value: {meta[key]!r}: field is immutable"}],
                    )
            self._check_preconditions(rt, name, old, meta)
            return self._write_update(rt, ns, name, old, self._merge_for(rt, old, body, subresource), pending)

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

        def work(pending: list[tuple[str, ResourceType, dict[str, Any]]]) -> dict[str, Any]:
            old = self._get_row(rt, ns, name)
            draft = copy.deepcopy(old)
            result = mutate(draft)
            new = draft if result is None else result
            if not isinstance(new, dict) or not isinstance(new.get("metadata", {}), dict):
                raise TypeError(f"update() mutate for {rt.plural}/{name} must produce a dict object")
            return self._write_update(rt, ns, name, old, copy.deepcopy(new), pending)

        return self._transaction(work)

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        preconditions: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Delete and return the deleted object; 404 NotFound. Deleting a Namespace deletes its objects.

        ``preconditions`` (``DeleteOptions.preconditions``: ``resourceVersion`` and/or ``uid``) that
        do not hold give 409 Conflict. The ``default`` namespace cannot be deleted (403 Forbidden).
        """
        ns = self._ns_key(rt, namespace)
        assert ns is not None
        is_namespace = rt.key == NAMESPACES.key
        if is_namespace and name == "default":
            raise ApiError(
                403, "Forbidden", 'namespaces "default" is forbidden: this namespace may not be deleted',
                name=name, kind="namespaces",
            )

        def work(pending: list[tuple[str, ResourceType, dict[str, Any]]]) -> dict[str, Any]:
            old = self._get_row(rt, ns, name)
            if preconditions:
                self._check_preconditions(rt, name, old, preconditions)
            if is_namespace:
                rows = self._conn.execute(
                    'SELECT "group", plural, name, body FROM objects WHERE namespace=? '
                    'ORDER BY "group", plural, name',
                    (name,),
                ).fetchall()
                for group, plural, child_name, body in rows:
                    child_rt = REGISTRY.get((group, plural)) or ResourceType(
                        group, "v1", plural, plural, True
                    )
                    child = json.loads(body)
                    self._commit(child_rt, name, child_name, "DELETED", child, None, pending)
            gone_obj = copy.deepcopy(old)
            gone_obj["metadata"]["deletionTimestamp"] = now_rfc3339()
            return self._commit(rt, ns, name, "DELETED", gone_obj, None, pending)

        return self._transaction(work)

    # ------------------------------------------------------------------ watch support

    def events_since(
        self,
        rt: ResourceType,
        namespace: str | None,
        resource_version: int,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> builtins.list[tuple[str, dict[str, Any], int]]:
        """Change events newer than ``resource_version`` (type, object, rv), oldest first.
        410 Gone (ApiError code 410, reason Expired) when ``resource_version`` is older than the
        kept window.

        With selectors, an object that stops matching is reported as DELETED and one that starts
        matching as ADDED, like a Kubernetes watch.
        """
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, rt.kind)
        rows = self.raw_events_since(rt, namespace, resource_version)
        return _filter_events([(rv, t, body, prev) for rv, t, _, body, prev in rows], labels, fields)

    def raw_events_since(
        self, rt: ResourceType | None, namespace: str | None, resource_version: int, *, limit: int = 0
    ) -> builtins.list[tuple[int, str, tuple[str, str, str], str, str | None]]:
        """Stored change events newer than ``resource_version``, oldest first, unparsed:
        ``(rv, type, (group, plural, namespace), body, previous body or None)``; of one type
        (``rt``, optionally one ``namespace``) or of all types (``rt`` None). At most ``limit``
        rows when ``limit`` > 0. 410 Gone when ``resource_version`` is older than the kept window."""
        sql = 'SELECT rv, type, "group", plural, namespace, body, prev FROM events WHERE rv>?'
        params: builtins.list[Any] = [resource_version]
        if rt is not None:
            sql += ' AND "group"=? AND plural=?'
            params += [rt.group, rt.plural]
            ns = self._ns_key(rt, namespace, for_list=True)
            if ns is not None:
                sql += " AND namespace=?"
                params.append(ns)
        sql += " ORDER BY rv"
        if limit > 0:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            if resource_version < self._compacted:
                raise errors.gone(f"too old resource version: {resource_version} ({self._compacted + 1})")
            rows = self._conn.execute(sql, params).fetchall()
        return [(rv, t, (g, p, n), body, prev) for rv, t, g, p, n, body, prev in rows]

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _check_subresource(rt: ResourceType, subresource: str) -> None:
        if subresource not in ("", "status"):
            raise errors.bad_request(f'unknown subresource "{subresource}" of {rt.plural}')
        if subresource == "status" and not rt.has_status:
            raise errors.not_found(_resource(rt) + "/status", rt.group, subresource)

    @staticmethod
    def _check_preconditions(rt: ResourceType, name: str, old: dict[str, Any], meta: dict[str, Any]) -> None:
        rv = meta.get("resourceVersion")
        if rv not in (None, "") and str(rv) != old["metadata"].get("resourceVersion"):
            raise errors.conflict(_resource(rt), rt.group, name)
        uid = meta.get("uid")
        if uid not in (None, "") and uid != old["metadata"].get("uid"):
            raise ApiError(
                409, "Conflict",
                f'Operation cannot be fulfilled on {_resource(rt)} "{name}": Precondition failed: '
                f"UID in precondition: {uid}, UID in object meta: {old['metadata'].get('uid')}",
                name=name, group=rt.group, kind=_resource(rt),
            )

    @staticmethod
    def _merge_for(
        rt: ResourceType, old: dict[str, Any], body: dict[str, Any], subresource: str
    ) -> dict[str, Any]:
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


def _filter_events(
    rows: list[tuple[int, str, str, str | None]], labels: LabelSelector, fields: FieldSelector
) -> list[tuple[str, dict[str, Any], int]]:
    selective = bool(labels.requirements or fields.requirements)
    out: list[tuple[str, dict[str, Any], int]] = []
    for rv, event_type, body, prev in rows:
        obj = json.loads(body)
        if not selective:
            out.append((event_type, obj, rv))
            continue
        now_matches = matches(obj, labels, fields)
        if event_type == "MODIFIED":
            was = matches(json.loads(prev), labels, fields) if prev else now_matches
            if was and not now_matches:
                out.append(("DELETED", obj, rv))
            elif now_matches and not was:
                out.append(("ADDED", obj, rv))
            elif now_matches:
                out.append(("MODIFIED", obj, rv))
        elif now_matches:
            out.append((event_type, obj, rv))
    return out
