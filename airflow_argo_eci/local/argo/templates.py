"""Template resolution and validation: local templates, ``templateRef`` to (Cluster)WorkflowTemplates,
``inline`` templates, ``templateDefaults`` and ``workflowTemplateRef`` spec merging."""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from airflow_argo_eci.local.api.resources import CLUSTER_WORKFLOW_TEMPLATES, WORKFLOW_TEMPLATES
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.argo.container_set import container_set_problem

#: template kinds Argo knows; the runnable ones run locally
RUNNABLE_TYPES = ("container", "script", "containerSet", "steps", "dag", "suspend", "resource", "http")
UNSUPPORTED_TYPES = ("data", "plugin")
LEAF_TYPES = ("container", "script", "resource", "data", "http", "containerSet", "plugin")


class SpecError(ValueError):
    """An invalid workflow spec (the workflow ends in phase Error with this message)."""


def template_type(tmpl: dict[str, Any]) -> str | None:
    """The kind of a template (``container``, ``steps``...), None if it has none."""
    for kind in RUNNABLE_TYPES + UNSUPPORTED_TYPES:
        if tmpl.get(kind) is not None:
            return kind
    return None


def node_type(tmpl: dict[str, Any] | None) -> str:
    """The type of the node that runs ``tmpl`` (``Steps``, ``DAG``, ``Suspend``, ``HTTP``, else ``Pod``)."""
    kind = template_type(tmpl or {})
    return {"steps": "Steps", "dag": "DAG", "suspend": "Suspend", "http": "HTTP"}.get(kind or "", "Pod")


