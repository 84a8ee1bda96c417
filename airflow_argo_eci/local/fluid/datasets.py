"""Datasets and their runtimes: validation, binding (``ufsTotal``, ``fileNum``, the PVC and PV of
the dataset's name, the runtime's pods and phases) and the status Fluid writes for each."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from airflow_argo_eci import fluid_conventions as fluid
from airflow_argo_eci.conventions import now_rfc3339
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.owner_gc import owned_by
from airflow_argo_eci.local.api.resources import (
    DATASETS,
    FLUID_RUNTIMES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    ResourceType,
)
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.fluid.cache import TieredStore
from airflow_argo_eci.local.fluid.ufs import UfsFile

#: on the PVC, PV and pods of a dataset: ``<namespace>-<name>`` (Fluid's label)
LABEL_DATASET_ID = "fluid.io/dataset-id"
#: Fluid's annotation on the PVC it creates
ANNOTATION_CREATED_BY = "CreatedBy"
CREATED_BY_FLUID = "fluid"
#: the storage class and CSI driver of Fluid's volumes
STORAGE_CLASS = "fluid"
CSI_DRIVER = "fuse.csi.fluid.io"
#: the capacity Fluid gives its PVs and PVCs
VOLUME_CAPACITY = "100Pi"
ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")


@dataclass(frozen=True)
class Runtime:
    """The runtime object of a dataset and its kind."""

    kind: str
    rt: ResourceType
    obj: dict[str, Any]

    @property
    def type(self) -> str:
        """Fluid's runtime type (``jindo``, ``alluxio``, ...)."""
        return fluid.RUNTIME_TYPES[self.kind]

    @property
    def app(self) -> str:
        """The ``app`` label of its pods (``jindofs``, ``alluxio``, ``juicefs``, ``thin``)."""
        return "jindofs" if self.kind == fluid.JINDO_RUNTIME_KIND else self.type

    def pod_prefix(self) -> str:
        """The prefix of its pod names (``<name>-jindofs`` for Jindo, ``<name>`` otherwise)."""
        name = self.obj["metadata"]["name"]
        return f"{name}-jindofs" if self.kind == fluid.JINDO_RUNTIME_KIND else name


def dataset_id(namespace: str, name: str) -> str:
    """Fluid's dataset id, the name of the local PV: ``<namespace>-<name>``."""
    return f"{namespace}-{name}"


def find_runtime(store: Store, namespace: str, name: str) -> Runtime | None:
    """The runtime bearing the dataset's name in its namespace (the first kind that has one)."""
    for kind, rt in FLUID_RUNTIMES.items():
        try:
            return Runtime(kind, rt, store.get(rt, namespace, name))
        except ApiError as exc:
            if exc.code != 404:
                raise
    return None


def check_dataset_spec(dataset: dict[str, Any]) -> None:
    """The checks beyond the mounts: ``accessModes`` and ``runtimes[]`` kinds; raises
    :class:`SpecFieldError` naming the field."""
    from airflow_argo_eci.local.fluid.units import SpecFieldError

    spec = dataset.get("spec") or {}
    for index, mode in enumerate(spec.get("accessModes") or []):
        if mode not in ACCESS_MODES:
            raise SpecFieldError(f"spec.accessModes[{index}]: {mode!r} is not one of {', '.join(ACCESS_MODES)}")
    known = set(fluid.RUNTIME_TYPES.values())
    for index, entry in enumerate(spec.get("runtimes") or []):
        kind = (entry or {}).get("type") or (entry or {}).get("kind")
        if kind and str(kind).lower() not in known and kind not in fluid.RUNTIME_PLURALS:
            raise SpecFieldError(f"spec.runtimes[{index}].type: {kind!r} is not a runtime Fluid has "
                                 f"({', '.join(sorted(fluid.RUNTIME_PLURALS))})")


def condition(ctype: str, status: str, reason: str, message: str, previous: list[Any] | None) -> list[dict[str, Any]]:
    """A one-entry ``conditions`` list, keeping ``lastTransitionTime`` when nothing changed."""
    now = now_rfc3339()
    for old in previous or []:
        if isinstance(old, dict) and (old.get("type"), old.get("status"), old.get("reason"), old.get("message")) \
                == (ctype, status, reason, message):
            return [old]
    return [{"type": ctype, "status": status, "reason": reason, "message": message,
             "lastUpdateTime": now, "lastTransitionTime": now}]


