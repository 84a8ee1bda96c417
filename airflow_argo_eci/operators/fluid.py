"""Fluid operators: ``FluidDataLoadOperator`` (warm a Dataset's cache with a DataLoad) and
``FluidDatasetOperator`` (create or adopt a Dataset and its runtime over an OSS prefix).

Thin by design, as :mod:`airflow_argo_eci.operators.argo` is: arguments become a request, and
:mod:`airflow_argo_eci.fluid_lifecycle` (shared by the sync path, the deferred path and the
trigger) does the rest. Importing this module is cheap (no kubernetes imports).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, conf

from airflow_argo_eci.errors import NotFoundError, WorkflowSpecError
from airflow_argo_eci.fluid_conventions import DATALOAD_POLICIES
from airflow_argo_eci.fluid_datasets import DatasetRequest, DatasetSetup
from airflow_argo_eci.fluid_lifecycle import (
    DATALOAD_KILL_ACTIONS,
    DataLoadFailedError,
    DataLoadLifecycle,
    DataLoadRequest,
    ObjectRef,
    ProgressLog,
    check_targets,
)
from airflow_argo_eci.lifecycle import validate_action
from airflow_argo_eci.operators._base import ExplainedTemplatesMixin
from airflow_argo_eci.operators._base import positive_seconds as _seconds
from airflow_argo_eci.operators._base import task_failure as _failed

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_argo_eci.hooks.fluid import FluidHook

XCOM_NAME, XCOM_NAMESPACE, XCOM_UID = "fluid_dataload_name", "fluid_dataload_namespace", "fluid_dataload_uid"


class FluidHookMixin:
    """The lazily made :class:`~airflow_argo_eci.hooks.fluid.FluidHook` and the namespace of a task
    with ``argo_conn_id`` and ``namespace`` attributes (its ``__init__`` sets ``_hook = None``)."""

    argo_conn_id: str
    namespace: str | None
    _hook: FluidHook | None

    @property
    def hook(self) -> FluidHook:
        """The hook for ``argo_conn_id`` (made on first use, so DAG parsing stays cheap)."""
        if self._hook is None:
            from airflow_argo_eci.hooks.fluid import FluidHook

            self._hook = FluidHook(argo_conn_id=self.argo_conn_id)
        return self._hook

    @property
    def resolved_namespace(self) -> str:
        """``namespace``, else the connection's (or its kubeconfig context's) default."""
        return self.namespace or self.hook.get_conn().default_namespace


class FluidDataLoadOperator(FluidHookMixin, ExplainedTemplatesMixin, BaseOperator):
    """Create a Fluid DataLoad that warms ``dataset``'s cache, wait until it is ``Complete`` (in
    the worker, or deferred to the triggerer), and return its phase, duration and the Dataset's
    ``cacheStates``. Cache progress (cached bytes and percentage) goes to the task log while it
    waits. A ``Failed`` DataLoad fails the task with its condition's reason and message.

    Checked before anything is created: the Dataset exists, every target path is absolute and
    inside the Dataset, ``policy`` is ``Once``, ``Cron`` or ``OnEvent`` and ``schedule`` is given
    with (and only with) ``Cron``. A ``Cron`` DataLoad's first run decides the task.

    :param dataset: the Dataset's name (templated), in ``namespace``.
    :param load_metadata: load the metadata before the data (``spec.loadMetadata``).
    :param target: paths to load, each ``"/path"`` or ``{"path": "/path", "replicas": n}``; none: all.
    :param policy: ``Once``, ``Cron`` or ``OnEvent``; ``schedule``: the cron expression of ``Cron``.
    :param ttl_seconds_after_finished: Fluid deletes the finished DataLoad after this long (the
        deferred path still sees the outcome: the watch shows the deleted object's last phase; in
        the worker keep it longer than ``poll_interval``, or the poll may find the DataLoad gone).
    :param pod_metadata: ``{"labels": ..., "annotations": ...}`` of the loader pods (e.g. ECI ones).
    :param name: a fixed DataLoad name; ``generate_name``: a prefix (default ``<dataset>-load-``).
    :param labels: extra labels on the DataLoad.
    :param namespace: default from the connection.
    :param argo_conn_id: the ``argo_workflows`` connection (``kubernetes`` transport).
    :param wait_for_completion: wait until it finished (default True).
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param poll_interval: seconds between reads in the worker (and progress reads when deferred).
    :param timeout: give up after this long; ``on_kill_action`` is applied.
    :param reattach: on a retry or after a worker crash, reattach to the DataLoad an earlier try
        of this task instance created (found by its labels, fenced by uid): exactly one DataLoad.
    :param on_kill_action: ``delete`` (default) or ``keep`` the DataLoad when the task is killed.
    """

    template_fields: Sequence[str] = (
        "dataset", "target", "policy", "schedule", "pod_metadata", "name", "generate_name", "labels", "namespace",
    )
    template_fields_renderers = {"target": "json", "pod_metadata": "json", "labels": "json"}
    ui_color = "#6fb8e8"

    def __init__(
        self,
        *,
        dataset: str,
        load_metadata: bool = False,
        target: Sequence[str | Mapping[str, Any]] | None = None,
        policy: str = "Once",
        schedule: str = "",
        ttl_seconds_after_finished: int | None = None,
        pod_metadata: Mapping[str, Any] | None = None,
        name: str | None = None,
        generate_name: str | None = None,
        labels: Mapping[str, str] | None = None,
        namespace: str | None = None,
        argo_conn_id: str = "argo_default",
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5.0,
        timeout: float | timedelta | None = None,
        reattach: bool = True,
        on_kill_action: str = "delete",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(dataset, str) or not dataset:
            raise WorkflowSpecError(f"task {self.task_id}: dataset must be the name of a Dataset (got {dataset!r})")
        if "{{" not in str(policy) and policy not in DATALOAD_POLICIES:
            raise WorkflowSpecError(f"task {self.task_id}: policy={policy!r}: use one of "
                                    f"{', '.join(DATALOAD_POLICIES)}")
        if ttl_seconds_after_finished is not None and (
                isinstance(ttl_seconds_after_finished, bool) or not isinstance(ttl_seconds_after_finished, int)
                or ttl_seconds_after_finished < 0):
            raise WorkflowSpecError(f"task {self.task_id}: ttl_seconds_after_finished must be an int >= 0 "
                                    f"(got {ttl_seconds_after_finished!r})")
        if poll_interval <= 0:
            raise WorkflowSpecError(f"task {self.task_id}: poll_interval must be > 0 seconds (got {poll_interval})")
        self.dataset = dataset
        self.load_metadata = bool(load_metadata)
        self.target = list(target or [])
        self.policy = policy
        self.schedule = schedule
        self.ttl_seconds_after_finished = ttl_seconds_after_finished
        self.pod_metadata = dict(pod_metadata or {})
        self.name = name
        self.generate_name = generate_name
        self.labels = dict(labels or {})
        self.namespace = namespace
        self.argo_conn_id = argo_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout_seconds = _seconds(self.task_id, "timeout", timeout)
        self.reattach = reattach
        self.on_kill_action = validate_action("on_kill_action", on_kill_action, DATALOAD_KILL_ACTIONS)
        self._ref: ObjectRef | None = None
        self._hook: FluidHook | None = None

    def build_request(self) -> DataLoadRequest:
        """The rendered arguments as a :class:`DataLoadRequest` (shapes checked, errors name the field)."""
        if set(self.pod_metadata) - {"labels", "annotations"}:
            raise WorkflowSpecError(f"task {self.task_id}: pod_metadata takes 'labels' and 'annotations' only "
                                    f"(got {sorted(self.pod_metadata)})")
        return DataLoadRequest(self.dataset, self.load_metadata, check_targets(self.target), self.policy,
                               self.schedule or "", self.ttl_seconds_after_finished, self.pod_metadata)

    def execute(self, context: Context) -> Any:
        from airflow_argo_eci.workflows import ti_labels

        ti = context["ti"]
        labels = ti_labels(self.dag_id, self.task_id, context["run_id"], getattr(ti, "map_index", -1),
                           getattr(ti, "try_number", 1))
        request = self.build_request()
        lifecycle = DataLoadLifecycle(self.hook, self.resolved_namespace, logger=self.log)
        lifecycle.check(request)
        generate = self.generate_name or f"{self.dataset}-load-"
        body = request.body(lifecycle.namespace, self.name or "", generate, {**self.labels, **labels})
        ref, _ = lifecycle.submit(body, labels, reattach=self.reattach)
        self._ref = ref
        ti.xcom_push(key=XCOM_NAME, value=ref.name)
        ti.xcom_push(key=XCOM_NAMESPACE, value=ref.namespace)
        ti.xcom_push(key=XCOM_UID, value=ref.uid)
        if not self.wait_for_completion:
            return ref.as_dict()
        deadline = time.time() + self.timeout_seconds if self.timeout_seconds else None
        progress = ProgressLog(self.log.info)
        if self.deferrable:
            from airflow_argo_eci.fluid_lifecycle import dataload_outcome

            dataload = lifecycle.get(ref)
            if dataload_outcome((dataload.get("status") or {}).get("phase")) == "wait":
                self._defer(ref, deadline)
            return self._complete(lifecycle, dataload)
        try:
            dataload = lifecycle.wait(ref, poll_interval=self.poll_interval, deadline=deadline,
                                      on_poll=lambda _: lifecycle.report_progress(self.dataset, progress))
        except TimeoutError:
            lifecycle.apply_kill_action(ref, self.on_kill_action)
            raise
        return self._complete(lifecycle, dataload)

    def _defer(self, ref: ObjectRef, deadline: float | None) -> None:
        from airflow_argo_eci.triggers.fluid import FluidDataLoadTrigger

        self.defer(
            trigger=FluidDataLoadTrigger(
                name=ref.name, namespace=ref.namespace, uid=ref.uid, dataset=self.dataset,
                argo_conn_id=self.argo_conn_id, progress_interval=self.poll_interval, end_at=deadline,
                on_kill_action=self.on_kill_action),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        """Resume after the trigger's single event, then finish like the sync path."""
        if not isinstance(event, Mapping) or "status" not in event or not isinstance(event.get("ids"), Mapping):
            raise WorkflowSpecError(f"task {self.task_id}: unexpected trigger event {event!r}")
        ids = event["ids"]
        ref = ObjectRef(str(ids["name"]), str(ids["namespace"]), str(ids.get("uid", "")))
        self._ref = ref
        lifecycle = DataLoadLifecycle(self.hook, ref.namespace, logger=self.log)
        status = event["status"]
        if status == "timeout":
            lifecycle.apply_kill_action(ref, self.on_kill_action)
            raise TimeoutError(f"DataLoad {ref.namespace}/{ref.name}: {event.get('message', 'timed out')}")
        if status == "error":
            raise RuntimeError(f"waiting for DataLoad {ref.namespace}/{ref.name} failed: {event.get('message')}")
        if status not in ("success", "failure"):
            raise WorkflowSpecError(f"task {self.task_id}: unknown trigger event status {status!r}")
        try:
            dataload = lifecycle.get(ref)
        except NotFoundError:
            if status == "failure":
                raise _failed(RuntimeError(str(event.get("message")))) from None
            # Complete, then deleted by ttlSecondsAfterFinished before the task resumed: the event has the phase
            dataload = {"metadata": ref.as_dict(), "status": {"phase": event.get("phase") or "Complete"}}
        return self._complete(lifecycle, dataload)

    def _complete(self, lifecycle: DataLoadLifecycle, dataload: dict[str, Any]) -> Any:
        lifecycle.report_progress(self.dataset, ProgressLog(self.log.info))
        try:
            return lifecycle.finish(dataload, self.dataset)
        except DataLoadFailedError as exc:
            raise _failed(exc) from exc

    def on_kill(self) -> None:
        """The task was killed while it ran on a worker: apply ``on_kill_action``."""
        if self._ref is not None:
            DataLoadLifecycle(self.hook, self._ref.namespace, logger=self.log).apply_kill_action(
                self._ref, self.on_kill_action)


