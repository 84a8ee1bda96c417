"""Image caches seen from ECI pods: the in-memory cache index, which cache a pod uses (pinned by id or
matched automatically), the refusal of a pod pinning a cache that is not Ready, and the pod Events."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_argo_eci import eci_conventions as eci
from airflow_argo_eci.conventions import now_rfc3339
from airflow_argo_eci.eci import LABEL_ECI
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import EVENTS
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.runtime.images import split_image

log = logging.getLogger(__name__)


def hit_message(cache_id: str) -> str:
    """The ``SuccessfulHitImageCache`` event's message, as ECI writes it (the seed's output)."""
    return f"[eci.imagecache]Successfully hit image cache {cache_id}, eci will be scheduled with this image cache."


def not_found_message(cache_id: str, annotation: str) -> str:
    """Why a pod pinning the missing cache ``cache_id`` (by ``annotation``) cannot be created."""
    return (f"[eci.imagecache]The specified image cache {cache_id} ({annotation}) does not exist, "
            "eci cannot create the pod with it. Create the ImageCache and wait until it is Ready, or "
            "remove the annotation.")


def not_ready_message(cache_id: str, name: str, phase: str, annotation: str) -> str:
    """Why a pod pinning the cache ``cache_id`` (ImageCache ``name``, in ``phase``) cannot be created."""
    return (f"[eci.imagecache]The specified image cache {cache_id} ({annotation}, ImageCache {name}) is not "
            f"available: its phase is {phase or 'unknown'}, only a Ready image cache can be used. Wait until it "
            "is Ready, or remove the annotation.")


def image_key(image: str) -> str:
    """An image as caches compare it: ``repository:tag`` (``docker.io/`` and ``library/`` dropped)."""
    repo, tag = split_image(image)
    return f"{repo}:{tag}"


def _epoch(value: Any) -> float | None:
    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class CacheEntry:
    """One ImageCache as the index knows it."""

    name: str
    cache_id: str
    phase: str
    #: the cached images, as :func:`image_key` writes them
    images: frozenset[str]
    #: ``status.startTime`` (seconds since the epoch; 0 when unknown)
    started: float
    #: ``status.expireDateTime`` (seconds since the epoch), None when it never expires
    expires: float | None
    #: the object's ``metadata.resourceVersion`` (an older one never replaces a newer one)
    resource_version: int = 0

    def usable(self, now: float) -> bool:
        """Ready and not expired."""
        return self.phase == eci.PHASE_READY and (self.expires is None or self.expires > now)


def cache_entry(obj: dict[str, Any]) -> CacheEntry | None:
    """The index entry of an ImageCache object; None before it has an id."""
    status = obj.get("status") or {}
    cache_id = str(status.get("imageCacheId") or "")
    if not cache_id:
        return None
    images = (obj.get("spec") or {}).get("images") or []
    return CacheEntry(
        name=str((obj.get("metadata") or {}).get("name", "")),
        cache_id=cache_id,
        phase=str(status.get("phase") or ""),
        images=frozenset(image_key(i) for i in images if isinstance(i, str) and i.strip()),
        started=_epoch(status.get("startTime")) or 0.0,
        expires=_epoch(status.get("expireDateTime")),
        resource_version=_version(obj),
    )


def _version(obj: dict[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class CacheIndex:
    """Every ImageCache with an id, by name and by id, kept by the controller from store events, so a
    pod's lookup is a dictionary read (fan-outs start hundreds of pods)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, CacheEntry] = {}
        self._by_id: dict[str, CacheEntry] = {}
        #: name -> resourceVersion of its deletion: a late event of the deleted object is ignored
        self._deleted: dict[str, int] = {}

    def put(self, obj: dict[str, Any]) -> None:
        """Record the state of the ImageCache ``obj`` (replacing what was known of it, unless that is newer)."""
        entry = cache_entry(obj)
        name = str((obj.get("metadata") or {}).get("name", ""))
        with self._lock:
            known = self._by_name.get(name)
            version = _version(obj)
            if (known is not None and known.resource_version > version) or self._deleted.get(name, -1) >= version:
                return
            old = self._by_name.pop(name, None)
            if old is not None and self._by_id.get(old.cache_id) is old:
                del self._by_id[old.cache_id]
            if entry is not None:
                self._by_name[name] = entry
                self._by_id[entry.cache_id] = entry

    def drop(self, name: str, resource_version: int = 0) -> None:
        """Forget the ImageCache ``name``, deleted at ``resource_version``."""
        with self._lock:
            self._deleted[name] = max(resource_version, self._deleted.get(name, 0))
            old = self._by_name.pop(name, None)
            if old is not None and self._by_id.get(old.cache_id) is old:
                del self._by_id[old.cache_id]

    def by_id(self, cache_id: str) -> CacheEntry | None:
        """The cache whose ``imageCacheId`` is ``cache_id``."""
        with self._lock:
            return self._by_id.get(cache_id)

    def best_match(self, images: Iterable[str], *, perfect: bool, now: float | None = None) -> CacheEntry | None:
        """The usable cache that holds the most of ``images`` (all of them when ``perfect``); ties go to
        the newest cache, then to the name. None when no cache holds any."""
        wanted = {image_key(i) for i in images}
        if not wanted:
            return None
        at = time.time() if now is None else now
        with self._lock:
            entries = list(self._by_name.values())
        best: tuple[int, float, str] | None = None
        chosen: CacheEntry | None = None
        for entry in entries:
            if not entry.usable(at):
                continue
            held = len(wanted & entry.images)
            if held == 0 or (perfect and held < len(wanted)):
                continue
            rank = (held, entry.started, entry.name)
            if best is None or rank > best:
                best, chosen = rank, entry
        return chosen


