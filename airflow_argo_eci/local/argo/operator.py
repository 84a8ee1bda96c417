"""One reconcile pass over one Workflow (Argo's ``wfOperationCtx``).

Like Argo's operator, every pass walks the template tree from the entrypoint again: nodes that are
already complete are read back from ``status.nodes`` (keyed by Argo node ids), the others make
progress (pods are created and handed to the runtime, pod results become node outputs, steps and
DAG tasks are scheduled). All status changes of a pass are written in one store update by the
controller.
"""

from __future__ import annotations

import copy
import json
import math
import posixpath
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import CLUSTER_WORKFLOW_TEMPLATES, CONFIGMAPS, SECRETS, WORKFLOW_TEMPLATES
from airflow_argo_eci.local.argo import nodes as N
from airflow_argo_eci.local.argo.artifacts import (
    DEFAULT_KEY_FORMAT,
    ArtifactError,
    Location,
    NotFound,
    artifact_key,
    check_supported,
    has_location_or_key,
    load_artifact,
    location_of,
    missing_output_message,
    resolve_repository,
    save_artifact,
    status_location,
    strip_location,
)
from airflow_argo_eci.local.argo.budget import (
    MAX_DEPTH_MESSAGE,
    MAX_FORMAT_WIDTH,
    MAX_LOOP_ITEMS,
    MAX_NODES,
    MAX_POD_CREATIONS_PER_PASS,
    MAX_STACK_DEPTH,
    LimitExceeded,
    pass_budget,
)
from airflow_argo_eci.local.argo.expressions import ExpressionError, evaluate, evaluate_when
from airflow_argo_eci.local.argo.templates import (
    UNSUPPORTED_TYPES,
    Resolver,
    SpecError,
    TemplateContext,
    deep_merge,
    merge_workflow_template_spec,
    task_dependencies,
    template_type,
    templates_by_name,
    validate_workflow,
)
from airflow_argo_eci.local.argo.variables import Scope, TemplateError, substitute, substitute_obj, unresolved_tags
from airflow_argo_eci.local.runtime import HostPathOf, PodRequest, PodResult
from airflow_argo_eci.workflows import workflow_nodes

if TYPE_CHECKING:
    from airflow_argo_eci.local.argo.controller import Controller

LABEL_WORKFLOW = "workflows.argoproj.io/workflow"
LABEL_COMPLETED = "workflows.argoproj.io/completed"
LABEL_PHASE = "workflows.argoproj.io/phase"
ANNOTATION_NODE_NAME = "workflows.argoproj.io/node-name"
ANNOTATION_NODE_ID = "workflows.argoproj.io/node-id"
ANNOTATION_OUTPUTS = "workflows.argoproj.io/outputs"
ANNOTATION_TEMPLATE = "workflows.argoproj.io/template"

#: seconds of a pass between two GIL hand-overs to the API server's threads (Operation.yield_point)
_YIELD_SECONDS = 0.002

#: template keys left alone when a template's tags are substituted: metrics (evaluated when the node
#: ends) and artifact references (resolved as artifacts, not as text, when the step runs)
_UNSUBSTITUTED = frozenset({"metrics", "from", "fromExpression"})

#: pod-spec fields of a template / the workflow copied into the Pod spec
_POD_SPEC_FIELDS = ("nodeSelector", "tolerations", "affinity", "schedulerName", "priorityClassName",
                    "hostAliases", "securityContext", "dnsConfig", "dnsPolicy", "serviceAccountName",
                    "automountServiceAccountToken", "volumes", "imagePullSecrets", "hostNetwork",
                    "runtimeClassName", "terminationGracePeriodSeconds")


@dataclass
class StepOutcome:
    """Whether a step group / DAG finished, and why it failed if it did."""

    done: bool
    failure: str = ""


