"""Attacks on the pod sandbox, through the real API: capabilities, identity, syscalls, host files, network.

Each workflow plays a hostile step that tries what the issue reproduced on main (read the token with
``open_by_handle_at``, write into the host's ``/tmp``, ``mount -o remount,bind,rw`` the package
directory, read ``/root``) and more, and reports what happened on stdout (``outputs.result``). The
test asserts every attempt failed, with ``EPERM`` where the seccomp filter answers, that nothing
reached the host (``host_canary``) and no secret leaked, and that a harmless workflow still runs.
Runs as root and as an unprivileged user: the uid map is checked against the invoking user then.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import airflow_argo_eci
from airflow_argo_eci.local.runtime import seccomp
from tests.local.adversarial.harness import (
    ClusterUnderTest,
    Responsiveness,
    assert_nothing_leaked,
    harmless_workflow,
    pod_logs,
    run_workflow,
    script_workflow,
)

PACKAGE_DIR = os.path.dirname(os.path.abspath(airflow_argo_eci.__file__))
CHECKOUT = os.path.dirname(PACKAGE_DIR)
ARCH = seccomp.host_arch() or "x86_64"

#: one Python step that tries each denied call and prints {name: "ok" | errno name} as JSON
SYSCALL_ATTACK = """
import ctypes, errno, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = %(numbers)s
def call(name, *args):
    ctypes.set_errno(0)
    rc = libc.syscall(NR[name], *[ctypes.c_long(a) for a in args])
    return "ok" if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
out = {
    "open_by_handle_at": call("open_by_handle_at", -100, 0, 0),
    "name_to_handle_at": call("name_to_handle_at", -100, 0, 0, 0, 0),
    "mount": call("mount", 0, 0, 0, 0, 0),
    "umount2": call("umount2", 0, 0),
    "ptrace_traceme": call("ptrace", 0, 0, 0, 0),
    "unshare_user": call("unshare", 0x10000000),
    "setns": call("setns", 0, 0),
    "keyctl_session": call("keyctl", 0, -3, 0),
    "bpf": call("bpf", 0, 0, 0),
    "init_module": call("init_module", 0, 0, 0),
    "reboot": call("reboot", 0, 0, 0, 0),
    "personality_read_implies_exec": call("personality", 0x0400000),
    "clone_newuser": call("clone", 0x10000000 | 17, 0, 0, 0, 0),
}
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
out["status"] = {k: status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                                               "NoNewPrivs", "Seccomp")}
out["uid"] = os.getuid()
out["uid_map"] = open("/proc/self/uid_map").read().split()
print(json.dumps(out))
"""


def _result(wf: dict[str, Any]) -> str:
    (node,) = [n for n in wf["status"]["nodes"].values() if n.get("type") == "Pod"]
    return str((node.get("outputs") or {}).get("result", ""))


def _python_workflow(source: str, **extra: Any) -> dict[str, Any]:
    return script_workflow(source, image="python:3.12", container_extra={"command": ["python"]}, **extra)


def _still_serving(cluster: ClusterUnderTest, kube: Any, extra_text: str = "") -> None:
    assert run_workflow(kube, harmless_workflow())["status"]["phase"] == "Succeeded"
    assert_nothing_leaked(cluster, kube, extra_text)


def _expected_host_uid() -> str:
    """Pods map onto the sandbox uid when the cluster runs as root, else onto the invoking user."""
    return "65534" if os.geteuid() == 0 else str(os.geteuid())


@pytest.fixture
def planted_home_secret() -> Iterator[Path]:
    """A 0600 file like ``~/.npmrc`` in the invoking user's home, which no pod may see."""
    path = Path(os.path.expanduser("~")) / f".aae-npmrc-{uuid.uuid4().hex[:8]}"
    path.write_text("//registry.npmjs.org/:_authToken=npm_SECRET_SHOULD_NOT_LEAK\n")
    path.chmod(0o600)
    yield path
    path.unlink()


