"""``airflow-argo-eci doctor`` against the session's local cluster: exit codes, the table, ``--json``,
and how the target is found (flags, a running local cluster, nothing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_argo_eci.cli import main
from airflow_argo_eci.local.server import LocalCluster
from tests.conftest import ClusterTarget, kube_connection
from tests.preflight_edits import CHECK_IDS, ECI_PROFILE, IMAGECACHE_CRD, edited, removed, write_kubeconfig


@pytest.fixture
def kubeconfig(local_cluster: LocalCluster, tmp_path: Path) -> str:
    return str(write_kubeconfig(local_cluster, tmp_path / "kubeconfig"))


@pytest.fixture
def no_default_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No running local cluster in the default state dir, no $KUBECONFIG, no ~/.kube/config."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AIRFLOW_ARGO_ECI_STATE_DIR", str(tmp_path / "no-state"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return home


def test_healthy_cluster_exits_0_with_a_table(kubeconfig: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--kubeconfig", kubeconfig, "--namespace", "argo", "--require", "imagecache,fluid"]) == 0
    out = capsys.readouterr().out
    for check_id in CHECK_IDS:
        assert f"PASS     {check_id}" in out
    assert f"{len(CHECK_IDS)} pass, 0 warn, 0 fail, 0 unknown" in out


def test_json_report(kubeconfig: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--kubeconfig", kubeconfig, "--namespace", "argo", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in report["checks"]] == list(CHECK_IDS)
    assert report["summary"]["fail"] == 0 and report["namespace"] == "argo"
    assert set(report["checks"][0]) == {"id", "title", "status", "severity", "evidence", "fix"}


def test_broken_cluster_exits_1(kubeconfig: str, kube_api_client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with removed(kube_api_client, IMAGECACHE_CRD):
        assert main(["doctor", "--kubeconfig", kubeconfig, "--namespace", "argo", "--require", "imagecache",
                     "--json"]) == 1
        report = json.loads(capsys.readouterr().out)
        # not required: reported, not a failure
        assert main(["doctor", "--kubeconfig", kubeconfig, "--namespace", "argo"]) == 0
    assert {c["id"]: c["status"] for c in report["checks"]}["crds.imagecache"] == "fail"
    assert report["summary"]["fail"] == 1


def test_fail_on_warn(kubeconfig: str, kube_api_client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    def one_vswitch(obj: dict[str, Any]) -> None:
        obj["data"]["vSwitchIds"] = "vsw-local0zonea"

    with edited(kube_api_client, ECI_PROFILE, one_vswitch):
        assert main(["doctor", "--kubeconfig", kubeconfig, "--namespace", "argo"]) == 0
        assert "WARN     eci.vswitches" in capsys.readouterr().out
        assert main(["doctor", "--kubeconfig", kubeconfig, "--namespace", "argo", "--fail-on", "fail,warn"]) == 1


def test_restricted_token_fails_rbac(local_cluster: LocalCluster, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    token = local_cluster.add_token("doctor-read-only", [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}])
    path = write_kubeconfig(local_cluster, tmp_path / "read-only", token)
    assert main(["doctor", "--kubeconfig", str(path), "--namespace", "argo", "--json"]) == 1
    statuses = {c["id"]: c["status"] for c in json.loads(capsys.readouterr().out)["checks"]}
    assert statuses["rbac.workflows"] == "fail" and statuses["rbac.pods"] == "pass"


def test_connection_id(local_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ARGO_DOCTOR", kube_connection(local_cluster))
    assert main(["doctor", "--conn-id", "argo_doctor", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["namespace"] == "argo"
    assert main(["doctor", "--conn-id", "argo_doctor", "--kubeconfig", "x"]) == 2
    assert "alternatives" in capsys.readouterr().err


def test_default_target_is_the_running_local_cluster(local_cluster: LocalCluster, no_default_target: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AIRFLOW_ARGO_ECI_STATE_DIR", str(local_cluster.paths.root))
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert str(local_cluster.kubeconfig_path) in report["target"] and report["namespace"] == "argo"


def test_then_kubeconfig_env(kubeconfig: str, no_default_target: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    assert main(["doctor", "--namespace", "argo", "--json"]) == 0
    assert kubeconfig in json.loads(capsys.readouterr().out)["target"]


def test_nothing_to_check_exits_2(no_default_target: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 2
    err = capsys.readouterr().err
    assert "nothing to check" in err and "local up --detach" in err
    assert main(["doctor", "--kubeconfig", str(no_default_target / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unreachable_cluster_exits_2(local_cluster: LocalCluster, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = write_kubeconfig(local_cluster, tmp_path / "nowhere")
    doc = yaml.safe_load(path.read_text())
    for cluster in doc["clusters"]:
        cluster["cluster"]["server"] = "https://127.0.0.1:1"
    path.write_text(yaml.safe_dump(doc))
    assert main(["doctor", "--kubeconfig", str(path), "--namespace", "argo"]) == 2
    captured = capsys.readouterr()
    assert "cannot reach" in captured.err and "UNKNOWN  argo.crds" in captured.out


def test_bad_arguments_exit_2(kubeconfig: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--kubeconfig", kubeconfig, "--require", "gpu"]) == 2
    assert "cannot require gpu" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["doctor", "--fail-on", "sometimes"])
    assert exc.value.code == 2


def test_doctor_on_any_cluster_reports_every_check_with_its_evidence(any_cluster: ClusterTarget,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The same run on the local cluster and, with KUBECONFIG set, on a real one (kind, ACK): every check
    is reported with what was read; a check that is not a pass says how to fix it. The local cluster is
    set up the way the seed says, so there every check passes; a real cluster may legitimately warn or
    hide its controller (unknown), but nothing can be a pass without evidence."""
    code = main(["doctor", "--kubeconfig", str(any_cluster.kubeconfig), "--namespace", any_cluster.namespace,
                 "--json"])
    report = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in report["checks"]] == list(CHECK_IDS)
    for check in report["checks"]:
        assert check["evidence"].strip(), check
        if check["status"] != "pass":
            assert check["fix"].strip(), check
    assert code == (1 if report["summary"]["fail"] else 0)
    if any_cluster.name == "local":
        assert code == 0 and {c["status"] for c in report["checks"]} == {"pass"}, report
