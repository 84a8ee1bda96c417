"""What the pod sandbox holds on this machine: a probe run once per process, and the choice of sandbox.

:func:`make_sandbox` builds the sandbox a runtime asked for. For ``"auto"`` and ``"bwrap"`` it runs
one real pod through the whole sandbox (bubblewrap, :mod:`.podinit`, :mod:`.seccomp`) with a check
program that reports, from inside, its capability sets, ``no_new_privs``, seccomp mode, uid map,
namespaces and network interfaces, and tries ``unshare`` and ``mount``. The outcome is a
:class:`SandboxReport`: what holds, what is missing, and notes. When anything is missing the
cluster refuses to start (:class:`.sandbox.SandboxError` naming each missing piece) unless the
sandbox ``"none"`` was asked for explicitly; ``"auto"`` never falls back silently.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from airflow_argo_eci.local.runtime import seccomp
from airflow_argo_eci.local.runtime.sandbox import (
    DEFAULT_SANDBOX_UID,
    POD_HOME,
    BestEffortSandbox,
    BwrapSandbox,
    PodFilesystem,
    Sandbox,
    SandboxError,
    probe_bwrap,
)

MODES = ("auto", "bwrap", "none")

#: runs inside the probe pod (``python -I -S -c``); prints one JSON object
_CHECK = r"""
import ctypes, errno, json, os, socket
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
libc = ctypes.CDLL(None, use_errno=True)
def outcome(rc):
    return "ok" if rc == 0 else errno.errorcode.get(ctypes.get_errno(), "?")
