"""podfiles.py and the runtime's reads of what a pod left behind: chroot semantics, no link out of
the pod, only regular files, capped sizes; the host's read-only copy only where every user may read."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_argo_eci.local.paths import StatePaths, UnsafeNameError
from airflow_argo_eci.local.runtime.podfiles import (
    MAX_LINKS,
    MAX_PARAMETER_BYTES,
    PodFileError,
    PodFileMissing,
    PodFiles,
    home_directories,
    image_path,
)
from airflow_argo_eci.local.runtime.runner import Runtime
from airflow_argo_eci.local.runtime.sandbox import remove_mount_points
from tests.local.runtime.test_runtime import needs_bwrap, run_one, sh

SECRET = "host-secret-7f3a"


@pytest.fixture
def pod(tmp_path: Path) -> PodFiles:
    """A pod's two directories, and a secret file on the host beside them."""
    (tmp_path / "pod" / "root").mkdir(parents=True)
    (tmp_path / "pod" / "tmp").mkdir()
    (tmp_path / "secret").write_text(SECRET)
    return PodFiles(tmp_path / "pod" / "root", tmp_path / "pod" / "tmp")


def _missing(files: PodFiles, path: str) -> None:
    with pytest.raises(PodFileMissing, match=f"^open {path}: no such file or directory$"):
        files.read_text(path)


def test_plain_files_in_tmp_and_root(pod: PodFiles) -> None:
    (pod.tmp_dir / "out").write_text("hello\n")
    (pod.root_dir / "mnt" / "out").mkdir(parents=True)
    (pod.root_dir / "mnt" / "out" / "v").write_text("value")
    assert pod.read_text("/tmp/out") == "hello\n"
    assert pod.read_text("/mnt/out/v") == "value"
    assert pod.read_text("//mnt/./out/../out/v") == "value"
    assert pod.locate("/tmp").host_path == pod.tmp_dir
    assert pod.locate("/mnt/out").host_path == pod.root_dir / "mnt" / "out"
    _missing(pod, "/tmp/nothing")
    _missing(pod, "/mnt/out/v/below-a-file")


def test_absolute_link_to_a_host_file_reads_as_missing(pod: PodFiles, tmp_path: Path) -> None:
    (pod.tmp_dir / "out").symlink_to(tmp_path / "secret")
    _missing(pod, "/tmp/out")
    # the same target exists inside the pod: chroot semantics read the pod's own file
    target = str(tmp_path / "secret")
    inside = (pod.tmp_dir / target[len("/tmp/"):] if target.startswith("/tmp/")  # the pod's own /tmp
              else pod.root_dir / target.lstrip("/"))
    inside.parent.mkdir(parents=True)
    inside.write_text("the pod's own")
    assert pod.read_text("/tmp/out") == "the pod's own"


def test_dotdot_stops_at_the_pods_root(pod: PodFiles, tmp_path: Path) -> None:
    (pod.tmp_dir / "up").symlink_to("../" * 30 + str(tmp_path / "secret").lstrip("/"))
    _missing(pod, "/tmp/up")
    (pod.root_dir / "secret").write_text("pod root file")
    (pod.tmp_dir / "root-file").symlink_to("../../../../secret")  # /tmp/../../.. is the pod's /
    assert pod.read_text("/tmp/root-file") == "pod root file"
    assert pod.read_text("/tmp/../../../secret") == "pod root file"


def test_links_through_directories_and_between_tmp_and_root(pod: PodFiles, tmp_path: Path) -> None:
    (pod.tmp_dir / "host").symlink_to(tmp_path)  # a directory link to where the secret lives
    _missing(pod, "/tmp/host/secret")
    (pod.root_dir / "data").mkdir()
    (pod.root_dir / "data" / "f").write_text("data")
    (pod.tmp_dir / "d").symlink_to("/data")
    (pod.root_dir / "data" / "t").symlink_to("/tmp/x")
    (pod.tmp_dir / "x").write_text("x in tmp")
    assert pod.read_text("/tmp/d/f") == "data"
    assert pod.read_text("/tmp/d/t") == "x in tmp"
    assert pod.locate("/tmp/d/t").pod_path == "/tmp/x"


