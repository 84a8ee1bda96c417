"""``ArgoWorkflowTrigger``: wait in the triggerer for one Argo Workflow to finish.

The trigger does not open a request stream of its own: it subscribes to the process-wide
:mod:`~airflow_argo_eci.triggers.watch_hub`, which keeps one LIST+WATCH per (connection,
namespace) for every trigger of the triggerer (one LIST per interval when the transport cannot
watch). It yields exactly one :class:`~airflow.triggers.base.TriggerEvent`::

    {"status": "success" | "failure" | "timeout" | "error",
     "ids": {"name": ..., "namespace": ..., "uid": ...},
     "message": str, "phase": str, "resource_version": str,
     "log_cursor": {pod: [timestamp, count], ...}}

With ``get_logs=True`` the trigger prints the workflow's pod log lines into the task log while it
waits (``[node] line``, as the sync path does): the triggerer routes a trigger's log records to
its task instance's log, so they show in the Airflow UI as they come. It reads a pod's log only
when the hub's watch shows that pod appear, start or finish, and re-reads a pod that keeps
running at most every ``log_interval`` seconds; every read of the process goes through the hub's
per-channel rate limit (:class:`~airflow_argo_eci.triggers.watch_hub.LogReader`). The event hands
back the :class:`~airflow_argo_eci.lifecycle.LogCursor`, so the resumed task prints only the lines
the trigger did not (``log_cursor`` is ``{}`` when nothing was printed). A triggerer restart
starts a new trigger with an empty cursor, so its log may repeat lines the previous triggerer
printed; the resumed task still prints none twice after the last trigger's lines.

``failure`` covers a ``Failed``/``Error`` workflow (the message names the failed nodes), one that
was deleted before it finished, and one replaced by a same-named workflow with another uid.
Whether a phase is terminal is decided by :func:`airflow_argo_eci.workflows.phase_outcome` only.

When a user kills the deferred task (mark failed / success, clear), Airflow 3 cancels the trigger
and calls :meth:`ArgoWorkflowTrigger.on_kill` in the triggerer, which applies
``on_kill_action`` (stop / terminate / delete / keep) to the workflow, fenced by its uid.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.lifecycle import KILL_ACTIONS, LogCursor, WorkflowRef, arun_kill
from airflow_argo_eci.triggers.watch_hub import Subscription, WorkflowOutcome, get_hub

if TYPE_CHECKING:
    from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook

CLASSPATH = "airflow_argo_eci.triggers.argo.ArgoWorkflowTrigger"
#: the longest an ``on_kill`` API call may take (Airflow bounds ``on_kill`` too: [triggerer] on_kill_timeout)
ON_KILL_TIMEOUT = 20.0
#: default seconds between reads of a pod that keeps running without any change the watch shows
DEFAULT_LOG_INTERVAL = 30.0


class ArgoWorkflowTrigger(BaseTrigger):
    """Wait for workflow ``namespace/name`` (fenced by ``uid``) to reach a terminal phase.

    :param name: the workflow's name
    :param namespace: the workflow's namespace (required: the operator knows it after submitting)
    :param uid: the workflow's uid; a workflow with the same name but another uid means ours is
        gone (``failure`` event). Empty: any workflow of that name.
    :param argo_conn_id: the ``argo_workflows`` connection
    :param poll_interval: seconds between LISTs when the transport cannot watch (Argo Server)
    :param end_at: absolute deadline (UNIX timestamp, seconds); past it the trigger yields a
        ``timeout`` event. None: wait forever.
    :param on_kill_action: what :meth:`on_kill` does to the workflow when the deferred task is
        killed: ``stop`` (exit handlers run), ``terminate``, ``delete`` or ``keep``
    :param get_logs: print the workflow's pod log lines into the task log while waiting, and hand
        back the log cursor in the event
    :param log_interval: with ``get_logs``: seconds between reads of a pod that keeps running
        without a change the watch shows (0: read only when a pod appears, starts or finishes)
    """

    def __init__(
        self,
        *,
        name: str,
        namespace: str,
        uid: str = "",
        argo_conn_id: str = "argo_default",
        poll_interval: float = 10.0,
        end_at: float | None = None,
        on_kill_action: str = "stop",
        get_logs: bool = False,
        log_interval: float = DEFAULT_LOG_INTERVAL,
    ) -> None:
        super().__init__()
        for field, value in (("name", name), ("namespace", namespace), ("argo_conn_id", argo_conn_id)):
            if not isinstance(value, str) or not value:
                raise WorkflowSpecError(f"ArgoWorkflowTrigger: {field} must be a non-empty string (got {value!r})")
        if not isinstance(uid, str):
            raise WorkflowSpecError(f"ArgoWorkflowTrigger: uid must be a string, '' for any uid (got {uid!r})")
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)) or not poll_interval > 0:
            raise WorkflowSpecError(
                f"ArgoWorkflowTrigger: poll_interval must be a number of seconds > 0 (got {poll_interval!r})"
            )
        if end_at is not None and (
            isinstance(end_at, bool) or not isinstance(end_at, (int, float)) or not math.isfinite(end_at)
        ):
            raise WorkflowSpecError(
                f"ArgoWorkflowTrigger: end_at must be a UNIX timestamp in seconds or None (got {end_at!r})"
            )
        if on_kill_action not in KILL_ACTIONS:
            raise WorkflowSpecError(
                f"ArgoWorkflowTrigger: on_kill_action={on_kill_action!r} is not supported: "
                f"use one of {', '.join(KILL_ACTIONS)}"
            )
        if not isinstance(get_logs, bool):
            raise WorkflowSpecError(f"ArgoWorkflowTrigger: get_logs must be True or False (got {get_logs!r})")
        if isinstance(log_interval, bool) or not isinstance(log_interval, (int, float)) or not (
            math.isfinite(log_interval) and log_interval >= 0
        ):
            raise WorkflowSpecError(
                f"ArgoWorkflowTrigger: log_interval must be a number of seconds >= 0, 0 to read a pod only when "
                f"it starts or finishes (got {log_interval!r})"
            )
        self.name = name
        self.namespace = namespace
        self.uid = uid
        self.argo_conn_id = argo_conn_id
        self.poll_interval = poll_interval
        self.end_at = end_at
        self.on_kill_action = on_kill_action
        self.get_logs = get_logs
        self.log_interval = log_interval
        self._cursor = LogCursor()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the keyword arguments that re-create this trigger."""
        return CLASSPATH, {
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.uid,
            "argo_conn_id": self.argo_conn_id,
            "poll_interval": self.poll_interval,
            "end_at": self.end_at,
            "on_kill_action": self.on_kill_action,
            "get_logs": self.get_logs,
            "log_interval": self.log_interval,
        }

    def _hook(self) -> ArgoWorkflowsHook:
        from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook

        return ArgoWorkflowsHook(argo_conn_id=self.argo_conn_id)

    def _event(self, status: str, message: str, phase: str = "", uid: str = "", rv: str = "") -> TriggerEvent:
        return TriggerEvent({
            "status": status,
            "ids": {"name": self.name, "namespace": self.namespace, "uid": uid or self.uid},
            "message": message,
            "phase": phase,
            "resource_version": rv,
            "log_cursor": self._cursor.to_dict(),
        })

    def _timeout_event(self) -> TriggerEvent:
        deadline = datetime.fromtimestamp(self.end_at or 0, tz=timezone.utc).isoformat(timespec="seconds")
        return self._event("timeout", f"Workflow {self.namespace}/{self.name} did not finish by {deadline}")

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Yield exactly one event: the workflow's outcome, or ``timeout`` past ``end_at``."""
        remaining = None if self.end_at is None else self.end_at - time.time()
        if remaining is not None and remaining <= 0:
            yield self._timeout_event()
            return
        subscription = get_hub().subscribe(
            self.argo_conn_id, self.namespace, self.name, self.uid, self._hook, poll_interval=self.poll_interval,
            logs=self.get_logs,
        )
        outcome: WorkflowOutcome | None
        try:
            waiting = self._follow_logs(subscription) if self.get_logs else subscription.wait()
            outcome = await asyncio.wait_for(waiting, remaining)
        except asyncio.TimeoutError:
            outcome = None
        finally:
            subscription.close()  # also on CancelledError: leave the shared watch, yield nothing
        if outcome is None:
            yield self._timeout_event()
        else:
            yield self._event(outcome.status, outcome.message, outcome.phase, outcome.uid, outcome.resource_version)

    async def _follow_logs(self, sub: Subscription) -> WorkflowOutcome:
        """Print new pod lines until the outcome is decided: pods the watch shows changing at once,
        pods that keep running every ``log_interval`` seconds. Each read waits for the hub's rate
        limit; a decided outcome wins over any read still waiting (the resumed task prints the rest)."""
        loop = asyncio.get_running_loop()
        last_read: dict[str, float] = {}
        while not sub.done:
            now = loop.time()
            due: dict[str, str] = {}
            next_due: float | None = None
            if self.log_interval > 0:
                for pod, display in sub.running_pods().items():
                    at = last_read.get(pod, now) + self.log_interval
                    if at <= now:
                        due[pod] = display
                    else:
                        next_due = at if next_due is None else min(next_due, at)
            if not sub.pending and not due:
                changed = asyncio.ensure_future(sub.changed.wait())
                waiters: set[asyncio.Future[Any]] = {changed, sub.future}
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED,
                                       timeout=None if next_due is None else max(0.0, next_due - now))
                finally:
                    changed.cancel()
                continue
            pods = {**due, **sub.take_pods()}
            for pod, display in pods.items():
                try:
                    lines = await sub.read_log(pod, self._cursor.since_time(pod))
                except Exception as exc:  # logs never fail the wait: the resumed task reads them again
                    self.log.debug("No log for pod %s yet: %s", pod, exc)
                    lines = []
                if lines is None:
                    break  # the outcome is decided
                last_read[pod] = loop.time()
                for text in self._cursor.new_lines(pod, lines):
                    self.log.info("[%s] %s", display, text)
        return await sub.wait()

    async def on_kill(self) -> None:
        """The user killed the deferred task: apply ``on_kill_action`` to our workflow.

        Airflow 3.3's triggerer calls this (bounded by ``[triggerer] on_kill_timeout``) only on a
        user action (mark failed/success, clear), never on triggerer restart, redistribution or
        trigger timeout. A workflow that already finished, is gone, or now has another uid is left
        alone.
        """
        if self.on_kill_action == "keep":
            return
        hook = self._hook()
        try:
            await asyncio.wait_for(self._kill(hook), ON_KILL_TIMEOUT)
        finally:
            closer = getattr(hook, "aclose", None)
            if closer is not None:
                await closer()

    async def _kill(self, hook: ArgoWorkflowsHook) -> None:
        """The sync path's kill (:func:`~airflow_argo_eci.lifecycle.kill_steps`), driven asynchronously."""
        ref = WorkflowRef(self.name, self.namespace, self.uid)
        self.log.info("Task killed. %s", await arun_kill(hook, ref, self.on_kill_action))
