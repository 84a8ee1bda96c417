"""One lifecycle for a Fluid DataLoad run from Airflow: check the request, create or reattach,
wait, report cache progress, finish, kill. The operator's sync path, its deferred path and the
trigger all call these functions; whether a DataLoad phase is terminal is decided by
:func:`dataload_outcome` only.
"""

from __future__ import annotations

import copy
import logging
import posixpath
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_argo_eci.errors import ArgoEciError, ConflictError, NotFoundError, WorkflowSpecError
from airflow_argo_eci.fluid_conventions import (
    API_VERSION,
    CONDITION_FAILED,
    DATALOAD_COMPLETE,
    DATALOAD_EXECUTING,
    DATALOAD_FAILED,
    DATALOAD_KIND,
    DATALOAD_PENDING,
    DATALOAD_POLICIES,
    DATASET_BOUND,
    DATASET_FAILED,
    DATASET_KIND,
    POLICY_CRON,
)
from airflow_argo_eci.object_refs import ObjectRef
from airflow_argo_eci.operation_drivers import HookCall, arun_operation, fenced_kill_steps, run_operation
from airflow_argo_eci.workflows import reattach_selector

if TYPE_CHECKING:
    from airflow_argo_eci.hooks.fluid import FluidHook

log = logging.getLogger(__name__)

DataLoadOutcome = Literal["wait", "success", "failure"]
#: what killing the task (or a timeout) does to its DataLoad
DATALOAD_KILL_ACTIONS: tuple[str, ...] = ("delete", "keep")


def dataload_outcome(phase: str | None) -> DataLoadOutcome:
    """``wait`` (no phase yet, ``Pending``, ``Executing``), ``success`` (``Complete``) or ``failure``
    (``Failed``); any other phase raises :class:`ArgoEciError`. A ``Cron`` DataLoad's first run
    decides its outcome as a ``Once`` load's does."""
    if phase in (None, "", DATALOAD_PENDING, DATALOAD_EXECUTING):
        return "wait"
    if phase == DATALOAD_COMPLETE:
        return "success"
    if phase == DATALOAD_FAILED:
        return "failure"
    raise ArgoEciError(f"unknown DataLoad phase {phase!r}: Fluid's are Pending, Executing, Complete, Failed")


def _where(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def failure_message(dataload: Mapping[str, Any]) -> str:
    """``DataLoad ns/name Failed: <reason>: <message>`` from its ``Failed`` condition."""
    status = dataload.get("status") or {}
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, Mapping)]
    failed = next((c for c in reversed(conditions) if c.get("type") == CONDITION_FAILED), None)
    text = f"DataLoad {_where(dataload)} {status.get('phase') or DATALOAD_FAILED}"
    if failed is None:
        return f"{text} (no Failed condition)"
    detail = ": ".join(str(part) for part in (failed.get("reason"), failed.get("message")) if part)
    return f"{text}: {detail}" if detail else text


def judge_dataload(namespace: str, dataload: Mapping[str, Any]) -> tuple[Literal["wait", "success", "failure",
                                                                                 "error"], str]:
    """``(outcome, message)`` of a DataLoad object (the watch hub's judge for DataLoads)."""
    phase = (dataload.get("status") or {}).get("phase")
    try:
        outcome = dataload_outcome(phase)
    except ArgoEciError as exc:
        return "error", f"DataLoad {_where(dataload)}: {exc}"
    if outcome == "failure":
        return outcome, failure_message(dataload)
    if outcome == "success":
        duration = (dataload.get("status") or {}).get("duration") or "?"
        return outcome, f"DataLoad {_where(dataload)} {phase} in {duration}"
    return outcome, ""


# ---------------------------------------------------------------------------- cache progress


def cached_percentage(dataset: Mapping[str, Any]) -> float | None:
    """``status.cacheStates.cachedPercentage`` (``"42.5%"``) as a number, None when absent."""
    text = str(((dataset.get("status") or {}).get("cacheStates") or {}).get("cachedPercentage") or "").strip()
    try:
        return float(text.rstrip("%")) if text else None
    except ValueError:
        return None


def progress_line(dataset: Mapping[str, Any]) -> str:
    """``Dataset ns/name: cached 1.00GiB of 10.00GiB (10.0%)`` from the Dataset's status."""
    status = dataset.get("status") or {}
    states = status.get("cacheStates") or {}
    cached = states.get("cached") or "0B"
    total = status.get("ufsTotal") or "?"
    percentage = states.get("cachedPercentage") or "?"
    return f"Dataset {_where(dataset)}: cached {cached} of {total} ({percentage})"


@dataclass
class ProgressLog:
    """Emits a Dataset's cache progress when it changed since the last line."""

    emit: Callable[[str], None]
    last: str = ""

    def report(self, dataset: Mapping[str, Any]) -> None:
        line = progress_line(dataset)
        if line != self.last:
            self.last = line
            self.emit(line)


