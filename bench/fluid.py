"""Benchmark: the seed's 100-step md5sum fan-out over a Fluid Dataset, cold and after a DataLoad.

The seed guide's scenario on a fresh local cluster whose OSS store is capped (``--bandwidth``, one
cap for every client together, as a bucket's bandwidth is): one file (``--size``) in a bucket, the
seed's ``serverless-data`` Dataset and JindoRuntime (10 replicas, 12Gi MEM tier), and its
``parallelism-fluid`` workflow (``--steps`` md5sum steps, ``parallelism`` = steps, ECI labels,
the dataset's PVC at ``/data``) run twice in one process:

- cold: no preload, every pod reads the file from the store through the dataset view,
- warm: after the seed's ``serverless-data-warmup`` DataLoad (``loadMetadata: true``) warmed the
  cache, every pod reads the cached copy.

Printed side by side: wall time of each fan-out (submit -> Succeeded through the Kubernetes API)
and their ratio, the DataLoad's own time (wall and its ``status.duration``), the body bytes the
store served during each (``transfer_counts`` deltas), the Dataset's ``cacheHitRatio`` after each
(Fluid's counter: cumulative over every read so far), and the seed's figures beside them. Every
step's log must be the uploaded file's md5, else the bench fails.

The pods run ``md5sum /data/test.dat``: the seed's ``cp /data/test.dat /test.dat && md5sum
test.dat`` would put one copy of the file per pod on this machine's disk at once (100 GiB for
the default 1 GiB file), where each ECI pod has its own disk. What the pods read from the dataset
is the same whole file either way.

    .venv/bin/python bench/fluid.py [--size 1GiB] [--steps 100] [--bandwidth 200MiB] [--quick]
                                    (--quick: 64 MiB)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import oss2
from kubernetes import client, config

from airflow_argo_eci import fluid_conventions as fluid
from airflow_argo_eci.local.oss.bandwidth import parse_rate
from airflow_argo_eci.local.server import LocalCluster

MiB = 1024 * 1024
NS = "argo"
DATASET = "serverless-data"
DATALOAD = "serverless-data-warmup"
FILE = "test.dat"
COMMAND = f"md5sum /data/{FILE} | cut -d' ' -f1"
#: the seed's figures for 100 steps over a 10 GB file: (cold low, cold high), (warm low, warm high), minutes
SEED_COLD, SEED_WARM = (14.0, 15.0), (2.0, 4.0)


def parse_size(text: str) -> int:
    units = {"k": 1024, "m": MiB, "g": 1024 * MiB}
    value = text.strip().lower().removesuffix("ib").removesuffix("b")
    if value and value[-1] in units:
        return int(float(value[:-1]) * units[value[-1]])
    return int(value)


def make_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; their md5."""
    digest = hashlib.md5()  # the seed's checksum, not a security use
    block = 16 * MiB
    with open(path, "wb") as handle:
        left = size
        while left > 0:
            chunk = os.urandom(min(block, left))
            digest.update(chunk)
            handle.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def workflow(steps: int) -> dict[str, Any]:
    """The seed's ``parallelism-fluid`` workflow (see the module docstring for the command)."""
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"generateName": "parallelism-fluid-"},
        "spec": {
            "entrypoint": "parallelism-fluid",
            "parallelism": steps,
            "podSpecPatch": '{"terminationGracePeriodSeconds": 0, "schedulerName": "eci-scheduler"}',
            "podMetadata": {
                "labels": {fluid.LABEL_FLUID_SIDECAR_TARGET: "eci", "alibabacloud.com/eci": "true"},
                "annotations": {"k8s.aliyun.com/eci-use-specs": "8-16Gi"},
            },
            "templates": [
                {"name": "parallelism-fluid",
                 "steps": [[{"name": "domd5sum", "template": "md5sum",
                             "withSequence": {"start": "1", "end": str(steps)}}]]},
                {"name": "md5sum",
                 "container": {"imagePullPolicy": "IfNotPresent", "image": "alpine:latest",
                               "command": ["sh", "-c", COMMAND],
                               "volumeMounts": [{"name": "data-vol", "mountPath": "/data"}]}},
            ],
            "volumes": [{"name": "data-vol", "persistentVolumeClaim": {"claimName": DATASET}}],
        },
    }


@dataclass
class FanOut:
    """One fan-out's figures."""

    wall: float
    served: int
    hit_ratio: str


