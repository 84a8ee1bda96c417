"""One lifecycle for a workflow submitted from Airflow: submit (or reattach), watch, finish,
clean up. The operator's sync path, its deferred path and the sensor all call this; the phase ->
outcome decision is :func:`airflow_argo_eci.workflows.phase_outcome`, nowhere else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_argo_eci import operation_drivers
from airflow_argo_eci.errors import (
    ArgoEciError,
    ConflictError,
    InvalidError,
    NotFoundError,
    WorkflowFailedError,
    WorkflowSpecError,
)
from airflow_argo_eci.object_refs import ObjectRef
from airflow_argo_eci.operation_drivers import arun_operation, run_operation
from airflow_argo_eci.workflows import (
    failed_nodes,
    failure_message,
    phase_outcome,
    reattach_selector,
    workflow_result,
)

if TYPE_CHECKING:
    from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook

log = logging.getLogger(__name__)

KillAction = Literal["stop", "terminate", "delete", "keep"]
FinishAction = Literal["keep", "delete", "delete_succeeded"]
KILL_ACTIONS: tuple[str, ...] = ("stop", "terminate", "delete", "keep")
FINISH_ACTIONS: tuple[str, ...] = ("keep", "delete", "delete_succeeded")


#: which workflow a task owns (the shared :class:`~airflow_argo_eci.object_refs.ObjectRef`)
WorkflowRef = ObjectRef


@dataclass
class LogCursor:
    """Where log streaming stopped, per pod: the last timestamp printed and how many lines carried
    exactly that timestamp (the API's ``sinceTime`` has one-second resolution, so the same lines
    come back and are skipped). Serialisable, so a deferred or retried task resumes without
    printing a line twice."""

    positions: dict[str, tuple[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, list[Any]]:
        return {pod: [ts, n] for pod, (ts, n) in self.positions.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> LogCursor:
        """The cursor :meth:`to_dict` wrote (e.g. a trigger event's ``log_cursor``); None or ``{}``:
        nothing printed yet. Anything else raises :class:`WorkflowSpecError` naming the entry."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise WorkflowSpecError(f"log_cursor must be a mapping of pod name to [timestamp, count] (got {data!r})")
        positions: dict[str, tuple[str, int]] = {}
        for pod, value in data.items():
            if (not isinstance(pod, str) or not isinstance(value, (list, tuple)) or len(value) != 2
                    or not isinstance(value[0], str) or isinstance(value[1], bool) or not isinstance(value[1], int)
                    or value[1] < 0):
                raise WorkflowSpecError(
                    f"log_cursor[{pod!r}] must be [timestamp, count >= 0] as LogCursor.to_dict() writes it "
                    f"(got {value!r})")
            positions[pod] = (value[0], value[1])
        return cls(positions)

    def since_time(self, pod: str) -> str | None:
        """The ``sinceTime`` to ask for: the last printed timestamp, cut to whole seconds."""
        if pod not in self.positions:
            return None
        ts = self.positions[pod][0]
        return ts[:19] + "Z" if len(ts) >= 19 else ts

    def new_lines(self, pod: str, lines: list[tuple[str, str]]) -> list[str]:
        """The lines not printed yet, in order; advances the cursor."""
        last_ts, seen = self.positions.get(pod, ("", 0))
        out: list[str] = []
        count_at_last = 0
        for ts, text in lines:
            if ts < last_ts:
                continue
            if ts == last_ts:
                count_at_last += 1
                if count_at_last <= seen:
                    continue
                seen = count_at_last
            else:
                last_ts, seen, count_at_last = ts, 1, 1
            out.append(text)
        if last_ts:
            self.positions[pod] = (last_ts, seen)
        return out


class WorkflowLifecycle:
    """Submit, watch, finish and clean up one workflow through an :class:`ArgoWorkflowsHook`."""

    def __init__(self, hook: ArgoWorkflowsHook, namespace: str, *, logger: Any = None) -> None:
        self.hook = hook
        self.namespace = namespace
        self.log = logger or log

    # ------------------------------------------------------------------ submit / reattach

    def find_existing(self, labels: Mapping[str, str]) -> dict[str, Any] | None:
        """The workflow an earlier try of the same task instance created and that is still worth
        reattaching to: running, or succeeded (a finished success is never run again). A failed
        one is left alone: the retry submits anew."""
        selector = reattach_selector(labels)
        candidates = self.hook.list_workflows(namespace=self.namespace, label_selector=selector)
        candidates.sort(key=lambda wf: wf["metadata"].get("creationTimestamp", ""), reverse=True)
        for wf in candidates:
            phase = (wf.get("status") or {}).get("phase")
            if phase_outcome(phase) in ("wait", "success"):
                return wf
        return None

    def submit(self, body: dict[str, Any], labels: Mapping[str, str], *, reattach: bool) -> tuple[WorkflowRef, bool]:
        """Create ``body`` (which already carries ``labels``) unless an earlier try's workflow can
        be reattached. Returns the reference and whether it was reattached."""
        if reattach:
            existing = self.find_existing(labels)
            if existing is not None:
                ref = WorkflowRef.from_workflow(existing)
                self.log.info("Reattaching to workflow %s/%s (uid %s) created by an earlier try",
                              ref.namespace, ref.name, ref.uid)
                return ref, True
        created = self.hook.create_workflow(body, namespace=self.namespace)
        ref = WorkflowRef.from_workflow(created)
        self.log.info("Submitted workflow %s/%s (uid %s)", ref.namespace, ref.name, ref.uid)
        return ref, False

    # ------------------------------------------------------------------ watch

    def get(self, ref: WorkflowRef) -> dict[str, Any]:
        """The workflow, fenced by uid: a same-named workflow with another uid is not ours."""
        wf = self.hook.get_workflow(ref.name, namespace=ref.namespace)
        uid = (wf.get("metadata") or {}).get("uid", "")
        if ref.uid and uid != ref.uid:
            raise NotFoundError(
                f"workflow {ref.namespace}/{ref.name} was replaced (uid {uid} is not ours, {ref.uid})", status=404)
        return wf

    def wait(
        self,
        ref: WorkflowRef,
        *,
        poll_interval: float,
        deadline: float | None,
        on_poll: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the workflow's phase has an outcome; ``deadline`` is a ``time.time()``.
        Raises :class:`TimeoutError` past the deadline (the caller applies the kill action)."""
        while True:
            wf = self.get(ref)
            if on_poll is not None:
                on_poll(wf)
            if phase_outcome((wf.get("status") or {}).get("phase")) != "wait":
                return wf
            if deadline is not None and time.time() >= deadline:
                raise TimeoutError(f"workflow {ref.namespace}/{ref.name} did not finish before the timeout")
            time.sleep(poll_interval if deadline is None else max(0.0, min(poll_interval, deadline - time.time())))

    # ------------------------------------------------------------------ logs

    def stream_logs(self, workflow: dict[str, Any], cursor: LogCursor, emit: Callable[[str], None]) -> int:
        """Print every new log line of every pod of ``workflow`` as ``[node] line``; returns the
        number of lines printed. Log failures never fail the task (nor do offloaded nodes that
        cannot be read: :meth:`finish` reports those)."""
        printed = 0
        try:
            workflow = self.hook.hydrate(workflow)
        except ArgoEciError as exc:
            self.log.warning("cannot list the workflow's pods for their logs: %s", exc)
            return 0
        for display, pod in self.hook.pods_of(workflow):
            try:
                lines = self.hook.read_pod_log(pod, namespace=self.namespace, since_time=cursor.since_time(pod),
                                               workflow=workflow["metadata"]["name"])
            except ArgoEciError as exc:
                self.log.debug("no logs for pod %s yet: %s", pod, exc)
                continue
            for text in cursor.new_lines(pod, lines):
                emit(f"[{display}] {text}")
                printed += 1
        return printed

    # ------------------------------------------------------------------ finish / clean up

    def finish(self, workflow: dict[str, Any]) -> dict[str, Any]:
        """The XCom return value of a succeeded workflow; raises for a failed one. Offloaded
        nodes are read first (:meth:`ArgoWorkflowsHook.hydrate`)."""
        workflow = self.hook.hydrate(workflow)
        phase = (workflow.get("status") or {}).get("phase")
        outcome = phase_outcome(phase)
        if outcome == "success":
            return workflow_result(workflow)
        if outcome == "failure":
            raise WorkflowFailedError(failure_message(workflow), phase=phase or "", failed_nodes=failed_nodes(workflow))
        raise WorkflowSpecError(f"workflow is still {phase or 'Pending'}: finish() needs a finished workflow")

    def apply_finish_action(self, ref: WorkflowRef, action: str, succeeded: bool) -> None:
        """``on_finish_action``: keep, delete, or delete only when it succeeded."""
        if action == "delete" or (action == "delete_succeeded" and succeeded):
            self._delete(ref)

    def apply_kill_action(self, ref: WorkflowRef, action: str) -> None:
        """``on_kill_action`` (also on timeout): stop (exit handlers run), terminate, delete, keep.

        Runs :func:`kill_steps`, as the trigger's ``on_kill`` does asynchronously: fenced by
        ``ref.uid``, a finished workflow, a gone one and a same-named successor are left alone, and
        the request itself carries the uid as a precondition."""
        if action not in KILL_ACTIONS:
            raise WorkflowSpecError(f"on_kill_action={action!r}: use one of {', '.join(KILL_ACTIONS)}")
        self.log.info("%s", run_kill(self.hook, ref, action))

    def _delete(self, ref: WorkflowRef) -> None:
        try:
            self.hook.delete_workflow(ref.name, namespace=ref.namespace, uid=ref.uid)
        except NotFoundError:
            pass
        except ConflictError:
            self.log.info("Workflow %s/%s was replaced by a same-named successor: not deleted", ref.namespace, ref.name)


KillDecision = Literal["apply", "keep", "gone", "not_ours", "finished"]
#: the ``message`` of a stop made by a kill (shown by the Argo Server in the workflow's status)
KILL_STOP_MESSAGE = "stopped by Airflow"


def kill_decision(workflow: Mapping[str, Any] | None, uid: str, action: str) -> tuple[KillDecision, str]:
    """What killing the task does to its workflow (``workflow`` as read now, None when gone):
    the one decision behind the sync path (``on_kill``, timeouts) and the trigger's ``on_kill``.
    Returns the decision and a sentence for the task log."""
    if action == "keep":
        return "keep", "on_kill_action=keep: left running"
    if workflow is None:
        return "gone", "already gone"
    meta = workflow.get("metadata") or {}
    if uid and meta.get("uid") != uid:
        return "not_ours", f"now has uid {meta.get('uid')}, not ours ({uid}): left alone"
    phase = (workflow.get("status") or {}).get("phase")
    if phase_outcome(phase) != "wait":
        return "finished", f"already finished ({phase})"
    return "apply", f"applying on_kill_action={action}"


HookMethod = Literal["get_workflow", "stop_workflow", "terminate_workflow", "delete_workflow"]


class WorkflowCall(operation_drivers.HookCall):
    """One call of an :class:`ArgoWorkflowsHook` method on workflow ``name``:
    ``hook.<method>(name, **kwargs)`` by :meth:`call` (sync) or the ``a``-prefixed async method
    with the same arguments by :meth:`acall`."""

    def __init__(self, method: HookMethod, name: str, kwargs: Mapping[str, Any] | None = None) -> None:
        super().__init__(method, (name,), {} if kwargs is None else kwargs)


#: the name :class:`WorkflowCall` is also imported by
HookCall = WorkflowCall


def kill_call(ref: WorkflowRef, action: str) -> WorkflowCall:
    """The request a kill with ``action`` (stop, terminate or delete) makes, fenced by ``ref.uid``."""
    fenced: dict[str, Any] = {"namespace": ref.namespace, "uid": ref.uid}
    if action == "stop":
        return WorkflowCall("stop_workflow", ref.name, {**fenced, "message": KILL_STOP_MESSAGE})
    if action == "terminate":
        return WorkflowCall("terminate_workflow", ref.name, fenced)
    if action == "delete":
        return WorkflowCall("delete_workflow", ref.name, fenced)
    raise WorkflowSpecError(f"on_kill_action={action!r} makes no request: use one of stop, terminate, delete")


def kill_outcome(ref: WorkflowRef, action: str, error: Exception | None) -> str:
    """The task log's sentence for the outcome of :func:`kill_call` (``error`` None: it succeeded).

    A gone workflow, a same-named successor (the uid fence refused) and a refused request (e.g. the
    Argo Server will not stop a workflow that just finished) are outcomes, not failures; any
    other error is raised."""
    where = f"{ref.namespace}/{ref.name}"
    if error is None:
        return f"Workflow {where}: applied on_kill_action={action}"
    if isinstance(error, NotFoundError):
        return f"Workflow {where} is already gone"
    if isinstance(error, ConflictError):
        return f"Workflow {where} was replaced by a same-named successor: left alone"
    if isinstance(error, InvalidError):
        return f"Workflow {where}: on_kill_action={action} not applied: {error}"
    raise error


def kill_steps(ref: WorkflowRef, action: str) -> Generator[WorkflowCall, Any, str]:
    """A kill, written once for the sync and the async path: read the workflow, :func:`kill_decision`,
    :func:`kill_call`, :func:`kill_outcome`. Yields the hook calls to make (a call's error is thrown
    in) and returns the sentence for the task log; :func:`run_kill` / :func:`arun_kill` drive it."""
    where = f"{ref.namespace}/{ref.name}"
    current: dict[str, Any] | None = None
    if action != "keep":
        try:
            current = yield WorkflowCall("get_workflow", ref.name, {"namespace": ref.namespace})
        except NotFoundError:
            current = None
    decision, why = kill_decision(current, ref.uid, action)
    if decision != "apply":
        return f"Workflow {where}: {why}"
    try:
        yield kill_call(ref, action)
    except (NotFoundError, ConflictError, InvalidError) as exc:
        return kill_outcome(ref, action, exc)
    return kill_outcome(ref, action, None)


def run_kill(hook: ArgoWorkflowsHook, ref: WorkflowRef, action: str) -> str:
    """:func:`kill_steps` with the hook's sync methods; returns the sentence for the task log."""
    return run_operation(kill_steps(ref, action), lambda step: step.call(hook))


async def arun_kill(hook: ArgoWorkflowsHook, ref: WorkflowRef, action: str) -> str:
    """:func:`kill_steps` with the hook's async methods; returns the sentence for the task log."""
    return await arun_operation(kill_steps(ref, action), lambda step: step.acall(hook))


def validate_action(name: str, value: str, allowed: tuple[str, ...]) -> str:
    """Check an ``on_*_action`` argument at DAG-parse time."""
    if value not in allowed:
        raise WorkflowSpecError(f"{name}={value!r} is not supported: use one of {', '.join(allowed)}")
    return value
