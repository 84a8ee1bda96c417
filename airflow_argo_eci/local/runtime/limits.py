"""Container ``resources.limits`` on local pods, enforced from the host side as the kubelet would.

* **Quantities** are parsed the Kubernetes way (:func:`parse_quantity`: ``Ki Mi Gi Ti Pi Ei``,
  ``n u m k M G T P E``, exponents such as ``1e3``); the one parser of the package.
* **memory**: the pod's cgroup memory limit. Over it the kernel's OOM killer strikes; the pod
  ends ``Failed``, container terminated reason ``OOMKilled``, exit code 137, message
  ``OOMKilled (exit code 137)`` (Argo's node message). Under cgroup v1, where the kernel kills one
  process only, the rest of the pod is killed at once, as ``memory.oom.group`` does under v2.
* **ephemeral-storage**: the disk usage of the pod's writable space (its ``root/`` and ``tmp/``
  directories) plus its container log, as the kubelet counts it, is measured every
  :data:`WATCH_INTERVAL` seconds and once more when the process ends; over the limit the pod is
  evicted: ``Failed``, pod reason ``Evicted``, the kubelet's message
  (``Container main exceeded its local ephemeral storage limit "50Mi". ``), exit code 137.
  ``RLIMIT_FSIZE`` (the limit plus 1 MiB) also stops any single file from growing far past it.
* **pids**: at most ``pids_limit`` processes and threads per pod (the kubelet's ``podPidsLimit``).
* **cpu**: ``limits.cpu`` as a CFS quota where a cpu cgroup is available.

Method (:attr:`PodLimiter.method`): cgroup v2 where a delegated subtree offers ``memory`` and
``pids``, else cgroup v1 (see :mod:`.cgroups`), else rlimits. Both are applied from the host side
before the sandbox starts: :meth:`PodGuard.wrap` puts a host ``sh`` (joins the cgroups) and
util-linux ``prlimit`` (sets the rlimits) in front of the sandbox's argv, so ``Popen`` keeps using
vfork (a ``preexec_fn`` would fork the whole server, ~30 ms a pod here; it is the fallback when
those programs are missing). The rlimits: ``RLIMIT_DATA`` for memory (per process; an allocation
fails, e.g. Python's ``MemoryError``, instead of an OOM kill, so the pod ends with the program's
own exit code), ``RLIMIT_NPROC`` for pids (counted per user, so this user's processes at start are
added to the limit; not enforced for processes running as host root), ``RLIMIT_CPU`` for
``limits.cpu`` times the pod's deadline (CPU seconds, per process). Core dumps are always off.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import resource
import shutil
import signal
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from airflow_argo_eci.local.runtime import cgroups

DEFAULT_PIDS_LIMIT = 1024
#: seconds between two measurements of a pod's ephemeral storage
WATCH_INTERVAL = 0.25
OOM_EXIT_CODE = 137
#: Kubernetes' quantity grammar (k8s.io/apimachinery resource.Quantity), one suffix or exponent
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_MAX_QUANTITY = Decimal(2) ** 63
QUANTITY_HELP = ("a number with an optional suffix: Ki, Mi, Gi, Ti, Pi, Ei, n, u, m, k, M, G, T, P, E "
                 "or an exponent such as 1e3 (e.g. \"64Mi\", \"500m\", \"2\")")
#: the resources enforced here; others (``nvidia.com/gpu``...) are accepted and ignored
RESOURCES = ("cpu", "memory", "ephemeral-storage")


class LimitError(ValueError):
    """A container's ``resources`` cannot be used (the message names the field and the fix)."""


