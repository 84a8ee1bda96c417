"""One reconcile pass over one Workflow (Argo's ``wfOperationCtx.operate``): :class:`WorkflowReconciler`.

Like Argo's operator, every pass walks the template tree from the entrypoint again: nodes that are
already complete are read back from ``status.nodes`` (keyed by Argo node ids), the others make
progress (pods are created and handed to the runtime, pod results become node outputs, steps and
DAG tasks are scheduled). All status changes of a pass are written in one store update by the
controller. This module holds the pass itself: preparing the spec and the global scope, the
workflow's deadline and shutdown, progress, labels, the exit handler and the workflow's end.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from airflow_argo_eci.conventions import (
    ANNOTATION_SCHEDULED_TIME,
    FAILED_PHASES,
    LABEL_COMPLETED,
    LABEL_PHASE,
    NODE_COMPLETED_PHASES,
    TERMINAL_PHASES,
)
from airflow_argo_eci.local.api.resources import CLUSTER_WORKFLOW_TEMPLATES, WORKFLOW_TEMPLATES
from airflow_argo_eci.local.argo.budget import MAX_DEPTH_MESSAGE, LimitExceeded, pass_budget
from airflow_argo_eci.local.argo.expressions import ExpressionError, evaluate
from airflow_argo_eci.local.argo.nodes import go_json, go_string, parse_time, seconds_between
from airflow_argo_eci.local.argo.podgc import PodGC, pod_gc_of, pods_due
from airflow_argo_eci.local.argo.reconcile.artifact_io import ArtifactIO
from airflow_argo_eci.local.argo.reconcile.execution import TemplateExecutor
from airflow_argo_eci.local.argo.reconcile.host import ReconcileHost
from airflow_argo_eci.local.argo.reconcile.pods import PodRunner
from airflow_argo_eci.local.argo.reconcile.state import PassState
from airflow_argo_eci.local.argo.reconcile.volumes import release_claims
from airflow_argo_eci.local.argo.synchronization import LockTable, locks_of, priority_of, record
from airflow_argo_eci.local.argo.synchronization import release as release_locks
from airflow_argo_eci.local.argo.templates import (
    Resolver,
    SpecError,
    TemplateContext,
    artifacts_of,
    merge_workflow_template_spec,
    params_of,
    spec_parallelism,
    spec_seconds,
    templates_by_name,
    validate_workflow,
)
from airflow_argo_eci.local.argo.variables import TemplateError, substitute


class WorkflowReconciler:
    """Reconciles one workflow (a copy from the store); the controller writes :attr:`status` and the
    labels back when :attr:`changed`, and runs the next pass after :attr:`requeue_after` seconds."""

    def __init__(self, host: ReconcileHost, wf: dict[str, Any]) -> None:
        self.state = PassState(host, wf)
        self.pods = PodRunner(self.state, ArtifactIO(self.state))
        self.executor = TemplateExecutor(self.state, self.pods)
        #: ``spec.podGC`` once the spec is read (None: pods stay)
        self.pod_gc: PodGC | None = None

    @property
    def changed(self) -> bool:
        """Whether the pass changed status or labels."""
        return self.state.changed

    @property
    def status(self) -> dict[str, Any]:
        """The workflow's status as the pass left it."""
        return self.state.status

    @property
    def requeue_after(self) -> float | None:
        """Seconds after which the workflow needs another pass even if nothing changes (None: no need)."""
        return self.state.requeue_after

    @property
    def created_pods(self) -> int:
        """The number of pods this pass created."""
        return self.state.created_pods

    def run(self) -> None:
        """One reconcile pass; a :class:`LimitExceeded` ends the workflow in Error (status as it was
        before the pass, with the message) and kills its pods."""
        try:
            with pass_budget():
                self._run()
        except LimitExceeded as exc:
            self.abort(str(exc))

    def abort(self, message: str) -> None:
        """End the workflow in Error with ``message``, keeping the nodes of the previous pass (this
        pass's are dropped), and kill every pod of the workflow."""
        self.state.status.clear()
        self.state.status.update(copy.deepcopy(self.state.original_status))
        self.state.nodes = self.state.status.setdefault("nodes", {})
        root = self.state.nodes.get(self.state.name)
        if root is not None and root.get("phase") in ("Pending", "Running"):
            self.state.mark(root, "Error", "Workflow operation error")
        self.state.host.kill_workflow_pods(self.state.namespace, self.state.name, message)
        self._finish("Error", message)

    def _run(self) -> None:
        try:
            self._prepare()
        except (SpecError, TemplateError, ExpressionError) as exc:
            self._finish("Error", f"invalid spec: {exc}" if isinstance(exc, SpecError) else str(exc))
            return
        assert self.state.root_ctx is not None
        try:
            self.pod_gc = pod_gc_of(self.state.spec)
        except SpecError as exc:
            self._finish("Error", f"invalid spec: {exc}")
            return
        if self.state.spec.get("synchronization") and not self._take_workflow_locks():
            return
        if self.state.status.get("phase") in (None, "", "Pending"):
            self.state.status["phase"] = "Running"
            self.state.status.setdefault("startedAt", self.state.now)
        try:
            self._check_deadline()
        except SpecError as exc:
            self._finish("Error", f"invalid spec: {exc}")
            return
        if self.state.shutdown or self.state.deadline_exceeded:
            self._stop_running()
        self.pods.sync_active_pods()
        if self.state.spec.get("suspend") and not self.state.nodes:
            self._set_labels()
            return
        try:
            root = self.executor.execute(self.state.name, {"template": self.state.spec["entrypoint"]},
                                         self.state.root_ctx, self.state.spec.get("arguments") or {}, boundary="",
                                         # Argo runs the entrypoint as a step with no name: {{steps.name}} is ""
                                         scope=self.state.global_scope.child({"steps.name": ""}), on_exit=False)
            hooks_done = self._run_workflow_hooks()
        except (SpecError, TemplateError, ExpressionError) as exc:
            self._finish("Error", str(exc))
            return
        self.executor.locks.sweep()
        self.executor.memoized.save_succeeded()
        self._collect_pods(None)
        if root is None or not self.state.fulfilled(root) or not hooks_done:
            self._update_progress()
            self._set_labels()
            return
        self.state.kill_daemons(None)  # Argo kills what still runs as a daemon when the workflow ends
        exit_prefix = f"{self.state.name}.onExit"
        if any(n.get("type") == "Pod" and n.get("phase") in ("Pending", "Running")
               and not n["name"].startswith(exit_prefix) for n in self.state.nodes.values()):
            # e.g. a failFast DAG decided while other branches still run: let them finish first
            self._update_progress()
            self._set_labels()
            return
        main_phase = root["phase"]
        main_message = root.get("message", "")
        if self.state.shutdown:
            main_phase = "Failed"
            main_message = f"Stopped with strategy '{self.state.shutdown}'"
        elif self.state.deadline_exceeded:
            main_phase = "Failed"
            main_message = "Workflow exceeded its deadline"
        exit_tmpl = self.state.spec.get("onExit")
        # spec.hooks.exit is the exit handler when spec.onExit is not set (Argo's GetExitHook)
        exit_hook = (self.state.spec.get("hooks") or {}).get("exit") if not exit_tmpl else None
        exit_holder = {"template": exit_tmpl} if exit_tmpl else exit_hook
        if isinstance(exit_holder, dict) and self.state.shutdown != "Terminate":
            self.state.global_scope.set("workflow.status", main_phase)
            self.state.global_scope.set("workflow.failures", go_json(self._failures()))
            try:
                exit_node = self.executor.execute(f"{self.state.name}.onExit", exit_holder,
                                                  self.state.root_ctx, exit_holder.get("arguments") or {}, boundary="",
                                                  scope=self.state.global_scope, on_exit=True)
            except (SpecError, TemplateError, ExpressionError) as exc:
                self._finish("Error", str(exc))
                return
            if exit_node is None or not self.state.fulfilled(exit_node):
                self._update_progress()
                self._set_labels()
                return
            if exit_node["phase"] in FAILED_PHASES and main_phase == "Succeeded":
                main_phase = exit_node["phase"]
                main_message = exit_node.get("message", "") or "exit handler failed"
        if main_phase in ("Skipped", "Omitted"):
            main_phase = "Succeeded"
        if main_phase != "Succeeded" and self.state.unsupported_messages:
            main_message = self.state.unsupported_messages[0]
        elif main_phase != "Succeeded" and self.state.depth_exceeded:
            main_message = MAX_DEPTH_MESSAGE
        self._finish(main_phase, main_message if main_phase != "Succeeded" else "")

    def _run_workflow_hooks(self) -> bool:
        """``spec.hooks`` other than ``exit`` (Argo's workflow-level lifecycle hooks): each runs at most
        once, as node ``<workflow>.hooks.<name>``, from the pass in which its ``expression`` first
        holds; whether every hook that started is complete (the workflow waits for them). How a
        hook ends does not change the workflow's outcome."""
        hooks = self.state.spec.get("hooks") or {}
        if not isinstance(hooks, dict):
            raise SpecError("spec.hooks must map hook names to hooks (expression, template)")
        assert self.state.root_ctx is not None
        done = True
        for name, hook in sorted(hooks.items()):
            if name == "exit":
                continue
            if not isinstance(hook, dict) or not (hook.get("template") or hook.get("templateRef")):
                raise SpecError(f"spec.hooks.{name} needs a template (or templateRef) to run")
            node_name = f"{self.state.name}.hooks.{name}"
            node = self.state.node_by_name(node_name)
            if node is None:
                expression = str(hook.get("expression") or "")
                if not expression:
                    raise SpecError(f"spec.hooks.{name}.expression is required (when the hook runs)")
                try:
                    fire = evaluate(expression, self.state.global_scope.env())
                except ExpressionError as exc:
                    raise SpecError(f"spec.hooks.{name}.expression: {exc}") from exc
                if fire is not True:
                    continue
            elif self.state.fulfilled(node):
                continue
            started = self.executor.execute(node_name, hook, self.state.root_ctx, hook.get("arguments") or {},
                                            boundary="", scope=self.state.global_scope, on_exit=False,
                                            display=node_name)
            if started is None or not self.state.fulfilled(started):
                done = False
        return done

    def _collect_pods(self, workflow_phase: str | None) -> None:
        """``spec.podGC``: hand the pods its strategy collects now to the controller."""
        gc = self.pod_gc
        if gc is None:
            return
        for node in pods_due(gc, self.state.nodes, workflow_phase):
            self.state.host.collect_pod(self.state.namespace, self.state.pod_name_of(node), gc.delay, gc.selector)

    def _take_workflow_locks(self) -> bool:
        """``spec.synchronization``: take every lock, or leave the workflow Pending with Argo's
        waiting message and ``status.synchronization`` waiting entries (False)."""
        try:
            locks = locks_of(self.state.store, self.state.namespace, self.state.spec["synchronization"],
                             "spec.synchronization")
        except SpecError as exc:
            self._finish("Error", f"invalid spec: {exc}")
            return False
        table = LockTable.read(self.state.store)
        meta = self.state.wf["metadata"]
        me = f"{self.state.namespace}/{self.state.name}"
        priority = priority_of(self.state.spec)
        blocked = [lock for lock in locks
                   if not table.may_take(lock, me, me, priority, str(meta.get("creationTimestamp", "")))]
        if blocked and not self.state.nodes:
            for lock in blocked:
                record(self.state.status, lock, self.state.name, holding=False, current=table.holders.get(lock.key, []))
            self.state.status["phase"] = "Pending"
            self.state.status["message"] = table.waiting_message(blocked[0])
            self.state.requeue(1.0)
            self._set_labels()
            return False
        for lock in locks:  # all free (or already ours): hold them all
            record(self.state.status, lock, self.state.name, holding=True, current=[])
        if str(self.state.status.get("message", "")).startswith("Waiting for "):
            self.state.status.pop("message")
        return True

    def _prepare(self) -> None:
        spec = self.state.wf.get("spec") or {}
        ref = spec.get("workflowTemplateRef")
        if ref:
            stored = self.state.status.get("storedWorkflowTemplateSpec")
            if stored is None:
                cluster = bool(ref.get("clusterScope"))
                resolver = Resolver(self.state.store, self.state.namespace, None)
                ctx = resolver.context_for_ref(str(ref.get("name", "")), cluster)
                rt = CLUSTER_WORKFLOW_TEMPLATES if cluster else WORKFLOW_TEMPLATES
                tmpl_obj = self.state.store.get(rt, None if cluster else self.state.namespace, ctx.name)
                stored = tmpl_obj.get("spec") or {}
                self.state.status["storedWorkflowTemplateSpec"] = stored
            spec = merge_workflow_template_spec(stored, spec)
        self.state.spec = spec
        self.state.shutdown = str(spec.get("shutdown") or "")
        self.state.parallelism = spec_parallelism(spec.get("parallelism"), "spec.parallelism")
        self.state.resolver = Resolver(self.state.store, self.state.namespace, spec.get("templateDefaults"))
        self.state.root_ctx = TemplateContext("local", self.state.name, templates_by_name(spec, "spec"))
        if not self.state.nodes and self.state.status.get("phase") in (None, "", "Pending"):
            validate_workflow(spec, self.state.resolver, self.state.root_ctx)
        self._build_global_scope()
        self.state.active_pods = sum(
            1 for n in self.state.nodes.values() if n.get("type") == "Pod" and n.get("phase") in ("Pending", "Running")
        )

    def _build_global_scope(self) -> None:
        meta = self.state.wf["metadata"]
        scope = self.state.global_scope
        now = self.state.now
        created = meta.get("creationTimestamp") or now
        scope.update({
            "workflow.name": self.state.name,
            "workflow.namespace": self.state.namespace,
            "workflow.mainEntrypoint": self.state.spec.get("entrypoint", ""),
            "workflow.uid": self.state.uid,
            "workflow.serviceAccountName": self.state.spec.get("serviceAccountName", "default"),
            "workflow.creationTimestamp": created,
            "workflow.priority": str(self.state.spec.get("priority", 0)),
            # the phase while it runs (lifecycle hook expressions test it); the exit handler sees the outcome
            "workflow.status": "Running" if self.state.status.get("phase") in (None, "", "Pending")
            else str(self.state.status["phase"]),
            "workflow.duration": f"{seconds_between(self.state.status.get('startedAt') or now, now):f}",
        })
        moment = parse_time(created)
        if moment is not None:
            for letter in "YmdHMSyBbAaIpjUWwcxXZz":
                scope.set(f"workflow.creationTimestamp.{letter}", moment.strftime(f"%{letter}"))
            scope.set("workflow.creationTimestamp.s", str(int(moment.timestamp())))
            scope.set("workflow.creationTimestamp.RFC3339", created)
        for kind in ("labels", "annotations"):  # .<name>, .json and the bare (deprecated) JSON form
            values = meta.get(kind) or {}
            for key, value in values.items():
                scope.set(f"workflow.{kind}.{key}", value)
            scope.set(f"workflow.{kind}.json", go_json(values))
            scope.set(f"workflow.{kind}", go_json(values))
        scheduled = (meta.get("annotations") or {}).get(ANNOTATION_SCHEDULED_TIME)
        if scheduled:  # set by a CronWorkflow on the workflows it creates
            scope.set("workflow.scheduledTime", str(scheduled))
        params: list[dict[str, Any]] = []
        for p in params_of(self.state.spec.get("arguments")):
            name = p.get("name")
            if not name:
                raise SpecError("spec.arguments.parameters: every parameter needs a name")
            value = self._global_param_value(p)
            if p.get("enum") and value not in [go_string(e) for e in p["enum"]]:
                raise SpecError(f"spec.arguments.parameters.{name}: value '{value}' is not in the enum "
                                f"{[go_string(e) for e in p['enum']]}")
            scope.set(f"workflow.parameters.{name}", value)
            params.append({"name": name, "value": value})
        scope.set("workflow.parameters", go_json(params))
        scope.set("workflow.parameters.json", go_json(params))
        for p in params_of(self.state.status.get("outputs")):
            scope.set(f"workflow.outputs.parameters.{p['name']}", p.get("value", ""))
        for a in artifacts_of(self.state.status.get("outputs")):
            scope.set(f"workflow.outputs.artifacts.{a['name']}", a)

    def _global_param_value(self, p: dict[str, Any]) -> str:
        if p.get("value") is not None:
            return substitute(go_string(p["value"]), self.state.global_scope)
        vf = p.get("valueFrom") or {}
        if vf.get("configMapKeyRef"):
            return self.state.config_map_value(vf["configMapKeyRef"], f"spec.arguments.parameters.{p['name']}")
        if p.get("default") is not None:
            return go_string(p["default"])
        if vf.get("default") is not None:
            return go_string(vf["default"])
        raise SpecError(f"spec.arguments.parameters.{p['name']}.value is required")


    def _check_deadline(self) -> None:
        ads = self.state.spec.get("activeDeadlineSeconds")
        if ads in (None, ""):
            return
        started = parse_time(self.state.status.get("startedAt"))
        if started is None:
            return
        elapsed = time.time() - started.timestamp()
        limit = spec_seconds(ads, "spec.activeDeadlineSeconds")
        if elapsed >= limit:
            self.state.deadline_exceeded = True
        else:
            self.state.requeue(limit - elapsed)

    def _failures(self) -> list[dict[str, Any]]:
        out = []
        for node in self.state.nodes.values():
            if node.get("type") == "Pod" and node.get("phase") in FAILED_PHASES:
                out.append({
                    "displayName": node.get("displayName", ""),
                    "message": node.get("message", ""),
                    "templateName": node.get("templateName", ""),
                    "phase": node.get("phase"),
                    "podName": self.state.pod_name_of(node),
                    "finishedAt": node.get("finishedAt", ""),
                })
        return out

    def _update_progress(self) -> None:
        pods = [n for n in self.state.nodes.values() if n.get("type") == "Pod"]
        done = sum(1 for n in pods if n.get("phase") in NODE_COMPLETED_PHASES)
        self.state.status["progress"] = f"{done}/{len(pods)}"
        cpu = 0
        mem = 0
        for n in pods:
            rd = n.get("resourcesDuration") or {}
            cpu += int(rd.get("cpu", 0))
            mem += int(rd.get("memory", 0))
        if pods:
            self.state.status["resourcesDuration"] = {"cpu": cpu, "memory": mem}
        for n in self.state.nodes.values():
            if n.get("type") in ("Steps", "DAG", "Retry", "TaskGroup", "StepGroup"):
                n.pop("progress", None)

    def _set_labels(self) -> None:
        labels = self.state.wf["metadata"].setdefault("labels", {})
        phase = self.state.status.get("phase") or "Pending"
        labels[LABEL_PHASE] = phase
        labels[LABEL_COMPLETED] = "true" if phase in TERMINAL_PHASES else "false"
        labels_from = ((self.state.spec.get("workflowMetadata") or {}).get("labelsFrom")) or {}
        for key, src in labels_from.items():
            expr = (src or {}).get("expression")
            if expr:
                try:
                    labels[key] = go_string(evaluate(str(expr), self.state.global_scope.env()))
                except ExpressionError:
                    continue
        for key, value in ((self.state.spec.get("workflowMetadata") or {}).get("labels") or {}).items():
            labels[key] = str(value)

    def _finish(self, phase: str, message: str) -> None:
        if self.state.shutdown or self.state.deadline_exceeded:
            self._kill_running(message or "workflow shutdown")
        self._collect_artifacts_on_completion()
        release_claims(self.state, phase)
        release_locks(self.state.status)
        self._collect_pods(phase)
        self.state.status["phase"] = phase
        self.state.status.setdefault("startedAt", self.state.now)
        self.state.status["finishedAt"] = self.state.now
        if message:
            self.state.status["message"] = message
        else:
            self.state.status.pop("message", None)
        self._update_progress()
        started = parse_time(self.state.status.get("startedAt"))
        if started is not None:
            self.state.status["estimatedDuration"] = int(seconds_between(self.state.status["startedAt"],
                                                                         self.state.now))
        self._set_labels()

    def _collect_artifacts_on_completion(self) -> None:
        """``artifactGC`` OnWorkflowCompletion: delete those artifacts' objects now, mark them
        ``deleted`` in node status, record the strategy as processed and failures as conditions."""
        gc_status = self.state.status.get("artifactGCStatus") or {}
        if (gc_status.get("strategiesProcessed") or {}).get("OnWorkflowCompletion"):
            return
        strategy = str((self.state.spec.get("artifactGC") or {}).get("strategy") or "")
        deleted, errors, found = self.state.host.collect_artifact_garbage(
            self.state.namespace, self.state.status, strategy, "OnWorkflowCompletion")
        if not found:
            return
        for node_id, index in deleted:
            self.state.nodes[node_id]["outputs"]["artifacts"][index]["deleted"] = True
        gc_status = self.state.status.setdefault("artifactGCStatus", {})
        gc_status.setdefault("strategiesProcessed", {})["OnWorkflowCompletion"] = True
        if errors:
            conditions = self.state.status.setdefault("conditions", [])
            conditions.append({"type": "ArtifactGCError", "status": "True",
                               "message": "; ".join(errors)[:2000]})

    def _stop_running(self) -> None:
        message = (f"workflow shutdown with strategy: {self.state.shutdown}" if self.state.shutdown
                   else "Step exceeded its deadline")
        for node in self.state.nodes.values():
            if node.get("type") == "Suspend" and node.get("phase") == "Running":
                self.state.mark(node, "Failed", message)
        self._kill_running(message)

    def _kill_running(self, message: str) -> None:
        for node in self.state.nodes.values():
            if self.state.shutdown == "Stop" and ".onExit" in node["name"]:
                continue  # exit handlers still run when stopping
            if node.get("type") == "Pod" and node.get("phase") in ("Pending", "Running"):
                self.state.host.kill_pod(self.state.namespace, self.state.pod_name_of(node), message)

