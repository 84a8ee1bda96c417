"""Volumes of a workflow's pods: the pod spec's volumes (workflow, claim templates, template),
what each one holds for the runtime, and the workflow's ``volumeClaimTemplates`` claims and their GC."""

from __future__ import annotations

import base64
import binascii
import copy
import shutil
from typing import Any

from airflow_argo_eci.conventions import API_VERSION
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import CONFIGMAPS, PERSISTENT_VOLUME_CLAIMS, SECRETS
from airflow_argo_eci.local.argo.reconcile.state import PassState
from airflow_argo_eci.local.argo.templates import SpecError
from airflow_argo_eci.local.fluid.mounts import DatasetMountError, dataset_volume
from airflow_argo_eci.local.paths import UnsafeNameError
from airflow_argo_eci.local.runtime import CLAIM, EMPTY_DIR, FILES, PodVolume, VolumeMount

#: volume sources the local cluster gives pods
SUPPORTED_SOURCES = ("emptyDir", "persistentVolumeClaim", "configMap", "secret")
#: Kubernetes' default mode of ConfigMap and Secret volume files
DEFAULT_MODE = 0o644


class MissingClaimError(Exception):
    """A pod mounts a PersistentVolumeClaim that does not exist: it stays Pending (Kubernetes'
    scheduler message is ``str(self)``)."""

    def __init__(self, claim: str) -> None:
        super().__init__(f'persistentvolumeclaim "{claim}" not found')
        self.claim = claim


def claim_name(workflow: str, template: str) -> str:
    """The claim Argo creates for a ``volumeClaimTemplates`` entry: ``<workflow>-<template name>``."""
    return f"{workflow}-{template}"


def ensure_claims(state: PassState) -> None:
    """Create the workflow's ``volumeClaimTemplates`` claims (owned by the workflow) once, and
    record them in ``status.persistentVolumeClaims`` as Argo does."""
    templates = state.spec.get("volumeClaimTemplates") or []
    if not templates or state.status.get("persistentVolumeClaims"):
        return
    recorded: list[dict[str, Any]] = []
    for index, tmpl in enumerate(templates):
        meta = (tmpl or {}).get("metadata") or {}
        ref = meta.get("name")
        if not isinstance(ref, str) or not ref:
            raise SpecError(f"spec.volumeClaimTemplates[{index}].metadata.name is required")
        name = claim_name(state.name, ref)
        claim = {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {**copy.deepcopy({k: v for k, v in meta.items() if k in ("labels", "annotations")}),
                         "name": name, "namespace": state.namespace,
                         "ownerReferences": [{"apiVersion": API_VERSION, "kind": "Workflow", "name": state.name,
                                              "uid": state.uid, "controller": True,
                                              "blockOwnerDeletion": True}]},
            "spec": copy.deepcopy(tmpl.get("spec") or {}),
        }
        try:
            state.store.create(PERSISTENT_VOLUME_CLAIMS, state.namespace, claim)
            shutil.rmtree(state.host.paths.claim_dir(state.namespace, name), ignore_errors=True)
        except ApiError as exc:
            if exc.code != 409:
                raise SpecError(f"spec.volumeClaimTemplates[{index}]: {exc}") from exc
        recorded.append({"name": ref, "persistentVolumeClaim": {"claimName": name}})
    state.status["persistentVolumeClaims"] = recorded


def release_claims(state: PassState, phase: str) -> None:
    """Delete the workflow's claims per ``spec.volumeClaimGC.strategy`` once it ended:
    ``OnWorkflowCompletion`` (the default) always, ``OnWorkflowSuccess`` only when it succeeded.
    The claims' data goes with them."""
    claims = state.status.get("persistentVolumeClaims") or []
    if not claims:
        return
    strategy = (state.spec.get("volumeClaimGC") or {}).get("strategy") or "OnWorkflowCompletion"
    if strategy == "OnWorkflowSuccess" and phase != "Succeeded":
        return
    for entry in claims:
        name = str(((entry or {}).get("persistentVolumeClaim") or {}).get("claimName", ""))
        try:
            state.store.delete(PERSISTENT_VOLUME_CLAIMS, state.namespace, name)
        except ApiError:
            pass
        try:
            shutil.rmtree(state.host.paths.claim_dir(state.namespace, name), ignore_errors=True)
        except UnsafeNameError:
            continue
    state.status.pop("persistentVolumeClaims", None)