def parse_quantity(value: Any, field_name: str) -> Decimal:
    """The value of a Kubernetes quantity (``"64Mi"`` -> 67108864, ``"100m"`` -> 0.1, ``2`` -> 2).

    Raises :class:`LimitError` naming ``field_name`` for anything else (also for values of 2^63 or
    more, and for NaN or infinite numbers)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise LimitError(f"{field_name}: {value!r} is not a quantity; use {QUANTITY_HELP}")
    text = str(value).strip() if not isinstance(value, float) else repr(value)
    match = _QUANTITY.match(text) if len(text) <= 64 else None
    if match is None:
        raise LimitError(f"{field_name}: {value!r} is not a quantity; use {QUANTITY_HELP}")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        if suffix in _BINARY:
            result = Decimal(number) * (Decimal(1024) ** _BINARY[suffix])
        elif suffix in _DECIMAL:
            result = Decimal(number).scaleb(_DECIMAL[suffix])
        else:
            result = Decimal(number).scaleb(int(suffix[1:]))
    except (InvalidOperation, ValueError, OverflowError) as exc:
        raise LimitError(f"{field_name}: {value!r} is not a quantity; use {QUANTITY_HELP}") from exc
    if abs(result) >= _MAX_QUANTITY:
        raise LimitError(f"{field_name}: {value!r} is too large (at most 2^63-1)")
    return result


def format_quantity(value: Decimal, binary: bool) -> str:
    """A quantity in canonical form (``52428800`` -> ``"50Mi"`` when ``binary``, ``"52428800"`` else)."""
    if value == value.to_integral_value() and value > 0:
        whole = int(value)
        table = [(s, 1024**e) for s, e in _BINARY.items()] if binary else \
            [(s, 10**e) for s, e in _DECIMAL.items() if e > 0]
        for suffix, factor in reversed(table):
            if whole % factor == 0:
                return f"{whole // factor}{suffix}"
        return str(whole)
    milli = value * 1000
    return f"{int(milli)}m" if milli == milli.to_integral_value() else format(value.normalize(), "f")


@dataclass(frozen=True)
class PodLimits:
    """The limits of one pod's main container (``None``: unlimited)."""

    memory: int | None = None
    cpu: float | None = None
    ephemeral_storage: int | None = None
    #: the ephemeral-storage limit as the kubelet prints it (``"50Mi"``)
    ephemeral_storage_text: str = ""
    pids: int | None = None


def container_limits(container: dict[str, Any], pids_limit: int | None) -> PodLimits:
    """Validate ``container["resources"]`` (limits and requests) and return what to enforce."""
    resources = container.get("resources")
    if resources is None:
        return PodLimits(pids=pids_limit)
    if not isinstance(resources, dict):
        raise LimitError(f"resources must be an object with limits and requests, got {resources!r}")
    parsed: dict[str, dict[str, Decimal]] = {}
    for kind in ("limits", "requests"):
        section = resources.get(kind)
        if section is None:
            section = {}
        if not isinstance(section, dict):
            raise LimitError(f"resources.{kind} must be an object of resource name -> quantity, got {section!r}")
        parsed[kind] = {}
        for name, raw in section.items():
            if name not in RESOURCES:
                continue
            quantity = parse_quantity(raw, f"resources.{kind}.{name}")
            if quantity < 0:
                raise LimitError(f"resources.{kind}.{name}: {raw!r} must be greater than or equal to 0")
            parsed[kind][name] = quantity
    limits, requests = parsed["limits"], parsed["requests"]
    for name, request in requests.items():
        if name in limits and request > limits[name]:
            raise LimitError(f"resources.requests.{name}: {resources['requests'][name]!r} must be less than or "
                             f"equal to the {name} limit of {resources['limits'][name]!r}")
    memory = limits.get("memory")
    storage = limits.get("ephemeral-storage")
    cpu = limits.get("cpu")
    return PodLimits(
        memory=math.ceil(memory) if memory else None,
        cpu=float(cpu) if cpu else None,
        ephemeral_storage=math.ceil(storage) if storage else None,
        ephemeral_storage_text=format_quantity(storage, _is_binary(resources["limits"]["ephemeral-storage"]))
        if storage else "",
        pids=pids_limit,
    )


def _is_binary(raw: Any) -> bool:
    return isinstance(raw, str) and raw.strip()[-2:] in _BINARY


