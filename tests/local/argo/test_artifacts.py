"""Artifacts on the local cluster, end to end: the objects in the OSS store, node status, input
placement, ``from`` between steps and DAG tasks, optional and missing artifacts, another
repository, artifact GC and a restart."""

from __future__ import annotations

import base64
import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import oss2
import pytest
import yaml

from airflow_argo_eci import conventions
from airflow_argo_eci.local.api.resources import CONFIGMAPS, SECRETS, WORKFLOWS
from airflow_argo_eci.local.server import ARTIFACT_BUCKET, LocalCluster

NS = "argo"


def bucket_of(cluster: LocalCluster, name: str = ARTIFACT_BUCKET) -> oss2.Bucket:
    assert cluster.oss is not None
    key_id, secret = next(iter(cluster.oss_credentials().items()))
    return oss2.Bucket(oss2.Auth(key_id, secret), cluster.oss.endpoint, name, session=cluster.oss.session())


def run(cluster: LocalCluster, text: str, timeout: float = 60.0) -> dict[str, Any]:
    assert cluster.store is not None
    doc = yaml.safe_load(text)
    doc["metadata"]["namespace"] = NS
    name = cluster.store.create(WORKFLOWS, NS, doc)["metadata"]["name"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wf = cluster.store.get(WORKFLOWS, NS, name)
        if (wf.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Error"):
            return wf
        time.sleep(0.1)
    raise AssertionError(f"workflow {name} did not finish in {timeout}s")


def node(wf: dict[str, Any], display: str) -> dict[str, Any]:
    found = [n for n in wf["status"]["nodes"].values() if n["displayName"] == display]
    assert len(found) == 1, f"{display}: {[n['displayName'] for n in wf['status']['nodes'].values()]}"
    return found[0]


def pod_name(wf: dict[str, Any], display: str) -> str:
    n = node(wf, display)
    return conventions.pod_name(wf["metadata"]["name"], n["name"], n["templateName"])


def log_of(cluster: LocalCluster, wf: dict[str, Any], display: str) -> str:
    path = cluster.paths.log_file(NS, pod_name(wf, display))
    return "\n".join(line.split(" ", 1)[1] for line in path.read_text().splitlines())


def artifacts(n: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in (n.get("outputs") or {}).get("artifacts") or []}


def tar_members(data: bytes) -> dict[str, bytes | None]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
                for m in tar.getmembers()}


def test_local_up_creates_the_artifact_repository(local_cluster: LocalCluster) -> None:
    assert local_cluster.store is not None and local_cluster.oss is not None
    key_id, secret = next(iter(local_cluster.oss_credentials().items()))
    for ns in ("default", "argo"):
        cm = local_cluster.store.get(CONFIGMAPS, ns, "artifact-repositories")
        assert cm["metadata"]["annotations"]["workflows.argoproj.io/default-artifact-repository"] == "default-v1"
        repo = yaml.safe_load(cm["data"]["default-v1"])
        assert repo == {"oss": {"endpoint": local_cluster.oss.endpoint, "bucket": "argo-artifacts",
                                "keyFormat": "{{workflow.name}}/{{pod.name}}",
                                "accessKeySecret": {"name": "argo-oss-credentials", "key": "accessKey"},
                                "secretKeySecret": {"name": "argo-oss-credentials", "key": "secretKey"}}}
        data = local_cluster.store.get(SECRETS, ns, "argo-oss-credentials")["data"]
        assert base64.b64decode(data["accessKey"]).decode() == key_id
        assert base64.b64decode(data["secretKey"]).decode() == secret
    assert bucket_of(local_cluster).list_objects(max_keys=1).status == 200  # the bucket exists
    before = local_cluster.store.get(CONFIGMAPS, "argo", "artifact-repositories")["metadata"]["resourceVersion"]
    local_cluster.setup_artifact_repository()
    after = local_cluster.store.get(CONFIGMAPS, "argo", "artifact-repositories")["metadata"]["resourceVersion"]
    assert before == after, "a second setup must not touch an up-to-date ConfigMap"


OUTPUTS = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: art-outputs-}
spec:
  entrypoint: make
  templates:
  - name: make
    container:
      image: alpine:3.23
      command: [sh, -c]
      args: ["mkdir -p /work/tree/sub && echo one > /work/tree/a.txt && echo two > /work/tree/sub/b.txt &&
              echo plain > /tmp/plain.txt && echo level0 > /tmp/l0.txt"]
    outputs:
      artifacts:
      - {name: file-tgz, path: /tmp/plain.txt}
      - {name: dir-tgz, path: /work/tree}
      - {name: file-raw, path: /tmp/plain.txt, archive: {none: {}}}
      - {name: dir-raw, path: /work/tree, archive: {none: {}}}
      - {name: level0, path: /tmp/l0.txt, archive: {tar: {compressionLevel: 0}}}
      - {name: explicit, path: /tmp/plain.txt, archive: {none: {}}, oss: {key: "explicit/{{workflow.name}}.txt"}}
      - {name: absent, path: /tmp/nothing-here, optional: true}
"""


def test_output_artifacts_in_the_store_and_in_node_status(local_cluster: LocalCluster) -> None:
    wf = run(local_cluster, OUTPUTS)
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    name = wf["metadata"]["name"]
    pod = pod_name(wf, name)
    arts = artifacts(node(wf, name))
    assert "absent" not in arts  # optional and missing: not recorded
    assert local_cluster.oss is not None
    assert arts["file-tgz"] == {"name": "file-tgz", "path": "/tmp/plain.txt",
                                "oss": {"endpoint": local_cluster.oss.endpoint, "bucket": "argo-artifacts",
                                        "key": f"{name}/{pod}/file-tgz.tgz",
                                        "accessKeySecret": {"name": "argo-oss-credentials", "key": "accessKey"},
                                        "secretKeySecret": {"name": "argo-oss-credentials", "key": "secretKey"}}}
    assert arts["file-raw"]["oss"]["key"] == f"{name}/{pod}/plain.txt"
    assert arts["file-raw"]["archive"] == {"none": {}}
    assert arts["dir-raw"]["oss"]["key"] == f"{name}/{pod}/tree"
    assert arts["explicit"]["oss"]["key"] == f"explicit/{name}.txt"
    bucket = bucket_of(local_cluster)
    assert tar_members(bucket.get_object(f"{name}/{pod}/file-tgz.tgz").read()) == {"plain.txt": b"plain\n"}
    assert tar_members(bucket.get_object(f"{name}/{pod}/dir-tgz.tgz").read()) == {
        "tree": None, "tree/a.txt": b"one\n", "tree/sub": None, "tree/sub/b.txt": b"two\n"}
    level0 = bucket.get_object(f"{name}/{pod}/level0.tgz").read()
    assert tar_members(level0) == {"l0.txt": b"level0\n"}
    assert b"level0" in level0, "compressionLevel 0 stores the content uncompressed"
    assert bucket.get_object(f"{name}/{pod}/plain.txt").read() == b"plain\n"
    assert bucket.get_object(f"explicit/{name}.txt").read() == b"plain\n"
    listed = sorted(o.key for o in oss2.ObjectIteratorV2(bucket, prefix=f"{name}/{pod}/tree"))
    assert listed == [f"{name}/{pod}/tree/", f"{name}/{pod}/tree/a.txt", f"{name}/{pod}/tree/sub/",
                      f"{name}/{pod}/tree/sub/b.txt"]
    assert bucket.get_object(f"{name}/{pod}/tree/sub/b.txt").read() == b"two\n"
    assert wf["status"]["artifactRepositoryRef"]["configMap"] == "artifact-repositories"
    assert wf["status"]["artifactRepositoryRef"]["key"] == "default-v1"


PASSING = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: art-steps-}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: gen, template: gen}
    - - name: use
        template: use
        arguments:
          artifacts:
          - {name: file, from: "{{steps.gen.outputs.artifacts.file}}"}
          - {name: tree, from: "{{steps.gen.outputs.artifacts.tree}}"}
          - {name: raw-tree, from: "{{steps.gen.outputs.artifacts.raw-tree}}"}
          - {name: one, from: "{{steps.gen.outputs.artifacts.raw-tree}}", subPath: sub/b.txt}
  - name: gen
    container:
      image: alpine:3.23
      command: [sh, -c]
      args: ["mkdir -p /out/tree/sub && echo A > /out/tree/a && echo B > /out/tree/sub/b.txt && echo F > /tmp/f"]
    outputs:
      artifacts:
      - {name: file, path: /tmp/f}
      - {name: tree, path: /out/tree}
      - {name: raw-tree, path: /out/tree, archive: {none: {}}}
  - name: use
    inputs:
      artifacts:
      - {name: file, path: /in/file.txt}
      - {name: tree, path: /in/tree}
      - {name: raw-tree, path: /tmp/raw}
      - {name: one, path: /in/one.txt, mode: 0400}
      - {name: nothing, path: /in/nothing, optional: true}
    container:
      image: alpine:3.23
      command: [sh, -c]
      args: ["cat /in/file.txt /in/tree/a /in/tree/sub/b.txt /tmp/raw/a /in/one.txt && stat -c %a /in/one.txt &&
              test ! -e /in/nothing"]
"""


def test_from_between_steps_places_files_and_directories(local_cluster: LocalCluster) -> None:
    wf = run(local_cluster, PASSING)
    assert wf["status"]["phase"] == "Succeeded", (wf["status"].get("message"), log_of(local_cluster, wf, "use"))
    assert log_of(local_cluster, wf, "use").split() == ["F", "A", "B", "A", "B", "400"]
    gen = artifacts(node(wf, "gen"))
    inputs = {a["name"]: a for a in node(wf, "use")["inputs"]["artifacts"]}
    assert inputs["file"]["oss"]["key"] == gen["file"]["oss"]["key"]
    assert inputs["file"]["path"] == "/in/file.txt"
    assert inputs["one"]["oss"]["key"] == gen["raw-tree"]["oss"]["key"] + "/sub/b.txt"
    assert "oss" not in inputs["nothing"]


DAG = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: art-dag-}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: gen, template: gen}
      - name: use
        template: use
        depends: gen
        arguments:
          artifacts:
          - {name: msg, from: "{{tasks.gen.outputs.artifacts.msg}}"}
          - {name: maybe, from: "{{tasks.gen.outputs.artifacts.maybe}}", optional: true}
    outputs:
      artifacts:
      - {name: final, from: "{{tasks.gen.outputs.artifacts.msg}}", globalName: final-msg}
  - name: gen
    container:
      image: alpine:3.23
      command: [sh, -c]
      args: ["echo from-dag > /tmp/msg"]
    outputs:
      artifacts:
      - {name: msg, path: /tmp/msg}
      - {name: maybe, path: /tmp/maybe, optional: true}
  - name: use
    inputs:
      artifacts:
      - {name: msg, path: /tmp/in}
      - {name: maybe, path: /tmp/maybe, optional: true}
    container:
      image: alpine:3.23
      command: [sh, -c]
      args: ["cat /tmp/in && test ! -e /tmp/maybe"]
