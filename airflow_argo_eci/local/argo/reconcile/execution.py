"""Template execution of a reconcile pass (Argo's ``executeTemplate``): arguments into inputs, the
retry node with its retry decision and backoff, dispatch by template kind, and suspend templates."""

from __future__ import annotations

import copy
import math
import re
import time
from typing import Any

from airflow_argo_eci.conventions import node_id, pod_name
from airflow_argo_eci.local.argo.artifacts import has_location_or_key
from airflow_argo_eci.local.argo.budget import MAX_DEPTH_MESSAGE, MAX_STACK_DEPTH
from airflow_argo_eci.local.argo.expressions import ExpressionError, evaluate
from airflow_argo_eci.local.argo.nodes import go_json, go_string, parse_duration, parse_time, seconds_between
from airflow_argo_eci.local.argo.reconcile.dag import DagRunner
from airflow_argo_eci.local.argo.reconcile.http import HttpRunner
from airflow_argo_eci.local.argo.reconcile.locks import TemplateLocks
from airflow_argo_eci.local.argo.reconcile.memoized import MemoizedTemplates
from airflow_argo_eci.local.argo.reconcile.pods import PodRunner
from airflow_argo_eci.local.argo.reconcile.resource import ResourceRunner
from airflow_argo_eci.local.argo.reconcile.state import PassState
from airflow_argo_eci.local.argo.reconcile.steps import StepRunner
from airflow_argo_eci.local.argo.templates import (
    UNSUPPORTED_TYPES,
    SpecError,
    TemplateContext,
    artifacts_of,
    node_type,
    params_of,
    template_type,
)
from airflow_argo_eci.local.argo.variables import Scope, TemplateError, substitute, substitute_obj

#: template keys left alone when a template's tags are substituted: metrics (evaluated when the node
#: ends) and artifact references (resolved as artifacts, not as text, when the step runs)
_UNSUBSTITUTED = frozenset({"metrics", "from", "fromExpression"})


