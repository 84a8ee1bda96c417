"""The Fluid controller of the local cluster: a thread that reconciles Datasets, their runtimes
and DataLoads in the store (see ``datasets.py`` and ``dataloads.py``), and serves the dataset
claims pods mount (``mounts.py``)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from airflow_argo_eci import fluid_conventions as fluid
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.owner_gc import owned_by
from airflow_argo_eci.local.api.resources import DATALOADS, DATASETS, FLUID_RUNTIMES, PODS, SECRETS, ResourceType
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.fluid.cache import DatasetCache, cache_states, tiered_store
from airflow_argo_eci.local.fluid.dataloads import LoadRunner
from airflow_argo_eci.local.fluid.datasets import (
    bound_status,
    check_dataset_spec,
    ensure_volume,
    find_runtime,
    release_volume,
    runtime_status,
    unbound_status,
)
from airflow_argo_eci.local.fluid.mounts import DatasetViews, register_views, unregister_views
from airflow_argo_eci.local.fluid.pods import (
    delete_quietly,
    ensure_runtime_pods,
    is_fluid_pod,
    loader_pods,
    release_runtime_pods,
    stop_pod,
)
from airflow_argo_eci.local.fluid.ufs import ObjectStore, UfsError, UfsFile, dataset_mounts
from airflow_argo_eci.local.fluid.units import SpecFieldError
from airflow_argo_eci.local.paths import StatePaths

log = logging.getLogger(__name__)

#: seconds a bound dataset's listing of the store is reused before it is listed again
LISTING_TTL = 10.0
_WATCHED = {DATASETS.key, DATALOADS.key, SECRETS.key, *(rt.key for rt in FLUID_RUNTIMES.values())}
_DELETED_KINDS = {DATASETS.key, DATALOADS.key, *(rt.key for rt in FLUID_RUNTIMES.values())}


class FluidController:
    """Reconciles the Fluid objects of ``store`` over the OSS store at ``oss_endpoint``
    (certificate ``ca_file``; ``oss_keys`` for mounts that bring none)."""

    def __init__(self, store: Store, paths: StatePaths, oss_endpoint: str, ca_file: Path | None,
                 oss_keys: tuple[str, str], *, tick_seconds: float = 1.0) -> None:
        self.store = store
        self.paths = paths
        self.tick_seconds = tick_seconds
        self.objects = ObjectStore(oss_endpoint, ca_file, oss_keys)
        self.loads = LoadRunner(store, paths, self.objects, self._refresh, self._refresh_now)
        self.views = DatasetViews(store, paths, self.objects, self._refresh)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listening = False
        self._lock = threading.Lock()
        self._gone: list[tuple[ResourceType, str, str, str]] = []
        #: runtime pods deleted gracefully: (namespace, name)
        self._stopping: list[tuple[str, str]] = []
        self._listings: dict[tuple[str, str], tuple[float, str, int, list[UfsFile]]] = {}
        self._wake_at: float | None = None

    def start(self) -> None:
        """Listen to the store, serve dataset claims and start the reconcile thread."""
        if not self._listening:
            self.store.add_listener(self._on_change)
            self._listening = True
        register_views(self.views)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="fluid-controller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; running loads are cancelled."""
        unregister_views(self.views)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.loads.stop()

    def _on_change(self, event: str, rt: ResourceType, obj: dict[str, Any]) -> None:
        if rt.key == PODS.key:
            meta = obj.get("metadata") or {}
            if event == "MODIFIED" and meta.get("deletionTimestamp") and is_fluid_pod(obj):
                with self._lock:
                    self._stopping.append((str(meta.get("namespace", "")), str(meta.get("name", ""))))
                self._wake.set()
            return
        if rt.key not in _WATCHED:
            return
        if event == "DELETED" and rt.key in _DELETED_KINDS:
            meta = obj.get("metadata") or {}
            namespace, name, uid = str(meta.get("namespace", "")), str(meta.get("name", "")), str(meta.get("uid", ""))
            with self._lock:
                self._gone.append((rt, namespace, name, uid))
            if rt.key == DATALOADS.key:
                self.loads.cancel(namespace, name, uid)
        self._wake.set()

    def _refresh(self, namespace: str, name: str) -> None:
        """Something changed the dataset's cache or reads: reconcile soon."""
        self._wake.set()

    def _refresh_now(self, namespace: str, name: str) -> None:
        """A load finished copying: write the dataset's status (its cacheStates) now."""
        dataset = self.store.find(DATASETS, namespace, name)
        if dataset is not None:
            self.reconcile_dataset(dataset)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.reconcile_all()
            except Exception:  # the thread must survive any single bad pass
                log.exception("fluid controller pass failed")
            timeout = self.tick_seconds
            if self._wake_at is not None:
                timeout = max(0.05, min(timeout, self._wake_at - time.time()))
            self._wake.wait(timeout)

    def _safe_list(self, rt: ResourceType) -> list[dict[str, Any]]:
        try:
            return self.store.list(rt, None)[0]
        except Exception:  # the store closed under us while stopping
            return []

    def reconcile_all(self) -> None:
        """One pass: deletions, then every dataset, then every DataLoad."""
        with self._lock:
            gone, self._gone = self._gone, []
            stopping, self._stopping = self._stopping, []
        for namespace, name in stopping:
            stop_pod(self.store, namespace, name)
        for rt, namespace, name, uid in gone:
            self._collect(rt, namespace, name, uid)
        for dataset in self._safe_list(DATASETS):
            self.reconcile_dataset(dataset)
        now = time.time()
        wakes = [w for dl in self._safe_list(DATALOADS) if (w := self.loads.reconcile(dl, now)) is not None]
        self._wake_at = min(wakes) if wakes else None

    def _collect(self, rt: ResourceType, namespace: str, name: str, uid: str) -> None:
        """What goes with a deleted object: a dataset's volume and cache; a DataLoad's loader pods;
        a runtime's pods, the volume and cache of its dataset (which is no longer bound). Only what
        the deleted uid owns goes: a successor of the same name may have been made before the
        deletion reached this process, and keeps its own (a successor runtime keeps the dataset's
        volume and cache)."""
        if rt.key == DATASETS.key:
            release_volume(self.store, namespace, name, dataset_uid=uid)
            DatasetCache(self.paths, namespace, name).drop_for(uid)
            self._listings.pop((namespace, name), None)  # a successor's is only listed again
        elif rt.key == DATALOADS.key:
            for pod in loader_pods(self.store, namespace, name):
                if owned_by(pod, uid):
                    delete_quietly(self.store, PODS, namespace, pod["metadata"]["name"])
        else:
            release_runtime_pods(self.store, namespace, name, uid)
            if find_runtime(self.store, namespace, name) is None:
                release_volume(self.store, namespace, name)
                DatasetCache(self.paths, namespace, name).drop()

    def reconcile_dataset(self, dataset: dict[str, Any]) -> None:
        """Validate and bind one dataset; write its status (and its runtime's) when it changed."""
        meta = dataset["metadata"]
        if meta.get("deletionTimestamp"):
            return
        namespace, name = meta["namespace"], meta["name"]
        old = dataset.get("status") or {}
        try:
            check_dataset_spec(dataset)
            mounts = dataset_mounts(self.store, namespace, dataset)
        except SpecFieldError as exc:
            self._set_status(DATASETS, dataset, unbound_status(old, fluid.DATASET_FAILED, "InvalidSpec", str(exc)))
            return
        runtime = find_runtime(self.store, namespace, name)
        if runtime is None:
            self._set_status(DATASETS, dataset, unbound_status(
                old, fluid.DATASET_NOT_BOUND, "NoRuntime",
                f'no runtime named "{name}" in namespace "{namespace}": create a '
                f'{" / ".join(fluid.RUNTIME_PLURALS)} of the dataset\'s name'))
            if old.get("phase") == fluid.DATASET_BOUND:
                release_volume(self.store, namespace, name)
            return
        try:
            level = tiered_store(runtime.obj)
            files = self._files(dataset, mounts)
        except SpecFieldError as exc:
            self._set_status(DATASETS, dataset, unbound_status(
                old, fluid.DATASET_FAILED, "InvalidRuntime", f'{runtime.kind} "{name}": {exc}'))
            return
        except UfsError as exc:
            self._set_status(DATASETS, dataset, unbound_status(old, fluid.DATASET_FAILED, exc.reason, str(exc)))
            return
        ensure_volume(self.store, dataset)
        ensure_runtime_pods(self.store, runtime)
        cache = DatasetCache(self.paths, namespace, name)
        cache.claim(str(meta.get("uid", "")))
        states = cache_states(cache, level, sum(f.size for f in files))
        created = _epoch(runtime.obj["metadata"].get("creationTimestamp"))
        self._set_status(runtime.rt, runtime.obj, runtime_status(
            runtime.obj.get("status") or {}, runtime, level, states, time.time() - created if created else 0.0))
        self._set_status(DATASETS, dataset, bound_status(old, dataset, runtime, files, states))

    def _files(self, dataset: dict[str, Any], mounts: list[Any]) -> list[UfsFile]:
        meta = dataset["metadata"]
        key = (meta["namespace"], meta["name"])
        cached = self._listings.get(key)
        bound = (dataset.get("status") or {}).get("phase") == fluid.DATASET_BOUND
        if cached is not None and bound and cached[1] == meta.get("uid") and cached[2] == meta.get("generation") \
                and time.monotonic() - cached[0] < LISTING_TTL:
            return cached[3]
        files = [f for m in mounts for f in self.objects.list_files(m)]
        self._listings[key] = (time.monotonic(), str(meta.get("uid")), int(meta.get("generation", 1)), files)
        return files

    def _set_status(self, rt: ResourceType, obj: dict[str, Any], status: dict[str, Any]) -> None:
        meta = obj["metadata"]
        if (obj.get("status") or {}) == status:
            return

        def mutate(current: dict[str, Any]) -> None:
            if current["metadata"].get("uid") == meta.get("uid"):
                current["status"] = status

        try:
            self.store.update(rt, meta["namespace"], meta["name"], mutate)
        except ApiError as exc:
            if exc.code != 404:
                raise


def _epoch(value: Any) -> float | None:
    from datetime import datetime, timezone

    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None