"""


def test_from_between_dag_tasks_template_outputs_and_globals(local_cluster: LocalCluster) -> None:
    wf = run(local_cluster, DAG)
    assert wf["status"]["phase"] == "Succeeded", (wf["status"].get("message"), node(wf, "use").get("message"))
    assert log_of(local_cluster, wf, "use") == "from-dag"
    key = artifacts(node(wf, "gen"))["msg"]["oss"]["key"]
    assert artifacts(node(wf, wf["metadata"]["name"]))["final"]["oss"]["key"] == key
    (glob,) = wf["status"]["outputs"]["artifacts"]
    assert (glob["name"], glob["oss"]["key"]) == ("final-msg", key)


MISSING = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: art-missing-}
spec:
  entrypoint: make
  templates:
  - name: make
    container: {image: alpine:3.23, command: [sh, -c], args: ["echo done"]}
    outputs:
      parameters:
      - {name: p, valueFrom: {path: /tmp/p, default: dflt}}
      artifacts:
      - {name: gone, path: /tmp/never-written.txt}
"""


def test_missing_output_artifact_fails_the_node_with_argos_message(local_cluster: LocalCluster) -> None:
    wf = run(local_cluster, MISSING)
    n = node(wf, wf["metadata"]["name"])
    assert wf["status"]["phase"] == "Error"
    assert n["phase"] == "Error"
    assert n["message"] == "open /var/run/argo/outputs/artifacts/tmp/never-written.txt.tgz: no such file or directory"
    assert n["outputs"]["result"] == "done"  # result and parameters are unaffected
    assert n["outputs"]["parameters"] == [{"name": "p", "value": "dflt", "valueFrom": {"path": "/tmp/p",
                                                                                       "default": "dflt"}}]