class Bench:
    """The cluster's APIs and the steps of the scenario."""

    def __init__(self, cluster: LocalCluster, timeout: float) -> None:
        assert cluster.oss is not None
        self.cluster = cluster
        self.oss = cluster.oss
        self.timeout = timeout
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
        self.objects = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.keys = next(iter(cluster.oss_credentials().items()))

    def served(self) -> int:
        return self.oss.transfer_counts.sent

    def wait(self, what: str, get: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool]
             ) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            status = get().get("status") or {}
            if done(status):
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not done after {self.timeout}s: {status}")
            time.sleep(0.1)

    def fluid_get(self, plural: str, name: str) -> dict[str, Any]:
        return dict(self.objects.get_namespaced_custom_object(fluid.GROUP, fluid.VERSION, NS, plural, name))

    def fluid_create(self, plural: str, body: dict[str, Any]) -> None:
        self.objects.create_namespaced_custom_object(fluid.GROUP, fluid.VERSION, NS, plural,
                                                     {"apiVersion": fluid.API_VERSION, **body})

    def upload(self, bucket_name: str, source: Path) -> None:
        bucket = oss2.Bucket(oss2.Auth(*self.keys), self.oss.endpoint, bucket_name, session=self.oss.session())
        bucket.create_bucket()
        oss2.resumable_upload(bucket, FILE, str(source), multipart_threshold=64 * MiB, part_size=64 * MiB,
                              num_threads=4, store=oss2.ResumableStore(root=str(source.parent)))

    def dataset(self, bucket_name: str) -> dict[str, Any]:
        """The seed's Secret, Dataset and JindoRuntime; the Dataset's status once Bound."""
        self.core.create_namespaced_secret(NS, {"metadata": {"name": "access-key"}, "stringData": {
            "fs.oss.accessKeyId": self.keys[0], "fs.oss.accessKeySecret": self.keys[1]}})
        self.fluid_create(fluid.DATASETS, {"kind": fluid.DATASET_KIND, "metadata": {"name": DATASET}, "spec": {
            "mounts": [{"mountPoint": f"oss://{bucket_name}/", "name": "demo", "path": "/",
                        "options": {"fs.oss.endpoint": "oss-cn-shanghai-internal.aliyuncs.com"},
                        "encryptOptions": [
                            {"name": key, "valueFrom": {"secretKeyRef": {"name": "access-key", "key": key}}}
                            for key in ("fs.oss.accessKeyId", "fs.oss.accessKeySecret")]}]}})
        eci = {"annotations": {"k8s.aliyun.com/eci-use-specs": "ecs.g6.2xlarge",
                               "k8s.aliyun.com/eci-image-cache": "true"},
               "labels": {"alibabacloud.com/eci": "true"}}
        self.fluid_create(fluid.JINDO_RUNTIMES, {"kind": fluid.JINDO_RUNTIME_KIND, "metadata": {"name": DATASET},
                                                 "spec": {"replicas": 10, "podMetadata": eci,
                                                          "worker": {"podMetadata": {
                                                              "annotations": eci["annotations"]}},
                                                          "tieredstore": {"levels": [
                                                              {"mediumtype": "MEM", "volumeType": "emptyDir",
                                                               "path": "/local-storage", "quota": "12Gi",
                                                               "high": "0.99", "low": "0.99"}]}}})
        return self.wait(f"dataset {DATASET}", lambda: self.fluid_get(fluid.DATASETS, DATASET),
                         lambda s: s.get("phase") == fluid.DATASET_BOUND)

    def hit_ratio(self) -> str:
        status = self.fluid_get(fluid.DATASETS, DATASET).get("status") or {}
        return str((status.get("cacheStates") or {}).get("cacheHitRatio", "?"))

    def fan_out(self, steps: int, md5: str) -> FanOut:
        """Run the workflow; fail unless it succeeded and every step printed ``md5``."""
        before = self.served()
        started = time.perf_counter()
        created = self.objects.create_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "workflows",
                                                               workflow(steps))
        name = created["metadata"]["name"]
        status = self.wait(f"workflow {name}", lambda: dict(self.objects.get_namespaced_custom_object(
            "argoproj.io", "v1alpha1", NS, "workflows", name)),
            lambda s: s.get("phase") in ("Succeeded", "Failed", "Error"))
        wall = time.perf_counter() - started
        served = self.served() - before
        if status["phase"] != "Succeeded":
            raise SystemExit(f"workflow {name} ended {status['phase']}: {status.get('message')}")
        self.check_digests(name, status, steps, md5)
        return FanOut(wall, served, self.hit_ratio())

    def check_digests(self, name: str, status: dict[str, Any], steps: int, md5: str) -> None:
        node_ids = {n["id"] for n in status["nodes"].values() if n.get("type") == "Pod"}
        pods = [p for p in self.core.list_namespaced_pod(NS).items
                if (p.metadata.annotations or {}).get("workflows.argoproj.io/node-id") in node_ids]
        bad = []
        for pod in pods:
            response = self.core.read_namespaced_pod_log(pod.metadata.name, NS, container="main",
                                                         _preload_content=False)
            printed = response.data.decode().strip()
            if printed != md5:
                bad.append(f"{pod.metadata.name}: {printed!r}")
        if len(node_ids) != steps or len(pods) != steps or bad:
            raise SystemExit(f"workflow {name}: {len(node_ids)} pod nodes, {len(pods)} pods for {steps} steps; "
                             f"{len(bad)} printed something else than {md5}: {bad[:5]}")

    def preload(self) -> tuple[float, str, int]:
        """The seed's DataLoad: (wall seconds until Complete, its status.duration, bytes served)."""
        before = self.served()
        started = time.perf_counter()
        self.fluid_create(fluid.DATALOADS, {"kind": fluid.DATALOAD_KIND, "metadata": {"name": DATALOAD},
                                            "spec": {"dataset": {"name": DATASET, "namespace": NS},
                                                     "loadMetadata": True}})
        status = self.wait(f"dataload {DATALOAD}", lambda: self.fluid_get(fluid.DATALOADS, DATALOAD),
                           lambda s: s.get("phase") in fluid.DATALOAD_TERMINAL_PHASES)
        wall = time.perf_counter() - started
        if status["phase"] != fluid.DATALOAD_COMPLETE:
            raise SystemExit(f"dataload {DATALOAD} ended {status['phase']}: {status.get('conditions')}")
        return wall, str(status.get("duration")), self.served() - before


