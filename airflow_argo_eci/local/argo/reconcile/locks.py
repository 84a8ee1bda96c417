"""Template-level ``synchronization`` in a reconcile pass: :class:`TemplateLocks` takes a template's
mutexes and semaphores for its node, keeps a waiting node Pending with Argo's message, and
releases what a node holds once it is complete."""

from __future__ import annotations

import re
from typing import Any

from airflow_argo_eci.local.argo.reconcile.state import PassState
from airflow_argo_eci.local.argo.synchronization import LockTable, locks_of, priority_of, record, release
from airflow_argo_eci.local.argo.templates import TemplateContext, node_type, template_type

#: the message of a node that waits for a lock (Argo's wording)
_WAITING = re.compile(r"^Waiting for .+ lock\. Lock status: \d+/\d+$")


class TemplateLocks:
    """The locks of the templates one pass runs; the lock table is read once per pass."""

    def __init__(self, state: PassState) -> None:
        self.state = state
        self._table: LockTable | None = None

    def _lock_table(self) -> LockTable:
        if self._table is None:
            released = self.sweep()
            self._table = LockTable.read(self.state.store)
            wf_key = f"{self.state.namespace}/{self.state.name}"
            for holders in self._table.holders.values():
                holders[:] = [h for h in holders if h not in {f"{wf_key}/{r}" for r in released}]
        return self._table

    def sweep(self) -> set[str]:
        """Release the locks of this workflow's nodes that are complete; returns their ids."""
        sync = self.state.status.get("synchronization")
        if not isinstance(sync, dict):
            return set()
        held = {str(e.get("holder")) for e in (sync.get("mutex") or {}).get("holding") or []}
        for entry in (sync.get("semaphore") or {}).get("holding") or []:
            held.update(str(h) for h in entry.get("holders") or [])
        done = {h for h in held if h != self.state.name and self.state.fulfilled(self.state.nodes.get(h))}
        for holder in done:
            release(self.state.status, holder)
        return done

    def take(self, node_id: str, tmpl: dict[str, Any]) -> str:
        """Take every lock of ``tmpl.synchronization`` for node ``node_id``: "" when the node holds
        them all, else the waiting message (the node waits, recorded in ``status.synchronization``).
        :class:`SpecError` naming the field for a bad lock."""
        locks = locks_of(self.state.store, self.state.namespace, tmpl["synchronization"],
                         f"templates.{tmpl.get('name', '')}.synchronization")
        table = self._lock_table()
        wf_key = f"{self.state.namespace}/{self.state.name}"
        who = wf_key if node_id == self.state.name else f"{wf_key}/{node_id}"  # the entry node's id is the name
        created = str(self.state.wf["metadata"].get("creationTimestamp", ""))
        priority = priority_of(self.state.spec)
        blocked = [lock for lock in locks if not table.may_take(lock, who, wf_key, priority, created)]
        if blocked:
            for lock in blocked:
                record(self.state.status, lock, node_id, holding=False, current=table.holders.get(lock.key, []))
            self.state.requeue(1.0)
            return table.waiting_message(blocked[0])
        for lock in locks:
            table.take(lock, who)
            record(self.state.status, lock, node_id, holding=True, current=[])
        return ""

    def waiting_node(self, node: dict[str, Any] | None, node_name: str, display: str, holder: dict[str, Any],
                     ctx: TemplateContext, tmpl: dict[str, Any], boundary: str, message: str
                     ) -> dict[str, Any] | None:
        """The node of a template that waits for a lock: Pending with the waiting message. A pod
        template gets no node until it holds its locks (None: not started, as under a parallelism
        limit), since a Pending pod node without its pod counts as a deleted pod; its wait shows in
        ``status.synchronization``."""
        if template_type(tmpl) in ("container", "script") and (node is None or node.get("type") == "Pod"):
            return node
        if node is None:
            node = self.state.init_node(node_name, node_type(tmpl), display, ctx, tmpl, holder, boundary,
                                        "Pending", message)
        else:
            self.state.mark(node, node.get("phase", "Pending"), message)
        return node

    def started(self, node: dict[str, Any] | None) -> dict[str, Any] | None:
        """``node`` once its locks are taken: a node that only waited (no pod, no children yet) is
        dropped, so the template starts it afresh; None then."""
        if node is not None and node.get("phase") == "Pending" and _WAITING.match(str(node.get("message", ""))) \
                and not node.get("children"):
            del self.state.nodes[node["id"]]
            return None
        return node

    def release(self, node: dict[str, Any]) -> None:
        """Release what the complete ``node`` holds (Argo releases a template's locks when its node
        ends)."""
        if self.state.status.get("synchronization"):
            release(self.state.status, str(node.get("id")))
