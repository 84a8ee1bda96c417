"""Steps of a reconcile pass: step groups in order, ``when``, items / ``withParam`` /
``withSequence`` expansion, step arguments and artifact references, exit hooks, and the outputs of
a step, a task or a steps/DAG template in scope."""

from __future__ import annotations

import copy
import json
import posixpath
from dataclasses import dataclass
from typing import Any

from airflow_argo_eci.conventions import FAILED_PHASES
from airflow_argo_eci.local.argo.expressions import ExpressionError, evaluate, evaluate_when
from airflow_argo_eci.local.argo.items import bounded_items, expand_sequence, item_scope
from airflow_argo_eci.local.argo.nodes import aggregate_phase, continues_on, expanded_name, go_json, go_string
from airflow_argo_eci.local.argo.reconcile.state import ExecuteTemplate, PassState
from airflow_argo_eci.local.argo.templates import SpecError, TemplateContext, artifacts_of, params_of, spec_parallelism
from airflow_argo_eci.local.argo.variables import Scope, TemplateError, substitute, substitute_obj, unresolved_tags


@dataclass
class StepOutcome:
    """Whether a step group / DAG finished, and why it failed if it did."""

    done: bool
    failure: str = ""


def _tag_name(text: str) -> str:
    """``{{steps.a.outputs.artifacts.b}}`` -> ``steps.a.outputs.artifacts.b``."""
    stripped = text.strip()
    if stripped.startswith("{{") and stripped.endswith("}}"):
        return stripped[2:-2].strip()
    return stripped


