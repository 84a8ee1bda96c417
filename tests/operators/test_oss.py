"""OSS operators against the local OSS store (real HTTPS through the real hook): artifact download
(from an ArgoWorkflowOperator's XCom and by workflow name), upload, GC, and bad input."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook
from airflow_argo_eci.local.server import LocalCluster
from airflow_argo_eci.operators.oss import (
    ArgoArtifactDownloadOperator,
    OSSArtifactGCOperator,
    OSSUploadOperator,
)
from airflow_argo_eci.workflows import workflow_result
from tests.operators.oss_store import CONN_ID, OSSTarget, node, oss, oss_store, workflow

__all__ = ["oss", "oss_store"]  # fixtures


def make(cls: type[Any], task_id: str, **kwargs: Any) -> Any:
    with DAG(f"dag_{task_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        return cls(task_id=task_id, oss_conn_id=CONN_ID, **kwargs)


def run(op: Any) -> Any:
    return op.execute({})


def _crc64(data: bytes) -> str:
    from oss2.utils import Crc64

    crc = Crc64(0)
    crc.update(data)
    return str(crc.crc)


@pytest.fixture
def produced(oss: OSSTarget, tmp_path: Path) -> dict[str, Any]:
    """A finished workflow whose nodes produced: ``report`` (tgz of a file), ``tables`` (tgz of a
    directory), ``raw`` (archive: none) and ``log`` from two nodes; objects uploaded as Argo would."""
    src = tmp_path / "src"
    (src / "tables" / "nested").mkdir(parents=True)
    (src / "report.txt").write_text("rows: 42\n")
    (src / "tables" / "a.csv").write_text("a,b\n1,2\n")
    (src / "tables" / "nested" / "b.csv").write_text("c\n3\n")
    (src / "log-a.txt").write_text("from a\n")
    (src / "log-b.txt").write_text("from b\n")
    oss.put_tgz("wf-1/wf-1-gen-1/report.tgz", src / "report.txt")
    oss.put_tgz("wf-1/wf-1-gen-1/tables.tgz", src / "tables")
    oss.put("wf-1/wf-1-gen-1/raw.bin", b"\x00raw bytes\xff")
    oss.put_tgz("wf-1/wf-1-a-2/log.tgz", src / "log-a.txt")
    oss.put_tgz("wf-1/wf-1-b-3/log.tgz", src / "log-b.txt")
    oss.put("unrelated/keep.txt", b"keep")
    return workflow("wf-1", [
        node("wf-1-1", "gen", [
            {"name": "report", "path": "/tmp/report.txt", "oss": {"key": "wf-1/wf-1-gen-1/report.tgz"}},
            {"name": "tables", "path": "/tmp/tables", "oss": {"key": "wf-1/wf-1-gen-1/tables.tgz"}},
            {"name": "raw", "path": "/tmp/raw.bin", "archive": {"none": {}}, "oss": {"key": "wf-1/wf-1-gen-1/raw.bin"}},
        ]),
        node("wf-1-2", "a", [{"name": "log", "path": "/tmp/log", "oss": {"key": "wf-1/wf-1-a-2/log.tgz"}}]),
        node("wf-1-3", "b", [{"name": "log", "path": "/tmp/log", "oss": {"key": "wf-1/wf-1-b-3/log.tgz"}}]),
    ])


# ---------------------------------------------------------------------------- download


def test_download_from_xcom_unpacks_like_argo(oss: OSSTarget, produced: dict[str, Any], tmp_path: Path) -> None:
    """The upstream operator's return value lists the artifacts: no Argo connection is needed."""
    out = tmp_path / "out"
    op = make(ArgoArtifactDownloadOperator, "dl_xcom", workflow=workflow_result(produced),
              artifacts=["report", "tables", "raw", {"node": "b", "name": "log"}], local_path=str(out),
              argo_conn_id="no_such_argo_connection")
    result = run(op)
    assert result == {"report": str(out / "report"), "tables": str(out / "tables"), "raw": str(out / "raw"),
                      "b/log": str(out / "b" / "log")}
    assert (out / "report").read_text() == "rows: 42\n"  # the tgz's single file becomes the path
    assert sorted(p.relative_to(out / "tables").as_posix() for p in (out / "tables").rglob("*")) == [
        "a.csv", "nested", "nested/b.csv"]
    assert (out / "tables" / "nested" / "b.csv").read_text() == "c\n3\n"
    assert (out / "raw").read_bytes() == b"\x00raw bytes\xff"  # archive: none is taken as is
    assert (out / "b" / "log").read_text() == "from b\n"
    (out / "tables" / "a.csv").write_text("changed")
    (out / "raw").write_bytes(b"changed")
    assert run(op) == result  # a retry replaces what an earlier try left
    assert (out / "tables" / "a.csv").read_text() == "a,b\n1,2\n" and (out / "raw").read_bytes() == b"\x00raw bytes\xff"
    assert sorted(p.name for p in out.iterdir()) == ["b", "raw", "report", "tables"]  # no staging left behind
    keep = make(ArgoArtifactDownloadOperator, "dl_keep", workflow=workflow_result(produced), artifacts=["raw"],
                local_path=str(out), overwrite=False)
    with pytest.raises(WorkflowSpecError, match=r"raw already exists; .*overwrite=True"):
        run(keep)


