"""Per-pod cgroups, nested under this process's own cgroup: v2 where a delegated subtree offers the
``memory`` and ``pids`` controllers, else the v1 ``memory``, ``pids`` (and ``cpu``) hierarchies.

Layout: one directory per runtime, ``airflow-argo-eci.<pid>.<n>`` (in each v1 hierarchy, or once
under v2), and one per pod inside it. A pod's process joins its cgroups from the host side before
it execs the sandbox (a host ``sh`` wrapper, see :mod:`.limits`, or :meth:`PodCgroup.join` in a
``preexec_fn``), so nothing that runs inside the sandbox can decide where it is accounted. When
the pod ends every process left in its cgroups is killed and the directories are removed;
directories of a runtime whose process is gone (a ``kill -9``-ed server) are removed when the next
runtime starts.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import threading
import time
from pathlib import Path

from airflow_argo_eci.local.processes import process_running

log = logging.getLogger(__name__)

PREFIX = "airflow-argo-eci."
#: controllers used when present; a tree is only used when it has at least ``REQUIRED``
WANTED = ("memory", "pids", "cpu")
REQUIRED = ("memory", "pids")
CFS_PERIOD_US = 100_000
#: the smallest CFS quota the kernel (and the kubelet) accept
MIN_CFS_QUOTA_US = 1000
_counter = itertools.count(1)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _own_cgroups() -> dict[str, str]:
    """Controller name -> this process's cgroup path (``""`` is the v2 unified hierarchy)."""
    found: dict[str, str] = {}
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for name in controllers.split(",") if controllers else [""]:
            found[name] = path
    return found


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """``(mount root, mount point, fstype, super options)`` of every cgroup mount."""
    found = []
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if sep and len(fields) >= 5 and len(rest) >= 3 and rest[0] in ("cgroup", "cgroup2"):
            found.append((fields[3], fields[4], rest[0], set(rest[2].split(","))))
    return found


def _join(mount_root: str, mount_point: str, own: str) -> Path | None:
    """Where cgroup ``own`` lives under a mount of ``mount_root`` at ``mount_point``."""
    if mount_root != "/" and not (own == mount_root or own.startswith(mount_root.rstrip("/") + "/")):
        return None
    relative = own[len(mount_root):] if mount_root != "/" else own
    return Path(mount_point) / relative.lstrip("/")


def _pids(directory: Path) -> list[int]:
    return [int(p) for p in _read(directory / "cgroup.procs").split() if p.isdigit()]