def unbound_status(old: dict[str, Any], phase: str, reason: str, message: str) -> dict[str, Any]:
    """The status of a dataset that is not bound: ``phase`` (``Failed`` / ``NotBound``) and why."""
    status = {k: v for k, v in old.items() if k in ("ufsTotal", "fileNum")}
    status.update(phase=phase, conditions=condition(fluid.DATASET_CONDITION_NOT_READY, "True", reason, message,
                                                     old.get("conditions")))
    return status


def bound_status(old: dict[str, Any], dataset: dict[str, Any], runtime: Runtime, files: list[UfsFile],
                 cache_states: dict[str, str]) -> dict[str, Any]:
    """The status of a bound dataset as Fluid writes it."""
    from airflow_argo_eci.local.fluid.units import bytes_size

    status = {k: v for k, v in old.items() if k in ("operationRef", "dataLoadRef")}
    status.update({
        "phase": fluid.DATASET_BOUND,
        "ufsTotal": bytes_size(sum(f.size for f in files)),
        "fileNum": str(len(files)),
        "cacheStates": cache_states,
        "conditions": condition(fluid.DATASET_CONDITION_READY, "True", "DatasetReady",
                                "The ddc runtime is ready.", old.get("conditions")),
        "runtimes": [{"name": runtime.obj["metadata"]["name"], "namespace": runtime.obj["metadata"]["namespace"],
                      "category": "Accelerate", "type": runtime.type, "masterReplicas": 1}],
        "mounts": copy.deepcopy((dataset.get("spec") or {}).get("mounts") or []),
        "hcfs": {"endpoint": "", "underlayerFileSystemVersion": ""},
    })
    return status


