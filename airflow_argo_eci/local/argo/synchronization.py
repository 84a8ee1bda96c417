"""Argo's ``synchronization`` (mutexes and ConfigMap-backed semaphores) over the store: who holds a
lock, who waits, and whether a workflow or node may take it now.

The locks keep no state of their own: a lock's holders are the ``status.synchronization`` holding
entries of the workflows that are not completed, so a lock held by a workflow that ends or is
deleted is free on the next pass (as Argo releases it). Waiters queue by workflow ``priority``
(higher first), then creation time, as Argo's priority queue orders them. Lock names follow Argo:
``<namespace>/Mutex/<name>`` and ``<namespace>/ConfigMap/<configmap>/<key>``; the waiting message
is Argo's ``Waiting for <lock> lock. Lock status: <free>/<limit>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_argo_eci.conventions import LABEL_COMPLETED
from airflow_argo_eci.local.api.resources import CONFIGMAPS, WORKFLOWS
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.argo.templates import SpecError

#: ``status.synchronization`` sections and the field naming the lock in their entries
SECTIONS = {"mutex": "mutex", "semaphore": "semaphore"}


@dataclass(frozen=True)
class Lock:
    """One lock a workflow or template asks for."""

    #: ``mutex`` or ``semaphore`` (the ``status.synchronization`` section)
    kind: str
    #: Argo's lock name, e.g. ``argo/Mutex/welcome`` or ``argo/ConfigMap/my-config/workflow``
    key: str
    limit: int


def locks_of(store: Store, namespace: str, sync: Any, field: str) -> list[Lock]:
    """The locks ``sync`` (a ``synchronization`` object at ``field``) asks for, in order;
    :class:`SpecError` naming the field for what cannot be a lock here."""
    if not isinstance(sync, dict):
        raise SpecError(f"{field} must be an object with mutex/mutexes or semaphore/semaphores")
    locks: list[Lock] = []
    single = "mutex" in sync and sync["mutex"] is not None
    mutexes = ([sync["mutex"]] if single else []) + list(sync.get("mutexes") or [])
    for i, mutex in enumerate(mutexes):
        where = f"{field}.mutex" if single and i == 0 else f"{field}.mutexes[{i - single}]"
        if not isinstance(mutex, dict) or not mutex.get("name"):
            raise SpecError(f"{where}.name is required (the mutex's name)")
        _no_database(mutex, where)
        locks.append(Lock("mutex", f"{mutex.get('namespace') or namespace}/Mutex/{mutex['name']}", 1))
    single = "semaphore" in sync and sync["semaphore"] is not None
    semaphores = ([sync["semaphore"]] if single else []) + list(sync.get("semaphores") or [])
    for i, sem in enumerate(semaphores):
        where = f"{field}.semaphore" if single and i == 0 else f"{field}.semaphores[{i - single}]"
        if not isinstance(sem, dict):
            raise SpecError(f"{where} must be an object with configMapKeyRef")
        _no_database(sem, where)
        ref = sem.get("configMapKeyRef")
        if not isinstance(ref, dict) or not ref.get("name") or not ref.get("key"):
            raise SpecError(f"{where}.configMapKeyRef with name and key is required (the ConfigMap key "
                            "holding the semaphore's limit)")
        ns = str(sem.get("namespace") or namespace)
        key = f"{ns}/ConfigMap/{ref['name']}/{ref['key']}"
        locks.append(Lock("semaphore", key, _semaphore_limit(store, ns, ref, f"{where}.configMapKeyRef")))
    if not locks:
        raise SpecError(f"{field} names no lock: set mutex (name) or semaphore (configMapKeyRef)")
    return locks


def _no_database(spec: dict[str, Any], where: str) -> None:
    if spec.get("database"):
        raise SpecError(f"{where}.database: database-backed locks need Argo's synchronization database, which "
                        "the local cluster does not have; drop `database: true` to use a local lock")


def _semaphore_limit(store: Store, namespace: str, ref: dict[str, Any], where: str) -> int:
    name, key = str(ref["name"]), str(ref["key"])
    cm = store.find(CONFIGMAPS, namespace, name)
    if cm is None:
        raise SpecError(f"{where}: failed to get semaphore limit: ConfigMap '{name}' does not exist in "
                        f"namespace {namespace}")
    data = cm.get("data") or {}
    if key not in data:
        raise SpecError(f"{where}: failed to get semaphore limit: ConfigMap '{name}' does not have the key "
                        f"'{key}' (keys: {', '.join(sorted(data)) or 'none'})")
    try:
        limit = int(str(data[key]).strip())
    except ValueError as exc:
        raise SpecError(f"{where}: ConfigMap '{name}' key '{key}' must hold the semaphore's limit as an integer, "
                        f"not {str(data[key])[:40]!r}") from exc
    if limit < 0:
        raise SpecError(f"{where}: ConfigMap '{name}' key '{key}': the semaphore's limit must not be negative")
    return limit


def _entry_holders(section: str, entry: dict[str, Any]) -> list[str]:
    if section == "mutex":
        return [str(entry["holder"])] if entry.get("holder") else []
    return [str(h) for h in entry.get("holders") or []]


@dataclass
class LockTable:
    """Holders and waiters of every lock, read from the incomplete workflows of the store."""

    #: lock key -> ["<namespace>/<workflow>" or "<namespace>/<workflow>/<node id>", ...]
    holders: dict[str, list[str]]
    #: lock key -> [(-priority, creationTimestamp, "<namespace>/<workflow>"), ...] sorted
    waiters: dict[str, list[tuple[int, str, str]]]

    @classmethod
    def read(cls, store: Store) -> LockTable:
        """The table as the store holds it now (completed and deleted workflows hold nothing)."""
        items, _, _ = store.list(WORKFLOWS, None, label_selector=f"{LABEL_COMPLETED}!=true")
        holders: dict[str, list[str]] = {}
        waiters: dict[str, list[tuple[int, str, str]]] = {}
        for wf in items:
            meta = wf.get("metadata") or {}
            wf_key = f"{meta.get('namespace', 'default')}/{meta.get('name')}"
            sync = ((wf.get("status") or {}).get("synchronization")) or {}
            priority = priority_of(wf.get("spec") or {})
            for section, field in SECTIONS.items():
                part = sync.get(section) or {}
                for entry in part.get("holding") or []:
                    for holder in _entry_holders(section, entry):
                        who = wf_key if holder == meta.get("name") else f"{wf_key}/{holder}"
                        holders.setdefault(str(entry.get(field)), []).append(who)
                for entry in part.get("waiting") or []:
                    waiters.setdefault(str(entry.get(field)), []).append(
                        (-priority, str(meta.get("creationTimestamp", "")), wf_key))
        for queue in waiters.values():
            queue.sort()
        return cls(holders, waiters)

    def may_take(self, lock: Lock, who: str, wf_key: str, priority: int, created: str) -> bool:
        """Whether ``who`` (a workflow or node key of workflow ``wf_key``) may take ``lock`` now: it
        holds it already, or a slot is free and no waiter queued before it is still waiting."""
        held = self.holders.get(lock.key, [])
        if who in held:
            return True
        free = lock.limit - len(held)
        if free <= 0:
            return False
        me = (-priority, created, wf_key)
        ahead = {w for w in self.waiters.get(lock.key, []) if w < me and w[2] != wf_key}
        return len(ahead) < free

    def take(self, lock: Lock, who: str) -> None:
        """Count ``who`` among the holders of ``lock`` for the rest of the pass."""
        held = self.holders.setdefault(lock.key, [])
        if who not in held:
            held.append(who)

    def waiting_message(self, lock: Lock) -> str:
        """Argo's message for a holder that waits for ``lock``."""
        free = max(0, lock.limit - len(self.holders.get(lock.key, [])))
        return f"Waiting for {lock.key} lock. Lock status: {free}/{lock.limit}"


