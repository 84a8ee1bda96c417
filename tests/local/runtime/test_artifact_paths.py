"""Runtime support for artifacts: ``prepare`` places inputs before start, ``artifact_paths`` reports
where the pod's outputs are on the host (files and directories), nothing pre-created."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_argo_eci.local.paths import StatePaths
from airflow_argo_eci.local.runtime import HostPathOf, PodRequest, PodResult
from airflow_argo_eci.local.runtime.runner import Runtime
from airflow_argo_eci.local.runtime.sandbox import remove_mount_points
from tests.local.runtime.test_runtime import Collector, needs_bwrap


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(StatePaths(tmp_path / "state"), capacity_vcpu=4.0, sandbox="auto")
    yield rt
    rt.shutdown()


def run(rt: Runtime, name: str, script: str, **kwargs: object) -> PodResult:
    done = Collector()
    req = PodRequest("argo", name, {"image": "alpine:3.23", "command": ["sh", "-c"], "args": [script]},
                     **kwargs)  # type: ignore[arg-type]
    rt.submit(req, done)
    return done.wait(name)[0]


@needs_bwrap
def test_prepare_places_files_and_directories_before_start(runtime: Runtime) -> None:
    def prepare(host_of: HostPathOf) -> None:
        assert host_of("/mnt/in/data.txt").parent.is_dir()  # the directory of an input path exists
        host_of("/mnt/in/data.txt").write_text("file input\n")
        tree = host_of("/tmp/tree")
        (tree / "sub").mkdir(parents=True)
        (tree / "sub" / "x").write_text("dir input\n")

    result = run(runtime, "prep", "cat /mnt/in/data.txt /tmp/tree/sub/x",
                 input_paths=["/mnt/in/data.txt", "/tmp/tree"], prepare=prepare)
    assert (result.phase, result.stdout) == ("Succeeded", "file input\ndir input")


def test_prepare_failure_is_an_error_and_the_pod_never_runs(runtime: Runtime) -> None:
    def prepare(host_of: HostPathOf) -> None:
        raise ValueError("artifact message failed to load: NoSuchKey")

    result = run(runtime, "prep-fail", "echo ran", input_paths=["/tmp/x"], prepare=prepare)
    assert (result.phase, result.message, result.stdout) == ("Error", "artifact message failed to load: NoSuchKey", "")


@needs_bwrap
def test_artifact_paths_report_files_and_directories_created_by_the_pod(runtime: Runtime) -> None:
    # /mnt/out is not pre-created: the script's mkdir (no -p) must work, as in map-reduce.yaml
    result = run(runtime, "outs", "mkdir /mnt/out && echo a > /mnt/out/a && mkdir -p /outputs/d/e && "
                 "echo b > /outputs/d/e/b && echo c > /tmp/c",
                 artifact_paths=["/mnt/out", "/outputs/d", "/tmp/c", "/nowhere/missing"])
    assert result.phase == "Succeeded", result.message
    paths = result.artifact_paths
    assert Path(str(paths["/mnt/out"])).is_dir() and (Path(str(paths["/mnt/out"])) / "a").read_text() == "a\n"
    assert (Path(str(paths["/outputs/d"])) / "e" / "b").read_text() == "b\n"
    assert Path(str(paths["/tmp/c"])).read_text() == "c\n"
    assert paths["/nowhere/missing"] is None
    # nothing outside the pod directory was written
    assert all(str(p).startswith(str(runtime.paths.pod_dir("argo", "outs"))) for p in
               (paths["/mnt/out"], paths["/outputs/d"], paths["/tmp/c"]))


@needs_bwrap
def test_image_paths_the_pod_did_not_write_come_from_the_host(runtime: Runtime) -> None:
    result = run(runtime, "image-path", "test -f /etc/passwd", artifact_paths=["/etc"])
    assert result.phase == "Succeeded", result.message
    assert result.artifact_paths["/etc"] == "/etc"


def test_state_directory_is_never_an_artifact(runtime: Runtime) -> None:
    state = str(runtime.paths.root)
    result = run(runtime, "state", "true", artifact_paths=[state])
    assert result.artifact_paths[state] is None


@needs_bwrap
def test_tmp_itself_is_the_pods_own_tmp(runtime: Runtime) -> None:
    # artifact-passing-subpath.yaml saves "/tmp/": never the host's /tmp
    result = run(runtime, "own-tmp", "echo x > /tmp/only-mine", artifact_paths=["/tmp/", "/tmp"])
    for path in ("/tmp/", "/tmp"):
        host = Path(str(result.artifact_paths[path]))
        assert host == runtime.paths.pod_dir("argo", "own-tmp") / "tmp"
        assert [p.name for p in host.iterdir()] == ["only-mine"]


def test_mount_points_for_runtime_paths_under_tmp_are_removed(tmp_path: Path) -> None:
    """With the checkout under the host's /tmp, bubblewrap leaves empty mount-point directories in
    the pod's /tmp; they go once the pod ends, what the pod wrote stays."""
    pod_tmp = tmp_path / "tmp"
    (pod_tmp / "ci" / "main" / ".venv").mkdir(parents=True)
    (pod_tmp / "ci" / "main" / "pkg").mkdir(parents=True)
    (pod_tmp / "ci" / "mine").mkdir()
    (pod_tmp / "ci" / "mine" / "out.txt").write_text("kept")
    (pod_tmp / "only-mine").write_text("x")
    remove_mount_points(pod_tmp, ("/tmp/ci/main/.venv", "/tmp/ci/main/pkg", "/usr/lib/python3"))
    assert sorted(p.relative_to(pod_tmp).as_posix() for p in pod_tmp.rglob("*")) == [
        "ci", "ci/mine", "ci/mine/out.txt", "only-mine"]
    remove_mount_points(pod_tmp, ("/tmp/ci/mine/out.txt/x",))  # nothing to remove: no error
    assert (pod_tmp / "ci" / "mine" / "out.txt").read_text() == "kept"