def test_failed_download_keeps_what_was_there(oss: OSSTarget, produced: dict[str, Any], tmp_path: Path) -> None:
    from airflow_argo_eci.hooks.oss import OSSNotFoundError

    out = tmp_path / "out"
    op = make(ArgoArtifactDownloadOperator, "dl_fail", workflow=workflow_result(produced), artifacts=["tables"],
              local_path=str(out))
    run(op)
    oss.bucket.delete_object("wf-1/wf-1-gen-1/tables.tgz")
    with pytest.raises(OSSNotFoundError, match=r"tables\.tgz"):
        run(op)
    assert sorted(p.name for p in out.iterdir()) == ["tables"]  # nothing staged is left
    assert (out / "tables" / "a.csv").read_text() == "a,b\n1,2\n"


def test_as_text_returns_the_text_and_refuses_big_artifacts(oss: OSSTarget, produced: dict[str, Any]) -> None:
    xcom = workflow_result(produced)
    op = make(ArgoArtifactDownloadOperator, "dl_text", workflow=xcom, artifacts=["report"], as_text=True)
    assert run(op) == {"report": "rows: 42\n"}
    small = make(ArgoArtifactDownloadOperator, "dl_text_small", workflow=xcom, artifacts=["raw"], as_text=True,
                 max_text_bytes=4)
    with pytest.raises(WorkflowSpecError, match=r"too big for as_text.*max_text_bytes=4.*local_path="):
        run(small)


def test_unknown_artifact_lists_what_the_workflow_produced(oss: OSSTarget, produced: dict[str, Any],
                                                           tmp_path: Path) -> None:
    op = make(ArgoArtifactDownloadOperator, "dl_missing", workflow=workflow_result(produced),
              artifacts=["report", "reprot"], local_path=str(tmp_path))
    with pytest.raises(WorkflowSpecError) as error:
        run(op)
    assert "produced no OSS artifact 'reprot'" in str(error.value)
    assert "a/log, b/log, gen/raw, gen/report, gen/tables" in str(error.value)
    assert not (tmp_path / "report").exists()  # nothing is fetched before every name is known


def test_name_produced_by_several_nodes_needs_the_node(oss: OSSTarget, produced: dict[str, Any],
                                                       tmp_path: Path) -> None:
    op = make(ArgoArtifactDownloadOperator, "dl_ambiguous", workflow=workflow_result(produced), artifacts=["log"],
              as_text=True)
    with pytest.raises(WorkflowSpecError, match=r"several nodes \(a, b\).*'node'"):
        run(op)
    op = make(ArgoArtifactDownloadOperator, "dl_by_node", workflow=workflow_result(produced),
              artifacts=[{"node": "a", "name": "log"}], as_text=True)
    assert run(op) == {"a/log": "from a\n"}


