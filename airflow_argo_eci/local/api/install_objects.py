"""The objects an Argo-on-ECI installation holds, seeded into the local cluster's store at start:
the ``workflow-controller`` and ``argo-server`` Deployments, the controller's ConfigMap (its
default artifact repository) and ``kube-system/eci-profile``.

The Deployments *describe* the controller and the Argo Server embedded in the local cluster's
process (image, the seed guide's recommended 2 vCPU / 4 GiB, one ready replica); nothing
reconciles them, so editing them changes what a reader such as the preflight sees and resizes
nothing. The controller's ConfigMap is the truth for the default repository: the controller reads
its ``artifactRepository`` (``local/argo/artifacts.py``). The ``eci-profile`` ConfigMap holds local
placeholders (``vsw-local0zonea``...), not real vSwitches. Seeding only creates what is missing: an
object a user edited or deleted earlier in the same state directory is left as it is (a deleted
one comes back at the next start).
"""

from __future__ import annotations

from typing import Any

import yaml

from airflow_argo_eci import eci_conventions as eci
from airflow_argo_eci.conventions import ARGO_VERSION, now_rfc3339
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import CONFIGMAPS, DEPLOYMENTS, NAMESPACES, ResourceType
from airflow_argo_eci.local.api.store import Store

#: on the Deployments: what they describe
ANNOTATION_DESCRIBES = "local.airflow-argo-eci.io/describes"
#: the images of the Deployments
CONTROLLER_IMAGE = f"quay.io/argoproj/workflow-controller:{ARGO_VERSION}"
SERVER_IMAGE = f"quay.io/argoproj/argocli:{ARGO_VERSION}"
#: requests = limits of each Deployment's container: the seed guide's recommendation
RECOMMENDED_RESOURCES = {"cpu": "2", "memory": "4Gi"}
#: the eci-profile's local placeholders: two vSwitches (two zones), a VPC and a security group
ECI_PROFILE_DATA = {
    eci.ECI_PROFILE_VSWITCHES: "vsw-local0zonea,vsw-local0zoneb",
    "vpcId": "vpc-local0",
    "securityGroupId": "sg-local0",
}
_ECI_PROFILE_NOTE = ("local placeholders of the airflow-argo-eci local cluster (vsw-local0zonea in zone a, "
                     "vsw-local0zoneb in zone b); no real VPC")


def deployment(name: str, image: str, args: list[str], describes: str) -> dict[str, Any]:
    """A Deployment of one container with the recommended resources, ready and available."""
    labels = {"app": name}
    at = now_rfc3339()
    container = {"name": name, "image": image, "args": args,
                 "resources": {"requests": dict(RECOMMENDED_RESOURCES), "limits": dict(RECOMMENDED_RESOURCES)}}
    return {
        "apiVersion": DEPLOYMENTS.api_version, "kind": DEPLOYMENTS.kind,
        "metadata": {"name": name, "namespace": eci.ARGO_NAMESPACE, "labels": dict(labels),
                     "annotations": {ANNOTATION_DESCRIBES: describes}},
        "spec": {"replicas": 1, "selector": {"matchLabels": dict(labels)},
                 "template": {"metadata": {"labels": dict(labels)},
                              "spec": {"serviceAccountName": "argo" if name == eci.CONTROLLER_DEPLOYMENT
                                       else "argo-server", "containers": [container]}}},
        "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1,
                   "availableReplicas": 1,
                   "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                                   "message": "Deployment has minimum availability.", "lastUpdateTime": at,
                                   "lastTransitionTime": at},
                                  {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                                   "message": f'ReplicaSet "{name}" has successfully progressed.',
                                   "lastUpdateTime": at, "lastTransitionTime": at}]},
    }


def install_deployments() -> list[dict[str, Any]]:
    """The ``workflow-controller`` and ``argo-server`` Deployments of namespace ``argo``."""
    return [
        deployment(eci.CONTROLLER_DEPLOYMENT, CONTROLLER_IMAGE, ["--configmap", eci.CONTROLLER_CONFIGMAP],
                   "the workflow controller embedded in the local cluster process (local/argo/); editing "
                   "this object resizes nothing"),
        deployment(eci.SERVER_DEPLOYMENT, SERVER_IMAGE, ["server"],
                   "the Argo Server REST API embedded in the local cluster process (local/api/argo_*); editing "
                   "this object resizes nothing"),
    ]


def controller_configmap_data(artifact_repository: dict[str, Any]) -> dict[str, str]:
    """The controller ConfigMap's data: ``artifactRepository`` (Argo's YAML form). No
    ``containerRuntimeExecutor``: emissary is the only executor since Argo v3.4."""
    return {"artifactRepository": yaml.safe_dump(artifact_repository, sort_keys=False)}


def eci_profile() -> dict[str, Any]:
    """``kube-system/eci-profile`` with the local placeholders."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": eci.ECI_PROFILE_CONFIGMAP, "namespace": eci.ECI_PROFILE_NAMESPACE,
                         "annotations": {ANNOTATION_DESCRIBES: _ECI_PROFILE_NOTE}},
            "data": dict(ECI_PROFILE_DATA)}


def create_missing(store: Store, rt: ResourceType, obj: dict[str, Any]) -> bool:
    """Create ``obj`` unless an object of that name exists; True when created."""
    meta = obj["metadata"]
    namespace = meta.get("namespace") if rt.namespaced else None
    if store.find(rt, namespace, meta["name"]) is not None:
        return False
    try:
        store.create(rt, namespace, obj)
    except ApiError as exc:
        if exc.code != 409:
            raise
        return False
    return True


def seed_install_objects(store: Store) -> None:
    """Create the installation's Deployments, ``kube-system`` and its ``eci-profile`` when missing
    (the controller's ConfigMap is the server's: it names the OSS store's current endpoint)."""
    create_missing(store, NAMESPACES, {"metadata": {"name": eci.ECI_PROFILE_NAMESPACE}})
    for obj in install_deployments():
        create_missing(store, DEPLOYMENTS, obj)
    create_missing(store, CONFIGMAPS, eci_profile())
