"""One lifecycle for an ECI ImageCache made from Airflow: check the request, reuse a Ready cache
holding the same images or create-or-reattach by name, wait, report progress, finish, kill. The
operator's sync path, its deferred path, the trigger and the sensor all call these functions;
whether a phase is final is decided by :func:`image_cache_outcome` only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from airflow_argo_eci.eci_conventions import (
    ANNOTATION_IMC_ENABLE_REUSE,
    ANNOTATION_SECURITY_GROUP,
    ANNOTATION_VSWITCH,
    API_VERSION,
    IMAGE_CACHE_ID_PREFIX,
    IMAGE_CACHE_KIND,
    IMAGE_CACHE_SIZE_DEFAULT_GB,
    IMAGE_CACHE_SIZE_MAX_GB,
    IMAGE_CACHE_SIZE_MIN_GB,
    PHASE_CREATING,
    PHASE_FAILED,
    PHASE_PREPARING,
    PHASE_READY,
    RETENTION_DAYS_MAX,
    RETENTION_DAYS_MIN,
)
from airflow_argo_eci.errors import ArgoEciError, ConflictError, NotFoundError, WorkflowSpecError
from airflow_argo_eci.operation_drivers import HookCall, arun_operation, fenced_kill_steps, run_operation

if TYPE_CHECKING:
    from airflow_argo_eci.hooks.eci import EciHook

log = logging.getLogger(__name__)

ImageCacheOutcome = Literal["wait", "success", "failure"]

_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_NAME_RE = re.compile(rf"^{_DNS_LABEL}(?:\.{_DNS_LABEL})*$")
_PULL_SECRET_RE = re.compile(rf"^({_DNS_LABEL}):({_DNS_LABEL}(?:\.{_DNS_LABEL})*)$")
_VSWITCH_RE = re.compile(r"^vsw-[a-z0-9]+$")
_SECURITY_GROUP_RE = re.compile(r"^sg-[a-z0-9]+$")
#: the longest derived name (a DNS label, so every tool that shows it accepts it)
_DERIVED_NAME_MAX = 63
_HASH_LEN = 12


# ---------------------------------------------------------------------------- phase -> outcome


def image_cache_outcome(phase: str | None) -> ImageCacheOutcome:
    """``wait`` (no phase yet, ``Preparing``, ``Creating``), ``success`` (``Ready``) or ``failure``
    (``Failed``); any other phase raises :class:`ArgoEciError`."""
    if phase in (None, "", PHASE_PREPARING, PHASE_CREATING):
        return "wait"
    if phase == PHASE_READY:
        return "success"
    if phase == PHASE_FAILED:
        return "failure"
    raise ArgoEciError(f"unknown ImageCache phase {phase!r}: ECI's are {PHASE_PREPARING}, {PHASE_CREATING}, "
                       f"{PHASE_READY}, {PHASE_FAILED}")


def _name(cache: Mapping[str, Any]) -> str:
    return str((cache.get("metadata") or {}).get("name") or "")


def _status(cache: Mapping[str, Any]) -> Mapping[str, Any]:
    status = cache.get("status")
    return status if isinstance(status, Mapping) else {}


def last_event_message(cache: Mapping[str, Any]) -> str:
    """The message of the last ``status.events[]`` entry that has one (``""`` when none has)."""
    events = _status(cache).get("events")
    for event in reversed(events if isinstance(events, list) else []):
        if isinstance(event, Mapping) and str(event.get("message") or "").strip():
            return str(event["message"]).strip()
    return ""


def failure_message(cache: Mapping[str, Any]) -> str:
    """``ImageCache name Failed: <the last event's message>``."""
    text = f"ImageCache {_name(cache)} {_status(cache).get('phase') or PHASE_FAILED}"
    message = last_event_message(cache)
    return f"{text}: {message}" if message else f"{text} (no event says why)"