def ensure_volume(store: Store, dataset: dict[str, Any]) -> None:
    """Create the dataset's PVC (its name, ``Bound``) and PV (``<namespace>-<name>``) once."""
    meta = dataset["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    pv_name = dataset_id(namespace, name)
    modes = list((dataset.get("spec") or {}).get("accessModes") or ["ReadOnlyMany"])
    labels = {LABEL_DATASET_ID: pv_name, f"fluid.io/s-{namespace}-{name}": "true"}
    owner = [{"apiVersion": fluid.API_VERSION, "kind": fluid.DATASET_KIND, "name": name, "uid": meta.get("uid", ""),
              "controller": True, "blockOwnerDeletion": True}]
    pvc = {"metadata": {"name": name, "namespace": namespace, "labels": labels, "ownerReferences": owner,
                        "annotations": {ANNOTATION_CREATED_BY: CREATED_BY_FLUID}},
           "spec": {"accessModes": modes, "storageClassName": STORAGE_CLASS, "volumeMode": "Filesystem",
                    "volumeName": pv_name, "resources": {"requests": {"storage": VOLUME_CAPACITY}}},
           "status": {"phase": "Bound", "accessModes": modes, "capacity": {"storage": VOLUME_CAPACITY}}}
    pv = {"metadata": {"name": pv_name, "labels": labels, "annotations": {ANNOTATION_CREATED_BY: CREATED_BY_FLUID}},
          "spec": {"accessModes": modes, "capacity": {"storage": VOLUME_CAPACITY}, "storageClassName": STORAGE_CLASS,
                   "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem",
                   "claimRef": {"kind": "PersistentVolumeClaim", "namespace": namespace, "name": name},
                   "csi": {"driver": CSI_DRIVER, "volumeHandle": pv_name,
                           "volumeAttributes": {"fluid_path": f"/runtime-mnt/{namespace}/{name}/fuse",
                                                "mount_type": "fuse", "runtime_name": name,
                                                "runtime_namespace": namespace}}},
          "status": {"phase": "Bound"}}
    create_quietly(store, PERSISTENT_VOLUMES, None, pv)
    create_quietly(store, PERSISTENT_VOLUME_CLAIMS, namespace, pvc)
    # a predecessor's PVC (a dataset of this name deleted, its deletion not handled yet) is the
    # successor's from now on: the late release of the predecessor's leaves it alone
    uid = str(meta.get("uid", ""))

    def adoptable(current: dict[str, Any]) -> bool:
        created_by = (current["metadata"].get("annotations") or {}).get(ANNOTATION_CREATED_BY)
        return created_by == CREATED_BY_FLUID and bool(uid) and not owned_by(current, uid)

    def adopt(current: dict[str, Any]) -> None:
        if adoptable(current):
            current["metadata"]["ownerReferences"] = owner

    existing = store.find(PERSISTENT_VOLUME_CLAIMS, namespace, name)
    if existing is not None and adoptable(existing):
        try:
            store.update(PERSISTENT_VOLUME_CLAIMS, namespace, name, adopt)
        except ApiError as exc:
            if exc.code != 404:
                raise


def release_volume(store: Store, namespace: str, name: str, dataset_uid: str | None = None) -> None:
    """Delete the dataset's PVC and PV (those Fluid created: the ``CreatedBy`` annotation). With
    ``dataset_uid`` (a deleted dataset's), a successor of the same name keeps its own: the PVC goes
    only if that uid owns it, the PV (named for the dataset, owned by none) only if no dataset of
    the name exists."""
    successor = dataset_uid is not None and store.find(DATASETS, namespace, name) is not None
    for rt, ns, obj_name in ((PERSISTENT_VOLUME_CLAIMS, namespace, name),
                             (PERSISTENT_VOLUMES, None, dataset_id(namespace, name))):
        try:
            obj = store.get(rt, ns, obj_name)
            if (obj["metadata"].get("annotations") or {}).get(ANNOTATION_CREATED_BY) != CREATED_BY_FLUID:
                continue
            if dataset_uid is not None and (not owned_by(obj, dataset_uid) if rt is PERSISTENT_VOLUME_CLAIMS
                                            else successor):
                continue
            store.delete(rt, ns, obj_name)
        except ApiError as exc:
            if exc.code != 404:
                raise


def create_quietly(store: Store, rt: ResourceType, namespace: str | None, obj: dict[str, Any]) -> None:
    """Create an object unless one of its name exists."""
    try:
        store.create(rt, namespace, obj)
    except ApiError as exc:
        if exc.code != 409:
            raise


def runtime_status(old: dict[str, Any], runtime: Runtime, level: TieredStore, cache_states: dict[str, str],
                   setup_seconds: float) -> dict[str, Any]:
    """The runtime's status once its pods exist: every phase ``Ready``, the pod counts, cacheStates."""
    from airflow_argo_eci.local.fluid.units import go_duration

    workers = level.replicas
    app = runtime.app
    status = dict(old)
    status.update({
        "masterPhase": fluid.RUNTIME_READY, "workerPhase": fluid.RUNTIME_READY, "fusePhase": fluid.RUNTIME_READY,
        "masterNumberReady": 1, "desiredMasterNumberScheduled": 1, "currentMasterNumberScheduled": 1,
        "desiredWorkerNumberScheduled": workers, "currentWorkerNumberScheduled": workers,
        "workerNumberReady": workers, "workerNumberAvailable": workers, "workerNumberUnavailable": 0,
        "desiredFuseNumberScheduled": 0, "currentFuseNumberScheduled": 0, "fuseNumberReady": 0,
        "cacheStates": cache_states,
        "selector": f"app={app},release={runtime.obj['metadata']['name']},role={app}-worker",
        "valueFile": f"{runtime.obj['metadata']['name']}-{runtime.type}-values",
        "mounts": copy.deepcopy(old.get("mounts") or []),
    })
    status.setdefault("setupDuration", go_duration(setup_seconds))
    if not any(c.get("type") == "WorkersReady" for c in status.get("conditions") or [] if isinstance(c, dict)):
        now = now_rfc3339()
        status["conditions"] = [{"type": t, "status": "True", "reason": "Ready", "message": f"The {r} is ready.",
                                 "lastProbeTime": now, "lastTransitionTime": now}
                                for t, r in (("MasterInitialized", "master"), ("MasterReady", "master"),
                                             ("WorkersInitialized", "workers"), ("WorkersReady", "workers"),
                                             ("FusesInitialized", "fuses"), ("FusesReady", "fuses"))]
    return status