def params_of(obj: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The ``parameters`` of an ``inputs`` / ``outputs`` / ``arguments`` object (well-formed entries only)."""
    if not obj:
        return []
    return [p for p in (obj.get("parameters") or []) if isinstance(p, dict)]


def artifacts_of(obj: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The ``artifacts`` of an ``inputs`` / ``outputs`` / ``arguments`` object (well-formed entries only)."""
    if not obj:
        return []
    return [a for a in (obj.get("artifacts") or []) if isinstance(a, dict)]


def deep_merge(base: Any, overlay: Any) -> Any:
    """Merge ``overlay`` into ``base`` (maps recursively; anything else: overlay wins)."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = dict(base)
        for key, value in overlay.items():
            out[key] = deep_merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(overlay)


@dataclass(frozen=True)
class TemplateContext:
    """Where template names are looked up: the workflow itself or one (Cluster)WorkflowTemplate."""

    scope: str  # "local" | "namespaced" | "cluster"
    name: str
    templates: dict[str, dict[str, Any]]

    @property
    def scope_label(self) -> str:
        """Argo's ``templateScope`` of nodes created from this context."""
        return f"{self.scope}/{self.name}"


def templates_by_name(spec: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """Index ``spec.templates`` by name, rejecting malformed entries."""
    out: dict[str, dict[str, Any]] = {}
    templates = spec.get("templates") or []
    if not isinstance(templates, list):
        raise SpecError(f"{where}.templates must be a list")
    for i, tmpl in enumerate(templates):
        if not isinstance(tmpl, dict) or not isinstance(tmpl.get("name"), str) or not tmpl["name"]:
            raise SpecError(f"{where}.templates[{i}].name is required")
        out[tmpl["name"]] = tmpl
    return out


class Resolver:
    """Resolves template holders (steps, tasks, hooks) to concrete templates, with per-pass caching."""

    def __init__(self, store: Store, namespace: str, template_defaults: dict[str, Any] | None) -> None:
        self.store = store
        self.namespace = namespace
        self.defaults = template_defaults or {}
        self._contexts: dict[tuple[str, str], TemplateContext] = {}

    def context_for_ref(self, name: str, cluster: bool) -> TemplateContext:
        """The context of a WorkflowTemplate (or ClusterWorkflowTemplate)."""
        key = ("cluster" if cluster else "namespaced", name)
        ctx = self._contexts.get(key)
        if ctx is None:
            rt = CLUSTER_WORKFLOW_TEMPLATES if cluster else WORKFLOW_TEMPLATES
            kind = "ClusterWorkflowTemplate" if cluster else "WorkflowTemplate"
            obj = self.store.find(rt, None if cluster else self.namespace, name)
            if obj is None:
                raise SpecError(f'{kind}.argoproj.io "{name}" not found')
            spec = obj.get("spec") or {}
            ctx = TemplateContext(key[0], name, templates_by_name(spec, f"{kind} {name}"))
            self._contexts[key] = ctx
        return ctx

    def resolve(self, holder: dict[str, Any], ctx: TemplateContext) -> tuple[TemplateContext, dict[str, Any]]:
        """Follow ``template`` / ``templateRef`` / ``inline`` of a step, task or hook."""
        inline = holder.get("inline")
        if isinstance(inline, dict):
            tmpl = dict(inline)
            tmpl.setdefault("name", "")
            return ctx, self.with_defaults(tmpl)
        ref = holder.get("templateRef")
        if isinstance(ref, dict):
            name = ref.get("name")
            template = ref.get("template")
            if not name or not template:
                raise SpecError("templateRef.name and templateRef.template are required")
            ref_ctx = self.context_for_ref(str(name), bool(ref.get("clusterScope")))
            found = ref_ctx.templates.get(str(template))
            if found is None:
                raise SpecError(f"template {template} not found in workflow template {name}")
            return ref_ctx, self.with_defaults(found)
        name = holder.get("template")
        if not isinstance(name, str) or not name:
            raise SpecError(f"step/task '{holder.get('name', '')}' has neither template, templateRef nor inline")
        local = ctx.templates.get(name)
        if local is None:
            raise SpecError(f"template name '{name}' undefined")
        return ctx, self.with_defaults(local)

    def with_defaults(self, tmpl: dict[str, Any]) -> dict[str, Any]:
        """``templateDefaults`` merged under the template (the template wins)."""
        if not self.defaults:
            return copy.deepcopy(tmpl)
        merged: dict[str, Any] = deep_merge(self.defaults, tmpl)
        return merged


def merge_workflow_template_spec(template_spec: dict[str, Any], wf_spec: dict[str, Any]) -> dict[str, Any]:
    """``spec.workflowTemplateRef``: the template's spec overlaid by the workflow's (workflow wins),
    with ``arguments.parameters`` merged by name."""
    merged: dict[str, Any] = deep_merge(template_spec, {k: v for k, v in wf_spec.items() if k != "arguments"})
    merged.pop("workflowTemplateRef", None)
    params: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for source in (template_spec, wf_spec):
        for p in ((source.get("arguments") or {}).get("parameters") or []):
            if isinstance(p, dict) and p.get("name"):
                if p["name"] not in params:
                    order.append(p["name"])
                params[p["name"]] = deep_merge(params.get(p["name"], {}), p)
    args = deep_merge((template_spec.get("arguments") or {}), (wf_spec.get("arguments") or {}))
    if order:
        args["parameters"] = [params[n] for n in order]
    if args:
        merged["arguments"] = args
    return merged


_DEP_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*")


def task_dependencies(task: dict[str, Any]) -> list[str]:
    """The task names a DAG task depends on (``depends`` or legacy ``dependencies``)."""
    deps = task.get("dependencies")
    if isinstance(deps, list) and deps:
        return [str(d) for d in deps]
    depends = task.get("depends")
    if not depends:
        return []
    names: list[str] = []
    for m in _DEP_NAME.finditer(re.sub(r"\.(Succeeded|Failed|Errored|Skipped|Omitted|Daemoned|AnySucceeded|"
                                       r"AllFailed)\b", "", str(depends))):
        word = m.group(0)
        if word in ("true", "false") or word in names:
            continue
        names.append(word)
    return names


def validate_workflow(spec: dict[str, Any], resolver: Resolver, ctx: TemplateContext) -> None:
    """Check what Argo checks before running: entrypoint, template names, DAG dependencies and
    cycles, and timeouts on non-leaf templates. Raises :class:`SpecError`."""
    entry = spec.get("entrypoint")
    if not entry:
        raise SpecError("spec.entrypoint is required")
    if entry not in ctx.templates:
        raise SpecError(f"spec.entrypoint template '{entry}' undefined")
    on_exit = spec.get("onExit")
    if on_exit and on_exit not in ctx.templates:
        raise SpecError(f"spec.onExit template '{on_exit}' undefined")
    for name, raw in ctx.templates.items():
        tmpl = resolver.with_defaults(raw)
        where = f"templates.{name}"
        kind = template_type(tmpl)
        if kind is None:
            raise SpecError(f"{where} template type unspecified. choose one of: container, containerSet, dag, "
                            "data, http, plugin, resource, script, steps, suspend")
        if tmpl.get("timeout") and kind not in LEAF_TYPES:
            raise SpecError(f"{where}.timeout: {kind} template doesn't support timeout field")
        if kind == "resource":
            _check_resource(where, tmpl["resource"])
        if kind == "containerSet":
            problem = container_set_problem(where, tmpl["containerSet"], bool(tmpl.get("outputs")))
            if problem:
                raise SpecError(problem)
        holders: list[tuple[str, dict[str, Any]]] = []
        if kind == "steps":
            groups = tmpl["steps"]
            if not isinstance(groups, list):
                raise SpecError(f"{where}.steps must be a list of step groups")
            for i, group in enumerate(groups):
                if isinstance(group, dict):
                    group = group.get("steps") or []
                for step in group or []:
                    holders.append((f"{where}.steps[{i}].{step.get('name', '')}", step))
        elif kind == "dag":
            tasks = tmpl["dag"].get("tasks") or []
            names = [t.get("name") for t in tasks]
            for t in tasks:
                if not t.get("name"):
                    raise SpecError(f"{where}.tasks: every task needs a name")
                holders.append((f"{where}.tasks.{t['name']}", t))
                for dep in task_dependencies(t):
                    if dep not in names:
                        raise SpecError(f"{where}.tasks.{t['name']} dependency '{dep}' not defined")
            _check_cycles(where, {t["name"]: task_dependencies(t) for t in tasks})
        for label, holder in holders:
            if holder.get("inline") is None and holder.get("templateRef") is None:
                target = holder.get("template")
                if not target:
                    raise SpecError(f"{label}: template, templateRef or inline is required")
                if target not in ctx.templates:
                    raise SpecError(f"{label} template name '{target}' undefined")


def _check_cycles(where: str, graph: dict[str, list[str]]) -> None:
    """Raise :class:`SpecError` naming the first dependency cycle (iterative depth-first search, so
    a chain of thousands of tasks needs no deep recursion)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in graph:
        if state.get(root):
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            node, index = stack.pop()
            if index == 0:
                if state.get(node) == 2:
                    continue
                if state.get(node) == 1:
                    cycle = [*path[path.index(node):], node]
                    raise SpecError(f"{where}.tasks dependency cycle detected: {'->'.join(cycle)}")
                state[node] = 1
                path.append(node)
            deps = graph.get(node, [])
            if index < len(deps):
                stack.append((node, index + 1))
                stack.append((deps[index], 0))
            else:
                state[node] = 2
                path.pop()


def spec_seconds(value: Any, field: str) -> float:
    """A number of seconds (``activeDeadlineSeconds``); :class:`SpecError` naming ``field`` otherwise."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not seconds >= 0:
        raise SpecError(f"{field}: must be a non-negative number of seconds, got {str(value)[:100]!r}")
    return seconds


def spec_parallelism(value: Any, field: str) -> int | None:
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


def _check_resource(where: str, res: Any) -> None:
    """Argo's checks of a resource template: a known action, a manifest (or manifestFrom) unless
    it gets or deletes, a manifest that is valid YAML (when it holds no ``{{...}}`` tags)."""
    if not isinstance(res, dict):
        raise SpecError(f"{where}.resource must be a mapping")
    action = str(res.get("action") or "")
    if "{{" not in action and action not in ("get", "create", "apply", "delete", "replace", "patch"):
        raise SpecError(f"{where}.resource.action must be one of: get, create, apply, delete, replace, patch")
    manifest = res.get("manifest")
    if action not in ("delete", "get"):
        if not manifest and not res.get("manifestFrom"):
            raise SpecError(f"either {where}.resource.manifest or {where}.resource.manifestFrom must be specified")
        if manifest and res.get("manifestFrom"):
            raise SpecError("shouldn't have both `manifest` and `manifestFrom` specified in `Manifest` for resource "
                            "template")
    if isinstance(manifest, str) and "{{" not in manifest:
        try:
            list(yaml.safe_load_all(manifest))
        except yaml.YAMLError:
            raise SpecError(f"{where}.resource.manifest must be a valid yaml") from None

