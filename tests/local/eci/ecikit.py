"""Test helpers: ImageCaches of the local cluster through the kubernetes client, under fresh names,
workflows whose pods run on ECI, and the Events ECI records on those pods."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from airflow_argo_eci import eci_conventions as eci
from airflow_argo_eci.local.server import LocalCluster

NS = "argo"


class EciKit:
    """What an ImageCache test needs; every cache it creates is deleted by :meth:`cleanup`."""

    def __init__(self, cluster: LocalCluster, api_client: client.ApiClient) -> None:
        self.cluster = cluster
        self.objects = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self._caches: list[str] = []
        self._secrets: list[str] = []

    @staticmethod
    def name(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:6]}"

    def create(self, name: str, spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
        body = {"apiVersion": eci.API_VERSION, "kind": eci.IMAGE_CACHE_KIND,
                "metadata": {"name": name, "annotations": annotations or {}}, "spec": spec}
        created = self.objects.create_cluster_custom_object(eci.GROUP, eci.VERSION, eci.IMAGE_CACHES, body)
        self._caches.append(name)
        return dict(created)

    def get(self, name: str) -> dict[str, Any]:
        return dict(self.objects.get_cluster_custom_object(eci.GROUP, eci.VERSION, eci.IMAGE_CACHES, name))

    def delete(self, name: str) -> None:
        try:
            self.objects.delete_cluster_custom_object(eci.GROUP, eci.VERSION, eci.IMAGE_CACHES, name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def secret(self, name: str) -> str:
        self.core.create_namespaced_secret(NS, {"metadata": {"name": name}, "type": "kubernetes.io/dockerconfigjson",
                                                "stringData": {".dockerconfigjson": '{"auths": {}}'}})
        self._secrets.append(name)
        return name

    def cleanup(self) -> None:
        for name in self._caches:
            self.delete(name)
        for name in self._secrets:
            try:
                self.core.delete_namespaced_secret(name, NS)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def wait(self, name: str, check: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        obj = self.get(name)
        while not check(obj):
            if time.monotonic() > deadline:
                raise AssertionError(f"ImageCache {name}: condition not met in {timeout}s: {obj.get('status')}")
            time.sleep(0.05)
            obj = self.get(name)
        return obj

    def final(self, name: str, timeout: float = 15.0) -> dict[str, Any]:
        """The cache once Ready or Failed."""
        return self.wait(name, lambda o: (o.get("status") or {}).get("phase") in eci.IMAGE_CACHE_FINAL_PHASES,
                         timeout)

    def ready_cache(self, images: list[str]) -> str:
        """A Ready cache of ``images``; its ``imageCacheId``."""
        name = self.name("ic")
        self.create(name, {"images": images})
        obj = self.final(name)
        assert obj["status"]["phase"] == eci.PHASE_READY, obj["status"]
        return str(obj["status"]["imageCacheId"])

    def run_workflow(self, annotations: dict[str, str], images: tuple[str, ...] = ("argoproj/argosay:v2",),
                     *, eci_pod: bool = True, timeout: float = 60.0) -> dict[str, Any]:
        """A one-pod workflow whose pod carries ``annotations`` (and the ECI label unless ``eci_pod``
        is False), with one container per image (the first the main one); the finished workflow."""
        name = self.name("eci-wf")
        labels = {"alibabacloud.com/eci": "true"} if eci_pod else {}
        main = {"image": images[0], "command": ["sh", "-c", "echo cached"]}
        sidecars = [{"name": f"side{i}", "image": image, "command": ["sh", "-c", "true"]}
                    for i, image in enumerate(images[1:])]
        template: dict[str, Any] = {"name": "main", "metadata": {"labels": labels, "annotations": annotations},
                                    "container": main}
        if sidecars:
            template["initContainers"] = sidecars
        body = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name},
                "spec": {"entrypoint": "main", "templates": [template]}}
        self.objects.create_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "workflows", body)
        deadline = time.monotonic() + timeout
        while True:
            wf = self.objects.get_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "workflows", name)
            if (wf.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Error"):
                return dict(wf)
            if time.monotonic() > deadline:
                raise AssertionError(f"workflow {name} did not finish: {wf.get('status')}")
            time.sleep(0.1)

    def pod_of(self, wf: dict[str, Any]) -> client.V1Pod:
        node = next(n for n in wf["status"]["nodes"].values() if n["type"] == "Pod")
        return next(p for p in self.core.list_namespaced_pod(
            NS, label_selector=f"workflows.argoproj.io/workflow={wf['metadata']['name']}").items
            if (p.metadata.annotations or {}).get("workflows.argoproj.io/node-id") == node["id"])

    def pod_events(self, pod: client.V1Pod) -> list[client.CoreV1Event]:
        return list(self.core.list_namespaced_event(
            NS, field_selector=f"involvedObject.name={pod.metadata.name}").items)
