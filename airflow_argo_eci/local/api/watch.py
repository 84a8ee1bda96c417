"""WATCH streams served from one shared, bounded cache of serialized change events.

Every change is read from the store once and turned into its watch line
(``{"type":...,"object":...}\\n``) once; all watchers of that type send the same bytes. An
object is parsed only when a watcher filters by selector, and then once per event (the labels
and selectable fields are kept, the rest dropped). The cache keeps at most ``max_bytes`` of
lines and ``max_events`` events, like the API server's watch cache:

* a watch that starts from a resourceVersion older than the cache reads those events from the
  store (in batches), then continues from the cache;
* the previous object of a MODIFIED event is kept as text (and counted against the bound) and
  parsed only when a watcher with a selector needs to know whether it matched before;
* a running watch that falls behind the cache (its client reads too slowly) gets an ``ERROR``
  event with 410 ``Expired`` and its stream ends; the client re-lists, as with a real API server.

So memory is bounded by the cache, not by the number of watchers times the object size.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import REGISTRY, ResourceType
from airflow_argo_eci.local.api.selectors import FieldSelector, LabelSelector, matches, selectable_fields
from airflow_argo_eci.local.api.store import Store

#: the most serialized event bytes the cache keeps (older events are read from the store)
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_EVENTS = 10_000
#: events read from the store per call when a watch catches up from before the cache
CATCH_UP_BATCH = 256
#: :meth:`WatchCache.cached_after` (on the event loop) parses objects up to this size for selectors
INLINE_PARSE_BYTES = 64 * 1024


def event_line(event_type: str, body: str | bytes | memoryview) -> bytes:
    """One watch line around an object's stored JSON text (no parsing, one copy)."""
    raw = body.encode() if isinstance(body, str) else body
    return b"".join((b'{"type":"', event_type.encode(), b'","object":', raw, b"}\n"))


def _view(kind: str, body: str | None) -> dict[str, Any] | None:
    """What selectors look at: labels and the selectable fields (None for no object)."""
    if body is None:
        return None
    obj = json.loads(body)
    meta = obj.get("metadata") or {}
    view: dict[str, Any] = {"metadata": {"labels": meta.get("labels") or {}}}
    for path in selectable_fields(kind):
        cur: Any = obj
        parts = path.split(".")
        for part in parts:
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur is None:
            continue
        target = view
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = cur
    return view


_LINE_END = 2  # len(b"}\n")


@dataclass
class SharedEvent:
    """One change event, serialized once; ``line`` is shared by every watcher."""

    rv: int
    type: str
    key: tuple[str, str, str]  # (group, plural, namespace)
    line: bytes
    body_start: int
    kind: str
    prev: str | None
    #: bytes accounted for this event while cached (fixed when it is made)
    cost: int = 0
    _views: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def size(self) -> int:
        """Bytes this event holds."""
        return len(self.line) + len(self.prev or "")

    def body(self) -> memoryview:
        """The object's JSON text inside ``line`` (no copy)."""
        return memoryview(self.line)[self.body_start:len(self.line) - _LINE_END]

    @property
    def costly_to_select(self) -> bool:
        """Whether selecting it for a watcher with selectors still means parsing a large object."""
        return "now" not in self._views and len(self.line) > INLINE_PARSE_BYTES

    def _ensure_views(self) -> None:
        with self._lock:
            if "now" not in self._views:
                self._views["now"] = _view(self.kind, bytes(self.body()).decode())
                self._views["prev"] = _view(self.kind, self.prev) if self.type == "MODIFIED" else None
                self.prev = None  # the view is all that is needed from it

    def lines_for(self, labels: LabelSelector, fields: FieldSelector) -> list[bytes]:
        """The line(s) a watcher with these selectors gets: the object entering the selection is
        ADDED, leaving it DELETED, as in a Kubernetes watch."""
        if not (labels.requirements or fields.requirements):
            return [self.line]
        self._ensure_views()
        now_view, prev_view = self._views["now"], self._views["prev"]
        now = matches(now_view, labels, fields)
        if self.type != "MODIFIED":
            return [self.line] if now else []
        was = matches(prev_view, labels, fields) if prev_view is not None else now
        if was and not now:
            return [event_line("DELETED", self.body())]
        if now and not was:
            return [event_line("ADDED", self.body())]
        return [self.line] if now else []


def _shared(kind: str, rv: int, event_type: str, key: tuple[str, str, str], body: str,
            prev: str | None) -> SharedEvent:
    line = event_line(event_type, body)
    start = len(line) - _LINE_END - len(body.encode() if not body.isascii() else body)
    event = SharedEvent(rv, event_type, key, line, start, kind, prev if event_type == "MODIFIED" else None)
    event.cost = event.size
    return event


def _kind_of(key: tuple[str, str, str]) -> str:
    rt = REGISTRY.get((key[0], key[1]))
    return rt.kind if rt is not None else ""


class Behind(ApiError):
    """A running watch fell behind the cache (410 Expired)."""


