"""The ImageCache controller of the local cluster: Preparing -> Creating -> Ready (or Failed), with the
``imc-`` id, progress, events and expiry ECI writes; images resolve through the runtime's image table."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any, Protocol

from airflow_argo_eci import eci_conventions as eci
from airflow_argo_eci.conventions import rfc3339
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import IMAGE_CACHES, SECRETS, ResourceType
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.eci.cache_hits import CacheIndex, PodCacheHits
from airflow_argo_eci.local.runtime.images import IMAGE_MAP_ENV, ImageError, ResolvedImage

log = logging.getLogger(__name__)

#: seconds between two steps of a cache's creation (four steps: about 1.2 s to Ready)
STEP_SECONDS = 0.4
#: a Failed cache expires this long after it failed (ECI's rule)
FAILED_RETENTION_SECONDS = 24 * 3600
_DAY = 24 * 3600
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
#: the progress of each step of a creation, in order
PROGRESS_PREPARING = "0%"
PROGRESS_PULLING = "30%"
PROGRESS_PULLED = "60%"
PROGRESS_READY = "100%"
#: ``status.events[].name`` of each step and of the failures
EVENT_PREPARING = "Preparing"
EVENT_CREATING = "Creating"
EVENT_PULLED = "Pulled"
EVENT_CREATED = "Created"
EVENT_IMAGE_NOT_FOUND = "ImageNotFound"
EVENT_SECRET_NOT_FOUND = "ImagePullSecretNotFound"  # noqa: S105 (an event name)


class ImageResolver(Protocol):
    """What the controller needs of the runtime's image table."""

    def resolve(self, image: str) -> ResolvedImage: ...


def image_cache_id(uid: str) -> str:
    """The ``imc-`` id of the ImageCache with ``metadata.uid`` ``uid``: 20 lowercase alphanumerics
    derived from it, so the id is the same on every pass and after a restart."""
    number = int.from_bytes(hashlib.sha256(uid.encode()).digest(), "big")
    chars = []
    for _ in range(20):
        number, digit = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return eci.IMAGE_CACHE_ID_PREFIX + "".join(chars)


def unmapped_image_message(image: str) -> str:
    """Why a cache of ``image`` failed: no local stand-in, and how to add one."""
    return (
        f'Failed to pull image "{image}": the local cluster has no stand-in for it in its image table. '
        f"Add a mapping: set {IMAGE_MAP_ENV} to a JSON or YAML file mapping the image to its entrypoint "
        f'(a list of strings), e.g. {{"{image}": ["/usr/local/bin/tool"]}}, and restart the local cluster'
    )


def missing_secret_message(ref: str, namespace: str, name: str) -> str:
    """Why a cache failed: its ``imagePullSecrets`` entry ``ref`` names a Secret that does not exist."""
    return (f'Failed to pull images: imagePullSecret "{ref}" names Secret {namespace}/{name}, which does not '
            "exist (ECI reads the registry credentials from it to pull the images); create the Secret, then "
            "create the ImageCache again")


def _event(event_type: str, name: str, message: str, now: float) -> dict[str, str]:
    return {"type": event_type, "name": name, "message": message, "timestamp": rfc3339(now)}


def _images(obj: dict[str, Any]) -> list[str]:
    return [str(i).strip() for i in (obj.get("spec") or {}).get("images") or []]


