"""Argo's ``memoize`` over ConfigMap caches in the store: :func:`lookup` a template's cached outputs
(honouring ``maxAge``) and :func:`save` a succeeded node's outputs.

A cache is a ConfigMap (labelled ``workflows.argoproj.io/configmap-type: Cache``) whose keys are
memoization keys and whose values are Argo's entries:
``{"nodeID", "outputs", "creationTimestamp", "lastHitTimestamp"}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_argo_eci.conventions import now_rfc3339
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import CONFIGMAPS
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.argo.nodes import parse_duration, parse_time
from airflow_argo_eci.local.argo.templates import SpecError

LABEL_CONFIGMAP_TYPE = "workflows.argoproj.io/configmap-type"
#: what a ConfigMap key may hold (the Kubernetes rule); Argo refuses other memoization keys
_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")


@dataclass(frozen=True)
class Memo:
    """A template's resolved ``memoize`` block."""

    key: str
    cache: str
    #: seconds an entry stays valid (None: forever)
    max_age: float | None

    def status(self, hit: bool) -> dict[str, Any]:
        """The node's ``memoizationStatus``."""
        return {"hit": hit, "key": self.key, "cacheName": self.cache}


def memo_of(memoize: Any, field: str) -> Memo:
    """The ``memoize`` block at ``field`` (substituted); :class:`SpecError` naming the field."""
    if not isinstance(memoize, dict):
        raise SpecError(f"{field} must be an object with key, cache.configMap.name and optionally maxAge")
    key = str(memoize.get("key") or "")
    if not _KEY.match(key):
        raise SpecError(f"{field}.key: invalid memoization key {key!r}: it must be a ConfigMap key "
                        "(letters, digits, '-', '_', '.'; at most 253 characters)")
    cache = str(((memoize.get("cache") or {}).get("configMap") or {}).get("name") or "")
    if not cache:
        raise SpecError(f"{field}.cache.configMap.name is required (the ConfigMap holding the cache)")
    max_age = None
    if memoize.get("maxAge") not in (None, ""):
        try:
            max_age = parse_duration(memoize["maxAge"], field=f"{field}.maxAge")
        except ValueError as exc:
            raise SpecError(f"{field}.maxAge: {exc}") from exc
    return Memo(key, cache, max_age)


def _cache(store: Store, namespace: str, name: str) -> dict[str, Any] | None:
    return store.find(CONFIGMAPS, namespace, name)


def lookup(store: Store, namespace: str, memo: Memo, now: datetime | None = None) -> dict[str, Any] | None:
    """The cached entry for ``memo`` when there is one younger than ``maxAge`` (Argo: a hit), else
    None. An entry that is not Argo's JSON counts as a miss."""
    cm = _cache(store, namespace, memo.cache)
    raw = ((cm or {}).get("data") or {}).get(memo.key)
    if raw is None:
        return None
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("outputs", {}), dict):
        return None
    if memo.max_age is not None:
        created = parse_time(entry.get("creationTimestamp"))
        now = now or datetime.now(timezone.utc)
        if created is None or (now - created).total_seconds() > memo.max_age:
            return None
    return entry


def saved_by(store: Store, namespace: str, memo: Memo) -> str | None:
    """The node id of the cache entry for ``memo`` (None: no entry)."""
    cm = _cache(store, namespace, memo.cache)
    raw = ((cm or {}).get("data") or {}).get(memo.key)
    try:
        entry = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return str(entry.get("nodeID")) if isinstance(entry, dict) else None


def save(store: Store, namespace: str, memo: Memo, node_id: str, outputs: dict[str, Any]) -> None:
    """Write ``outputs`` of the succeeded node ``node_id`` under ``memo.key`` (creating the cache
    ConfigMap, labelled as Argo labels it, when it does not exist)."""
    now = now_rfc3339()
    value = json.dumps({"nodeID": node_id, "outputs": outputs, "creationTimestamp": now, "lastHitTimestamp": now},
                       separators=(",", ":"))
    if _cache(store, namespace, memo.cache) is None:
        try:
            store.create(CONFIGMAPS, namespace, {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": memo.cache, "namespace": namespace,
                             "labels": {LABEL_CONFIGMAP_TYPE: "Cache"}},
                "data": {memo.key: value}})
            return
        except ApiError as exc:
            if exc.code != 409:  # created meanwhile: update it below
                raise

    def mutate(obj: dict[str, Any]) -> None:
        obj.setdefault("data", {})[memo.key] = value

    store.update(CONFIGMAPS, namespace, memo.cache, mutate)