def test_link_loops_are_bounded(pod: PodFiles) -> None:
    (pod.tmp_dir / "a").symlink_to("b")
    (pod.tmp_dir / "b").symlink_to("a")
    with pytest.raises(PodFileError, match="too many levels of symbolic links"):
        pod.read_text("/tmp/a")
    chain = [f"l{i}" for i in range(MAX_LINKS + 1)]
    (pod.tmp_dir / "end").write_text("end")
    for name, nxt in zip(chain, [*chain[1:], "end"], strict=True):
        (pod.tmp_dir / name).symlink_to(nxt)
    assert pod.read_text(f"/tmp/{chain[1]}") == "end"  # 40 links
    with pytest.raises(PodFileError, match="too many levels"):
        pod.read_text(f"/tmp/{chain[0]}")  # 41


def test_fifo_device_and_directory_are_never_read(pod: PodFiles) -> None:
    os.mkfifo(pod.tmp_dir / "fifo")
    (pod.tmp_dir / "dir").mkdir()
    (pod.tmp_dir / "to-fifo").symlink_to("fifo")
    outcome: list[BaseException] = []

    def read() -> None:
        for path in ("/tmp/fifo", "/tmp/to-fifo", "/tmp/dir", "/tmp"):
            try:
                pod.read_text(path)
            except PodFileError as exc:
                outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert [str(e) for e in outcome] == [
        "the pod left a FIFO at /tmp/fifo, not a regular file; only regular files can be read back",
        "the pod left a FIFO at /tmp/fifo, not a regular file; only regular files can be read back",
        "the pod left a directory at /tmp/dir, not a regular file; only regular files can be read back",
        "the pod left a directory at /tmp, not a regular file; only regular files can be read back",
    ]


def test_sizes_are_capped(pod: PodFiles) -> None:
    (pod.tmp_dir / "big").write_bytes(b"x" * (MAX_PARAMETER_BYTES + 1))
    (pod.tmp_dir / "fits").write_bytes(b"y" * MAX_PARAMETER_BYTES)
    with pytest.raises(PodFileError, match=r"holds 262145 bytes; an output parameter may hold at most 262144 bytes "
                                           r"\(256 KiB\): write large data to an output artifact instead"):
        pod.read_text("/tmp/big")
    assert len(pod.read_text("/tmp/fits")) == MAX_PARAMETER_BYTES
    with pytest.raises(PodFileError, match="may hold at most 10 bytes"):
        pod.read_text("/tmp/fits", max_bytes=10)