def _kill_and_remove(directory: Path, wait: float = 2.0, quiet: bool = False) -> bool:
    """SIGKILL every process in ``directory`` (and its children), then remove them, trying for up to
    ``wait`` seconds. True if gone."""
    deadline = time.monotonic() + wait
    pause = 0.001
    for child in sorted((p for p in directory.iterdir() if p.is_dir()), reverse=True) if directory.is_dir() else []:
        _kill_and_remove(child, max(0.0, deadline - time.monotonic()), quiet)
    while True:
        if (directory / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                (directory / "cgroup.kill").write_text("1")
        for pid in _pids(directory):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        try:
            directory.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            if time.monotonic() >= deadline:
                if not quiet:
                    log.warning("cannot remove cgroup %s: %s", directory, exc)
                return False
        time.sleep(pause)  # the killed processes are still exiting
        pause = min(0.05, pause * 2)


def _remove_stale(base: Path) -> None:
    """Remove the runtime directories under ``base`` whose process is gone. Only this user's: a
    directory another user's runtime left (e.g. root's, seen by an unprivileged cluster) is not ours
    to remove, and trying would only wait and warn."""
    if not os.access(base, os.W_OK):
        return
    uid = os.geteuid()
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            pid_text = entry.name[len(PREFIX):].split(".", 1)[0]
            if not (entry.name.startswith(PREFIX) and pid_text.isdigit()):
                continue
            if process_running(int(pid_text), count_foreign=True):
                continue
            try:
                if entry.stat().st_uid != uid:
                    continue
            except OSError:
                continue
            log.info("removing the cgroup %s of a runtime that is gone", entry)
            _kill_and_remove(entry)


class PodCgroup:
    """One pod's cgroup directories (one per v1 hierarchy, or one v2 directory)."""

    def __init__(self, version: int, dirs: dict[str, Path]) -> None:
        self.version = version
        #: controller -> directory (v2: the same directory for every controller)
        self.dirs = dirs
        unique = dict.fromkeys(dirs.values())
        #: ``cgroup.procs`` of each directory, as bytes for the ``preexec_fn``
        self.procs_files = [os.fsencode(d / "cgroup.procs") for d in unique]

    def configure(self, memory: int | None, pids: int | None, cpu: float | None) -> None:
        """Write the limits (``None``: unlimited). OSError if the kernel refuses one."""
        if memory is not None and "memory" in self.dirs:
            d = self.dirs["memory"]
            if self.version == 2:
                (d / "memory.max").write_text(str(memory))
                with contextlib.suppress(OSError):  # absent without swap accounting
                    (d / "memory.swap.max").write_text("0")
                with contextlib.suppress(OSError):  # the whole container dies, as with the kubelet
                    (d / "memory.oom.group").write_text("1")
            else:
                (d / "memory.limit_in_bytes").write_text(str(memory))
                with contextlib.suppress(OSError):  # no swap beyond the limit (if swap is accounted)
                    (d / "memory.memsw.limit_in_bytes").write_text(str(memory))
        if pids is not None and "pids" in self.dirs:
            (self.dirs["pids"] / "pids.max").write_text(str(pids))
        if cpu is not None and "cpu" in self.dirs:
            quota = max(MIN_CFS_QUOTA_US, round(cpu * CFS_PERIOD_US))
            if self.version == 2:
                (self.dirs["cpu"] / "cpu.max").write_text(f"{quota} {CFS_PERIOD_US}")
            else:
                (self.dirs["cpu"] / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
                (self.dirs["cpu"] / "cpu.cfs_quota_us").write_text(str(quota))

    def join(self) -> None:
        """Move the calling process into the pod's cgroups (for ``preexec_fn``: os calls only)."""
        pid = str(os.getpid()).encode()
        for path in self.procs_files:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer killed in this cgroup."""
        d = self.dirs.get("memory")
        if d is None:
            return 0
        text = _read(d / ("memory.events" if self.version == 2 else "memory.oom_control"))
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
        return 0

    def kill_all(self) -> None:
        """SIGKILL every process in the pod's cgroups (those that left the process group too)."""
        for d in dict.fromkeys(self.dirs.values()):
            for pid in _pids(d):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def remove(self, wait: float = 2.0) -> bool:
        """Kill what is left and remove the directories (trying for ``wait`` seconds). True if gone."""
        return all([_kill_and_remove(d, wait, quiet=wait == 0) for d in dict.fromkeys(self.dirs.values())])


class CgroupTree:
    """This runtime's cgroup directories; :meth:`pod` makes one pod's cgroups inside them."""

    def __init__(self, version: int, parents: dict[str, Path]) -> None:
        self.version = version
        self.parents = parents
        self._pods = itertools.count(1)
        self._lock = threading.Lock()
        self._pending: list[PodCgroup] = []
        self._reaper: threading.Thread | None = None

    @property
    def controllers(self) -> tuple[str, ...]:
        return tuple(c for c in WANTED if c in self.parents)

    @property
    def method(self) -> str:
        return f"cgroup v{self.version} ({', '.join(self.controllers)})"

    def pod(self, pod_name: str, controllers: tuple[str, ...]) -> PodCgroup:
        """Create a pod's cgroups for ``controllers`` (OSError if the kernel refuses)."""
        name = f"pod-{next(self._pods)}-{pod_name[:100]}"
        dirs: dict[str, Path] = {}
        try:
            for controller, parent in self.parents.items():
                if controller not in controllers:
                    continue
                d = parent / name
                if d not in dirs.values():
                    d.mkdir()
                dirs[controller] = d
        except OSError:
            for d in dict.fromkeys(dirs.values()):
                with contextlib.suppress(OSError):
                    d.rmdir()
            raise
        return PodCgroup(self.version, dirs)

    def release(self, cgroup: PodCgroup) -> None:
        """Kill what is left of a pod and remove its cgroups; processes that are still exiting keep
        them busy for some milliseconds, so what cannot go at once goes from a reaper thread."""
        if cgroup.remove(wait=0):
            return
        with self._lock:
            self._pending.append(cgroup)
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap, name="cgroup-reaper", daemon=True)
                self._reaper.start()

    def _reap(self) -> None:
        deadline = time.monotonic() + 10.0
        while True:
            time.sleep(0.02)
            with self._lock:
                pending, self._pending = self._pending, []
            busy = [c for c in pending if not c.remove(wait=0 if time.monotonic() < deadline else 2.0)]
            with self._lock:
                self._pending.extend(c for c in busy if time.monotonic() < deadline)
                if not self._pending:
                    self._reaper = None
                    return

    def close(self) -> None:
        """Remove the runtime's directories (killing whatever is still in them)."""
        with self._lock:
            self._pending.clear()
        for parent in dict.fromkeys(self.parents.values()):
            _kill_and_remove(parent)


def _probe_v2(own: dict[str, str], mounts: list[tuple[str, str, str, set[str]]]) -> tuple[CgroupTree | None, str]:
    if "" not in own:
        return None, "cgroup v2: this process is in no v2 cgroup"
    for root, point, fstype, _ in mounts:
        base = _join(root, point, own[""]) if fstype == "cgroup2" else None
        if base is None:
            continue
        available = _read(base / "cgroup.controllers").split()
        missing = [c for c in REQUIRED if c not in available]
        if missing:
            return None, f"cgroup v2 at {base}: controllers {', '.join(missing)} not delegated"
        use = [c for c in WANTED if c in available]
        _remove_stale(base)
        parent = base / f"{PREFIX}{os.getpid()}.{next(_counter)}"
        try:
            enabled = _read(base / "cgroup.subtree_control").split()
            if any(c not in enabled for c in use):
                (base / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in use))
            parent.mkdir()
            (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in use))
        except OSError as exc:
            with contextlib.suppress(OSError):
                parent.rmdir()
            return None, f"cgroup v2 at {base} is not writable here ({exc.strerror or exc})"
        return CgroupTree(2, dict.fromkeys(use, parent)), ""
    return None, "cgroup v2: not mounted"