out = {k: status.get(k, "").strip() for k in
       ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")}
out["uid"] = os.getuid()
out["uid_map"] = open("/proc/self/uid_map").read().split()
out["interfaces"] = sorted(name for _, name in socket.if_nameindex())
out["ns"] = {k: os.readlink("/proc/self/ns/" + k) for k in ("net", "cgroup", "pid", "mnt")}
out["unshare"] = outcome(libc.unshare(0x10000000))
out["mount"] = outcome(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
print(json.dumps(out))
"""


@dataclass
class SandboxReport:
    """What the pod sandbox of a cluster holds (``holds``), lacks (``missing``: the cluster will not
    start with it unless ``sandbox="none"``) and further facts (``notes``)."""

    mode: str
    requested: str
    holds: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when pods are fully isolated."""
        return self.mode == "bwrap" and not self.missing

    def lines(self) -> list[str]:
        """Human-readable lines, as ``local up`` and ``local status`` print them."""
        if self.mode == "none":
            head = f"sandbox: none ({self.requested!r} requested) - pods are NOT isolated"
        elif self.complete:
            head = "sandbox: bwrap - pods are isolated"
        else:
            head = "sandbox: bwrap - INCOMPLETE"
        return [head, *(f"  holds:   {h}" for h in self.holds), *(f"  MISSING: {m}" for m in self.missing),
                *(f"  note:    {n}" for n in self.notes)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> SandboxReport | None:
        """The report recorded in ``server.json``; None when absent or malformed."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(mode=str(data["mode"]), requested=str(data["requested"]),
                       holds=[str(x) for x in data.get("holds", [])],
                       missing=[str(x) for x in data.get("missing", [])],
                       notes=[str(x) for x in data.get("notes", [])])
        except (KeyError, TypeError):
            return None


def _no_isolation_note() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.geteuid())
    return (f"pods run directly on this host as {user!r} and can read and write everything it can; absolute "
            "/tmp, output and input paths are rewritten into per-pod directories (best effort)")  # noqa: S108


_cache_lock = threading.Lock()
_cache: dict[tuple[str, int, int], tuple[list[str], list[str], list[str]]] = {}


def _bwrap_version(exe: str) -> str:
    try:
        done = subprocess.run([exe, "--version"], capture_output=True, timeout=10, check=False)
        return done.stdout.decode(errors="replace").strip() or "bubblewrap"
    except (OSError, subprocess.SubprocessError):
        return "bubblewrap"


def _run_check(sandbox: BwrapSandbox) -> tuple[dict[str, Any] | None, str]:
    """Run the check program as a pod; (its JSON, or None, and the pod's stderr)."""
    pod_dir = Path(tempfile.mkdtemp(prefix="aae-sandbox-probe-"))
    try:
        fs = PodFilesystem(pod_dir / "pod")
        fs.add_dir(POD_HOME)
        fs.create()
        python = os.path.realpath(sys.executable)
        launch = sandbox.launch(fs, [python, "-I", "-S", "-c", _CHECK],
                                {"PATH": "/usr/bin:/bin", "HOSTNAME": "sandbox-probe"}, "/", None)
        try:
            done = subprocess.run(launch.argv, env=launch.env, cwd=launch.cwd, capture_output=True,
                                  timeout=60, check=False, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as exc:
            return None, str(exc)
        stderr = done.stderr.decode(errors="replace").strip()
        try:
            return json.loads(done.stdout.decode(errors="replace").strip().splitlines()[-1]), stderr
        except (ValueError, IndexError):
            return None, stderr or f"exit code {done.returncode}, no output"
    finally:
        shutil.rmtree(pod_dir, ignore_errors=True)


def _assess(sandbox: BwrapSandbox) -> tuple[list[str], list[str], list[str]]:
    holds: list[str] = []
    missing: list[str] = []
    notes: list[str] = []
    holds.append(f"{_bwrap_version(sandbox.bwrap)} ({sandbox.bwrap}): own mount, PID, IPC and UTS namespaces, "
                 "new session, dies with the runtime; host paths read-only; /root, /home, the invoking "
                 "user's home, the checkout and the state directory hidden")
    if not sandbox.seccomp:
        missing.append(f"seccomp: no filter for this architecture ({os.uname().machine}; supported: "
                       f"{', '.join(seccomp.DENIED)})")
    report, stderr = _run_check(sandbox)
    if report is None:
        reason = stderr.splitlines()[-1] if stderr else "no output"
        step = reason.split(":", 2)[1].strip() if reason.startswith("pod sandbox:") else "sandbox"
        missing.append(f"{step}: a pod could not start in the sandbox: {reason}")
        return holds, missing, notes
    host_ns = {k: os.readlink(f"/proc/self/ns/{k}") for k in ("net", "cgroup", "pid", "mnt")}
    uid_map = report.get("uid_map") or []
    if len(uid_map) == 3 and uid_map[2] == "1" and uid_map[1] != "0":
        holds.append(f"user namespace: the pod's uid (default {report.get('uid')}) is host uid {uid_map[1]}; "
                     "nothing else is mapped")
    else:
        missing.append(f"user namespace: the pod's uid map is {' '.join(uid_map) or 'missing'} "
                       "(must map one uid to an unprivileged host uid)")
    caps = {k: report.get(k) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
    if all(v and int(v, 16) == 0 for v in caps.values()):
        holds.append("capabilities: none (CapInh, CapPrm, CapEff, CapBnd, CapAmb all 0)")
    else:
        missing.append(f"capabilities: {caps}")
    if sandbox.seccomp:
        if report.get("Seccomp") == "2" and report.get("unshare") == "EPERM" and report.get("mount") == "EPERM":
            holds.append(f"seccomp filter ({seccomp.host_arch()}): EPERM for mount, ptrace, unshare, setns, "
                         "open_by_handle_at, keyctl, bpf, kernel modules, reboot and the rest of a container "
                         "runtime's default denials; no_new_privs")
        else:
            missing.append(f"seccomp: mode {report.get('Seccomp')!r}, unshare -> {report.get('unshare')}, "
                           f"mount -> {report.get('mount')} (expected mode 2 and EPERM)")
    if report.get("NoNewPrivs") != "1":
        missing.append("no_new_privs is not set")
    if report.get("ns", {}).get("net") != host_ns["net"] and report.get("interfaces") == ["lo"]:
        holds.append("network namespace: loopback only, no route to the API server or the OSS store "
                     "(a workflow asks for the host's network with hostNetwork: true)")
    else:
        missing.append(f"network namespace: the pod sees interfaces {report.get('interfaces')}")
    if report.get("ns", {}).get("cgroup") != host_ns["cgroup"]:
        holds.append("cgroup namespace")
    else:
        notes.append("no cgroup namespace (the kernel does not offer one): pods see the host's cgroup paths")
    notes.append("no service-account token is issued to pods: the API server answers them 401, "
                 "also with hostNetwork")
    return holds, missing, notes


def probe_sandbox(sandbox: BwrapSandbox, requested: str = "bwrap") -> SandboxReport:
    """Run the check pod through ``sandbox`` (once per bwrap executable and host uid per process)."""
    key = (sandbox.bwrap, sandbox.host_uid, sandbox.host_gid)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = _assess(sandbox)
        holds, missing, notes = _cache[key]
    return SandboxReport("bwrap", requested, list(holds), list(missing), list(notes))


def make_sandbox(mode: str, hidden: list[Path], host_uid: int | None = None) -> Sandbox:
    """The sandbox for ``mode`` with its :class:`SandboxReport` as ``.report``.

    ``"none"``: best-effort (no isolation). ``"auto"`` and ``"bwrap"``: bubblewrap with every piece
    of the sandbox, or :class:`.sandbox.SandboxError` saying what is missing and how to proceed.
    ``host_uid``: the unprivileged host uid pods run as when the runtime runs as root
    (default :data:`.sandbox.DEFAULT_SANDBOX_UID`)."""
    if mode not in MODES:
        raise SandboxError(f"sandbox must be 'auto', 'bwrap' or 'none', got {mode!r}")
    if host_uid is not None and (isinstance(host_uid, bool) or not isinstance(host_uid, int)
                                 or not 0 < host_uid <= 2**32 - 2):
        raise SandboxError(f"sandbox_uid must be a non-zero uid (1..4294967294), got {host_uid!r}")
    if mode == "none":
        sandbox: Sandbox = BestEffortSandbox()
        sandbox.report = SandboxReport("none", mode, notes=[_no_isolation_note()])
        return sandbox
    exe = shutil.which("bwrap")
    reason = probe_bwrap(exe)
    if reason is not None or exe is None:
        report = SandboxReport("bwrap", mode, missing=[f"bubblewrap: {reason}; install it (apt-get install "
                                                       "bubblewrap / dnf install bubblewrap)"])
    else:
        sandbox = BwrapSandbox(exe, hidden, host_uid=DEFAULT_SANDBOX_UID if host_uid is None else host_uid)
        report = probe_sandbox(sandbox, mode)
        if report.complete:
            sandbox.report = report
            return sandbox
    raise SandboxError(
        f"sandbox={mode!r} was requested but the pod sandbox is incomplete on this machine, so the local "
        "cluster will not start:\n" + "\n".join(report.lines()[1:]) +
        "\nFix what is MISSING, or start with --sandbox none (LocalCluster(sandbox='none')) to run pods "
        "WITHOUT any isolation."
    )
