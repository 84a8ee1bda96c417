"""A runtime's cache on this machine: where it lives under the state directory, its tiered store's
first level (medium, quota, watermarks) and replicas, what it holds, the reads counted against it,
and the ``cacheStates`` Fluid reports from all of that."""

from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_argo_eci.local.fluid.units import SpecFieldError, bytes_size, percentage, quantity_bytes
from airflow_argo_eci.local.paths import StatePaths, safe_component

#: the read counters of a dataset, beside its cache
READS_FILE = "reads.json"
#: the uid of the dataset the cache was filled for
OWNER_FILE = "owner"


@dataclass(frozen=True)
class TieredStore:
    """The runtime's first tiered-store level and replicas: ``capacity`` is ``quota * replicas``
    (Fluid's ``cacheCapacity``), None when the level sets no quota."""

    medium: str
    quota: int | None
    replicas: int
    high: str
    low: str

    @property
    def capacity(self) -> int | None:
        return None if self.quota is None else self.quota * self.replicas


def tiered_store(runtime: dict[str, Any]) -> TieredStore:
    """Read ``spec.replicas`` and ``spec.tieredstore.levels[0]`` (``mediumtype``, ``quota`` or the
    first of ``quotaList``, ``high``, ``low``); :class:`SpecFieldError` names a bad field."""
    spec = runtime.get("spec") or {}
    replicas = spec.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 0 <= replicas <= 1000:
        raise SpecFieldError(f"spec.replicas: {replicas!r} must be a whole number between 0 and 1000")
    levels = (spec.get("tieredstore") or {}).get("levels") or []
    if not isinstance(levels, list):
        raise SpecFieldError("spec.tieredstore.levels must be a list")
    level = levels[0] if levels else {}
    if not isinstance(level, dict):
        raise SpecFieldError("spec.tieredstore.levels[0] must be an object")
    raw_quota = level.get("quota")
    if raw_quota is None and level.get("quotaList"):
        raw_quota = str(level["quotaList"]).split(",")[0]
    quota = None if raw_quota is None else quantity_bytes(raw_quota, "spec.tieredstore.levels[0].quota")
    medium = str(level.get("mediumtype") or "MEM")
    if medium not in ("MEM", "SSD", "HDD"):
        raise SpecFieldError(f"spec.tieredstore.levels[0].mediumtype: {medium!r} is not one of MEM, SSD, HDD")
    return TieredStore(medium, quota, replicas, str(level.get("high", "0.99")), str(level.get("low", "0.95")))


class DatasetCache:
    """The cache and read counters of one dataset (its runtime bears its name):
    ``<state>/fluid/<namespace>/<name>/``: ``cache/`` (the dataset's files, at their dataset
    paths), ``ufs/`` (the last copy read from the store for a pod), ``views/`` (what pods mount)."""

    _locks: dict[Path, threading.Lock] = {}
    _locks_guard = threading.Lock()

    def __init__(self, paths: StatePaths, namespace: str, name: str) -> None:
        self.root = paths.root / "fluid" / safe_component(namespace, "namespace") / safe_component(name, "dataset")
        self.cache_dir = self.root / "cache"
        self.ufs_dir = self.root / "ufs"
        self.views_dir = self.root / "views"
        with self._locks_guard:
            self.lock = self._locks.setdefault(self.root, threading.Lock())

    def cached_path(self, dataset_path: str) -> Path:
        """Where the dataset file ``dataset_path`` lives in the cache."""
        return self.cache_dir / dataset_path.lstrip("/")

    def is_cached(self, dataset_path: str, size: int) -> bool:
        """Whether the cache holds the whole file."""
        try:
            return self.cached_path(dataset_path).stat().st_size == size
        except OSError:
            return False

    def cached_bytes(self) -> int:
        """The bytes of the files the cache holds (partial files left out)."""
        total = 0
        for current, _dirs, files in os.walk(self.cache_dir):
            for name in files:
                if not name.endswith(".partial"):
                    try:
                        total += os.lstat(os.path.join(current, name)).st_size
                    except OSError:
                        continue
        return total

    def reads(self) -> dict[str, int]:
        """The bytes pods read from the cache (``local``) and from the store (``ufs``)."""
        try:
            data = json.loads((self.root / READS_FILE).read_text())
            return {"local": int(data.get("local", 0)), "ufs": int(data.get("ufs", 0))}
        except (OSError, ValueError, AttributeError):
            return {"local": 0, "ufs": 0}

    def count_reads(self, local: int, ufs: int) -> None:
        """Add a pod's reads to the counters."""
        with self.lock:
            counts = self.reads()
            counts["local"] += local
            counts["ufs"] += ufs
            self.root.mkdir(parents=True, exist_ok=True)
            partial = self.root / f".{READS_FILE}.partial"
            partial.write_text(json.dumps(counts))
            os.replace(partial, self.root / READS_FILE)

    def drop(self) -> None:
        """Remove the cache, the views and the counters (the dataset or its runtime is gone)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def owner(self) -> str | None:
        """The uid of the dataset the cache holds files for (None: not claimed yet)."""
        try:
            return (self.root / OWNER_FILE).read_text().strip() or None
        except OSError:
            return None

    def claim(self, uid: str) -> None:
        """Make the cache the dataset ``uid``'s: one left by an earlier dataset of the same name
        (whose deletion was not handled yet) is dropped first, so none of its files is served."""
        with self.lock:
            current = self.owner()
            if current == uid:
                return
            if current is not None:
                shutil.rmtree(self.root, ignore_errors=True)
            self.root.mkdir(parents=True, exist_ok=True)
            partial = self.root / f".{OWNER_FILE}.partial"
            partial.write_text(uid)
            os.replace(partial, self.root / OWNER_FILE)

    def drop_for(self, uid: str) -> None:
        """:meth:`drop`, unless the cache was claimed by another dataset (a successor of the same
        name made before the deletion of ``uid`` was handled)."""
        if self.owner() in (None, uid):
            self.drop()


def cache_states(cache: DatasetCache, store_level: TieredStore | None, ufs_total: int) -> dict[str, str]:
    """Fluid's ``cacheStates`` of a dataset: capacity, cached bytes and percentage, and the hit
    ratios of the reads pods made (every hit is local: one machine holds the cache and the pods)."""
    cached = cache.cached_bytes()
    reads = cache.reads()
    total_reads = reads["local"] + reads["ufs"]
    capacity = store_level.capacity if store_level is not None else None
    hit = percentage(reads["local"], total_reads)
    return {
        "cacheCapacity": bytes_size(capacity or 0),
        "cached": bytes_size(cached),
        "cachedPercentage": percentage(cached, ufs_total) if ufs_total else "0.0%",
        "cacheHitRatio": hit,
        "localHitRatio": hit,
        "remoteHitRatio": percentage(0, total_reads),
        "cacheThroughputRatio": hit,
        "localThroughputRatio": hit,
        "remoteThroughputRatio": percentage(0, total_reads),
        "lowWaterMark": store_level.low if store_level is not None else "",
        "highWaterMark": store_level.high if store_level is not None else "",
    }