class WatchCache:
    """Shared serialized events for every watcher of one store (see the module docstring)."""

    def __init__(self, store: Store, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_events: int = DEFAULT_MAX_EVENTS) -> None:
        self.store = store
        self.max_bytes = max_bytes
        # never more than the store keeps: a watch from a resourceVersion the store no longer holds
        # gets 410 Gone whether or not the cache read the event before the store dropped it
        self.max_events = min(max_events, store.event_window)
        self._lock = threading.Lock()  # the cached events (held briefly, also on the event loop)
        self._sync_lock = threading.Lock()  # one reader of the store's new events at a time
        self._events: deque[SharedEvent] = deque()
        #: the newest cached resourceVersion per (group, plural)
        self._latest: dict[tuple[str, str], int] = {}
        self._bytes = 0
        # every event newer than _floor and not newer than _loaded is in _events
        self._loaded = store.resource_version
        self._floor = self._loaded

    @property
    def floor(self) -> int:
        """Events newer than this resourceVersion are served from memory."""
        with self._lock:
            return self._floor

    @property
    def size_bytes(self) -> int:
        """Bytes of serialized events held now."""
        with self._lock:
            return self._bytes

    @property
    def loaded(self) -> int:
        """The newest resourceVersion the cache has read."""
        with self._lock:
            return self._loaded

    def latest(self, group: str, plural: str) -> int:
        """The newest cached resourceVersion of a change to a ``group``/``plural`` object (0: none)."""
        with self._lock:
            return self._latest.get((group, plural), 0)

    def sync(self) -> set[tuple[str, str]] | None:
        """Read the store's new events once, for everyone; the (group, plural) of the events read,
        or None when the cache started over (the store pruned events it never read). The store is
        read outside the lock of the cached events, so :meth:`cached_after` never waits for it."""
        kinds: set[tuple[str, str]] = set()
        with self._sync_lock:
            while self.store.resource_version > self._loaded:
                try:
                    rows = self.store.raw_events_since(None, None, self._loaded, limit=CATCH_UP_BATCH)
                except ApiError as exc:
                    if exc.code != 410:
                        raise
                    rows = []
                if not rows:
                    # the store pruned events the cache never read: start over from now
                    with self._lock:
                        self._events.clear()
                        self._bytes = 0
                        self._loaded = self._floor = self.store.resource_version
                        self._latest = dict.fromkeys(self._latest, self._loaded)
                    return None
                events = [_shared(_kind_of(key), rv, event_type, key, body, prev)
                          for rv, event_type, key, body, prev in rows]
                with self._lock:
                    for event in events:
                        self._events.append(event)
                        self._bytes += event.cost
                        self._loaded = event.rv
                        kind = (event.key[0], event.key[1])
                        self._latest[kind] = event.rv
                        kinds.add(kind)
                    while self._events and (self._bytes > self.max_bytes or len(self._events) > self.max_events):
                        dropped = self._events.popleft()
                        self._bytes -= dropped.cost
                        self._floor = dropped.rv
        return kinds

    def cached_after(
        self, rt: ResourceType, namespace: str | None, rv: int, labels: LabelSelector, fields: FieldSelector,
    ) -> tuple[list[bytes], int] | None:
        """Like :meth:`events_after` from memory only (no store access, fit for the event loop):
        ``None`` when the cache has nothing newer than ``rv``, ``rv`` is before the cache, or
        selectors would need a large object parsed (left to a worker thread)."""
        with self._lock:
            if rv < self._floor or self._loaded <= rv:
                return None
            selected = self._newer(rv)
            reached = self._loaded
        if (labels.requirements or fields.requirements) and any(e.costly_to_select for e in selected):
            return None
        return self._lines(selected, rt, namespace, labels, fields), reached

    def _newer(self, rv: int) -> list[SharedEvent]:
        """The cached events newer than ``rv``, newest first (lock held)."""
        selected = []
        for event in reversed(self._events):
            if event.rv <= rv:
                break
            selected.append(event)
        return selected

    @staticmethod
    def _lines(selected: list[SharedEvent], rt: ResourceType, namespace: str | None, labels: LabelSelector,
               fields: FieldSelector) -> list[bytes]:
        """The watch lines of ``selected`` (newest first) for ``rt`` in ``namespace``, oldest first."""
        key_group, key_plural = rt.group, rt.plural
        out: list[bytes] = []
        for event in reversed(selected):
            group, plural, ns = event.key
            if group != key_group or plural != key_plural or (namespace is not None and ns != namespace):
                continue
            out.extend(event.lines_for(labels, fields))
        return out

    def events_after(
        self, rt: ResourceType, namespace: str | None, rv: int, labels: LabelSelector, fields: FieldSelector,
        *, catching_up: bool,
    ) -> tuple[list[bytes], int]:
        """The watch lines for ``rt`` (``namespace`` or all) after ``rv`` and the resourceVersion
        they reach. ``catching_up`` (a watch that has not reached the cache yet) reads from the
        store when ``rv`` is before the cache; otherwise that is 410 (:class:`Behind`)."""
        self.sync()
        with self._lock:
            floor = self._floor
            if rv >= floor:
                selected = self._newer(rv)
                reached = max(rv, self._loaded)
        if rv < floor:
            if not catching_up:
                raise Behind(410, "Expired", f"too old resource version: {rv} ({floor + 1}): the watch fell "
                             "behind (the client reads too slowly); list again and watch from there")
            rows = self.store.raw_events_since(rt, namespace, rv, limit=CATCH_UP_BATCH)
            if not rows:
                return [], floor
            selected = [_shared(rt.kind, *row) for row in reversed(rows)]
            reached = rows[-1][0]
        return self._lines(selected, rt, namespace, labels, fields), reached


def gone_line(error: ApiError) -> bytes:
    """The ``ERROR`` watch event of a Status."""
    return (json.dumps({"type": "ERROR", "object": error.status()}, separators=(",", ":")) + "\n").encode()


__all__ = ["Behind", "SharedEvent", "WatchCache", "event_line", "gone_line"]
