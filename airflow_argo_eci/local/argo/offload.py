"""Argo's offloaded node status (``persistence.nodeStatusOffLoad``) on the local cluster: the
repository of offloaded node maps in a table of the cluster's SQLite database, keyed by
``(workflow uid, version)`` as Argo's ``offload_node_status_repo`` keys its SQL table, with its
TTL for versions no longer live, and the controller ConfigMap setting that turns it on.

Semantics follow Argo (``workflow/hydrator``, ``persist/sqldb/offload_node_status_repo.go``):
a save never replaces a row (the version is the FNV-1 32-bit hash of the nodes' JSON, ``fnv:<n>``,
so the same nodes give the same row); old versions are kept until they are older than the TTL
(``OFFLOAD_NODE_STATUS_TTL``, default 5 minutes) and not the workflow's live version, because a
workflow write that lost a conflict still points at its previous version. Unlike Argo, whose
periodic GC removes a deleted workflow's rows only once they are past the TTL, the local
controller deletes them as soon as the workflow is deleted (after its deletion-time artifact GC
has read them).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from airflow_argo_eci.errors import ArgoEciError

#: Argo's environment variable that offloads every status, large or not (for tests)
ALWAYS_OFFLOAD_ENV = "ALWAYS_OFFLOAD_NODE_STATUS"
#: Argo's environment variable for the age at which a version that is not live may be deleted
OFFLOAD_TTL_ENV = "OFFLOAD_NODE_STATUS_TTL"
#: Argo's default ``OFFLOAD_NODE_STATUS_TTL``
DEFAULT_OFFLOAD_TTL = 300.0
#: the controller ConfigMap key holding Argo's ``PersistConfig`` (YAML)
PERSISTENCE_KEY = "persistence"
#: Argo's ``ErrOffloadNotSupported`` (offloading asked for while ``nodeStatusOffLoad`` is off)
OFFLOAD_NOT_SUPPORTED = "offload node status is not supported"

_TABLE = "argo_workflows_offloaded_nodes"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {_TABLE} (
    uid TEXT NOT NULL,
    version TEXT NOT NULL,
    namespace TEXT NOT NULL,
    nodes TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (uid, version)
);
CREATE INDEX IF NOT EXISTS {_TABLE}_by_age ON {_TABLE} (updated_at);
"""
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class OffloadedNodesMissing(ArgoEciError):
    """The repository has no nodes for a workflow's ``(uid, offloadNodeStatusVersion)``."""


def always_offload_from_env() -> bool:
    """Argo's ``ALWAYS_OFFLOAD_NODE_STATUS=true``."""
    return os.environ.get(ALWAYS_OFFLOAD_ENV) == "true"


def offload_ttl_from_env() -> float:
    """``OFFLOAD_NODE_STATUS_TTL`` in seconds (a Go-style duration such as ``5m``, ``30s``), else 300."""
    match = _DURATION.match(os.environ.get(OFFLOAD_TTL_ENV, ""))
    if match is None:
        return DEFAULT_OFFLOAD_TTL
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def node_status_offload_enabled(configmap: Mapping[str, Any] | None) -> bool:
    """Whether the controller ConfigMap's ``persistence`` YAML sets ``nodeStatusOffLoad: true``
    (Argo's ``PersistConfig.NodeStatusOffload``); a missing or unreadable key means off."""
    data = (configmap or {}).get("data") or {}
    text = data.get(PERSISTENCE_KEY) if isinstance(data, Mapping) else None
    if not isinstance(text, str):
        return False
    try:
        persistence = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return isinstance(persistence, dict) and persistence.get("nodeStatusOffLoad") is True


def _fnv1_32(data: bytes) -> int:
    """The 32-bit FNV-1 hash (Go's ``hash/fnv`` ``New32``, multiply then xor) of ``data``."""
    value = 0x811C9DC5
    for byte in data:
        value = (value * 0x01000193) & 0xFFFFFFFF
        value ^= byte
    return value


def node_status_version(nodes: Mapping[str, Any]) -> tuple[str, str]:
    """``(the nodes' JSON, version)``: the version is ``fnv:<FNV-1 32 of that JSON>``, as Argo's
    ``nodeStatusVersion`` names it (keys sorted, so equal node maps give equal versions)."""
    text = json.dumps(nodes, separators=(",", ":"), sort_keys=True)
    return text, f"fnv:{_fnv1_32(text.encode())}"


