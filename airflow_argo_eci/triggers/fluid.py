"""Fluid triggers: ``FluidDataLoadTrigger`` (one DataLoad to finish, on the shared watch hub) and
``FluidDatasetTrigger`` (a Dataset to be Bound, optionally cached to a percentage; polled).

:class:`FluidDataLoadTrigger` subscribes to the process-wide
:mod:`~airflow_argo_eci.triggers.watch_hub` with the DataLoad kind, so every DataLoad trigger of
a triggerer shares one LIST+WATCH of DataLoads per (connection, namespace). It yields exactly one
event (:class:`~airflow_argo_eci.triggers.watched_object.WatchedObjectTrigger`), shaped as the Argo
trigger's::

    {"status": "success" | "failure" | "timeout" | "error",
     "ids": {"name": ..., "namespace": ..., "uid": ...},
     "message": str, "phase": str, "resource_version": str, "log_cursor": {}}

While it waits it reads the DataLoad's Dataset every ``progress_interval`` seconds and logs its
cache progress (cached bytes and percentage) into the task log when it changed. When the user
kills the deferred task, :meth:`FluidDataLoadTrigger.on_kill` applies ``on_kill_action``
(``delete``, fenced by the uid, or ``keep``).

:class:`FluidDatasetTrigger` polls one Dataset (a Dataset has no terminal phase to watch for and
each waiter has its own threshold, so the hub's shared decision does not fit), with backoff on
transient errors, and yields one event: ``success`` once it is ``Bound`` (and cached enough),
``failure`` when it is ``Failed`` or gone, ``timeout`` past ``end_at``, ``error`` when the API
cannot be used.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_argo_eci.errors import ArgoApiError, NotFoundError, WorkflowSpecError
from airflow_argo_eci.fluid_conventions import DATALOAD_KIND, DATASET_KIND
from airflow_argo_eci.fluid_lifecycle import (
    DATALOAD_KILL_ACTIONS,
    ObjectRef,
    ProgressLog,
    arun_kill,
    check_threshold,
    dataset_readiness,
    judge_dataload,
    progress_line,
)
from airflow_argo_eci.hooks.api_retry import backoff_delay
from airflow_argo_eci.triggers.watch_hub import WatchedKind
from airflow_argo_eci.triggers.watched_object import WatchedObjectTrigger, check_non_empty, check_timing, deadline_text

if TYPE_CHECKING:
    from airflow_argo_eci.hooks.fluid import FluidHook

DATALOAD_CLASSPATH = "airflow_argo_eci.triggers.fluid.FluidDataLoadTrigger"
DATASET_CLASSPATH = "airflow_argo_eci.triggers.fluid.FluidDatasetTrigger"
#: the watch hub's view of DataLoads
DATALOAD_WATCHED = WatchedKind(DATALOAD_KIND, judge_dataload)


def _check_common(trigger: str, name: str, namespace: str, conn_id: str, interval: float, interval_name: str,
                  end_at: float | None) -> None:
    check_non_empty(trigger, (("name", name), ("namespace", namespace), ("argo_conn_id", conn_id)))
    check_timing(trigger, interval, interval_name, end_at)


class FluidDataLoadTrigger(WatchedObjectTrigger):
    """Wait for DataLoad ``namespace/name`` (fenced by ``uid``) to be ``Complete`` or ``Failed``.

    :param name: the DataLoad's name
    :param namespace: its namespace
    :param uid: its uid ('' for any DataLoad of that name)
    :param dataset: its Dataset's name, whose cache progress is logged while waiting ('' for none)
    :param argo_conn_id: the ``argo_workflows`` connection (``kubernetes`` transport)
    :param progress_interval: seconds between reads of the Dataset's cache progress
    :param end_at: absolute deadline (UNIX seconds); past it a ``timeout`` event. None: no deadline.
    :param on_kill_action: ``delete`` or ``keep``: what :meth:`on_kill` does to the DataLoad
    """

    watched = DATALOAD_WATCHED

    def __init__(
        self,
        *,
        name: str,
        namespace: str,
        uid: str = "",
        dataset: str = "",
        argo_conn_id: str = "argo_default",
        progress_interval: float = 10.0,
        end_at: float | None = None,
        on_kill_action: str = "delete",
    ) -> None:
        super().__init__()
        _check_common("FluidDataLoadTrigger", name, namespace, argo_conn_id, progress_interval, "progress_interval",
                      end_at)
        if not isinstance(uid, str) or not isinstance(dataset, str):
            raise WorkflowSpecError(f"FluidDataLoadTrigger: uid and dataset must be strings (got {uid!r}, "
                                    f"{dataset!r})")
        if on_kill_action not in DATALOAD_KILL_ACTIONS:
            raise WorkflowSpecError(f"FluidDataLoadTrigger: on_kill_action={on_kill_action!r}: use one of "
                                    f"{', '.join(DATALOAD_KILL_ACTIONS)}")
        self.name = name
        self.namespace = namespace
        self.uid = uid
        self.dataset = dataset
        self.argo_conn_id = argo_conn_id
        self.progress_interval = progress_interval
        self.end_at = end_at
        self.on_kill_action = on_kill_action

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the keyword arguments that re-create this trigger."""
        return DATALOAD_CLASSPATH, {
            "name": self.name, "namespace": self.namespace, "uid": self.uid, "dataset": self.dataset,
            "argo_conn_id": self.argo_conn_id, "progress_interval": self.progress_interval,
            "end_at": self.end_at, "on_kill_action": self.on_kill_action,
        }

    def _hook(self) -> FluidHook:
        from airflow_argo_eci.hooks.fluid import FluidHook

        return FluidHook(argo_conn_id=self.argo_conn_id)

    def _source(self) -> Any:
        from airflow_argo_eci.hooks.fluid import FluidObjectSource

        return FluidObjectSource(self._hook(), DATALOAD_KIND)

    def _timeout_message(self, deadline: str) -> str:
        return f"DataLoad {self.namespace}/{self.name} did not finish by {deadline}"

    def _reports_progress(self) -> bool:
        """The Dataset's cache progress is logged when the DataLoad's Dataset is known."""
        return bool(self.dataset)

    def _progress_log(self) -> ProgressLog:
        return ProgressLog(self.log.info)

    async def _read_progress(self, hook: FluidHook) -> Mapping[str, Any]:
        return await hook.aget_object(DATASET_KIND, self.dataset, self.namespace)

    def _progress_subject(self) -> str:
        return f"Dataset {self.namespace}/{self.dataset}"

    def _kills(self) -> bool:
        """:meth:`on_kill` applies ``on_kill_action`` to our DataLoad unless it is ``keep``."""
        return self.on_kill_action != "keep"

    async def _kill(self, hook: FluidHook) -> str:
        return await arun_kill(hook, ObjectRef(self.name, self.namespace, self.uid), self.on_kill_action)


