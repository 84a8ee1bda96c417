"""DataLoads: ``Pending`` -> ``Executing`` -> ``Complete`` / ``Failed`` while the target paths are
copied from the store into the dataset's cache (quota honoured), with Fluid's conditions,
``duration``, ``ttlSecondsAfterFinished`` and the ``Cron`` policy's re-runs."""

from __future__ import annotations

import logging
import posixpath
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_argo_eci import fluid_conventions as fluid
from airflow_argo_eci.conventions import now_rfc3339, rfc3339
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import DATALOADS, DATASETS, PODS
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.cron import CronError, parse_cron
from airflow_argo_eci.local.fluid.cache import DatasetCache, tiered_store
from airflow_argo_eci.local.fluid.datasets import condition, create_quietly, find_runtime
from airflow_argo_eci.local.fluid.pods import delete_quietly, loader_pod, loader_pods, stop_pod
from airflow_argo_eci.local.fluid.ufs import ObjectStore, UfsError, UfsFile, dataset_mounts
from airflow_argo_eci.local.fluid.units import SpecFieldError, bytes_size, go_duration
from airflow_argo_eci.local.paths import StatePaths

log = logging.getLogger(__name__)

#: Fluid's condition reasons of a DataLoad
REASON_COMPLETE = "DataLoadJobComplete"
REASON_FAILED = "DataLoadJobFailed"
REASON_DATASET_NOT_FOUND = "TargetDatasetNotFound"
REASON_DATASET_NOT_READY = "TargetDatasetNotReady"
REASON_NAMESPACE_NOT_SAME = "TargetDatasetNamespaceNotSame"
REASON_PATH_NOT_FOUND = "TargetDatasetPathNotFound"
REASON_INVALID = "InvalidSpec"
#: shown in ``status.duration`` until a run ends (as Fluid does)
UNFINISHED = "Unfinished"
#: seconds between the dataset ``cacheStates`` updates while a load copies
PROGRESS_INTERVAL = 0.5


