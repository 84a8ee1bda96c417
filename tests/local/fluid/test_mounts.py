"""Pods that mount a Dataset's PVC on the local cluster (the seed's parallelism-fluid shape): they
read the dataset's files read-only, cached ones from the cache and the others from the store, and
their reads show in the dataset's cacheHitRatio / localHitRatio / remoteHitRatio."""

from __future__ import annotations

import hashlib

import pytest
from kubernetes import client

from airflow_argo_eci import fluid_conventions as fluid
from airflow_argo_eci.local.runtime.sandbox import probe_bwrap
from tests.local.fluid.fluidkit import NS, FluidKit

pytestmark = pytest.mark.skipif(probe_bwrap() is not None, reason=f"bubblewrap unavailable: {probe_bwrap()}")
KIB = 1024


def test_pods_read_cached_and_uncached_files_read_only(kit: FluidKit) -> None:
    hot, cold = b"h" * (30 * KIB), b"c" * (10 * KIB)
    name = kit.name("mount")
    kit.bucket(name, {"data/hot/test.dat": hot, "data/cold.dat": cold})
    kit.dataset(name, f"oss://{name}/data/")
    kit.runtime(name, quota="1Mi", replicas=1)
    kit.bound(name)
    kit.dataload(name, name, target=[{"path": "/hot"}])
    assert kit.finished(name)["phase"] == "Complete"
    script = ("md5sum /data/hot/test.dat /data/cold.dat | cut -d' ' -f1; "
              "if touch /data/new 2>/dev/null; then echo writable; else echo read-only; fi")
    wf = kit.read_workflow(name, script, steps=2)
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    expected = [hashlib.md5(hot).hexdigest(), hashlib.md5(cold).hexdigest(), "read-only"]
    assert [log.split() for log in kit.pod_logs(wf)] == [expected, expected]
    # two pods read 30 KiB from the cache and 10 KiB from the store each: 75% hits
    states = kit.wait(fluid.DATASETS, name, lambda s: s["cacheStates"]["cacheHitRatio"] == "75.0%")["cacheStates"]
    assert states["localHitRatio"] == "75.0%"
    assert states["remoteHitRatio"] == "0.0%"
    assert states["cached"] == "30.00KiB"  # reads from the store do not fill the cache


def test_a_dataset_that_is_not_bound_cannot_be_mounted(kit: FluidKit) -> None:
    name = kit.name("unbound")
    kit.bucket(name, {"data/a": b"a"})
    kit.dataset(name, f"oss://{name}/data/")
    kit.runtime(name, replicas=1)
    kit.bound(name)
    kit.delete(fluid.JINDO_RUNTIMES, name)
    kit.phase(fluid.DATASETS, name, fluid.DATASET_NOT_BOUND)
    # the claim goes with the runtime: the pod waits for it as for any missing claim
    with pytest.raises(client.exceptions.ApiException):
        kit.core.read_namespaced_persistent_volume_claim(name, NS)


def test_a_pod_whose_dataset_lost_its_bucket_fails_saying_so(kit: FluidKit) -> None:
    name = kit.name("lost")
    bucket = kit.bucket(name, {"data/a": b"a"})
    kit.dataset(name, f"oss://{name}/data/")
    kit.runtime(name, replicas=1)
    kit.bound(name)
    bucket.delete_object("data/a")
    bucket.delete_bucket()
    wf = kit.read_workflow(name, "cat /data/a")
    assert wf["status"]["phase"] in ("Failed", "Error")
    pod = next(n for n in wf["status"]["nodes"].values() if n["type"] == "Pod")
    assert f'bucket "{name}" does not exist' in pod["message"], pod
