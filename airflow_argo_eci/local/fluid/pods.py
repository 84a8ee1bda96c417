"""The Pod objects of Fluid's workloads: a runtime's master and cache workers, and a DataLoad's
loader. They run no process (the controller itself copies and serves the cache); they are
Running on the node the local cluster records (``virtual-kubelet`` for ECI-labelled pods, else
``local``), carry the pod metadata their owner asks for, and end as the kubelet would end them."""

from __future__ import annotations

import secrets
import string
from typing import Any

from airflow_argo_eci import fluid_conventions as fluid
from airflow_argo_eci.conventions import now_rfc3339
from airflow_argo_eci.eci import LABEL_ECI
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.owner_gc import owned_by
from airflow_argo_eci.local.api.resources import PODS, ResourceType
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.fluid.datasets import LABEL_DATASET_ID, Runtime, create_quietly, dataset_id

#: on a DataLoad's loader pods: the DataLoad's name
LABEL_DATALOAD = "fluid.io/dataload"


def _pod_metadata(runtime: Runtime, role: str) -> tuple[dict[str, str], dict[str, str]]:
    """Labels and annotations of a runtime pod: Fluid's labels, ``spec.podMetadata``, then the
    role's ``spec.<role>.podMetadata`` (the later wins)."""
    spec = runtime.obj.get("spec") or {}
    meta = runtime.obj["metadata"]
    app = runtime.app
    labels = {"app": app, "role": f"{app}-{role}", "release": meta["name"],
              LABEL_DATASET_ID: dataset_id(meta["namespace"], meta["name"])}
    annotations: dict[str, str] = {}
    for source in (spec.get("podMetadata"), (spec.get(role) or {}).get("podMetadata")):
        labels.update({str(k): str(v) for k, v in ((source or {}).get("labels") or {}).items()})
        annotations.update({str(k): str(v) for k, v in ((source or {}).get("annotations") or {}).items()})
    return labels, annotations


def _node(labels: dict[str, str]) -> str:
    return "virtual-kubelet" if labels.get(LABEL_ECI) == "true" else "local"


def running_pod(name: str, namespace: str, labels: dict[str, str], annotations: dict[str, str],
                owner: dict[str, Any], container: str, image: str, restart_policy: str) -> dict[str, Any]:
    """A Pod object that is Running (and Ready) on its node, owned by ``owner``."""
    now = now_rfc3339()
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations,
                     "ownerReferences": [{**owner, "controller": True, "blockOwnerDeletion": True}]},
        "spec": {"containers": [{"name": container, "image": image}], "nodeName": _node(labels),
                 "restartPolicy": restart_policy},
        "status": {"phase": "Running", "hostIP": "127.0.0.1", "podIP": "127.0.0.1", "startTime": now,
                   "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                                  for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
                   "containerStatuses": [{"name": container, "image": image, "imageID": f"local://{image}",
                                          "ready": True, "started": True, "restartCount": 0,
                                          "state": {"running": {"startedAt": now}}}]},
    }


def runtime_pods(runtime: Runtime) -> list[dict[str, Any]]:
    """The runtime's master and cache-worker Pod objects (``<prefix>-master-0``,
    ``<prefix>-worker-<i>`` for ``spec.replicas`` workers)."""
    meta = runtime.obj["metadata"]
    replicas = (runtime.obj.get("spec") or {}).get("replicas", 1)
    owner = {"apiVersion": fluid.API_VERSION, "kind": runtime.kind, "name": meta["name"], "uid": meta.get("uid", "")}
    pods = []
    for role, count in (("master", 1), ("worker", replicas if isinstance(replicas, int) else 1)):
        labels, annotations = _pod_metadata(runtime, role)
        for index in range(count):
            pods.append(running_pod(f"{runtime.pod_prefix()}-{role}-{index}", meta["namespace"], labels,
                                    annotations, owner, f"{runtime.app}-{role}", f"local/fluid-{runtime.type}-{role}",
                                    "Always"))
    return pods