def _params(obj: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not obj:
        return []
    return [p for p in (obj.get("parameters") or []) if isinstance(p, dict)]


def _value_str(value: Any) -> str:
    return N.go_string(value)


def _arts(obj: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not obj:
        return []
    return [a for a in (obj.get("artifacts") or []) if isinstance(a, dict)]


def _tag_name(text: str) -> str:
    """``{{steps.a.outputs.artifacts.b}}`` -> ``steps.a.outputs.artifacts.b``."""
    stripped = text.strip()
    if stripped.startswith("{{") and stripped.endswith("}}"):
        return stripped[2:-2].strip()
    return stripped


class Operation:
    """Reconciles one workflow; the controller writes ``self.wf`` back when ``changed``."""

    def __init__(self, controller: Controller, wf: dict[str, Any]) -> None:
        self.ctl = controller
        self.store = controller.store
        self.wf = wf
        meta = wf["metadata"]
        self.name: str = meta["name"]
        self.namespace: str = meta.get("namespace") or "default"
        self.uid: str = meta.get("uid", "")
        self.status: dict[str, Any] = wf.setdefault("status", {})
        # a large workflow's nodes may be stored compressed (the controller packs them on write)
        self.nodes: dict[str, dict[str, Any]] = workflow_nodes(self.status)
        self.status.pop("compressedNodes", None)
        self.status["nodes"] = self.nodes
        self.original_status = copy.deepcopy(self.status)
        self.original_labels = dict(meta.get("labels") or {})
        self.spec: dict[str, Any] = {}
        self.resolver: Resolver | None = None
        self.root_ctx: TemplateContext | None = None
        self.global_scope = Scope()
        self.active_pods = 0
        self.parallelism: int | None = None
        self.shutdown = ""
        self.deadline_exceeded = False
        self.requeue_after: float | None = None
        self.unsupported_messages: list[str] = []
        #: nested executeTemplate calls of this pass (Argo's ``currentStackDepth``)
        self.depth = 0
        self._last_yield = time.perf_counter()
        #: pods created by this pass (at most MAX_POD_CREATIONS_PER_PASS)
        self.created_pods = 0
        #: whether a template nested deeper than Argo's maximum stack depth
        self.depth_exceeded = False
        #: template-level parallelism of steps/DAG nodes (node id -> limit)
        self.boundary_limits: dict[str, int] = {}
        self.now = N.now_rfc3339()

    # ------------------------------------------------------------------ helpers

    @property
    def changed(self) -> bool:
        """Whether the pass changed status or labels."""
        return self.status != self.original_status or (self.wf["metadata"].get("labels") or {}) != self.original_labels

    def _requeue(self, seconds: float) -> None:
        seconds = max(0.05, seconds)
        self.requeue_after = seconds if self.requeue_after is None else min(self.requeue_after, seconds)

    def node_by_name(self, name: str) -> dict[str, Any] | None:
        return self.nodes.get(N.node_id(self.name, name))

    def yield_point(self) -> None:
        """Let the API server's threads run now and then: the controller shares the process (and
        the GIL) with them, and a pass over a huge workflow would otherwise delay every request by
        up to the interpreter's 5 ms switch interval for each of its GIL hand-overs."""
        now = time.perf_counter()
        if now - self._last_yield >= _YIELD_SECONDS:
            time.sleep(0)
            self._last_yield = time.perf_counter()

    def init_node(
        self,
        name: str,
        node_type: str,
        display: str,
        ctx: TemplateContext | None,
        tmpl: dict[str, Any] | None,
        holder: dict[str, Any] | None,
        boundary: str,
        phase: str,
        message: str = "",
    ) -> dict[str, Any]:
        nid = N.node_id(self.name, name)
        self.yield_point()
        if nid not in self.nodes and len(self.nodes) >= MAX_NODES:
            raise LimitExceeded(f"workflow has more than {MAX_NODES} nodes, the most the local cluster runs in one "
                                "workflow; split the loops or recursion into several workflows")
        node: dict[str, Any] = {
            "id": nid,
            "name": name,
            "displayName": display,
            "type": node_type,
            "phase": phase,
            "startedAt": self.now,
        }
        if holder is not None and isinstance(holder.get("templateRef"), dict):
            ref = holder["templateRef"]
            node["templateRef"] = {k: ref[k] for k in ("name", "template", "clusterScope") if k in ref}
        elif tmpl is not None and tmpl.get("name"):
            node["templateName"] = tmpl["name"]
        if ctx is not None:
            node["templateScope"] = ctx.scope_label
        if boundary:
            node["boundaryID"] = boundary
        if message:
            node["message"] = message
        if phase in N.COMPLETED_PHASES:
            node["finishedAt"] = self.now
        self.nodes[nid] = node
        return node

    def mark(self, node: dict[str, Any], phase: str, message: str | None = None) -> None:
        if node.get("phase") != phase:
            node["phase"] = phase
        if message is not None and message and node.get("message") != message:
            node["message"] = message
        if phase in N.COMPLETED_PHASES and not node.get("finishedAt"):
            node["finishedAt"] = self.now

    @staticmethod
    def fulfilled(node: dict[str, Any] | None) -> bool:
        return node is not None and node.get("phase") in N.COMPLETED_PHASES

    def add_child(self, parent: dict[str, Any], child_id: str) -> None:
        children = parent.setdefault("children", [])
        if child_id not in children:
            children.append(child_id)

    def outbound(self, node: dict[str, Any]) -> list[str]:
        """Argo's outbound nodes: leaves of a node's sub-graph."""
        kind = node.get("type")
        if kind in ("Pod", "Skipped", "Suspend") or node.get("phase") in ("Skipped", "Omitted"):
            return [node["id"]]
        if kind == "Retry":
            children = node.get("children") or []
            if children and children[-1] in self.nodes:
                return self.outbound(self.nodes[children[-1]])
            return [node["id"]]
        if node.get("outboundNodes"):
            return list(node["outboundNodes"])
        if kind == "TaskGroup":
            out: list[str] = []
            for cid in node.get("children") or []:
                if cid in self.nodes:
                    out.extend(self.outbound(self.nodes[cid]))
            return out or [node["id"]]
        return [node["id"]]

    # ------------------------------------------------------------------ entry

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
        self.status.clear()
        self.status.update(copy.deepcopy(self.original_status))
        self.nodes = self.status.setdefault("nodes", {})
        root = self.nodes.get(self.name)
        if root is not None and root.get("phase") in ("Pending", "Running"):
            self.mark(root, "Error", "Workflow operation error")
        self.ctl.kill_workflow_pods(self.namespace, self.name, message)
        self._finish("Error", message)

    def _run(self) -> None:
        try:
            self._prepare()
        except (SpecError, TemplateError, ExpressionError) as exc:
            self._finish("Error", f"invalid spec: {exc}" if isinstance(exc, SpecError) else str(exc))
            return
        assert self.root_ctx is not None
        if self.status.get("phase") in (None, "", "Pending"):
            self.status["phase"] = "Running"
            self.status.setdefault("startedAt", self.now)
        try:
            self._check_deadline()
        except SpecError as exc:
            self._finish("Error", f"invalid spec: {exc}")
            return
        if self.shutdown or self.deadline_exceeded:
            self._stop_running()
        self._sync_active_pods()
        if self.spec.get("suspend") and not self.nodes:
            self._set_labels()
            return
        try:
            root = self.execute(self.name, {"template": self.spec["entrypoint"]}, self.root_ctx,
                                self.spec.get("arguments") or {}, boundary="", scope=self.global_scope,
                                on_exit=False)
        except (SpecError, TemplateError, ExpressionError) as exc:
            self._finish("Error", str(exc))
            return
        if root is None or not self.fulfilled(root):
            self._update_progress()
            self._set_labels()
            return
        exit_prefix = f"{self.name}.onExit"
        if any(n.get("type") == "Pod" and n.get("phase") in ("Pending", "Running")
               and not n["name"].startswith(exit_prefix) for n in self.nodes.values()):
            # e.g. a failFast DAG decided while other branches still run: let them finish first
            self._update_progress()
            self._set_labels()
            return
        main_phase = root["phase"]
        main_message = root.get("message", "")
        if self.shutdown:
            main_phase = "Failed"
            main_message = f"Stopped with strategy '{self.shutdown}'"
        elif self.deadline_exceeded:
            main_phase = "Failed"
            main_message = "Workflow exceeded its deadline"
        exit_tmpl = self.spec.get("onExit")
        if exit_tmpl and self.shutdown != "Terminate":
            self.global_scope.set("workflow.status", main_phase)
            self.global_scope.set("workflow.failures", N.go_json(self._failures()))
            try:
                exit_node = self.execute(f"{self.name}.onExit", {"template": exit_tmpl}, self.root_ctx, {},
                                         boundary="", scope=self.global_scope, on_exit=True)
            except (SpecError, TemplateError, ExpressionError) as exc:
                self._finish("Error", str(exc))
                return
            if exit_node is None or not self.fulfilled(exit_node):
                self._update_progress()
                self._set_labels()
                return
            if exit_node["phase"] in N.FAILED_PHASES and main_phase == "Succeeded":
                main_phase = exit_node["phase"]
                main_message = exit_node.get("message", "") or "exit handler failed"
        if main_phase in ("Skipped", "Omitted"):
            main_phase = "Succeeded"
        if main_phase != "Succeeded" and self.unsupported_messages:
            main_message = self.unsupported_messages[0]
        elif main_phase != "Succeeded" and self.depth_exceeded:
            main_message = MAX_DEPTH_MESSAGE
        self._finish(main_phase, main_message if main_phase != "Succeeded" else "")

    def _prepare(self) -> None:
        spec = self.wf.get("spec") or {}
        ref = spec.get("workflowTemplateRef")
        if ref:
            stored = self.status.get("storedWorkflowTemplateSpec")
            if stored is None:
                cluster = bool(ref.get("clusterScope"))
                resolver = Resolver(self.store, self.namespace, None)
                ctx = resolver.context_for_ref(str(ref.get("name", "")), cluster)
                rt = CLUSTER_WORKFLOW_TEMPLATES if cluster else WORKFLOW_TEMPLATES
                tmpl_obj = self.store.get(rt, None if cluster else self.namespace, ctx.name)
                stored = tmpl_obj.get("spec") or {}
                self.status["storedWorkflowTemplateSpec"] = stored
            spec = merge_workflow_template_spec(stored, spec)
        self.spec = spec
        self.shutdown = str(spec.get("shutdown") or "")
        self.parallelism = _parallelism(spec.get("parallelism"), "spec.parallelism")
        self.resolver = Resolver(self.store, self.namespace, spec.get("templateDefaults"))
        self.root_ctx = TemplateContext("local", self.name, templates_by_name(spec, "spec"))
        if not self.nodes and self.status.get("phase") in (None, "", "Pending"):
            validate_workflow(spec, self.resolver, self.root_ctx)
        self._build_global_scope()
        self.active_pods = sum(
            1 for n in self.nodes.values() if n.get("type") == "Pod" and n.get("phase") in ("Pending", "Running")
        )

    def _build_global_scope(self) -> None:
        meta = self.wf["metadata"]
        scope = self.global_scope
        created = meta.get("creationTimestamp") or self.now
        scope.update({
            "workflow.name": self.name,
            "workflow.namespace": self.namespace,
            "workflow.mainEntrypoint": self.spec.get("entrypoint", ""),
            "workflow.uid": self.uid,
            "workflow.serviceAccountName": self.spec.get("serviceAccountName", "default"),
            "workflow.creationTimestamp": created,
            "workflow.priority": str(self.spec.get("priority", 0)),
            "workflow.duration": f"{N.seconds_between(self.status.get('startedAt') or self.now, self.now):f}",
        })
        moment = N.parse_time(created)
        if moment is not None:
            for letter in "YmdHMSyBbAaIpjUWwcxXZz":
                scope.set(f"workflow.creationTimestamp.{letter}", moment.strftime(f"%{letter}"))
            scope.set("workflow.creationTimestamp.s", str(int(moment.timestamp())))
            scope.set("workflow.creationTimestamp.RFC3339", created)
        for key, value in (meta.get("labels") or {}).items():
            scope.set(f"workflow.labels.{key}", value)
        for key, value in (meta.get("annotations") or {}).items():
            scope.set(f"workflow.annotations.{key}", value)
        params: list[dict[str, Any]] = []
        for p in _params(self.spec.get("arguments")):
            name = p.get("name")
            if not name:
                raise SpecError("spec.arguments.parameters: every parameter needs a name")
            value = self._global_param_value(p)
            if p.get("enum") and value not in [_value_str(e) for e in p["enum"]]:
                raise SpecError(f"spec.arguments.parameters.{name}: value '{value}' is not in the enum "
                                f"{[_value_str(e) for e in p['enum']]}")
            scope.set(f"workflow.parameters.{name}", value)
            params.append({"name": name, "value": value})
        scope.set("workflow.parameters", N.go_json(params))
        scope.set("workflow.parameters.json", N.go_json(params))
        for p in _params(self.status.get("outputs")):
            scope.set(f"workflow.outputs.parameters.{p['name']}", p.get("value", ""))
        for a in _arts(self.status.get("outputs")):
            scope.set(f"workflow.outputs.artifacts.{a['name']}", a)

    def _global_param_value(self, p: dict[str, Any]) -> str:
        if p.get("value") is not None:
            return substitute(_value_str(p["value"]), self.global_scope)
        vf = p.get("valueFrom") or {}
        if vf.get("configMapKeyRef"):
            return self._config_map_value(vf["configMapKeyRef"], f"spec.arguments.parameters.{p['name']}")
        if p.get("default") is not None:
            return _value_str(p["default"])
        if vf.get("default") is not None:
            return _value_str(vf["default"])
        raise SpecError(f"spec.arguments.parameters.{p['name']}.value is required")

    def _config_map_value(self, ref: dict[str, Any], field: str) -> str:
        name, key = ref.get("name"), ref.get("key")
        try:
            cm = self.store.get(CONFIGMAPS, self.namespace, str(name))
        except ApiError as exc:
            if ref.get("optional"):
                return ""
            raise SpecError(f"{field}: configmap '{name}' not found") from exc
        data = cm.get("data") or {}
        if key not in data:
            if ref.get("optional"):
                return ""
            raise SpecError(f"{field}: key '{key}' not found in configmap '{name}'")
        return str(data[key])

    def _secret_value(self, ref: dict[str, Any], field: str) -> str:
        import base64
        name, key = ref.get("name"), ref.get("key")
        try:
            secret = self.store.get(SECRETS, self.namespace, str(name))
        except ApiError as exc:
            raise SpecError(f"{field}: secret '{name}' not found") from exc
        data = secret.get("data") or {}
        if key in data:
            return base64.b64decode(data[key]).decode(errors="replace")
        if key in (secret.get("stringData") or {}):
            return str(secret["stringData"][key])
        raise SpecError(f"{field}: key '{key}' not found in secret '{name}'")

    def _check_deadline(self) -> None:
        ads = self.spec.get("activeDeadlineSeconds")
        if ads in (None, ""):
            return
        started = N.parse_time(self.status.get("startedAt"))
        if started is None:
            return
        elapsed = time.time() - started.timestamp()
        limit = _seconds(ads, "spec.activeDeadlineSeconds")
        if elapsed >= limit:
            self.deadline_exceeded = True
        else:
            self._requeue(limit - elapsed)

    def _failures(self) -> list[dict[str, Any]]:
        out = []
        for node in self.nodes.values():
            if node.get("type") == "Pod" and node.get("phase") in N.FAILED_PHASES:
                out.append({
                    "displayName": node.get("displayName", ""),
                    "message": node.get("message", ""),
                    "templateName": node.get("templateName", ""),
                    "phase": node.get("phase"),
                    "podName": self.pod_name_of(node),
                    "finishedAt": node.get("finishedAt", ""),
                })
        return out

    def _update_progress(self) -> None:
        pods = [n for n in self.nodes.values() if n.get("type") == "Pod"]
        done = sum(1 for n in pods if n.get("phase") in N.COMPLETED_PHASES)
        self.status["progress"] = f"{done}/{len(pods)}"
        cpu = 0
        mem = 0
        for n in pods:
            rd = n.get("resourcesDuration") or {}
            cpu += int(rd.get("cpu", 0))
            mem += int(rd.get("memory", 0))
        if pods:
            self.status["resourcesDuration"] = {"cpu": cpu, "memory": mem}
        for n in self.nodes.values():
            if n.get("type") in ("Steps", "DAG", "Retry", "TaskGroup", "StepGroup"):
                n.pop("progress", None)

    def _set_labels(self) -> None:
        labels = self.wf["metadata"].setdefault("labels", {})
        phase = self.status.get("phase") or "Pending"
        labels[LABEL_PHASE] = phase
        labels[LABEL_COMPLETED] = "true" if phase in ("Succeeded", "Failed", "Error") else "false"
        labels_from = ((self.spec.get("workflowMetadata") or {}).get("labelsFrom")) or {}
        for key, src in labels_from.items():
            expr = (src or {}).get("expression")
            if expr:
                try:
                    labels[key] = _value_str(evaluate(str(expr), self.global_scope.env()))
                except ExpressionError:
                    continue
        for key, value in ((self.spec.get("workflowMetadata") or {}).get("labels") or {}).items():
            labels[key] = str(value)

    def _finish(self, phase: str, message: str) -> None:
        if self.shutdown or self.deadline_exceeded:
            self._kill_running(message or "workflow shutdown")
        self._collect_artifacts_on_completion()
        self.status["phase"] = phase
        self.status.setdefault("startedAt", self.now)
        self.status["finishedAt"] = self.now
        if message:
            self.status["message"] = message
        else:
            self.status.pop("message", None)
        self._update_progress()
        started = N.parse_time(self.status.get("startedAt"))
        if started is not None:
            self.status["estimatedDuration"] = int(N.seconds_between(self.status["startedAt"], self.now))
        self._set_labels()

    def _collect_artifacts_on_completion(self) -> None:
        """``artifactGC`` OnWorkflowCompletion: delete those artifacts' objects now, mark them
        ``deleted`` in node status, record the strategy as processed and failures as conditions."""
        gc_status = self.status.get("artifactGCStatus") or {}
        if (gc_status.get("strategiesProcessed") or {}).get("OnWorkflowCompletion"):
            return
        strategy = str((self.spec.get("artifactGC") or {}).get("strategy") or "")
        deleted, errors, found = self.ctl.collect_artifact_garbage(self.namespace, self.status, strategy,
                                                                   "OnWorkflowCompletion")
        if not found:
            return
        for node_id, index in deleted:
            self.nodes[node_id]["outputs"]["artifacts"][index]["deleted"] = True
        gc_status = self.status.setdefault("artifactGCStatus", {})
        gc_status.setdefault("strategiesProcessed", {})["OnWorkflowCompletion"] = True
        if errors:
            conditions = self.status.setdefault("conditions", [])
            conditions.append({"type": "ArtifactGCError", "status": "True",
                               "message": "; ".join(errors)[:2000]})

    def _stop_running(self) -> None:
        message = (f"workflow shutdown with strategy: {self.shutdown}" if self.shutdown
                   else "Step exceeded its deadline")
        for node in self.nodes.values():
            if node.get("type") == "Suspend" and node.get("phase") == "Running":
                self.mark(node, "Failed", message)
        self._kill_running(message)

    def _kill_running(self, message: str) -> None:
        for node in self.nodes.values():
            if self.shutdown == "Stop" and ".onExit" in node["name"]:
                continue  # exit handlers still run when stopping
            if node.get("type") == "Pod" and node.get("phase") in ("Pending", "Running"):
                self.ctl.kill_pod(self.namespace, self.pod_name_of(node), message)

    # ------------------------------------------------------------------ templates

    def pod_name_of(self, node: dict[str, Any]) -> str:
        tmpl_name = node.get("templateName") or (node.get("templateRef") or {}).get("template", "")
        return N.pod_name(self.name, node["name"], tmpl_name)

    def execute(
        self,
        node_name: str,
        holder: dict[str, Any],
        ctx: TemplateContext,
        args: dict[str, Any],
        *,
        boundary: str,
        scope: Scope,
        on_exit: bool,
        display: str | None = None,
    ) -> dict[str, Any] | None:
        """Argo's ``executeTemplate``: run (or continue) the template of ``holder`` as node ``node_name``."""
        node = self.node_by_name(node_name)
        if self.fulfilled(node):
            return node
        display = display or node_name
        self.yield_point()
        self.depth += 1
        try:
            if self.depth >= MAX_STACK_DEPTH:
                self.depth_exceeded = True
                return self._error_node(node, node_name, display, ctx, None, holder, boundary, MAX_DEPTH_MESSAGE)
            return self._execute(node, node_name, holder, ctx, args, boundary=boundary, scope=scope,
                                 on_exit=on_exit, display=display)
        finally:
            self.depth -= 1

    def _execute(self, node: dict[str, Any] | None, node_name: str, holder: dict[str, Any], ctx: TemplateContext,
                 args: dict[str, Any], *, boundary: str, scope: Scope, on_exit: bool, display: str
                 ) -> dict[str, Any] | None:
        assert self.resolver is not None
        try:
            tmpl_ctx, raw = self.resolver.resolve(holder, ctx)
        except SpecError as exc:
            return self._error_node(node, node_name, display, ctx, None, holder, boundary, str(exc))
        if (self.shutdown or self.deadline_exceeded) and node is None and not (on_exit and self.shutdown == "Stop"):
            message = (f"workflow shutdown with strategy: {self.shutdown}" if self.shutdown
                       else "Workflow exceeded its deadline")
            kind = "Pod" if template_type(raw) in ("container", "script") else _node_type(raw)
            return self.init_node(node_name, kind, display, tmpl_ctx, raw, holder, boundary, "Failed", message)
        try:
            tmpl, local = self._process_args(raw, args, scope, node_name)
        except (SpecError, TemplateError, ExpressionError) as exc:
            return self._error_node(node, node_name, display, tmpl_ctx, raw, holder, boundary, str(exc))
        retry = tmpl.get("retryStrategy")
        if retry:
            return self._execute_retry(node, node_name, display, holder, tmpl_ctx, tmpl, raw, local, boundary,
                                       on_exit)
        return self._execute_body(node, node_name, display, holder, tmpl_ctx, tmpl, local, boundary, on_exit, 0)

    def _error_node(self, node: dict[str, Any] | None, name: str, display: str, ctx: TemplateContext | None,
                    tmpl: dict[str, Any] | None, holder: dict[str, Any], boundary: str, message: str
                    ) -> dict[str, Any]:
        if node is None:
            node = self.init_node(name, _node_type(tmpl) if tmpl else "Skipped", display, ctx, tmpl, holder,
                                  boundary, "Error", message)
        else:
            self.mark(node, "Error", message)
        return node

    def _process_args(self, raw: dict[str, Any], args: dict[str, Any], scope: Scope, node_name: str
                      ) -> tuple[dict[str, Any], Scope]:
        """Argo's ``ProcessArgs`` + ``substituteParams``: inputs from arguments/defaults, then tags."""
        tmpl = copy.deepcopy(raw)
        arg_params = {p.get("name"): p for p in _params(args)}
        local = scope.child({"node.name": node_name})
        inputs: list[dict[str, Any]] = []
        for p in _params(tmpl.get("inputs")):
            name = p.get("name")
            value: str | None = None
            if p.get("value") is not None:
                value = _value_str(p["value"])
            elif p.get("default") is not None:
                value = _value_str(p["default"])
            arg = arg_params.get(name)
            if arg is not None:
                if arg.get("value") is not None:
                    value = _value_str(arg["value"])
                elif (arg.get("valueFrom") or {}).get("configMapKeyRef"):
                    value = self._config_map_value(arg["valueFrom"]["configMapKeyRef"], f"inputs.parameters.{name}")
            vf = p.get("valueFrom") or {}
            if value is None and vf.get("configMapKeyRef"):
                value = self._config_map_value(vf["configMapKeyRef"], f"inputs.parameters.{name}")
            if value is None:
                raise SpecError(f"inputs.parameters.{name} was not supplied")
            value = substitute(value, scope)
            if p.get("enum"):
                allowed = [_value_str(e) for e in p["enum"]]
                if value not in allowed:
                    raise SpecError(f"inputs.parameters.{name}: value '{value}' is not in the enum {allowed}")
            entry = {k: v for k, v in p.items() if k not in ("value", "default", "valueFrom")}
            entry["value"] = value
            if p.get("enum"):
                entry["enum"] = p["enum"]
            inputs.append(entry)
            local.set(f"inputs.parameters.{name}", value)
        if inputs:
            tmpl.setdefault("inputs", {})["parameters"] = inputs
            local.set("inputs.parameters", N.go_json(inputs))
        arg_arts = {a.get("name"): a for a in _arts(args)}
        in_arts: list[dict[str, Any]] = []
        for a in _arts(tmpl.get("inputs")):
            name = a.get("name")
            resolved = a
            if not has_location_or_key(a):
                arg = arg_arts.get(name)
                if arg is not None and has_location_or_key(arg):
                    resolved = {**copy.deepcopy(arg), "name": name}
                    for key in ("path", "mode", "recurseMode", "optional"):
                        if a.get(key) is not None:
                            resolved[key] = a[key]
                elif not a.get("optional"):
                    if arg is None:
                        raise SpecError(f"inputs.artifacts.{name} was not supplied")
                    raise SpecError(f"inputs.artifacts.{name} missing location information")
            in_arts.append(resolved)
            if a.get("path"):
                local.set(f"inputs.artifacts.{name}.path", str(a["path"]))
            local.set(f"inputs.artifacts.{name}", copy.deepcopy(resolved))
        if in_arts:
            tmpl.setdefault("inputs", {})["artifacts"] = in_arts
        if template_type(tmpl) in ("container", "script"):
            for a in _arts(tmpl.get("outputs")):
                if a.get("path"):
                    local.set(f"outputs.artifacts.{a.get('name')}.path", str(a["path"]))
            for p in _params(tmpl.get("outputs")):
                if (p.get("valueFrom") or {}).get("path"):
                    local.set(f"outputs.parameters.{p.get('name')}.path", str(p["valueFrom"]["path"]))
        if template_type(tmpl) in ("container", "script"):
            pod_tmpl_name = tmpl.get("name", "")
            local.set("pod.name", N.pod_name(self.name, node_name, pod_tmpl_name))
        tmpl = substitute_obj(tmpl, local, skip=_UNSUBSTITUTED)
        return tmpl, local

    def _execute_retry(self, node: dict[str, Any] | None, node_name: str, display: str, holder: dict[str, Any],
                       ctx: TemplateContext, tmpl: dict[str, Any], raw: dict[str, Any], local: Scope,
                       boundary: str, on_exit: bool) -> dict[str, Any] | None:
        strategy = tmpl.get("retryStrategy") or {}
        if node is None:
            node = self.init_node(node_name, "Retry", display, ctx, tmpl, holder, boundary, "Running")
            if tmpl.get("inputs"):
                node["inputs"] = tmpl["inputs"]
        children = node.get("children") or []
        attempt = len(children)
        if children:
            last = self.nodes.get(children[-1])
            if last is None:
                attempt = len(children) - 1
            elif not self.fulfilled(last):
                return self._run_attempt(node, node_name, len(children) - 1, holder, ctx, tmpl, raw, local, on_exit)
            else:
                if last["phase"] in ("Succeeded", "Skipped"):
                    if last.get("outputs"):
                        node["outputs"] = last["outputs"]
                    node["outboundNodes"] = self.outbound(last)
                    self.mark(node, "Succeeded")
                    return node
                decision = self._retry_decision(node, last, strategy, local)
                if decision is not None:
                    self.mark(node, last["phase"], decision)
                    if last.get("outputs"):
                        node["outputs"] = last["outputs"]
                    return node
                wait = self._backoff_remaining(last, strategy, len(children))
                if wait > 0:
                    self._requeue(wait)
                    node["message"] = f"Backoff for {math.ceil(wait)} seconds"
                    return node
                node.pop("message", None)
        return self._run_attempt(node, node_name, attempt, holder, ctx, tmpl, raw, local, on_exit)

    def _run_attempt(self, node: dict[str, Any], node_name: str, attempt: int, holder: dict[str, Any],
                     ctx: TemplateContext, tmpl: dict[str, Any], raw: dict[str, Any], local: Scope,
                     on_exit: bool) -> dict[str, Any]:
        child_name = f"{node_name}({attempt})"
        child_tmpl = {k: v for k, v in tmpl.items() if k != "retryStrategy"}
        attempt_scope = local.child({"retries": str(attempt), "node.name": child_name})
        if template_type(child_tmpl) in ("container", "script"):
            attempt_scope.set("pod.name", N.pod_name(self.name, child_name, child_tmpl.get("name", "")))
            child_tmpl = substitute_obj(copy.deepcopy({k: v for k, v in raw.items() if k != "retryStrategy"}),
                                        attempt_scope, skip=_UNSUBSTITUTED)
            if tmpl.get("inputs"):
                child_tmpl["inputs"] = tmpl["inputs"]
        existing = self.node_by_name(child_name)
        child = self._execute_body(existing, child_name, f"{node.get('displayName', node_name)}({attempt})",
                                   holder, ctx, child_tmpl, attempt_scope, node.get("boundaryID", ""), on_exit,
                                   attempt)
        if child is not None:
            self.add_child(node, child["id"])
            if self.fulfilled(child):
                # the retry node decides about the next attempt in the next pass
                self._requeue(0.05)
        return node

    def _retry_decision(self, node: dict[str, Any], last: dict[str, Any], strategy: dict[str, Any],
                        scope: Scope) -> str | None:
        """None to retry, else the message with which the retry node gives up."""
        if self.shutdown or self.deadline_exceeded:
            return last.get("message", "") or "workflow shutdown"
        policy = strategy.get("retryPolicy") or "OnFailure"
        phase = last["phase"]
        retry_failed = policy in ("Always", "OnFailure")
        retry_error = policy in ("Always", "OnError")
        if policy == "OnTransientError":
            retry_failed = retry_error = _is_transient(last.get("message", ""))
        if (phase == "Failed" and not retry_failed) or (phase == "Error" and not retry_error):
            return last.get("message", "") or f"retryPolicy {policy} does not retry a node in phase {phase}"
        children = node.get("children") or []
        expr = strategy.get("expression")
        if expr:
            env_scope = scope.child({
                "lastRetry.exitCode": _int_or_str((last.get("outputs") or {}).get("exitCode", "-1")),
                "lastRetry.status": phase,
                "lastRetry.duration": str(N.seconds_between(last.get("startedAt"), last.get("finishedAt"))),
                "lastRetry.message": last.get("message", ""),
                "retries": len(children) - 1,
            })
            try:
                ok = evaluate(str(expr), env_scope.env())
            except ExpressionError as exc:
                return f"retryStrategy.expression failed: {exc}"
            if ok is not True:
                return last.get("message", "") or "retryStrategy.expression evaluated to false"
        limit = strategy.get("limit")
        if limit not in (None, ""):
            try:
                limit_n = int(str(limit))
            except ValueError:
                return f"retryStrategy.limit: invalid value '{limit}'"
            if len(children) > limit_n:
                return "No more retries left"
        return None

    def _backoff_remaining(self, last: dict[str, Any], strategy: dict[str, Any], attempts: int) -> float:
        backoff = strategy.get("backoff") or {}
        if not backoff.get("duration"):
            return 0.0
        base = N.parse_duration(backoff["duration"], field="retryStrategy.backoff.duration")
        factor = float(str(backoff.get("factor", 2)))
        delay = base * (factor ** max(0, attempts - 1))
        if backoff.get("cap"):
            delay = min(delay, N.parse_duration(backoff["cap"], field="retryStrategy.backoff.cap"))
        finished = N.parse_time(last.get("finishedAt"))
        if finished is None:
            return 0.0
        return finished.timestamp() + delay - time.time()

    def _execute_body(self, node: dict[str, Any] | None, node_name: str, display: str, holder: dict[str, Any],
                      ctx: TemplateContext, tmpl: dict[str, Any], local: Scope, boundary: str, on_exit: bool,
                      retries: int) -> dict[str, Any] | None:
        kind = template_type(tmpl)
        if kind in ("container", "script"):
            return self._execute_pod(node, node_name, display, holder, ctx, tmpl, boundary, retries)
        if kind == "steps":
            return self._execute_steps(node, node_name, display, holder, ctx, tmpl, local, boundary, on_exit)
        if kind == "dag":
            return self._execute_dag(node, node_name, display, holder, ctx, tmpl, local, boundary, on_exit)
        if kind == "suspend":
            return self._execute_suspend(node, node_name, display, holder, ctx, tmpl, boundary)
        if kind in UNSUPPORTED_TYPES:
            message = f"template type {kind} is not supported by the local cluster"
            if message not in self.unsupported_messages:
                self.unsupported_messages.append(f"{message} (template '{tmpl.get('name', '')}')")
            return self._error_node(node, node_name, display, ctx, tmpl, holder, boundary, message)
        return self._error_node(node, node_name, display, ctx, tmpl, holder, boundary,
                                f"template '{tmpl.get('name', '')}' has no type (container, script, steps, dag...)")

    # ------------------------------------------------------------------ pods

    def _boundary_parallelism_ok(self, boundary: str) -> bool:
        if self.parallelism is not None and self.active_pods >= self.parallelism:
            return False
        limit = self.boundary_limits.get(boundary)
        if limit is not None:
            running = sum(1 for n in self.nodes.values()
                          if n.get("boundaryID") == boundary and n.get("phase") in ("Pending", "Running")
                          and n.get("type") not in ("StepGroup", "TaskGroup"))
            if running >= limit:
                return False
        return True

    def _execute_pod(self, node: dict[str, Any] | None, node_name: str, display: str, holder: dict[str, Any],
                     ctx: TemplateContext, tmpl: dict[str, Any], boundary: str, retries: int
                     ) -> dict[str, Any] | None:
        pod = N.pod_name(self.name, node_name, tmpl.get("name", ""))
        if node is None:
            if self.spec.get("suspend"):
                return None
            if not self._boundary_parallelism_ok(boundary):
                return None
            if self.created_pods >= MAX_POD_CREATIONS_PER_PASS:
                self._requeue(0.05)  # the next pass creates the next batch (Argo's resourceRateLimit)
                return None
            self.created_pods += 1
            node = self.init_node(node_name, "Pod", display, ctx, tmpl, holder, boundary, "Pending")
            if tmpl.get("inputs"):
                node["inputs"] = tmpl["inputs"]
            self.active_pods += 1
            try:
                self._create_pod(pod, node, tmpl)
            except (SpecError, TemplateError, ExpressionError, ArtifactError) as exc:
                self.mark(node, "Error", str(exc))
                self.active_pods -= 1
                return node
        self._sync_pod(node, pod, tmpl)
        return node

    def _create_pod(self, pod: str, node: dict[str, Any], tmpl: dict[str, Any]) -> None:
        leftovers = unresolved_tags({k: tmpl.get(k) for k in ("container", "script")})
        if leftovers:
            raise TemplateError(f"failed to resolve {leftovers[0]}")
        kind = "script" if tmpl.get("script") is not None else "container"
        container = copy.deepcopy(tmpl[kind])
        source = container.pop("source", None) if kind == "script" else None
        container["name"] = "main"
        resources = deep_merge(self.spec.get("podResources") or {}, container.get("resources") or {})
        if resources:
            container["resources"] = resources
        env: list[dict[str, Any]] = []
        for i, e in enumerate(container.get("env") or []):
            if not isinstance(e, dict) or not e.get("name"):
                raise SpecError(f"templates.{tmpl.get('name', '')}.container.env[{i}].name is required")
            if e.get("valueFrom"):
                vf = e["valueFrom"]
                field = f"templates.{tmpl.get('name', '')}.container.env[{i}].valueFrom"
                if vf.get("configMapKeyRef"):
                    env.append({"name": e["name"], "value": self._config_map_value(vf["configMapKeyRef"], field)})
                elif vf.get("secretKeyRef"):
                    env.append({"name": e["name"], "value": self._secret_value(vf["secretKeyRef"], field)})
                elif vf.get("fieldRef"):
                    env.append({"name": e["name"], "value": self._field_ref(vf["fieldRef"], pod)})
                else:
                    raise SpecError(f"{field}: only configMapKeyRef, secretKeyRef and fieldRef are supported "
                                    "by the local cluster")
            else:
                env.append({"name": e["name"], "value": _value_str(e.get("value", ""))})
        if env:
            container["env"] = env
        metadata_labels: dict[str, str] = {}
        metadata_annotations: dict[str, str] = {}
        for source_md in (self.spec.get("podMetadata") or {}, tmpl.get("metadata") or {}):
            metadata_labels.update({k: str(v) for k, v in (source_md.get("labels") or {}).items()})
            metadata_annotations.update({k: str(v) for k, v in (source_md.get("annotations") or {}).items()})
        labels = {**metadata_labels, LABEL_WORKFLOW: self.name, LABEL_COMPLETED: "false"}
        annotations = {**metadata_annotations, ANNOTATION_NODE_NAME: node["name"], ANNOTATION_NODE_ID: node["id"]}
        out_params = [p for p in _params(tmpl.get("outputs"))]
        annotations[ANNOTATION_TEMPLATE] = N.go_json({"name": tmpl.get("name", ""),
                                                      "outputs": {"parameters": out_params}})
        spec: dict[str, Any] = {"containers": [container], "restartPolicy": "Never"}
        for key in _POD_SPEC_FIELDS:
            value = tmpl.get(key, self.spec.get(key))
            if value is not None:
                spec[key] = copy.deepcopy(value)
        spec.setdefault("serviceAccountName", "default")
        deadline = self._pod_deadline(tmpl)
        if deadline is not None:
            spec["activeDeadlineSeconds"] = math.ceil(deadline)
        for patch_src, where in ((self.spec.get("podSpecPatch"), "spec.podSpecPatch"),
                                 (tmpl.get("podSpecPatch"), f"templates.{tmpl.get('name', '')}.podSpecPatch")):
            if patch_src:
                text = substitute(str(patch_src), self.global_scope)
                spec = apply_pod_spec_patch(spec, text, where)
        main = next((c for c in spec.get("containers") or [] if c.get("name") == "main"), container)
        eci = labels.get("alibabacloud.com/eci") == "true" or spec.get("schedulerName") == "eci-scheduler"
        spec["nodeName"] = "virtual-kubelet" if eci else "local"
        pod_obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod,
                "namespace": self.namespace,
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [{
                    "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "name": self.name,
                    "uid": self.uid, "controller": True, "blockOwnerDeletion": True,
                }],
            },
            "spec": spec,
            "status": {"phase": "Pending"},
        }
        node["hostNodeName"] = spec["nodeName"]
        output_paths = [str((p.get("valueFrom") or {}).get("path")) for p in out_params
                        if (p.get("valueFrom") or {}).get("path")]
        inputs_plan = self._input_artifact_plan(node, tmpl)
        outputs_plan, key_prefix = self._output_artifact_plan(tmpl, pod)
        request = PodRequest(
            namespace=self.namespace,
            pod_name=pod,
            container=main,
            script_source=source,
            output_paths=output_paths,
            cpu=N.parse_cpu(((main.get("resources") or {}).get("requests") or {}).get("cpu"), 0.1),
            deadline_seconds=deadline,
            labels=labels,
            annotations=annotations,
            input_paths=[str(a["path"]) for a, _ in inputs_plan],
            artifact_paths=[str(a["path"]) for a, _, _, _ in outputs_plan],
            prepare=self._artifact_loader(inputs_plan) if inputs_plan else None,
            security_context=spec.get("securityContext"),
            host_network=spec.get("hostNetwork", False),
        )
        saver = self._artifact_saver(outputs_plan, key_prefix) if outputs_plan else None
        self.ctl.create_and_submit(pod_obj, request, save_artifacts=saver)

    # ------------------------------------------------------------------ artifacts

    def _repository(self) -> dict[str, Any]:
        """The artifact repository of this workflow (resolved once, recorded in status)."""
        ref = self.status.get("artifactRepositoryRef")
        if not isinstance(ref, dict) or not isinstance(ref.get("artifactRepository"), dict):
            ref = resolve_repository(self.store, self.namespace, self.spec.get("artifactRepositoryRef"),
                                     self.ctl.artifact_repository)
            self.status["artifactRepositoryRef"] = ref
        repo: dict[str, Any] = ref["artifactRepository"]
        return repo

    def _artifact_place(self, art: dict[str, Any], where: str) -> tuple[dict[str, Any], str | None]:
        """The OSS place of an artifact (the repository's, with the artifact's own oss fields on top)
        and its own key (None: the executor derives it from the repository's keyFormat)."""
        check_supported(art, where)
        oss: dict[str, Any] = dict(self._repository()["oss"])
        own = art.get("oss")
        if isinstance(own, dict):
            oss.update({k: v for k, v in own.items() if v not in (None, "")})
        oss.pop("keyFormat", None)
        oss.pop("key", None)
        return oss, artifact_key(art)

    def _location(self, oss: dict[str, Any], key: str) -> Location:
        return location_of(self.store, self.namespace, oss, key, self.ctl.artifact_credentials)

    def _input_artifact_plan(self, node: dict[str, Any], tmpl: dict[str, Any]
                             ) -> list[tuple[dict[str, Any], Location | None]]:
        """Input artifacts to place before start, each with its location (None for raw data);
        the node's ``inputs.artifacts`` get the resolved OSS locations, as Argo records them."""
        plan: list[tuple[dict[str, Any], Location | None]] = []
        recorded: list[dict[str, Any]] = []
        tname = tmpl.get("name", "")
        for a in _arts(tmpl.get("inputs")):
            name = a.get("name")
            where = f"templates.{tname}.inputs.artifacts.{name}"
            if not a.get("path"):
                raise SpecError(f"{where}.path is required")
            if not has_location_or_key(a):
                if a.get("optional"):
                    recorded.append(a)
                    continue
                raise ArtifactError(f"required artifact '{name}' not supplied")
            if a.get("raw") is not None:
                plan.append((a, None))
                recorded.append(a)
                continue
            oss, key = self._artifact_place(a, where)
            if key is None:
                raise ArtifactError(f"{where}: the artifact has no key")
            plan.append((a, self._location(oss, key)))
            entry = strip_location(a)
            entry["oss"] = status_location(oss, key)
            recorded.append(entry)
        if recorded:
            node.setdefault("inputs", {})["artifacts"] = recorded
        return plan

    def _artifact_loader(self, plan: list[tuple[dict[str, Any], Location | None]]) -> Any:
        clients = self.ctl.oss_clients

        def prepare(host_of: HostPathOf) -> None:
            for art, loc in plan:
                try:
                    load_artifact(clients, art, host_of(str(art["path"])), loc)
                except NotFound as exc:
                    if art.get("optional"):
                        continue
                    raise ArtifactError(f"artifact {art.get('name')} failed to load: {exc}") from exc

        return prepare

    def _output_artifact_plan(self, tmpl: dict[str, Any], pod: str
                              ) -> tuple[list[tuple[dict[str, Any], dict[str, Any], str | None, Location]], str]:
        """Output artifacts with their place, own key and location, and the pod's key prefix."""
        prefix = ""
        plan: list[tuple[dict[str, Any], dict[str, Any], str | None, Location]] = []
        tname = tmpl.get("name", "")
        for a in _arts(tmpl.get("outputs")):
            where = f"templates.{tname}.outputs.artifacts.{a.get('name')}"
            if not a.get("name"):
                raise SpecError(f"templates.{tname}.outputs.artifacts: every artifact needs a name")
            if not a.get("path"):
                raise SpecError(f"{where}.path is required")
            oss, key = self._artifact_place(a, where)
            plan.append((a, oss, key, self._location(oss, key or "")))
        if plan:
            repo_oss = self._repository()["oss"]
            key_format = str(repo_oss.get("keyFormat") or DEFAULT_KEY_FORMAT)
            prefix = substitute(key_format, self.global_scope.child({"pod.name": pod}))
            if unresolved_tags(prefix):
                raise ArtifactError(f"artifact repository keyFormat: failed to resolve {unresolved_tags(prefix)[0]}")
        return plan, prefix

    def _artifact_saver(self, plan: list[tuple[dict[str, Any], dict[str, Any], str | None, Location]],
                        prefix: str) -> Any:
        """Argo's wait container: after exit, upload what the pod left at each output path."""
        clients = self.ctl.oss_clients

        def save(result: PodResult) -> tuple[list[dict[str, Any]], str]:
            saved: list[dict[str, Any]] = []
            errors: list[str] = []
            scratch = Path(str(result.extra.get("pod_dir") or self.ctl.paths.pod_dir(
                result.namespace, result.pod_name))) / "artifacts-staging"
            for art, oss, key, place in plan:
                host = result.artifact_paths.get(str(art["path"]))
                if host is None:
                    if not art.get("optional") and result.phase == "Succeeded":
                        errors.append(missing_output_message(str(art["path"])))
                    continue
                try:
                    saved.append(save_artifact(clients, art, Path(host), oss, key, prefix, place, scratch))
                except ArtifactError as exc:
                    errors.append(str(exc))
            return saved, "; ".join(errors)

        return save

    def _field_ref(self, ref: dict[str, Any], pod: str) -> str:
        path = ref.get("fieldPath", "")
        values = {"metadata.name": pod, "metadata.namespace": self.namespace, "spec.nodeName": "local",
                  "spec.serviceAccountName": "default", "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1"}
        if path not in values:
            raise SpecError(f"fieldRef {path} is not supported by the local cluster")
        return values[path]

    def _pod_deadline(self, tmpl: dict[str, Any]) -> float | None:
        candidates = []
        ads = tmpl.get("activeDeadlineSeconds")
        if ads not in (None, ""):
            candidates.append(N.parse_duration(ads, field=f"templates.{tmpl.get('name', '')}.activeDeadlineSeconds"))
        if tmpl.get("timeout"):
            candidates.append(N.parse_duration(tmpl["timeout"], field=f"templates.{tmpl.get('name', '')}.timeout"))
        wf_ads = self.spec.get("activeDeadlineSeconds")
        started = N.parse_time(self.status.get("startedAt"))
        if wf_ads not in (None, "") and started is not None:
            candidates.append(max(1.0, _seconds(wf_ads, "spec.activeDeadlineSeconds")
                                  - (time.time() - started.timestamp())))
        return min(candidates) if candidates else None

    def _sync_active_pods(self) -> None:
        """Bring every Pending/Running pod node up to date, also those the walk no longer visits
        (e.g. under a DAG that failFast already decided)."""
        for node in list(self.nodes.values()):
            if node.get("type") == "Pod" and node.get("phase") in ("Pending", "Running"):
                self._sync_pod(node, self.pod_name_of(node), None)

    def _sync_pod(self, node: dict[str, Any], pod: str, tmpl: dict[str, Any] | None) -> None:
        obj = self.ctl.get_pod(self.namespace, pod)
        if obj is not None and tmpl is None:
            recorded = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_TEMPLATE)
            tmpl = json.loads(recorded) if recorded else {}
        if obj is None:
            self.mark(node, "Error", "pod deleted")
            self.active_pods = max(0, self.active_pods - 1)
            return
        phase = (obj.get("status") or {}).get("phase", "Pending")
        if phase == "Pending" and self.ctl.runtime.is_running(self.namespace, pod):
            self.ctl.mark_pod_running(self.namespace, pod)
            phase = "Running"
        if phase == "Running" and node["phase"] == "Pending":
            self.mark(node, "Running")
            return
        if phase not in ("Succeeded", "Failed"):
            return
        tmpl = tmpl or {}
        raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_OUTPUTS)
        info: dict[str, Any] = json.loads(raw) if raw else {}
        outputs: dict[str, Any] = {}
        exit_code = info.get("exitCode")
        node_phase = info.get("phase") or phase
        message = info.get("message", "")
        if exit_code is not None:
            outputs["exitCode"] = str(exit_code)
        if info.get("result") is not None and (node_phase != "Error" or info.get("result")):
            outputs["result"] = info["result"]
        files: dict[str, Any] = info.get("files") or {}
        params: list[dict[str, Any]] = []
        for p in _params(tmpl.get("outputs")):
            vf = p.get("valueFrom") or {}
            value: str | None = None
            if vf.get("path"):
                content = files.get(vf["path"])
                if content is not None:
                    value = content[:-1] if content.endswith("\n") else content
            if value is None and p.get("value") is not None:
                value = _value_str(p["value"])
            if value is None and vf.get("default") is not None:
                value = _value_str(vf["default"])
            if value is None and vf.get("expression"):
                try:
                    value = _value_str(evaluate(str(vf["expression"]), self.global_scope.env()))
                except ExpressionError:
                    value = None
            if value is None:
                if node_phase == "Succeeded":
                    node_phase = "Error"
                    message = (f"Error (exit code 1): failed to get output parameter '{p.get('name')}': "
                               f"open {vf.get('path', '')}: no such file or directory")
                continue
            entry: dict[str, Any] = {"name": p.get("name"), "value": value}
            if vf:
                entry["valueFrom"] = vf
            if p.get("globalName"):
                entry["globalName"] = p["globalName"]
                self._set_global_output(str(p["globalName"]), value)
            params.append(entry)
        if params:
            outputs["parameters"] = params
        saved_arts = [a for a in (info.get("artifacts") or []) if isinstance(a, dict)]
        if saved_arts:
            outputs["artifacts"] = saved_arts
            for a in saved_arts:
                if a.get("globalName"):
                    self._set_global_artifact(str(a["globalName"]), a)
        if outputs:
            node["outputs"] = outputs
        node["hostNodeName"] = (obj.get("spec") or {}).get("nodeName", "local")
        if info.get("startedAt"):
            node["startedAt"] = info["startedAt"]
        if info.get("finishedAt"):
            node["finishedAt"] = info["finishedAt"]
        duration = max(1.0, N.seconds_between(node.get("startedAt"), node.get("finishedAt")))
        container = ((obj.get("spec") or {}).get("containers") or [{}])[0]
        requests = (container.get("resources") or {}).get("requests") or {}
        cpu = N.parse_cpu(requests.get("cpu"), 1.0)
        node["resourcesDuration"] = {"cpu": max(1, round(duration * cpu)),
                                     "memory": max(1, round(duration * _mem_units(requests.get("memory"))))}
        self.mark(node, node_phase if node_phase in ("Succeeded", "Failed", "Error") else "Error", message)
        self.active_pods = max(0, self.active_pods - 1)

    def _set_global_artifact(self, name: str, art: dict[str, Any]) -> None:
        entry = {**copy.deepcopy(art), "name": name}
        entry.pop("globalName", None)
        outs = self.status.setdefault("outputs", {}).setdefault("artifacts", [])
        for i, a in enumerate(outs):
            if a.get("name") == name:
                outs[i] = entry
                break
        else:
            outs.append(entry)
        self.global_scope.set(f"workflow.outputs.artifacts.{name}", copy.deepcopy(entry))

    def _set_global_output(self, name: str, value: str) -> None:
        outs = self.status.setdefault("outputs", {}).setdefault("parameters", [])
        for p in outs:
            if p.get("name") == name:
                p["value"] = value
                break
        else:
            outs.append({"name": name, "value": value})
        self.global_scope.set(f"workflow.outputs.parameters.{name}", value)

    # ------------------------------------------------------------------ suspend

    def _execute_suspend(self, node: dict[str, Any] | None, node_name: str, display: str, holder: dict[str, Any],
                         ctx: TemplateContext, tmpl: dict[str, Any], boundary: str) -> dict[str, Any]:
        if node is None:
            node = self.init_node(node_name, "Suspend", display, ctx, tmpl, holder, boundary, "Running")
            if tmpl.get("inputs"):
                node["inputs"] = tmpl["inputs"]
        duration = (tmpl.get("suspend") or {}).get("duration")
        if duration not in (None, ""):
            seconds = N.parse_duration(duration, field=f"templates.{tmpl.get('name', '')}.suspend.duration")
            started = N.parse_time(node.get("startedAt"))
            elapsed = time.time() - started.timestamp() if started else 0.0
            if elapsed >= seconds:
                self._suspend_outputs(node, tmpl)
                self.mark(node, "Succeeded")
            else:
                self._requeue(seconds - elapsed)
        return node

    def _suspend_outputs(self, node: dict[str, Any], tmpl: dict[str, Any]) -> None:
        params = []
        for p in _params(tmpl.get("outputs")):
            vf = p.get("valueFrom") or {}
            value = p.get("value", vf.get("default"))
            if value is not None:
                params.append({"name": p.get("name"), "value": _value_str(value)})
        if params and not (node.get("outputs") or {}).get("parameters"):
            node.setdefault("outputs", {})["parameters"] = params

    # ------------------------------------------------------------------ steps

    def _execute_steps(self, node: dict[str, Any] | None, node_name: str, display: str, holder: dict[str, Any],
                       ctx: TemplateContext, tmpl: dict[str, Any], local: Scope, boundary: str, on_exit: bool
                       ) -> dict[str, Any]:
        if node is None:
            node = self.init_node(node_name, "Steps", display, ctx, tmpl, holder, boundary, "Running")
            if tmpl.get("inputs"):
                node["inputs"] = tmpl["inputs"]
        self._push_limit(node["id"], tmpl)
        scope = local.child()
        groups = tmpl.get("steps") or []
        prev_children: list[str] = []
        last_children: list[str] = []
        for i, group in enumerate(groups):
            if isinstance(group, dict):
                group = group.get("steps") or []
            sg_name = f"{node_name}[{i}]"
            sg = self.node_by_name(sg_name)
            if sg is None:
                sg = self.init_node(sg_name, "StepGroup", f"[{i}]", ctx, None, None, node["id"], "Running")
                sg.pop("templateName", None)
            if i == 0:
                self.add_child(node, sg["id"])
            else:
                for cid in prev_children:
                    child = self.nodes.get(cid)
                    if child is None:
                        continue
                    for out_id in self.outbound(child):
                        if out_id in self.nodes:
                            self.add_child(self.nodes[out_id], sg["id"])
            outcome = self._execute_step_group(group, sg, sg_name, ctx, scope, node["id"], on_exit)
            if not outcome.done:
                return node
            if outcome.failure:
                self.mark(sg, "Failed", outcome.failure)
                self.mark(node, "Failed", outcome.failure)
                return node
            self.mark(sg, "Succeeded")
            prev_children = list(sg.get("children") or [])
            last_children = prev_children
        outbound: list[str] = []
        for cid in last_children:
            if cid in self.nodes:
                outbound.extend(self.outbound(self.nodes[cid]))
        if outbound:
            node["outboundNodes"] = outbound
        self._template_outputs(node, tmpl, scope)
        if node["phase"] == "Running":
            self.mark(node, "Succeeded")
        return node

    def _push_limit(self, boundary_id: str, tmpl: dict[str, Any]) -> None:
        limit = _parallelism(tmpl.get("parallelism"), f"templates.{tmpl.get('name', '')}.parallelism")
        if limit is not None:
            self.boundary_limits[boundary_id] = limit

    def _expand(self, item_holder: dict[str, Any], scope: Scope, where: str) -> list[Any] | None:
        """Items of ``withItems`` / ``withParam`` / ``withSequence`` (None when there are none)."""
        if item_holder.get("withItems") is not None:
            items = item_holder["withItems"]
            if not isinstance(items, list):
                raise SpecError(f"{where}.withItems must be a list")
            return _bounded(list(items), where, "withItems")
        if item_holder.get("withParam") not in (None, ""):
            text = substitute(_value_str(item_holder["withParam"]), scope, allow_unresolved=False)
            try:
                items = json.loads(text)
            except (json.JSONDecodeError, RecursionError) as exc:
                raise SpecError(f"withParam value could not be parsed as a JSON list: {text.strip()[:200]}") from exc
            if not isinstance(items, list):
                raise SpecError(f"withParam value could not be parsed as a JSON list: {text.strip()[:200]}")
            return _bounded(items, where, "withParam")
        seq = item_holder.get("withSequence")
        if seq is not None:
            seq = substitute_obj(seq, scope, allow_unresolved=False)
            return expand_sequence(seq, where)
        return None

    def _item_scope(self, item: Any) -> dict[str, Any]:
        extra: dict[str, Any] = {"item": item}
        if isinstance(item, dict):
            for k, v in item.items():
                extra[f"item.{k}"] = v
        return extra

    def _execute_step_group(self, group: list[dict[str, Any]], sg: dict[str, Any], sg_name: str,
                            ctx: TemplateContext, scope: Scope, boundary: str, on_exit: bool) -> StepOutcome:
        done = True
        results: list[tuple[dict[str, Any], list[dict[str, Any]], bool]] = []
        for step in group:
            name = step.get("name", "")
            where = f"{sg_name}.{name}"
            try:
                items = self._expand(step, scope, where)
            except (SpecError, TemplateError) as exc:
                err = self.node_by_name(where) or self.init_node(where, "Skipped", name, ctx, None, step, boundary,
                                                                 "Error", str(exc))
                self.add_child(sg, err["id"])
                results.append((step, [err], False))
                continue
            base = {k: v for k, v in step.items() if k not in ("withItems", "withParam", "withSequence")}
            children: list[dict[str, Any]] = []
            if items is None:
                expanded = [(name, base)]
            elif not items:
                skipped = self.node_by_name(where) or self.init_node(
                    where, "Skipped", name, ctx, None, step, boundary, "Skipped", "Skipped, empty params")
                self.add_child(sg, skipped["id"])
                results.append((step, [skipped], items is not None))
                continue
            else:
                expanded = []
                for idx, item in enumerate(items):
                    child_step = substitute_obj(base, Scope(self._item_scope(item)))
                    expanded.append((N.expanded_name(name, idx, item), child_step))
            for child_display, child_step in expanded:
                child_name = f"{sg_name}.{child_display}"
                child = self._run_step(child_name, child_display, child_step, ctx, scope, boundary, on_exit)
                if child is None:
                    done = False
                    continue
                self.add_child(sg, child["id"])
                if not self.fulfilled(child):
                    done = False
                    continue
                if not self._run_hooks(child, child_step, ctx, scope, "steps", name, on_exit):
                    done = False
                children.append(child)
            results.append((step, children, items is not None))
        if not done:
            return StepOutcome(False)
        failure = ""
        for step, children, aggregated in results:
            self._scope_outputs(scope, "steps", step.get("name", ""), children, aggregated)
            for child in children:
                if child["phase"] in N.FAILED_PHASES and not _continues_on(step, child["phase"]) and not failure:
                    failure = f"child '{child['id']}' failed"
        return StepOutcome(True, failure)

    def _run_step(self, child_name: str, display: str, step: dict[str, Any], ctx: TemplateContext, scope: Scope,
                  boundary: str, on_exit: bool) -> dict[str, Any] | None:
        existing = self.node_by_name(child_name)
        if self.fulfilled(existing):
            return existing
        if existing is None:
            when = step.get("when")
            if when not in (None, ""):
                try:
                    text = substitute(_value_str(when), scope, allow_unresolved=False)
                    ok = evaluate_when(text)
                except (TemplateError, ExpressionError) as exc:
                    return self.init_node(child_name, "Skipped", display, ctx, None, step, boundary, "Error",
                                          f"invalid when expression: {exc}")
                if not ok:
                    node = self.init_node(child_name, "Skipped", display, ctx, None, step, boundary, "Skipped",
                                          f"when '{text}' evaluated false")
                    self._skipped_outputs(node, step, ctx)
                    return node
        try:
            args = self._step_args(step, scope)
        except TemplateError as exc:
            return existing or self.init_node(child_name, "Skipped", display, ctx, None, step, boundary, "Error",
                                              str(exc))
        return self.execute(child_name, step, ctx, args, boundary=boundary, scope=self.global_scope,
                            on_exit=on_exit, display=display)

    def _step_args(self, step: dict[str, Any], scope: Scope) -> dict[str, Any]:
        args = copy.deepcopy(step.get("arguments") or {})
        params = []
        for p in _params(args):
            p = dict(p)
            if p.get("value") is not None:
                value = substitute(_value_str(p["value"]), scope)
                if unresolved_tags(value):
                    # a reference to an output that does not exist (e.g. of a skipped node): the input's
                    # default applies; without one the input is reported as not supplied
                    continue
                p["value"] = value
            params.append(p)
        args["parameters"] = params
        arts = []
        for a in _arts(args):
            if a.get("from") in (None, "") and a.get("fromExpression") in (None, ""):
                arts.append(substitute_obj(a, scope))
                continue
            try:
                src = self._artifact_reference(a, scope)
            except ExpressionError as exc:
                raise TemplateError(f"failed to evaluate artifact fromExpression: {exc}") from exc
            if src is None:
                if a.get("optional"):
                    arts.append({k: v for k, v in a.items() if k not in ("from", "fromExpression")})
                    continue
                raise TemplateError(f"Unable to resolve: {a.get('from') or a.get('fromExpression')}")
            entry = {k: v for k, v in src.items() if k not in ("name", "path", "globalName", "artifactGC",
                                                                  "deleted", "optional", "mode", "recurseMode")}
            entry.update({k: v for k, v in a.items() if k not in ("from", "fromExpression", "subPath")})
            sub_path = a.get("subPath")
            if sub_path and isinstance(entry.get("oss"), dict):
                entry["oss"] = {**entry["oss"], "key": posixpath.join(str(entry["oss"].get("key", "")),
                                                                      str(substitute(str(sub_path), scope)))}
            arts.append(entry)
        if arts:
            args["artifacts"] = arts
        return args

    def _artifact_reference(self, art: dict[str, Any], scope: Scope) -> dict[str, Any] | None:
        """The artifact a ``from`` / ``fromExpression`` names, or None when it does not exist."""
        if art.get("fromExpression") not in (None, ""):
            value = evaluate(str(art["fromExpression"]), scope.env())
            return copy.deepcopy(value) if isinstance(value, dict) and value else None
        ref = art.get("from")
        if ref in (None, ""):
            return None
        value = scope.values.get(_tag_name(str(ref)))
        return copy.deepcopy(value) if isinstance(value, dict) else None

    def _skipped_outputs(self, node: dict[str, Any], holder: dict[str, Any], ctx: TemplateContext) -> None:
        assert self.resolver is not None
        try:
            _, tmpl = self.resolver.resolve(holder, ctx)
        except SpecError:
            return
        params = []
        for p in _params(tmpl.get("outputs")):
            default = (p.get("valueFrom") or {}).get("default")
            if default is not None:
                params.append({"name": p.get("name"), "value": _value_str(default)})
        if params:
            node["outputs"] = {"parameters": params}

    def _run_hooks(self, child: dict[str, Any], step: dict[str, Any], ctx: TemplateContext, scope: Scope,
                   prefix: str, own_name: str, on_exit: bool) -> bool:
        hook = (step.get("hooks") or {}).get("exit")
        if hook is None and step.get("onExit"):
            hook = {"template": step["onExit"]}
        if not hook or child["phase"] in ("Skipped", "Omitted"):
            return True
        hook_scope = scope.child()
        self._scope_outputs(hook_scope, prefix, own_name, [child], False)
        hook_name = f"{child['name']}.onExit"
        try:
            args = self._step_args(hook, hook_scope)
        except TemplateError as exc:
            failed = self.node_by_name(hook_name) or self.init_node(
                hook_name, "Skipped", f"{child.get('displayName', '')}.onExit", ctx, None, hook,
                child.get("boundaryID", ""), "Error", str(exc))
            self.add_child(child, failed["id"])
            return True
        hook_node = self.execute(hook_name, hook, ctx, args, boundary=child.get("boundaryID", ""),
                                 scope=self.global_scope.child({"workflow.status": child["phase"]}),
                                 on_exit=True, display=f"{child.get('displayName', '')}.onExit")
        if hook_node is None:
            return False
        self.add_child(child, hook_node["id"])
        return self.fulfilled(hook_node)

    def _scope_outputs(self, scope: Scope, prefix: str, name: str, children: list[dict[str, Any]],
                       aggregated: bool) -> None:
        key = f"{prefix}.{name}"
        if not aggregated:
            if not children:
                return
            child = children[0]
            values: dict[str, Any] = {
                f"{key}.status": child.get("phase", ""),
                f"{key}.id": child["id"],
                f"{key}.startedAt": child.get("startedAt", ""),
                f"{key}.finishedAt": child.get("finishedAt", ""),
            }
            if child.get("hostNodeName"):
                values[f"{key}.hostNodeName"] = child["hostNodeName"]
            outputs = child.get("outputs") or {}
            if outputs.get("result") is not None:
                values[f"{key}.outputs.result"] = outputs["result"]
            if outputs.get("exitCode") is not None:
                values[f"{key}.exitCode"] = outputs["exitCode"]
            for p in outputs.get("parameters") or []:
                values[f"{key}.outputs.parameters.{p['name']}"] = p.get("value", "")
            for a in outputs.get("artifacts") or []:
                values[f"{key}.outputs.artifacts.{a['name']}"] = copy.deepcopy(a)
            scope.update(values)
            return
        results: list[Any] = []
        param_maps: list[dict[str, Any]] = []
        per_param: dict[str, list[Any]] = {}
        phases = []
        for child in children:
            phases.append(child.get("phase"))
            outputs = child.get("outputs") or {}
            if child.get("phase") in ("Skipped", "Omitted"):
                continue
            if outputs.get("result") is not None:
                try:
                    results.append(json.loads(outputs["result"]))
                except (json.JSONDecodeError, TypeError, RecursionError):
                    results.append(outputs["result"])
            if outputs.get("parameters"):
                pm = {p["name"]: p.get("value", "") for p in outputs["parameters"]}
                param_maps.append(pm)
                for pname, pval in pm.items():
                    per_param.setdefault(pname, []).append(pval)
        values = {f"{key}.outputs.result": N.go_json(results), f"{key}.outputs.parameters": N.go_json(param_maps)}
        for pname, pvals in per_param.items():
            values[f"{key}.outputs.parameters.{pname}"] = N.go_json(pvals)
        if phases:
            values[f"{key}.status"] = _aggregate_phase(phases)
        scope.update(values)

    def _template_outputs(self, node: dict[str, Any], tmpl: dict[str, Any], scope: Scope) -> None:
        params = []
        for p in _params(tmpl.get("outputs")):
            vf = p.get("valueFrom") or {}
            value: Any = None
            try:
                if vf.get("parameter"):
                    value = substitute(_value_str(vf["parameter"]), scope)
                    if unresolved_tags(value):
                        value = None
                elif vf.get("expression"):
                    value = evaluate(str(vf["expression"]), scope.env())
                elif p.get("value") is not None:
                    value = substitute(_value_str(p["value"]), scope)
            except (ExpressionError, TemplateError) as exc:
                if vf.get("default") is None:
                    self.mark(node, "Error", f"failed to resolve outputs.parameters.{p.get('name')}: {exc}")
                    return
            if value is None and vf.get("default") is not None:
                value = vf["default"]
            if value is None:
                self.mark(node, "Error", f"unable to resolve outputs.parameters.{p.get('name')}")
                return
            text = _value_str(value)
            entry = {"name": p.get("name"), "value": text}
            if p.get("globalName"):
                entry["globalName"] = p["globalName"]
                self._set_global_output(str(p["globalName"]), text)
            params.append(entry)
        if params:
            node.setdefault("outputs", {})["parameters"] = params
        arts = []
        for a in _arts(tmpl.get("outputs")):
            try:
                src = self._artifact_reference(a, scope)
            except (ExpressionError, TemplateError) as exc:
                self.mark(node, "Error", f"failed to resolve outputs.artifacts.{a.get('name')}: {exc}")
                return
            if src is None:
                if a.get("optional"):
                    continue
                ref = a.get("from") or a.get("fromExpression") or ""
                self.mark(node, "Error", f"Unable to resolve: {ref}" if ref else
                          f"outputs.artifacts.{a.get('name')}: from or fromExpression is required")
                return
            entry = {**src, **{k: v for k, v in a.items() if k not in ("from", "fromExpression")}}
            arts.append(entry)
            if a.get("globalName"):
                self._set_global_artifact(str(a["globalName"]), entry)
        if arts:
            node.setdefault("outputs", {})["artifacts"] = arts
        result_ref = (tmpl.get("outputs") or {}).get("result")
        if result_ref:
            node.setdefault("outputs", {})["result"] = substitute(_value_str(result_ref), scope)

    # ------------------------------------------------------------------ dag

    def _execute_dag(self, node: dict[str, Any] | None, node_name: str, display: str, holder: dict[str, Any],
                     ctx: TemplateContext, tmpl: dict[str, Any], local: Scope, boundary: str, on_exit: bool
                     ) -> dict[str, Any]:
        if node is None:
            node = self.init_node(node_name, "DAG", display, ctx, tmpl, holder, boundary, "Running")
            if tmpl.get("inputs"):
                node["inputs"] = tmpl["inputs"]
        self._push_limit(node["id"], tmpl)
        dag = tmpl["dag"]
        tasks = {t["name"]: t for t in dag.get("tasks") or []}
        deps = {name: task_dependencies(t) for name, t in tasks.items()}
        for name, names in deps.items():  # validated at the start, but the spec may be edited since
            missing = [d for d in names if d not in tasks]
            if missing:
                self.mark(node, "Error", f"templates.{tmpl.get('name', '')}.tasks.{name} dependency "
                                         f"'{missing[0]}' not defined")
                return node
        target_text = str(dag.get("target") or "").strip()
        if target_text:
            targets = [t for t in re.split(r"[\s,]+", target_text) if t]
            for t in targets:
                if t not in tasks:
                    self.mark(node, "Error", f"target '{t}' is not a task of the DAG")
                    return node
        else:
            depended = {d for ds in deps.values() for d in ds}
            targets = [name for name in tasks if name not in depended]
        needed = dependency_order(targets, deps)
        fail_fast = dag.get("failFast", True) is not False
        scope = local.child()
        task_nodes: dict[str, dict[str, Any]] = {}
        for name in needed:
            task = tasks[name]
            tname = f"{node_name}.{name}"
            existing = self.node_by_name(tname)
            if existing is None:
                if any(d not in task_nodes or not self.fulfilled(task_nodes[d]) for d in deps[name]):
                    continue
                if not self._depends_satisfied(task, tasks, task_nodes):
                    omitted = self.init_node(tname, "Skipped", name, ctx, None, task, node["id"], "Omitted",
                                             "omitted: depends condition not met")
                    self._skipped_outputs(omitted, task, ctx)
                    self._link_task(node, omitted, deps[name], task_nodes)
                    task_nodes[name] = omitted
                    self._scope_outputs(scope, "tasks", name, [omitted], False)
                    continue
            tnode = self._run_task(tname, name, task, ctx, scope, node["id"], on_exit)
            if tnode is None:
                continue
            self._link_task(node, tnode, deps[name], task_nodes)
            task_nodes[name] = tnode
            if self.fulfilled(tnode):
                aggregated = tnode.get("type") == "TaskGroup"
                children = ([self.nodes[c] for c in tnode.get("children") or [] if c in self.nodes]
                            if aggregated else [tnode])
                self._scope_outputs(scope, "tasks", name, children, aggregated)
        phase = self._assess_dag(targets, tasks, deps, task_nodes, fail_fast)
        if phase is None:
            return node
        outbound: list[str] = []
        for t in targets:
            if t in task_nodes:
                outbound.extend(self.outbound(task_nodes[t]))
        if outbound:
            node["outboundNodes"] = outbound
        if phase == "Succeeded":
            self._template_outputs(node, tmpl, scope)
            if node["phase"] == "Running":
                self.mark(node, "Succeeded")
        else:
            failed = [n for n in task_nodes.values() if n.get("phase") in N.FAILED_PHASES]
            message = f"child '{failed[0]['id']}' failed" if failed else "DAG failed"
            self.mark(node, phase, message)
        return node

    def _link_task(self, dag_node: dict[str, Any], tnode: dict[str, Any], dep_names: list[str],
                   task_nodes: dict[str, dict[str, Any]]) -> None:
        if not dep_names:
            self.add_child(dag_node, tnode["id"])
            return
        for d in dep_names:
            dn = task_nodes.get(d)
            if dn is None:
                continue
            for out_id in self.outbound(dn):
                if out_id in self.nodes:
                    self.add_child(self.nodes[out_id], tnode["id"])

    def _assess_dag(self, targets: list[str], tasks: dict[str, dict[str, Any]], deps: dict[str, list[str]],
                    task_nodes: dict[str, dict[str, Any]], fail_fast: bool) -> str | None:
        """Argo's ``assessDAGPhase``: the phase of each target's branch (an omitted task inherits a
        failed parent's phase); None while undecided. With failFast a failed branch decides at once."""
        memo: dict[str, str] = {}
        for name in dependency_order(targets, deps):  # dependencies first: no recursion on long chains
            tn = task_nodes.get(name)
            if tn is None or not self.fulfilled(tn):
                branch = ""
            elif tn["phase"] == "Omitted":
                branch = "Succeeded"
                for d in deps[name]:
                    ph = memo[d]
                    if ph in N.FAILED_PHASES and not _continues_on(tasks[d], ph):
                        branch = ph
                        break
            else:
                branch = tn["phase"]
            memo[name] = branch

        result: str | None = "Succeeded"
        for t in targets:
            ph = memo[t]
            if ph == "":
                result = None
                if not fail_fast:
                    break
            elif ph in N.FAILED_PHASES and not _continues_on(tasks[t], ph):
                result = ph
                if fail_fast:
                    break
        return result

    def _depends_satisfied(self, task: dict[str, Any], tasks: dict[str, dict[str, Any]],
                           task_nodes: dict[str, dict[str, Any]]) -> bool:
        legacy = task.get("dependencies")
        if isinstance(legacy, list) and legacy:
            expression = " && ".join(str(d) for d in legacy)
        else:
            expression = str(task.get("depends") or "")
        if not expression.strip():
            return True
        return evaluate_depends(expression, {name: self._dep_state(task_nodes[name], tasks[name])
                                             for name in task_nodes if name in tasks})

    def _dep_state(self, tnode: dict[str, Any], task: dict[str, Any]) -> dict[str, bool]:
        phase = tnode.get("phase")
        state = {
            "Succeeded": phase == "Succeeded",
            "Failed": phase == "Failed",
            "Errored": phase == "Error",
            "Skipped": phase == "Skipped",
            "Omitted": phase == "Omitted",
            "Daemoned": False,
        }
        if tnode.get("type") == "TaskGroup":
            children = [self.nodes[c] for c in tnode.get("children") or [] if c in self.nodes]
            state["AnySucceeded"] = any(c.get("phase") == "Succeeded" for c in children)
            state["AllFailed"] = bool(children) and all(c.get("phase") in N.FAILED_PHASES for c in children)
        else:
            state["AnySucceeded"] = state["Succeeded"]
            state["AllFailed"] = phase in N.FAILED_PHASES
        cont = task.get("continueOn") or {}
        state["_default"] = (state["Succeeded"] or state["Skipped"] or state["Daemoned"]
                             or (state["Failed"] and bool(cont.get("failed")))
                             or (state["Errored"] and bool(cont.get("error"))))
        return state

    def _run_task(self, tname: str, name: str, task: dict[str, Any], ctx: TemplateContext, scope: Scope,
                  boundary: str, on_exit: bool) -> dict[str, Any] | None:
        existing = self.node_by_name(tname)
        if self.fulfilled(existing) and existing is not None and existing.get("type") != "TaskGroup":
            return existing
        try:
            items = self._expand(task, scope, tname)
        except (SpecError, TemplateError) as exc:
            return existing or self.init_node(tname, "Skipped", name, ctx, None, task, boundary, "Error", str(exc))
        if items is None:
            child = self._run_step(tname, name, task, ctx, scope, boundary, on_exit)
            if child is not None and self.fulfilled(child):
                if not self._run_hooks(child, task, ctx, scope, "tasks", name, on_exit):
                    return self._pending_view(child)
            return child
        group = existing
        if group is None:
            if not items:
                return self.init_node(tname, "Skipped", name, ctx, None, task, boundary, "Skipped",
                                      "Skipped, empty params")
            group = self.init_node(tname, "TaskGroup", name, ctx, None, task, boundary, "Running")
            group.pop("templateName", None)
        if self.fulfilled(group):
            return group
        base = {k: v for k, v in task.items() if k not in ("withItems", "withParam", "withSequence")}
        all_done = True
        children: list[dict[str, Any]] = []
        for idx, item in enumerate(items):
            child_step = substitute_obj(base, Scope(self._item_scope(item)))
            display = N.expanded_name(name, idx, item)
            child = self._run_step(f"{tname}({idx}:{N.item_description(item)})", display, child_step, ctx, scope,
                                   boundary, on_exit)
            if child is None:
                all_done = False
                continue
            self.add_child(group, child["id"])
            if not self.fulfilled(child) or not self._run_hooks(child, child_step, ctx, scope, "tasks", name,
                                                                 on_exit):
                all_done = False
            children.append(child)
        if all_done:
            phases = [c["phase"] for c in children]
            failed = [c for c in children if c["phase"] in N.FAILED_PHASES and not _continues_on(task, c["phase"])]
            if failed:
                self.mark(group, failed[0]["phase"], f"child '{failed[0]['id']}' failed")
            else:
                self.mark(group, "Succeeded" if phases else "Skipped")
            out: list[str] = []
            for c in children:
                out.extend(self.outbound(c))
            if out:
                group["outboundNodes"] = out
        return group

    @staticmethod
    def _pending_view(node: dict[str, Any]) -> dict[str, Any]:
        view = dict(node)
        view["phase"] = "Running"
        return view