def test_parent_passing_on_a_childs_artifact_is_not_ambiguous(oss: OSSTarget, produced: dict[str, Any]) -> None:
    """A steps template exporting ``from: {{steps.gen.outputs.artifacts.report}}`` names the same object."""
    produced["status"]["nodes"]["wf-1-0"] = node("wf-1-0", "wf-1", [
        {"name": "report", "path": "/tmp/report.txt", "oss": {"key": "wf-1/wf-1-gen-1/report.tgz"}}])
    op = make(ArgoArtifactDownloadOperator, "dl_exported", workflow=workflow_result(produced), artifacts=["report"],
              as_text=True)
    assert run(op) == {"report": "rows: 42\n"}


def test_rendered_xcom_text_is_accepted(oss: OSSTarget, produced: dict[str, Any]) -> None:
    """``workflow="{{ ti.xcom_pull('run') }}"`` without native rendering arrives as the dict's repr."""
    op = make(ArgoArtifactDownloadOperator, "dl_repr", workflow=str(workflow_result(produced)),
              artifacts=["report"], as_text=True)
    assert run(op) == {"report": "rows: 42\n"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"workflow": None, "artifacts": ["a"], "as_text": True}, "workflow is required"),
    ({"workflow": {"namespace": "argo"}, "artifacts": ["a"], "as_text": True}, "workflow has no 'name'"),
    ({"workflow": "  ", "artifacts": ["a"], "as_text": True}, "workflow is empty"),
    ({"workflow": 3, "artifacts": ["a"], "as_text": True}, "workflow must be a workflow name"),
    ({"workflow": "wf", "artifacts": "a", "as_text": True}, r"artifacts must be a non-empty list.*\['result'\]"),
    ({"workflow": "wf", "artifacts": [], "as_text": True}, "artifacts must be a non-empty list"),
    ({"workflow": "wf", "artifacts": [{"name": "a"}], "as_text": True}, r"\{'node': <node display name>"),
    ({"workflow": "wf", "artifacts": ["../x"], "as_text": True}, "not a plain name"),
    ({"workflow": "wf", "artifacts": ["a", "a"], "as_text": True}, r"lists \['a'\] more than once"),
    ({"workflow": "wf", "artifacts": ["a"]}, "give either local_path=.*not neither"),
    ({"workflow": "wf", "artifacts": ["a"], "as_text": True, "local_path": "/x"}, "not both"),
    ({"workflow": "wf", "artifacts": ["a"], "local_path": "relative/dir"}, "local_path must be an absolute"),
    ({"workflow": "wf", "artifacts": ["a"], "as_text": True, "max_text_bytes": 0}, "max_text_bytes must be"),
])
def test_download_bad_arguments_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowSpecError, match=message):
        make(ArgoArtifactDownloadOperator, "dl_bad", **kwargs)


def test_templated_arguments_are_checked_after_rendering() -> None:
    op = make(ArgoArtifactDownloadOperator, "dl_templated", workflow="{{ ti.xcom_pull('run') }}",
              artifacts=["a"], local_path="/data/{{ run_id }}")
    assert op.template_fields == ("workflow", "artifacts", "local_path", "namespace", "bucket_name")
    op.local_path = "relative/{{ run_id }}"
    with pytest.raises(WorkflowSpecError, match="local_path must be an absolute"):
        op._check_local_path(op.local_path)


# ---------------------------------------------------------------------------- upload