def test_best_effort_host_paths_of_the_pods_own_directories_map_back(tmp_path: Path) -> None:
    root, tmp = tmp_path / "root", tmp_path / "tmp"
    root.mkdir()
    tmp.mkdir()
    (tmp / "a").write_text("a")
    (tmp / "l").symlink_to(tmp / "a")  # the best-effort sandbox rewrote /tmp/a into this host path
    assert PodFiles(root, tmp, host_aliases=True).read_text("/tmp/l") == "a"
    _missing(PodFiles(root, tmp), "/tmp/l")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user may enter (pytest's own tmp_path sits below a 0700 directory)."""
    base = Path(tempfile.mkdtemp(prefix="aae-podfiles-", dir="/tmp"))
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_image_path_exports_only_what_every_user_may_read(open_dir: Path) -> None:
    state = open_dir / "state"
    state.mkdir()
    (state / "token").write_text("t")
    public = open_dir / "public"
    public.mkdir()
    os.chmod(public, 0o755)
    (public / "f").write_text("f")
    os.chmod(public / "f", 0o644)
    private = open_dir / "private"
    private.mkdir(mode=0o700)
    (private / "f").write_text("f")
    os.chmod(private / "f", 0o644)
    secret = open_dir / "secret"
    secret.write_text("s")
    os.chmod(secret, 0o600)
    assert image_path(str(public), [state]) == (str(public), "")
    assert image_path(str(public / "f"), [state]) == (str(public / "f"), "")
    for path, why in ((state / "token", "under"), (state, "under"), (private / "f", "not every user may enter"),
                      (secret, "not readable by every user"), (open_dir / "nothing", "No such file")):
        real, reason = image_path(str(path), [state])
        assert real is None and why in reason, (path, reason)
    assert image_path("/root/.bashrc", [])[0] is None
    assert image_path(str(open_dir), [state]) == (None, f"{open_dir} holds {state}, which pods cannot read")
    assert image_path("/", [])[0] is None  # it holds /root and /home
    assert "/root" in home_directories() and "/home" in home_directories()


def test_unsafe_names_never_become_paths(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path)
    for args in (("argo", "p", "../../../etc/x"), ("..", "p", "main"), ("argo", "a/b", "main"),
                 ("argo", "", "main"), ("argo", "p", "ma\x00in")):
        with pytest.raises(UnsafeNameError, match=r"namespace|pod name|container name") as info:
            paths.log_file(*args)
        assert info.value.code == 400
    with pytest.raises(UnsafeNameError, match=r"pod name '\.' is not a valid name"):
        paths.pod_dir("argo", ".")
    assert paths.log_file("argo", "wf-1", "main") == tmp_path / "logs" / "argo" / "wf-1" / "main.log"


def test_mount_point_cleanup_never_follows_a_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "main" / ".venv").mkdir(parents=True)
    pod_tmp = tmp_path / "tmp"
    pod_tmp.mkdir()
    (pod_tmp / "ci").symlink_to(outside)  # the pod replaced a mount-point directory with a link
    remove_mount_points(pod_tmp, ("/tmp/ci/main/.venv",))
    assert (outside / "main" / ".venv").is_dir()
    assert (pod_tmp / "ci").is_symlink()


# ---------------------------------------------------------------------------- through the runtime


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(StatePaths(tmp_path / "state"), capacity_vcpu=4.0, sandbox="auto")
    yield rt
    rt.shutdown()