def judge_image_cache(namespace: str, cache: Mapping[str, Any]) -> tuple[Literal["wait", "success", "failure",
                                                                                 "error"], str]:
    """``(outcome, message)`` of an ImageCache (the watch hub's judge; ``namespace`` is unused:
    the kind is cluster-scoped)."""
    phase = _status(cache).get("phase")
    try:
        outcome = image_cache_outcome(phase)
    except ArgoEciError as exc:
        return "error", f"ImageCache {_name(cache)}: {exc}"
    if outcome == "failure":
        return outcome, failure_message(cache)
    if outcome == "success":
        return outcome, f"ImageCache {_name(cache)} Ready: {_status(cache).get('imageCacheId') or '?'}"
    return outcome, ""


# ---------------------------------------------------------------------------- progress


def progress_line(cache: Mapping[str, Any]) -> str:
    """``ImageCache name: Creating 40%`` from its status (``Pending`` before it has a phase)."""
    status = _status(cache)
    progress = f" {status['progress']}" if status.get("progress") else ""
    return f"ImageCache {_name(cache)}: {status.get('phase') or 'Pending'}{progress}"


@dataclass
class ProgressLog:
    """Emits an ImageCache's phase and progress when they changed since the last line."""

    emit: Callable[[str], None]
    last: str = ""

    def report(self, cache: Mapping[str, Any]) -> None:
        """Emit :func:`progress_line` of ``cache`` unless it is the line emitted last."""
        line = progress_line(cache)
        if line != self.last:
            self.last = line
            self.emit(line)


# ---------------------------------------------------------------------------- the request


def _bad(parameter: str, value: Any, fix: str) -> WorkflowSpecError:
    return WorkflowSpecError(f"{parameter}={value!r}: {fix}")


def check_images(images: Any) -> tuple[str, ...]:
    """A non-empty list of distinct image references without whitespace."""
    if isinstance(images, str) or not isinstance(images, Sequence) or not images:
        raise _bad("images", images, "give a non-empty list of image references, like ['nginx:1.25', "
                                       "'registry.cn-hangzhou.aliyuncs.com/ns/app:v1']")
    seen: list[str] = []
    for i, image in enumerate(images):
        if not isinstance(image, str) or not image.strip() or any(c.isspace() for c in image):
            raise _bad(f"images[{i}]", image, "an image reference is a non-empty string without spaces")
        if image in seen:
            raise _bad(f"images[{i}]", image, "listed twice: give each image once")
        seen.append(image)
    return tuple(seen)


def check_pull_secrets(refs: Any) -> tuple[str, ...]:
    """``namespace:name`` references to image pull Secrets (ECI's ``imagePullSecrets`` form)."""
    if isinstance(refs, str) or not isinstance(refs, Sequence):
        raise _bad("image_pull_secrets", refs, "give a list of 'namespace:secret-name' references")
    for i, ref in enumerate(refs):
        if not isinstance(ref, str) or not _PULL_SECRET_RE.match(ref):
            raise _bad(f"image_pull_secrets[{i}]", ref, "write it as 'namespace:secret-name' (lower-case "
                                                          "DNS names, like 'default:acr-credential')")
    return tuple(refs)