class StepRunner:
    """Runs steps templates and the step-level work DAG tasks share (when, items, arguments, hooks)."""

    def __init__(self, state: PassState, execute: ExecuteTemplate) -> None:
        self.state = state
        self.execute = execute

    def execute_steps(self, node: dict[str, Any] | None, node_name: str, display: str, holder: dict[str, Any],
                      ctx: TemplateContext, tmpl: dict[str, Any], local: Scope, boundary: str, on_exit: bool
                      ) -> dict[str, Any]:
        """Run (or continue) the steps template ``tmpl`` as node ``node_name``: one step group after the
        other, each once the previous one succeeded; the daemons it started stop when it completes."""
        node = self._run_groups(node, node_name, display, holder, ctx, tmpl, local, boundary, on_exit)
        if self.state.fulfilled(node):
            self.state.kill_daemons(node["id"])
        return node

    def _run_groups(self, node: dict[str, Any] | None, node_name: str, display: str, holder: dict[str, Any],
                    ctx: TemplateContext, tmpl: dict[str, Any], local: Scope, boundary: str, on_exit: bool
                    ) -> dict[str, Any]:
        if node is None:
            node = self.state.init_node(node_name, "Steps", display, ctx, tmpl, holder, boundary, "Running")
            if tmpl.get("inputs"):
                node["inputs"] = tmpl["inputs"]
        self.push_limit(node["id"], tmpl)
        scope = local.child()
        groups = tmpl.get("steps") or []
        prev_children: list[str] = []
        last_children: list[str] = []
        for i, group in enumerate(groups):
            if isinstance(group, dict):
                group = group.get("steps") or []
            sg_name = f"{node_name}[{i}]"
            sg = self.state.node_by_name(sg_name)
            if sg is None:
                sg = self.state.init_node(sg_name, "StepGroup", f"[{i}]", ctx, None, None, node["id"], "Running")
                sg.pop("templateName", None)
            if i == 0:
                self.state.add_child(node, sg["id"])
            else:
                for cid in prev_children:
                    child = self.state.nodes.get(cid)
                    if child is None:
                        continue
                    for out_id in self.state.outbound(child):
                        if out_id in self.state.nodes:
                            self.state.add_child(self.state.nodes[out_id], sg["id"])
            outcome = self._execute_step_group(group, sg, sg_name, ctx, scope, node["id"], on_exit)
            if not outcome.done:
                return node
            if outcome.failure:
                self.state.mark(sg, "Failed", outcome.failure)
                self.state.mark(node, "Failed", outcome.failure)
                return node
            self.state.mark(sg, "Succeeded")
            prev_children = list(sg.get("children") or [])
            last_children = prev_children
        outbound: list[str] = []
        for cid in last_children:
            if cid in self.state.nodes:
                outbound.extend(self.state.outbound(self.state.nodes[cid]))
        if outbound:
            node["outboundNodes"] = outbound
        self.template_outputs(node, tmpl, scope)
        if node["phase"] == "Running":
            self.state.mark(node, "Succeeded")
        return node

    def push_limit(self, boundary_id: str, tmpl: dict[str, Any]) -> None:
        """Record the template-level ``parallelism`` of the steps/DAG node ``boundary_id``."""
        limit = spec_parallelism(tmpl.get("parallelism"), f"templates.{tmpl.get('name', '')}.parallelism")
        if limit is not None:
            self.state.boundary_limits[boundary_id] = limit

    def expand(self, item_holder: dict[str, Any], scope: Scope, where: str) -> list[Any] | None:
        """Items of ``withItems`` / ``withParam`` / ``withSequence`` (None when there are none)."""
        if item_holder.get("withItems") is not None:
            items = item_holder["withItems"]
            if not isinstance(items, list):
                raise SpecError(f"{where}.withItems must be a list")
            return bounded_items(list(items), where, "withItems")
        if item_holder.get("withParam") not in (None, ""):
            text = substitute(go_string(item_holder["withParam"]), scope, allow_unresolved=False)
            try:
                items = json.loads(text)
            except (json.JSONDecodeError, RecursionError) as exc:
                raise SpecError(f"withParam value could not be parsed as a JSON list: {text.strip()[:200]}") from exc
            if not isinstance(items, list):
                raise SpecError(f"withParam value could not be parsed as a JSON list: {text.strip()[:200]}")
            return bounded_items(items, where, "withParam")
        seq = item_holder.get("withSequence")
        if seq is not None:
            seq = substitute_obj(seq, scope, allow_unresolved=False)
            return expand_sequence(seq, where)
        return None

    def _execute_step_group(self, group: list[dict[str, Any]], sg: dict[str, Any], sg_name: str,
                            ctx: TemplateContext, scope: Scope, boundary: str, on_exit: bool) -> StepOutcome:
        done = True
        failure = ""
        results: list[tuple[dict[str, Any], list[dict[str, Any]], bool]] = []
        for step in group:
            name = step.get("name", "")
            where = f"{sg_name}.{name}"
            try:
                items = self.expand(step, scope, where)
            except (SpecError, TemplateError) as exc:
                err = self.state.node_by_name(where) or self.state.init_node(
                    where, "Skipped", name, ctx, None, step, boundary, "Error", str(exc))
                self.state.add_child(sg, err["id"])
                results.append((step, [err], False))
                continue
            base = {k: v for k, v in step.items() if k not in ("withItems", "withParam", "withSequence")}
            children: list[dict[str, Any]] = []
            if items is None:
                expanded = [(name, base)]
            elif not items:
                skipped = self.state.node_by_name(where) or self.state.init_node(
                    where, "Skipped", name, ctx, None, step, boundary, "Skipped", "Skipped, empty params")
                self.state.add_child(sg, skipped["id"])
                results.append((step, [skipped], items is not None))
                continue
            else:
                expanded = []
                for idx, item in enumerate(items):
                    child_step = substitute_obj(base, Scope(item_scope(item)))
                    expanded.append((expanded_name(name, idx, item), child_step))
            for child_display, child_step in expanded:
                child_name = f"{sg_name}.{child_display}"
                child = self.run_step(child_name, child_display, child_step, ctx, scope, boundary, on_exit)
                if child is None:
                    done = False
                    continue
                self.state.add_child(sg, child["id"])
                hooks_done, hook_error = self.run_lifecycle_hooks(child, child_step, ctx, scope, "steps", name)
                failure = failure or hook_error
                if not self.state.fulfilled(child) or not hooks_done:
                    done = False
                    continue
                if not self.run_hooks(child, child_step, ctx, scope, "steps", name, on_exit):
                    done = False
                children.append(child)
            results.append((step, children, items is not None))
        if not done:
            return StepOutcome(False)
        for step, children, aggregated in results:
            scope_outputs(scope, "steps", step.get("name", ""), children, aggregated)
            for child in children:
                if child["phase"] in FAILED_PHASES and not continues_on(step, child["phase"]) and not failure:
                    failure = f"child '{child['id']}' failed"
        return StepOutcome(True, failure)

    def run_step(self, child_name: str, display: str, step: dict[str, Any], ctx: TemplateContext, scope: Scope,
                 boundary: str, on_exit: bool, kind: str = "steps") -> dict[str, Any] | None:
        """Run one step (or DAG task, ``kind`` "tasks") as node ``child_name``: its ``when``, its
        arguments, then its template (which sees the step's name as ``{{steps.name}}`` /
        ``{{tasks.name}}``); None while it cannot start yet."""
        existing = self.state.node_by_name(child_name)
        if self.state.fulfilled(existing):
            return existing
        if existing is None:
            when = step.get("when")
            if when not in (None, ""):
                try:
                    text = substitute(go_string(when), scope, allow_unresolved=False)
                    ok = evaluate_when(text)
                except (TemplateError, ExpressionError) as exc:
                    return self.state.init_node(child_name, "Skipped", display, ctx, None, step, boundary, "Error",
                                                f"invalid when expression: {exc}")
                if not ok:
                    node = self.state.init_node(child_name, "Skipped", display, ctx, None, step, boundary, "Skipped",
                                                f"when '{text}' evaluated false")
                    self.skipped_outputs(node, step, ctx)
                    return node
        try:
            args = self._step_args(step, scope)
        except TemplateError as exc:
            return existing or self.state.init_node(child_name, "Skipped", display, ctx, None, step, boundary, "Error",
                                                    str(exc))
        named = self.state.global_scope.child({f"{kind}.name": str(step.get("name", ""))})
        return self.execute(child_name, step, ctx, args, boundary=boundary, scope=named, on_exit=on_exit,
                            display=display)

    def _step_args(self, step: dict[str, Any], scope: Scope) -> dict[str, Any]:
        args = copy.deepcopy(step.get("arguments") or {})
        params = []
        for p in params_of(args):
            p = dict(p)
            if p.get("value") is not None:
                value = substitute(go_string(p["value"]), scope)
                if unresolved_tags(value):
                    # a reference to an output that does not exist (e.g. of a skipped node): the input's
                    # default applies; without one the input is reported as not supplied
                    continue
                p["value"] = value
            params.append(p)
        args["parameters"] = params
        arts = []
        for a in artifacts_of(args):
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

    def skipped_outputs(self, node: dict[str, Any], holder: dict[str, Any], ctx: TemplateContext) -> None:
        """Give a skipped / omitted node the default values of its template's output parameters."""
        assert self.state.resolver is not None
        try:
            _, tmpl = self.state.resolver.resolve(holder, ctx)
        except SpecError:
            return
        params = []
        for p in params_of(tmpl.get("outputs")):
            default = (p.get("valueFrom") or {}).get("default")
            if default is not None:
                params.append({"name": p.get("name"), "value": go_string(default)})
        if params:
            node["outputs"] = {"parameters": params}

    def run_lifecycle_hooks(self, child: dict[str, Any], step: dict[str, Any], ctx: TemplateContext,
                            scope: Scope, prefix: str, own_name: str) -> tuple[bool, str]:
        """Run the lifecycle hooks (``hooks`` other than ``exit``) of step / task ``child``: each runs
        at most once, as node ``<child>.hooks.<name>``, from the pass in which its ``expression``
        first holds (it sees ``<prefix>.<own_name>.status`` etc. of ``child``). Returns whether every
        started hook is complete and the failure a hook ending ``Error`` causes ("" when none; a
        hook ending ``Failed`` is ignored, as in Argo)."""
        hooks = step.get("hooks") or {}
        where = f"{prefix}.{own_name}.hooks"
        done, error = True, ""
        for hook_name, hook in sorted(hooks.items()) if isinstance(hooks, dict) else [("", None)]:
            if hook_name == "exit":
                continue
            node_name = f"{child['name']}.hooks.{hook_name}"
            display = f"{child.get('displayName', '')}.hooks.{hook_name}"
            node = self.state.node_by_name(node_name)
            if node is None:
                problem = hook_problem(hooks, hook_name, hook, where)
                fire = False
                if not problem and isinstance(hook, dict):
                    hook_scope = scope.child()
                    scope_outputs(hook_scope, prefix, own_name, [child], False)
                    try:
                        fire = evaluate(str(hook["expression"]), hook_scope.env()) is True
                    except ExpressionError as exc:
                        problem = f"{where}.{hook_name}.expression: {exc}"
                if problem:
                    node = self.state.init_node(node_name, "Skipped", display, ctx, None,
                                                hook if isinstance(hook, dict) else {}, child.get("boundaryID", ""),
                                                "Error", problem)
                    self.state.add_child(child, node["id"])
                elif not fire:
                    continue
            if node is None or not self.state.fulfilled(node):
                assert isinstance(hook, dict)
                try:
                    args = self._step_args(hook, scope)
                except TemplateError as exc:
                    args = None
                    node = node or self.state.init_node(node_name, "Skipped", display, ctx, None, hook,
                                                        child.get("boundaryID", ""), "Error", str(exc))
                if args is not None:
                    node = self.execute(node_name, hook, ctx, args, boundary=child.get("boundaryID", ""),
                                        scope=self.state.global_scope, on_exit=False, display=display)
                if node is None:
                    done = False
                    continue
                self.state.add_child(child, node["id"])
            if not self.state.fulfilled(node):
                done = False
            elif node["phase"] == "Error" and not error:
                error = f"child '{node['id']}' errored: {node.get('message', '')}"
        return done, error

    def run_hooks(self, child: dict[str, Any], step: dict[str, Any], ctx: TemplateContext, scope: Scope,
                  prefix: str, own_name: str, on_exit: bool) -> bool:
        """Run the exit hook of the finished step / task ``child``; whether the hook is done (True when
        there is none)."""
        hook = (step.get("hooks") or {}).get("exit")
        if hook is None and step.get("onExit"):
            hook = {"template": step["onExit"]}
        if not hook or child["phase"] in ("Skipped", "Omitted"):
            return True
        hook_scope = scope.child()
        scope_outputs(hook_scope, prefix, own_name, [child], False)
        hook_name = f"{child['name']}.onExit"
        try:
            args = self._step_args(hook, hook_scope)
        except TemplateError as exc:
            failed = self.state.node_by_name(hook_name) or self.state.init_node(
                hook_name, "Skipped", f"{child.get('displayName', '')}.onExit", ctx, None, hook,
                child.get("boundaryID", ""), "Error", str(exc))
            self.state.add_child(child, failed["id"])
            return True
        hook_node = self.execute(hook_name, hook, ctx, args, boundary=child.get("boundaryID", ""),
                                 scope=self.state.global_scope.child({"workflow.status": child["phase"]}),
                                 on_exit=True, display=f"{child.get('displayName', '')}.onExit")
        if hook_node is None:
            return False
        self.state.add_child(child, hook_node["id"])
        return self.state.fulfilled(hook_node)

    def template_outputs(self, node: dict[str, Any], tmpl: dict[str, Any], scope: Scope) -> None:
        """The outputs of a finished steps/DAG template from its ``scope`` (``valueFrom.parameter``,
        expressions, artifact references, ``result``); an unresolvable one errs the node."""
        params = []
        for p in params_of(tmpl.get("outputs")):
            vf = p.get("valueFrom") or {}
            value: Any = None
            try:
                if vf.get("parameter"):
                    value = substitute(go_string(vf["parameter"]), scope)
                    if unresolved_tags(value):
                        value = None
                elif vf.get("expression"):
                    value = evaluate(str(vf["expression"]), scope.env())
                elif p.get("value") is not None:
                    value = substitute(go_string(p["value"]), scope)
            except (ExpressionError, TemplateError) as exc:
                if vf.get("default") is None:
                    self.state.mark(node, "Error", f"failed to resolve outputs.parameters.{p.get('name')}: {exc}")
                    return
            if value is None and vf.get("default") is not None:
                value = vf["default"]
            if value is None:
                self.state.mark(node, "Error", f"unable to resolve outputs.parameters.{p.get('name')}")
                return
            text = go_string(value)
            entry = {"name": p.get("name"), "value": text}
            if p.get("globalName"):
                entry["globalName"] = p["globalName"]
                self.state.set_global_output(str(p["globalName"]), text)
            params.append(entry)
        if params:
            node.setdefault("outputs", {})["parameters"] = params
        arts = []
        for a in artifacts_of(tmpl.get("outputs")):
            try:
                src = self._artifact_reference(a, scope)
            except (ExpressionError, TemplateError) as exc:
                self.state.mark(node, "Error", f"failed to resolve outputs.artifacts.{a.get('name')}: {exc}")
                return
            if src is None:
                if a.get("optional"):
                    continue
                ref = a.get("from") or a.get("fromExpression") or ""
                self.state.mark(node, "Error", f"Unable to resolve: {ref}" if ref else
                                f"outputs.artifacts.{a.get('name')}: from or fromExpression is required")
                return
            entry = {**src, **{k: v for k, v in a.items() if k not in ("from", "fromExpression")}}
            arts.append(entry)
            if a.get("globalName"):
                self.state.set_global_artifact(str(a["globalName"]), entry)
        if arts:
            node.setdefault("outputs", {})["artifacts"] = arts
        result_ref = (tmpl.get("outputs") or {}).get("result")
        if result_ref:
            node.setdefault("outputs", {})["result"] = substitute(go_string(result_ref), scope)


