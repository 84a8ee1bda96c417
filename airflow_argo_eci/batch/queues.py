"""``JobQueue``: a batch job queue as Argo runs it -- a workflow priority and a ConfigMap-backed semaphore.

A batch system's job queue orders the jobs submitted to it and caps how many run at once. Argo has
both pieces: ``spec.priority`` orders workflows (and the waiters of a lock), and a template-level
``synchronization.semaphores`` entry (``configMapKeyRef``) caps how many nodes of the templates
that name it run together, across every workflow of the namespace, the limit read from a ConfigMap
key. :meth:`JobQueue.apply_to` puts the queue's priority on a workflow and its semaphore on every
template that runs a pod, so two workflows on one queue never run more than ``max_concurrent``
job pods together; :meth:`JobQueue.config_map` is the ConfigMap holding the limit and
:meth:`JobQueue.ensure` creates or updates it. Pure: no Airflow, no HTTP of its own.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.workflows import LABEL_PREFIX

__all__ = ["CONFIG_MAP_PREFIX", "LABEL_QUEUE", "LIMIT_KEY", "POD_TEMPLATE_TYPES", "JobQueue"]

#: the ConfigMap key holding a queue's limit (its ``max_concurrent``)
LIMIT_KEY = "limit"
#: a queue's ConfigMap is named this prefix + the queue's name
CONFIG_MAP_PREFIX = "batch-queue-"
#: the label naming the queue, on its ConfigMap and on the workflows it is applied to
LABEL_QUEUE = LABEL_PREFIX + "batch-queue"
#: the template types whose node runs a pod (each holds a slot of the queue while it runs)
POD_TEMPLATE_TYPES = ("container", "script", "containerSet", "resource", "data")
#: a DNS-1123 label: lower-case alphanumerics and ``-``, starting and ending alphanumeric, <= 63
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class ConfigMapWriter(Protocol):
    """What :meth:`JobQueue.ensure` writes through: the cluster hook's reader
    (:class:`~airflow_argo_eci.hooks.cluster.ClusterReader`)."""

    def apply_config_map(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create-or-update the ConfigMap ``body`` in ``namespace``."""
        ...


@dataclass(frozen=True)
class JobQueue:
    """A job queue: the workflows submitted to it run with ``priority`` (higher first, Argo's
    ``spec.priority``), and at most ``max_concurrent`` of their job pods run at once, over every
    workflow on the queue in the namespace (None: no cap).

    :param name: the queue's name, a DNS-1123 label (its ConfigMap is ``batch-queue-<name>``)
    :param priority: the workflows' ``spec.priority``; also orders the waiters of the semaphore
    :param max_concurrent: the most job pods running together (>= 1), or None for no cap
    """

    name: str
    priority: int = 0
    max_concurrent: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _DNS_LABEL.match(self.name):
            raise WorkflowSpecError(
                f"job queue name {self.name!r} must be a DNS-1123 label: lower-case letters, digits and '-', "
                "starting and ending with a letter or digit, at most 63 characters")
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise WorkflowSpecError(f"job queue {self.name}: priority must be an int (got {self.priority!r})")
        limit = self.max_concurrent
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise WorkflowSpecError(
                f"job queue {self.name}: max_concurrent must be an int >= 1, or None for no cap (got {limit!r})")

    @property
    def config_map_name(self) -> str:
        """The name of the ConfigMap holding the queue's limit."""
        return CONFIG_MAP_PREFIX + self.name

    def semaphore(self) -> dict[str, Any]:
        """The ``synchronization.semaphores`` entry of the queue's job templates."""
        return {"configMapKeyRef": {"name": self.config_map_name, "key": LIMIT_KEY}}

    def apply_to(self, workflow: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``workflow`` on this queue: ``spec.priority``, the queue's label, and (with
        ``max_concurrent``) the queue's semaphore on every template that runs a pod. Applying twice
        adds nothing more. A DAG task or step calling a template by ``templateRef`` fails with
        :class:`WorkflowSpecError` under a cap: its template lives in a WorkflowTemplate this
        workflow cannot put a semaphore on."""
        wf = copy.deepcopy(dict(workflow))
        spec = wf.setdefault("spec", {})
        spec["priority"] = self.priority
        meta = wf.setdefault("metadata", {})
        meta["labels"] = {**(meta.get("labels") or {}), LABEL_QUEUE: self.name}
        if self.max_concurrent is None:
            return wf
        entry = self.semaphore()
        for tmpl in spec.get("templates") or []:
            self._check_no_template_refs(tmpl)
            if not any(tmpl.get(kind) is not None for kind in POD_TEMPLATE_TYPES):
                continue
            sync = tmpl.setdefault("synchronization", {})
            semaphores = sync.setdefault("semaphores", [])
            if entry not in semaphores and sync.get("semaphore") != entry:
                semaphores.append(copy.deepcopy(entry))
        return wf

    def _check_no_template_refs(self, tmpl: Mapping[str, Any]) -> None:
        calls = list((tmpl.get("dag") or {}).get("tasks") or [])
        for group in tmpl.get("steps") or []:
            calls.extend(group if isinstance(group, list) else [group])
        for call in calls:
            if isinstance(call, Mapping) and call.get("templateRef"):
                ref = call["templateRef"]
                raise WorkflowSpecError(
                    f"job queue {self.name}: {tmpl.get('name')}.{call.get('name')} runs "
                    f"{ref.get('name') if isinstance(ref, Mapping) else ref!r} by templateRef, whose pods the "
                    f"queue's max_concurrent={self.max_concurrent} cannot cap (the semaphore goes on the "
                    "template, which lives in the WorkflowTemplate): pass the JobDefinition itself")

    def config_map(self) -> dict[str, Any]:
        """The ConfigMap holding the queue's limit (``data.limit``); :class:`WorkflowSpecError` for a
        queue without ``max_concurrent`` (it needs none)."""
        if self.max_concurrent is None:
            raise WorkflowSpecError(f"job queue {self.name} has no max_concurrent, so it needs no ConfigMap")
        return {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": self.config_map_name, "labels": {LABEL_QUEUE: self.name}},
            "data": {LIMIT_KEY: str(self.max_concurrent)},
        }

    def ensure(self, hook: Any, namespace: str) -> None:
        """Create or update the queue's ConfigMap in ``namespace`` (nothing without
        ``max_concurrent``; an equal ConfigMap is not written again). ``hook`` is a
        :class:`~airflow_argo_eci.hooks.cluster.ClusterHook` or its reader; over an ``argo_server``
        connection it raises :class:`WorkflowSpecError` saying an admin must create the ConfigMap."""
        if self.max_concurrent is None:
            return
        writer: ConfigMapWriter = hook.get_conn() if hasattr(hook, "get_conn") else hook
        writer.apply_config_map(namespace, self.config_map())