def test_missing_input_object_and_unresolvable_from(local_cluster: LocalCluster) -> None:
    wf = run(local_cluster, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: art-noobj-}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: read, template: read}
      - name: bad-ref
        template: read
        arguments: {artifacts: [{name: f, from: "{{steps.nowhere.outputs.artifacts.x}}"}]}
  - name: read
    inputs:
      artifacts: [{name: f, path: /tmp/f, oss: {key: "does/not/exist"}}]
    container: {image: alpine:3.23, command: [sh, -c], args: ["cat /tmp/f"]}
""")
    assert wf["status"]["phase"] == "Failed"
    assert node(wf, "read")["message"].startswith("artifact f failed to load: artifact object argo-artifacts/"
                                                  "does/not/exist not found")
    assert node(wf, "bad-ref")["message"] == "Unable to resolve: {{steps.nowhere.outputs.artifacts.x}}"


def test_artifact_repository_ref_uses_another_bucket(local_cluster: LocalCluster) -> None:
    assert local_cluster.store is not None and local_cluster.oss is not None
    other = bucket_of(local_cluster, "team-artifacts")
    try:
        other.create_bucket()
    except oss2.exceptions.OssError as exc:
        assert exc.status == 409
    repo = {"oss": {"endpoint": local_cluster.oss.endpoint, "bucket": "team-artifacts",
                    "keyFormat": "team/{{workflow.name}}",
                    "accessKeySecret": {"name": "argo-oss-credentials", "key": "accessKey"},
                    "secretKeySecret": {"name": "argo-oss-credentials", "key": "secretKey"}}}
    cm = {"metadata": {"name": "team-repos", "namespace": NS}, "data": {"team": yaml.safe_dump(repo)}}
    try:
        local_cluster.store.create(CONFIGMAPS, NS, cm)
    except Exception as exc:  # created by an earlier run of this session
        assert "already exists" in str(exc)
    wf = run(local_cluster, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: art-ref-}
spec:
  entrypoint: make
  artifactRepositoryRef: {configMap: team-repos, key: team}
  templates:
  - name: make
    container: {image: alpine:3.23, command: [sh, -c], args: ["echo team > /tmp/t"]}
    outputs:
      artifacts: [{name: t, path: /tmp/t, archive: {none: {}}}]
""")
    name = wf["metadata"]["name"]
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    assert wf["status"]["artifactRepositoryRef"]["configMap"] == "team-repos"
    assert wf["status"]["artifactRepositoryRef"]["artifactRepository"] == repo
    assert artifacts(node(wf, name))["t"]["oss"]["bucket"] == "team-artifacts"
    assert other.get_object(f"team/{name}/t").read() == b"team\n"
    assert not bucket_of(local_cluster).object_exists(f"team/{name}/t")