def pod_spec_volumes(state: PassState, tmpl: dict[str, Any], mounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pod's ``volumes``: every volume of the template, and those of the workflow
    (``spec.volumes`` and the claim templates' claims) that a container mounts."""
    own = [v for v in (tmpl.get("volumes") or []) if isinstance(v, dict)]
    names = {v.get("name") for v in own}
    mounted = {m.get("name") for m in mounts if isinstance(m, dict)}
    workflow = [v for v in (state.spec.get("volumes") or []) if isinstance(v, dict)]
    for entry in state.status.get("persistentVolumeClaims") or []:
        workflow.append({"name": entry.get("name"),
                         "persistentVolumeClaim": copy.deepcopy(entry.get("persistentVolumeClaim") or {})})
    out = copy.deepcopy(own)
    for volume in workflow:
        if volume.get("name") in mounted and volume.get("name") not in names:
            names.add(volume.get("name"))
            out.append(copy.deepcopy(volume))
    return out


def pod_mounts(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ``volumeMounts`` entry of the pod's containers (init, main, sidecars), once per
    mount path: the containers of a local pod share one filesystem, so a path mounts one volume.
    :class:`SpecError` when two containers mount different volumes (or modes) at one path."""
    seen: dict[str, dict[str, Any]] = {}
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            for mount in (container or {}).get("volumeMounts") or []:
                if not isinstance(mount, dict):
                    continue
                path = str(mount.get("mountPath"))
                earlier = seen.get(path)
                if earlier is None:
                    seen[path] = mount
                elif (earlier.get("name"), bool(earlier.get("readOnly"))) != (mount.get("name"),
                                                                                bool(mount.get("readOnly"))):
                    raise SpecError(f"container {container.get('name')!r} mounts volume {mount.get('name')!r} at "
                                    f"{path}, where another container of the pod mounts {earlier.get('name')!r}: "
                                    "the local cluster's containers share one filesystem, use distinct mount paths")
    return list(seen.values())


def runtime_volumes(state: PassState, volumes: list[dict[str, Any]], mounts: list[dict[str, Any]],
                    where: str) -> tuple[list[PodVolume], list[VolumeMount]]:
    """The runtime's view of the pod's ``volumes`` and the main container's ``mounts``.
    :class:`SpecError` names the volume for a refused source (``hostPath``), a missing ConfigMap or
    Secret, or a mount of an unknown volume; :class:`MissingClaimError` for a claim that does not exist."""
    out: list[PodVolume] = []
    for index, volume in enumerate(volumes):
        name = volume.get("name")
        if not isinstance(name, str) or not name:
            raise SpecError(f"{where}.volumes[{index}].name is required")
        out.append(_volume(state, volume, name))
    names = {v.name for v in out}
    result: list[VolumeMount] = []
    for index, mount in enumerate(mounts):
        if not isinstance(mount, dict):
            raise SpecError(f"{where}.volumeMounts[{index}] must be an object")
        if mount.get("name") not in names:
            raise SpecError(f'{where}.volumeMounts[{index}].name: Not found: "{mount.get("name")}" '
                            "(add a volume of that name to the template's or the workflow's volumes)")
        if not isinstance(mount.get("mountPath"), str) or not str(mount.get("mountPath")).startswith("/"):
            raise SpecError(f"{where}.volumeMounts[{index}].mountPath must be an absolute path, "
                            f"got {mount.get('mountPath')!r}")
        if mount.get("subPath") or mount.get("subPathExpr"):
            raise SpecError(f"{where}.volumeMounts[{index}].subPath is not supported by the local cluster: "
                            "mount the whole volume and use the path below it")
        result.append(VolumeMount(str(mount["name"]), str(mount["mountPath"]), bool(mount.get("readOnly"))))
    return out, result


def _volume(state: PassState, volume: dict[str, Any], name: str) -> PodVolume:
    if "hostPath" in volume:
        raise SpecError(f'volume "{name}": hostPath volumes are refused by the local cluster (pods never reach '
                        "host paths): use an emptyDir or a persistentVolumeClaim")
    if "emptyDir" in volume:
        return PodVolume(name, EMPTY_DIR)
    if "persistentVolumeClaim" in volume:
        source = volume.get("persistentVolumeClaim") or {}
        claim = source.get("claimName")
        if not isinstance(claim, str) or not claim:
            raise SpecError(f'volume "{name}": persistentVolumeClaim.claimName is required')
        try:
            claim_obj = state.store.get(PERSISTENT_VOLUME_CLAIMS, state.namespace, claim)
        except ApiError as exc:
            raise MissingClaimError(claim) from exc
        try:  # a Fluid dataset's claim: a read-only view of the dataset's files (local/fluid/mounts.py)
            dataset = dataset_volume(state.host.paths, state.namespace, claim_obj, name)
        except DatasetMountError as exc:
            raise SpecError(f'volume "{name}": MountVolume.SetUp failed: {exc}') from exc
        if dataset is not None:
            return dataset
        try:
            host_dir = state.host.paths.claim_dir(state.namespace, claim)
        except UnsafeNameError as exc:
            raise SpecError(f'volume "{name}": {exc}') from exc
        return PodVolume(name, CLAIM, host_dir=host_dir, read_only=bool(source.get("readOnly")))
    if "configMap" in volume or "secret" in volume:
        return PodVolume(name, FILES, files=_key_files(state, volume, name))
    other = next((k for k in volume if k != "name"), "no source")
    raise SpecError(f'volume "{name}": {other} volumes are not supported by the local cluster '
                    f"(supported: {', '.join(SUPPORTED_SOURCES)})")


def _key_files(state: PassState, volume: dict[str, Any], name: str) -> dict[str, tuple[bytes, int]]:
    """A ConfigMap's or Secret's keys as files (``items`` pick keys and paths; modes as given)."""
    is_secret = "secret" in volume
    source = volume.get("secret" if is_secret else "configMap") or {}
    object_name = source.get("secretName" if is_secret else "name")
    kind = "secret" if is_secret else "configmap"
    data: dict[str, bytes] = {}
    try:
        obj = state.store.get(SECRETS if is_secret else CONFIGMAPS, state.namespace, str(object_name))
    except ApiError as exc:
        if source.get("optional"):
            return {}
        raise SpecError(f'MountVolume.SetUp failed for volume "{name}" : {kind} "{object_name}" not found') from exc
    if is_secret:
        for key, value in (obj.get("data") or {}).items():
            try:
                data[key] = base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise SpecError(f'volume "{name}": secret "{object_name}" key {key!r} is not base64') from exc
        for key, value in (obj.get("stringData") or {}).items():
            data[key] = str(value).encode()
    else:
        data.update({k: str(v).encode() for k, v in (obj.get("data") or {}).items()})
        for key, value in (obj.get("binaryData") or {}).items():
            data[key] = base64.b64decode(str(value))
    default_mode = _mode(source.get("defaultMode"), DEFAULT_MODE, f'volume "{name}" defaultMode')
    items = source.get("items")
    if not items:
        return {key: (value, default_mode) for key, value in data.items()}
    files: dict[str, tuple[bytes, int]] = {}
    for index, item in enumerate(items):
        key, path = (item or {}).get("key"), (item or {}).get("path")
        if key not in data:
            if source.get("optional"):
                continue
            raise SpecError(f'MountVolume.SetUp failed for volume "{name}" : {kind} "{object_name}" has no key '
                            f'"{key}" (items[{index}].key)')
        if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
            raise SpecError(f'volume "{name}": items[{index}].path must be a relative path without "..", got {path!r}')
        files[path] = (data[key], _mode(item.get("mode"), default_mode, f'volume "{name}" items[{index}].mode'))
    return files


def _mode(value: Any, default: int, what: str) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
        raise SpecError(f"{what} must be a file mode between 0 and 0777 (511), got {value!r}")
    return value
