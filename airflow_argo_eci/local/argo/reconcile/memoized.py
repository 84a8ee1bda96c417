"""Template ``memoize`` in a reconcile pass: :class:`MemoizedTemplates` answers a node from its
ConfigMap cache (a hit), marks the nodes that ran, and saves their outputs once they succeed."""

from __future__ import annotations

import copy
from typing import Any

from airflow_argo_eci.local.argo.memoize import Memo, lookup, memo_of, save, saved_by
from airflow_argo_eci.local.argo.nodes import parse_time
from airflow_argo_eci.local.argo.reconcile.state import PassState
from airflow_argo_eci.local.argo.templates import TemplateContext, node_type


class MemoizedTemplates:
    """The memoized templates of one pass."""

    def __init__(self, state: PassState) -> None:
        self.state = state

    @staticmethod
    def memo(tmpl: dict[str, Any]) -> Memo:
        """The template's ``memoize`` block; :class:`SpecError` naming the field."""
        return memo_of(tmpl["memoize"], f"templates.{tmpl.get('name', '')}.memoize")

    def hit(self, memo: Memo, node_name: str, display: str, holder: dict[str, Any], ctx: TemplateContext,
            tmpl: dict[str, Any], boundary: str) -> dict[str, Any] | None:
        """A Succeeded node carrying the cached outputs when the cache holds a valid entry (Argo's
        memoization hit: nothing runs), else None."""
        entry = lookup(self.state.store, self.state.namespace, memo)
        if entry is None:
            return None
        node = self.state.init_node(node_name, node_type(tmpl), display, ctx, tmpl, holder, boundary, "Succeeded")
        if tmpl.get("inputs"):
            node["inputs"] = tmpl["inputs"]
        if entry.get("outputs"):
            node["outputs"] = copy.deepcopy(entry["outputs"])
        node["memoizationStatus"] = memo.status(True)
        return node

    @staticmethod
    def ran(node: dict[str, Any] | None, memo: Memo) -> dict[str, Any] | None:
        """Mark ``node`` (started by the template) as a memoization miss."""
        if node is not None:
            node.setdefault("memoizationStatus", memo.status(False))
        return node

    def save_succeeded(self) -> None:
        """Save the outputs of every succeeded miss whose entry is not in its cache yet (an entry
        written after the node finished, e.g. by another workflow, is left alone)."""
        for node in self.state.nodes.values():
            status = node.get("memoizationStatus")
            if not isinstance(status, dict) or status.get("hit") or node.get("phase") != "Succeeded":
                continue
            memo = Memo(str(status.get("key")), str(status.get("cacheName")), None)
            entry = lookup(self.state.store, self.state.namespace, memo)
            if entry is not None:
                if saved_by(self.state.store, self.state.namespace, memo) == node["id"]:
                    continue
                written, finished = parse_time(entry.get("creationTimestamp")), parse_time(node.get("finishedAt"))
                if written is not None and finished is not None and written >= finished:
                    continue
            save(self.state.store, self.state.namespace, memo, str(node["id"]), node.get("outputs") or {})