def test_artifact_repository_ref_to_a_missing_config_map_is_an_error(local_cluster: LocalCluster) -> None:
    wf = run(local_cluster, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: art-badref-}
spec:
  entrypoint: make
  artifactRepositoryRef: {configMap: no-such-repos}
  templates:
  - name: make
    container: {image: alpine:3.23, command: [sh, -c], args: ["echo x > /tmp/t"]}
    outputs:
      artifacts: [{name: t, path: /tmp/t}]
""")
    assert wf["status"]["phase"] == "Error"
    assert "configmap argo/no-such-repos not found" in node(wf, wf["metadata"]["name"])["message"]


GC = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: art-gc-}
spec:
  entrypoint: main
  artifactGC: {strategy: OnWorkflowDeletion}
  templates:
  - name: main
    container:
      image: alpine:3.23
      command: [sh, -c]
      args: ["mkdir -p /tmp/d && echo x > /tmp/d/x && echo c > /tmp/c && echo d > /tmp/del && echo k > /tmp/k"]
    outputs:
      artifacts:
      - {name: on-completion, path: /tmp/c, artifactGC: {strategy: OnWorkflowCompletion}}
      - {name: dir-on-completion, path: /tmp/d, archive: {none: {}}, artifactGC: {strategy: OnWorkflowCompletion}}
      - {name: on-deletion, path: /tmp/del}
      - {name: kept, path: /tmp/k, artifactGC: {strategy: Never}}
"""


def test_artifact_gc_on_completion_and_on_deletion(one_process_cluster: LocalCluster) -> None:
    local_cluster = one_process_cluster  # waits for the controller's deletion-time GC below
    assert local_cluster.store is not None and local_cluster.controller is not None
    wf = run(local_cluster, GC)
    name = wf["metadata"]["name"]
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    arts = artifacts(node(wf, name))
    keys = {k: a["oss"]["key"] for k, a in arts.items()}
    bucket = bucket_of(local_cluster)
    assert not bucket.object_exists(keys["on-completion"])
    assert [o.key for o in oss2.ObjectIteratorV2(bucket, prefix=keys["dir-on-completion"])] == []
    assert bucket.object_exists(keys["on-deletion"]) and bucket.object_exists(keys["kept"])
    assert arts["on-completion"]["deleted"] is True and arts["dir-on-completion"]["deleted"] is True
    assert "deleted" not in arts["on-deletion"]
    assert wf["status"]["artifactGCStatus"] == {"strategiesProcessed": {"OnWorkflowCompletion": True}}
    assert "conditions" not in wf["status"]

    local_cluster.store.delete(WORKFLOWS, NS, name)
    local_cluster.controller.wait_for_artifact_gc()
    assert not bucket.object_exists(keys["on-deletion"])
    assert bucket.object_exists(keys["kept"])