def _probe_v1(own: dict[str, str], mounts: list[tuple[str, str, str, set[str]]]) -> tuple[CgroupTree | None, str]:
    parents: dict[str, Path] = {}
    why: list[str] = []
    tag = f"{PREFIX}{os.getpid()}.{next(_counter)}"
    for controller in WANTED:
        base = None
        for root, point, fstype, options in mounts:
            if fstype == "cgroup" and controller in options and controller in own:
                base = _join(root, point, own[controller])
                break
        if base is None:
            why.append(f"no {controller} hierarchy")
            continue
        _remove_stale(base)
        try:
            (base / tag).mkdir()
        except OSError as exc:
            why.append(f"{base} is not writable ({exc.strerror or exc})")
            continue
        parents[controller] = base / tag
    if all(c in parents for c in REQUIRED):
        return CgroupTree(1, parents), ""
    for parent in parents.values():
        with contextlib.suppress(OSError):
            parent.rmdir()
    return None, "cgroup v1: " + "; ".join(why)


def probe() -> tuple[CgroupTree | None, str]:
    """This runtime's cgroup tree (v2 preferred, then v1), or ``None`` and why neither works."""
    own, mounts = _own_cgroups(), _mounts()
    tree, why_v2 = _probe_v2(own, mounts)
    if tree is not None:
        return tree, ""
    tree, why_v1 = _probe_v1(own, mounts)
    if tree is not None:
        return tree, ""
    return None, f"{why_v2}; {why_v1}"