def amount(size: int) -> str:
    return f"{size / MiB:10.0f} MiB" if size >= MiB else f"{size / 1024:10.1f} KiB"


def minutes(seconds: float) -> str:
    return f"{seconds:8.1f} s ({seconds / 60:5.2f} min)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1GiB", help="size of the file the steps read (default 1GiB)")
    parser.add_argument("--quick", action="store_true", help="64 MiB instead of --size")
    parser.add_argument("--steps", type=int, default=100, help="md5sum steps, all in parallel (default 100)")
    parser.add_argument("--bandwidth", default="200MiB", help="the OSS store's cap per second (default 200MiB)")
    parser.add_argument("--sandbox", default="auto", choices=["auto", "bwrap", "none"])
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one fan-out or load may take")
    args = parser.parse_args()
    size = 64 * MiB if args.quick else parse_size(args.size)
    rate = parse_rate(args.bandwidth)

    with tempfile.TemporaryDirectory(prefix="bench-fluid-") as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / FILE
        md5 = make_file(source, size)
        with LocalCluster(tmp / "state", capacity_vcpu=args.steps * 0.1 + 1, sandbox=args.sandbox,
                          oss_bandwidth=rate) as cluster:
            bench = Bench(cluster, args.timeout)
            bench.upload("bench-fluid", source)
            source.unlink()
            ds = bench.dataset("bench-fluid")
            cold = bench.fan_out(args.steps, md5)
            load_wall, load_duration, load_served = bench.preload()
            warm = bench.fan_out(args.steps, md5)

    mib = size / MiB
    print(f"{args.steps} md5sum steps (parallelism {args.steps}) reading one {mib:.0f} MiB file from a Fluid "
          f"Dataset; OSS store capped at {rate / MiB:.0f} MiB/s; sandbox={args.sandbox}")
    print(f"  dataset {DATASET}: ufsTotal {ds.get('ufsTotal')}, fileNum {ds.get('fileNum')}; every step printed "
          f"the file's md5 {md5} in both runs")
    print(f"  {'':34}{'wall time':>22}  {'store served':>14}  cacheHitRatio after")
    print(f"  {'cold: no preload (reads the store)':34}{minutes(cold.wall):>22}  "
          f"{amount(cold.served)}  {cold.hit_ratio}")
    print(f"  {'DataLoad ' + DATALOAD:34}{minutes(load_wall):>22}  {amount(load_served)}  "
          f"(status.duration {load_duration})")
    print(f"  {'warm: after the DataLoad':34}{minutes(warm.wall):>22}  "
          f"{amount(warm.served)}  {warm.hit_ratio}")
    print(f"  ratio cold / warm                 {cold.wall / warm.wall:8.1f}x   "
          f"(cold / (DataLoad + warm): {cold.wall / (load_wall + warm.wall):.1f}x)")
    print(f"  the cap alone for the cold run     {args.steps * size / rate:8.1f} s  "
          f"({args.steps} x {mib:.0f} MiB at {rate / MiB:.0f} MiB/s)")
    (cold_lo, cold_hi), (warm_lo, warm_hi) = SEED_COLD, SEED_WARM
    print(f"seed (100 steps, 10 GB file, real OSS, 10 JindoRuntime workers): {cold_lo:.0f}-{cold_hi:.0f} min "
          f"reading OSS directly vs {warm_lo:.0f}-{warm_hi:.0f} min after the DataLoad, "
          f"ratio {cold_lo / warm_hi:.1f}-{cold_hi / warm_lo:.1f}x")


if __name__ == "__main__":
    main()
