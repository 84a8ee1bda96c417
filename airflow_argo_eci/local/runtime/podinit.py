"""The pod's init: the second stage of the sandbox, run by bubblewrap as ``python -I -S podinit.py``.

bubblewrap (stage 1, run as the invoking user) has built the pod's mount, PID, IPC, UTS and
network namespaces and its filesystem. This program then, in this order:

1. when it runs as root (the cluster was started as root): drops to the unprivileged host uid/gid
   of the sandbox (``setgroups([])``, ``setresgid``, ``setresuid``), losing every capability;
2. creates a user namespace in which the pod's uid/gid (``securityContext.runAsUser`` /
   ``runAsGroup``) map to that host uid/gid, and nothing else is mapped;
3. clears the capability bounding set, the ambient and inheritable sets, and the effective and
   permitted sets (so even uid 0 inside gets no capability at ``execve``);
4. sets ``no_new_privs`` and installs the seccomp filter (:mod:`.seccomp`), the very last step;
5. execs the pod's command.

Any failing step ends the pod before its command runs: the reason goes to stderr (the pod's log)
as ``pod sandbox: <step>: <error>`` and the exit code is :data:`EXIT_SANDBOX_FAILED`. The pod never
runs with less isolation than requested.

Usage: ``podinit.py CONFIG COMMAND [ARG...]`` with CONFIG ``key=value`` pairs joined by commas
(:func:`encode_config`): ``uid``, ``gid`` (inside the pod), ``host_uid``, ``host_gid`` (what to drop
to when running as root; ignored otherwise), ``seccomp`` (1 or 0). It imports only ``ctypes`` and
:mod:`.seccomp` (no json, no re), so it costs little more than the interpreter's start.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import warnings  # noqa: F401  # os.execvp imports it lazily, possibly after the stdlib became unreadable

if __package__:
    from airflow_argo_eci.local.runtime import seccomp
else:  # run as a script inside the sandbox (``-I`` leaves the script's directory off sys.path)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import seccomp  # type: ignore[no-redef]

EXIT_SANDBOX_FAILED = 126
CLONE_NEWUSER = 0x10000000
PR_CAPBSET_DROP = 24
PR_SET_DUMPABLE = 4
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _SandboxStepError(Exception):
    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"{step}: {detail}")


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, step: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise _SandboxStepError(step, f"{errno.errorcode.get(err, str(err))} ({os.strerror(err)})")


def _write(path: str, text: str, step: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise _SandboxStepError(step, f"writing {path}: {exc.strerror}") from exc


def drop_to(host_uid: int, host_gid: int) -> None:
    """Step 1 (as root only): become ``host_uid``/``host_gid`` with no supplementary groups."""
    try:
        os.setgroups([])
        os.setresgid(host_gid, host_gid, host_gid)
        os.setresuid(host_uid, host_uid, host_uid)
    except OSError as exc:
        raise _SandboxStepError("drop to the sandbox uid", f"uid {host_uid}/gid {host_gid}: {exc.strerror}") from exc
    if os.getuid() != host_uid or os.geteuid() != host_uid:
        raise _SandboxStepError("drop to the sandbox uid", f"still uid {os.geteuid()}")
    # a credential change makes the process non-dumpable, which would leave /proc/self/uid_map
    # owned by root and unwritable for this (now unprivileged) process
    _check(_libc().prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "drop to the sandbox uid")


def enter_user_namespace(uid: int, gid: int) -> None:
    """Step 2: a new user namespace where ``uid``/``gid`` map to the current (outer) uid/gid."""
    outer_uid, outer_gid = os.geteuid(), os.getegid()
    _check(_libc().unshare(CLONE_NEWUSER), "user namespace")
    _write("/proc/self/setgroups", "deny", "user namespace")
    _write("/proc/self/uid_map", f"{uid} {outer_uid} 1\n", "user namespace")
    _write("/proc/self/gid_map", f"{gid} {outer_gid} 1\n", "user namespace")


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as file:
            return int(file.read().strip())
    except (OSError, ValueError):
        return 63


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def drop_capabilities() -> None:
    """Step 3: empty bounding, ambient, inheritable, permitted and effective capability sets."""
    libc = _libc()
    for cap in range(_last_cap() + 1):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() != errno.EINVAL:
            _check(-1, "capabilities")
    if libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 and ctypes.get_errno() != errno.EINVAL:
        _check(-1, "capabilities")
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(libc.capset(ctypes.byref(header), data), "capabilities")


def encode_config(config: dict[str, int | bool | None]) -> str:
    """``{"uid": 1000, "seccomp": True, "host_uid": None}`` -> ``"uid=1000,seccomp=1"``."""
    return ",".join(f"{key}={int(value)}" for key, value in config.items() if value is not None)


def decode_config(text: str) -> dict[str, int]:
    """The inverse of :func:`encode_config`; ValueError on anything else."""
    out: dict[str, int] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"bad config item {item!r}")
        out[key] = int(value)
    return out


def main(argv: list[str]) -> int:
    """Run the steps of the module docstring, then exec ``argv[2:]``; returns only on failure."""
    if len(argv) < 3:
        sys.stderr.write("pod sandbox: usage: podinit.py CONFIG COMMAND [ARG...]\n")
        return EXIT_SANDBOX_FAILED
    try:
        config = decode_config(argv[1])
        if os.geteuid() == 0 and config.get("host_uid") is not None:
            drop_to(int(config["host_uid"]), int(config["host_gid"]))
        enter_user_namespace(int(config["uid"]), int(config["gid"]))
        drop_capabilities()
        if config.get("seccomp", True):
            try:
                seccomp.install()
            except seccomp.SeccompError as exc:
                raise _SandboxStepError("seccomp", str(exc)) from exc
    except (_SandboxStepError, ValueError, KeyError) as exc:
        sys.stderr.write(f"pod sandbox: {exc}\n")
        sys.stderr.flush()
        return EXIT_SANDBOX_FAILED
    command = argv[2:]
    try:
        os.execvp(command[0], command)  # noqa: S606  # the pod's own command, as a container runs it
    except OSError as exc:
        sys.stderr.write(f'pod sandbox: exec "{command[0]}": {exc.strerror}\n')
        return 127 if exc.errno == errno.ENOENT else 126
    return EXIT_SANDBOX_FAILED  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv))