class OffloadRepository:
    """Offloaded node maps in the table ``argo_workflows_offloaded_nodes`` of the SQLite database
    ``db_path`` (the cluster's object database): its own connection, thread-safe, created lazily."""

    def __init__(self, db_path: str | Path, *, ttl: float | None = None) -> None:
        self.db_path = Path(db_path)
        #: seconds after which a version that is not live may be deleted
        self.ttl = offload_ttl_from_env() if ttl is None else ttl
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(str(self.db_path), check_same_thread=False, isolation_level=None, timeout=30)
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        """Close the connection (reopened on next use)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def save(self, uid: str, namespace: str, nodes: Mapping[str, Any]) -> str:
        """Store ``nodes`` under ``(uid, version)`` and return the version; saving the same nodes
        again keeps the existing row (Argo ignores the duplicate key)."""
        if not uid:
            raise ArgoEciError("cannot offload the nodes of a workflow without a uid")
        text, version = node_status_version(nodes)
        with self._lock:
            self._db().execute(
                f"INSERT OR IGNORE INTO {_TABLE} (uid, version, namespace, nodes, updated_at) VALUES (?, ?, ?, ?, ?)",
                (uid, version, namespace, text, time.time()))
        return version

    def get(self, uid: str, version: str) -> dict[str, Any]:
        """The nodes saved under ``(uid, version)``; :class:`OffloadedNodesMissing` when there are none."""
        with self._lock:
            row = self._db().execute(f"SELECT nodes FROM {_TABLE} WHERE uid=? AND version=?",
                                     (uid, version)).fetchone()
        if row is None:
            raise OffloadedNodesMissing(f"no offloaded nodes for workflow uid {uid} version {version}")
        nodes = json.loads(row[0])
        return nodes if isinstance(nodes, dict) else {}

    def list_offloads(self, namespace: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
        """Every saved node map, by ``(uid, version)``, of ``namespace`` (all namespaces: None)."""
        query = f"SELECT uid, version, nodes FROM {_TABLE}"
        args: tuple[str, ...] = ()
        if namespace:
            query += " WHERE namespace=?"
            args = (namespace,)
        with self._lock:
            rows = self._db().execute(query, args).fetchall()
        return {(uid, version): json.loads(text) for uid, version, text in rows}

    def versions(self, uid: str) -> list[str]:
        """The versions saved for ``uid``, oldest first."""
        with self._lock:
            rows = self._db().execute(f"SELECT version FROM {_TABLE} WHERE uid=? ORDER BY updated_at",
                                      (uid,)).fetchall()
        return [row[0] for row in rows]

    def old_offloads(self, now: float | None = None) -> dict[str, list[str]]:
        """``{uid: [versions]}`` saved more than :attr:`ttl` seconds ago (Argo's ``ListOldOffloads``)."""
        cutoff = (time.time() if now is None else now) - self.ttl
        with self._lock:
            rows = self._db().execute(f"SELECT uid, version FROM {_TABLE} WHERE updated_at < ?", (cutoff,)).fetchall()
        old: dict[str, list[str]] = {}
        for uid, version in rows:
            old.setdefault(uid, []).append(version)
        return old

    def delete(self, uid: str, version: str = "") -> int:
        """Delete the row ``(uid, version)``, or every row of ``uid`` without a version; returns how many."""
        if not uid:
            raise ArgoEciError("invalid uid")
        with self._lock:
            if version:
                cur = self._db().execute(f"DELETE FROM {_TABLE} WHERE uid=? AND version=?", (uid, version))
            else:
                cur = self._db().execute(f"DELETE FROM {_TABLE} WHERE uid=?", (uid,))
        return cur.rowcount

    def delete_old_versions(self, uid: str, live: str, now: float | None = None) -> int:
        """Delete the versions of ``uid`` older than :attr:`ttl` except ``live``; returns how many."""
        cutoff = (time.time() if now is None else now) - self.ttl
        with self._lock:
            cur = self._db().execute(f"DELETE FROM {_TABLE} WHERE uid=? AND version<>? AND updated_at < ?",
                                     (uid, live, cutoff))
        return cur.rowcount

    def hydrate(self, wf: dict[str, Any]) -> dict[str, Any]:
        """Put the offloaded nodes of ``wf`` back into its status in place (Argo's ``Hydrate``:
        ``status.nodes`` set, ``offloadNodeStatusVersion`` cleared) and return it; a workflow that
        is not offloaded is returned unchanged."""
        status = wf.get("status")
        version = status.get("offloadNodeStatusVersion") if isinstance(status, dict) else None
        if not version:
            return wf
        assert isinstance(status, dict)
        status["nodes"] = self.get(str((wf.get("metadata") or {}).get("uid") or ""), str(version))
        status.pop("compressedNodes", None)
        status.pop("offloadNodeStatusVersion", None)
        return wf


class NodeStatusOffloading:
    """The controller's node status offloading: whether the controller ConfigMap turns it on
    (:attr:`enabled`), Argo's always-offload switch (:attr:`always`, ``ALWAYS_OFFLOAD_NODE_STATUS``
    by default) and the :class:`OffloadRepository` on the cluster's database ``db_path``."""

    def __init__(self, db_path: str | Path, *, always: bool | None = None) -> None:
        #: ``persistence.nodeStatusOffLoad`` of the controller ConfigMap
        self.enabled = False
        #: offload every status, not only those too large even compressed
        self.always = always_offload_from_env() if always is None else always
        self.repository = OffloadRepository(db_path)

    def configure(self, configmap: Mapping[str, Any] | None) -> None:
        """Read :attr:`enabled` from the controller ConfigMap (None: it does not exist)."""
        self.enabled = node_status_offload_enabled(configmap)

    def offloader(self, uid: str, namespace: str) -> Any:
        """The ``offload`` callable :func:`~.packing.pack_status` takes for workflow ``uid``, or
        None when offloading is off. Saving a version also deletes the workflow's versions past
        the TTL other than the new one (Argo's periodic GC of old offloads)."""
        if not self.enabled:
            return None
        repository = self.repository

        def save(nodes: dict[str, Any]) -> str:
            version = repository.save(uid, namespace, nodes)
            repository.delete_old_versions(uid, version)
            return version

        return save

    def forget(self, workflow: Mapping[str, Any]) -> int:
        """Delete every offloaded version of a deleted ``workflow`` (when offloading is on or the
        workflow was offloaded); returns how many rows went."""
        meta = workflow.get("metadata") or {}
        status = workflow.get("status") or {}
        uid = str(meta.get("uid") or "")
        if not uid or not (self.enabled or (isinstance(status, Mapping) and status.get("offloadNodeStatusVersion"))):
            return 0
        return self.repository.delete(uid)

    def sweep(self, live_uids: set[str]) -> int:
        """Delete the versions past the TTL of workflows that no longer exist (Argo's GC of a
        missing workflow's offloads; run when the controller starts); returns how many rows went."""
        deleted = 0
        for uid in self.repository.old_offloads():
            if uid not in live_uids:
                deleted += self.repository.delete(uid)
        return deleted