def check_threshold(where: str, value: Any) -> None:
    """``min_cached_percentage`` is None or a number in 0..100."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not 0 <= value <= 100):
        raise WorkflowSpecError(f"{where}: min_cached_percentage must be a number from 0 to 100 or None "
                                f"(got {value!r})")


def dataset_readiness(dataset: Mapping[str, Any], min_cached_percentage: float | None) -> str:
    """``success`` (Bound, cached enough), ``failure`` (Failed) or ``wait``: the one decision of the
    sensor, the trigger and the Dataset operator."""
    phase = (dataset.get("status") or {}).get("phase")
    if phase == DATASET_FAILED:
        return "failure"
    if phase != DATASET_BOUND:
        return "wait"
    if min_cached_percentage is None:
        return "success"
    cached = cached_percentage(dataset)
    return "success" if cached is not None and cached >= min_cached_percentage else "wait"


# ---------------------------------------------------------------------------- the request


def mount_paths(dataset: Mapping[str, Any]) -> list[str]:
    """Where each of the Dataset's mounts appears in its namespace: ``path``, else ``/<name>`` (Fluid's rule)."""
    paths = []
    for mount in (dataset.get("spec") or {}).get("mounts") or []:
        if isinstance(mount, Mapping):
            paths.append(posixpath.normpath(str(mount.get("path") or f"/{mount.get('name', '')}")))
    return paths


def check_target_path(path: Any, dataset: Mapping[str, Any], where: str) -> str:
    """``path`` if it is absolute, normalised and inside one of the Dataset's mounts; else a
    :class:`WorkflowSpecError` naming ``where``."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise WorkflowSpecError(f"{where}: {path!r} is not an absolute path: give a path inside the dataset like "
                                "'/data' ('/' for all of it)")
    normal = posixpath.normpath(path)
    if "//" in path or normal != (path.rstrip("/") or "/"):
        raise WorkflowSpecError(f"{where}: {path!r} is not a normalised path: no '..', '.' or '//' segments")
    roots = mount_paths(dataset)
    if normal != "/" and roots and not any(
            root == "/" or normal == root or normal.startswith(root + "/") for root in roots):
        raise WorkflowSpecError(f"{where}: {path!r} is outside Dataset {_where(dataset)}, whose mounts are at "
                                f"{', '.join(roots)}")
    return path


def check_targets(targets: Any) -> list[dict[str, Any]]:
    """``target`` entries as Fluid spells them: ``[{"path": ..., "replicas": n}]``; a plain string
    is a path with one replica. Errors name the entry."""
    if targets is None:
        return []
    if isinstance(targets, (str, Mapping)) or not isinstance(targets, Sequence):
        raise WorkflowSpecError(f"target must be a list of paths or of {{'path': ..., 'replicas': n}}, got {targets!r}")
    result = []
    for i, entry in enumerate(targets):
        item = {"path": entry} if isinstance(entry, str) else dict(entry) if isinstance(entry, Mapping) else None
        if item is None or set(item) - {"path", "replicas"} or "path" not in item:
            raise WorkflowSpecError(f"target[{i}]: {entry!r} must be a path or {{'path': ..., 'replicas': n}}")
        replicas = item.setdefault("replicas", 1)
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise WorkflowSpecError(f"target[{i}].replicas must be an int >= 1, got {replicas!r}")
        result.append(item)
    return result


def check_policy(policy: Any, schedule: Any) -> None:
    """``policy`` is one of Fluid's; ``schedule`` (5 or 6 cron fields, or a ``@`` descriptor as Fluid's
    cron library takes) is required with ``Cron`` only."""
    if policy not in DATALOAD_POLICIES:
        raise WorkflowSpecError(f"policy={policy!r}: use one of {', '.join(DATALOAD_POLICIES)}")
    if policy == POLICY_CRON and (not isinstance(schedule, str) or not (
            len(schedule.split()) in (5, 6) or schedule.startswith("@"))):
        raise WorkflowSpecError(f"schedule={schedule!r}: policy 'Cron' needs a cron expression like '0 * * * *' "
                                "or a descriptor like '@hourly' / '@every 10m'")
    if policy != POLICY_CRON and schedule:
        raise WorkflowSpecError(f"schedule={schedule!r} is only used with policy 'Cron' (policy is {policy!r})")