def scope_outputs(scope: Scope, prefix: str, name: str, children: list[dict[str, Any]], aggregated: bool) -> None:
    """Put what the finished ``children`` of step / task ``name`` produced into ``scope`` as
    ``<prefix>.<name>.*``; an expanded (``aggregated``) one gets JSON lists of its children's outputs."""
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
        if child.get("podIP"):  # a daemon's address (Argo sets it on daemoned nodes only)
            values[f"{key}.ip"] = child["podIP"]
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
    values = {f"{key}.outputs.result": go_json(results), f"{key}.outputs.parameters": go_json(param_maps)}
    for pname, pvals in per_param.items():
        values[f"{key}.outputs.parameters.{pname}"] = go_json(pvals)
    if phases:
        values[f"{key}.status"] = aggregate_phase(phases)
    scope.update(values)



def hook_problem(hooks: Any, name: str, hook: Any, where: str) -> str:
    """What is wrong with lifecycle hook ``name`` of a step / task's ``hooks`` (``where`` names the
    field), or "" when it can run."""
    if not isinstance(hooks, dict):
        return f"{where} must map hook names to hooks (expression, template)"
    if not isinstance(hook, dict) or not (hook.get("template") or hook.get("templateRef")):
        return f"{where}.{name} needs a template (or templateRef) to run"
    if not str(hook.get("expression") or "").strip():
        return f"{where}.{name}.expression is required (when the hook runs, e.g. {where.split('.')[0]}" \
               f"[\"{where.split('.')[1]}\"].status == \"Running\")"
    return ""