def storage_usage(paths: list[Path]) -> int:
    """Bytes of disk used by the files below ``paths`` (like ``du``: allocated blocks, each inode
    once, links not followed, not crossing into other file systems; directories themselves are not
    counted, so the sandbox's empty mount points cost nothing)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [str(p) for p in paths]
    while stack:
        path = stack.pop()
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        if not stat.S_ISDIR(st.st_mode):
            total += st.st_blocks * 512
        else:
            with contextlib.suppress(OSError), os.scandir(path) as entries:
                stack.extend(e.path for e in entries if _same_device(e, st.st_dev))
    return total


def _same_device(entry: os.DirEntry[str], device: int) -> bool:
    try:
        return entry.stat(follow_symlinks=False).st_dev == device
    except OSError:
        return False


def user_process_count() -> int:
    """Tasks (processes and threads) of this real uid, as ``RLIMIT_NPROC`` counts them."""
    uid, count = os.getuid(), 0
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if entry.stat().st_uid == uid:
                        count += len(os.listdir(f"/proc/{entry.name}/task"))
    return count


@dataclass
class Verdict:
    """How a pod ended because of a limit (overrides the plain exit outcome)."""

    reason: str  # "OOMKilled" (container) | "Evicted" (pod)
    message: str
    exit_code: int = OOM_EXIT_CODE


#: joins the cgroups given as arguments, then execs the rest: ``sh -c JOIN aae-limits N procs... argv...``
#: (an exec wrapper keeps ``Popen`` on vfork: a ``preexec_fn`` forks the whole server, ~30 ms a pod)
_JOIN = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"'
_PRLIMIT_NAMES = {resource.RLIMIT_CORE: "core", resource.RLIMIT_FSIZE: "fsize", resource.RLIMIT_DATA: "data",
                  resource.RLIMIT_NPROC: "nproc", resource.RLIMIT_CPU: "cpu"}


@dataclass
class PodGuard:
    """One pod's limits while it runs: ``wrap`` (and ``preexec_fn``) for ``Popen``, ``watch`` once it
    runs, ``verdict`` after it exits, ``close`` always."""

    name: str
    limits: PodLimits
    storage: list[Path]
    cgroup: cgroups.PodCgroup | None = None
    rlimits: list[tuple[int, int]] = field(default_factory=list)
    evicted: str = ""
    #: the host's ``sh`` and ``prlimit`` (util-linux) for the exec wrapper; None: ``preexec_fn`` instead
    shell: str | None = None
    prlimit: str | None = None
    #: hands the cgroup back for removal (:meth:`.cgroups.CgroupTree.release`)
    release: Callable[[cgroups.PodCgroup], None] | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` behind host-side wrappers that join the pod's cgroups and set its rlimits before
        it starts (nothing that runs inside the sandbox chooses them)."""
        if self.preexec_fn is not None:
            return argv
        rlimits = self.rlimits
        join = _JOIN
        if self.cgroup is not None and rlimits == [(resource.RLIMIT_CORE, 0)]:
            rlimits, join = [], "ulimit -c 0; " + _JOIN  # one exec less (every shell has ulimit -c)
        if rlimits:
            assert self.prlimit is not None
            argv = [self.prlimit, *(f"--{_PRLIMIT_NAMES[w]}={v}:{v}" for w, v in rlimits), "--", *argv]
        if self.cgroup is not None:
            assert self.shell is not None
            files = [os.fsdecode(f) for f in self.cgroup.procs_files]
            argv = [self.shell, "-c", join, "aae-limits", str(len(files)), *files, *argv]
        return argv

    @property
    def preexec_fn(self) -> Callable[[], None] | None:
        """For ``Popen`` when a wrapper program is missing on this host (slower: no vfork)."""
        missing = (self.cgroup is not None and self.shell is None) or (bool(self.rlimits) and self.prlimit is None)
        return self.preexec if missing else None

    def preexec(self) -> None:
        """Runs in the child between fork and exec: os-level calls only."""
        if self.cgroup is not None:
            self.cgroup.join()
        for which, value in self.rlimits:
            resource.setrlimit(which, (value, value))

    def watch(self, pid: int) -> None:
        """Start watching the pod whose process group leader is ``pid``."""
        oom_watch = self.limits.memory is not None and self.cgroup is not None and self.cgroup.version == 1
        if self.limits.ephemeral_storage is None and not oom_watch:
            return
        self._thread = threading.Thread(target=self._watch, args=(pid,), name=f"limits-{self.name}", daemon=True)
        self._thread.start()

    def _watch(self, pid: int) -> None:
        pause = WATCH_INTERVAL
        while not self._stop.wait(pause):
            started = time.monotonic()
            if self._over_limit() or (self.cgroup is not None and self.cgroup.oom_kills()):
                # the kubelet's eviction, or the rest of an OOM-killed v1 pod: the whole pod dies
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                if self.cgroup is not None:
                    self.cgroup.kill_all()
                return
            pause = max(WATCH_INTERVAL, 4 * (time.monotonic() - started))  # a huge tree costs less often

    def _over_limit(self) -> bool:
        limit = self.limits.ephemeral_storage
        if limit is None or self.evicted:
            return bool(self.evicted)
        if storage_usage(self.storage) > limit:
            self.evicted = (f"Container main exceeded its local ephemeral storage limit "
                            f"\"{self.limits.ephemeral_storage_text}\". ")
        return bool(self.evicted)

    def verdict(self) -> Verdict | None:
        """After the process ended: evicted (storage over the limit now or earlier), OOM-killed, or None."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self._over_limit():
            return Verdict("Evicted", self.evicted)
        if self.cgroup is not None and self.cgroup.oom_kills():
            return Verdict("OOMKilled", f"OOMKilled (exit code {OOM_EXIT_CODE})")
        return None

    def close(self) -> None:
        """Stop watching; kill what is left of the pod and remove its cgroups."""
        self._stop.set()
        if self.cgroup is not None:
            self.cgroup.kill_all()
            if self.release is not None:
                self.release(self.cgroup)
            else:
                self.cgroup.remove()


class PodLimiter:
    """Enforces :class:`PodLimits` for the pods of one runtime (see the module docstring).

    ``method``: ``"auto"`` (cgroups when usable, else rlimits) or ``"rlimits"`` (never cgroups).
    """

    def __init__(self, method: str = "auto", pids_limit: int | None = DEFAULT_PIDS_LIMIT) -> None:
        if method not in ("auto", "rlimits"):
            raise ValueError(f"limits must be 'auto' or 'rlimits', got {method!r}")
        if pids_limit is not None and (isinstance(pids_limit, bool) or not isinstance(pids_limit, int)
                                       or pids_limit < 1):
            raise ValueError(f"pids_limit must be a positive integer or None (no limit), got {pids_limit!r}")
        self.pids_limit = pids_limit
        self.tree, why = cgroups.probe() if method == "auto" else (None, "rlimits were requested")
        #: why cgroups are not used ("" when they are)
        self.why_not_cgroups = why
        self._lock = threading.Lock()
        self._shell = shutil.which("sh", path="/usr/bin:/bin")
        self._prlimit = shutil.which("prlimit", path="/usr/bin:/bin:/usr/sbin:/sbin")

    @property
    def method(self) -> str:
        """How limits are enforced, e.g. ``"cgroup v1 (memory, pids, cpu)"``."""
        rlimit_parts = ["memory as RLIMIT_DATA: an allocation fails instead of an OOM kill",
                        "pids as RLIMIT_NPROC", "cpu time as RLIMIT_CPU"]
        if self.tree is None:
            return f"rlimits ({'; '.join(rlimit_parts)})"
        controllers = self.tree.controllers
        fallback = [part for name, part in zip(("memory", "pids", "cpu"), rlimit_parts, strict=True)
                    if name not in controllers]
        return self.tree.method + (f" + rlimits ({'; '.join(fallback)})" if fallback else "")

    def parse(self, container: dict[str, Any]) -> PodLimits:
        """The limits to enforce for ``container`` (:class:`LimitError` for bad resources)."""
        return container_limits(container, self.pids_limit)

    def guard(self, pod_name: str, limits: PodLimits, storage: list[Path],
              deadline_seconds: float | None = None) -> PodGuard:
        """Prepare one pod (creates its cgroups; OSError if the kernel refuses them)."""
        guard = PodGuard(pod_name, limits, storage, rlimits=[(resource.RLIMIT_CORE, 0)],
                         shell=self._shell, prlimit=self._prlimit)
        controllers = self.tree.controllers if self.tree is not None else ()
        if limits.ephemeral_storage is not None:
            guard.rlimits.append((resource.RLIMIT_FSIZE, limits.ephemeral_storage + 1024 * 1024))
        if limits.memory is not None and "memory" not in controllers:
            guard.rlimits.append((resource.RLIMIT_DATA, limits.memory))
        if limits.pids is not None and "pids" not in controllers:
            guard.rlimits.append((resource.RLIMIT_NPROC, user_process_count() + limits.pids))
        if limits.cpu is not None and deadline_seconds and "cpu" not in controllers:
            guard.rlimits.append((resource.RLIMIT_CPU, max(1, math.ceil(limits.cpu * deadline_seconds))))
        guard.rlimits = [(which, _capped(which, value)) for which, value in guard.rlimits]
        wanted = {"memory": limits.memory, "pids": limits.pids, "cpu": limits.cpu}
        needed = tuple(c for c in controllers if wanted[c] is not None)  # a cgroup only where a limit is
        if self.tree is not None and needed:
            with self._lock:
                guard.cgroup = self.tree.pod(pod_name, needed)
            guard.release = self.tree.release
            try:
                guard.cgroup.configure(limits.memory, limits.pids, limits.cpu)
            except OSError:
                guard.cgroup.remove()
                raise
        return guard

    def close(self) -> None:
        """Remove the runtime's cgroups."""
        if self.tree is not None:
            self.tree.close()


def _capped(which: int, value: int) -> int:
    """``value`` within the hard limit this process has (an unprivileged child cannot raise it)."""
    _, hard = resource.getrlimit(which)
    return value if hard == resource.RLIM_INFINITY else min(value, hard)