@dataclass(frozen=True)
class DataLoadRequest:
    """What a DataLoad asks for (the operator's arguments, rendered)."""

    dataset: str
    load_metadata: bool = False
    target: list[dict[str, Any]] = field(default_factory=list)
    policy: str = "Once"
    schedule: str = ""
    ttl_seconds_after_finished: int | None = None
    pod_metadata: Mapping[str, Any] = field(default_factory=dict)

    def body(self, namespace: str, name: str, generate_name: str, labels: Mapping[str, str]) -> dict[str, Any]:
        """The DataLoad object to create."""
        spec: dict[str, Any] = {"dataset": {"name": self.dataset, "namespace": namespace},
                                "loadMetadata": self.load_metadata, "policy": self.policy}
        if self.target:
            spec["target"] = copy.deepcopy(self.target)
        if self.schedule:
            spec["schedule"] = self.schedule
        if self.ttl_seconds_after_finished is not None:
            spec["ttlSecondsAfterFinished"] = self.ttl_seconds_after_finished
        if self.pod_metadata:
            spec["podMetadata"] = copy.deepcopy(dict(self.pod_metadata))
        meta: dict[str, Any] = {"namespace": namespace, "labels": dict(labels)}
        if name:
            meta["name"] = name
        else:
            meta["generateName"] = generate_name
        return {"apiVersion": API_VERSION, "kind": DATALOAD_KIND, "metadata": meta, "spec": spec}


# ---------------------------------------------------------------------------- the lifecycle


