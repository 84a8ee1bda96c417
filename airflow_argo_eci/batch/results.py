"""Per-job results of a finished batch workflow: :func:`job_results` reads its nodes (``status.nodes``, or
``status.compressedNodes`` inflated)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_argo_eci.batch.graph import JobGraph
from airflow_argo_eci.batch.render import locate_job_nodes
from airflow_argo_eci.conventions import NODE_COMPLETED_PHASES
from airflow_argo_eci.workflows import workflow_nodes

__all__ = ["job_results"]


def _exit_code(node: Mapping[str, Any], nodes: Mapping[str, Mapping[str, Any]]) -> int | None:
    """The node's exit code, or its last attempt's (a retried job's node may not carry one)."""
    code = (node.get("outputs") or {}).get("exitCode")
    if code is None:
        children = [nodes[c] for c in node.get("children") or [] if c in nodes]
        attempts = [c for c in children if str(c.get("name", "")).startswith(str(node.get("name", "")) + "(")]
        if attempts:
            last = max(attempts, key=lambda c: (str(c.get("startedAt") or ""), str(c.get("name", ""))))
            return _exit_code(last, nodes)
        return None
    try:
        return int(code)
    except (TypeError, ValueError):
        return None


def _outputs(node: Mapping[str, Any]) -> dict[str, Any]:
    params = (node.get("outputs") or {}).get("parameters") or []
    return {str(p.get("name")): p.get("value") for p in params if isinstance(p, Mapping) and "value" in p}


def _result(node: Mapping[str, Any] | None, nodes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    if node is None:
        return {"phase": "NotRun", "exit_code": None, "outputs": {}, "message": "the job never started"}
    return {"phase": node.get("phase") or "Pending", "exit_code": _exit_code(node, nodes),
            "outputs": _outputs(node), "message": node.get("message") or ""}


def _array_phase(children: Mapping[str, Mapping[str, Any]], size: int, loop: Mapping[str, Any] | None) -> str:
    phases = [str(c["phase"]) for c in children.values()]
    if len(phases) < size:  # not every child exists: the loop's own phase, once it is over
        loop_phase = str((loop or {}).get("phase") or "")
        if loop_phase in NODE_COMPLETED_PHASES:
            return loop_phase
        return "Running" if phases or loop_phase else "NotRun"
    for phase in ("Error", "Failed"):
        if phase in phases:
            return phase
    if any(p not in NODE_COMPLETED_PHASES for p in phases):
        return "Running"
    # some children cancelled (their chain's earlier job failed): the array did not complete
    return next((p for p in phases if p in ("Omitted", "Skipped")), "Succeeded")


def job_results(workflow: Mapping[str, Any], graph: JobGraph) -> dict[str, Any]:
    """Per job name, what happened, from a (finished) workflow rendered from ``graph``.

    A job: ``{"phase", "exit_code", "outputs": {name: value}, "message"}``; ``phase`` is the
    node's (``Succeeded``, ``Failed``, ``Error``, ``Omitted`` when a failed dependency cancelled
    it) or ``NotRun`` when the workflow has no node for it. An array: ``{"phase", "children":
    {index: {...}}}`` with indexes as strings (``job-index`` values, JSON-safe for XCom) and
    ``phase`` ``Error``/``Failed`` if a child did, else ``Running`` while one runs, ``Omitted`` if
    some were cancelled, ``Succeeded`` if all succeeded.
    """
    status = workflow.get("status") or {}
    nodes: Mapping[str, Mapping[str, Any]] = workflow_nodes(status)  # also compressed ones
    name = str((workflow.get("metadata") or {}).get("name", ""))
    located = locate_job_nodes(name, graph.units(), nodes)
    results: dict[str, Any] = {}
    for job in graph.jobs:
        found = located[job.name]
        if found.children is None:
            results[job.name] = _result(found.node, nodes)
            continue
        children = {str(index): _result(node, nodes) for index, node in sorted(found.children.items())}
        results[job.name] = {"phase": _array_phase(children, getattr(job, "size", 0), found.node),
                             "children": children}
    return results