@needs_bwrap
def test_runtime_output_links_out_of_the_pod_are_missing(runtime: Runtime, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text(SECRET)
    os.chmod(secret, 0o644)
    token = runtime.paths.token
    token.parent.mkdir(parents=True, exist_ok=True)
    token.write_text(SECRET)
    script = (f"ln -s {secret} /tmp/a; ln -s {token} /tmp/b; ln -s ../../../../..{token} /tmp/c; "
              "echo mine > /tmp/own; ln -s own /tmp/d; mkdir -p /mnt/out; ln -s /tmp/own /mnt/out/v")
    result = run_one(runtime, sh("links", script, output_paths=["/tmp/a", "/tmp/b", "/tmp/c", "/tmp/d",
                                                                "/mnt/out/v"],
                                 artifact_paths=["/tmp/a", "/tmp/b", "/tmp/d"]))
    assert result.phase == "Succeeded", result.message
    assert result.outputs == {"/tmp/a": None, "/tmp/b": None, "/tmp/c": None, "/tmp/d": "mine\n",
                              "/mnt/out/v": "mine\n"}
    pod_tmp = runtime.paths.pod_dir("argo", "links") / "tmp"
    assert result.artifact_paths == {"/tmp/a": None, "/tmp/b": None, "/tmp/d": str(pod_tmp.resolve() / "own")}


@needs_bwrap
def test_runtime_fails_the_pod_for_a_fifo_or_a_huge_output(runtime: Runtime) -> None:
    fifo = run_one(runtime, sh("fifo", "mkfifo /tmp/out", output_paths=["/tmp/out"]), timeout=20)
    assert (fifo.phase, fifo.outputs) == ("Error", {"/tmp/out": None})
    assert fifo.message == ("failed to save output parameter from /tmp/out: the pod left a FIFO at /tmp/out, not a "
                            "regular file; only regular files can be read back")
    huge = run_one(runtime, sh("huge", "head -c 1048576 /dev/zero > /tmp/out", output_paths=["/tmp/out"]))
    assert (huge.phase, huge.outputs) == ("Error", {"/tmp/out": None})
    assert "/tmp/out holds 1048576 bytes; an output parameter may hold at most 262144 bytes" in huge.message
    failed = run_one(runtime, sh("failed", "mkfifo /tmp/out; exit 3", output_paths=["/tmp/out"]))
    assert (failed.phase, failed.message) == ("Failed", "Error (exit code 3)")  # the exit code says more


@needs_bwrap
def test_runtime_image_fallback_refuses_what_pods_cannot_read(runtime: Runtime) -> None:
    def artifact(name: str, path: str) -> str | None:
        return run_one(runtime, sh(name, "true", artifact_paths=[path])).artifact_paths[path]

    assert artifact("etc", "/etc") == os.path.realpath("/etc")
    assert artifact("shadow", "/etc/shadow") is None  # mode 0640/0600: not every user may read it
    assert artifact("state", str(runtime.paths.root)) is None
    assert artifact("home", "/root/.profile") is None  # the pod's own /root: it wrote nothing there


def test_inputs_are_never_placed_through_a_link(tmp_path: Path) -> None:
    from airflow_argo_eci.local.argo.artifacts import ArtifactError, OSSClients, load_artifact

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "deeper").mkdir()
    pod_tmp = StatePaths(tmp_path / "state").pod_dir("argo", "p") / "tmp"
    pod_tmp.mkdir(parents=True)
    (pod_tmp / "in").symlink_to(outside)
    (pod_tmp / "file").symlink_to(outside / "f")
    raw = {"name": "msg", "path": "/tmp/in/x", "raw": {"data": "hello"}}
    for dest in (pod_tmp / "in" / "x", pod_tmp / "in" / "deeper" / "x", pod_tmp / "in" / "new" / "x",
                 pod_tmp / "file"):
        with pytest.raises(ArtifactError, match=r"cannot place the input artifact at /tmp/in/x: .* is a symbolic link"):
            load_artifact(OSSClients(), raw, dest, None)
    assert list(outside.iterdir()) == [outside / "deeper"] and list((outside / "deeper").iterdir()) == []
    load_artifact(OSSClients(), raw, pod_tmp / "ok" / "x", None)
    assert (pod_tmp / "ok" / "x").read_text() == "hello"


def test_a_volume_is_read_at_its_mount_path_and_never_left_through_links(tmp_path: Path) -> None:
    root, tmp, volume = tmp_path / "pod" / "root", tmp_path / "pod" / "tmp", tmp_path / "pod" / "volumes" / "ws"
    for directory in (root / "workspace", tmp, volume / "sub"):
        directory.mkdir(parents=True)
    (tmp_path / "secret").write_text(SECRET)
    (volume / "sub" / "out").write_text("in the volume")
    (root / "etc").mkdir()
    (root / "etc" / "own").write_text("pod's own")
    os.symlink("../../../../../secret", volume / "up")
    os.symlink(str(tmp_path / "secret"), volume / "abs")
    os.symlink("../etc/own", volume / "to-pod")
    files = PodFiles(root, tmp, mounts={"/workspace": volume})
    assert files.read_text("/workspace/sub/out") == "in the volume"
    assert files.locate("/workspace/sub/out").host_path == (volume / "sub" / "out").resolve()
    assert files.read_text("/workspace/to-pod") == "pod's own"  # '..' at the volume's root is the pod's '/'
    for path in ("/workspace/up", "/workspace/abs", "/workspace/../../secret"):
        with pytest.raises(PodFileMissing):
            files.read_text(path)
    with pytest.raises(PodFileError, match="directory"):
        files.read_text("/workspace")
