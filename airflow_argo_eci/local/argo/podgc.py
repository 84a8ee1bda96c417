"""Argo's ``podGC``: which pods of a workflow go, and when (:class:`PodGC`, :func:`pods_due`), and
whether a pod's labels match the ``labelSelector`` (:func:`selector_matches`).

Strategies: ``OnPodCompletion`` (each pod once it completes), ``OnPodSuccess`` (each pod that
succeeded), ``OnWorkflowCompletion`` (all pods when the workflow completes),
``OnWorkflowSuccess`` (all pods when it succeeds). ``deleteDelayDuration`` delays each deletion
(Argo's default: 5s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_argo_eci.conventions import NODE_COMPLETED_PHASES
from airflow_argo_eci.local.argo.nodes import parse_duration
from airflow_argo_eci.local.argo.templates import SpecError

STRATEGIES = ("OnPodCompletion", "OnPodSuccess", "OnWorkflowCompletion", "OnWorkflowSuccess")
#: Argo's controller default for ``podGC.deleteDelayDuration``
DEFAULT_DELETE_DELAY = 5.0
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class PodGC:
    """A workflow's resolved ``spec.podGC``."""

    strategy: str
    #: ``labelSelector`` (``matchLabels`` / ``matchExpressions``) or None: every pod
    selector: dict[str, Any] | None
    delay: float


def pod_gc_of(spec: dict[str, Any]) -> PodGC | None:
    """``spec.podGC`` resolved (None when absent or without a strategy: pods stay, as in Argo);
    :class:`SpecError` naming the field."""
    gc = spec.get("podGC")
    if gc is None:
        return None
    if not isinstance(gc, dict):
        raise SpecError("spec.podGC must be an object with strategy, labelSelector, deleteDelayDuration")
    strategy = str(gc.get("strategy") or "")
    if not strategy:
        return None
    if strategy not in STRATEGIES:
        raise SpecError(f"spec.podGC.strategy: unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    selector = gc.get("labelSelector")
    if selector is not None:
        _check_selector(selector)
    delay = DEFAULT_DELETE_DELAY
    if gc.get("deleteDelayDuration") not in (None, ""):
        try:
            delay = parse_duration(gc["deleteDelayDuration"], field="spec.podGC.deleteDelayDuration")
        except ValueError as exc:
            raise SpecError(f"spec.podGC.deleteDelayDuration: {exc}") from exc
        if delay < 0:
            raise SpecError("spec.podGC.deleteDelayDuration must not be negative")
    return PodGC(strategy, selector, delay)


def _check_selector(selector: Any) -> None:
    where = "spec.podGC.labelSelector"
    if not isinstance(selector, dict):
        raise SpecError(f"{where} must be an object with matchLabels and/or matchExpressions")
    if not isinstance(selector.get("matchLabels") or {}, dict):
        raise SpecError(f"{where}.matchLabels must map label keys to values")
    for i, expr in enumerate(selector.get("matchExpressions") or []):
        if not isinstance(expr, dict) or not expr.get("key"):
            raise SpecError(f"{where}.matchExpressions[{i}].key is required")
        if expr.get("operator") not in _OPERATORS:
            raise SpecError(f"{where}.matchExpressions[{i}].operator: {expr.get('operator')!r} is not one of "
                            f"{', '.join(_OPERATORS)}")
        if expr["operator"] in ("In", "NotIn") and not expr.get("values"):
            raise SpecError(f"{where}.matchExpressions[{i}].values must not be empty for {expr['operator']}")


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Whether ``labels`` match a Kubernetes ``LabelSelector`` (None matches everything)."""
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != str(value):
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], [str(v) for v in expr.get("values") or []]
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def pods_due(gc: PodGC, nodes: dict[str, dict[str, Any]], workflow_phase: str | None) -> list[dict[str, Any]]:
    """The pod nodes whose pods the strategy collects now; ``workflow_phase`` is the phase the
    workflow ends in (None while it runs)."""
    pods = [n for n in nodes.values() if n.get("type") == "Pod"]
    if gc.strategy == "OnPodCompletion":
        return [n for n in pods if n.get("phase") in NODE_COMPLETED_PHASES]
    if gc.strategy == "OnPodSuccess":
        return [n for n in pods if n.get("phase") == "Succeeded"]
    if workflow_phase is None:
        return []
    if gc.strategy == "OnWorkflowSuccess" and workflow_phase != "Succeeded":
        return []
    return pods
