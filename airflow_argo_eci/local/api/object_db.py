"""The SQLite database under the object store: the schema, the one global ``resourceVersion``, writing
one change together with its event, write transactions that notify waiters and listeners, and the
bounded event log that WATCH replays.

One global, monotonically increasing integer ``resourceVersion`` (as a string in objects) orders all
changes, exactly like etcd's revision. Thread-safety: the store is called from the HTTP server's
event loop threads (via ``run_in_threadpool``), from the controller thread, and from runtime
threads. All methods are thread-safe (one ``threading.RLock`` around one ``sqlite3`` connection
opened with ``check_same_thread=False``, WAL mode).
"""

from __future__ import annotations

import builtins
import copy
import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow_argo_eci.local.api import errors
from airflow_argo_eci.local.api.limits import MAX_OBJECT_BYTES, object_too_large
from airflow_argo_eci.local.api.object_rules import resource_name
from airflow_argo_eci.local.api.resources import ResourceType
from airflow_argo_eci.local.api.selectors import (
    FieldSelector,
    LabelSelector,
    matches,
    parse_field_selector,
    parse_label_selector,
)

log = logging.getLogger(__name__)

#: Listener signature: (event_type "ADDED"|"MODIFIED"|"DELETED", resource type, object after change)
Listener = Callable[[str, ResourceType, dict[str, Any]], None]
#: the changes of one transaction, (event type, resource type, object), for the listeners
Pending = list[tuple[str, ResourceType, dict[str, Any]]]

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


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=False)


def _dumps_stored(rt: ResourceType, name: str, obj: dict[str, Any]) -> str:
    """The stored form of ``obj``: strict JSON (no NaN/Infinity) of at most etcd's request size."""
    try:
        body = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise errors.bad_request(
            f'{resource_name(rt)} "{name}" holds a number JSON cannot represent ({exc}); use a finite number'
        ) from None
    size = len(body) if body.isascii() else len(body.encode())
    if size > MAX_OBJECT_BYTES:
        raise object_too_large(resource_name(rt), name, size)
    return body


class ObjectDatabase:
    """The objects and change events of the store in one SQLite database, ordered by one global
    resourceVersion (see the module docstring); :class:`~.store.Store` adds the object operations."""

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

    # ------------------------------------------------------------------ basics


    @property
    def event_window(self) -> int:
        """How many change events are kept for WATCH (older resourceVersions get 410 Gone)."""
        return self._event_window
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
    def latest_resource_version(self) -> int:
        """:attr:`resource_version` read without the lock (never waits for a writer; a commit in
        progress may not show yet): for wake-up checks on an event loop."""
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

    # ------------------------------------------------------------------ rows

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
            raise errors.not_found(resource_name(rt), rt.group, name)
        return obj

    def _commit(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        event_type: str,
        obj: dict[str, Any],
        prev: dict[str, Any] | None,
        pending: Pending,
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
        pending.append((event_type, rt, json.loads(body)))  # the listeners' copy: cheaper than a deepcopy
        return obj

    def _transaction(
        self, work: Callable[[Pending], dict[str, Any]]
    ) -> dict[str, Any]:
        """Run ``work`` in one write transaction, then prune, notify waiters and call listeners."""
        pending: Pending = []
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