def loader_pod(dataload: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The pod of a DataLoad's loader job (``<name>-loader-job-<5 chars>``), with the DataLoad's
    ``spec.podMetadata``."""
    meta = dataload["metadata"]
    source = (dataload.get("spec") or {}).get("podMetadata") or {}
    job = f"{meta['name']}-loader-job"
    labels = {LABEL_DATALOAD: meta["name"], "job-name": job, "role": "dataload-pod",
              LABEL_DATASET_ID: dataset_id(meta["namespace"], dataset),
              **{str(k): str(v) for k, v in (source.get("labels") or {}).items()}}
    annotations = {str(k): str(v) for k, v in (source.get("annotations") or {}).items()}
    owner = {"apiVersion": fluid.API_VERSION, "kind": fluid.DATALOAD_KIND, "name": meta["name"],
             "uid": meta.get("uid", "")}
    suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))
    return running_pod(f"{job}-{suffix}", meta["namespace"], labels, annotations, owner, "dataloader",
                       "local/fluid-dataloader", "Never")


def loader_pods(store: Store, namespace: str, dataload: str) -> list[dict[str, Any]]:
    """The loader pods of a DataLoad."""
    return store.list(PODS, namespace, label_selector=f"{LABEL_DATALOAD}={dataload}")[0]


def ensure_runtime_pods(store: Store, runtime: Runtime) -> None:
    """Create the runtime's pods that are missing and delete workers beyond ``replicas``."""
    wanted = {p["metadata"]["name"]: p for p in runtime_pods(runtime)}
    meta = runtime.obj["metadata"]
    existing, _, _ = store.list(PODS, meta["namespace"], label_selector=f"release={meta['name']},"
                                f"{LABEL_DATASET_ID}={dataset_id(meta['namespace'], meta['name'])}")
    have = {p["metadata"]["name"] for p in existing}
    for name, pod in wanted.items():
        if name not in have:
            create_quietly(store, PODS, meta["namespace"], pod)
    for name in have - set(wanted):
        delete_quietly(store, PODS, meta["namespace"], name)


def release_runtime_pods(store: Store, namespace: str, name: str, uid: str) -> None:
    """Delete the pods of the runtime ``name`` that its ``uid`` owns (a successor of the same name
    keeps its own)."""
    pods, _, _ = store.list(PODS, namespace, label_selector=f"release={name},"
                            f"{LABEL_DATASET_ID}={dataset_id(namespace, name)}")
    for pod in pods:
        if owned_by(pod, uid):
            delete_quietly(store, PODS, namespace, pod["metadata"]["name"])


def delete_quietly(store: Store, rt: ResourceType, namespace: str | None, name: str) -> None:
    """Delete an object at once (no grace period: these pods run no process), ignoring that it is
    already gone."""
    try:
        store.delete(rt, namespace, name, grace_period_seconds=0)
    except ApiError as exc:
        if exc.code != 404:
            raise


def is_fluid_pod(pod: dict[str, Any]) -> bool:
    """Whether a Pod is one of this module's (a runtime's or a loader's)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(LABEL_DATASET_ID)) and (bool(labels.get(LABEL_DATALOAD)) or (
        bool(labels.get("release")) and str(labels.get("role", "")).endswith(("-master", "-worker"))))


def stop_pod(store: Store, namespace: str, name: str, *, failed: bool = False, only_deleting: bool = True) -> None:
    """End a Running pod of this module as the kubelet would when its process ends: ``Succeeded``
    (``Failed`` with ``failed``); with ``only_deleting`` only a pod being deleted gracefully, which
    the store then removes."""
    def mutate(pod: dict[str, Any]) -> None:
        if (pod.get("status") or {}).get("phase") != "Running" or (
                only_deleting and not pod["metadata"].get("deletionTimestamp")):
            return
        now = now_rfc3339()
        pod["status"]["phase"] = "Failed" if failed else "Succeeded"
        for cs in pod["status"].get("containerStatuses") or []:
            cs.update(ready=False, started=False, state={"terminated": {
                "exitCode": 1 if failed else 0, "reason": "Error" if failed else "Completed",
                "startedAt": pod["status"].get("startTime", now), "finishedAt": now}})

    try:
        store.update(PODS, namespace, name, mutate)
    except ApiError as exc:
        if exc.code != 404:
            raise