# ---------------------------------------------------------------------- pure helpers


def _node_type(tmpl: dict[str, Any] | None) -> str:
    kind = template_type(tmpl or {})
    return {"steps": "Steps", "dag": "DAG", "suspend": "Suspend"}.get(kind or "", "Pod")


def _continues_on(step: dict[str, Any], phase: str) -> bool:
    cont = step.get("continueOn") or {}
    return (phase == "Failed" and bool(cont.get("failed"))) or (phase == "Error" and bool(cont.get("error")))


def _aggregate_phase(phases: list[Any]) -> str:
    if any(p in N.FAILED_PHASES for p in phases):
        return "Failed"
    if all(p in ("Skipped", "Omitted") for p in phases):
        return "Skipped"
    return "Succeeded"


def _int_or_str(value: Any) -> Any:
    try:
        return int(str(value))
    except ValueError:
        return value


def _mem_units(value: Any) -> float:
    """Memory request in Argo's resource-duration unit (100Mi); 1 when unset."""
    from airflow_argo_eci.local.runtime.limits import LimitError, parse_quantity

    if value in (None, ""):
        return 1.0
    try:
        return float(parse_quantity(value, "memory")) / (100 * 1024**2)
    except LimitError:
        return 1.0


_TRANSIENT = re.compile(r"(?i)(timeout|connection refused|connection reset|pod deleted|pod lost|"
                        r"too many requests|exceeded quota|transient)")


