"""Kubernetes' garbage collector for the object store: an index of ``metadata.ownerReferences`` in the
store's database and the cascades a delete starts (background, foreground, orphan).

The local cluster collects synchronously, in the write transaction of the delete that starts it, so
the events a watch sees are ordered like the real collector's:

* ``Background`` (the default): when an owner is removed for good, its dependents (objects whose
  ownerReferences name its uid) are deleted, recursively; a dependent that still has another owner
  that exists only loses the references to owners that are gone.
* ``Foreground``: the owner gets ``deletionTimestamp`` and the ``foregroundDeletion`` finalizer, its
  dependents are deleted (foreground too), and the finalizer is dropped when the last dependent with
  ``blockOwnerDeletion: true`` is gone (at once when none is held by finalizers or a grace period);
  an owner without dependents is deleted as with ``Background``.
* ``Orphan``: the dependents lose their reference to the owner and stay.

Simplifications: references are matched by uid (the kind and name of a reference are used only to
find out whether another owner still exists; an owner of a kind the store does not serve counts as
existing); the ``orphan`` finalizer of old clients is not interpreted.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any, Protocol

from airflow_argo_eci.local.api.object_db import Pending
from airflow_argo_eci.local.api.resources import REGISTRY, ResourceType

#: the propagation policies of ``DeleteOptions``
BACKGROUND, FOREGROUND, ORPHAN = "Background", "Foreground", "Orphan"
PROPAGATION_POLICIES = (FOREGROUND, BACKGROUND, ORPHAN)
#: the finalizer an owner deleted in the foreground carries until its blocking dependents are gone
FOREGROUND_FINALIZER = "foregroundDeletion"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS owner_refs (
    owner_uid TEXT NOT NULL,
    "group" TEXT NOT NULL,
    plural TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    block INTEGER NOT NULL,
    PRIMARY KEY (owner_uid, "group", plural, namespace, name)
);
CREATE INDEX IF NOT EXISTS owner_refs_by_dependent ON owner_refs ("group", plural, namespace, name);
"""
#: the ``meta`` row saying the index holds every stored object (databases of older versions get filled once)
_FILLED = "owner_refs_filled"

#: (group, plural, namespace, name) of a stored object
ObjectKey = tuple[str, str, str, str]


class OwnerIndex:
    """Who owns whom: one row per ownerReference of every stored object, kept in step with the
    objects by :meth:`record` (call it for every committed change, inside its transaction)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        """Create the index table in ``conn``'s database on first use, filled from the stored objects
        (``conn`` is in autocommit mode and not used by anyone else yet)."""
        self._conn = conn
        conn.executescript(_SCHEMA)
        if conn.execute("SELECT 1 FROM meta WHERE key=?", (_FILLED,)).fetchone():
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM owner_refs")
            for group, plural, namespace, name, body in conn.execute(
                'SELECT "group", plural, namespace, name, body FROM objects'
            ).fetchall():
                self._insert((group, plural, namespace, name), json.loads(body))
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, 1)", (_FILLED,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def record(self, key: ObjectKey, obj: dict[str, Any] | None) -> None:
        """Index the ownerReferences of the object ``key`` as it is now (``obj`` None: removed)."""
        self._conn.execute('DELETE FROM owner_refs WHERE "group"=? AND plural=? AND namespace=? AND name=?', key)
        if obj is not None:
            self._insert(key, obj)

    def _insert(self, key: ObjectKey, obj: dict[str, Any]) -> None:
        for ref in owner_references(obj):
            self._conn.execute(
                'INSERT OR REPLACE INTO owner_refs (owner_uid, "group", plural, namespace, name, block) '
                "VALUES (?, ?, ?, ?, ?, ?)",
                (str(ref["uid"]), *key, 1 if ref.get("blockOwnerDeletion") is True else 0),
            )

    def dependents(self, owner_uid: str) -> list[ObjectKey]:
        """The objects with an ownerReference to ``owner_uid``, in a stable order."""
        rows = self._conn.execute(
            'SELECT "group", plural, namespace, name FROM owner_refs WHERE owner_uid=? '
            'ORDER BY "group", plural, namespace, name',
            (owner_uid,),
        ).fetchall()
        return [(str(g), str(p), str(ns), str(n)) for g, p, ns, n in rows]

    def deleting_in_foreground(self, rt: ResourceType, ns: str, name: str) -> bool:
        """Whether the stored object may carry the ``foregroundDeletion`` finalizer (a text search,
        so that removing a dependent does not parse a large owner that is not being deleted)."""
        row = self._conn.execute(
            'SELECT 1 FROM objects WHERE "group"=? AND plural=? AND namespace=? AND name=? AND instr(body, ?) > 0',
            (rt.group, rt.plural, ns, name, f'"{FOREGROUND_FINALIZER}"'),
        ).fetchone()
        return row is not None

    def blocking(self, owner_uid: str) -> int:
        """How many dependents of ``owner_uid`` have ``blockOwnerDeletion: true``."""
        row = self._conn.execute("SELECT COUNT(*) FROM owner_refs WHERE owner_uid=? AND block=1",
                                 (owner_uid,)).fetchone()
        return int(row[0]) if row else 0


class CollectingStore(Protocol):
    """What the collector needs from the store, all called with its lock held inside a transaction."""

    owners: OwnerIndex

    def _row(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any] | None: ...

    def _mark_deleted(self, rt: ResourceType, ns: str, name: str, obj: dict[str, Any],
                      pending: Pending) -> dict[str, Any]: ...

    def _write_update(self, rt: ResourceType, ns: str, name: str, old: dict[str, Any], new: dict[str, Any],
                      pending: Pending) -> dict[str, Any]: ...

    def _delete_object(self, rt: ResourceType, ns: str, name: str, obj: dict[str, Any], pending: Pending, *,
                       grace_period_seconds: int | None = None, policy: str = BACKGROUND) -> dict[str, Any]: ...


def owner_references(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The well-formed entries (objects with a uid) of ``obj``'s ``metadata.ownerReferences``."""
    refs = (obj.get("metadata") or {}).get("ownerReferences")
    if not isinstance(refs, list):
        return []
    return [ref for ref in refs if isinstance(ref, dict) and isinstance(ref.get("uid"), str) and ref["uid"]]


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    """Whether ``obj``'s ownerReferences name the owner ``uid`` (an object of the same kind and name
    made since is another owner)."""
    return any(ref["uid"] == uid for ref in owner_references(obj))