class DataLoadLifecycle:
    """Check, create or reattach, wait for and finish one DataLoad through a :class:`FluidHook`."""

    def __init__(self, hook: FluidHook, namespace: str, *, logger: Any = None) -> None:
        self.hook = hook
        self.namespace = namespace
        self.log = logger or log

    def check(self, request: DataLoadRequest) -> dict[str, Any]:
        """Everything that can be checked before anything is created; returns the Dataset."""
        check_policy(request.policy, request.schedule)
        try:
            dataset = self.hook.get_object(DATASET_KIND, request.dataset, self.namespace)
        except NotFoundError as exc:
            raise WorkflowSpecError(f"dataset={request.dataset!r}: there is no Dataset {self.namespace}/"
                                    f"{request.dataset}: create it first (FluidDatasetOperator)") from exc
        for i, item in enumerate(request.target):
            check_target_path(item["path"], dataset, f"target[{i}].path")
        return dataset

    def find_existing(self, labels: Mapping[str, str]) -> dict[str, Any] | None:
        """The DataLoad an earlier try of the same task instance created and that is still worth
        reattaching to (not ``Failed``), the newest first."""
        candidates = self.hook.list_objects(DATALOAD_KIND, self.namespace, reattach_selector(labels))
        candidates.sort(key=lambda obj: obj["metadata"].get("creationTimestamp", ""), reverse=True)
        for obj in candidates:
            if dataload_outcome((obj.get("status") or {}).get("phase")) != "failure":
                return obj
        return None

    def submit(self, body: dict[str, Any], labels: Mapping[str, str], *, reattach: bool) -> tuple[ObjectRef, bool]:
        """Create ``body`` unless an earlier try's DataLoad can be reattached; returns the
        reference and whether it was reattached. A fixed name taken by this task instance's
        ``Failed`` DataLoad is deleted (fenced by its uid) and created again; taken by anything
        else it is a :class:`WorkflowSpecError`."""
        if reattach:
            existing = self.find_existing(labels)
            if existing is not None:
                ref = ObjectRef.of(existing)
                self.log.info("Reattaching to DataLoad %s/%s (uid %s) created by an earlier try",
                              ref.namespace, ref.name, ref.uid)
                return ref, True
        try:
            created = self.hook.create_object(DATALOAD_KIND, body, self.namespace)
        except ConflictError:
            created = self._replace_failed(body, labels)
        ref = ObjectRef.of(created)
        self.log.info("Created DataLoad %s/%s (uid %s)", ref.namespace, ref.name, ref.uid)
        return ref, False

    def _replace_failed(self, body: dict[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        current = self.hook.get_object(DATALOAD_KIND, name, self.namespace)
        ours = {k: v for k, v in labels.items() if not k.endswith("try-number")}
        current_labels = (current.get("metadata") or {}).get("labels") or {}
        failed = dataload_outcome((current.get("status") or {}).get("phase")) == "failure"
        if not failed or any(current_labels.get(k) != v for k, v in ours.items()):
            raise WorkflowSpecError(
                f"name={name!r}: DataLoad {self.namespace}/{name} already exists and is not a failed DataLoad of "
                "this task instance: choose another name, or leave name unset to generate one")
        self.hook.delete_object(DATALOAD_KIND, name, self.namespace, uid=str(current["metadata"].get("uid", "")))
        self.log.info("Deleted the failed DataLoad %s/%s of an earlier try", self.namespace, name)
        return self.hook.create_object(DATALOAD_KIND, body, self.namespace)

    def get(self, ref: ObjectRef) -> dict[str, Any]:
        """The DataLoad, fenced by uid: a same-named one with another uid is not ours (NotFoundError)."""
        obj = self.hook.get_object(DATALOAD_KIND, ref.name, ref.namespace)
        uid = (obj.get("metadata") or {}).get("uid", "")
        if ref.uid and uid != ref.uid:
            raise NotFoundError(f"DataLoad {ref.namespace}/{ref.name} was replaced (uid {uid} is not ours, "
                                f"{ref.uid})", status=404)
        return obj

    def report_progress(self, dataset: str, progress: ProgressLog) -> None:
        """Read the Dataset and log its cache progress when it changed; never fails the task."""
        try:
            progress.report(self.hook.get_object(DATASET_KIND, dataset, self.namespace))
        except ArgoEciError as exc:
            self.log.debug("no progress for Dataset %s/%s: %s", self.namespace, dataset, exc)

    def wait(self, ref: ObjectRef, *, poll_interval: float, deadline: float | None,
             on_poll: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Poll until the DataLoad's phase has an outcome; :class:`TimeoutError` past ``deadline``."""
        while True:
            obj = self.get(ref)
            if on_poll is not None:
                on_poll(obj)
            if dataload_outcome((obj.get("status") or {}).get("phase")) != "wait":
                return obj
            if deadline is not None and time.time() >= deadline:
                raise TimeoutError(f"DataLoad {ref.namespace}/{ref.name} did not finish before the timeout")
            time.sleep(poll_interval if deadline is None else max(0.0, min(poll_interval, deadline - time.time())))

    def finish(self, dataload: Mapping[str, Any], dataset: str) -> dict[str, Any]:
        """The XCom value of a ``Complete`` DataLoad: phase, duration, the Dataset's cacheStates;
        :class:`DataLoadFailedError` for a ``Failed`` one."""
        status = dataload.get("status") or {}
        outcome = dataload_outcome(status.get("phase"))
        if outcome == "failure":
            raise DataLoadFailedError(failure_message(dataload))
        if outcome == "wait":
            raise WorkflowSpecError(f"DataLoad is still {status.get('phase') or 'Pending'}: finish() needs a "
                                    "finished DataLoad")
        cache = (self.hook.get_object(DATASET_KIND, dataset, self.namespace).get("status") or {}).get("cacheStates")
        ref = ObjectRef.of(dataload)
        return {**ref.as_dict(), "phase": status.get("phase"), "duration": status.get("duration", ""),
                "cacheStates": dict(cache or {})}

    def apply_kill_action(self, ref: ObjectRef, action: str) -> None:
        """``on_kill_action`` (also on timeout): ``delete`` (fenced by uid) or ``keep``."""
        self.log.info("%s", run_operation(kill_steps(ref, action), lambda step: step.call(self.hook)))


class DataLoadFailedError(ArgoEciError):
    """A DataLoad ended ``Failed``; the message carries its condition's reason and message."""


# ---------------------------------------------------------------------------- the kill


def kill_decision(dataload: Mapping[str, Any] | None, uid: str, action: str) -> tuple[str, str]:
    """What killing the task does to its DataLoad (as read now, None when gone): ``apply``,
    ``keep``, ``gone``, ``not_ours`` or ``finished``, with a sentence for the task log."""
    if action not in DATALOAD_KILL_ACTIONS:
        raise WorkflowSpecError(f"on_kill_action={action!r}: use one of {', '.join(DATALOAD_KILL_ACTIONS)}")
    if action == "keep":
        return "keep", "on_kill_action=keep: left running"
    if dataload is None:
        return "gone", "already gone"
    meta = dataload.get("metadata") or {}
    if uid and meta.get("uid") != uid:
        return "not_ours", f"now has uid {meta.get('uid')}, not ours ({uid}): left alone"
    phase = (dataload.get("status") or {}).get("phase")
    if dataload_outcome(phase) != "wait":
        return "finished", f"already finished ({phase})"
    return "apply", f"applying on_kill_action={action}"


def kill_steps(ref: ObjectRef, action: str) -> Generator[HookCall, Any, str]:
    """A kill written once for the sync and the async path (:func:`fenced_kill_steps`): read,
    :func:`kill_decision`, delete fenced by uid; returns the sentence for the task log."""
    where = (DATALOAD_KIND, ref.name, ref.namespace)
    return fenced_kill_steps(f"DataLoad {ref.namespace}/{ref.name}",
                             HookCall("get_object", where) if action != "keep" else None,
                             HookCall("delete_object", where, {"uid": ref.uid}),
                             lambda current: kill_decision(current, ref.uid, action),
                             f"applied on_kill_action={action}")


async def arun_kill(hook: FluidHook, ref: ObjectRef, action: str) -> str:
    """:func:`kill_steps` with the hook's async methods (the trigger's ``on_kill``)."""
    return await arun_operation(kill_steps(ref, action), lambda step: step.acall(hook))