@pytest.mark.parametrize("spec_extra", [
    {},
    {"securityContext": {"runAsUser": 0}},
    {"podSpecPatch": '{"securityContext": {"runAsUser": 0, "runAsGroup": 0}}'},
], ids=["default-user", "runAsUser-0", "podSpecPatch-root"])
def test_denied_syscalls_fail_with_eperm_and_no_capabilities(
        hostile_cluster: ClusterUnderTest, kube: Any, spec_extra: dict[str, Any]) -> None:
    numbers = {**seccomp.DENIED[ARCH], **seccomp.SPECIAL[ARCH]}
    wf = run_workflow(kube, _python_workflow(SYSCALL_ATTACK % {"numbers": repr(numbers)}, spec_extra=spec_extra))
    assert wf["status"]["phase"] == "Succeeded", (wf["status"].get("message"), pod_logs(kube, wf))
    out = json.loads(_result(wf))
    status = out.pop("status")
    assert {k: status[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")} == dict.fromkeys(
        ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"), "0000000000000000")
    assert (status["NoNewPrivs"], status["Seccomp"]) == ("1", "2")
    asked_root = bool(spec_extra)
    assert out.pop("uid") == (0 if asked_root else 1000)
    uid_map = out.pop("uid_map")
    assert uid_map == ["0" if asked_root else "1000", _expected_host_uid(), "1"]
    assert uid_map[1] != "0"
    assert out == dict.fromkeys(out, "EPERM"), out
    _still_serving(hostile_cluster, kube)


def test_host_files_state_and_checkout_are_out_of_reach(
        hostile_cluster: ClusterUnderTest, kube: Any, host_canary: Path, planted_home_secret: Path) -> None:
    state = hostile_cluster.paths.root
    pyproject = os.path.join(CHECKOUT, "pyproject.toml")
    script = f"""
try_() {{ if eval "$2" >/dev/null 2>&1; then echo "$1=DONE"; else echo "$1=refused"; fi; }}
try_ host_tmp_via_proc 'echo x > /proc/1/root{host_canary}'
try_ own_tmp_write 'echo x > {host_canary}'
try_ package_write 'touch {PACKAGE_DIR}/evil.py'
try_ remount_rw 'mount -o remount,bind,rw {PACKAGE_DIR}'
try_ package_write_after_remount 'touch {PACKAGE_DIR}/evil.py'
try_ state_read 'cat {state}/token'
try_ state_list 'ls {state}'
try_ state_write 'touch {state}/evil'
try_ home_secret 'cat {planted_home_secret}'
try_ root_secret 'cat /root/{planted_home_secret.name}'
try_ checkout_read 'cat {pyproject}'
try_ unshare_binary 'unshare -U -r true'
try_ package_read 'cat {PACKAGE_DIR}/__init__.py'
echo "root_entries=$(ls -A /root | tr '\\n' ' ')"
echo "home_entries=$(ls -A /home | tr '\\n' ' ')"
echo "run_entries=$(ls -A /run | tr '\\n' ' ')"
"""
    wf = run_workflow(kube, script_workflow(script))
    assert wf["status"]["phase"] == "Succeeded", (wf["status"].get("message"), pod_logs(kube, wf))
    found = dict(line.split("=", 1) for line in _result(wf).splitlines() if "=" in line)
    assert found.pop("package_read") == "DONE"  # the package the pod's tools run from stays readable
    assert found.pop("own_tmp_write") == "DONE"  # into the pod's own /tmp; host_canary checks the host's
    root_entries = found.pop("root_entries").split()
    home_entries = found.pop("home_entries").split()
    assert found.pop("run_entries").split() == []  # the host's sockets (/run) are not there
    if not Path(pyproject).exists():
        found.pop("checkout_read")
    assert found == dict.fromkeys(found, "refused"), found
    assert planted_home_secret.name not in root_entries
    # /root is the pod's own: at most the mount points of this interpreter's installation
    assert all(entry.startswith(".") and not entry.startswith(".aae-npmrc") for entry in root_entries), root_entries
    assert home_entries == []
    assert not Path(PACKAGE_DIR, "evil.py").exists() and not (state / "evil").exists()
    _still_serving(hostile_cluster, kube, pod_logs(kube, wf))
    assert "npm_SECRET_SHOULD_NOT_LEAK" not in pod_logs(kube, wf)


def test_api_and_oss_unreachable_without_host_network(hostile_cluster: ClusterUnderTest, kube: Any,
                                                      responsiveness: Responsiveness) -> None:
    assert hostile_cluster.oss is not None
    ports = {"api": hostile_cluster.port, "oss": hostile_cluster.oss.port}
    source = f"""
import json, os, socket
out = {{}}
for name, port in {ports!r}.items():
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
        out[name] = "connected"
    except OSError as exc:
        out[name] = type(exc).__name__
out["interfaces"] = sorted(n for _, n in socket.if_nameindex())
out["token_file"] = os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/token")
print(json.dumps(out))
"""
    with responsiveness:
        wf = run_workflow(kube, _python_workflow(source))
    assert wf["status"]["phase"] == "Succeeded", (wf["status"].get("message"), pod_logs(kube, wf))
    out = json.loads(_result(wf))
    assert out == {"api": "ConnectionRefusedError", "oss": "ConnectionRefusedError", "interfaces": ["lo"],
                   "token_file": False}
    responsiveness.check()
    _still_serving(hostile_cluster, kube)


def test_host_network_reaches_the_api_but_gets_no_token(hostile_cluster: ClusterUnderTest, kube: Any) -> None:
    source = f"""
import json, os, ssl, urllib.error, urllib.request
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
token_path = "/var/run/secrets/kubernetes.io/serviceaccount/token"
headers = {{"Authorization": "Bearer " + open(token_path).read()}} if os.path.exists(token_path) else {{}}
request = urllib.request.Request("{hostile_cluster.url}/api/v1/namespaces/argo/secrets", headers=headers)
try:
    urllib.request.urlopen(request, context=ctx, timeout=5)
    print(json.dumps({{"status": 200}}))
except urllib.error.HTTPError as exc:
    print(json.dumps({{"status": exc.code}}))
"""
    wf = run_workflow(kube, _python_workflow(source, spec_extra={"hostNetwork": True}))
    assert wf["status"]["phase"] == "Succeeded", (wf["status"].get("message"), pod_logs(kube, wf))
    assert json.loads(_result(wf)) == {"status": 401}
    _still_serving(hostile_cluster, kube)


@pytest.mark.parametrize(("spec_extra", "message"), [
    ({"securityContext": {"runAsUser": -1}}, "spec.securityContext.runAsUser must be an integer between 0"),
    ({"securityContext": {"runAsUser": 0, "runAsNonRoot": True}},
     "container has runAsNonRoot and image will run as root"),
    ({"securityContext": {"privileged": True}}, "never runs privileged pods"),
    ({"hostNetwork": "yes"}, "spec.hostNetwork must be a boolean"),
])
def test_bad_security_settings_end_the_workflow_with_the_field(
        hostile_cluster: ClusterUnderTest, kube: Any, spec_extra: dict[str, Any], message: str) -> None:
    wf = run_workflow(kube, script_workflow("echo should-not-run", spec_extra=spec_extra))
    assert wf["status"]["phase"] in ("Error", "Failed"), wf["status"]
    (node,) = [n for n in wf["status"]["nodes"].values() if n.get("type") == "Pod"]
    assert message in node.get("message", ""), node
    assert "should-not-run" not in pod_logs(kube, wf)
    _still_serving(hostile_cluster, kube)
