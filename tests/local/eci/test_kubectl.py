"""``kubectl get ic`` on the local cluster shows the ImageCache columns (NAME AGE CACHEID PHASE
PROGRESS), as ``kubectl get imagecache`` does on ACK."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.local.eci.ecikit import EciKit

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


def _get(kit: EciKit, *args: str) -> list[str]:
    assert KUBECTL is not None
    done = subprocess.run([KUBECTL, "--kubeconfig", str(kit.cluster.kubeconfig_path), "get", *args],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(kit.cluster.paths.root)})
    assert done.returncode == 0, done.stderr
    return [" ".join(line.split()) for line in done.stdout.splitlines()]


def test_kubectl_get_imagecache_by_short_name(kit: EciKit) -> None:
    name = kit.name("kctl")
    kit.create(name, {"images": ["busybox:1.36"]})
    cache_id = kit.final(name)["status"]["imageCacheId"]
    for kind in ("ic", "imagecache", "imagecaches.eci.alibabacloud.com"):
        lines = _get(kit, kind, name)
        assert lines[0] == "NAME AGE CACHEID PHASE PROGRESS"
        assert re.fullmatch(rf"{name} \d+s {cache_id} Ready 100%", lines[1]), lines[1]