def is_eci_pod(pod: dict[str, Any]) -> bool:
    """Whether ``pod`` runs on ECI (label ``alibabacloud.com/eci: "true"``)."""
    return ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_ECI) == "true"


def pod_images(pod: dict[str, Any]) -> list[str]:
    """Every container image of ``pod`` (init containers and containers)."""
    spec = pod.get("spec") or {}
    return [str(c["image"]) for key in ("initContainers", "containers") for c in spec.get(key) or []
            if isinstance(c, dict) and isinstance(c.get("image"), str) and c["image"].strip()]


@dataclass(frozen=True)
class CacheUse:
    """What ECI does with a pod's image-cache annotations: ``cache_id`` is the cache it hits (""
    for none); a ``refusal`` ``(reason, message)`` means the pod is not created."""

    cache_id: str = ""
    refusal: tuple[str, str] | None = None


def cache_use(pod: dict[str, Any], index: CacheIndex, *, now: float | None = None) -> CacheUse:
    """The image cache an ECI pod uses: the one pinned by ``eci-imc-id`` (legacy
    ``eci-image-snapshot-id``), which must exist and be Ready, else (automatic matching on unless
    ``eci-auto-imc`` is ``"false"``, or legacy ``eci-image-cache: "true"``) the best Ready cache
    holding its images (all of them with ``imc-perfect-match: "true"``). Non-ECI pods use none."""
    if not is_eci_pod(pod):
        return CacheUse()
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    for key in (eci.ANNOTATION_IMAGE_CACHE_ID, eci.ANNOTATION_LEGACY_IMAGE_SNAPSHOT_ID):
        pinned = str(annotations.get(key) or "").strip()
        if not pinned:
            continue
        entry = index.by_id(pinned)
        if entry is None:
            return CacheUse(refusal=(eci.REASON_IMAGE_CACHE_NOT_FOUND, not_found_message(pinned, key)))
        if not entry.usable(time.time() if now is None else now):
            phase = entry.phase if entry.phase != eci.PHASE_READY else "Ready (expired)"
            message = not_ready_message(pinned, entry.name, phase, key)
            return CacheUse(refusal=(eci.REASON_IMAGE_CACHE_NOT_READY, message))
        return CacheUse(cache_id=entry.cache_id)
    auto = str(annotations.get(eci.ANNOTATION_AUTO_IMAGE_CACHE, "true")).strip().lower() != "false" \
        or str(annotations.get(eci.ANNOTATION_LEGACY_IMAGE_CACHE, "")).strip().lower() == "true"
    if not auto:
        return CacheUse()
    perfect = str(annotations.get(eci.ANNOTATION_IMAGE_CACHE_PERFECT_MATCH, "")).strip().lower() == "true"
    entry = index.best_match(pod_images(pod), perfect=perfect, now=now)
    return CacheUse(cache_id=entry.cache_id if entry is not None else "")


def pod_event(pod: dict[str, Any], event_type: str, reason: str, message: str) -> dict[str, Any]:
    """A core/v1 Event about ``pod`` from ECI (``source.component`` ``EciService``)."""
    meta = pod.get("metadata") or {}
    now = now_rfc3339()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta.get('name', '')}.{secrets.token_hex(8)}", "namespace": meta.get("namespace")},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": meta.get("name"),
                           "namespace": meta.get("namespace"), "uid": meta.get("uid")},
        "reason": reason,
        "message": message,
        "type": event_type,
        "source": {"component": eci.EVENT_SOURCE},
        "reportingComponent": eci.EVENT_SOURCE,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def record_pod_event(store: Store, pod: dict[str, Any], event_type: str, reason: str, message: str) -> None:
    """Create the Event (best effort: an event that cannot be written is logged, never raised)."""
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    try:
        store.create(EVENTS, namespace, pod_event(pod, event_type, reason, message))
    except ApiError as exc:
        log.warning("could not record the %s event of pod %s/%s: %s", reason, namespace,
                    (pod.get("metadata") or {}).get("name"), exc)


class PodCacheHits:
    """The pod side of the controller: :meth:`admit` runs when a pod is created, before it starts."""

    def __init__(self, store: Store, index: CacheIndex) -> None:
        self.store = store
        self.index = index

    def admit(self, pod: dict[str, Any]) -> tuple[str, str] | None:
        """Record the pod's image-cache event; ``(reason, message)`` when the pod must not start."""
        use = cache_use(pod, self.index)
        if use.refusal is not None:
            record_pod_event(self.store, pod, "Warning", *use.refusal)
            return use.refusal
        if use.cache_id:
            record_pod_event(self.store, pod, "Normal", eci.REASON_HIT_IMAGE_CACHE, hit_message(use.cache_id))
        return None