def priority_of(spec: dict[str, Any]) -> int:
    """The workflow's ``spec.priority`` (0 when unset or not a number)."""
    try:
        return int(spec.get("priority") or 0)
    except (TypeError, ValueError):
        return 0


def record(status: dict[str, Any], lock: Lock, holder: str, *, holding: bool, current: list[str]) -> None:
    """Record in ``status.synchronization`` that ``holder`` (the workflow's name or a node id) holds
    ``lock`` (``holding``) or waits for it; ``current`` names the lock's holders for a waiting entry
    (Argo's ``waiting[].holder`` / ``holders``)."""
    field = SECTIONS[lock.kind]
    part = status.setdefault("synchronization", {}).setdefault(lock.kind, {})
    waiting = [e for e in part.get("waiting") or [] if e.get(field) != lock.key]
    if holding:
        held = part.setdefault("holding", [])
        entry = next((e for e in held if e.get(field) == lock.key), None)
        if lock.kind == "mutex":
            if entry is None:
                held.append({"mutex": lock.key, "holder": holder})
        elif entry is None:
            held.append({"semaphore": lock.key, "holders": [holder]})
        elif holder not in entry.setdefault("holders", []):
            entry["holders"].append(holder)
    elif lock.kind == "mutex":
        waiting.append({"mutex": lock.key, "holder": current[0] if current else ""})
    else:
        waiting.append({"semaphore": lock.key, "holders": list(current)})
    if waiting:
        part["waiting"] = waiting
    else:
        part.pop("waiting", None)


def release(status: dict[str, Any], holder: str | None = None) -> None:
    """Drop from ``status.synchronization`` what ``holder`` holds or waits for (None: everything,
    as a workflow that ends releases all its locks); empty sections go."""
    sync = status.get("synchronization")
    if not isinstance(sync, dict):
        return
    for section in SECTIONS:
        part = sync.get(section)
        if not isinstance(part, dict):
            continue
        if holder is None:
            part.pop("holding", None)
            part.pop("waiting", None)
        else:
            kept = []
            for entry in part.get("holding") or []:
                if section == "mutex":
                    if entry.get("holder") != holder:
                        kept.append(entry)
                else:
                    rest = [h for h in entry.get("holders") or [] if h != holder]
                    if rest:
                        kept.append({**entry, "holders": rest})
            if kept:
                part["holding"] = kept
            else:
                part.pop("holding", None)
        if not part:
            sync.pop(section)
    if not sync:
        status.pop("synchronization", None)
