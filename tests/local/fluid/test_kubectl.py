"""``kubectl get`` of Fluid's kinds on the local cluster shows their printer columns, as the seed's
``kubectl -n argo get dataset`` / ``get dataload`` output does."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from airflow_argo_eci import fluid_conventions as fluid
from tests.local.fluid.fluidkit import NS, FluidKit

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


def _get(kit: FluidKit, *args: str) -> list[str]:
    assert KUBECTL is not None
    done = subprocess.run([KUBECTL, "--kubeconfig", str(kit.cluster.kubeconfig_path), "-n", NS, "get", *args],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(kit.cluster.paths.root)})
    assert done.returncode == 0, done.stderr
    return [" ".join(line.split()) for line in done.stdout.splitlines()]


def test_kubectl_get_dataset_dataload_and_runtime(kit: FluidKit) -> None:
    name = kit.name("kctl")
    kit.bucket(name, {"data/test.dat": b"t" * 2048})
    kit.dataset(name, f"oss://{name}/data/")
    kit.runtime(name, quota="12Gi", replicas=2)
    kit.bound(name)
    kit.dataload(name, name)
    kit.finished(name)
    kit.wait(fluid.DATASETS, name, lambda s: s["cacheStates"]["cachedPercentage"] == "100.0%")
    lines = _get(kit, "dataset", name)
    assert lines[0] == "NAME UFS TOTAL SIZE CACHED CACHE CAPACITY CACHED PERCENTAGE PHASE AGE"
    assert lines[1].startswith(f"{name} 2.00KiB 2.00KiB 24.00GiB 100.0% Bound ")
    lines = _get(kit, "dataload", name)
    assert lines[0] == "NAME DATASET PHASE AGE DURATION"
    assert lines[1].startswith(f"{name} {name} Complete ")
    lines = _get(kit, "jindoruntime", name)
    assert lines[0] == "NAME MASTER PHASE WORKER PHASE FUSE PHASE AGE"
    assert lines[1].startswith(f"{name} Ready Ready Ready ")
