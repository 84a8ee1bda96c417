"""How one pod's process is isolated: bubblewrap, or a best-effort fallback without it.

Filesystem of a pod (both modes): ``StatePaths.pod_dir(ns, pod)`` holds

* ``tmp/``  - the pod's ``/tmp``;
* ``root/`` - every other path the pod writes: its output paths, input files, the script
  (``/argo/staging/script``), its workingDir and ``HOME`` (``/root``).

**bubblewrap** (``bwrap``): ``root/`` is bound as the pod's ``/`` and the host shows through it
read-only: each entry of a directory the pod needs writable ("spliced" directory: the directories
of output paths and input files, the workingDir, ``/root`` and all their ancestors) is bound
read-only from the host, while new files land in ``root/`` on the host. ``tmp/`` is bound at
``/tmp``, ``/proc`` and ``/dev`` are fresh, the state directory of the local cluster is hidden by a
tmpfs, the image's shim directory is bound read-only at ``/.airflow-argo-eci/bin``. The pod gets its
own PID, UTS (hostname = pod name) and IPC namespaces, its own session, and dies with the runtime.
The network is shared with the host (pods may call the local cluster). So parallel pods never see
each other's files, and a pod cannot change the host's files.

**best-effort** (no bwrap): the process runs directly on the host, in ``root/<workingDir>`` with
``TMPDIR`` and ``HOME`` pointing into the pod directory. Absolute paths cannot be redirected, so the
runtime *rewrites* them: every occurrence of ``/tmp``, of an output path, an input file path, their
directories, the workingDir and the script path in the command, the args, the script source and env
values (except ``PATH``) is replaced by the matching host path (``/tmp/x`` -> ``<pod_dir>/tmp/x``,
``/mnt/out/f`` -> ``<pod_dir>/root/mnt/out/f``). Paths computed at run time escape this rewrite,
and the pod can read and write everything the host user can: there is **no isolation** in this mode.
"""

from __future__ import annotations

import functools
import logging
import os
import posixpath
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: where the image's shim directory appears inside a bubblewrap sandbox
POD_BIN_DIR = "/.airflow-argo-eci/bin"
#: the PATH of a container, after the image's shim directory
STANDARD_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
POD_HOME = "/root"
SCRIPT_PATH = "/argo/staging/script"
#: the pod's /tmp (a per-pod host directory, never the host's /tmp)
POD_TMP = "/tmp"  # noqa: S108
_FORBIDDEN_PREFIXES = ("/proc", "/dev", "/sys")
_ROOT_SPECIAL = ("proc", "dev", "tmp")

_probe_lock = threading.Lock()
_probe_result: dict[str, str | None] = {}


class SandboxError(ValueError):
    """A pod's paths cannot be laid out (bad path in the spec) or the sandbox is unavailable."""


def probe_bwrap(bwrap: str | None = None) -> str | None:
    """``None`` if bubblewrap works here, else why not (probed once per executable and cached)."""
    exe = bwrap or shutil.which("bwrap")
    if exe is None:
        return "`bwrap` (bubblewrap) is not on PATH"
    with _probe_lock:
        if exe in _probe_result:
            return _probe_result[exe]
        try:
            done = subprocess.run(
                [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid",
                 "--unshare-uts", "--unshare-ipc", "--die-with-parent", "--new-session", "true"],
                capture_output=True, timeout=20, check=False,
            )
            reason = None if done.returncode == 0 else (
                f"`{exe}` does not work here (exit code {done.returncode}: "
                f"{done.stderr.decode(errors='replace').strip()})"
            )
        except (OSError, subprocess.SubprocessError) as exc:
            reason = f"`{exe}` cannot run: {exc}"
        _probe_result[exe] = reason
        return reason


def pod_path(value: object, field_name: str) -> str:
    """Validate and normalise an absolute path inside the pod."""
    if not isinstance(value, str) or not value:
        raise SandboxError(f"{field_name} must be a non-empty absolute path, got {value!r}")
    if not value.startswith("/"):
        raise SandboxError(f"{field_name} must be an absolute path, got {value!r}")
    norm = posixpath.normpath(value)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    for prefix in _FORBIDDEN_PREFIXES:
        if norm == prefix or norm.startswith(prefix + "/"):
            raise SandboxError(f"{field_name} {value!r} is under {prefix}, which pods cannot write")
    return norm


def _under_tmp(path: str) -> bool:
    return path == POD_TMP or path.startswith(POD_TMP + "/")


@functools.lru_cache(maxsize=1)
def runtime_paths() -> tuple[str, ...]:
    """Host directories the pods' stand-in tools come from: this Python (its prefixes, which the
    ``python`` shim and the bundled entrypoints run on) and this package (the bundled entrypoint
    scripts). A pod's own ``/tmp`` would hide them when they live under the host's ``/tmp`` (a
    checkout or virtualenv there), so the bubblewrap sandbox binds those read-only again."""
    import airflow_argo_eci

    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable),
                  os.path.dirname(airflow_argo_eci.__file__)}
    return tuple(sorted({os.path.realpath(p) for p in candidates} | candidates))


