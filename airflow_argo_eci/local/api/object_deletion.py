"""Deleting objects of the store as the API server does: finalizers (``deletionTimestamp`` until the
last one is removed), graceful deletion of running pods (:mod:`.pod_deletion`), namespaces with
their content, and the ownerReference cascades of the garbage collector (:mod:`.owner_gc`)."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

from airflow_argo_eci.conventions import now_rfc3339, rfc3339
from airflow_argo_eci.local.api import errors
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.object_db import ObjectDatabase, PeerLink, Pending
from airflow_argo_eci.local.api.object_rules import check_preconditions
from airflow_argo_eci.local.api.owner_gc import (
    BACKGROUND,
    FOREGROUND,
    ORPHAN,
    PROPAGATION_POLICIES,
    OwnerIndex,
    collect_dependents,
    delete_dependents_first,
    orphan_dependents,
    owner_references,
    release_owners_of,
)
from airflow_argo_eci.local.api.pod_deletion import GraceTimer, deletes_gracefully, grace_period, parse_time, waiting
from airflow_argo_eci.local.api.resources import NAMESPACES, PODS, REGISTRY, ResourceType


def check_propagation_policy(policy: str | None) -> None:
    """422 for a ``DeleteOptions.propagationPolicy`` other than Foreground, Background, Orphan."""
    if policy is not None and policy not in PROPAGATION_POLICIES:
        supported = ", ".join(f'"{p}"' for p in (*PROPAGATION_POLICIES, "nil"))
        raise errors.invalid("DeleteOptions", "meta.k8s.io", "", [{
            "reason": "FieldValueNotSupported", "field": "propagationPolicy",
            "message": f'Unsupported value: "{policy[:80]}": supported values: {supported}'}])


class ObjectDeletion(ObjectDatabase):
    """The delete operations of :class:`~.store.Store` and what they start (see the module docstring)."""

    def __init__(self, db_path: str | Path, *, event_window: int = 10_000, peer: PeerLink | None = None) -> None:
        """Open the database, the ownerReference index, and resume the grace periods of pods that
        were being deleted when the store was last closed."""
        super().__init__(db_path, event_window=event_window, peer=peer)
        self.owners = OwnerIndex(self._conn)
        self._grace = GraceTimer(self._expire_grace)
        with self._lock:
            rows = self._conn.execute(
                "SELECT namespace, name, body FROM objects WHERE \"group\"=? AND plural=? "
                "AND instr(body, '\"deletionGracePeriodSeconds\"') > 0",
                (PODS.group, PODS.plural),
            ).fetchall()
        for ns, name, body in rows:
            meta = json.loads(body).get("metadata") or {}
            if waiting(meta):
                due = parse_time(meta.get("deletionTimestamp"))
                self._grace.schedule(PODS, ns, name, str(meta.get("uid", "")), due if due is not None else time.time())

    def close(self) -> None:
        """Stop the grace-period timer, then close the database."""
        self._grace.close()
        super().close()

    def _write_update(self, rt: ResourceType, ns: str, name: str, old: dict[str, Any], new: dict[str, Any],
                      pending: Pending, prev_body: str | None = None) -> dict[str, Any]:
        """Store ``new`` as the successor of ``old`` (the store's rule, :meth:`.Store._write_update`)."""
        raise NotImplementedError

    def _commit(self, rt: ResourceType, ns: str, name: str, event_type: str, obj: dict[str, Any],
                prev: dict[str, Any] | None, pending: Pending, prev_body: str | None = None) -> dict[str, Any]:
        """Write one change (see :meth:`.ObjectDatabase._commit`), keep the ownerReference index in
        step, and collect: a removed object's dependents go (background), an owner deleted in the
        foreground that waited only for it finishes."""
        out = super()._commit(rt, ns, name, event_type, obj, prev, pending, prev_body)
        key = (rt.group, rt.plural, ns, name)
        if event_type == "DELETED":
            self.owners.record(key, None)
            collect_dependents(self, out, pending)
            release_owners_of(self, out, ns, pending)
        elif prev is None or owner_references(prev) != owner_references(out):
            self.owners.record(key, out)
        return out

    def _remove(self, rt: ResourceType, ns: str, name: str, obj: dict[str, Any], pending: Pending) -> dict[str, Any]:
        """Delete ``obj`` for good (lock held, in a transaction); a terminating namespace whose last
        object this was goes too."""
        meta = obj["metadata"]
        meta.setdefault("deletionTimestamp", now_rfc3339())
        gone = self._commit(rt, ns, name, "DELETED", obj, None, pending)
        if rt.namespaced and ns:
            owner = self._row(NAMESPACES, "", ns)
            if owner is not None and owner["metadata"].get("deletionTimestamp") and not self._conn.execute(
                "SELECT 1 FROM objects WHERE namespace=? LIMIT 1", (ns,)
            ).fetchone():
                self._commit(NAMESPACES, "", ns, "DELETED", owner, None, pending)
        return gone

    def _mark_deleted(self, rt: ResourceType, ns: str, name: str, obj: dict[str, Any],
                      pending: Pending) -> dict[str, Any]:
        """Set ``deletionTimestamp`` on an object that has finalizers (a namespace: that holds such
        objects; it shows ``Terminating``), once; lock held."""
        prev = copy.deepcopy(obj)
        meta = obj["metadata"]
        meta.setdefault("deletionTimestamp", now_rfc3339())
        meta["deletionGracePeriodSeconds"] = 0
        if rt.key == NAMESPACES.key:
            obj.setdefault("status", {})["phase"] = "Terminating"
        if obj == prev:
            return obj
        return self._commit(rt, ns, name, "MODIFIED", obj, prev, pending)

    def _mark_graceful(self, rt: ResourceType, ns: str, name: str, obj: dict[str, Any], grace: int,
                       pending: Pending) -> dict[str, Any]:
        """Start (or shorten) the grace period of a running pod: ``deletionTimestamp`` is when it
        ends, as in Kubernetes; the timer ends it if the pod's process does not end first."""
        prev = copy.deepcopy(obj)
        at = time.time() + grace
        meta = obj["metadata"]
        meta["deletionTimestamp"] = rfc3339(at)
        meta["deletionGracePeriodSeconds"] = grace
        out = self._commit(rt, ns, name, "MODIFIED", obj, prev, pending)
        self._grace.schedule(rt, ns, name, str(meta.get("uid", "")), at)
        return out

    def _delete_object(self, rt: ResourceType, ns: str, name: str, obj: dict[str, Any], pending: Pending, *,
                       grace_period_seconds: int | None = None, policy: str = BACKGROUND) -> dict[str, Any]:
        """Delete the stored ``obj`` (lock held, in a transaction): returns it removed, or as it
        stays while finalizers, a grace period or foreground dependents hold it."""
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            # being deleted already: a shorter grace period takes over (0: now), else nothing changes
            if waiting(meta) and grace_period_seconds is not None and \
                    grace_period_seconds < int(meta["deletionGracePeriodSeconds"]):
                if grace_period_seconds == 0:
                    meta["deletionGracePeriodSeconds"] = 0
                    return self._remove(rt, ns, name, obj, pending)
                return self._mark_graceful(rt, ns, name, obj, grace_period_seconds, pending)
            return obj
        if policy == ORPHAN:
            orphan_dependents(self, obj, pending)
        elif policy == FOREGROUND:
            held = delete_dependents_first(self, rt, ns, name, obj, pending)
            if held is not None:
                return held
        if meta.get("finalizers"):
            return self._mark_deleted(rt, ns, name, obj, pending)
        if rt.key == PODS.key:
            grace = grace_period(obj, grace_period_seconds)
            if deletes_gracefully(rt, obj, grace):
                return self._mark_graceful(rt, ns, name, obj, grace, pending)
        gone = copy.deepcopy(obj)
        gone["metadata"]["deletionTimestamp"] = now_rfc3339()
        if grace_period_seconds is not None:
            gone["metadata"]["deletionGracePeriodSeconds"] = grace_period_seconds
        return self._remove(rt, ns, name, gone, pending)

    def _expire_grace(self, rt: ResourceType, ns: str, name: str, uid: str) -> None:
        """The grace period of a pod being deleted has passed: remove it (finalizers: they hold it,
        its grace period becomes 0), as the kubelet's final delete does."""
        def work(pending: Pending) -> dict[str, Any]:
            obj = self._row(rt, ns, name)
            if obj is None or obj["metadata"].get("uid") != uid or not waiting(obj["metadata"]):
                return {}
            due = parse_time(obj["metadata"].get("deletionTimestamp"))
            if due is not None and due > time.time() + 1:
                return {}  # a later period (the object was deleted again); its own entry ends it
            prev = copy.deepcopy(obj)
            obj["metadata"]["deletionGracePeriodSeconds"] = 0
            if obj["metadata"].get("finalizers"):
                return self._commit(rt, ns, name, "MODIFIED", obj, prev, pending)
            return self._remove(rt, ns, name, obj, pending)

        self._transaction(work)

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        preconditions: dict[str, str] | None = None,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
    ) -> dict[str, Any]:
        """Delete and return the deleted object; 404 NotFound. Deleting a Namespace deletes its objects.

        An object with ``metadata.finalizers`` is not removed: it gets ``deletionTimestamp`` (and
        ``deletionGracePeriodSeconds`` 0) and stays, returned as it is now, until an update removes
        its last finalizer; deleting it again changes nothing. A namespace holding such objects
        stays ``Terminating`` until they are gone.

        A Running pod without finalizers is deleted gracefully: it gets ``deletionTimestamp`` (when
        the grace period ends) and ``deletionGracePeriodSeconds`` (``grace_period_seconds``, else
        its ``spec.terminationGracePeriodSeconds``, else 30) and stays until a write gives it a
        final phase (the runtime killed its processes) or the period has passed; 0 deletes it at
        once, and so does a shorter period given while it waits. Other objects (and pods that are
        not Running) go at once, with ``grace_period_seconds`` recorded as their
        ``deletionGracePeriodSeconds``.

        ``propagation_policy`` (``DeleteOptions.propagationPolicy``, default ``Background``) says
        what happens to the objects whose ownerReferences name this one (:mod:`.owner_gc`); any
        other value is 422. ``preconditions`` (``DeleteOptions.preconditions``: ``resourceVersion``
        and/or ``uid``) that do not hold give 409 Conflict. The ``default`` namespace cannot be
        deleted (403 Forbidden).
        """
        ns = self._ns_key(rt, namespace)
        assert ns is not None
        check_propagation_policy(propagation_policy)
        is_namespace = rt.key == NAMESPACES.key
        if is_namespace and name == "default":
            raise ApiError(
                403, "Forbidden", 'namespaces "default" is forbidden: this namespace may not be deleted',
                name=name, kind="namespaces",
            )

        def work(pending: Pending) -> dict[str, Any]:
            old = self._get_row(rt, ns, name)
            if preconditions:
                check_preconditions(rt, name, old, preconditions)
            if not is_namespace:
                return self._delete_object(rt, ns, name, old, pending, grace_period_seconds=grace_period_seconds,
                                           policy=propagation_policy or BACKGROUND)
            finalized = False
            rows = self._conn.execute(
                'SELECT "group", plural, name FROM objects WHERE namespace=? ORDER BY "group", plural, name',
                (name,),
            ).fetchall()
            for group, plural, child_name in rows:
                child_rt = REGISTRY.get((group, plural)) or ResourceType(group, "v1", plural, plural, True)
                child = self._row(child_rt, name, child_name)  # the collector may have taken it already
                if child is None:
                    continue
                if child["metadata"].get("finalizers"):
                    finalized = True
                    self._mark_deleted(child_rt, name, child_name, child, pending)
                else:  # a running pod in its grace period too: the namespace takes it now
                    self._commit(child_rt, name, child_name, "DELETED", child, None, pending)
            if old["metadata"].get("finalizers") or finalized:
                return self._mark_deleted(rt, ns, name, old, pending)
            gone_obj = copy.deepcopy(old)
            gone_obj["metadata"]["deletionTimestamp"] = now_rfc3339()
            if grace_period_seconds is not None:
                gone_obj["metadata"]["deletionGracePeriodSeconds"] = grace_period_seconds
            return self._commit(rt, ns, name, "DELETED", gone_obj, None, pending)

        return self._transaction(work)