class ImageCacheController:
    """Reconciles the ImageCaches of ``store``: one step of a creation every ``step_seconds``; keeps
    the :class:`~.cache_hits.CacheIndex` pods are matched against (:attr:`pods`)."""

    def __init__(self, store: Store, images: ImageResolver, *, step_seconds: float = STEP_SECONDS) -> None:
        self.store = store
        self.images = images
        self.step_seconds = step_seconds
        self.index = CacheIndex()
        self.pods = PodCacheHits(store, self.index)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listening = False
        self._lock = threading.Lock()
        #: uid -> monotonic time the next step of that cache is due
        self._due: dict[str, float] = {}

    def start(self) -> None:
        """Listen to the store, index the existing caches and start the reconcile thread."""
        if not self._listening:
            self.store.add_listener(self._on_change)
            self._listening = True
        for obj in self._safe_list():
            self.index.put(obj)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="imagecache-controller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the reconcile thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def admit_pod(self, pod: dict[str, Any]) -> tuple[str, str] | None:
        """The pod hook: the pod's image-cache event; ``(reason, message)`` when it must not start."""
        return self.pods.admit(pod)

    # ------------------------------------------------------------------ the loop

    def _on_change(self, event: str, rt: ResourceType, obj: dict[str, Any]) -> None:
        if rt.key != IMAGE_CACHES.key:
            return
        meta = obj.get("metadata") or {}
        if event == "DELETED":
            self.index.drop(str(meta.get("name", "")), int(meta.get("resourceVersion") or 0))
            with self._lock:
                self._due.pop(str(meta.get("uid", "")), None)
        else:
            self.index.put(obj)
        self._wake.set()

    def _safe_list(self) -> list[dict[str, Any]]:
        try:
            return self.store.list(IMAGE_CACHES, None)[0]
        except Exception:  # the store closed under us while stopping
            return []

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            timeout = 1.0
            try:
                next_due = self.reconcile_all()
                if next_due is not None:
                    timeout = max(0.02, min(timeout, next_due - time.monotonic()))
            except Exception:  # the thread must survive any single bad pass
                log.exception("imagecache controller pass failed")
            self._wake.wait(timeout)

    def reconcile_all(self) -> float | None:
        """One pass over every cache still being created; the monotonic time of the next due step."""
        pending: list[float] = []
        for obj in self._safe_list():
            status = obj.get("status") or {}
            if status.get("phase") in eci.IMAGE_CACHE_FINAL_PHASES:
                continue
            uid = str(obj["metadata"].get("uid", ""))
            with self._lock:
                due = self._due.get(uid, 0.0)
            if due > time.monotonic():
                pending.append(due)
                continue
            more = self.reconcile(obj)
            with self._lock:
                if more:
                    self._due[uid] = time.monotonic() + self.step_seconds
                    pending.append(self._due[uid])
                else:
                    self._due.pop(uid, None)
        return min(pending) if pending else None

    # ------------------------------------------------------------------ one step

    def reconcile(self, obj: dict[str, Any]) -> bool:
        """Take the next step of the cache ``obj``; whether more steps follow."""
        status = self.next_status(obj, time.time())
        self._write_status(obj, status)
        return status.get("phase") not in eci.IMAGE_CACHE_FINAL_PHASES

    def next_status(self, obj: dict[str, Any], now: float) -> dict[str, Any]:
        """The status after the next step of ``obj``'s creation (at ``now``, seconds since the epoch)."""
        old = dict(obj.get("status") or {})
        phase = old.get("phase")
        spec = obj.get("spec") or {}
        images = _images(obj)
        if not phase:
            cache_id = image_cache_id(str(obj["metadata"].get("uid", "")))
            status: dict[str, Any] = {
                "phase": eci.PHASE_PREPARING, "progress": PROGRESS_PREPARING, "imageCacheId": cache_id,
                "startTime": rfc3339(now), "lastUpdatedTime": rfc3339(now),
                "events": [_event("Normal", EVENT_PREPARING,
                                  f"Preparing image cache {cache_id} for {len(images)} image(s): "
                                  f"{', '.join(images)}", now)],
            }
            retention = spec.get("retentionDays")
            if isinstance(retention, int) and not isinstance(retention, bool):
                status["expireDateTime"] = rfc3339(now + retention * _DAY)
            return status
        status = {**old, "events": list(old.get("events") or []), "lastUpdatedTime": rfc3339(now)}
        cache_id = str(old.get("imageCacheId", ""))
        if phase == eci.PHASE_PREPARING:
            missing = self._missing_secret(spec)
            if missing is not None:
                return self._failed(status, EVENT_SECRET_NOT_FOUND, missing, now)
            status.update(phase=eci.PHASE_CREATING, progress=PROGRESS_PULLING)
            status["events"].append(_event("Normal", EVENT_CREATING,
                                           f"Creating image cache {cache_id}: pulling {len(images)} image(s)", now))
            return status
        if status.get("progress") == PROGRESS_PULLING:
            for image in images:
                problem = self._unresolvable(image)
                if problem is not None:
                    return self._failed(status, EVENT_IMAGE_NOT_FOUND, problem, now)
            status["progress"] = PROGRESS_PULLED
            status["events"].append(_event("Normal", EVENT_PULLED,
                                           f"Pulled {len(images)} image(s): {', '.join(images)}", now))
            return status
        status.update(phase=eci.PHASE_READY, progress=PROGRESS_READY)
        status["events"].append(_event("Normal", EVENT_CREATED,
                                       f"Image cache {cache_id} created: {len(images)} image(s) cached", now))
        return status

    @staticmethod
    def _failed(status: dict[str, Any], name: str, message: str, now: float) -> dict[str, Any]:
        status["phase"] = eci.PHASE_FAILED
        status["expireDateTime"] = rfc3339(now + FAILED_RETENTION_SECONDS)
        status["events"].append(_event("Warning", name, message, now))
        return status

    def _missing_secret(self, spec: dict[str, Any]) -> str | None:
        for ref in spec.get("imagePullSecrets") or []:
            namespace, _, name = str(ref).partition(":")
            if self.store.find(SECRETS, namespace, name) is None:
                return missing_secret_message(str(ref), namespace, name)
        return None

    def _unresolvable(self, image: str) -> str | None:
        try:
            resolved = self.images.resolve(image)
        except ImageError as exc:
            return f'Failed to pull image "{image}": {exc}'
        if resolved.entrypoint is None:
            return unmapped_image_message(image)
        return None

    def _write_status(self, obj: dict[str, Any], status: dict[str, Any]) -> None:
        meta = obj["metadata"]
        before = obj.get("status") or {}

        def mutate(current: dict[str, Any]) -> None:
            mine = current["metadata"].get("uid") == meta.get("uid")
            if mine and (current.get("status") or {}) == before:  # else a newer pass wrote it meanwhile
                current["status"] = status

        try:
            self.store.update(IMAGE_CACHES, None, meta["name"], mutate)
        except ApiError as exc:
            if exc.code != 404:
                raise