class FluidDatasetOperator(FluidHookMixin, ExplainedTemplatesMixin, BaseOperator):
    """Create (or adopt, when it exists with the same spec) a Fluid Dataset over an OSS prefix and
    its runtime, wait until it is ``Bound``, and return ``ufsTotal``, ``fileNum`` and the PVC name.

    The OSS credentials come from ``oss_conn_id`` (written into a Secret ``<name>-oss``, its
    endpoint into the mount's ``fs.oss.endpoint``) or from an existing ``secret_name`` holding
    ``fs.oss.accessKeyId`` / ``fs.oss.accessKeySecret`` (then ``endpoint`` is required). A
    mount point that is not ``oss://bucket/...`` and a runtime kind Fluid does not have are
    errors naming the field, before anything is created.

    :param name: the Dataset's (and its runtime's and PVC's) name (templated).
    :param mount_point: ``oss://bucket/prefix/`` (templated).
    :param runtime_kind: ``JindoRuntime`` (default), ``AlluxioRuntime``, ``JuiceFSRuntime`` or ``ThinRuntime``.
    :param runtime_spec: the runtime's ``spec`` (``replicas``, ``tieredstore``, ``podMetadata``...).
    :param oss_conn_id: the ``oss`` connection to take the endpoint and keys from.
    :param secret_name: instead of ``oss_conn_id``: an existing Secret with the keys.
    :param endpoint: the OSS endpoint (``fs.oss.endpoint``), required with ``secret_name``.
    :param mount_name: the mount's ``name``; ``mount_path``: where it appears in the dataset (``/``).
    :param options: more mount options; ``read_only``: the mount's ``readOnly`` (default True).
    :param access_modes: the Dataset's ``accessModes`` (default ``["ReadOnlyMany"]``).
    :param placement: ``Exclusive`` or ``Shared`` (Fluid's ``spec.placement``), None: Fluid's default.
    :param labels: labels of the Dataset and the runtime.
    :param wait_until_bound: wait until ``Bound`` (default True).
    :param deferrable: wait in the triggerer.
    :param poll_interval: seconds between reads; ``timeout``: give up after this long.
    """

    template_fields: Sequence[str] = ("name", "mount_point", "runtime_spec", "secret_name", "endpoint", "options",
                                      "labels", "namespace")
    template_fields_renderers = {"runtime_spec": "json", "options": "json", "labels": "json"}
    ui_color = "#6fb8e8"

    def __init__(
        self,
        *,
        name: str,
        mount_point: str,
        runtime_kind: str = "JindoRuntime",
        runtime_spec: Mapping[str, Any] | None = None,
        oss_conn_id: str | None = None,
        secret_name: str | None = None,
        endpoint: str | None = None,
        mount_name: str = "data",
        mount_path: str = "/",
        options: Mapping[str, str] | None = None,
        read_only: bool = True,
        access_modes: Sequence[str] = ("ReadOnlyMany",),
        placement: str | None = None,
        labels: Mapping[str, str] | None = None,
        namespace: str | None = None,
        argo_conn_id: str = "argo_default",
        wait_until_bound: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5.0,
        timeout: float | timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (oss_conn_id is None) == (secret_name is None):
            raise WorkflowSpecError(f"task {self.task_id}: give exactly one of oss_conn_id= or secret_name=")
        if secret_name is not None and not endpoint:
            raise WorkflowSpecError(f"task {self.task_id}: endpoint= (fs.oss.endpoint) is required with secret_name=")
        if poll_interval <= 0:
            raise WorkflowSpecError(f"task {self.task_id}: poll_interval must be > 0 seconds (got {poll_interval})")
        self.name = name
        self.mount_point = mount_point
        self.runtime_kind = runtime_kind
        self.runtime_spec = dict(runtime_spec or {})
        self.oss_conn_id = oss_conn_id
        self.secret_name = secret_name
        self.endpoint = endpoint
        self.mount_name = mount_name
        self.mount_path = mount_path
        self.options = dict(options or {})
        self.read_only = read_only
        self.access_modes = list(access_modes)
        self.placement = placement
        self.labels = dict(labels or {})
        self.namespace = namespace
        self.argo_conn_id = argo_conn_id
        self.wait_until_bound = wait_until_bound
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout_seconds = _seconds(self.task_id, "timeout", timeout)
        self._hook: FluidHook | None = None
        DatasetRequest.check_static(runtime_kind, mount_point, placement)

    def build_request(self) -> DatasetRequest:
        """The rendered arguments as a :class:`DatasetRequest` (checked; errors name the field)."""
        return DatasetRequest(
            name=self.name, mount_point=self.mount_point, runtime_kind=self.runtime_kind,
            runtime_spec=self.runtime_spec, mount_name=self.mount_name, mount_path=self.mount_path,
            options=self.options, read_only=self.read_only, access_modes=tuple(self.access_modes),
            placement=self.placement, labels=self.labels)

    def execute(self, context: Context) -> Any:
        request = self.build_request()
        setup = DatasetSetup(self.hook, self.resolved_namespace, logger=self.log)
        if self.oss_conn_id is not None:
            secret, endpoint = setup.secret_from_connection(request, self.oss_conn_id)
        else:
            assert self.secret_name is not None and self.endpoint
            secret, endpoint = setup.existing_secret(self.secret_name), self.endpoint
        setup.create_or_adopt(request, secret, endpoint)
        if not self.wait_until_bound:
            return {"name": request.name, "namespace": setup.namespace}
        deadline = time.time() + self.timeout_seconds if self.timeout_seconds else None
        if self.deferrable and not setup.is_bound(request.name):
            from airflow_argo_eci.triggers.fluid import FluidDatasetTrigger

            self.defer(trigger=FluidDatasetTrigger(name=request.name, namespace=setup.namespace,
                                                   argo_conn_id=self.argo_conn_id, poll_interval=self.poll_interval,
                                                   end_at=deadline),
                       method_name="execute_complete")
        return setup.wait_bound(request.name, poll_interval=self.poll_interval, deadline=deadline)

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        """Resume after the trigger's single event: the Dataset's result, or the failure."""
        if not isinstance(event, Mapping) or not isinstance(event.get("ids"), Mapping):
            raise WorkflowSpecError(f"task {self.task_id}: unexpected trigger event {event!r}")
        ids = event["ids"]
        setup = DatasetSetup(self.hook, str(ids["namespace"]), logger=self.log)
        if event.get("status") == "timeout":
            raise TimeoutError(f"task {self.task_id}: {event.get('message')}")
        if event.get("status") != "success":
            raise _failed(RuntimeError(f"Dataset {ids['namespace']}/{ids['name']}: {event.get('message')}"))
        return setup.wait_bound(str(ids["name"]), poll_interval=self.poll_interval, deadline=None)


__all__ = ["FluidDataLoadOperator", "FluidDatasetOperator", "FluidHookMixin"]