def _check_int(parameter: str, value: Any, low: int, high: int, unit: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(parameter, value, f"give a whole number of {unit} from {low} to {high}, or None")
    return value


def check_size(size: Any) -> int | None:
    """``image_cache_size`` in GB: None (ECI's default, 20) or 20..32768."""
    return _check_int("image_cache_size", size, IMAGE_CACHE_SIZE_MIN_GB, IMAGE_CACHE_SIZE_MAX_GB, "GB")


def check_retention(days: Any) -> int | None:
    """``retention_days``: None (never expires) or 1..65536."""
    return _check_int("retention_days", days, RETENTION_DAYS_MIN, RETENTION_DAYS_MAX, "days")


def check_vswitch_ids(ids: Any) -> tuple[str, ...]:
    """``vsw-...`` ids (the ``k8s.aliyun.com/eci-vswitch`` annotation)."""
    if isinstance(ids, str) or not isinstance(ids, Sequence):
        raise _bad("vswitch_ids", ids, "give a list of vSwitch ids like ['vsw-bp1xxxx', 'vsw-bp2xxxx']")
    for i, vsw in enumerate(ids):
        if not isinstance(vsw, str) or not _VSWITCH_RE.match(vsw):
            raise _bad(f"vswitch_ids[{i}]", vsw, "a vSwitch id is 'vsw-' followed by lower-case letters and digits")
    return tuple(ids)


def check_security_group(group: Any) -> str | None:
    """None or an ``sg-...`` id (the ``k8s.aliyun.com/eci-security-group`` annotation)."""
    if group is not None and (not isinstance(group, str) or not _SECURITY_GROUP_RE.match(group)):
        raise _bad("security_group_id", group, "a security group id is 'sg-' followed by lower-case letters "
                                                 "and digits, or None")
    return group


def check_cache_name(name: Any) -> str:
    """A valid object name (DNS subdomain, at most 253 characters)."""
    if not isinstance(name, str) or len(name) > 253 or not _NAME_RE.match(name):
        raise _bad("name", name, "an ImageCache name is lower-case letters, digits, '-' and '.', starting and "
                                   "ending with a letter or digit (or leave name unset to derive one)")
    return name


@dataclass(frozen=True)
class ImageCacheRequest:
    """What an ImageCache asks for (the operator's arguments, rendered and checked by :meth:`of`)."""

    images: tuple[str, ...]
    image_pull_secrets: tuple[str, ...] = ()
    image_cache_size: int | None = None
    retention_days: int | None = None
    enable_reuse: bool | None = None
    vswitch_ids: tuple[str, ...] = ()
    security_group_id: str | None = None

    @classmethod
    def of(cls, images: Any, image_pull_secrets: Any = (), image_cache_size: Any = None, retention_days: Any = None,
           enable_reuse: Any = None, vswitch_ids: Any = (), security_group_id: Any = None) -> ImageCacheRequest:
        """Check every argument (errors name the parameter and the fix) before anything is sent."""
        if enable_reuse is not None and not isinstance(enable_reuse, bool):
            raise _bad("enable_reuse", enable_reuse, "give True, False or None")
        return cls(check_images(images), check_pull_secrets(image_pull_secrets), check_size(image_cache_size),
                   check_retention(retention_days), enable_reuse, check_vswitch_ids(vswitch_ids),
                   check_security_group(security_group_id))

    def annotations(self) -> dict[str, str]:
        """The ImageCache's annotations this request sets."""
        annotations = {}
        if self.enable_reuse is not None:
            annotations[ANNOTATION_IMC_ENABLE_REUSE] = "true" if self.enable_reuse else "false"
        if self.vswitch_ids:
            annotations[ANNOTATION_VSWITCH] = ",".join(self.vswitch_ids)
        if self.security_group_id:
            annotations[ANNOTATION_SECURITY_GROUP] = self.security_group_id
        return annotations

    def body(self, name: str, labels: Mapping[str, str]) -> dict[str, Any]:
        """The ImageCache object to create."""
        spec: dict[str, Any] = {"images": list(self.images)}
        if self.image_pull_secrets:
            spec["imagePullSecrets"] = list(self.image_pull_secrets)
        if self.image_cache_size is not None:
            spec["imageCacheSize"] = self.image_cache_size
        if self.retention_days is not None:
            spec["retentionDays"] = self.retention_days
        meta: dict[str, Any] = {"name": name, "labels": dict(labels)}
        if self.annotations():
            meta["annotations"] = self.annotations()
        return {"apiVersion": API_VERSION, "kind": IMAGE_CACHE_KIND, "metadata": meta, "spec": spec}

    def holds_same_images(self, cache: Mapping[str, Any]) -> bool:
        """Whether ``cache`` holds the same set of images, pulled with the same set of Secrets."""
        spec = cache.get("spec") or {}
        return (set(spec.get("images") or ()) == set(self.images)
                and set(spec.get("imagePullSecrets") or ()) == set(self.image_pull_secrets))

    def differences(self, cache: Mapping[str, Any]) -> list[str]:
        """The fields where ``cache`` differs from this request, each ``field: theirs != ours``."""
        spec = cache.get("spec") or {}
        annotations = (cache.get("metadata") or {}).get("annotations") or {}
        ours = self.annotations()
        pairs: list[tuple[str, Any, Any]] = [
            ("spec.images", sorted(spec.get("images") or ()), sorted(self.images)),
            ("spec.imagePullSecrets", sorted(spec.get("imagePullSecrets") or ()), sorted(self.image_pull_secrets)),
            ("spec.imageCacheSize", spec.get("imageCacheSize") or IMAGE_CACHE_SIZE_DEFAULT_GB,
             self.image_cache_size or IMAGE_CACHE_SIZE_DEFAULT_GB),
            ("spec.retentionDays", spec.get("retentionDays"), self.retention_days),
        ]
        pairs += [(f"metadata.annotations[{key}]", annotations.get(key), ours.get(key))
                  for key in (ANNOTATION_IMC_ENABLE_REUSE, ANNOTATION_VSWITCH, ANNOTATION_SECURITY_GROUP)]
        return [f"{what}: {theirs!r} != {mine!r}" for what, theirs, mine in pairs if theirs != mine]


def derive_name(images: Sequence[str], dag_id: str, task_id: str) -> str:
    """A name that is the same for the same images (in any order) of the same DAG and task, so a
    retry or a restarted worker finds the object its earlier try created:
    ``<dag>-<task>-<12 hex of SHA-256>``, readable parts shortened to stay a 63-character DNS label."""
    digest = hashlib.sha256(json.dumps([dag_id, task_id, sorted(images)]).encode()).hexdigest()[:_HASH_LEN]
    readable = re.sub(r"[^a-z0-9]+", "-", f"{dag_id}-{task_id}".lower()).strip("-")
    readable = readable[: _DERIVED_NAME_MAX - _HASH_LEN - 1].rstrip("-")
    return f"{readable}-{digest}" if readable else f"imc-{digest}"


# ---------------------------------------------------------------------------- decisions


def reuse_candidate(request: ImageCacheRequest, caches: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The ``Ready`` cache (with an id) that holds the same images and Secrets as ``request``; the
    newest when several do (then by name, so the choice is stable). None when none does."""
    ready = [dict(c) for c in caches if _status(c).get("phase") == PHASE_READY and _status(c).get("imageCacheId")
             and request.holds_same_images(c)]
    ready.sort(key=lambda c: (str((c.get("metadata") or {}).get("creationTimestamp") or ""), _name(c)))
    return ready[-1] if ready else None


ExistingDecision = Literal["reattach", "replace", "conflict"]


def existing_decision(request: ImageCacheRequest, cache: Mapping[str, Any]) -> tuple[ExistingDecision, str]:
    """What to do with the object that already has our name: ``reattach`` (same spec, not
    ``Failed``: an earlier try or a crashed worker made it), ``replace`` (same spec but ``Failed``:
    delete it and create it again) or ``conflict`` (another spec), with the sentence saying why."""
    name = _name(cache)
    differences = request.differences(cache)
    if differences:
        return "conflict", (
            f"name={name!r}: ImageCache {name} already exists with another spec ({'; '.join(differences)}): give "
            "another name, or delete that ImageCache (kubectl delete imagecache " + name + ") to make it again")
    phase = _status(cache).get("phase")
    if image_cache_outcome(phase) == "failure":
        return "replace", f"ImageCache {name} exists but Failed ({failure_message(cache)}): making it again"
    return "reattach", f"ImageCache {name} already exists with this spec ({phase or 'no phase yet'}): reattaching"


def image_cache_id(cache: Mapping[str, Any]) -> str:
    """``status.imageCacheId`` of a ``Ready`` cache; :class:`ImageCacheFailedError` for a ``Failed``
    one; :class:`ArgoEciError` when it is not finished or has no ``imc-`` id."""
    status = _status(cache)
    outcome = image_cache_outcome(status.get("phase"))
    if outcome == "failure":
        raise ImageCacheFailedError(failure_message(cache))
    if outcome == "wait":
        raise ArgoEciError(f"ImageCache {_name(cache)} is still {status.get('phase') or 'Pending'}: it has no id yet")
    cache_id = str(status.get("imageCacheId") or "")
    if not cache_id.startswith(IMAGE_CACHE_ID_PREFIX):
        raise ArgoEciError(f"ImageCache {_name(cache)} is Ready but status.imageCacheId is {cache_id!r}, not an "
                           f"{IMAGE_CACHE_ID_PREFIX}... id")
    return cache_id


class ImageCacheFailedError(ArgoEciError):
    """An ImageCache ended ``Failed``; the message carries its last event's message."""


@dataclass(frozen=True)
class CacheRef:
    """Which ImageCache a task waits for; ``uid`` fences it against a same-named successor;
    ``owned``: this task made it (or an earlier try did), so ``delete_on_kill`` may delete it."""

    name: str
    uid: str
    owned: bool = True

    @classmethod
    def of(cls, cache: Mapping[str, Any], owned: bool = True) -> CacheRef:
        meta = cache.get("metadata") or {}
        return cls(str(meta["name"]), str(meta.get("uid") or ""), owned)


# ---------------------------------------------------------------------------- the lifecycle


class ImageCacheLifecycle:
    """Reuse, create or reattach, wait for and finish one ImageCache through an :class:`EciHook`."""

    def __init__(self, hook: EciHook, *, logger: Any = None) -> None:
        self.hook = hook
        self.log = logger or log

    def _existing(self, name: str) -> dict[str, Any] | None:
        try:
            return self.hook.get_image_cache(name)
        except NotFoundError:
            return None

    def find_reusable(self, request: ImageCacheRequest) -> dict[str, Any] | None:
        """A ``Ready`` cache holding the same images (:func:`reuse_candidate`), read with one LIST."""
        return reuse_candidate(request, self.hook.list_image_caches())

    def obtain(self, request: ImageCacheRequest, name: str, labels: Mapping[str, str], *,
               reuse_ready: bool) -> tuple[dict[str, Any], Literal["reattached", "reused", "created"]]:
        """The cache to wait for and how it was obtained: our name's object when it exists with
        this spec (``reattached``; a ``Failed`` one is deleted, fenced by uid, and made again), else a
        ``Ready`` cache of the same images when ``reuse_ready`` (``reused``), else a new one
        (``created``). Our name taken by another spec is a :class:`WorkflowSpecError` naming the fields."""
        existing = self._existing(name)
        if existing is None and reuse_ready:
            reusable = self.find_reusable(request)
            if reusable is not None:
                self.log.info("Reusing ImageCache %s (%s): it is Ready and holds the same images; nothing created",
                              _name(reusable), _status(reusable).get("imageCacheId"))
                return reusable, "reused"
        for _attempt in range(3):
            if existing is None:
                try:
                    created = self.hook.create_image_cache(request.body(name, labels))
                except ConflictError:  # made between our GET and POST (another try, another DAG)
                    existing = self._existing(name)
                    continue
                self.log.info("Created ImageCache %s (uid %s) for %d image(s)", name,
                              (created.get("metadata") or {}).get("uid"), len(request.images))
                return created, "created"
            decision, why = existing_decision(request, existing)
            if decision == "conflict":
                raise WorkflowSpecError(why)
            self.log.info("%s", why)
            if decision == "reattach":
                return existing, "reattached"
            try:
                self.hook.delete_image_cache(name, uid=str((existing.get("metadata") or {}).get("uid") or ""))
            except (NotFoundError, ConflictError):
                pass  # gone already, or replaced by someone else: read again
            existing = self._wait_gone(name)
        raise ArgoEciError(f"ImageCache {name} kept changing while it was being made: try again")

    def _wait_gone(self, name: str, seconds: float = 30.0) -> dict[str, Any] | None:
        """The object of ``name`` after a delete: None once it is gone, else what took its place."""
        end = time.monotonic() + seconds
        while True:
            current = self._existing(name)
            if current is None or image_cache_outcome(_status(current).get("phase")) != "failure":
                return current
            if time.monotonic() >= end:
                raise ArgoEciError(f"the Failed ImageCache {name} was not deleted within {seconds:.0f}s")
            time.sleep(0.2)

    def get(self, ref: CacheRef) -> dict[str, Any]:
        """The cache, fenced by uid: a same-named one with another uid is not ours (NotFoundError)."""
        cache = self.hook.get_image_cache(ref.name)
        uid = str((cache.get("metadata") or {}).get("uid") or "")
        if ref.uid and uid != ref.uid:
            raise NotFoundError(f"ImageCache {ref.name} was replaced (uid {uid} is not ours, {ref.uid})", status=404)
        return cache

    def wait(self, ref: CacheRef, *, poll_interval: float, deadline: float | None,
             progress: ProgressLog | None = None) -> dict[str, Any]:
        """Poll until the cache is ``Ready`` or ``Failed``, logging its progress as it changes;
        :class:`TimeoutError` past ``deadline`` (UNIX seconds)."""
        while True:
            cache = self.get(ref)
            if progress is not None:
                progress.report(cache)
            if image_cache_outcome(_status(cache).get("phase")) != "wait":
                return cache
            if deadline is not None and time.time() >= deadline:
                raise TimeoutError(f"ImageCache {ref.name} was not Ready before the timeout ({progress_line(cache)})")
            time.sleep(poll_interval if deadline is None else max(0.0, min(poll_interval, deadline - time.time())))

    def kill(self, ref: CacheRef, delete: bool) -> None:
        """``delete_on_kill`` (also on timeout): delete our cache while it is not Ready (fenced by uid)."""
        self.log.info("%s", run_operation(kill_steps(ref, delete), lambda step: step.call(self.hook)))


# ---------------------------------------------------------------------------- the kill


def kill_decision(cache: Mapping[str, Any] | None, ref: CacheRef, delete: bool) -> tuple[str, str]:
    """What killing the task does to its cache (as read now, None when gone): ``apply``, ``keep``,
    ``gone``, ``not_ours`` or ``finished``, with a sentence for the task log."""
    if not delete:
        return "keep", "delete_on_kill=False: left as it is"
    if not ref.owned:
        return "keep", "reused, not made by this task: left as it is"
    if cache is None:
        return "gone", "already gone"
    uid = str((cache.get("metadata") or {}).get("uid") or "")
    if ref.uid and uid != ref.uid:
        return "not_ours", f"now has uid {uid}, not ours ({ref.uid}): left alone"
    phase = _status(cache).get("phase")
    if image_cache_outcome(phase) == "success":
        return "finished", "already Ready: kept"
    return "apply", "delete_on_kill=True: deleting it"


def kill_steps(ref: CacheRef, delete: bool) -> Generator[HookCall, Any, str]:
    """A kill written once for the sync and the async path (:func:`fenced_kill_steps`): read,
    :func:`kill_decision`, delete fenced by uid; returns the sentence for the task log."""
    read = HookCall("get_image_cache", (ref.name,)) if delete and ref.owned else None
    return fenced_kill_steps(f"ImageCache {ref.name}", read,
                             HookCall("delete_image_cache", (ref.name,), {"uid": ref.uid}),
                             lambda current: kill_decision(current, ref, delete), "deleted (delete_on_kill=True)")


async def arun_kill(hook: EciHook, ref: CacheRef, delete: bool) -> str:
    """:func:`kill_steps` with the hook's async methods (the trigger's ``on_kill``)."""
    return await arun_operation(kill_steps(ref, delete), lambda step: step.acall(hook))