class LoadFailed(Exception):
    """A load that cannot run or went wrong: Fluid's ``reason`` and a message naming the cause."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class _Run:
    uid: str
    dataset: tuple[str, str]
    started: float
    cancel: threading.Event


def _parse_time(value: Any) -> float | None:
    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def check_spec(dataload: dict[str, Any]) -> None:
    """What the local cluster refuses before running: policy, schedule, runAfter, targets, ttl;
    raises :class:`LoadFailed` (``InvalidSpec``) naming the field."""
    spec = dataload.get("spec") or {}
    if not (spec.get("dataset") or {}).get("name"):
        raise LoadFailed(REASON_INVALID, "spec.dataset.name is required")
    policy = spec.get("policy") or fluid.POLICY_ONCE
    if policy not in fluid.DATALOAD_POLICIES:
        raise LoadFailed(REASON_INVALID, f"spec.policy: {policy!r} is not one of {', '.join(fluid.DATALOAD_POLICIES)}")
    if policy == fluid.POLICY_ON_EVENT:
        raise LoadFailed(REASON_INVALID,
                         "spec.policy: OnEvent is not supported by the local cluster (use Once or Cron)")
    if policy == fluid.POLICY_CRON:
        try:
            parse_cron(str(spec.get("schedule") or ""))
        except CronError as exc:
            raise LoadFailed(REASON_INVALID, f"spec.schedule: {exc}") from exc
    if spec.get("runAfter"):
        raise LoadFailed(REASON_INVALID, "spec.runAfter is not supported by the local cluster: create the DataLoad "
                                         "once the operation it should follow has ended")
    ttl = spec.get("ttlSecondsAfterFinished")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0):
        raise LoadFailed(REASON_INVALID, f"spec.ttlSecondsAfterFinished: {ttl!r} must be a whole number >= 0")
    for index, target in enumerate(spec.get("target") or []):
        path = (target or {}).get("path", "/")
        if not isinstance(path, str) or not path.startswith("/") or ".." in path.split("/"):
            raise LoadFailed(REASON_PATH_NOT_FOUND, f"spec.target[{index}].path: {path!r} is outside the dataset "
                                                    "(an absolute path without '..' is required)")
        replicas = (target or {}).get("replicas", 1)
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise LoadFailed(REASON_INVALID, f"spec.target[{index}].replicas: {replicas!r} must be a whole number >= 1")


def select_files(files: list[UfsFile], targets: list[dict[str, Any]], mount_paths: list[str]
                 ) -> list[tuple[UfsFile, int]]:
    """The files the targets name, each with its cache replicas (the largest asked for);
    :class:`LoadFailed` for a target outside every mount or naming nothing."""
    chosen: dict[str, tuple[UfsFile, int]] = {}
    for index, target in enumerate(targets or [{"path": "/"}]):
        path = posixpath.normpath((target or {}).get("path") or "/")
        replicas = int((target or {}).get("replicas", 1))
        inside = [m for m in mount_paths if path == "/" or path == m or path.startswith(m.rstrip("/") + "/")
                  or m.startswith(path.rstrip("/") + "/")]
        if not inside:
            raise LoadFailed(REASON_PATH_NOT_FOUND, f"spec.target[{index}].path: {path!r} is outside the dataset "
                                                    f"(its mounts are at {', '.join(mount_paths)})")
        matched = [f for f in files if path == "/" or f.path == path or f.path.startswith(path.rstrip("/") + "/")]
        if not matched and path != "/":
            raise LoadFailed(REASON_PATH_NOT_FOUND, f"spec.target[{index}].path: {path!r} names no file of the "
                                                    "dataset (no object under that prefix in the store)")
        for f in matched:
            chosen[f.path] = (f, max(replicas, chosen.get(f.path, (f, 0))[1]))
    return list(chosen.values())


class LoadRunner:
    """Runs the DataLoads of one store: the state machine per pass (:meth:`reconcile`) and one
    copying thread per executing load (one at a time per dataset)."""

    def __init__(self, store: Store, paths: StatePaths, objects: ObjectStore,
                 on_progress: Callable[[str, str], None],
                 on_loaded: Callable[[str, str], None] | None = None) -> None:
        self.store = store
        self.paths = paths
        self.objects = objects
        #: called with (namespace, dataset) while a load copies, to refresh the dataset's cacheStates
        self.on_progress = on_progress
        #: called with (namespace, dataset) once a load copied everything, before it is marked
        #: ``Complete``: whoever sees ``Complete`` reads the dataset's final ``cacheStates``
        self.on_loaded = on_loaded
        self._runs: dict[tuple[str, str], _Run] = {}
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self._stopping = False

    def stop(self) -> None:
        """Cancel every running load and wait for them; they stay ``Executing`` in the store and
        run again when the cluster starts next."""
        self._stopping = True
        with self._lock:
            for run in self._runs.values():
                run.cancel.set()
        for thread in self.threads:
            thread.join(timeout=10)

    # ------------------------------------------------------------------ state machine

    def reconcile(self, dl: dict[str, Any], now: float) -> float | None:
        """One pass over a DataLoad; returns when (epoch seconds) it wants another, or None."""
        meta, status = dl["metadata"], dl.get("status") or {}
        key = (meta["namespace"], meta["name"])
        phase = status.get("phase") or ""
        if meta.get("deletionTimestamp"):
            return None
        if phase == "":
            return self._admit(dl, now)
        if phase == fluid.DATALOAD_PENDING:
            return self._try_start(dl, now)
        if phase == fluid.DATALOAD_EXECUTING:
            with self._lock:
                run = self._runs.get(key)
            if run is None or run.uid != meta.get("uid"):  # the server restarted mid-load: run it again
                return self._try_start(dl, now)
            return None
        return self._after_finish(dl, now)

    def _admit(self, dl: dict[str, Any], now: float) -> float | None:
        """A new DataLoad: Failed if its spec is invalid, else Pending, which the next pass (wanted at
        once) starts. Fluid's reconcileNone does the same, so every valid load reports Pending before
        Executing whatever the timing of the passes (a cron load already due would otherwise skip it)."""
        try:
            check_spec(dl)
        except LoadFailed as exc:
            self._finish(dl, None, exc.reason, str(exc))
            return None
        if not self._write(dl, lambda s: s.update(phase=fluid.DATALOAD_PENDING, duration=UNFINISHED)):
            return None
        return now

    def _try_start(self, dl: dict[str, Any], now: float) -> float | None:
        meta, spec = dl["metadata"], dl.get("spec") or {}
        try:
            check_spec(dl)
        except LoadFailed as exc:
            self._finish(dl, None, exc.reason, str(exc))
            return None
        policy = spec.get("policy") or fluid.POLICY_ONCE
        status = dl.get("status") or {}
        if policy == fluid.POLICY_CRON and status.get("phase") != fluid.DATALOAD_EXECUTING:
            due = self._cron_due(dl)
            if due > now:
                self._write(dl, lambda s: s.update(phase=fluid.DATALOAD_PENDING, duration=UNFINISHED))
                return due
        target = spec.get("dataset") or {}
        ds_ns = target.get("namespace") or meta["namespace"]
        if ds_ns != meta["namespace"]:
            self._finish(dl, None, REASON_NAMESPACE_NOT_SAME,
                         f'spec.dataset.namespace: "{ds_ns}" is not the DataLoad\'s namespace "{meta["namespace"]}"')
            return None
        try:
            dataset = self.store.get(DATASETS, ds_ns, str(target["name"]))
        except ApiError as exc:
            if exc.code != 404:
                raise
            self._finish(dl, None, REASON_DATASET_NOT_FOUND,
                         f'spec.dataset.name: dataset "{target["name"]}" not found in namespace "{ds_ns}"')
            return None
        ds_phase = (dataset.get("status") or {}).get("phase")
        if ds_phase == fluid.DATASET_FAILED:
            why = next((c.get("message") for c in (dataset.get("status") or {}).get("conditions") or []), "")
            self._finish(dl, None, REASON_DATASET_NOT_READY, f'dataset "{target["name"]}" is Failed: {why}')
            return None
        ds_key = (ds_ns, str(target["name"]))
        with self._lock:
            busy = any(r.dataset == ds_key for k, r in self._runs.items() if k != (meta["namespace"], meta["name"]))
            if ds_phase != fluid.DATASET_BOUND or busy:
                start = None
            else:
                start = _Run(str(meta.get("uid", "")), ds_key, time.time(), threading.Event())
                self._runs[(meta["namespace"], meta["name"])] = start
        if start is None:  # waits for the dataset to bind, or for the load running on it
            self._write(dl, lambda s: s.update(phase=fluid.DATALOAD_PENDING, duration=UNFINISHED))
            return now + 1.0

        def executing(s: dict[str, Any]) -> None:
            s.update(phase=fluid.DATALOAD_EXECUTING, duration=UNFINISHED, conditions=[])
            if policy == fluid.POLICY_CRON:
                s["lastScheduleTime"] = now_rfc3339()

        if not self._write(dl, executing):
            with self._lock:
                self._runs.pop((meta["namespace"], meta["name"]), None)
            return None
        for old in loader_pods(self.store, meta["namespace"], meta["name"]):  # an earlier run's (Cron, restart)
            delete_quietly(self.store, PODS, meta["namespace"], old["metadata"]["name"])
        create_quietly(self.store, PODS, meta["namespace"], loader_pod(dl, ds_key[1]))
        thread = threading.Thread(target=self._run, args=(dl, start), name=f"dataload-{meta['name']}", daemon=True)
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()
        return None

    def _cron_due(self, dl: dict[str, Any]) -> float:
        status = dl.get("status") or {}
        base = _parse_time(status.get("lastScheduleTime")) or _parse_time(dl["metadata"].get("creationTimestamp"))
        schedule = parse_cron(str((dl.get("spec") or {}).get("schedule")))
        start = datetime.fromtimestamp(base or time.time(), timezone.utc)
        return schedule.next_after(start).timestamp()

    def _after_finish(self, dl: dict[str, Any], now: float) -> float | None:
        spec, status, meta = dl.get("spec") or {}, dl.get("status") or {}, dl["metadata"]
        finished = next((_parse_time(c.get("lastTransitionTime")) for c in status.get("conditions") or []
                         if isinstance(c, dict)), None) or now
        wake: list[float] = []
        ttl = spec.get("ttlSecondsAfterFinished")
        if isinstance(ttl, int) and not isinstance(ttl, bool) and ttl >= 0:
            if now >= finished + ttl:
                try:
                    self.store.delete(DATALOADS, meta["namespace"], meta["name"],
                                      preconditions={"uid": str(meta.get("uid", ""))})
                except ApiError as exc:
                    if exc.code not in (404, 409):
                        raise
                return None
            wake.append(finished + ttl)
        if (spec.get("policy") or fluid.POLICY_ONCE) == fluid.POLICY_CRON and \
                status.get("conditions") and status["conditions"][0].get("reason") != REASON_INVALID:
            due = self._cron_due(dl)
            if now >= due:
                return self._try_start(dl, now)
            wake.append(due)
        return min(wake) if wake else None

    # ------------------------------------------------------------------ the copy

    def cancel(self, namespace: str, name: str, uid: str) -> None:
        """Stop the load of the deleted DataLoad whose uid is ``uid`` (between files); a load of a
        successor of the same name goes on."""
        with self._lock:
            run = self._runs.get((namespace, name))
        if run is not None and run.uid == uid:
            run.cancel.set()

    def _run(self, dl: dict[str, Any], run: _Run) -> None:
        meta = dl["metadata"]
        try:
            message = self._load(dl, run)
            if self.on_loaded is not None:
                self.on_loaded(*run.dataset)
            self._finish(dl, run, REASON_COMPLETE, message)
        except LoadFailed as exc:
            if not self._stopping:
                self._finish(dl, run, exc.reason, str(exc))
        except Exception as exc:  # the load must end, whatever broke
            if self._stopping:
                return
            log.exception("DataLoad %s/%s failed", meta["namespace"], meta["name"])
            self._finish(dl, run, REASON_FAILED, f"the local cluster's loader failed: {exc}")
        finally:
            with self._lock:
                if self._runs.get((meta["namespace"], meta["name"])) is run:
                    del self._runs[(meta["namespace"], meta["name"])]
            self.on_progress(*run.dataset)

    def _load(self, dl: dict[str, Any], run: _Run) -> str:
        ds_ns, ds_name = run.dataset
        try:
            dataset = self.store.get(DATASETS, ds_ns, ds_name)
        except ApiError as exc:
            raise LoadFailed(REASON_DATASET_NOT_FOUND, f'dataset "{ds_name}" was deleted') from exc
        runtime = find_runtime(self.store, ds_ns, ds_name)
        if runtime is None:
            raise LoadFailed(REASON_DATASET_NOT_READY, f'dataset "{ds_name}" has no runtime')
        try:
            mounts = dataset_mounts(self.store, ds_ns, dataset)
            level = tiered_store(runtime.obj)
            files = [f for m in mounts for f in self.objects.list_files(m)]
        except SpecFieldError as exc:
            raise LoadFailed(REASON_DATASET_NOT_READY, f'dataset "{ds_name}": {exc}') from exc
        except UfsError as exc:
            raise LoadFailed(REASON_FAILED, f'dataset "{ds_name}": {exc}') from exc
        chosen = select_files(files, list((dl.get("spec") or {}).get("target") or []), [m.path for m in mounts])
        cache = DatasetCache(self.paths, ds_ns, ds_name)
        todo = [(f, r) for f, r in chosen if not cache.is_cached(f.path, f.size)]
        need = sum(f.size * r for f, r in todo)
        if level.capacity is not None and cache.cached_bytes() + need > level.capacity:
            raise LoadFailed(REASON_FAILED, f"the load needs {bytes_size(need)} more cache but {runtime.kind} "
                                            f'"{ds_name}" holds {bytes_size(level.capacity)} '
                                            f"(spec.tieredstore.levels[0].quota {bytes_size(level.quota or 0)} x "
                                            f"{level.replicas} replicas) and {bytes_size(cache.cached_bytes())} "
                                            "is cached already: raise the quota or the replicas")
        last = 0.0
        for file, _replicas in todo:
            if run.cancel.is_set():
                raise LoadFailed(REASON_FAILED, "the DataLoad was deleted while it ran")
            try:
                self.objects.fetch(file, cache.cached_path(file.path), run.cancel)
            except UfsError as exc:
                raise LoadFailed(REASON_FAILED, str(exc)) from exc
            if time.monotonic() - last >= PROGRESS_INTERVAL:
                last = time.monotonic()
                self.on_progress(ds_ns, ds_name)
        total = sum(f.size for f, _ in chosen)
        return (f"loaded {len(chosen)} file(s) ({bytes_size(total)}, {len(todo)} read from the store) into the cache "
                f'of {runtime.kind} "{ds_name}"')

    # ------------------------------------------------------------------ status writes

    def _finish(self, dl: dict[str, Any], run: _Run | None, reason: str, message: str) -> None:
        ok = reason == REASON_COMPLETE
        started = run.started if run is not None else time.time()
        ctype = fluid.CONDITION_COMPLETE if ok else fluid.CONDITION_FAILED

        def done(s: dict[str, Any]) -> None:
            now = now_rfc3339()
            s.update(phase=fluid.DATALOAD_COMPLETE if ok else fluid.DATALOAD_FAILED,
                     duration=go_duration(time.time() - started),
                     conditions=condition(ctype, "True", reason, message, s.get("conditions")))
            s["conditions"][0]["lastProbeTime"] = now
            s["conditions"][0].pop("lastUpdateTime", None)
            if ok:
                s["lastSuccessfulTime"] = rfc3339(time.time())

        self._write(dl, done)
        if run is not None:
            for pod in loader_pods(self.store, dl["metadata"]["namespace"], dl["metadata"]["name"]):
                stop_pod(self.store, dl["metadata"]["namespace"], pod["metadata"]["name"], failed=not ok,
                         only_deleting=False)

    def _write(self, dl: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> bool:
        """Change the DataLoad's status if it is still the same object; False when it is gone."""
        meta = dl["metadata"]
        uid = meta.get("uid")

        def mutate(obj: dict[str, Any]) -> None:
            if obj["metadata"].get("uid") != uid:
                raise LoadFailed(REASON_FAILED, "replaced")
            status = obj.setdefault("status", {})
            change(status)

        try:
            self.store.update(DATALOADS, meta["namespace"], meta["name"], mutate)
        except ApiError as exc:
            if exc.code == 404:
                return False
            raise
        except LoadFailed:
            return False
        return True