def test_artifact_gc_failure_is_a_condition(local_cluster: LocalCluster) -> None:
    assert local_cluster.store is not None and local_cluster.oss is not None
    # a repository whose Secret holds keys the store rejects: saving fails... so point only GC at it:
    # the artifact is saved with the default repository and its recorded location names a Secret
    # that is removed before the workflow completes (the pod sleeps while the Secret goes away)
    key_id, secret = next(iter(local_cluster.oss_credentials().items()))
    secret_obj = {"metadata": {"name": "gc-short-lived", "namespace": NS}, "type": "Opaque",
                  "data": {"accessKey": base64.b64encode(key_id.encode()).decode(),
                           "secretKey": base64.b64encode(secret.encode()).decode()}}
    local_cluster.store.create(SECRETS, NS, secret_obj)
    text = f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{generateName: art-gcfail-}}
spec:
  entrypoint: main
  artifactGC: {{strategy: OnWorkflowCompletion}}
  templates:
  - name: main
    steps:
    - - {{name: make, template: make}}
    - - {{name: wait, template: wait}}
  - name: make
    container: {{image: alpine:3.23, command: [sh, -c], args: ["echo x > /tmp/x"]}}
    outputs:
      artifacts:
      - name: x
        path: /tmp/x
        oss:
          endpoint: {local_cluster.oss.endpoint}
          bucket: argo-artifacts
          accessKeySecret: {{name: gc-short-lived, key: accessKey}}
          secretKeySecret: {{name: gc-short-lived, key: secretKey}}
  - name: wait
    container: {{image: alpine:3.23, command: [sh, -c], args: ["sleep 1.5"]}}
"""
    assert local_cluster.store is not None
    doc = yaml.safe_load(text)
    doc["metadata"]["namespace"] = NS
    name = local_cluster.store.create(WORKFLOWS, NS, doc)["metadata"]["name"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        wf = local_cluster.store.get(WORKFLOWS, NS, name)
        if any(n["displayName"] == "wait" for n in (wf.get("status") or {}).get("nodes", {}).values()):
            break
        time.sleep(0.05)
    local_cluster.store.delete(SECRETS, NS, "gc-short-lived")
    while time.monotonic() < deadline:
        wf = local_cluster.store.get(WORKFLOWS, NS, name)
        if wf["status"].get("phase") in ("Succeeded", "Failed", "Error"):
            break
        time.sleep(0.1)
    assert wf["status"]["phase"] == "Succeeded"
    (condition,) = wf["status"]["conditions"]
    assert condition["type"] == "ArtifactGCError" and condition["status"] == "True"
    assert "secret argo/gc-short-lived not found" in condition["message"]
    assert "deleted" not in artifacts(node(wf, "make"))["x"]


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "state"


def test_restart_keeps_artifacts_port_and_user_edits(own_cluster: Path) -> None:
    with LocalCluster(own_cluster, capacity_vcpu=4) as first:
        assert first.store is not None and first.oss is not None
        endpoint = first.oss.endpoint
        made = run(first, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: keep-}
spec:
  entrypoint: make
  templates:
  - name: make
    container: {image: alpine:3.23, command: [sh, -c], args: ["echo kept > /tmp/k"]}
    outputs:
      artifacts: [{name: k, path: /tmp/k, oss: {key: restart/k.tgz}}]
""")
        assert made["status"]["phase"] == "Succeeded", made["status"].get("message")

        def edit(cm: dict[str, Any]) -> None:
            cm["data"]["default-v1"] += "# edited by a user\n"

        first.store.update(CONFIGMAPS, "default", "artifact-repositories", edit)
        edited = first.store.get(CONFIGMAPS, "default", "artifact-repositories")["data"]
    with LocalCluster(own_cluster, capacity_vcpu=4) as second:
        assert second.store is not None and second.oss is not None
        assert second.oss.endpoint == endpoint
        assert second.store.get(CONFIGMAPS, "default", "artifact-repositories")["data"] == edited
        used = run(second, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: reuse-}
spec:
  entrypoint: use
  templates:
  - name: use
    inputs:
      artifacts: [{name: k, path: /tmp/k, oss: {key: restart/k.tgz}}]
    container: {image: alpine:3.23, command: [sh, -c], args: ["cat /tmp/k"]}
""")
        assert used["status"]["phase"] == "Succeeded", used["status"].get("message")
        assert log_of(second, used, used["metadata"]["name"]) == "kept"
        assert json.loads(second.paths.server_info.read_text())["oss_endpoint"] == endpoint