def test_upload_file_returns_key_size_and_crc(oss: OSSTarget, tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000
    (tmp_path / "in.bin").write_bytes(data)
    op = make(OSSUploadOperator, "up_file", source=str(tmp_path / "in.bin"), key_or_prefix="inputs/in.bin")
    result = run(op)
    assert result == [{"key": "inputs/in.bin", "size": len(data), "crc64": _crc64(data)}]
    assert oss.get("inputs/in.bin") == data
    head = oss.bucket.head_object("inputs/in.bin")
    assert head.headers["x-oss-hash-crc64ecma"] == result[0]["crc64"]


def test_upload_file_to_a_prefix_keeps_its_name(oss: OSSTarget, tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("x\n")
    result = run(make(OSSUploadOperator, "up_prefix", source=str(tmp_path / "data.csv"), key_or_prefix="in/"))
    assert [r["key"] for r in result] == ["in/data.csv"]


def test_upload_directory_writes_one_object_per_file(oss: OSSTarget, tmp_path: Path) -> None:
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.txt").write_text("bb")
    result = run(make(OSSUploadOperator, "up_dir", source=str(src), key_or_prefix="trees/t1"))
    assert sorted((r["key"], r["size"]) for r in result) == [("trees/t1/a.txt", 1), ("trees/t1/sub/b.txt", 2)]
    assert oss.keys("trees/") == ["trees/t1/a.txt", "trees/t1/sub/b.txt"]
    assert oss.get("trees/t1/sub/b.txt") == b"bb"


def test_upload_missing_source_names_the_argument(oss: OSSTarget, tmp_path: Path) -> None:
    op = make(OSSUploadOperator, "up_missing", source=str(tmp_path / "nope"), key_or_prefix="k")
    with pytest.raises(WorkflowSpecError, match=r"source .*nope.* is neither a file nor a directory"):
        run(op)
    assert oss.keys() == []


@pytest.mark.parametrize(("key", "message"), [
    ("", "key_or_prefix must be a non-empty"), ("/", "key_or_prefix must be a non-empty"),
    ("/abs/key", "must not start with '/'"), ("a/../b", r"'\.\.' segments"),
])
def test_upload_bad_key_fails_at_construction(key: str, message: str) -> None:
    with pytest.raises(WorkflowSpecError, match=message):
        make(OSSUploadOperator, "up_bad", source="/tmp/x", key_or_prefix=key)


# ---------------------------------------------------------------------------- GC


def test_gc_prefix_dry_run_lists_and_deletes_nothing(oss: OSSTarget) -> None:
    for key in ("art/wf-a/x.tgz", "art/wf-a/y.tgz", "art/wf-b/z.tgz", "keep/k"):
        oss.put(key, b"1")
    listed = run(make(OSSArtifactGCOperator, "gc_dry", prefix="art/wf-a/", dry_run=True))
    assert sorted(listed) == ["art/wf-a/x.tgz", "art/wf-a/y.tgz"]
    assert len(oss.keys()) == 4
    deleted = run(make(OSSArtifactGCOperator, "gc_prefix", prefix="art/"))
    assert sorted(deleted) == ["art/wf-a/x.tgz", "art/wf-a/y.tgz", "art/wf-b/z.tgz"]
    assert oss.keys() == ["keep/k"]


def test_gc_older_than_spares_recent_objects(oss: OSSTarget) -> None:
    oss.put("old/a", b"1")
    assert run(make(OSSArtifactGCOperator, "gc_recent", prefix="old/", older_than=timedelta(hours=1))) == []
    assert run(make(OSSArtifactGCOperator, "gc_all_old", prefix="old/",
                    older_than=pendulum.now("UTC").add(minutes=1))) == ["old/a"]
    assert oss.keys() == []


def test_gc_workflow_reclaims_its_artifacts_only(oss: OSSTarget, produced: dict[str, Any]) -> None:
    oss.put("wf-1/wf-1-gen-1/raw.bin/part-0", b"raw directory object")  # a raw directory's objects go too
    oss.put("wf-1/wf-1-gen-1/raw.binary", b"not the artifact")  # ...but not a mere prefix match
    xcom = workflow_result(produced)
    expected = ["wf-1/wf-1-a-2/log.tgz", "wf-1/wf-1-b-3/log.tgz", "wf-1/wf-1-gen-1/raw.bin",
                "wf-1/wf-1-gen-1/raw.bin/part-0", "wf-1/wf-1-gen-1/report.tgz", "wf-1/wf-1-gen-1/tables.tgz"]
    assert sorted(run(make(OSSArtifactGCOperator, "gc_wf_dry", workflow=xcom, dry_run=True))) == expected
    assert len(oss.keys()) == 8
    assert sorted(run(make(OSSArtifactGCOperator, "gc_wf", workflow=xcom))) == expected
    assert oss.keys() == ["unrelated/keep.txt", "wf-1/wf-1-gen-1/raw.binary"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "exactly one of workflow="), ({"workflow": "wf", "prefix": "p/"}, "exactly one of workflow="),
    ({"prefix": ""}, "reclaiming a whole bucket is refused"), ({"prefix": "//"}, "whole bucket is refused"),
    ({"workflow": "wf", "older_than": 60}, "older_than= applies to prefix= only"),
    ({"prefix": "p/", "older_than": -1}, "older_than must be"),
    ({"prefix": "p/", "older_than": pendulum.now().naive()}, "has no time zone"),
])
def test_gc_bad_arguments_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowSpecError, match=message):
        make(OSSArtifactGCOperator, "gc_bad", **kwargs)


