"""``kubectl`` against the API (served over TLS: kubectl only sends bearer tokens over TLS)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_argo_eci.local.api.resources import CONFIGMAPS, WORKFLOWS
from tests.local.api.apiserver_helpers import ApiServer, start_api_server

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    pytest.importorskip("cryptography")
    srv = start_api_server(tmp_path_factory.mktemp("tls"), tls=True)
    yield srv
    srv.stop()


def kubectl(srv: ApiServer, *args: str) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path(srv.paths.root))}
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(srv.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_kubectl_get_describe_delete(tls_server: ApiServer) -> None:
    tls_server.store.create(
        WORKFLOWS, "argo", {"metadata": {"name": "hello"}, "spec": {}, "status": {"phase": "Running"}}
    )
    out = kubectl(tls_server, "get", "wf", "-A")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    # the server answers a Table with Argo's printer columns; kubectl adds NAMESPACE itself
    assert lines[0].split() == ["NAMESPACE", "NAME", "STATUS", "AGE", "MESSAGE"]
    assert lines[1].split()[:3] == ["argo", "hello", "Running"]

    out = kubectl(tls_server, "get", "workflow", "hello", "-n", "argo", "-o", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == {"phase": "Running"}

    out = kubectl(tls_server, "get", "ns", "-o", "name")
    assert out.stdout.split() == ["namespace/argo", "namespace/default"]

    out = kubectl(tls_server, "delete", "wf", "hello", "-n", "argo")
    assert out.returncode == 0 and out.stdout.strip() == 'workflow.argoproj.io "hello" deleted'

    out = kubectl(tls_server, "get", "wf", "hello", "-n", "argo")
    assert out.returncode == 1
    assert 'workflows.argoproj.io "hello" not found' in out.stderr


def test_kubectl_create_from_yaml_and_api_resources(tls_server: ApiServer, tmp_path: Path) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  k: v\n")
    # validation off still works (test_kubectl_cluster.py creates with validation on)
    out = kubectl(tls_server, "create", "--validate=false", "-n", "argo", "-f", str(manifest))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "configmap/from-yaml created"
    assert tls_server.store.get(CONFIGMAPS, "argo", "from-yaml")["data"] == {"k": "v"}
    out = kubectl(tls_server, "api-resources", "--api-group=argoproj.io", "-o", "name")
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split()) == [
        "clusterworkflowtemplates.argoproj.io",
        "cronworkflows.argoproj.io",
        "workflows.argoproj.io",
        "workflowtemplates.argoproj.io",
    ]
