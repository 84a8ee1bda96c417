"""``kubectl`` as on a real cluster: Table output with Argo's printer columns, ``create``/``apply``
validated through the OpenAPI documents, ``get -w``, and ``delete`` of an object with a finalizer."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import CONFIGMAPS, PODS, WORKFLOWS
from tests.local.api.apiserver_helpers import ApiServer, start_api_server

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    pytest.importorskip("cryptography")
    srv = start_api_server(tmp_path_factory.mktemp("tls"), tls=True)
    yield srv
    srv.stop()


def _command(srv: ApiServer, *args: str) -> list[str]:
    assert KUBECTL is not None
    return [KUBECTL, "--kubeconfig", str(srv.kubeconfig), *args]


def _env(srv: ApiServer) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(Path(srv.paths.root))}


def kubectl(srv: ApiServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_command(srv, *args), capture_output=True, text=True, timeout=60, env=_env(srv),
                          check=False)


def _rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def test_get_workflows_all_namespaces_shows_argo_columns(tls_server: ApiServer) -> None:
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1230))
    tls_server.store.create(WORKFLOWS, "argo", {
        "metadata": {"name": "tbl-running"}, "spec": {},
        "status": {"phase": "Running", "startedAt": started, "message": "waiting"},
    })
    tls_server.store.create(WORKFLOWS, "default", {"metadata": {"name": "tbl-new"}, "spec": {}})
    out = kubectl(tls_server, "get", "wf", "-A")
    assert out.returncode == 0, out.stderr
    rows = _rows(out.stdout)
    assert rows[0] == ["NAMESPACE", "NAME", "STATUS", "AGE", "MESSAGE"]
    assert ["argo", "tbl-running", "Running", "20m", "waiting"] in rows
    # a workflow the controller has not seen yet has no phase, start time nor message: empty cells
    assert ["default", "tbl-new"] in rows

    out = kubectl(tls_server, "get", "workflows.argoproj.io", "tbl-running", "-n", "argo", "--no-headers")
    assert out.returncode == 0, out.stderr
    assert _rows(out.stdout) == [["tbl-running", "Running", "20m", "waiting"]]


def test_get_pods_shows_ready_status_restarts_age(tls_server: ApiServer) -> None:
    containers = [{"name": "main", "image": "alpine"}, {"name": "wait", "image": "alpine"}]
    tls_server.store.create(PODS, "argo", {
        "metadata": {"name": "tbl-pod-a"}, "spec": {"containers": containers},
        "status": {"phase": "Running", "podIP": "127.0.0.5", "containerStatuses": [
            {"name": "main", "ready": True, "restartCount": 1, "state": {"running": {}}},
            {"name": "wait", "ready": True, "restartCount": 0, "state": {"running": {}}},
        ]},
    })
    tls_server.store.create(PODS, "argo", {
        "metadata": {"name": "tbl-pod-b"}, "spec": {"containers": containers[:1]},
        "status": {"phase": "Failed", "containerStatuses": [
            {"name": "main", "ready": False, "restartCount": 0,
             "state": {"terminated": {"exitCode": 1, "reason": "Error"}}},
        ]},
    })
    out = kubectl(tls_server, "get", "pods", "-n", "argo")
    assert out.returncode == 0, out.stderr
    rows = _rows(out.stdout)
    assert rows[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    by_name = {row[0]: row for row in rows[1:]}
    assert by_name["tbl-pod-a"][1:4] == ["2/2", "Running", "1"]
    assert by_name["tbl-pod-b"][1:4] == ["0/1", "Error", "0"]
    out = kubectl(tls_server, "get", "pod", "tbl-pod-a", "-n", "argo", "-o", "wide")
    assert out.returncode == 0, out.stderr
    rows = _rows(out.stdout)
    assert rows[0][:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert rows[1][5] == "127.0.0.5"
    # pods are in the "all" category, like Argo's workflows
    out = kubectl(tls_server, "get", "all", "-n", "argo", "-o", "name")
    assert out.returncode == 0, out.stderr
    assert {"pod/tbl-pod-a", "pod/tbl-pod-b"} <= set(out.stdout.split())
    assert any(line.startswith("workflow.argoproj.io/") for line in out.stdout.split())
    # -o json still returns the object, not the table
    out = kubectl(tls_server, "get", "pod", "tbl-pod-a", "-n", "argo", "-o", "json")
    assert json.loads(out.stdout)["kind"] == "Pod"


def test_get_other_kinds_have_their_columns(tls_server: ApiServer) -> None:
    tls_server.store.create(CONFIGMAPS, "argo", {"metadata": {"name": "tbl-cm"}, "data": {"a": "1", "b": "2"}})
    out = kubectl(tls_server, "get", "cm", "tbl-cm", "-n", "argo")
    assert out.returncode == 0, out.stderr
    assert _rows(out.stdout)[0] == ["NAME", "DATA", "AGE"]
    assert _rows(out.stdout)[1][:2] == ["tbl-cm", "2"]
    out = kubectl(tls_server, "get", "ns")
    assert _rows(out.stdout)[0] == ["NAME", "STATUS", "AGE"]
    assert ["argo", "Active"] == _rows(out.stdout)[1][:2]
    out = kubectl(tls_server, "get", "cwf", "-A")
    assert out.returncode == 0, out.stderr
    assert "No resources found" in out.stderr


def test_create_and_apply_validate_without_flag(tls_server: ApiServer, tmp_path: Path) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  k: v\n")
    out = kubectl(tls_server, "create", "-n", "argo", "-f", str(manifest))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "configmap/applied created"

    wf = tmp_path / "wf.yaml"
    wf.write_text("apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: applied-wf\n"
                  "spec:\n  entrypoint: main\n  arguments:\n    parameters:\n    - name: a\n      value: '1'\n")
    out = kubectl(tls_server, "apply", "-n", "argo", "-f", str(wf))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "workflow.argoproj.io/applied-wf created"
    stored = tls_server.store.get(WORKFLOWS, "argo", "applied-wf")
    last = json.loads(stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last["spec"]["entrypoint"] == "main"

    # applied again, changed: a three-way merge patch removes what the last apply had and this one has not
    wf.write_text("apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: applied-wf\n"
                  "  labels:\n    team: data\nspec:\n  entrypoint: other\n")
    out = kubectl(tls_server, "apply", "-n", "argo", "-f", str(wf))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "workflow.argoproj.io/applied-wf configured"
    assert "warning" not in out.stderr.lower(), out.stderr
    stored = tls_server.store.get(WORKFLOWS, "argo", "applied-wf")
    assert stored["spec"] == {"entrypoint": "other"}
    assert stored["metadata"]["labels"] == {"team": "data"}
    out = kubectl(tls_server, "apply", "-n", "argo", "-f", str(wf))
    assert out.returncode == 0 and out.stdout.strip() == "workflow.argoproj.io/applied-wf unchanged", out

    # a built-in kind: kubectl sends a strategic merge patch
    out = kubectl(tls_server, "apply", "-n", "argo", "-f", str(manifest))
    assert out.returncode == 0, out.stderr
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  j: x\n")
    out = kubectl(tls_server, "apply", "-n", "argo", "-f", str(manifest))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "configmap/applied configured"
    assert "warning" not in out.stderr.lower(), out.stderr
    assert tls_server.store.get(CONFIGMAPS, "argo", "applied")["data"] == {"j": "x"}


def test_apply_a_list_file(tls_server: ApiServer, tmp_path: Path) -> None:
    # kubectl checks a `kind: List` file against OpenAPI v2 (protobuf) itself
    manifest = tmp_path / "list.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: ConfigMap, metadata: {name: in-list}, data: {k: v}}\n"
        "- {apiVersion: argoproj.io/v1alpha1, kind: Workflow, metadata: {name: in-list-wf}, spec: {entrypoint: x}}\n"
    )
    out = kubectl(tls_server, "apply", "-n", "argo", "-f", str(manifest))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["configmap/in-list created", "workflow.argoproj.io/in-list-wf created"]
    manifest.write_text(manifest.read_text().replace("k: v", "k: v2"))
    out = kubectl(tls_server, "apply", "-n", "argo", "-f", str(manifest))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["configmap/in-list configured", "workflow.argoproj.io/in-list-wf unchanged"]
    assert tls_server.store.get(CONFIGMAPS, "argo", "in-list")["data"] == {"k": "v2"}


def test_create_bad_manifest_names_the_field(tls_server: ApiServer, tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n")
    out = kubectl(tls_server, "create", "-n", "argo", "-f", str(manifest))
    assert out.returncode == 1
    assert "metadata.name" in out.stderr and "Bad_Name" in out.stderr


def test_delete_with_finalizer_waits_for_it(tls_server: ApiServer) -> None:
    tls_server.store.create(CONFIGMAPS, "argo", {
        "metadata": {"name": "fin-cm", "finalizers": ["example.com/hold"]}, "data": {"k": "v"},
    })
    out = kubectl(tls_server, "delete", "cm", "fin-cm", "-n", "argo", "--wait=false")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'configmap "fin-cm" deleted'
    held = tls_server.store.get(CONFIGMAPS, "argo", "fin-cm")
    assert held["metadata"]["deletionTimestamp"]
    # kubectl delete (waiting) returns once the finalizer is removed
    waiting = subprocess.Popen(_command(tls_server, "delete", "cm", "fin-cm", "-n", "argo", "--timeout=30s"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tls_server))
    try:
        time.sleep(1.0)
        assert waiting.poll() is None, waiting.communicate()
        out = kubectl(tls_server, "patch", "cm", "fin-cm", "-n", "argo", "--type=json",
                      "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
        assert out.returncode == 0, out.stderr
        stdout, stderr = waiting.communicate(timeout=30)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    assert waiting.returncode == 0, stderr
    assert stdout.strip() == 'configmap "fin-cm" deleted'
    with pytest.raises(ApiError) as gone:
        tls_server.store.get(CONFIGMAPS, "argo", "fin-cm")
    assert gone.value.code == 404


def test_get_watch_prints_rows(tls_server: ApiServer) -> None:
    tls_server.store.create(WORKFLOWS, "argo", {"metadata": {"name": "watched"}, "spec": {},
                                                "status": {"phase": "Pending"}})
    proc = subprocess.Popen(_command(tls_server, "get", "wf", "watched", "-n", "argo", "-w",
                                     "--request-timeout=4s"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tls_server))
    try:
        time.sleep(1.5)
        tls_server.store.update(WORKFLOWS, "argo", "watched",
                                lambda wf: {**wf, "status": {"phase": "Running", "message": "go"}})
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rows = _rows(stdout)
    assert rows[0] == ["NAME", "STATUS", "AGE", "MESSAGE"], (stdout, stderr)
    assert rows[1][:2] == ["watched", "Pending"]
    assert ["watched", "Running"] in [row[:2] for row in rows[2:]], (stdout, stderr)