def test_template_fields() -> None:
    assert OSSUploadOperator.template_fields == ("source", "key_or_prefix", "bucket_name")
    assert OSSArtifactGCOperator.template_fields == ("workflow", "prefix", "namespace", "bucket_name")


# ---------------------------------------------------------------------------- by workflow name (local cluster)


def finished_workflow(cluster: LocalCluster, command: str = "true") -> str:
    """Run a one-pod workflow on the local cluster and wait for it to succeed; returns its name."""
    body = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "art-"},
            "spec": {"entrypoint": "main", "templates": [
                {"name": "main", "container": {"image": "alpine:3.20", "command": ["sh", "-c", command]}}]}}
    hook = ArgoWorkflowsHook()
    name = hook.create_workflow(body, namespace="argo")["metadata"]["name"]
    deadline = time.monotonic() + 30
    while (hook.get_workflow(name, namespace="argo").get("status") or {}).get("phase") != "Succeeded":
        assert time.monotonic() < deadline, f"workflow {name} did not succeed"
        time.sleep(0.1)
    return name


def record_outputs(cluster: LocalCluster, name: str, artifacts: list[dict[str, Any]]) -> None:
    """Write output artifacts into the pod node's status, as Argo's wait container reports them
    (a merge patch of the status through the cluster's Kubernetes API)."""
    from kubernetes import client, config

    nodes = ArgoWorkflowsHook().get_workflow(name, namespace="argo")["status"]["nodes"]
    patch = {"status": {"nodes": {node_id: {"outputs": {"artifacts": artifacts}}
                                  for node_id, entry in nodes.items() if entry["type"] == "Pod"}}}
    with config.new_client_from_config(config_file=str(cluster.kubeconfig_path)) as api:
        client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
            "argoproj.io", "v1alpha1", "argo", "workflows", name, patch,
            _content_type="application/merge-patch+json")


def test_download_by_workflow_name_reads_the_workflow(argo_default: LocalCluster, oss: OSSTarget,
                                                      tmp_path: Path) -> None:
    name = finished_workflow(argo_default)
    (tmp_path / "result.txt").write_text("by name\n")
    oss.put_tgz(f"{name}/{name}/result.tgz", tmp_path / "result.txt")
    record_outputs(argo_default, name, [{"name": "result", "path": "/tmp/result.txt",
                                         "oss": {"key": f"{name}/{name}/result.tgz"}}])  # key only: bucket from conn
    assert run(make(ArgoArtifactDownloadOperator, "dl_by_name", workflow=name, artifacts=["result"],
                    as_text=True)) == {"result": "by name\n"}
    out = tmp_path / "out"
    result = run(make(ArgoArtifactDownloadOperator, "dl_by_ref", workflow={"name": name, "namespace": "argo"},
                      artifacts=[{"node": name, "name": "result"}], local_path=str(out)))
    assert result == {f"{name}/result": str(out / name / "result")}
    assert (out / name / "result").read_text() == "by name\n"
    assert run(make(OSSArtifactGCOperator, "gc_by_name", workflow=name)) == [f"{name}/{name}/result.tgz"]
    assert oss.keys() == []


def test_download_by_name_of_missing_or_running_workflow(argo_default: LocalCluster, oss: OSSTarget) -> None:
    op = make(ArgoArtifactDownloadOperator, "dl_no_wf", workflow="no-such-workflow", artifacts=["a"], as_text=True)
    with pytest.raises(WorkflowSpecError, match="workflow argo/no-such-workflow does not exist"):
        run(op)
    body = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "art-run-"},
            "spec": {"entrypoint": "main", "templates": [
                {"name": "main", "container": {"image": "alpine:3.20", "command": ["sh", "-c", "sleep 2"]}}]}}
    name = ArgoWorkflowsHook().create_workflow(body, namespace="argo")["metadata"]["name"]
    op = make(ArgoArtifactDownloadOperator, "dl_running", workflow=name, artifacts=["a"], as_text=True)
    with pytest.raises(WorkflowSpecError, match=f"workflow argo/{name} is (Pending|Running), not finished"):
        run(op)


