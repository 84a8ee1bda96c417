"""Argo's artifact-GC finalizer: a workflow whose artifacts are collected ``OnWorkflowDeletion`` gets
``workflows.argoproj.io/artifact-gc``, so deleting it marks it (``deletionTimestamp``), the
collection runs, and only then the finalizer goes and the workflow with it.

As in Argo, a collection that fails leaves the finalizer in place and shows the failures as an
``ArtifactGCError`` condition on the workflow (the user fixes the cause and removes the finalizer by
hand), unless the workflow's ``artifactGC.forceFinalizerRemoval`` is true.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from airflow_argo_eci.conventions import FINALIZER_ARTIFACT_GC
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import WORKFLOWS
from airflow_argo_eci.local.api.store import Store

log = logging.getLogger(__name__)

ON_DELETION = "OnWorkflowDeletion"

#: (namespace, status, workflow strategy, strategy) -> (deleted (node id, index) pairs, errors, found)
Collect = Callable[[str, dict[str, Any], str, str], tuple[list[tuple[str, int]], list[str], bool]]


def _gc_spec(wf: dict[str, Any]) -> dict[str, Any]:
    spec = wf.get("spec") or {}
    stored = (wf.get("status") or {}).get("storedWorkflowTemplateSpec") or {}
    gc = spec.get("artifactGC") or stored.get("artifactGC") or {}
    return gc if isinstance(gc, dict) else {}


def workflow_strategy(wf: dict[str, Any]) -> str:
    """The workflow-level ``artifactGC.strategy`` ("" when unset)."""
    return str(_gc_spec(wf).get("strategy") or "")


def _templates(wf: dict[str, Any]) -> list[Any]:
    spec = wf.get("spec") or {}
    stored = (wf.get("status") or {}).get("storedWorkflowTemplateSpec") or {}
    return list(spec.get("templates") or []) + list(stored.get("templates") or [])


def collects_on_deletion(wf: dict[str, Any]) -> bool:
    """Whether any artifact of ``wf`` is collected ``OnWorkflowDeletion`` (its own strategy, else the
    workflow's)."""
    default = workflow_strategy(wf)
    for tmpl in _templates(wf):
        if not isinstance(tmpl, dict):
            continue
        for art in ((tmpl.get("outputs") or {}).get("artifacts") or []):
            if not isinstance(art, dict):
                continue
            own = art.get("artifactGC") if isinstance(art.get("artifactGC"), dict) else {}
            if str((own or {}).get("strategy") or default) == ON_DELETION:
                return True
    return default == ON_DELETION


def deletion_gc_done(wf: dict[str, Any]) -> bool:
    """Whether the ``OnWorkflowDeletion`` collection of ``wf`` already ran (by the finalizer)."""
    gc_status = (wf.get("status") or {}).get("artifactGCStatus") or {}
    return bool((gc_status.get("strategiesProcessed") or {}).get(ON_DELETION))


class ArtifactGCFinalizer:
    """Adds the finalizer to workflows that need it and runs the collection when one is deleted.

    ``observe`` is called with every workflow change (a store listener); ``collect`` deletes the
    artifacts; ``track`` receives each collection thread (so callers can wait for them).
    """

    def __init__(self, store: Store, collect: Collect, track: Callable[[threading.Thread], None]) -> None:
        self.store = store
        self.collect = collect
        self.track = track
        self._lock = threading.Lock()
        self._running: set[str] = set()

    def observe(self, event: str, wf: dict[str, Any]) -> None:
        """React to one workflow change (ADDED/MODIFIED); never raises."""
        if event == "DELETED":
            return
        meta = wf.get("metadata") or {}
        finalizers = meta.get("finalizers") or []
        try:
            if meta.get("deletionTimestamp"):
                if FINALIZER_ARTIFACT_GC in finalizers and not deletion_gc_done(wf):
                    self._start(wf)
            elif FINALIZER_ARTIFACT_GC not in finalizers and collects_on_deletion(wf) and not deletion_gc_done(wf):
                self._add_finalizer(meta)
        except Exception:  # a listener must not fail the write that triggered it
            log.exception("artifact GC finalizer of workflow %s/%s", meta.get("namespace"), meta.get("name"))

    def resume(self) -> None:
        """Start the collection of workflows deleted while the cluster was down."""
        items, _, _ = self.store.list(WORKFLOWS)
        for wf in items:
            self.observe("MODIFIED", wf)

    def _add_finalizer(self, meta: dict[str, Any]) -> None:
        uid = meta.get("uid")

        def mutate(obj: dict[str, Any]) -> dict[str, Any] | None:
            current = obj["metadata"]
            if current.get("uid") != uid or current.get("deletionTimestamp"):
                return obj
            names = current.setdefault("finalizers", [])
            if FINALIZER_ARTIFACT_GC not in names:
                names.append(FINALIZER_ARTIFACT_GC)
            return None

        try:
            self.store.update(WORKFLOWS, meta.get("namespace"), str(meta.get("name")), mutate)
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _start(self, wf: dict[str, Any]) -> None:
        uid = str(wf["metadata"].get("uid"))
        with self._lock:
            if uid in self._running:
                return
            self._running.add(uid)
        thread = threading.Thread(target=self._run, args=(wf,), name="artifact-gc-finalizer", daemon=True)
        self.track(thread)
        thread.start()

    def _run(self, wf: dict[str, Any]) -> None:
        meta = wf["metadata"]
        namespace, name, uid = str(meta.get("namespace")), str(meta.get("name")), meta.get("uid")
        try:
            status = wf.get("status") or {}
            deleted, errors, _ = self.collect(namespace, status, workflow_strategy(wf), ON_DELETION)
            force = bool(_gc_spec(wf).get("forceFinalizerRemoval"))

            def mutate(obj: dict[str, Any]) -> dict[str, Any] | None:
                if obj["metadata"].get("uid") != uid:
                    return obj
                st = obj.setdefault("status", {})
                nodes = st.get("nodes") or {}
                for node_id, index in deleted:
                    arts = ((nodes.get(node_id) or {}).get("outputs") or {}).get("artifacts") or []
                    if index < len(arts) and isinstance(arts[index], dict):
                        arts[index]["deleted"] = True
                st.setdefault("artifactGCStatus", {}).setdefault("strategiesProcessed", {})[ON_DELETION] = True
                if errors:
                    st.setdefault("conditions", []).append(
                        {"type": "ArtifactGCError", "status": "True", "message": "; ".join(errors)[:2000]})
                if not errors or force:
                    remaining = [f for f in obj["metadata"].get("finalizers") or [] if f != FINALIZER_ARTIFACT_GC]
                    obj["metadata"]["finalizers"] = remaining
                return None

            self.store.update(WORKFLOWS, namespace, name, mutate)
            for error in errors:
                log.warning("artifact GC of deleted workflow %s/%s: %s", namespace, name, error)
        except ApiError as exc:
            if exc.code != 404:
                log.warning("artifact GC finalizer of %s/%s: %s", namespace, name, exc)
        except Exception:
            log.exception("artifact GC finalizer of %s/%s", namespace, name)
        finally:
            with self._lock:
                self._running.discard(str(uid))
