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
import os
import select
import sqlite3
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_argo_eci.local.api import errors
from airflow_argo_eci.local.api.limits import MAX_OBJECT_BYTES, object_too_large
from airflow_argo_eci.local.api.object_rules import resource_name
from airflow_argo_eci.local.api.resources import ResourceType, lookup
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
#: a function called with no arguments after each transaction that committed changes
CommitHook = Callable[[], None]


@dataclass(frozen=True)
class PeerLink:
    """How the stores of two processes on one database file learn of each other's commits (the
    local cluster's API server and its node process, ``local/node_process.py``): ``wake_fd`` (the
    read end of a pipe) becomes readable when the other process committed; a byte written to
    ``notify_fd`` (the write end of the other pipe) tells it that this one did. SQLite's write
    lock orders the two processes' transactions; see :meth:`ObjectDatabase.follow`."""

    wake_fd: int
    notify_fd: int

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

    def __init__(self, db_path: str | Path, *, event_window: int = 10_000, peer: PeerLink | None = None) -> None:
        """Open (or create) the database. ``event_window`` change events are kept for WATCH;
        a watch from an older resourceVersion gets 410 Gone. ``peer``: another process writes the
        same database (see :class:`PeerLink`); its commits reach this store's listeners."""
        if event_window < 1:
            raise ValueError(f"event_window must be >= 1, got {event_window}")
        self._event_window = event_window
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._listeners: list[tuple[Listener, frozenset[tuple[str, str]] | None]] = []
        self._commit_hooks: list[CommitHook] = []
        self._closed = False
        self._peer = peer
        self._conn = sqlite3.connect(str(db_path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key='rv'").fetchone()
            self._rv: int = int(row[0]) if row else 0
            row = self._conn.execute("SELECT MIN(rv) FROM events").fetchone()
            self._compacted: int = (int(row[0]) - 1) if row and row[0] is not None else self._rv
            #: with a peer: the change events up to this resourceVersion reached the listeners, and
            #: this process's own later ones (which its writers handed to them) are in ``_own``
            self._followed = self._rv
            self._own: set[int] = set()
        self._follower: threading.Thread | None = None
        if peer is not None:
            os.set_blocking(peer.notify_fd, False)
            #: :meth:`close` ends the follower through this pipe (the peer's fds stay their owner's)
            self._interrupt = os.pipe()
            self._follower = threading.Thread(target=self._follow_peer, name="store-follower", daemon=True)
            self._follower.start()

    # ------------------------------------------------------------------ basics


    @property
    def event_window(self) -> int:
        """How many change events are kept for WATCH (older resourceVersions get 410 Gone)."""
        return self._event_window
    def close(self) -> None:
        """Close the database; further calls fail. With a peer, the follower thread has ended when
        this returns, so the owner of :class:`PeerLink`'s descriptors may close them."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._conn.close()
            self._changed.notify_all()
        if self._follower is not None:
            os.write(self._interrupt[1], b"\0")
            self._follower.join(timeout=10)
            for fd in self._interrupt:
                os.close(fd)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (watchers use it to end their streams)."""
        return self._closed

    @property
    def resource_version(self) -> int:
        """The current (latest) global resourceVersion."""
        with self._lock:
            self._sync_rv()
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

    def add_listener(self, listener: Listener, kinds: Collection[ResourceType] | None = None) -> None:
        """Call ``listener`` after each committed change (of one of ``kinds``, when given),
        outside the lock, in the writer's thread (for a peer's commits: the follower's thread)."""
        with self._lock:
            self._listeners.append((listener, None if kinds is None else frozenset((k.group, k.plural) for k in kinds)))

    def add_commit_hook(self, hook: CommitHook) -> None:
        """Call ``hook()`` after each transaction that committed changes, this process's or a
        peer's, outside the lock (cheaper than a listener: no object is parsed for it)."""
        with self._lock:
            self._commit_hooks.append(hook)

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

    def _row_text(self, rt: ResourceType, ns: str, name: str) -> str | None:
        """The stored JSON of one object, None when it does not exist."""
        row = self._conn.execute(
            'SELECT body FROM objects WHERE "group"=? AND plural=? AND namespace=? AND name=?',
            (rt.group, rt.plural, ns, name),
        ).fetchone()
        return row[0] if row else None

    def _row(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any] | None:
        text = self._row_text(rt, ns, name)
        return json.loads(text) if text is not None else None

    def _get_row_text(self, rt: ResourceType, ns: str, name: str) -> str:
        """The stored JSON of one object; 404 NotFound when it does not exist."""
        text = self._row_text(rt, ns, name)
        if text is None:
            raise errors.not_found(resource_name(rt), rt.group, name)
        return text

    def _get_row(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = json.loads(self._get_row_text(rt, ns, name))
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
        prev_body: str | None = None,
    ) -> dict[str, Any]:
        """Write one change with a fresh resourceVersion (lock held, inside a transaction);
        ``prev_body``: ``prev`` as stored, when the caller has it (saves serializing it again)."""
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
            (rv, rt.group, rt.plural, ns, name, event_type, body,
             prev_body if prev_body is not None else _dumps(prev) if prev is not None else None),
        )
        self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('rv', ?)", (rv,))
        self._rv = rv
        pending.append((event_type, rt, json.loads(body)))  # the listeners' copy: cheaper than a deepcopy
        return obj

    def _transaction(
        self, work: Callable[[Pending], dict[str, Any]], *, owned: bool = False
    ) -> dict[str, Any]:
        """Run ``work`` in one write transaction, then prune, notify waiters and call listeners.
        The result is returned as a copy unless ``owned`` says ``work`` built it for the caller
        alone (nothing else holds a reference to it)."""
        pending: Pending = []
        with self._lock:
            if self._closed:
                raise RuntimeError("the store is closed")
            self._conn.execute("BEGIN IMMEDIATE")
            start_rv = self._rv
            try:
                self._sync_rv()  # a peer's commits: SQLite's write lock is held, so none is in flight
                start_rv = self._rv
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
                if self._followed == start_rv:
                    self._followed = self._rv  # no peer commit waits for the follower before these
                else:
                    self._own.update(range(start_rv + 1, self._rv + 1))
                self._changed.notify_all()
        if pending:
            if self._peer is not None:
                self._notify_peer()
            self._dispatch(pending)
            self._call_hooks()
        return result if owned else copy.deepcopy(result)

    def _dispatch(self, pending: Pending) -> None:
        """Hand committed changes to the listeners that want their kind (no lock held)."""
        for event_type, rt, obj in pending:
            for listener, kinds in list(self._listeners):
                if kinds is not None and (rt.group, rt.plural) not in kinds:
                    continue
                try:
                    listener(event_type, rt, obj)
                except Exception:
                    log.exception("store listener %r failed on %s %s", listener, event_type, rt.plural)

    def _call_hooks(self) -> None:
        """Call the commit hooks once for a transaction (or a peer's batch) that committed (no lock held)."""
        for hook in list(self._commit_hooks):
            try:
                hook()
            except Exception:
                log.exception("store commit hook %r failed", hook)

    # ------------------------------------------------------------------ a peer process

    def _sync_rv(self) -> None:
        """(lock held) Learn the resourceVersion a peer process committed up to; no-op without one."""
        if self._peer is None:
            return
        row = self._conn.execute("SELECT value FROM meta WHERE key='rv'").fetchone()
        if row and int(row[0]) > self._rv:
            self._rv = int(row[0])
            # the peer pruned to at most (its resourceVersion - window); assume it did
            self._compacted = max(self._compacted, self._rv - self._event_window)

    def _notify_peer(self) -> None:
        assert self._peer is not None
        try:
            os.write(self._peer.notify_fd, b"\0")
        except BlockingIOError:
            pass  # the pipe is full: the peer has a wake-up pending and reads everything then
        except OSError:
            pass  # the peer is gone

    def _follow_peer(self) -> None:
        """The follower thread: on each wake-up from the peer, :meth:`follow`."""
        assert self._peer is not None
        while not self._closed:
            try:
                readable, _, _ = select.select([self._peer.wake_fd, self._interrupt[0]], [], [])
                if self._interrupt[0] in readable or not os.read(self._peer.wake_fd, 4096):
                    return  # closed here, or the peer closed its end: it is gone
            except OSError:
                return
            try:
                self.follow()
            except Exception:  # the thread must survive; the next wake-up reads again
                log.exception("reading the peer process's changes failed")

    def follow(self) -> None:
        """Hand the change events the peer process committed since the last call to this store's
        listeners (in resourceVersion order; its own commits went to them from its writers), and
        wake :meth:`wait_for_change`. Called by the follower thread; no-op without a peer."""
        if self._peer is None:
            return
        foreign = 0
        bodies: list[tuple[str, ResourceType, str]] = []
        with self._lock:
            if self._closed:
                return
            self._sync_rv()
            if self._followed < self._compacted:
                log.warning("the peer process's changes %d..%d were pruned before this process read them",
                            self._followed + 1, self._compacted)
            body_column, wanted = self._wanted_body()
            rows = self._conn.execute(
                f'SELECT rv, type, "group", plural, {body_column} FROM events WHERE rv>? ORDER BY rv',
                (*wanted, self._followed),
            ).fetchall()
            for rv, event_type, group, plural, body in rows:
                if rv in self._own:
                    continue
                foreign += 1
                rt = lookup(group, plural)
                if rt is not None and body is not None:
                    bodies.append((event_type, rt, body))
            if rows:
                self._followed = rows[-1][0]
                self._rv = max(self._rv, self._followed)
                self._own = {rv for rv in self._own if rv > self._followed}
            self._changed.notify_all()
        self._dispatch([(event_type, rt, json.loads(body)) for event_type, rt, body in bodies])
        if foreign:
            self._call_hooks()

    def _wanted_body(self) -> tuple[str, list[str]]:
        """(lock held) The column :meth:`follow` reads as an event's body, and its parameters: the
        body where some listener wants the event's kind, else NULL (a large workflow is not read
        for nothing)."""
        kinds = [k for _, k in self._listeners]
        if any(k is None for k in kinds):
            return "body", []
        wanted = sorted({f"{group}/{plural}" for k in kinds if k is not None for group, plural in k})
        if not wanted:
            return "NULL", []
        marks = ", ".join("?" * len(wanted))
        return f"""CASE WHEN ("group" || '/' || plural) IN ({marks}) THEN body END""", wanted

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
            self._sync_rv()
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
