"""The state one reconcile pass shares between its parts, and the node bookkeeping on it (Argo's
``wfOperationCtx``): the workflow and its status nodes, the spec, the global scope, the pass's
limits and counters."""

from __future__ import annotations

import base64
import copy
import pickle
import time
from typing import Any, Protocol

from airflow_argo_eci.conventions import NODE_COMPLETED_PHASES, node_id, node_template_name, now_rfc3339, pod_name
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import CONFIGMAPS, SECRETS
from airflow_argo_eci.local.argo.budget import MAX_NODES, LimitExceeded
from airflow_argo_eci.local.argo.reconcile.host import ReconcileHost
from airflow_argo_eci.local.argo.templates import Resolver, SpecError, TemplateContext
from airflow_argo_eci.local.argo.variables import Scope
from airflow_argo_eci.workflows import workflow_nodes

#: seconds of a pass between two GIL hand-overs to the API server's threads (PassState.yield_point)
_YIELD_SECONDS = 0.002


class ExecuteTemplate(Protocol):
    """Argo's ``executeTemplate`` as the steps and DAG schedulers call it back (see
    :meth:`~airflow_argo_eci.local.argo.reconcile.execution.TemplateExecutor.execute`)."""

    def __call__(self, node_name: str, holder: dict[str, Any], ctx: TemplateContext, args: dict[str, Any], *,
                 boundary: str, scope: Scope, on_exit: bool, display: str | None = None
                 ) -> dict[str, Any] | None: ...


class PassState:
    """One workflow under reconciliation: what every part of the pass reads and changes."""

    def __init__(self, host: ReconcileHost, wf: dict[str, Any]) -> None:
        self.host = host
        self.store = host.store
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
        # a pickle round trip copies these JSON values several times faster than copy.deepcopy
        self.original_status: dict[str, Any] = pickle.loads(  # noqa: S301  # bytes this line just made
            pickle.dumps(self.status, pickle.HIGHEST_PROTOCOL))
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
        self._uses_daemons: bool | None = None
        self.now = now_rfc3339()

    @property
    def changed(self) -> bool:
        """Whether the pass changed status or labels."""
        return self.status != self.original_status or (self.wf["metadata"].get("labels") or {}) != self.original_labels

    def requeue(self, seconds: float) -> None:
        """Have the controller run the next pass within ``seconds`` (at least 50 ms from now)."""
        seconds = max(0.05, seconds)
        self.requeue_after = seconds if self.requeue_after is None else min(self.requeue_after, seconds)

    def node_by_name(self, name: str) -> dict[str, Any] | None:
        """The status node named ``name``, None when it does not exist yet."""
        return self.nodes.get(node_id(self.name, name))

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
        """Create the status node ``name`` (a :class:`LimitExceeded` past the local cluster's node limit)."""
        nid = node_id(self.name, name)
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
        if phase in NODE_COMPLETED_PHASES:
            node["finishedAt"] = self.now
        self.nodes[nid] = node
        return node

    def mark(self, node: dict[str, Any], phase: str, message: str | None = None) -> None:
        """Set a node's phase (and message, when one is given); a completed node gets ``finishedAt``."""
        if node.get("phase") != phase:
            node["phase"] = phase
        if message is not None and message and node.get("message") != message:
            node["message"] = message
        if phase in NODE_COMPLETED_PHASES and not node.get("finishedAt"):
            node["finishedAt"] = self.now

    @staticmethod
    def fulfilled(node: dict[str, Any] | None) -> bool:
        """Whether ``node`` exists and is complete, or is a daemon that is up (Argo's ``Fulfilled``:
        the steps after it may start)."""
        return node is not None and (node.get("phase") in NODE_COMPLETED_PHASES or PassState.daemoned(node))

    @staticmethod
    def daemoned(node: dict[str, Any] | None) -> bool:
        """Whether ``node`` is a daemon whose pod is running and ready (Argo's ``IsDaemoned``)."""
        return node is not None and node.get("daemoned") is True and node.get("phase") != "Pending"

    def uses_daemons(self) -> bool:
        """Whether pods of this workflow must reach one another: a template of the spec is a daemon,
        or a daemon (perhaps from a WorkflowTemplate) is up (worked out once per pass; a daemon
        coming up during the pass calls :meth:`note_daemon`)."""
        if self._uses_daemons is None:
            templates = self.spec.get("templates") or []
            self._uses_daemons = (any(isinstance(t, dict) and t.get("daemon") for t in templates)
                                  or any(self.daemoned(n) for n in self.nodes.values()))
        return self._uses_daemons

    def note_daemon(self) -> None:
        """A daemon came up in this pass: the workflow's next pods join its network."""
        self._uses_daemons = True

    def kill_daemons(self, boundary: str | None) -> None:
        """Argo's ``killDaemonedChildren``: the scope ``boundary`` (every scope when None) ended, so its
        daemons stop: their pods are killed and their nodes succeed."""
        for node in self.nodes.values():
            if not self.daemoned(node) or (boundary is not None and node.get("boundaryID", "") != boundary):
                continue
            if node.get("type") == "Pod":
                self.host.kill_pod(self.namespace, self.pod_name_of(node),
                                   "the daemon's scope ended: its steps/DAG template completed")
                self.active_pods = max(0, self.active_pods - 1)
            node.pop("daemoned", None)
            self.mark(node, "Succeeded")

    def add_child(self, parent: dict[str, Any], child_id: str) -> None:
        """Add ``child_id`` to the children of ``parent`` (once)."""
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

    def pod_name_of(self, node: dict[str, Any]) -> str:
        """The (v2) name of the pod of a ``Pod`` node."""
        return pod_name(self.name, node["name"], node_template_name(node))

    def set_global_artifact(self, name: str, art: dict[str, Any]) -> None:
        """Record ``art`` as the workflow's output artifact ``name`` (``globalName``)."""
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

    def set_global_output(self, name: str, value: str) -> None:
        """Record ``value`` as the workflow's output parameter ``name`` (``globalName``)."""
        outs = self.status.setdefault("outputs", {}).setdefault("parameters", [])
        for p in outs:
            if p.get("name") == name:
                p["value"] = value
                break
        else:
            outs.append({"name": name, "value": value})
        self.global_scope.set(f"workflow.outputs.parameters.{name}", value)

    def config_map_value(self, ref: dict[str, Any], field: str) -> str:
        """The value a ``configMapKeyRef`` names in the workflow's namespace ("" when optional and
        missing); :class:`SpecError` naming ``field`` otherwise."""
        name, key = ref.get("name"), ref.get("key")
        try:
            cm = self.store.get(CONFIGMAPS, self.namespace, str(name))
        except ApiError as exc:
            if ref.get("optional"):
                return ""
            raise SpecError(f"{field}: ConfigMap '{name}' does not exist in namespace {self.namespace} "
                            "(create it, or set configMapKeyRef.optional: true)") from exc
        data = cm.get("data") or {}
        if key not in data:
            if ref.get("optional"):
                return ""
            raise SpecError(f"{field}: ConfigMap '{name}' does not have the key '{key}' "
                            f"(keys: {', '.join(sorted(data)) or 'none'})")
        return str(data[key])

    def secret_value(self, ref: dict[str, Any], field: str) -> str:
        """The value a ``secretKeyRef`` names in the workflow's namespace; :class:`SpecError` naming
        ``field`` when it does not exist."""
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

