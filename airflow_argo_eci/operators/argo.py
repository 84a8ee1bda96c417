"""``ArgoWorkflowOperator``: run an Argo Workflow on ECI from an Airflow task.

Thin by design: it turns its arguments into a workflow body and hands everything else to
:class:`~airflow_argo_eci.lifecycle.WorkflowLifecycle`, which the sync path, the deferred path
and the sensor share. Importing this module is cheap (no kubernetes / hera / oss2 imports) so DAG
parsing stays fast; heavy clients load when the task runs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, conf

from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.lifecycle import (
    FINISH_ACTIONS,
    KILL_ACTIONS,
    LogCursor,
    WorkflowLifecycle,
    WorkflowRef,
    validate_action,
)
from airflow_argo_eci.links.argo import XCOM_WORKFLOW_URL, ArgoWorkflowLink
from airflow_argo_eci.operators._base import ArgoHookMixin, ExplainedTemplatesMixin
from airflow_argo_eci.templating import protect_in

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_argo_eci.eci import EciProfile
    from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook

XCOM_NAME, XCOM_NAMESPACE, XCOM_UID = "argo_workflow_name", "argo_workflow_namespace", "argo_workflow_uid"
XCOM_LOG_CURSOR = "argo_log_cursor"


class ArgoWorkflowOperator(ArgoHookMixin, ExplainedTemplatesMixin, BaseOperator):
    """Submit an Argo Workflow (optionally on ECI), wait for it without holding a worker slot
    when deferrable, stream its pod logs into the task log, and return its outputs.

    :param workflow: the Workflow: a dict, YAML/JSON text, a path to a ``.yaml``/``.yml``/``.json``
        file (templated; Argo's own ``{{...}}`` expressions are left for Argo), or a Hera ``Workflow``.
        A template that does not render fails the task naming the field and the likely cause; a
        run triggered without a logical date has no ``ds``: template
        ``{{ (dag_run.logical_date or dag_run.run_after) | ds }}`` instead.
    :param workflow_template_ref: instead of ``workflow``: submit from this WorkflowTemplate.
    :param cluster_workflow_template_ref: instead of ``workflow``: from this ClusterWorkflowTemplate.
    :param parameters: workflow arguments (``spec.arguments.parameters``) to set or override.
    :param eci: an :class:`~airflow_argo_eci.eci.EciProfile` (or its dict form) applied before submit
        (templated: a field holding an Airflow template, such as
        ``image_cache_id="{{ ti.xcom_pull(task_ids='cache_images') }}"``, is rendered and validated first).
    :param namespace: where to submit; default from the connection, else ``argo``.
    :param argo_conn_id: the ``argo_workflows`` connection.
    :param name: a fixed workflow name; ``generate_name``: a prefix (default from the workflow).
    :param labels: extra labels; ``annotations``: extra annotations (never overwrite the workflow's).
    :param wait_for_completion: wait for the workflow to finish (default True).
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param poll_interval: seconds between polls in sync mode (and the trigger's fallback).
    :param timeout: give up after this long (seconds or timedelta); ``on_kill_action`` is applied.
    :param get_logs: stream pod logs into the task log, prefixed with the node's display name.
    :param reattach: on a retry or after a worker crash, reattach to the workflow an earlier try
        of this task instance created (found by labels, fenced by uid) instead of submitting a
        duplicate.
    :param on_kill_action: ``stop`` (exit handlers run), ``terminate``, ``delete`` or ``keep``
        when the task is killed or times out.
    :param on_finish_action: ``keep``, ``delete`` or ``delete_succeeded`` once it finished.
    """

    template_fields: Sequence[str] = (
        "workflow", "workflow_template_ref", "cluster_workflow_template_ref", "parameters", "namespace",
        "name", "generate_name", "labels", "annotations", "eci",
    )
    template_ext: Sequence[str] = (".yaml", ".yml", ".json")
    template_fields_renderers = {"workflow": "yaml", "parameters": "json", "labels": "json", "annotations": "json"}
    operator_extra_links = (ArgoWorkflowLink(),)
    ui_color = "#ef7b4d"

    def __init__(
        self,
        *,
        workflow: Any = None,
        workflow_template_ref: str | None = None,
        cluster_workflow_template_ref: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        eci: EciProfile | Mapping[str, Any] | None = None,
        namespace: str | None = None,
        argo_conn_id: str = "argo_default",
        name: str | None = None,
        generate_name: str | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5.0,
        timeout: float | timedelta | None = None,
        get_logs: bool = True,
        reattach: bool = True,
        on_kill_action: str = "stop",
        on_finish_action: str = "keep",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        sources = [s for s in (workflow, workflow_template_ref, cluster_workflow_template_ref) if s is not None]
        if len(sources) != 1:
            raise WorkflowSpecError(
                f"task {self.task_id}: give exactly one of workflow=, workflow_template_ref= or "
                f"cluster_workflow_template_ref= (got {len(sources)})")
        if poll_interval <= 0:
            raise WorkflowSpecError(f"task {self.task_id}: poll_interval must be > 0 seconds (got {poll_interval})")
        timeout_s = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        if timeout_s is not None and timeout_s <= 0:
            raise WorkflowSpecError(f"task {self.task_id}: timeout must be > 0 seconds (got {timeout})")
        self.workflow = workflow
        self.workflow_template_ref = workflow_template_ref
        self.cluster_workflow_template_ref = cluster_workflow_template_ref
        self.parameters = dict(parameters or {})
        self.eci = eci
        self.namespace = namespace
        self.argo_conn_id = argo_conn_id
        self.name = name
        self.generate_name = generate_name
        self.labels = dict(labels or {})
        self.annotations = dict(annotations or {})
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout_seconds = timeout_s
        self.get_logs = get_logs
        self.reattach = reattach
        self.on_kill_action = validate_action("on_kill_action", on_kill_action, KILL_ACTIONS)
        self.on_finish_action = validate_action("on_finish_action", on_finish_action, FINISH_ACTIONS)
        self._ref: WorkflowRef | None = None
        self._hook: ArgoWorkflowsHook | None = None

    # ------------------------------------------------------------------ templating

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Render Airflow's Jinja, leaving Argo's ``{{...}}`` expressions for Argo."""
        env = jinja_env or self.get_template_env()
        if isinstance(self.workflow, str) and self.workflow.endswith(tuple(self.template_ext)):
            try:
                if env.loader is None:
                    raise LookupError("the Jinja environment has no template loader")
                self.workflow, _, _ = env.loader.get_source(env, self.workflow)
            except Exception as exc:
                raise WorkflowSpecError(
                    f"task {self.task_id}: workflow file {self.workflow!r} not found in the DAG folder or "
                    "template_searchpath; give a path relative to them or an absolute path") from exc
        if isinstance(self.workflow, (str, dict, list)):
            self.workflow = protect_in(self.workflow)
        profile = self._eci_templates()
        super().render_template_fields(context, jinja_env)
        if profile is not None:
            self.eci = self._rendered_eci(profile, self.eci)

    def _eci_templates(self) -> EciProfile | None:
        """When the ECI profile holds Airflow templates (e.g. ``image_cache_id="{{ ti.xcom_pull(...) }}"``),
        leave only those in ``eci`` for Airflow to render, and return the profile they go back into."""
        from airflow_argo_eci.eci import EciProfile

        profile = EciProfile.coerce(self.eci)
        templated = profile.templated_values() if profile is not None else {}
        if not templated:
            return None
        self.eci = templated
        return profile

    def _rendered_eci(self, profile: EciProfile, rendered: Any) -> EciProfile:
        """``profile`` with its rendered values, validated (a template that renders to nothing fails)."""
        for key, value in rendered.items():
            if value is None or str(value).strip() in ("", "None"):  # Jinja renders a missing XCom as "None"
                raise WorkflowSpecError(
                    f"task {self.task_id}: eci.{key}: the template {getattr(profile, key)!r} rendered to {value!r}; "
                    "check that the task it pulls from ran and returned a value")
        try:
            return profile.replace(**rendered)
        except WorkflowSpecError as exc:
            raise WorkflowSpecError(f"task {self.task_id}: eci, as rendered: {exc}") from exc

    # ------------------------------------------------------------------ building

    def build_workflow(self, ti_labels: Mapping[str, str]) -> dict[str, Any]:
        """The body to submit: source, parameters, ECI profile, labels and annotations."""
        from airflow_argo_eci.eci import EciProfile
        from airflow_argo_eci.workflows import (
            load_workflow,
            merge_metadata,
            set_parameters,
            workflow_from_template_ref,
        )

        if self.workflow is not None:
            body = load_workflow(self.workflow)
        else:
            ref = self.workflow_template_ref or self.cluster_workflow_template_ref
            assert ref is not None
            body = workflow_from_template_ref(ref, cluster_scope=self.cluster_workflow_template_ref is not None,
                                              generate_name=self.generate_name)
        if self.parameters:
            body = set_parameters(body, self.parameters)
        profile = EciProfile.coerce(self.eci)
        if profile is not None:
            body = profile.apply(body)
        body = merge_metadata(body, {**self.labels, **ti_labels}, self.annotations)
        meta = body.setdefault("metadata", {})
        if self.name:
            meta["name"] = self.name
            meta.pop("generateName", None)
        elif self.generate_name:
            meta["generateName"] = self.generate_name
            meta.pop("name", None)
        if not meta.get("name") and not meta.get("generateName"):
            meta["generateName"] = f"{self.dag_id}-{self.task_id}-".lower().replace("_", "-")[:50]
        return body

    # ------------------------------------------------------------------ execute

    def execute(self, context: Context) -> Any:
        from airflow_argo_eci.workflows import ti_labels

        self._check_template_ref()
        ti = context["ti"]
        labels = ti_labels(self.dag_id, self.task_id, context["run_id"], getattr(ti, "map_index", -1),
                           getattr(ti, "try_number", 1))
        body = self.build_workflow(labels)
        lifecycle = WorkflowLifecycle(self.hook, self.resolved_namespace, logger=self.log)
        ref, _ = lifecycle.submit(body, labels, reattach=self.reattach)
        self._ref = ref
        self._push_ref(context, ref)
        if not self.wait_for_completion:
            return ref.as_dict()
        deadline = time.time() + self.timeout_seconds if self.timeout_seconds else None
        if self.deferrable:
            workflow = lifecycle.get(ref)
            from airflow_argo_eci.workflows import phase_outcome

            if phase_outcome((workflow.get("status") or {}).get("phase")) == "wait":
                self._defer(ref, deadline)
            return self._complete(context, lifecycle, ref, workflow)
        cursor = LogCursor()

        def on_poll(wf: dict[str, Any]) -> None:
            if self.get_logs:
                lifecycle.stream_logs(wf, cursor, self.log.info)

        try:
            workflow = lifecycle.wait(ref, poll_interval=self.poll_interval, deadline=deadline, on_poll=on_poll)
        except TimeoutError:
            lifecycle.apply_kill_action(ref, self.on_kill_action)
            raise
        return self._complete(context, lifecycle, ref, workflow, cursor)

    def _check_template_ref(self) -> None:
        """A template reference that does not exist is a clear error before anything is created."""
        from airflow_argo_eci.errors import NotFoundError

        try:
            if self.workflow_template_ref:
                self.hook.get_workflow_template(self.workflow_template_ref, namespace=self.resolved_namespace)
            elif self.cluster_workflow_template_ref:
                self.hook.get_cluster_workflow_template(self.cluster_workflow_template_ref)
        except NotFoundError as exc:
            kind, ref = (("workflow_template_ref", self.workflow_template_ref) if self.workflow_template_ref
                         else ("cluster_workflow_template_ref", self.cluster_workflow_template_ref))
            where = f" in namespace {self.resolved_namespace}" if self.workflow_template_ref else ""
            raise WorkflowSpecError(
                f"task {self.task_id}: {kind}={ref!r} does not exist{where}; create the template first "
                "or fix the name") from exc

    def _defer(self, ref: WorkflowRef, deadline: float | None) -> None:
        from airflow_argo_eci.triggers.argo import ArgoWorkflowTrigger

        self.defer(
            trigger=ArgoWorkflowTrigger(
                name=ref.name, namespace=ref.namespace, uid=ref.uid, argo_conn_id=self.argo_conn_id,
                poll_interval=self.poll_interval, end_at=deadline, on_kill_action=self.on_kill_action,
                get_logs=self.get_logs,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        """Resume after the trigger's single event: validate it, then finish like the sync path."""
        if not isinstance(event, Mapping) or "status" not in event or not isinstance(event.get("ids"), Mapping):
            raise WorkflowSpecError(f"task {self.task_id}: unexpected trigger event {event!r}")
        ids = event["ids"]
        ref = WorkflowRef(str(ids["name"]), str(ids["namespace"]), str(ids.get("uid", "")))
        self._ref = ref
        lifecycle = WorkflowLifecycle(self.hook, ref.namespace, logger=self.log)
        status = event["status"]
        if status == "timeout":
            lifecycle.apply_kill_action(ref, self.on_kill_action)
            raise TimeoutError(f"workflow {ref.namespace}/{ref.name}: {event.get('message', 'timed out')}")
        if status == "error":
            raise RuntimeError(f"waiting for workflow {ref.namespace}/{ref.name} failed: {event.get('message')}")
        if status not in ("success", "failure"):
            raise WorkflowSpecError(f"task {self.task_id}: unknown trigger event status {status!r}")
        # the lines the trigger already printed into this task's log are not printed again
        cursor = LogCursor.from_dict(event.get("log_cursor"))
        return self._complete(context, lifecycle, ref, lifecycle.get(ref), cursor)

    def _complete(self, context: Context, lifecycle: WorkflowLifecycle, ref: WorkflowRef, workflow: dict[str, Any],
                  cursor: LogCursor | None = None) -> Any:
        if self.get_logs:
            lifecycle.stream_logs(workflow, cursor or LogCursor(), self.log.info)
        succeeded = (workflow.get("status") or {}).get("phase") == "Succeeded"
        try:
            return lifecycle.finish(workflow)
        finally:
            lifecycle.apply_finish_action(ref, self.on_finish_action, succeeded)

    def _push_ref(self, context: Context, ref: WorkflowRef) -> None:
        ti = context["ti"]
        ti.xcom_push(key=XCOM_NAME, value=ref.name)
        ti.xcom_push(key=XCOM_NAMESPACE, value=ref.namespace)
        ti.xcom_push(key=XCOM_UID, value=ref.uid)
        url = self.hook.workflow_url(ref.name, ref.namespace)
        if url:
            ti.xcom_push(key=XCOM_WORKFLOW_URL, value=url)

    def on_kill(self) -> None:
        """The task was killed while it ran on a worker: apply ``on_kill_action``."""
        if self._ref is not None:
            WorkflowLifecycle(self.hook, self._ref.namespace, logger=self.log).apply_kill_action(
                self._ref, self.on_kill_action)
