"""``ObjectRef``: which namespaced Kubernetes object (a Workflow, a DataLoad) a task owns, fenced by uid."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ObjectRef"]


@dataclass(frozen=True)
class ObjectRef:
    """Which object a task owns; ``uid`` fences it against a same-named successor ('' fences nothing)."""

    name: str
    namespace: str
    uid: str

    def as_dict(self) -> dict[str, str]:
        """``{"name", "namespace", "uid"}`` (the ``ids`` of a trigger event, an XCom value)."""
        return {"name": self.name, "namespace": self.namespace, "uid": self.uid}

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        """The reference to ``obj`` (as the API returned it: ``metadata.name`` / ``namespace`` / ``uid``)."""
        meta = obj.get("metadata") or {}
        return cls(str(meta["name"]), str(meta.get("namespace", "")), str(meta.get("uid", "")))

    @classmethod
    def from_workflow(cls, workflow: Mapping[str, Any]) -> ObjectRef:
        """:meth:`of` a Workflow (the name the workflow lifecycle's callers use)."""
        return cls.of(workflow)