def type_of(api_version: Any, kind: Any) -> ResourceType | None:
    """The served resource type of an ownerReference's ``apiVersion`` and ``kind``, if any."""
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return None
    group = api_version.rpartition("/")[0]
    return next((rt for rt in list(REGISTRY.values()) if rt.group == group and rt.kind == kind), None)


def _type_of_key(group: str, plural: str) -> ResourceType:
    return REGISTRY.get((group, plural)) or ResourceType(group, "v1", plural, plural, True)


def _owner_of(store: CollectingStore, ref: dict[str, Any], namespace: str
              ) -> tuple[ResourceType, str, dict[str, Any]] | None:
    """The stored owner a reference of an object in ``namespace`` names: (type, namespace key, object)."""
    rt = type_of(ref.get("apiVersion"), ref.get("kind"))
    if rt is None or not isinstance(ref.get("name"), str):
        return None
    ns = namespace if rt.namespaced else ""
    obj = store._row(rt, ns, ref["name"])
    if obj is None or (obj.get("metadata") or {}).get("uid") != ref.get("uid"):
        return None
    return rt, ns, obj


def _owner_exists(store: CollectingStore, ref: dict[str, Any], namespace: str) -> bool:
    if type_of(ref.get("apiVersion"), ref.get("kind")) is None:
        return True  # a kind the store does not serve: never assume it is gone
    return _owner_of(store, ref, namespace) is not None


def _dependent_objects(store: CollectingStore, owner_uid: str
                       ) -> Iterable[tuple[ResourceType, str, str, dict[str, Any]]]:
    """The dependents of ``owner_uid`` as they are when each is reached (deleting one may have
    changed or removed a later one, so each is read just before it is yielded)."""
    for group, plural, ns, name in store.owners.dependents(owner_uid):
        rt = _type_of_key(group, plural)
        obj = store._row(rt, ns, name)
        if obj is not None:
            yield rt, ns, name, obj


def collect_dependents(store: CollectingStore, owner: dict[str, Any], pending: Pending) -> None:
    """Background collection after ``owner`` was removed: delete each dependent that has no other
    existing owner; drop the references to absent owners from those that have one."""
    uid = str((owner.get("metadata") or {}).get("uid") or "")
    if not uid:
        return
    for rt, ns, name, obj in _dependent_objects(store, uid):
        refs = (obj.get("metadata") or {}).get("ownerReferences") or []
        others = [r for r in refs if not (isinstance(r, dict) and r.get("uid") == uid)]
        kept = [r for r in others if not isinstance(r, dict) or _owner_exists(store, r, ns)]
        if any(isinstance(r, dict) and r.get("uid") for r in kept):
            _set_references(store, rt, ns, name, obj, kept, pending)
        elif not (obj.get("metadata") or {}).get("deletionTimestamp"):
            store._delete_object(rt, ns, name, obj, pending)


