"""Fluid on a local cluster whose OSS store is capped (``oss_bandwidth``): the dataset's
cacheStates move while a load copies, a load cut by a restart runs again to completion, and a
fan-out of pods reads the store once per pod until a preload warms the cache."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import config

from airflow_argo_eci import fluid_conventions as fluid
from airflow_argo_eci.local.runtime.sandbox import probe_bwrap
from airflow_argo_eci.local.server import LocalCluster
from tests.local.fluid.fluidkit import FluidKit

MIB = 1 << 20


@pytest.fixture()
def capped(tmp_path: Path) -> Iterator[tuple[LocalCluster, FluidKit]]:
    with LocalCluster(tmp_path / "state", capacity_vcpu=2, oss_bandwidth=4 * MIB) as cluster:
        yield cluster, _kit(cluster)


def _kit(cluster: LocalCluster) -> FluidKit:
    assert cluster.oss is not None
    return FluidKit(cluster, config.new_client_from_config(config_file=str(cluster.kubeconfig_path)),
                    cluster.oss.session())


def test_cache_states_move_while_a_capped_load_copies(capped: tuple[LocalCluster, FluidKit]) -> None:
    cluster, kit = capped
    name = kit.name("slow")
    kit.bucket(name, {f"data/part-{i}.bin": bytes([i]) * (2 * MIB) for i in range(4)})
    kit.dataset(name, f"oss://{name}/data/")
    kit.runtime(name, quota="64Mi", replicas=1)
    kit.bound(name)
    assert cluster.oss is not None
    sent_before = cluster.oss.transfer_counts.sent
    kit.dataload(name, name)
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = kit.get(fluid.DATASETS, name)["status"]
        percent = status["cacheStates"]["cachedPercentage"]
        if not seen or seen[-1] != percent:
            seen.append(percent)
        if (kit.get(fluid.DATALOADS, name).get("status") or {}).get("phase") == "Complete" and percent == "100.0%":
            break
        time.sleep(0.05)
    assert seen[0] == "0.0%" and seen[-1] == "100.0%"
    assert set(seen) & {"25.0%", "50.0%", "75.0%"}, seen  # seen between: the load reports as it goes
    assert cluster.oss.transfer_counts.sent - sent_before >= 8 * MIB
    duration = kit.get(fluid.DATALOADS, name)["status"]["duration"]
    assert duration in ("1s", "2s", "3s"), duration  # 8 MiB at 4 MiB/s


def test_a_load_cut_by_a_restart_runs_again(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with LocalCluster(state, capacity_vcpu=2, oss_bandwidth=2 * MIB) as cluster:
        kit = _kit(cluster)
        name = kit.name("restart")
        kit.bucket(name, {f"data/part-{i}.bin": b"r" * (2 * MIB) for i in range(3)})
        kit.dataset(name, f"oss://{name}/data/")
        kit.runtime(name, quota="64Mi", replicas=1)
        kit.bound(name)
        kit.dataload(name, name)
        kit.phase(fluid.DATALOADS, name, fluid.DATALOAD_EXECUTING)
    with LocalCluster(state, capacity_vcpu=2) as cluster:
        kit = _kit(cluster)
        assert kit.get(fluid.DATALOADS, name)["status"]["phase"] in ("Executing", "Complete")
        status = kit.finished(name)
        assert status["phase"] == "Complete", status
        kit.wait(fluid.DATASETS, name, lambda s: s["cacheStates"]["cached"] == "6.00MiB")


@pytest.mark.skipif(probe_bwrap() is not None, reason=f"bubblewrap unavailable: {probe_bwrap()}")
def test_a_fan_out_reads_the_store_per_pod_until_a_preload_warms_the_cache(
        capped: tuple[LocalCluster, FluidKit]) -> None:
    cluster, kit = capped
    assert cluster.oss is not None
    content = bytes(range(256)) * 4096  # 1 MiB
    name = kit.name("fan")
    kit.bucket(name, {"data/test.dat": content})
    kit.dataset(name, f"oss://{name}/data/")
    kit.runtime(name, quota="8Mi", replicas=1)
    kit.bound(name)
    digest = hashlib.md5(content).hexdigest()
    script = "cp /data/test.dat /tmp/test.dat && md5sum /tmp/test.dat | cut -d' ' -f1"
    before = cluster.oss.transfer_counts.sent
    wf = kit.read_workflow(name, script, steps=4)
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    assert [log.strip() for log in kit.pod_logs(wf)] == [digest] * 4
    cold = cluster.oss.transfer_counts.sent - before
    assert cold >= 4 * MIB  # every pod read the file from the store
    copies = list((cluster.paths.root / "fluid" / "argo" / name / "ufs").rglob("test.dat"))
    assert len(copies) == 1  # however many pods read it, one copy on disk
    kit.dataload(name, name)
    assert kit.finished(name)["phase"] == "Complete"
    before = cluster.oss.transfer_counts.sent
    wf = kit.read_workflow(name, script, steps=4)
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    assert [log.strip() for log in kit.pod_logs(wf)] == [digest] * 4
    warm = cluster.oss.transfer_counts.sent - before
    assert warm < MIB // 4  # listings only: the pods read the cache
    states = kit.wait(fluid.DATASETS, name, lambda s: s["cacheStates"]["cacheHitRatio"] == "50.0%")["cacheStates"]
    assert states["cachedPercentage"] == "100.0%"


def test_deleting_an_executing_dataload_stops_it(capped: tuple[LocalCluster, FluidKit]) -> None:
    cluster, kit = capped
    name = kit.name("stop")
    kit.bucket(name, {f"data/part-{i}.bin": b"s" * (4 * MIB) for i in range(3)})
    kit.dataset(name, f"oss://{name}/data/")
    kit.runtime(name, quota="64Mi", replicas=1)
    kit.bound(name)
    kit.dataload(name, name)
    kit.phase(fluid.DATALOADS, name, fluid.DATALOAD_EXECUTING)
    kit.delete(fluid.DATALOADS, name)
    deadline = time.monotonic() + 10
    while kit.core.list_namespaced_pod("argo", label_selector=f"fluid.io/dataload={name}").items:
        assert time.monotonic() < deadline, "the loader pod outlived its DataLoad"
        time.sleep(0.1)
    time.sleep(1.5)  # the copy stops within a chunk; nothing is written after
    cached = kit.cache_states(name)["cached"]
    assert cached in ("0.00B", "4.00MiB"), cached
    cache = cluster.paths.root / "fluid" / "argo" / name / "cache"
    assert not [p for p in cache.rglob("*") if p.name.endswith(".partial")]
