"""Test helpers: the local cluster's Fluid objects through the kubernetes client, under fresh names."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import oss2
from kubernetes import client

from airflow_argo_eci import fluid_conventions as fluid
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.fluid.controller import FluidController
from airflow_argo_eci.local.paths import StatePaths
from airflow_argo_eci.local.server import LocalCluster
from tests.local.api.lagging_peers import lagging_peers

NS = "argo"


class FluidKit:
    """What a Fluid test needs: the custom-object and core APIs, an OSS client, fresh names."""

    def __init__(self, cluster: LocalCluster, api_client: client.ApiClient, session: oss2.Session) -> None:
        self.cluster = cluster
        self.objects = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.api_client = api_client
        self.session = session
        self.keys = next(iter(cluster.oss_credentials().items()))

    @staticmethod
    def name(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:6]}"

    def bucket(self, name: str, objects: dict[str, bytes] | None = None, *, create: bool = True) -> oss2.Bucket:
        assert self.cluster.oss is not None
        bucket = oss2.Bucket(oss2.Auth(*self.keys), self.cluster.oss.endpoint, name, session=self.session)
        if create:
            bucket.create_bucket()
        for key, body in (objects or {}).items():
            bucket.put_object(key, body)
        return bucket

    def key_secret(self, name: str) -> str:
        self.core.create_namespaced_secret(NS, {"metadata": {"name": name}, "stringData": {
            "fs.oss.accessKeyId": self.keys[0], "fs.oss.accessKeySecret": self.keys[1]}})
        return name

    def dataset(self, name: str, mount_point: str, *, secret: str | None = None, path: str | None = "/",
                **spec: Any) -> dict[str, Any]:
        mount: dict[str, Any] = {"mountPoint": mount_point, "name": "demo",
                                 "options": {"fs.oss.endpoint": "oss-cn-shanghai-internal.aliyuncs.com"}}
        if path is not None:
            mount["path"] = path
        if secret is not None:
            mount["encryptOptions"] = [
                {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
                for key in ("fs.oss.accessKeyId", "fs.oss.accessKeySecret")]
        return self.create(fluid.DATASETS, {"kind": fluid.DATASET_KIND, "metadata": {"name": name},
                                            "spec": {"mounts": [mount], **spec}})

    def runtime(self, name: str, *, quota: str = "64Mi", replicas: int = 2, kind: str = fluid.JINDO_RUNTIME_KIND,
                **spec: Any) -> dict[str, Any]:
        body = {"kind": kind, "metadata": {"name": name},
                "spec": {"replicas": replicas, **spec, "tieredstore": {"levels": [
                    {"mediumtype": "MEM", "volumeType": "emptyDir", "path": "/local-storage", "quota": quota,
                     "high": "0.99", "low": "0.95"}]}}}
        return self.create(fluid.RUNTIME_PLURALS[kind], body)

    def dataload(self, name: str, dataset: str, **spec: Any) -> dict[str, Any]:
        return self.create(fluid.DATALOADS, {"kind": fluid.DATALOAD_KIND, "metadata": {"name": name},
                                             "spec": {"dataset": {"name": dataset, "namespace": NS}, **spec}})

    def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": fluid.API_VERSION, **body}
        return dict(self.objects.create_namespaced_custom_object(fluid.GROUP, fluid.VERSION, NS, plural, body))

    def get(self, plural: str, name: str) -> dict[str, Any]:
        return dict(self.objects.get_namespaced_custom_object(fluid.GROUP, fluid.VERSION, NS, plural, name))

    def delete(self, plural: str, name: str) -> None:
        self.objects.delete_namespaced_custom_object(fluid.GROUP, fluid.VERSION, NS, plural, name)

    def wait(self, plural: str, name: str, check: Callable[[dict[str, Any]], bool], timeout: float = 30.0
             ) -> dict[str, Any]:
        """The object once ``check(status)`` holds (AssertionError with the last status after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.get(plural, name).get("status") or {}
            if check(status):
                return status
            assert time.monotonic() < deadline, f"{plural}/{name}: condition not reached in {timeout}s: {status}"
            time.sleep(0.1)

    def phase(self, plural: str, name: str, *phases: str, timeout: float = 30.0) -> dict[str, Any]:
        """The status once its phase is one of ``phases``."""
        return self.wait(plural, name, lambda s: s.get("phase") in phases, timeout)

    def bound(self, dataset: str, timeout: float = 30.0) -> dict[str, Any]:
        return self.phase(fluid.DATASETS, dataset, fluid.DATASET_BOUND, timeout=timeout)

    def finished(self, dataload: str, timeout: float = 30.0) -> dict[str, Any]:
        return self.phase(fluid.DATALOADS, dataload, *fluid.DATALOAD_TERMINAL_PHASES, timeout=timeout)

    def cache_states(self, dataset: str) -> dict[str, str]:
        return dict((self.get(fluid.DATASETS, dataset).get("status") or {}).get("cacheStates") or {})

    def read_workflow(self, claim: str, script: str, steps: int = 1) -> dict[str, Any]:
        """Run the seed's fan-out shape: ``steps`` ECI pods running ``script`` with the claim at /data."""
        name = f"fluid-read-{uuid.uuid4().hex[:6]}"
        body = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name}, "spec": {
            "entrypoint": "main",
            "podMetadata": {"labels": {fluid.LABEL_FLUID_SIDECAR_TARGET: "eci", "alibabacloud.com/eci": "true"}},
            "volumes": [{"name": "data-vol", "persistentVolumeClaim": {"claimName": claim}}],
            "templates": [
                {"name": "main", "steps": [[{"name": "read", "template": "read",
                                             "withSequence": {"start": "1", "end": str(steps)}}]]},
                {"name": "read", "container": {"image": "alpine:3.23", "command": ["sh", "-c"], "args": [script],
                                               "volumeMounts": [{"name": "data-vol", "mountPath": "/data"}]}}]}}
        self.objects.create_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "workflows", body)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            wf = self.objects.get_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "workflows", name)
            if (wf.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Error"):
                return dict(wf)
            time.sleep(0.2)
        raise AssertionError(f"workflow {name} did not finish: {wf.get('status')}")

    def pod_logs(self, wf: dict[str, Any]) -> list[str]:
        """The main-container log of each pod of ``wf`` (each checked to be on virtual-kubelet)."""
        out = []
        for node in wf["status"]["nodes"].values():
            if node["type"] == "Pod":
                pod = next(p for p in self.core.list_namespaced_pod(NS).items
                           if (p.metadata.annotations or {}).get("workflows.argoproj.io/node-id") == node["id"])
                assert pod.spec.node_name == "virtual-kubelet"
                response = self.core.read_namespaced_pod_log(pod.metadata.name, NS, container="main",
                                                             _preload_content=False)
                out.append(response.data.decode())
        return out


@contextmanager
def lagging_controller(kit: FluidKit, root: Path) -> Iterator[tuple[StatePaths, Store, Store]]:
    """A Fluid controller of its own under ``root``, on the ``node`` peer of :func:`lagging_peers`
    (it reads the API's changes only when ``node.follow()`` is called), against the kit's OSS store:
    yields ``(paths, api, node)``."""
    paths = StatePaths(root)
    paths.root.mkdir(parents=True)
    assert kit.cluster.oss is not None
    with lagging_peers(paths.db) as (api, node):
        controller = FluidController(node, paths, kit.cluster.oss.endpoint, kit.cluster.paths.tls_cert, kit.keys,
                                     tick_seconds=0.1)
        controller.start()
        try:
            yield paths, api, node
        finally:
            controller.stop()
