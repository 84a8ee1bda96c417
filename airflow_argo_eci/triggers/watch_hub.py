"""One shared watch per (connection, namespace) for every trigger in a triggerer process.

A triggerer runs thousands of triggers on one asyncio event loop. Instead of each trigger
opening its own request stream (or polling its own workflow), :class:`WatchHub` keeps one
*channel* per ``(connection id, namespace)``; triggers subscribe to a workflow by name and uid
and get an :class:`asyncio.Future` that resolves once, with a :class:`WorkflowOutcome`, when that
workflow reaches a terminal phase, is deleted, or is replaced by another workflow with the same
name (another uid).

A channel works like a Kubernetes informer:

1. LIST the namespace's workflows (remembering the list's ``resourceVersion``) and evaluate
   every subscriber against the fresh list;
2. WATCH from that ``resourceVersion`` with bookmarks, tracking the newest version seen; when a
   stream ends normally (server timeout, connection closed) the watch resumes from it;
3. on ``410 Gone`` (:class:`~airflow_argo_eci.errors.GoneError`, the version was compacted away)
   RELIST and re-evaluate every subscriber, so a terminal event that fell into the gap is not
   missed; a subscriber whose workflow is missing from a list is verified with one GET;
4. on transient errors back off (exponential, jittered, capped) and retry; a permanent error
   (401/403, invalid request, a missing or invalid connection) resolves every current subscriber
   with ``error``;
5. when the transport cannot watch (``supports_watch`` is False, e.g. the Argo Server REST API)
   poll with ONE LIST per interval for all subscribers of the namespace.

Pod logs while waiting (opt-in per subscriber, ``logs=True``): every object the channel already
receives (watch event, LIST item, verifying GET) is compared, for log subscribers only, with the
pods that subscriber last saw; a pod that appeared, started or finished is queued for one log read
and the subscriber woken (:meth:`Subscription.take_pods`). Nothing is polled for a workflow whose
pods did not change. Every log read of a channel goes through one
:class:`~airflow_argo_eci.triggers.pod_logs.LogReader`: a token bucket (``log_rate`` reads per
second, ``log_burst`` at once) and a few reads in flight, so the extra requests of a whole
triggerer stay bounded however many triggers wait. The subscriber itself reads and prints (in its
own task, so its log lines go to its task's log) and keeps the cursor.

A subscriber that joins a running channel is answered from the channel's cache at once when the
workflow is already terminal; a name the cache does not know is looked up with one GET. The
channel task stops when its last subscriber leaves and starts again (with a fresh LIST) on the
next. Hubs are kept per running event loop, so the module is safe when tests (or anything else)
create a new loop per use; the triggerer itself runs one loop and therefore one hub.

Only :func:`airflow_argo_eci.workflows.phase_outcome` decides whether a phase is terminal and
whether it succeeded, the same function the synchronous path uses.

Other kinds with a phase (Fluid's DataLoads) share the machinery: ``subscribe(..., kind=...)``
takes a :class:`WatchedKind` (the kind's name for messages and its own phase -> outcome decision,
:data:`WORKFLOW_KIND` by default) and a source of that kind's objects; each kind has channels of
its own.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from airflow_argo_eci.errors import ArgoApiError, ArgoEciError, GoneError, NotFoundError
from airflow_argo_eci.hooks.argo_offload import offload_version
from airflow_argo_eci.hooks.argo_requests import WorkflowList
from airflow_argo_eci.triggers.pod_logs import (
    DEFAULT_LOG_BURST,
    DEFAULT_LOG_RATE,
    LOGGED_PHASES,
    LogReader,
    pod_states,
)
from airflow_argo_eci.workflows import OffloadedNodesError, failure_message, phase_outcome

log = logging.getLogger(__name__)

OutcomeStatus = Literal["success", "failure", "error"]

#: server-side timeout asked for each watch request; the stream then resumes from its last version
DEFAULT_WATCH_TIMEOUT_SECONDS = 300
#: first and largest pause after a failed request (seconds)
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0


class WorkflowSource(Protocol):
    """What the hub needs from a client: the async part of ``ArgoWorkflowsHook``."""

    @property
    def supports_watch(self) -> bool:
        """False when the transport can only list (the hub then polls)."""
        ...

    async def aget_workflow(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """One workflow; raises :class:`~airflow_argo_eci.errors.NotFoundError` when it does not exist."""
        ...

    async def alist_workflows(
        self, namespace: str | None = None, label_selector: str = "", field_selector: str = ""
    ) -> WorkflowList:
        """All workflows of the namespace; the list carries its ``resource_version``."""
        ...

    def awatch_workflows(
        self,
        namespace: str | None = None,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
        timeout_seconds: int = 300,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """``(event type, object)`` pairs including ``BOOKMARK``; raises ``GoneError`` on 410."""
        ...

    async def ahydrate(self, workflow: dict[str, Any]) -> dict[str, Any]:
        """``workflow`` with the nodes Argo offloaded read back (``ArgoWorkflowsHook.ahydrate``);
        raises :class:`~airflow_argo_eci.workflows.OffloadedNodesError` when they cannot be read."""
        ...


SourceFactory = Callable[[], WorkflowSource]


@dataclass(frozen=True)
class WorkflowOutcome:
    """How a watched workflow ended, as seen by the hub.

    :param status: ``success`` / ``failure`` (from ``phase_outcome``, or the workflow was deleted
        or replaced) / ``error`` (the API could not be used, e.g. credentials rejected)
    :param uid: the uid the subscriber waited for, or the one seen when it gave none
    :param phase: the workflow's last phase seen (``""`` when deleted before it had one)
    :param message: a sentence for the task log; for failures it names the failed nodes
    :param resource_version: the resourceVersion of the object the outcome was decided on
    """

    status: OutcomeStatus
    name: str
    namespace: str
    uid: str
    phase: str
    message: str
    resource_version: str = ""


@dataclass(frozen=True)
class _Snapshot:
    """What the channel keeps per workflow: enough to answer a subscriber, not the whole object."""

    uid: str
    phase: str
    resource_version: str
    outcome: Literal["wait", "success", "failure", "error"]
    message: str


def _rv_older(candidate: str, current: str) -> bool:
    """Whether resourceVersion ``candidate`` is older than ``current`` (only when both are numbers)."""
    if candidate.isdigit() and current.isdigit():
        return int(candidate) < int(current)
    return False


SnapshotOutcome = Literal["wait", "success", "failure", "error"]


@dataclass(frozen=True)
class WatchedKind:
    """A kind of object the hub watches: ``title`` names it in messages (``Workflow``) and
    ``judge(namespace, obj)`` decides ``(outcome, message)`` from an object of it: ``wait``,
    ``success``, ``failure`` or ``error`` (a phase it does not know). A ``cluster_scoped`` kind
    (ECI's ImageCaches) is subscribed to with namespace ``""``: one channel per connection."""

    title: str
    judge: Callable[[str, Mapping[str, Any]], tuple[SnapshotOutcome, str]]
    cluster_scoped: bool = False


def _judge_workflow(namespace: str, obj: Mapping[str, Any]) -> tuple[SnapshotOutcome, str]:
    """A workflow's outcome by :func:`~airflow_argo_eci.workflows.phase_outcome`."""
    phase = str((obj.get("status") or {}).get("phase") or "")
    name = (obj.get("metadata") or {}).get("name", "")
    try:
        outcome: SnapshotOutcome = phase_outcome(phase)
    except ArgoEciError as exc:  # a phase this package does not know: report it, do not wait forever
        return "error", f"Workflow {namespace}/{name}: {exc}"
    if outcome == "failure":
        return outcome, failure_message(obj)
    if outcome == "success":
        return outcome, f"Workflow {namespace}/{name} {phase}"
    return outcome, ""


#: Argo Workflows, the hub's default kind
WORKFLOW_KIND = WatchedKind("Workflow", _judge_workflow)


def _snapshot(kind: WatchedKind, namespace: str, obj: Mapping[str, Any]) -> _Snapshot:
    meta = obj.get("metadata") or {}
    phase = str((obj.get("status") or {}).get("phase") or "")
    outcome, message = kind.judge(namespace, obj)
    return _Snapshot(str(meta.get("uid") or ""), phase, str(meta.get("resourceVersion") or ""), outcome, message)


class _Backoff:
    """Exponential backoff with full jitter between ``BACKOFF_INITIAL`` and ``BACKOFF_MAX``."""

    def __init__(self, initial: float = BACKOFF_INITIAL, maximum: float = BACKOFF_MAX) -> None:
        self.initial = initial
        self.maximum = maximum
        self.current = initial

    def reset(self) -> None:
        self.current = self.initial

    async def sleep(self) -> None:
        delay = random.uniform(self.current / 2, self.current)  # noqa: S311 - jitter, not crypto
        self.current = min(self.current * 2, self.maximum)
        await asyncio.sleep(delay)


class Subscription:
    """One waiter for one workflow. Await :meth:`wait`; always :meth:`close` (idempotent)."""

    def __init__(self, channel: _Channel, name: str, uid: str, poll_interval: float, logs: bool = False) -> None:
        self.name = name
        self.uid = uid
        self.poll_interval = poll_interval
        self.logs = logs
        self._channel: _Channel | None = channel
        self.future: asyncio.Future[WorkflowOutcome] = asyncio.get_running_loop().create_future()
        self._lookup: asyncio.Task[None] | None = None
        #: log subscribers: the pods last seen ({pod: (display, phase)}), those to read, a wake-up
        self.pods: dict[str, tuple[str, str]] = {}
        self.pending: dict[str, str] = {}
        self.changed = asyncio.Event()
        #: an offloaded object waiting for its nodes, the read in flight, and whether reads fail for good
        self._offloaded: Mapping[str, Any] | None = None
        self._hydrating: asyncio.Task[None] | None = None
        self._hydrate_refused = False

    def offer(self, obj: Mapping[str, Any]) -> None:
        """A fresh object of our workflow: queue the pods that appeared, started or finished. An
        object whose nodes Argo offloaded is first hydrated (:meth:`_hydrate`)."""
        if not self.logs or self.done:
            return
        if self.uid and str((obj.get("metadata") or {}).get("uid") or "") != self.uid:
            return
        if offload_version(obj):
            self._hydrate(obj)
            return
        current = pod_states(obj)
        for pod, (display, phase) in current.items():
            if phase in LOGGED_PHASES and self.pods.get(pod, ("", ""))[1] != phase:
                self.pending[pod] = display
        self.pods = current
        if self.pending:
            self.changed.set()

    def _hydrate(self, obj: Mapping[str, Any]) -> None:
        """Read the offloaded nodes of ``obj`` with the channel's client (``ahydrate``) and offer the
        result: one read in flight, then the newest object that arrived meanwhile. A connection that
        cannot read them (no Argo Server) is told once in the log; the resumed task reads them."""
        self._offloaded = obj
        if self._hydrate_refused or (self._hydrating is not None and not self._hydrating.done()):
            return
        channel = self._channel
        if channel is not None and channel.source is not None:
            self._hydrating = asyncio.ensure_future(self._hydrate_pending(channel.source.ahydrate))

    async def _hydrate_pending(self, hydrate: Callable[[dict[str, Any]], Any]) -> None:
        while self._offloaded is not None and not self.done:
            obj, self._offloaded = self._offloaded, None
            try:
                full = await hydrate(dict(obj))
            except OffloadedNodesError as exc:
                log.warning("Not following the pod logs of workflow %s while its nodes are offloaded: %s",
                            self.name, exc)
                self._hydrate_refused = True
                return
            except Exception as exc:  # logs never fail the wait: the next object tries again
                log.debug("Cannot read the offloaded nodes of workflow %s: %s", self.name, exc)
                continue
            if not offload_version(full):
                self.offer(full)

    def take_pods(self) -> dict[str, str]:
        """The pods queued for a log read (``{pod: display}``), in node order; clears the queue."""
        pending, self.pending = self.pending, {}
        self.changed.clear()
        return pending

    def running_pods(self) -> dict[str, str]:
        """``{pod: display}`` of the pods last seen Running."""
        return {pod: display for pod, (display, phase) in self.pods.items() if phase == "Running"}

    async def read_log(self, pod: str, since_time: str | None) -> list[tuple[str, str]] | None:
        """One rate-bounded log read of ``pod``; None when the outcome was decided (or the
        subscription closed) before the hub's token bucket let it through."""
        channel = self._channel
        if channel is None or self.done:
            return None
        reader = channel.log_reader()
        acquire = asyncio.ensure_future(reader.acquire())
        waiters: set[asyncio.Future[Any]] = {acquire, self.future}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not acquire.done():
                acquire.cancel()
        if not acquire.done() or acquire.cancelled() or self.done:
            return None
        return await reader.read(pod, since_time, self.name)

    @property
    def done(self) -> bool:
        """Whether the outcome is decided."""
        return self.future.done()

    async def wait(self) -> WorkflowOutcome:
        """The outcome, once decided. Cancelling the caller leaves the subscription open; close it."""
        return await asyncio.shield(self.future)

    def resolve(self, outcome: WorkflowOutcome) -> None:
        """Decide the outcome (the first decision wins)."""
        if not self.future.done():
            self.future.set_result(outcome)

    def close(self) -> None:
        """Leave the channel; the channel's task stops when its last subscriber leaves."""
        if self._lookup is not None and not self._lookup.done():
            self._lookup.cancel()
        if self._hydrating is not None and not self._hydrating.done():
            self._hydrating.cancel()
        if not self.future.done():
            self.future.cancel()
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.remove(self)


class _Channel:
    """The shared LIST+WATCH (or LIST poll) of one namespace through one connection."""

    def __init__(
        self, hub: WatchHub, key: Hashable, namespace: str, source_factory: SourceFactory, watch_timeout: int,
        kind: WatchedKind = WORKFLOW_KIND,
    ) -> None:
        self.hub = hub
        self.kind = kind
        self.key = key
        self.namespace = namespace
        self.source_factory = source_factory
        self.watch_timeout = watch_timeout
        self.subscribers: dict[str, set[Subscription]] = {}
        self.cache: dict[str, _Snapshot] = {}
        self.synced = False
        self.source: WorkflowSource | None = None
        self.task: asyncio.Task[None] | None = None
        self._log_reader: LogReader | None = None

    def log_reader(self) -> LogReader:
        """The channel's log reader (created on first use, closed when the channel stops)."""
        if self._log_reader is None:
            self._log_reader = LogReader(self.namespace, self.source_factory, self.hub.log_rate, self.hub.log_burst)
        return self._log_reader

    # ------------------------------------------------------------------ subscribers

    def add(self, sub: Subscription) -> None:
        self.subscribers.setdefault(sub.name, set()).add(sub)
        if self.task is None:
            self.synced = False
            self.cache.clear()
            self.task = asyncio.get_running_loop().create_task(
                self._run(), name=f"argo-watch-hub {self.namespace}"
            )
            return
        if not self.synced:
            return  # the LIST in flight (or the next one) evaluates it
        snap = self.cache.get(sub.name)
        if snap is None or (sub.logs and snap.outcome == "wait"):
            self._verify(sub)  # the cache keeps no pods: a log subscriber reads the object once
        else:
            self._evaluate(sub, snap)

    def remove(self, sub: Subscription) -> None:
        subs = self.subscribers.get(sub.name)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.subscribers[sub.name]
        if not self.subscribers:
            self.stop()

    def stop(self) -> None:
        """Cancel the channel task (its ``finally`` releases the source) and forget the cache."""
        task, self.task = self.task, None
        self.synced = False
        self.cache.clear()
        reader, self._log_reader = self._log_reader, None
        if reader is not None:
            self.hub.log_reads += reader.reads
            reader.close()
        if task is not None and not task.done():
            task.cancel()
        self.hub._forget(self)

    def _poll_interval(self) -> float:
        return min((s.poll_interval for subs in self.subscribers.values() for s in subs), default=10.0)

    # ------------------------------------------------------------------ evaluation

    def _evaluate(self, sub: Subscription, snap: _Snapshot) -> None:
        """Answer ``sub`` from ``snap``; a uid other than the subscriber's is verified with a GET first,
        because a lagging stream or an older LIST may still show a previous workflow of that name."""
        if sub.uid and snap.uid != sub.uid:
            self._verify(sub)
        else:
            self._decide(sub, snap)

    def _decide(self, sub: Subscription, snap: _Snapshot) -> None:
        if snap.outcome != "wait":
            sub.resolve(WorkflowOutcome(
                snap.outcome, sub.name, self.namespace, sub.uid or snap.uid, snap.phase, snap.message,
                snap.resource_version,
            ))

    def _where(self, name: str) -> str:
        """``namespace/name``, or ``name`` alone for a cluster-scoped kind."""
        return f"{self.namespace}/{name}" if self.namespace else name

    def _replaced(self, sub: Subscription, other_uid: str, rv: str) -> WorkflowOutcome:
        return WorkflowOutcome(
            "failure", sub.name, self.namespace, sub.uid, "",
            f"{self.kind.title} {self._where(sub.name)} (uid {sub.uid}) is gone: a "
            f"{self.kind.title.lower()} with the same name "
            f"but uid {other_uid} replaced it",
            rv,
        )

    def _deleted(self, sub: Subscription, phase: str, rv: str) -> WorkflowOutcome:
        uid = f" (uid {sub.uid})" if sub.uid else ""
        last = f" while {phase}" if phase else ""
        return WorkflowOutcome(
            "failure", sub.name, self.namespace, sub.uid, phase,
            f"{self.kind.title} {self._where(sub.name)}{uid} was deleted{last} before it finished", rv,
        )

    def _apply(self, obj: Mapping[str, Any]) -> None:
        """An ADDED/MODIFIED object (or one from a LIST or GET): update the cache, answer subscribers."""
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        if not name:
            return
        old = self.cache.get(name)
        if old is not None and _rv_older(str(meta.get("resourceVersion") or ""), old.resource_version):
            return  # older than what the cache has (a late GET answer, a lagging stream)
        snap = _snapshot(self.kind, self.namespace, obj)
        self.cache[name] = snap
        for sub in list(self.subscribers.get(name, ())):
            sub.offer(obj)
            self._evaluate(sub, snap)

    def _apply_deleted(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        uid = str(meta.get("uid") or "")
        old = self.cache.get(name)
        if old is not None and (not uid or old.uid == uid):
            del self.cache[name]
        phase = str((obj.get("status") or {}).get("phase") or "")
        for sub in list(self.subscribers.get(name, ())):
            if not sub.uid or sub.uid == uid:
                # a workflow deleted after it finished still counts as finished
                if self.kind.judge(self.namespace, obj)[0] != "wait":
                    self._decide(sub, _snapshot(self.kind, self.namespace, obj))
                else:
                    sub.resolve(self._deleted(sub, phase, str(meta.get("resourceVersion") or "")))

    def _apply_list(self, items: list[dict[str, Any]]) -> None:
        """A full LIST replaces the cache; every subscriber is re-evaluated; missing ones are verified."""
        previous = self.cache
        self.cache = {}
        for obj in items:
            meta = obj.get("metadata") or {}
            name = str(meta.get("name") or "")
            old = previous.get(name)
            rv = str(meta.get("resourceVersion") or "")
            if old is not None and _rv_older(rv, old.resource_version):
                self.cache[name] = old
            elif name:
                self.cache[name] = _snapshot(self.kind, self.namespace, obj)
                for sub in self.subscribers.get(name, ()):
                    sub.offer(obj)
        self.synced = True
        for name, subs in list(self.subscribers.items()):
            snap = self.cache.get(name)
            for sub in list(subs):
                if snap is not None:
                    self._evaluate(sub, snap)
                elif not sub.done:
                    self._verify(sub)

    def _verify(self, sub: Subscription) -> None:
        """GET one workflow the cache cannot answer (joined late, or missing from a LIST)."""
        if sub._lookup is None or sub._lookup.done():
            sub._lookup = asyncio.get_running_loop().create_task(self._lookup(sub), name=f"argo-get {sub.name}")

    async def _lookup(self, sub: Subscription) -> None:
        backoff = _Backoff()
        while not sub.done:
            source = self.source
            if source is None:
                await asyncio.sleep(0.05)  # the channel task is (re)creating its source
                continue
            try:
                obj = await source.aget_workflow(sub.name, self.namespace)
            except NotFoundError:
                if not sub.done:
                    sub.resolve(self._deleted(sub, "", ""))
                return
            except ArgoApiError as exc:
                if not exc.transient:
                    sub.resolve(self._error(sub.name, sub.uid, exc))
                    return
                log.warning("GET workflow %s/%s failed, retrying: %s", self.namespace, sub.name, exc)
                await backoff.sleep()
                continue
            except Exception as exc:  # a missing/invalid connection, or a bug: retrying cannot help
                sub.resolve(self._error(sub.name, sub.uid, exc))
                return
            snap = _snapshot(self.kind, self.namespace, obj)
            if sub.uid and snap.uid != sub.uid:
                sub.resolve(self._replaced(sub, snap.uid, snap.resource_version))
            else:
                self._decide(sub, snap)
            self._apply(obj)
            return

    def _error(self, name: str, uid: str, exc: BaseException) -> WorkflowOutcome:
        return WorkflowOutcome(
            "error", name, self.namespace, uid, "",
            f"Cannot watch {self.kind.title.lower()} {self._where(name)}: {type(exc).__name__}: {exc}",
        )

    def _fail_all(self, exc: BaseException) -> None:
        for subs in list(self.subscribers.values()):
            for sub in list(subs):
                sub.resolve(self._error(sub.name, sub.uid, exc))

    # ------------------------------------------------------------------ the shared stream

    async def _run(self) -> None:
        try:
            source = self.source_factory()
        except Exception as exc:  # a broken connection definition: nobody can be answered
            log.error("Cannot create the workflow client for namespace %s: %s", self.namespace, exc)
            self._fail_all(exc)
            self._finished()
            return
        self.source = source
        try:
            await self._loop(source)
        finally:
            self._finished()
            if self.source is source:
                self.source = None
            await _close_source(source)

    def _finished(self) -> None:
        if self.task is asyncio.current_task():
            self.task = None
            self.synced = False

    async def _loop(self, source: WorkflowSource) -> None:
        backoff = _Backoff()
        resource_version = ""
        need_list = True
        expired_again = False
        loop = asyncio.get_running_loop()
        while self.subscribers:
            try:
                if need_list:
                    items = await source.alist_workflows(self.namespace)
                    resource_version = items.resource_version
                    self._apply_list(items)
                    need_list = False
                if not source.supports_watch:
                    backoff.reset()
                    await asyncio.sleep(self._poll_interval())
                    need_list = True
                    continue
                started, events = loop.time(), 0
                async for event_type, obj in source.awatch_workflows(
                    self.namespace, resource_version=resource_version, timeout_seconds=self.watch_timeout
                ):
                    events += 1
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
                    if rv:
                        resource_version = rv
                    if event_type == "DELETED":
                        self._apply_deleted(obj)
                    elif event_type in ("ADDED", "MODIFIED"):
                        self._apply(obj)
                    backoff.reset()
                    expired_again = False
                # the server ended the stream (timeoutSeconds, closed): resume from the last version
                if not events and loop.time() - started < 1.0:
                    await backoff.sleep()  # streams that end at once: do not spin
            except GoneError as exc:
                log.info("Watch of workflows in %s expired (%s); relisting", self.namespace, exc.message)
                need_list = True
                self.synced = False
                if expired_again:
                    await backoff.sleep()  # expired right after a relist: the API is churning; slow down
                expired_again = True
            except ArgoApiError as exc:
                if not exc.transient:
                    log.error("Watching workflows in %s failed: %s", self.namespace, exc)
                    self._fail_all(exc)
                    return
                log.warning("Watching workflows in %s failed, retrying: %s", self.namespace, exc)
                await backoff.sleep()
            except Exception as exc:  # a missing/invalid connection, or a bug: retrying cannot help
                log.exception("Watching workflows in %s failed", self.namespace)
                self._fail_all(exc)
                return


async def _close_source(source: WorkflowSource) -> None:
    """Release a source's connections when it offers a way to (``aclose()`` / ``close()``)."""
    closer = getattr(source, "aclose", None) or getattr(source, "close", None)
    if closer is None:
        return
    try:
        result = closer()
        if asyncio.iscoroutine(result):
            await result
    except Exception as exc:  # closing is best effort
        log.debug("Closing the workflow client failed: %s", exc)


class WatchHub:
    """The channels of one event loop. Get it with :func:`get_hub` from inside the loop."""

    def __init__(
        self,
        *,
        watch_timeout: int = DEFAULT_WATCH_TIMEOUT_SECONDS,
        log_rate: float = DEFAULT_LOG_RATE,
        log_burst: int = DEFAULT_LOG_BURST,
    ) -> None:
        if not log_rate > 0 or log_burst < 1:
            raise ValueError(f"log_rate must be > 0 and log_burst >= 1 (got {log_rate}, {log_burst})")
        self.watch_timeout = watch_timeout
        self.log_rate = log_rate
        self.log_burst = log_burst
        #: log reads of channels that have stopped (see :meth:`log_read_count`)
        self.log_reads = 0
        self._channels: dict[Hashable, _Channel] = {}

    def subscribe(
        self,
        conn_id: str,
        namespace: str,
        name: str,
        uid: str,
        source_factory: SourceFactory,
        *,
        poll_interval: float = 10.0,
        logs: bool = False,
        kind: WatchedKind = WORKFLOW_KIND,
    ) -> Subscription:
        """Wait for workflow ``namespace/name`` (fenced by ``uid`` when given) through ``conn_id``.

        ``source_factory`` builds the client when the channel for ``(conn_id, namespace)`` starts;
        it is not called when the channel already runs. ``poll_interval`` is used only when the
        transport cannot watch (the channel polls at its subscribers' smallest interval).
        ``logs``: also track the workflow's pods for :meth:`Subscription.take_pods` /
        :meth:`Subscription.read_log`. ``kind``: another :class:`WatchedKind` (e.g. Fluid's
        DataLoads), whose objects ``source_factory``'s source reads; it has channels of its own.
        """
        if not name or (not namespace and not kind.cluster_scoped):
            raise ValueError(f"name and namespace are required (got name={name!r}, namespace={namespace!r})")
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be > 0 seconds (got {poll_interval})")
        key = (conn_id, namespace) if kind is WORKFLOW_KIND else (conn_id, namespace, kind.title)
        channel = self._channels.get(key)
        if channel is None:
            channel = self._channels[key] = _Channel(self, key, namespace, source_factory, self.watch_timeout,
                                                     kind)
        sub = Subscription(channel, name, uid, poll_interval, logs)
        channel.add(sub)
        return sub

    def channel_count(self) -> int:
        """How many (connection, namespace) channels currently run."""
        return len(self._channels)

    def subscriber_count(self) -> int:
        """How many subscriptions are open across all channels."""
        return sum(len(s) for c in self._channels.values() for s in c.subscribers.values())

    def log_read_count(self) -> int:
        """How many pod log reads this hub's channels have issued (running and stopped ones)."""
        running = sum(c._log_reader.reads for c in self._channels.values() if c._log_reader is not None)
        return self.log_reads + running

    def _forget(self, channel: _Channel) -> None:
        if self._channels.get(channel.key) is channel:
            del self._channels[channel.key]


_HUBS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WatchHub] = weakref.WeakKeyDictionary()


def get_hub() -> WatchHub:
    """The hub of the running event loop (created on first use)."""
    loop = asyncio.get_running_loop()
    hub = _HUBS.get(loop)
    if hub is None:
        hub = _HUBS[loop] = WatchHub()
    return hub