class TemplateExecutor:
    """Runs (or continues) the template of a node; steps and DAGs call back into :meth:`execute`."""

    def __init__(self, state: PassState, pods: PodRunner) -> None:
        self.state = state
        self.pods = pods
        self.steps = StepRunner(state, self.execute)
        self.dag = DagRunner(state, self.steps)
        self.resources = ResourceRunner(state)
        self.http = HttpRunner(state)
        self.locks = TemplateLocks(state)
        self.memoized = MemoizedTemplates(state)

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
        node = self.state.node_by_name(node_name)
        if node is not None and self.state.fulfilled(node):
            self.locks.release(node)
            return node
        display = display or node_name
        self.state.yield_point()
        self.state.depth += 1
        try:
            if self.state.depth >= MAX_STACK_DEPTH:
                self.state.depth_exceeded = True
                return self._error_node(node, node_name, display, ctx, None, holder, boundary, MAX_DEPTH_MESSAGE)
            return self._execute(node, node_name, holder, ctx, args, boundary=boundary, scope=scope,
                                 on_exit=on_exit, display=display)
        finally:
            self.state.depth -= 1

    def _execute(self, node: dict[str, Any] | None, node_name: str, holder: dict[str, Any], ctx: TemplateContext,
                 args: dict[str, Any], *, boundary: str, scope: Scope, on_exit: bool, display: str
                 ) -> dict[str, Any] | None:
        assert self.state.resolver is not None
        try:
            tmpl_ctx, raw = self.state.resolver.resolve(holder, ctx)
        except SpecError as exc:
            return self._error_node(node, node_name, display, ctx, None, holder, boundary, str(exc))
        stopping = self.state.shutdown or self.state.deadline_exceeded
        if stopping and node is None and not (on_exit and self.state.shutdown == "Stop"):
            message = (f"workflow shutdown with strategy: {self.state.shutdown}" if self.state.shutdown
                       else "Workflow exceeded its deadline")
            kind = "Pod" if template_type(raw) in ("container", "script", "containerSet") else node_type(raw)
            return self.state.init_node(node_name, kind, display, tmpl_ctx, raw, holder, boundary, "Failed", message)
        try:
            tmpl, local = self._process_args(raw, args, scope, node_name)
        except (SpecError, TemplateError, ExpressionError) as exc:
            return self._error_node(node, node_name, display, tmpl_ctx, raw, holder, boundary, str(exc))
        memo = None
        if tmpl.get("memoize"):
            try:
                memo = self.memoized.memo(tmpl)
            except SpecError as exc:
                return self._error_node(node, node_name, display, tmpl_ctx, raw, holder, boundary, str(exc))
            if node is None:
                cached = self.memoized.hit(memo, node_name, display, holder, tmpl_ctx, tmpl, boundary)
                if cached is not None:
                    return cached
        if tmpl.get("synchronization"):
            try:
                waiting = self.locks.take(node_id(self.state.name, node_name), tmpl)
            except SpecError as exc:
                return self._error_node(node, node_name, display, tmpl_ctx, raw, holder, boundary, str(exc))
            if waiting:
                return self.locks.waiting_node(node, node_name, display, holder, tmpl_ctx, tmpl, boundary, waiting)
            node = self.locks.started(node)
        retry = tmpl.get("retryStrategy")
        if retry:
            started = self._execute_retry(node, node_name, display, holder, tmpl_ctx, tmpl, raw, local, boundary,
                                          on_exit)
        else:
            started = self._execute_body(node, node_name, display, holder, tmpl_ctx, tmpl, local, boundary, on_exit, 0)
        return self.memoized.ran(started, memo) if memo is not None else started

    def _error_node(self, node: dict[str, Any] | None, name: str, display: str, ctx: TemplateContext | None,
                    tmpl: dict[str, Any] | None, holder: dict[str, Any], boundary: str, message: str
                    ) -> dict[str, Any]:
        if node is None:
            node = self.state.init_node(name, node_type(tmpl) if tmpl else "Skipped", display, ctx, tmpl, holder,
                                        boundary, "Error", message)
        else:
            self.state.mark(node, "Error", message)
        return node

    def _process_args(self, raw: dict[str, Any], args: dict[str, Any], scope: Scope, node_name: str
                      ) -> tuple[dict[str, Any], Scope]:
        """Argo's ``ProcessArgs`` + ``substituteParams``: inputs from arguments/defaults, then tags."""
        tmpl = copy.deepcopy(raw)
        arg_params = {p.get("name"): p for p in params_of(args)}
        local = scope.child({"node.name": node_name})
        inputs: list[dict[str, Any]] = []
        for p in params_of(tmpl.get("inputs")):
            name = p.get("name")
            value: str | None = None
            if p.get("value") is not None:
                value = go_string(p["value"])
            elif p.get("default") is not None:
                value = go_string(p["default"])
            arg = arg_params.get(name)
            if arg is not None:
                if arg.get("value") is not None:
                    value = go_string(arg["value"])
                elif (arg.get("valueFrom") or {}).get("configMapKeyRef"):
                    value = self.state.config_map_value(arg["valueFrom"]["configMapKeyRef"],
                                                        f"inputs.parameters.{name}")
            vf = p.get("valueFrom") or {}
            if value is None and vf.get("configMapKeyRef"):
                value = self.state.config_map_value(vf["configMapKeyRef"], f"inputs.parameters.{name}")
            if value is None:
                raise SpecError(f"inputs.parameters.{name} was not supplied")
            value = substitute(value, scope)
            if p.get("enum"):
                allowed = [go_string(e) for e in p["enum"]]
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
            local.set("inputs.parameters", go_json(inputs))
        arg_arts = {a.get("name"): a for a in artifacts_of(args)}
        in_arts: list[dict[str, Any]] = []
        for a in artifacts_of(tmpl.get("inputs")):
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
        if template_type(tmpl) in ("container", "script", "containerSet"):
            for a in artifacts_of(tmpl.get("outputs")):
                if a.get("path"):
                    local.set(f"outputs.artifacts.{a.get('name')}.path", str(a["path"]))
            for p in params_of(tmpl.get("outputs")):
                if (p.get("valueFrom") or {}).get("path"):
                    local.set(f"outputs.parameters.{p.get('name')}.path", str(p["valueFrom"]["path"]))
        if template_type(tmpl) in ("container", "script", "resource", "containerSet"):
            pod_tmpl_name = tmpl.get("name", "")
            local.set("pod.name", pod_name(self.state.name, node_name, pod_tmpl_name))
        tmpl = substitute_obj(tmpl, local, skip=_UNSUBSTITUTED)
        return tmpl, local

    def _execute_retry(self, node: dict[str, Any] | None, node_name: str, display: str, holder: dict[str, Any],
                       ctx: TemplateContext, tmpl: dict[str, Any], raw: dict[str, Any], local: Scope,
                       boundary: str, on_exit: bool) -> dict[str, Any] | None:
        strategy = tmpl.get("retryStrategy") or {}
        if node is None:
            node = self.state.init_node(node_name, "Retry", display, ctx, tmpl, holder, boundary, "Running")
            if tmpl.get("inputs"):
                node["inputs"] = tmpl["inputs"]
        children = node.get("children") or []
        attempt = len(children)
        if children:
            last = self.state.nodes.get(children[-1])
            if last is None:
                attempt = len(children) - 1
            elif not self.state.fulfilled(last):
                return self._run_attempt(node, node_name, len(children) - 1, holder, ctx, tmpl, raw, local, on_exit)
            elif self.state.daemoned(last):  # Argo: the retry node of a daemon that is up is daemoned too
                node["daemoned"] = True
                node["podIP"] = last.get("podIP", "")
                self.state.mark(node, "Running")
                return node
            else:
                if last["phase"] in ("Succeeded", "Skipped"):
                    if last.get("outputs"):
                        node["outputs"] = last["outputs"]
                    node["outboundNodes"] = self.state.outbound(last)
                    self.state.mark(node, "Succeeded")
                    return node
                decision = self._retry_decision(node, last, strategy, local)
                if decision is not None:
                    self.state.mark(node, last["phase"], decision)
                    if last.get("outputs"):
                        node["outputs"] = last["outputs"]
                    return node
                wait = self._backoff_remaining(last, strategy, len(children))
                if wait > 0:
                    self.state.requeue(wait)
                    node["message"] = f"Backoff for {math.ceil(wait)} seconds"
                    return node
                node.pop("message", None)
        return self._run_attempt(node, node_name, attempt, holder, ctx, tmpl, raw, local, on_exit)

    def _run_attempt(self, node: dict[str, Any], node_name: str, attempt: int, holder: dict[str, Any],
                     ctx: TemplateContext, tmpl: dict[str, Any], raw: dict[str, Any], local: Scope,
                     on_exit: bool) -> dict[str, Any]:
        child_name = f"{node_name}({attempt})"
        child_tmpl = {k: v for k, v in tmpl.items() if k != "retryStrategy"}
        attempt_scope = local.child({"retries": str(attempt), "node.name": child_name,
                                     **self._last_retry(node, attempt)})
        if template_type(child_tmpl) in ("container", "script", "resource", "containerSet"):
            attempt_scope.set("pod.name", pod_name(self.state.name, child_name, child_tmpl.get("name", "")))
            child_tmpl = substitute_obj(copy.deepcopy({k: v for k, v in raw.items() if k != "retryStrategy"}),
                                        attempt_scope, skip=_UNSUBSTITUTED)
            if tmpl.get("inputs"):
                child_tmpl["inputs"] = tmpl["inputs"]
        existing = self.state.node_by_name(child_name)
        child = self._execute_body(existing, child_name, f"{node.get('displayName', node_name)}({attempt})",
                                   holder, ctx, child_tmpl, attempt_scope, node.get("boundaryID", ""), on_exit,
                                   attempt)
        if child is not None:
            self.state.add_child(node, child["id"])
            if self.state.fulfilled(child):
                # the retry node decides about the next attempt in the next pass
                self.state.requeue(0.05)
        return node

    def _last_retry(self, node: dict[str, Any], attempt: int) -> dict[str, str]:
        """Argo's ``lastRetry.*`` for attempt ``attempt``: the previous attempt's exit code, status,
        duration and message (``0``, ``""``, ``0``, ``""`` for the first one)."""
        children = node.get("children") or []
        last = self.state.nodes.get(children[attempt - 1]) if 0 < attempt <= len(children) else None
        if last is None:
            return {"lastRetry.exitCode": "0", "lastRetry.status": "", "lastRetry.duration": "0",
                    "lastRetry.message": ""}
        seconds = repr(float(seconds_between(last.get("startedAt"), last.get("finishedAt"))))
        return {"lastRetry.exitCode": str((last.get("outputs") or {}).get("exitCode", "0")),
                "lastRetry.status": str(last.get("phase", "")),
                "lastRetry.duration": seconds[:-2] if seconds.endswith(".0") else seconds,
                "lastRetry.message": str(last.get("message", ""))}

    def _retry_decision(self, node: dict[str, Any], last: dict[str, Any], strategy: dict[str, Any],
                        scope: Scope) -> str | None:
        """None to retry, else the message with which the retry node gives up."""
        if self.state.shutdown or self.state.deadline_exceeded:
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
                "lastRetry.duration": str(seconds_between(last.get("startedAt"), last.get("finishedAt"))),
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
        base = parse_duration(backoff["duration"], field="retryStrategy.backoff.duration")
        factor = float(str(backoff.get("factor", 2)))
        delay = base * (factor ** max(0, attempts - 1))
        if backoff.get("cap"):
            delay = min(delay, parse_duration(backoff["cap"], field="retryStrategy.backoff.cap"))
        finished = parse_time(last.get("finishedAt"))
        if finished is None:
            return 0.0
        return finished.timestamp() + delay - time.time()

    def _execute_body(self, node: dict[str, Any] | None, node_name: str, display: str, holder: dict[str, Any],
                      ctx: TemplateContext, tmpl: dict[str, Any], local: Scope, boundary: str, on_exit: bool,
                      retries: int) -> dict[str, Any] | None:
        kind = template_type(tmpl)
        if kind in ("container", "script", "containerSet"):
            return self.pods.execute_pod(node, node_name, display, holder, ctx, tmpl, boundary, retries)
        if kind == "steps":
            return self.steps.execute_steps(node, node_name, display, holder, ctx, tmpl, local, boundary, on_exit)
        if kind == "dag":
            return self.dag.execute_dag(node, node_name, display, holder, ctx, tmpl, local, boundary, on_exit)
        if kind == "resource":
            return self.resources.execute_resource(node, node_name, display, holder, ctx, tmpl, boundary)
        if kind == "http":
            return self.http.execute_http(node, node_name, display, holder, ctx, tmpl, boundary)
        if kind == "suspend":
            return self._execute_suspend(node, node_name, display, holder, ctx, tmpl, boundary)
        if kind in UNSUPPORTED_TYPES:
            message = f"template type {kind} is not supported by the local cluster"
            if message not in self.state.unsupported_messages:
                self.state.unsupported_messages.append(f"{message} (template '{tmpl.get('name', '')}')")
            return self._error_node(node, node_name, display, ctx, tmpl, holder, boundary, message)
        return self._error_node(node, node_name, display, ctx, tmpl, holder, boundary,
                                f"template '{tmpl.get('name', '')}' has no type (container, script, steps, dag...)")

    def _execute_suspend(self, node: dict[str, Any] | None, node_name: str, display: str, holder: dict[str, Any],
                         ctx: TemplateContext, tmpl: dict[str, Any], boundary: str) -> dict[str, Any]:
        if node is None:
            node = self.state.init_node(node_name, "Suspend", display, ctx, tmpl, holder, boundary, "Running")
            if tmpl.get("inputs"):
                node["inputs"] = tmpl["inputs"]
        duration = (tmpl.get("suspend") or {}).get("duration")
        if duration not in (None, ""):
            seconds = parse_duration(duration, field=f"templates.{tmpl.get('name', '')}.suspend.duration")
            started = parse_time(node.get("startedAt"))
            elapsed = time.time() - started.timestamp() if started else 0.0
            if elapsed >= seconds:
                self._suspend_outputs(node, tmpl)
                self.state.mark(node, "Succeeded")
            else:
                self.state.requeue(seconds - elapsed)
        return node

    def _suspend_outputs(self, node: dict[str, Any], tmpl: dict[str, Any]) -> None:
        params = []
        for p in params_of(tmpl.get("outputs")):
            vf = p.get("valueFrom") or {}
            value = p.get("value", vf.get("default"))
            if value is not None:
                params.append({"name": p.get("name"), "value": go_string(value)})
        if params and not (node.get("outputs") or {}).get("parameters"):
            node.setdefault("outputs", {})["parameters"] = params


def _int_or_str(value: Any) -> Any:
    """An exit code as a number for ``lastRetry.exitCode`` when it is one."""
    try:
        return int(str(value))
    except ValueError:
        return value


_TRANSIENT = re.compile(r"(?i)(timeout|connection refused|connection reset|pod deleted|pod lost|"
                        r"too many requests|exceeded quota|transient)")


def _is_transient(message: str) -> bool:
    """Whether a node failed for a reason that may go away (``retryPolicy: OnTransientError``)."""
    return bool(_TRANSIENT.search(message or ""))