def _is_transient(message: str) -> bool:
    return bool(_TRANSIENT.search(message or ""))


_DEP_TOKEN = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_\-]*)(?:\.(Succeeded|Failed|Errored|Skipped|Omitted|Daemoned|"
                        r"AnySucceeded|AllFailed))?")


def evaluate_depends(expression: str, states: dict[str, dict[str, bool]]) -> bool:
    """Evaluate an enhanced ``depends`` expression against the states of the finished tasks.

    ``A`` alone means ``A.Succeeded || A.Skipped || A.Daemoned`` (plus ``A.Failed``/``A.Errored`` when
    A has ``continueOn``), as in Argo's ``expandDependency``.
    """

    def repl(m: re.Match[str]) -> str:
        name, result = m.group(1), m.group(2)
        if name in ("true", "false") and not result:
            return name
        state = states.get(name)
        if state is None:
            raise ExpressionError(f"depends references unknown or unfinished task '{name}'")
        value = state.get(result or "_default", False)
        return "true" if value else "false"

    text = _DEP_TOKEN.sub(repl, expression)
    return bool(evaluate(text, {}))


def dependency_order(targets: list[str], deps: dict[str, list[str]]) -> list[str]:
    """The tasks ``targets`` need, each after its dependencies (depth-first, iterative so that a
    chain of thousands of tasks needs no deep recursion). ``deps`` must be acyclic."""
    order: list[str] = []
    done: set[str] = set()
    for target in targets:
        stack: list[tuple[str, int]] = [(target, 0)]
        while stack:
            name, index = stack.pop()
            if name in done:
                continue
            names = deps[name]
            if index < len(names):
                stack.append((name, index + 1))
                if names[index] not in done:
                    stack.append((names[index], 0))
                continue
            done.add(name)
            order.append(name)
    return order


def expand_sequence(seq: dict[str, Any], where: str) -> list[Any]:
    """Items of ``withSequence`` (``count``/``start``/``end``/``format``), like Argo's ``expandSequence``."""
    def as_int(key: str) -> int | None:
        value = seq.get(key)
        if value in (None, ""):
            return None
        try:
            return int(str(value).strip())
        except ValueError as exc:
            raise SpecError(f"{where}.withSequence.{key}: invalid integer '{str(value)[:100]}'") from exc

    start = as_int("start") or 0
    count = as_int("count")
    end = as_int("end")
    if count is not None and end is not None:
        raise SpecError(f"{where}.withSequence: only one of count or end can be defined")
    if count is not None:
        if count == 0:
            return []
        end = start + count - 1
    if end is None:
        raise SpecError(f"{where}.withSequence: one of count or end must be defined")
    if abs(end - start) >= MAX_LOOP_ITEMS:
        raise SpecError(f"{where}.withSequence expands to {abs(end - start) + 1} items; the local cluster expands "
                        f"at most {MAX_LOOP_ITEMS} per step or task (split the loop)")
    step = 1 if end >= start else -1
    fmt = seq.get("format")
    out: list[Any] = []
    for i in range(start, end + step, step):
        out.append(_go_sprintf(str(fmt), i) if fmt else str(i))
    return out


_VERB = re.compile(r"%([-0]*)(\d*)([dxXo%])")


def _go_sprintf(fmt: str, value: int) -> str:
    """Go's ``fmt.Sprintf(format, i)`` for the verbs ``withSequence.format`` uses (``%d``, ``%x``,
    ``%X``, ``%o`` with ``-``/``0`` flags and a width); other text is kept as it is."""
    def verb(m: re.Match[str]) -> str:
        flags, width_text, kind = m.groups()
        if kind == "%":
            return "%"
        width = int(width_text[:6]) if width_text else 0
        if len(width_text) > 6 or width > MAX_FORMAT_WIDTH:
            raise SpecError(f"withSequence.format: width {width_text[:20]} in {fmt[:100]!r} is more than "
                            f"{MAX_FORMAT_WIDTH}")
        digits = format(abs(value), {"d": "d", "x": "x", "X": "X", "o": "o"}[kind])
        text = ("-" if value < 0 else "") + digits
        if "-" in flags:
            return text.ljust(width)
        if "0" in flags:
            return ("-" if value < 0 else "") + digits.zfill(width - (1 if value < 0 else 0))
        return text.rjust(width)

    return _VERB.sub(verb, fmt)


def _seconds(value: Any, field: str) -> float:
    """A number of seconds (``activeDeadlineSeconds``); :class:`SpecError` naming ``field`` otherwise."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not seconds >= 0:
        raise SpecError(f"{field}: must be a non-negative number of seconds, got {str(value)[:100]!r}")
    return seconds


def _bounded(items: list[Any], where: str, field: str) -> list[Any]:
    if len(items) > MAX_LOOP_ITEMS:
        raise SpecError(f"{where}.{field} has {len(items)} items; the local cluster expands at most "
                        f"{MAX_LOOP_ITEMS} per step or task (split the loop)")
    return items


def _parallelism(value: Any, field: str) -> int | None:
    """A ``parallelism`` value (None when unset); :class:`SpecError` for anything but an integer >= 0."""
    if value in (None, ""):
        return None
    number = -1
    if isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            number = int(str(value).strip())
        except ValueError:
            number = -1
    if number < 0:
        raise SpecError(f"{field}: must be a non-negative integer, got {str(value)[:100]!r}")
    return number


def apply_pod_spec_patch(spec: dict[str, Any], text: str, where: str) -> dict[str, Any]:
    """Apply a ``podSpecPatch`` (JSON or YAML) as a strategic merge: containers merge by name."""
    import yaml

    try:
        patch = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        try:
            if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader)):
                # aliases expand exponentially when merged ("billion laughs"); Kubernetes takes JSON
                raise SpecError(f"{where}: YAML aliases (*name) are not allowed in a podSpecPatch; "
                                "write the values out")
            patch = yaml.safe_load(text)
        except (yaml.YAMLError, RecursionError) as exc:
            raise SpecError(f"{where}: invalid podSpecPatch: {str(exc)[:300]}") from exc
    if not isinstance(patch, dict):
        raise SpecError(f"{where}: podSpecPatch must be an object")
    return _strategic_merge(spec, patch)


def _strategic_merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in ("containers", "initContainers", "volumes", "env", "volumeMounts") and \
                    isinstance(value, list) and isinstance(out.get(key), list):
                merged = [copy.deepcopy(x) for x in out[key]]
                for item in value:
                    if isinstance(item, dict) and item.get("name") is not None:
                        for i, existing in enumerate(merged):
                            if isinstance(existing, dict) and existing.get("name") == item["name"]:
                                merged[i] = _strategic_merge(existing, item)
                                break
                        else:
                            merged.append(copy.deepcopy(item))
                    else:
                        merged.append(copy.deepcopy(item))
                out[key] = merged
            else:
                out[key] = _strategic_merge(out.get(key), value) if key in out else copy.deepcopy(value)
        return out
    return copy.deepcopy(patch)