def orphan_dependents(store: CollectingStore, owner: dict[str, Any], pending: Pending) -> None:
    """``Orphan`` propagation: remove the references to ``owner`` from its dependents."""
    uid = str((owner.get("metadata") or {}).get("uid") or "")
    for rt, ns, name, obj in _dependent_objects(store, uid):
        refs = (obj.get("metadata") or {}).get("ownerReferences") or []
        _set_references(store, rt, ns, name, obj,
                        [r for r in refs if not (isinstance(r, dict) and r.get("uid") == uid)], pending)


def delete_dependents_first(store: CollectingStore, rt: ResourceType, ns: str, name: str, owner: dict[str, Any],
                            pending: Pending) -> dict[str, Any] | None:
    """``Foreground`` propagation: when ``owner`` has dependents, give it ``deletionTimestamp`` and
    the ``foregroundDeletion`` finalizer, delete its dependents in the foreground, and finish it
    if no blocking dependent is left. Returns the owner as it is afterwards (its last state when
    removed), or None when it has no dependents (the caller deletes it as usual)."""
    uid = str((owner.get("metadata") or {}).get("uid") or "")
    if not uid or not store.owners.dependents(uid):
        return None
    new = json.loads(json.dumps(owner))
    meta = new["metadata"]
    finalizers = list(meta.get("finalizers") or [])
    if FOREGROUND_FINALIZER not in finalizers:
        finalizers.append(FOREGROUND_FINALIZER)
    meta["finalizers"] = finalizers
    current = store._mark_deleted(rt, ns, name, new, pending)
    for dep_rt, dep_ns, dep_name, dep in _dependent_objects(store, uid):
        if not (dep.get("metadata") or {}).get("deletionTimestamp"):
            store._delete_object(dep_rt, dep_ns, dep_name, dep, pending, policy=FOREGROUND)
    return release_owner(store, rt, ns, name, pending) or current


def release_owner(store: CollectingStore, rt: ResourceType, ns: str, name: str,
                  pending: Pending) -> dict[str, Any] | None:
    """Drop the ``foregroundDeletion`` finalizer of the owner ``name`` once it has no blocking
    dependent left (the delete then completes unless other finalizers hold it). Returns the owner
    as written, or None when nothing changed."""
    owner = store._row(rt, ns, name)
    if owner is None:
        return None
    meta = owner.get("metadata") or {}
    uid = str(meta.get("uid") or "")
    if not meta.get("deletionTimestamp") or FOREGROUND_FINALIZER not in (meta.get("finalizers") or []):
        return None
    if store.owners.blocking(uid):
        return None
    new = json.loads(json.dumps(owner))
    rest = [f for f in new["metadata"]["finalizers"] if f != FOREGROUND_FINALIZER]
    if rest:
        new["metadata"]["finalizers"] = rest
    else:
        new["metadata"].pop("finalizers", None)
    return store._write_update(rt, ns, name, owner, new, pending)


def release_owners_of(store: CollectingStore, removed: dict[str, Any], namespace: str, pending: Pending) -> None:
    """After the dependent ``removed`` (in ``namespace``) is gone: finish the foreground deletion
    of each of its owners that waited only for it."""
    for ref in owner_references(removed):
        rt = type_of(ref.get("apiVersion"), ref.get("kind"))
        if rt is None or not isinstance(ref.get("name"), str):
            continue
        ns = namespace if rt.namespaced else ""
        if store.owners.deleting_in_foreground(rt, ns, ref["name"]):
            found = _owner_of(store, ref, namespace)
            if found is not None:
                release_owner(store, found[0], found[1], str(ref["name"]), pending)


def _set_references(store: CollectingStore, rt: ResourceType, ns: str, name: str, obj: dict[str, Any],
                    refs: list[Any], pending: Pending) -> None:
    new = json.loads(json.dumps(obj))
    if refs:
        new["metadata"]["ownerReferences"] = refs
    else:
        new["metadata"].pop("ownerReferences", None)
    store._write_update(rt, ns, name, obj, new, pending)