class FluidDatasetTrigger(BaseTrigger):
    """Wait for Dataset ``namespace/name`` to be ``Bound`` and, with ``min_cached_percentage``,
    cached to at least that percentage.

    :param name: the Dataset's name
    :param namespace: its namespace
    :param argo_conn_id: the ``argo_workflows`` connection (``kubernetes`` transport)
    :param poll_interval: seconds between reads
    :param min_cached_percentage: also wait until ``cacheStates.cachedPercentage`` reaches it (0..100)
    :param end_at: absolute deadline (UNIX seconds); past it a ``timeout`` event
    """

    def __init__(
        self,
        *,
        name: str,
        namespace: str,
        argo_conn_id: str = "argo_default",
        poll_interval: float = 10.0,
        min_cached_percentage: float | None = None,
        end_at: float | None = None,
    ) -> None:
        super().__init__()
        _check_common("FluidDatasetTrigger", name, namespace, argo_conn_id, poll_interval, "poll_interval", end_at)
        check_threshold("FluidDatasetTrigger", min_cached_percentage)
        self.name = name
        self.namespace = namespace
        self.argo_conn_id = argo_conn_id
        self.poll_interval = poll_interval
        self.min_cached_percentage = min_cached_percentage
        self.end_at = end_at

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the keyword arguments that re-create this trigger."""
        return DATASET_CLASSPATH, {
            "name": self.name, "namespace": self.namespace, "argo_conn_id": self.argo_conn_id,
            "poll_interval": self.poll_interval, "min_cached_percentage": self.min_cached_percentage,
            "end_at": self.end_at,
        }

    def _event(self, status: str, message: str, dataset: dict[str, Any] | None = None) -> TriggerEvent:
        meta = (dataset or {}).get("metadata") or {}
        return TriggerEvent({
            "status": status, "ids": {"name": self.name, "namespace": self.namespace, "uid": meta.get("uid", "")},
            "message": message, "phase": str(((dataset or {}).get("status") or {}).get("phase") or ""),
            "resource_version": str(meta.get("resourceVersion") or ""), "log_cursor": {},
        })

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Yield exactly one event (see the module docstring)."""
        from airflow_argo_eci.hooks.fluid import FluidHook

        hook = FluidHook(argo_conn_id=self.argo_conn_id)
        progress = ProgressLog(self.log.info)
        failures = 0
        try:
            while True:
                if self.end_at is not None and time.time() >= self.end_at:
                    yield self._event("timeout", f"Dataset {self.namespace}/{self.name} was not ready by "
                                                 f"{deadline_text(self.end_at)}")
                    return
                try:
                    dataset = await hook.aget_object(DATASET_KIND, self.name, self.namespace)
                except NotFoundError as exc:
                    yield self._event("failure", f"Dataset {self.namespace}/{self.name} does not exist: {exc}")
                    return
                except ArgoApiError as exc:
                    if not exc.transient:
                        yield self._event("error", f"Cannot read Dataset {self.namespace}/{self.name}: {exc}")
                        return
                    failures += 1
                    await asyncio.sleep(min(backoff_delay(failures, 1.0), self.poll_interval * 4))
                    continue
                except Exception as exc:  # a missing/invalid connection: retrying cannot help
                    yield self._event("error", f"Cannot read Dataset {self.namespace}/{self.name}: "
                                               f"{type(exc).__name__}: {exc}")
                    return
                failures = 0
                progress.report(dataset)
                decision = dataset_readiness(dataset, self.min_cached_percentage)
                if decision != "wait":
                    yield self._event(decision, progress_line(dataset), dataset)
                    return
                await asyncio.sleep(self.poll_interval)
        finally:
            await hook.aclose()