# ---------------------------------------------------------------------------- end to end (local executor)


class _TI:
    """The slice of a TaskInstance ArgoWorkflowOperator uses."""

    try_number, map_index = 1, -1

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


PASSING = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: artifact-passing-}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: generate, template: generate}
    - - name: consume
        template: consume
        arguments:
          artifacts: [{name: message, from: "{{steps.generate.outputs.artifacts.hello-art}}"}]
  - name: generate
    container:
      image: alpine:3.20
      command: [sh, -c]
      args: ["echo hello world > /tmp/hello.txt; mkdir -p /tmp/tree/sub; echo leaf > /tmp/tree/sub/leaf.txt;
              printf raw > /tmp/note.txt"]
    outputs:
      artifacts:
      - {name: hello-art, path: /tmp/hello.txt}
      - {name: tree, path: /tmp/tree}
      - {name: note, path: /tmp/note.txt, archive: {none: {}}}
  - name: consume
    inputs:
      artifacts: [{name: message, path: /tmp/message}]
    container: {image: alpine:3.20, command: [sh, -c], args: ["cat /tmp/message"]}
"""


def test_end_to_end_workflow_outputs_to_local_files_then_gc(argo_default: LocalCluster, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """ArgoWorkflowOperator -> ArgoArtifactDownloadOperator -> OSSArtifactGCOperator on the local
    cluster, whose executor stores artifacts in its OSS store like Argo's wait container."""
    import json

    from airflow_argo_eci.local.connections import ARTIFACT_BUCKET, oss_connection
    from airflow_argo_eci.local.oss.app import DEFAULT_REGION
    from airflow_argo_eci.operators.argo import ArgoWorkflowOperator

    assert argo_default.oss is not None
    monkeypatch.setenv("AIRFLOW_CONN_OSS_LOCAL", json.dumps(
        oss_connection(argo_default.paths, argo_default.oss.endpoint, region=DEFAULT_REGION)))
    with DAG("dag_e2e_artifacts", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        run_wf = ArgoWorkflowOperator(task_id="run", workflow=PASSING, poll_interval=0.2, get_logs=False)
    context: Any = {"ti": _TI(), "run_id": "run-e2e-artifacts"}
    result = run_wf.execute(context)
    assert result["phase"] == "Succeeded", result
    produced = {a["name"]: a for a in result["artifacts"]}
    assert set(produced) == {"hello-art", "tree", "note"} and all(a["type"] == "oss" for a in produced.values())

    out = tmp_path / "e2e"
    common = {"workflow": result, "oss_conn_id": "oss_local"}
    files = make_with(ArgoArtifactDownloadOperator, "e2e_download", artifacts=["hello-art", "tree", "note"],
                      local_path=str(out), **common).execute({})
    assert files == {name: str(out / name) for name in ("hello-art", "tree", "note")}
    assert (out / "hello-art").read_text() == "hello world\n"
    assert (out / "tree" / "sub" / "leaf.txt").read_text() == "leaf\n"
    assert (out / "note").read_text() == "raw"
    texts = make_with(ArgoArtifactDownloadOperator, "e2e_text", artifacts=["hello-art"], as_text=True,
                      **common).execute({})
    assert texts == {"hello-art": "hello world\n"}

    deleted = make_with(OSSArtifactGCOperator, "e2e_gc", **common).execute({})
    assert sorted(deleted) == sorted(a["key"] for a in produced.values())
    import oss2

    store = argo_default.oss
    bucket = oss2.Bucket(oss2.Auth(*next(iter(argo_default.oss_credentials().items()))), store.endpoint,
                         ARTIFACT_BUCKET, session=store.session())
    assert not any(bucket.object_exists(a["key"]) for a in produced.values())


def make_with(cls: type[Any], task_id: str, **kwargs: Any) -> Any:
    with DAG(f"dag_{task_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        return cls(task_id=task_id, **kwargs)
