"""DAG templates of a reconcile pass: tasks in dependency order, ``depends`` and ``continueOn``,
expanded tasks (TaskGroup nodes), targets and the DAG's phase (Argo's ``assessDAGPhase``)."""

from __future__ import annotations

import re
from typing import Any

from airflow_argo_eci.conventions import FAILED_PHASES
from airflow_argo_eci.local.argo.depends import dependency_order, evaluate_depends
from airflow_argo_eci.local.argo.items import item_scope
from airflow_argo_eci.local.argo.nodes import continues_on, expanded_name, item_description
from airflow_argo_eci.local.argo.reconcile.state import PassState
from airflow_argo_eci.local.argo.reconcile.steps import StepRunner, scope_outputs
from airflow_argo_eci.local.argo.templates import SpecError, TemplateContext, task_dependencies
from airflow_argo_eci.local.argo.variables import Scope, TemplateError, substitute_obj


class DagRunner:
    """Runs DAG templates; each task runs as a step (:class:`StepRunner`) once its dependencies allow."""

    def __init__(self, state: PassState, steps: StepRunner) -> None:
        self.state = state
        self.steps = steps

    def execute_dag(self, node: dict[str, Any] | None, node_name: str, display: str, holder: dict[str, Any],
                    ctx: TemplateContext, tmpl: dict[str, Any], local: Scope, boundary: str, on_exit: bool
                    ) -> dict[str, Any]:
        """Run (or continue) the DAG template ``tmpl`` as node ``node_name``: start the tasks whose
        dependencies are done and whose ``depends`` holds, then decide the DAG's phase; the daemons
        it started stop when it completes."""
        node = self._run_tasks(node, node_name, display, holder, ctx, tmpl, local, boundary, on_exit)
        if self.state.fulfilled(node):
            self.state.kill_daemons(node["id"])
        return node

    def _run_tasks(self, node: dict[str, Any] | None, node_name: str, display: str, holder: dict[str, Any],
                   ctx: TemplateContext, tmpl: dict[str, Any], local: Scope, boundary: str, on_exit: bool
                   ) -> dict[str, Any]:
        if node is None:
            node = self.state.init_node(node_name, "DAG", display, ctx, tmpl, holder, boundary, "Running")
            if tmpl.get("inputs"):
                node["inputs"] = tmpl["inputs"]
        self.steps.push_limit(node["id"], tmpl)
        dag = tmpl["dag"]
        tasks = {t["name"]: t for t in dag.get("tasks") or []}
        deps = {name: task_dependencies(t) for name, t in tasks.items()}
        for name, names in deps.items():  # validated at the start, but the spec may be edited since
            missing = [d for d in names if d not in tasks]
            if missing:
                self.state.mark(node, "Error", f"templates.{tmpl.get('name', '')}.tasks.{name} dependency "
                                               f"'{missing[0]}' not defined")
                return node
        target_text = str(dag.get("target") or "").strip()
        if target_text:
            targets = [t for t in re.split(r"[\s,]+", target_text) if t]
            for t in targets:
                if t not in tasks:
                    self.state.mark(node, "Error", f"target '{t}' is not a task of the DAG")
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
            existing = self.state.node_by_name(tname)
            if existing is None:
                if any(d not in task_nodes or not self.state.fulfilled(task_nodes[d]) for d in deps[name]):
                    continue
                if not self._depends_satisfied(task, tasks, task_nodes):
                    omitted = self.state.init_node(tname, "Skipped", name, ctx, None, task, node["id"], "Omitted",
                                                   "omitted: depends condition not met")
                    self.steps.skipped_outputs(omitted, task, ctx)
                    self._link_task(node, omitted, deps[name], task_nodes)
                    task_nodes[name] = omitted
                    scope_outputs(scope, "tasks", name, [omitted], False)
                    continue
            tnode = self._run_task(tname, name, task, ctx, scope, node["id"], on_exit)
            if tnode is None:
                continue
            self._link_task(node, tnode, deps[name], task_nodes)
            task_nodes[name] = tnode
            if self.state.fulfilled(tnode):
                aggregated = tnode.get("type") == "TaskGroup"
                children = ([self.state.nodes[c] for c in tnode.get("children") or [] if c in self.state.nodes]
                            if aggregated else [tnode])
                scope_outputs(scope, "tasks", name, children, aggregated)
        phase = self._assess_dag(targets, tasks, deps, task_nodes, fail_fast)
        if phase is None:
            return node
        outbound: list[str] = []
        for t in targets:
            if t in task_nodes:
                outbound.extend(self.state.outbound(task_nodes[t]))
        if outbound:
            node["outboundNodes"] = outbound
        if phase == "Succeeded":
            self.steps.template_outputs(node, tmpl, scope)
            if node["phase"] == "Running":
                self.state.mark(node, "Succeeded")
        else:
            failed = [n for n in task_nodes.values() if n.get("phase") in FAILED_PHASES]
            message = f"child '{failed[0]['id']}' failed" if failed else "DAG failed"
            self.state.mark(node, phase, message)
        return node

    def _link_task(self, dag_node: dict[str, Any], tnode: dict[str, Any], dep_names: list[str],
                   task_nodes: dict[str, dict[str, Any]]) -> None:
        if not dep_names:
            self.state.add_child(dag_node, tnode["id"])
            return
        for d in dep_names:
            dn = task_nodes.get(d)
            if dn is None:
                continue
            for out_id in self.state.outbound(dn):
                if out_id in self.state.nodes:
                    self.state.add_child(self.state.nodes[out_id], tnode["id"])

    def _assess_dag(self, targets: list[str], tasks: dict[str, dict[str, Any]], deps: dict[str, list[str]],
                    task_nodes: dict[str, dict[str, Any]], fail_fast: bool) -> str | None:
        """Argo's ``assessDAGPhase``: the phase of each target's branch (an omitted task inherits a
        failed parent's phase); None while undecided. With failFast a failed branch decides at once."""
        memo: dict[str, str] = {}
        for name in dependency_order(targets, deps):  # dependencies first: no recursion on long chains
            tn = task_nodes.get(name)
            if tn is None or not self.state.fulfilled(tn):
                branch = ""
            elif tn["phase"] == "Omitted":
                branch = "Succeeded"
                for d in deps[name]:
                    ph = memo[d]
                    if ph in FAILED_PHASES and not continues_on(tasks[d], ph):
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
            elif ph in FAILED_PHASES and not continues_on(tasks[t], ph):
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
            "Daemoned": self.state.daemoned(tnode),
        }
        if tnode.get("type") == "TaskGroup":
            children = [self.state.nodes[c] for c in tnode.get("children") or [] if c in self.state.nodes]
            state["AnySucceeded"] = any(c.get("phase") == "Succeeded" for c in children)
            state["AllFailed"] = bool(children) and all(c.get("phase") in FAILED_PHASES for c in children)
        else:
            state["AnySucceeded"] = state["Succeeded"]
            state["AllFailed"] = phase in FAILED_PHASES
        cont = task.get("continueOn") or {}
        state["_default"] = (state["Succeeded"] or state["Skipped"] or state["Daemoned"]
                             or (state["Failed"] and bool(cont.get("failed")))
                             or (state["Errored"] and bool(cont.get("error"))))
        return state

    def _run_task(self, tname: str, name: str, task: dict[str, Any], ctx: TemplateContext, scope: Scope,
                  boundary: str, on_exit: bool) -> dict[str, Any] | None:
        existing = self.state.node_by_name(tname)
        if self.state.fulfilled(existing) and existing is not None and existing.get("type") != "TaskGroup":
            return self._with_hooks(existing, name, task, ctx, scope, on_exit)
        try:
            items = self.steps.expand(task, scope, tname)
        except (SpecError, TemplateError) as exc:
            return existing or self.state.init_node(tname, "Skipped", name, ctx, None, task, boundary, "Error",
                                                    str(exc))
        if items is None:
            child = self.steps.run_step(tname, name, task, ctx, scope, boundary, on_exit, "tasks")
            return None if child is None else self._with_hooks(child, name, task, ctx, scope, on_exit)
        group = existing
        if group is None:
            if not items:
                return self.state.init_node(tname, "Skipped", name, ctx, None, task, boundary, "Skipped",
                                            "Skipped, empty params")
            group = self.state.init_node(tname, "TaskGroup", name, ctx, None, task, boundary, "Running")
            group.pop("templateName", None)
        if self.state.fulfilled(group):
            return group
        base = {k: v for k, v in task.items() if k not in ("withItems", "withParam", "withSequence")}
        all_done = True
        hook_error = ""
        children: list[dict[str, Any]] = []
        for idx, item in enumerate(items):
            child_step = substitute_obj(base, Scope(item_scope(item)))
            display = expanded_name(name, idx, item)
            child = self.steps.run_step(f"{tname}({idx}:{item_description(item)})", display, child_step, ctx, scope,
                                        boundary, on_exit, "tasks")
            if child is None:
                all_done = False
                continue
            self.state.add_child(group, child["id"])
            # each expanded child runs the task's lifecycle hooks for itself, as a single task does
            hooks_done, error = self.steps.run_lifecycle_hooks(child, child_step, ctx, scope, "tasks", name)
            hook_error = hook_error or error
            if not self.state.fulfilled(child) or not hooks_done or not self.steps.run_hooks(
                    child, child_step, ctx, scope, "tasks", name, on_exit):
                all_done = False
            children.append(child)
        if all_done:
            phases = [c["phase"] for c in children]
            failed = [c for c in children if c["phase"] in FAILED_PHASES and not continues_on(task, c["phase"])]
            if hook_error:  # a lifecycle hook ending Error fails the task (Argo), Failed is ignored
                self.state.mark(group, "Error", hook_error)
            elif failed:
                self.state.mark(group, failed[0]["phase"], f"child '{failed[0]['id']}' failed")
            else:
                self.state.mark(group, "Succeeded" if phases else "Skipped")
            out: list[str] = []
            for c in children:
                out.extend(self.state.outbound(c))
            if out:
                group["outboundNodes"] = out
        return group

    def _with_hooks(self, child: dict[str, Any], name: str, task: dict[str, Any], ctx: TemplateContext,
                    scope: Scope, on_exit: bool) -> dict[str, Any]:
        """Run the lifecycle and exit hooks of task node ``child``; the view of the task its dependents
        see: Running while a started hook is not complete, Error when a lifecycle hook ended Error
        (that fails the DAG; one ending Failed does not)."""
        hooks_done, hook_error = self.steps.run_lifecycle_hooks(child, task, ctx, scope, "tasks", name)
        if not self.state.fulfilled(child):
            return child
        if not hooks_done or not self.steps.run_hooks(child, task, ctx, scope, "tasks", name, on_exit):
            return self._pending_view(child)
        if hook_error:
            return {**child, "phase": "Error", "message": hook_error}
        return child

    @staticmethod
    def _pending_view(node: dict[str, Any]) -> dict[str, Any]:
        view = dict(node)
        view["phase"] = "Running"
        return view