def remove_mount_points(tmp_dir: Path, paths: tuple[str, ...] | None = None) -> None:
    """Remove the empty directories bubblewrap made inside a pod's ``/tmp`` (``tmp_dir`` on the host)
    as mount points for the :func:`runtime_paths` it re-binds there, once the pod has ended, so the
    pod's ``/tmp`` holds only what the pod wrote (an artifact saved from ``/tmp`` must not carry
    them). Directories that are not empty are left alone. ``paths``: default :func:`runtime_paths`."""
    bound = runtime_paths() if paths is None else paths
    targets = [tmp_dir / p[len(POD_TMP):].lstrip("/") for p in bound if _under_tmp(p) and p != POD_TMP]
    for target in sorted(targets, key=lambda t: len(t.parts), reverse=True):
        current = target
        while current != tmp_dir and tmp_dir in current.parents:
            try:
                current.rmdir()
            except OSError:  # not empty (the pod wrote there, or another mount point remains) or gone
                if current.exists():
                    break
            current = current.parent


@dataclass
class PodFilesystem:
    """The host side of one pod's writable paths (see the module docstring)."""

    pod_dir: Path
    #: pod paths (normalised) of files the pod reads or writes; never bound from the host
    files: set[str] = field(default_factory=set)
    #: pod directories that must be writable
    writable_dirs: set[str] = field(default_factory=set)
    #: further pod paths the best-effort sandbox rewrites (output artifacts)
    rewritten: set[str] = field(default_factory=set)

    @property
    def tmp_dir(self) -> Path:
        return self.pod_dir / "tmp"

    @property
    def root_dir(self) -> Path:
        return self.pod_dir / "root"

    def host_path(self, path: str) -> Path:
        """Where the pod path ``path`` lives on the host."""
        if _under_tmp(path):
            return self.tmp_dir / path[len(POD_TMP):].lstrip("/")
        return self.root_dir / path.lstrip("/")

    def add_file(self, path: str) -> None:
        """Make ``path`` (a file or directory the pod creates) writable: its directory becomes writable."""
        resolved = path if _under_tmp(path) else os.path.realpath(path)
        self.files.add(resolved)
        parent = posixpath.dirname(resolved)
        if not _under_tmp(parent):
            self.writable_dirs.add(parent)

    def add_output_path(self, path: str) -> None:
        """Let the pod create ``path`` (an output artifact: file or directory, made by the pod with
        any missing parents) without creating anything beforehand: the nearest ancestor that exists
        on the host becomes writable, and ``path`` is rewritten in best-effort mode. What the image
        (the host) already has at ``path`` stays visible read-only under bubblewrap."""
        self.rewritten.add(path)
        if _under_tmp(path):
            return
        ancestor = posixpath.dirname(path)
        while ancestor != "/" and not os.path.isdir(ancestor):
            ancestor = posixpath.dirname(ancestor)
        self.writable_dirs.add(os.path.realpath(ancestor))

    def add_dir(self, path: str) -> None:
        """Make the directory ``path`` writable (workingDir, HOME)."""
        if not _under_tmp(path):
            self.writable_dirs.add(os.path.realpath(path))

    def create(self) -> None:
        """Create the pod's host directories, fresh: nothing of an earlier pod of the same name
        (``argo retry`` reuses pod names) survives into this one."""
        shutil.rmtree(self.pod_dir, ignore_errors=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.chmod(0o1777)
        self.root_dir.mkdir(parents=True, exist_ok=True)
        for directory in self.writable_dirs:
            self.host_path(directory).mkdir(parents=True, exist_ok=True)

    def spliced(self) -> list[str]:
        """Every writable directory and all its ancestors, parents first."""
        out: set[str] = set()
        for directory in self.writable_dirs:
            current = directory
            while current not in out:
                out.add(current)
                if current == "/":
                    break
                current = posixpath.dirname(current)
        out.add("/")
        return sorted(out, key=lambda p: (p.count("/") if p != "/" else 0, p))


@dataclass
class Launch:
    """What to hand to ``subprocess.Popen``."""

    argv: list[str]
    env: dict[str, str]
    cwd: str


class Sandbox:
    """Common interface of the two modes."""

    name = "none"
    #: True when pods cannot see each other's or the host's writable files
    isolated = False

    def pod_bin_dir(self, host_bin_dir: Path) -> str:
        """Where a shim directory appears to the pod."""
        return str(host_bin_dir)

    def rewrite(self, fs: PodFilesystem, text: str) -> str:
        """Map pod paths in ``text`` to what the process must use (identity when sandboxed)."""
        return text

    def launch(
        self, fs: PodFilesystem, argv: list[str], env: dict[str, str], working_dir: str,
        host_bin_dir: Path | None,
    ) -> Launch:
        """Build the process launch for ``argv`` (pod paths) in ``working_dir`` (a pod path)."""
        raise NotImplementedError


class BwrapSandbox(Sandbox):
    """Runs each pod inside bubblewrap (see the module docstring)."""

    name = "bwrap"
    isolated = True

    def __init__(self, bwrap: str, hidden: list[Path]) -> None:
        self.bwrap = bwrap
        self.hidden = [str(p) for p in hidden]

    def pod_bin_dir(self, host_bin_dir: Path) -> str:
        return POD_BIN_DIR

    def launch(
        self, fs: PodFilesystem, argv: list[str], env: dict[str, str], working_dir: str,
        host_bin_dir: Path | None,
    ) -> Launch:
        args = [self.bwrap, "--bind", str(fs.root_dir), "/"]
        spliced = fs.spliced()
        spliced_set = set(spliced)
        for directory in spliced:
            inside = fs.host_path(directory)
            inside.mkdir(parents=True, exist_ok=True)
            if not os.path.isdir(directory) or os.path.islink(directory):
                continue
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except OSError as exc:
                log.debug("cannot list %s for pod %s: %s", directory, fs.pod_dir, exc)
                continue
            for entry in entries:
                full = posixpath.join(directory, entry.name)
                if full in spliced_set or full in fs.files:
                    continue
                if directory == "/" and entry.name in _ROOT_SPECIAL:
                    continue
                if entry.is_symlink():
                    link = inside / entry.name
                    if not os.path.lexists(link):
                        os.symlink(os.readlink(full), link)
                    continue
                args += ["--ro-bind-try", full, full]
        args += ["--dev", "/dev", "--proc", "/proc", "--bind", str(fs.tmp_dir), POD_TMP]
        for path in runtime_paths():
            if _under_tmp(path):
                args += ["--ro-bind-try", path, path]
        for hidden in self.hidden:
            if not _under_tmp(hidden) and os.path.isdir(hidden):
                args += ["--tmpfs", hidden]
        if host_bin_dir is not None:
            args += ["--ro-bind", str(host_bin_dir), POD_BIN_DIR]
        hostname = env.get("HOSTNAME", "")
        args += ["--unshare-pid", "--unshare-uts", "--unshare-ipc", "--die-with-parent", "--new-session"]
        if hostname:
            args += ["--hostname", hostname[:63]]
        args += ["--chdir", working_dir, "--", *argv]
        return Launch(args, env, str(fs.root_dir))


class BestEffortSandbox(Sandbox):
    """Runs pods directly on the host with path rewriting; no isolation (see the module docstring)."""

    name = "none"
    isolated = False

    def _pattern(self, fs: PodFilesystem) -> re.Pattern[str] | None:
        known = {POD_TMP, *fs.files, *fs.rewritten, *(d for d in fs.writable_dirs if d != "/")}
        if not known:
            return None
        alternatives = "|".join(re.escape(p) for p in sorted(known, key=len, reverse=True))
        return re.compile(rf"(?<![\w.~/-])(?:{alternatives})(?![\w.~-])")

    def rewrite(self, fs: PodFilesystem, text: str) -> str:
        pattern = self._pattern(fs)
        if pattern is None:
            return text
        return pattern.sub(lambda m: str(fs.host_path(m.group(0))), text)

    def launch(
        self, fs: PodFilesystem, argv: list[str], env: dict[str, str], working_dir: str,
        host_bin_dir: Path | None,
    ) -> Launch:
        cwd = fs.host_path(working_dir)
        cwd.mkdir(parents=True, exist_ok=True)
        # PATH holds host directories (shims under the state directory), never pod paths
        new_env = {k: v if k == "PATH" else self.rewrite(fs, v) for k, v in env.items()}
        new_env["TMPDIR"] = str(fs.tmp_dir)
        new_env["HOME"] = str(fs.host_path(POD_HOME))
        return Launch([self.rewrite(fs, a) for a in argv], new_env, str(cwd))


def make_sandbox(mode: str, hidden: list[Path]) -> Sandbox:
    """``"auto"``: bubblewrap if it works, else best-effort with a warning; ``"bwrap"``: bubblewrap
    or :class:`SandboxError`; ``"none"``: best-effort."""
    if mode not in ("auto", "bwrap", "none"):
        raise SandboxError(f"sandbox must be 'auto', 'bwrap' or 'none', got {mode!r}")
    if mode == "none":
        return BestEffortSandbox()
    exe = shutil.which("bwrap")
    reason = probe_bwrap(exe)
    if reason is None and exe is not None:
        return BwrapSandbox(exe, hidden)
    if mode == "bwrap":
        raise SandboxError(f"sandbox='bwrap' was requested but {reason}; install bubblewrap "
                           "(apt-get install bubblewrap / dnf install bubblewrap)")
    return BestEffortSandbox()
