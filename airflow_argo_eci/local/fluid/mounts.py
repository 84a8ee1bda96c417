"""What a pod that mounts a Dataset's PVC sees, without FUSE.

The local cluster has no FUSE client: when a pod starts (in the runtime's thread, through
``PodVolume.fill``, so pods starting together read the store together), its claim volume becomes
a fresh read-only directory of the dataset's files (a "view"). Files the cache holds are hard links into the cache
(cache hits); files it does not hold are read from the OSS store for this pod, through the store's
HTTP API and its bandwidth cap (misses), exactly as many bytes as a FUSE client reading them
whole would pull. A file read from the store is not added to the cache (only DataLoads fill it).
The bytes of both kinds are counted into the dataset's ``cacheHitRatio`` / ``localHitRatio`` /
``remoteHitRatio``. A view shows the dataset as it is when the pod starts.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow_argo_eci import fluid_conventions as fluid
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import DATASETS
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.fluid.cache import DatasetCache
from airflow_argo_eci.local.fluid.datasets import ANNOTATION_CREATED_BY, CREATED_BY_FLUID, LABEL_DATASET_ID
from airflow_argo_eci.local.fluid.ufs import ObjectStore, UfsError, UfsFile, dataset_mounts
from airflow_argo_eci.local.fluid.units import SpecFieldError
from airflow_argo_eci.local.paths import StatePaths
from airflow_argo_eci.local.runtime import CLAIM, PodVolume

#: views older than this are removed when a new one is made (their pods have long ended)
VIEW_LIFETIME = 24 * 3600.0


class DatasetMountError(OSError):
    """A pod cannot mount a dataset (not bound, store unreachable); the message says why (an
    OSError: the runtime fails a pod whose volume it cannot make)."""


class DatasetViews:
    """Makes the views of one local cluster's datasets (see the module docstring)."""

    def __init__(self, store: Store, paths: StatePaths, objects: ObjectStore,
                 on_read: Callable[[str, str], None]) -> None:
        self.store = store
        self.paths = paths
        self.objects = objects
        #: called with (namespace, dataset) after a pod's reads were counted
        self.on_read = on_read
        #: store copies being written for pods: path -> set when written
        self._writing: dict[Path, threading.Event] = {}
        self._writing_lock = threading.Lock()

    def _bound(self, namespace: str, dataset_name: str) -> dict[str, Any]:
        try:
            dataset = self.store.get(DATASETS, namespace, dataset_name)
        except ApiError as exc:
            raise DatasetMountError(f'dataset "{dataset_name}" of the claim not found') from exc
        if (dataset.get("status") or {}).get("phase") != fluid.DATASET_BOUND:
            raise DatasetMountError(f'dataset "{dataset_name}" is not Bound (phase '
                                    f'{(dataset.get("status") or {}).get("phase") or "none"})')
        return dataset

    def new_view(self, namespace: str, dataset_name: str) -> Path:
        """Where a pod's view of a bound dataset goes (made by :meth:`fill` when the pod starts);
        :class:`DatasetMountError` when the dataset is not bound."""
        self._bound(namespace, dataset_name)
        views_dir = DatasetCache(self.paths, namespace, dataset_name).views_dir
        _collect_old_views(views_dir)
        return views_dir / uuid.uuid4().hex

    def fill(self, namespace: str, dataset_name: str, view: Path) -> None:
        """Make the view: the dataset's files as they are now, hits linked from the cache, misses
        read from the store; :class:`DatasetMountError` when it cannot be made."""
        dataset = self._bound(namespace, dataset_name)
        try:
            mounts = dataset_mounts(self.store, namespace, dataset)
            files = [f for m in mounts for f in self.objects.list_files(m)]
        except (SpecFieldError, UfsError) as exc:
            raise DatasetMountError(f'dataset "{dataset_name}": {exc}') from exc
        cache = DatasetCache(self.paths, namespace, dataset_name)
        view.mkdir(parents=True, exist_ok=True)
        local = ufs = 0
        try:
            for file in files:
                dest = view / file.path.lstrip("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                if cache.is_cached(file.path, file.size) and _link(cache.cached_path(file.path), dest):
                    local += file.size
                    continue
                shared = cache.ufs_dir / _safe_etag(file.etag) / file.path.lstrip("/")
                ufs += self._read_through(file, shared)
                if not _link(shared, dest):
                    shutil.copyfile(shared, dest)
        except UfsError as exc:
            shutil.rmtree(view, ignore_errors=True)
            raise DatasetMountError(f'dataset "{dataset_name}": {exc}') from exc
        finally:
            cache.count_reads(local, ufs)
            self.on_read(namespace, dataset_name)
        for current, dirs, names in os.walk(view):
            for name in dirs:
                os.chmod(os.path.join(current, name), 0o755)  # noqa: S103  # read-only view
            for name in names:
                os.chmod(os.path.join(current, name), 0o444)
        view.chmod(0o755)


    def _read_through(self, file: UfsFile, shared: Path) -> int:
        """Read a file the cache lacks from the store for one pod (the bytes, every time: each pod
        pays its read) while keeping one copy on disk however many pods read it at once: the first
        reader writes ``shared``, the others drop what they read and wait for that copy."""
        with self._writing_lock:
            complete = _complete(shared, file.size)
            writer = not complete and shared not in self._writing
            if writer:
                self._writing[shared] = threading.Event()
            done = self._writing.get(shared)
        if writer:
            try:
                return self.objects.fetch(file, shared)
            finally:
                with self._writing_lock:
                    self._writing.pop(shared, None)
                if done is not None:
                    done.set()
        read = self.objects.fetch(file, None)
        if done is not None:
            done.wait()
        if not _complete(shared, file.size):  # the writer failed: write it here
            self.objects.fetch(file, shared)
        return read


def _complete(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def _safe_etag(etag: str) -> str:
    """A directory name for an object version (its ETag without quotes; ``-`` when unknown)."""
    cleaned = "".join(c for c in etag if c.isalnum() or c == "-")
    return cleaned[:64] or "-"


def _link(source: Path, dest: Path) -> bool:
    try:
        os.link(source, dest, follow_symlinks=False)
        return True
    except OSError:
        return False


def _collect_old_views(views_dir: Path) -> None:
    cutoff = time.time() - VIEW_LIFETIME
    try:
        entries = list(os.scandir(views_dir))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                shutil.rmtree(entry.path, ignore_errors=True)
        except OSError:
            continue


# ---------------------------------------------------------------------- the PVC hook

_VIEWS: dict[Path, DatasetViews] = {}
_VIEWS_LOCK = threading.Lock()


def register_views(views: DatasetViews) -> None:
    """Serve the dataset claims of the cluster whose state directory ``views.paths`` names."""
    with _VIEWS_LOCK:
        _VIEWS[views.paths.root] = views


def unregister_views(views: DatasetViews) -> None:
    """Stop serving (the cluster stopped)."""
    with _VIEWS_LOCK:
        if _VIEWS.get(views.paths.root) is views:
            del _VIEWS[views.paths.root]


def is_dataset_claim(claim: dict[str, Any]) -> bool:
    """Whether a PVC is the volume of a Fluid dataset (the controller's labels and annotation)."""
    meta = claim.get("metadata") or {}
    return bool((meta.get("labels") or {}).get(LABEL_DATASET_ID)) and \
        (meta.get("annotations") or {}).get(ANNOTATION_CREATED_BY) == CREATED_BY_FLUID


def dataset_volume(paths: StatePaths, namespace: str, claim: dict[str, Any], volume_name: str) -> PodVolume | None:
    """The pod volume of a dataset claim (a read-only view), or None for any other claim;
    :class:`DatasetMountError` when the view cannot be made (or no Fluid controller runs)."""
    if not is_dataset_claim(claim):
        return None
    with _VIEWS_LOCK:
        views = _VIEWS.get(paths.root)
    if views is None:
        raise DatasetMountError(f'claim "{claim["metadata"].get("name")}" is a Fluid dataset volume but the local '
                                "cluster runs no Fluid controller")
    dataset = str(claim["metadata"]["name"])
    host_dir = views.new_view(namespace, dataset)
    return PodVolume(volume_name, CLAIM, host_dir=host_dir, read_only=True,
                     fill=lambda path: views.fill(namespace, dataset, path))
