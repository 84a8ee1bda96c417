"""Who a pod runs as (securityContext), which files it owns on the host, the sandbox report, and the
refusal to start an incomplete sandbox (through the runtime, LocalCluster and the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_argo_eci.local.paths import StatePaths
from airflow_argo_eci.local.runtime import PodRequest, PodResult
from airflow_argo_eci.local.runtime.isolation import SandboxReport, make_sandbox
from airflow_argo_eci.local.runtime.podsecurity import PodSecurity, SandboxError, pod_security
from airflow_argo_eci.local.runtime.runner import Runtime
from airflow_argo_eci.local.runtime.sandbox import DEFAULT_SANDBOX_UID, probe_bwrap
from airflow_argo_eci.local.server import LocalCluster, LocalClusterError

needs_bwrap = pytest.mark.skipif(probe_bwrap() is not None, reason=f"bubblewrap unavailable: {probe_bwrap()}")
HOST_UID = DEFAULT_SANDBOX_UID if os.geteuid() == 0 else os.geteuid()


def run(rt: Runtime, req: PodRequest) -> PodResult:
    done: list[PodResult] = []
    event = threading.Event()

    def on_done(result: PodResult) -> None:
        done.append(result)
        event.set()

    rt.submit(req, on_done)
    assert event.wait(30), "the pod did not finish"
    return done[0]


def sh(name: str, script: str, **kwargs: Any) -> PodRequest:
    container = {"image": "alpine", "command": ["sh", "-c"], "args": [script], **kwargs.pop("container", {})}
    return PodRequest("argo", name, container, **kwargs)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(StatePaths(tmp_path / "state"), sandbox="auto")
    yield rt
    rt.shutdown()


# ---------------------------------------------------------------------------- securityContext


def test_pod_security_defaults_and_precedence() -> None:
    assert pod_security(None, None, None) == PodSecurity(1000, 1000, False)
    assert pod_security({"runAsUser": 0}, None, True) == PodSecurity(0, 0, True)
    assert pod_security({"runAsUser": 5, "runAsGroup": 6}, {"runAsUser": 7}, False) == PodSecurity(7, 6, False)
    assert pod_security({"runAsNonRoot": True}, None, None).uid == 1000


@pytest.mark.parametrize(("pod", "container", "host_network", "message"), [
    ({"runAsUser": -1}, None, None, "spec.securityContext.runAsUser must be an integer between 0 and 2147483647"),
    (None, {"runAsGroup": "0"}, None, "container.securityContext.runAsGroup must be an integer"),
    ({"runAsUser": True}, None, None, "runAsUser must be an integer"),
    ({"runAsUser": 2**31}, None, None, "between 0 and 2147483647, inclusive, got 2147483648"),
    ("root", None, None, "spec.securityContext must be an object, got str"),
    ({"runAsNonRoot": "yes"}, None, None, "spec.securityContext.runAsNonRoot must be a boolean"),
    ({"runAsNonRoot": True}, {"runAsUser": 0}, None, "container has runAsNonRoot and image will run as root"),
    (None, {"privileged": True}, None, "container.securityContext.privileged: the local cluster never runs"),
    (None, {"capabilities": {"add": ["SYS_ADMIN"]}}, None, "capabilities.add: the local cluster grants no"),
    (None, None, "true", "spec.hostNetwork must be a boolean, got 'true'"),
])
def test_bad_security_settings_name_the_field(pod: Any, container: Any, host_network: Any, message: str) -> None:
    with pytest.raises(SandboxError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pod_security(pod, container, host_network)


@needs_bwrap
@pytest.mark.parametrize(("security_context", "container", "expected"), [
    (None, {}, "1000 1000"),
    ({"runAsUser": 0}, {}, "0 0"),
    ({"runAsUser": 4000, "runAsGroup": 4001}, {}, "4000 4001"),
    ({"runAsUser": 4000}, {"securityContext": {"runAsUser": 0, "runAsGroup": 3}}, "0 3"),
])
def test_pod_runs_as_its_security_context_without_capabilities(
        runtime: Runtime, security_context: Any, container: dict[str, Any], expected: str) -> None:
    script = ('echo "$(id -u) $(id -g)"; grep -E "^Cap(Eff|Prm|Bnd|Amb|Inh)" /proc/self/status | '
              "awk '{print $2}' | sort -u; awk '{print $2}' /proc/self/uid_map")
    result = run(runtime, sh("who", script, container=container, security_context=security_context))
    assert result.phase == "Succeeded", result.message
    ids, caps, host_uid = result.stdout.splitlines()
    assert (ids, caps, host_uid) == (expected, "0000000000000000", str(HOST_UID))


@needs_bwrap
def test_pod_files_belong_to_the_pods_host_uid(runtime: Runtime) -> None:
    script = "echo a > /tmp/a; echo h > $HOME/h; mkdir -p /work/sub && echo w > /work/sub/w; echo o > /mnt/out/o"
    result = run(runtime, sh("owner", script, container={"workingDir": "/work"},
                             output_paths=["/mnt/out/o"], input_files={"/mnt/in/i": b"placed\n"}))
    assert result.phase == "Succeeded", result.message
    pod_dir = Path(result.extra["pod_dir"])
    for path in (pod_dir / "tmp/a", pod_dir / "root/root/h", pod_dir / "root/work/sub/w", pod_dir / "root/mnt/out/o",
                 pod_dir / "root/mnt/in/i", pod_dir / "tmp", pod_dir / "root/root"):
        assert path.lstat().st_uid == HOST_UID, path


@needs_bwrap
def test_home_is_empty_and_host_network_is_opt_in(runtime: Runtime) -> None:
    script = "ls -A /root | grep -v '^\\.pyenv$' | wc -l; ls /sys/class/net >/dev/null; cat /proc/net/dev | wc -l"
    isolated = run(runtime, sh("net", script))
    shared = run(runtime, sh("hostnet", script, host_network=True))
    assert isolated.phase == shared.phase == "Succeeded", (isolated.message, shared.message)
    home, lines = isolated.stdout.split()
    assert home == "0"
    assert lines == "3"  # two header lines + lo
    host_lines = len(Path("/proc/net/dev").read_text().splitlines())
    assert shared.stdout.split()[1] == str(host_lines)


# ---------------------------------------------------------------------------- report and refusal


@needs_bwrap
def test_report_says_what_holds(tmp_path: Path) -> None:
    sandbox = make_sandbox("auto", [tmp_path])
    report = sandbox.report
    assert isinstance(report, SandboxReport) and report.complete and not report.missing
    text = "\n".join(report.lines())
    for piece in ("user namespace", f"host uid {HOST_UID}", "capabilities: none", "seccomp filter",
                  "network namespace: loopback only", "service-account token"):
        assert piece in text, piece
    assert SandboxReport.from_dict(report.to_dict()) == report
    assert SandboxReport.from_dict({"mode": "bwrap"}) is None and SandboxReport.from_dict("x") is None


def test_none_is_explicit_and_reported(tmp_path: Path) -> None:
    with pytest.warns(RuntimeWarning, match="WITHOUT isolation"):
        rt = Runtime(StatePaths(tmp_path / "state"), sandbox="none")
    try:
        assert rt.sandbox.report.lines()[0] == "sandbox: none ('none' requested) - pods are NOT isolated"
    finally:
        rt.shutdown()


def test_bad_sandbox_uid_is_refused(tmp_path: Path) -> None:
    for bad in (0, -5, True, "65534"):
        with pytest.raises(SandboxError, match="sandbox_uid must be a non-zero uid"):
            make_sandbox("auto", [tmp_path], host_uid=bad)  # type: ignore[arg-type]


def test_cluster_refuses_to_start_without_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    cluster = LocalCluster(tmp_path / "state", sandbox="auto")
    with pytest.raises(LocalClusterError, match=r"(?s)MISSING: bubblewrap.*--sandbox none"):
        cluster.start()
    assert cluster.store is None and cluster.runtime is None
    assert not cluster.paths.server_info.exists()


def _cli(state: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "airflow_argo_eci.local.cli", "local", *args, "--state-dir",
                           str(state)], capture_output=True, text=True, timeout=90, check=False,
                          env={**os.environ, **(env or {})})


def test_cli_up_refuses_and_none_says_no_isolation(tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    refused = _cli(tmp_path / "a", "up", "--detach", "--wait", "60", env={"PATH": str(empty)})
    assert refused.returncode == 1
    assert "MISSING: bubblewrap" in refused.stderr and "--sandbox none" in refused.stderr
    up = _cli(tmp_path / "b", "up", "--detach", "--sandbox", "none", "--wait", "60", env={"PATH": str(empty)})
    try:
        assert up.returncode == 0, up.stderr
        assert "sandbox: none ('none' requested) - pods are NOT isolated" in up.stdout
        status = _cli(tmp_path / "b", "status")
        assert "pods are NOT isolated" in status.stdout, status.stdout
    finally:
        _cli(tmp_path / "b", "down")


@needs_bwrap
def test_cli_status_prints_the_recorded_report(tmp_path: Path) -> None:
    up = _cli(tmp_path / "s", "up", "--detach", "--wait", "60")
    try:
        assert up.returncode == 0, up.stderr
        assert "sandbox: bwrap - pods are isolated" in up.stdout
        status = _cli(tmp_path / "s", "status")
        assert "sandbox: bwrap - pods are isolated" in status.stdout
        assert "holds:   seccomp filter" in status.stdout and "MISSING" not in status.stdout
    finally:
        _cli(tmp_path / "s", "down")


#: runs argv as root of a new user namespace (uids/gids 0..65535 mapped to themselves) in which no
#: further user namespace may be created, as on a host with user.max_user_namespaces = 0
NO_USERNS = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
ready_r, ready_w = os.pipe()
go_r, go_w = os.pipe()
pid = os.fork()
if pid == 0:
    if libc.unshare(0x10000000) != 0:
        os._exit(90)
    os.write(ready_w, b"x")
    os.read(go_r, 1)
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    with open("/proc/sys/user/max_user_namespaces", "w") as f:
        f.write("0")
    os.execv(sys.argv[1], sys.argv[1:])
os.read(ready_r, 1)
for name in ("uid_map", "gid_map"):
    with open(f"/proc/{pid}/{name}", "w") as f:
        f.write("0 0 65536\n")
os.write(go_w, b"x")
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""

START = r"""
import sys
from airflow_argo_eci.local.server import LocalCluster, LocalClusterError
try:
    LocalCluster(sys.argv[1], sandbox="auto").start()
except LocalClusterError as exc:
    print(exc)
    sys.exit(3)
"""


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="mapping a range of uids into a user namespace needs root")
def test_cluster_refuses_without_user_namespaces(tmp_path: Path) -> None:
    wrapper, start = tmp_path / "no_userns.py", tmp_path / "start.py"
    wrapper.write_text(NO_USERNS)
    start.write_text(START)
    done = subprocess.run([sys.executable, str(wrapper), sys.executable, str(start), str(tmp_path / "state")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "holds:   bubblewrap" in done.stdout
    assert "MISSING: user namespace: a pod could not start in the sandbox: pod sandbox: user namespace:" in done.stdout
    assert "--sandbox none" in done.stdout
