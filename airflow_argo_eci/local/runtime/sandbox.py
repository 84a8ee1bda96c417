"""How one pod's process is isolated: bubblewrap plus a pod-init, or best-effort without isolation.

Filesystem of a pod (both modes): ``StatePaths.pod_dir(ns, pod)`` holds

* ``tmp/``  - the pod's ``/tmp``;
* ``root/`` - every other path the pod writes: its output paths, input files, the script
  (``/argo/staging/script``), its workingDir and ``HOME`` (``/root``).

**bubblewrap** (``bwrap``, stage 1, run as the invoking user): ``root/`` is bound as the pod's ``/``
and the host shows through it read-only: each entry of a directory the pod needs writable
("spliced" directory: the directories of output paths and input files, the workingDir, ``/root``
and all their ancestors) is bound read-only from the host, while new files land in ``root/`` on the
host. Never shown (:func:`masked_paths`): ``/root`` and ``/home`` (the pod's ``/root`` is an empty
directory of its own), ``/run`` (host sockets), the invoking user's home, the cluster's state
directory and the checkout this package runs from; only this interpreter's installation, the
virtualenv and the package directory are bound back, read-only (:func:`runtime_paths`,
:func:`interpreter_paths`). ``tmp/`` is bound at ``/tmp``, ``/proc`` and ``/dev`` are fresh, the
image's shim directory is bound read-only at ``/.airflow-argo-eci/bin``. The pod gets its own PID,
UTS (hostname = pod name), IPC, cgroup (where the kernel has it) and network namespaces (only
loopback: no route to the API server or the OSS store) unless it asks for ``hostNetwork: true``,
its own session, and dies with the runtime.

Stage 2 is :mod:`.podinit`: as root it drops to an unprivileged host uid (default
:data:`DEFAULT_SANDBOX_UID`), then it maps the pod's uid (:class:`.podsecurity.PodSecurity`, default
:data:`.podsecurity.DEFAULT_POD_UID`; 0 only when ``securityContext.runAsUser: 0`` asks) onto that host uid in a
new user namespace, clears every capability set, sets ``no_new_privs`` and installs the seccomp
filter (:mod:`.seccomp`) before it execs the command. The pod's writable directories belong to its
host uid (:func:`hand_over`). No service-account token is mounted: pods cannot authenticate to the
API server (it answers 401) even with ``hostNetwork``.

**best-effort** (no bwrap): the process runs directly on the host, in ``root/<workingDir>`` with
``TMPDIR`` and ``HOME`` pointing into the pod directory. Absolute paths cannot be redirected, so the
runtime *rewrites* them: every occurrence of ``/tmp``, of an output path, an input file path, their
directories, the workingDir and the script path in the command, the args, the script source and env
values (except ``PATH``) is replaced by the matching host path (``/tmp/x`` -> ``<pod_dir>/tmp/x``,
``/mnt/out/f`` -> ``<pod_dir>/root/mnt/out/f``). Paths computed at run time escape this rewrite,
and the pod can read and write everything the host user can: there is **no isolation** in this mode.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import posixpath
import pwd
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_argo_eci.local.runtime import podinit, seccomp
from airflow_argo_eci.local.runtime.podsecurity import PodSecurity, SandboxError

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
#: the host uid pods run as when the cluster runs as root (``nobody``); see ``LocalCluster(sandbox_uid=)``
DEFAULT_SANDBOX_UID = 65534
#: stage 2 of the sandbox (run with this interpreter, ``-I -S``)
PODINIT = str(Path(__file__).resolve().parent / "podinit.py")
_ROOT_SPECIAL = ("proc", "dev", "tmp")

_probe_lock = threading.Lock()
_probe_result: dict[str, str | None] = {}


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


def remove_mount_points(tmp_dir: Path, paths: tuple[str, ...] | None = None, under: str = POD_TMP) -> None:
    """Remove the empty directories bubblewrap made inside a pod's ``/tmp`` (``tmp_dir`` on the host)
    as mount points for the :func:`runtime_paths` it re-binds there, once the pod has ended, so the
    pod's ``/tmp`` holds only what the pod wrote (an artifact saved from ``/tmp`` must not carry
    them). Directories that are not empty are left alone. ``paths``: default :func:`runtime_paths`;
    ``under``: the pod directory ``tmp_dir`` stands for (a volume's mount path for a volume).

    The pod may have replaced any of these directories with a link: each component is opened
    relative to its parent with ``O_NOFOLLOW`` and removed with ``rmdir`` relative to it, so a link
    is never followed and nothing outside ``tmp_dir`` is touched."""
    bound = runtime_paths() if paths is None else paths
    targets = {p[len(under):].strip("/") for p in bound if p.startswith(under.rstrip("/") + "/")}
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    for rel in sorted(targets, key=lambda t: t.count("/"), reverse=True):
        parts = [p for p in rel.split("/") if p not in ("", ".", "..")]
        if not parts:
            continue
        try:
            fds = [os.open(tmp_dir, flags)]
        except OSError:
            return
        try:
            for part in parts[:-1]:
                fds.append(os.open(part, flags, dir_fd=fds[-1]))
            for depth in range(len(parts) - 1, -1, -1):
                try:
                    os.rmdir(parts[depth], dir_fd=fds[depth])
                except FileNotFoundError:
                    continue  # gone already (an earlier target shared it): its parent may be empty now
                except OSError:  # not empty (the pod wrote there, another mount point remains) or not a dir
                    break
        except OSError:  # a component is missing or a link the pod left: nothing of ours below it
            pass
        finally:
            for fd in fds:
                os.close(fd)


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
    #: volume mount paths (normalised) -> where the volume is on the host (None until it exists)
    #: and whether it is mounted read-only; paths below a mount live in its volume
    mounts: dict[str, tuple[Path | None, bool]] = field(default_factory=dict)

    @property
    def tmp_dir(self) -> Path:
        return self.pod_dir / "tmp"

    @property
    def root_dir(self) -> Path:
        return self.pod_dir / "root"

    def host_path(self, path: str) -> Path:
        """Where the pod path ``path`` lives on the host (inside its volume when it is at or below
        a volume's mount path)."""
        found = self.mount_of(path)
        if found is not None:
            host_dir = self.mounts[found[0]][0]
            if host_dir is not None:
                return host_dir / found[1] if found[1] else host_dir
        return self._own_path(path)

    def _own_path(self, path: str) -> Path:
        """Where ``path`` lives in the pod's own ``root/`` or ``tmp/`` (volumes ignored)."""
        if _under_tmp(path):
            return self.tmp_dir / path[len(POD_TMP):].lstrip("/")
        return self.root_dir / path.lstrip("/")

    def mount_of(self, path: str) -> tuple[str, str] | None:
        """``(mount path, path relative to it)`` of the innermost volume mount holding ``path``."""
        best: str | None = None
        for mount in self.mounts:
            if (path == mount or path.startswith(mount.rstrip("/") + "/")) and (best is None or len(mount) > len(best)):
                best = mount
        if best is None:
            return None
        return best, path[len(best):].strip("/")

    def add_mount(self, path: str, read_only: bool) -> str:
        """Mount a volume at the pod path ``path`` (bound by the sandbox once :meth:`attach` names
        its host directory); returns the normalised mount path. Its parent directory becomes a
        writable directory of the pod, so the mount point can be made there."""
        resolved = path if _under_tmp(path) else os.path.realpath(path)
        if resolved == "/":
            raise SandboxError(f"volumeMounts mountPath {path!r} would hide the whole pod filesystem")
        if resolved in self.mounts:
            raise SandboxError(f"volumeMounts mountPath {path!r} is mounted twice: must be unique")
        self.mounts[resolved] = (None, read_only)
        parent = posixpath.dirname(resolved)
        if not _under_tmp(parent) and parent != "/" and self.mount_of(parent) is None:
            self.writable_dirs.add(parent)
        return resolved

    def attach(self, mount_path: str, host_dir: Path) -> None:
        """The volume mounted at ``mount_path`` lives in ``host_dir``."""
        self.mounts[mount_path] = (host_dir, self.mounts[mount_path][1])

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
        for mount in self.mounts:  # the mount points, in the pod's own files
            self._own_path(mount).mkdir(parents=True, exist_ok=True)
        for directory in self.writable_dirs:
            if self.mount_of(directory) is None:  # those in a volume: made_in_volumes, once they exist
                self._own_path(directory).mkdir(parents=True, exist_ok=True)

    def in_volumes(self) -> list[tuple[Path, str]]:
        """The writable directories below a volume mount: (the volume's host directory, the
        directory relative to it), for :func:`.volumes.make_dirs_inside`."""
        out = []
        for directory in sorted(self.writable_dirs):
            found = self.mount_of(directory)
            if found is not None and found[1]:
                host_dir = self.mounts[found[0]][0]
                if host_dir is not None:
                    out.append((host_dir, found[1]))
        return out

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
    #: what holds and what does not (:class:`.isolation.SandboxReport`), set by ``make_sandbox``
    report: Any = None

    def pod_bin_dir(self, host_bin_dir: Path) -> str:
        """Where a shim directory appears to the pod."""
        return str(host_bin_dir)

    def rewrite(self, fs: PodFilesystem, text: str) -> str:
        """Map pod paths in ``text`` to what the process must use (identity when sandboxed)."""
        return text

    def launch(
        self, fs: PodFilesystem, argv: list[str], env: dict[str, str], working_dir: str,
        host_bin_dir: Path | None, security: PodSecurity | None = None, *,
        command: list[str] | None = None, extra_bins: dict[str, Path] | None = None,
    ) -> Launch:
        """Build the process launch for ``argv`` (pod paths) in ``working_dir`` (a pod path), as
        ``security`` says (default :class:`PodSecurity`; ignored without isolation). ``command``:
        run this instead (a multi-container pod's supervisor, with each container's command from
        :meth:`container_launch`); ``extra_bins``: further image shim directories, pod path -> host."""
        raise NotImplementedError

    def container_launch(
        self, fs: PodFilesystem, argv: list[str], env: dict[str, str], working_dir: str,
        security: PodSecurity | None = None,
    ) -> tuple[list[str], dict[str, str], str]:
        """One container's (argv, env, cwd) as the process inside the pod's sandbox runs it."""
        raise NotImplementedError


class BwrapSandbox(Sandbox):
    """Runs each pod inside bubblewrap plus :mod:`.podinit` (see the module docstring).

    ``hidden``: host directories no pod may see (the state directory); home directories and the
    checkout are always hidden (:func:`masked_paths`). ``host_uid``/``host_gid``: the unprivileged
    host identity pods get when the runtime runs as root (ignored otherwise: pods then map to the
    invoking user).
    """

    name = "bwrap"
    isolated = True

    def __init__(self, bwrap: str, hidden: list[Path], host_uid: int = DEFAULT_SANDBOX_UID,
                 host_gid: int | None = None) -> None:
        self.bwrap = bwrap
        self.hidden = [str(p) for p in hidden]
        self.masked = masked_paths(self.hidden)
        self.as_root = os.geteuid() == 0
        self.host_uid = host_uid if self.as_root else os.geteuid()
        self.host_gid = (host_gid if host_gid is not None else _primary_gid(host_uid)) if self.as_root \
            else os.getegid()
        self.seccomp = seccomp.host_arch() is not None

    def pod_bin_dir(self, host_bin_dir: Path) -> str:
        return POD_BIN_DIR

    def container_launch(
        self, fs: PodFilesystem, argv: list[str], env: dict[str, str], working_dir: str,
        security: PodSecurity | None = None,
    ) -> tuple[list[str], dict[str, str], str]:
        return _bwrap_container_launch(self, argv, env, working_dir, security)

    def _is_masked(self, path: str) -> bool:
        return any(path == m or path.startswith(m.rstrip("/") + "/") for m in self.masked)

    def launch(
        self, fs: PodFilesystem, argv: list[str], env: dict[str, str], working_dir: str,
        host_bin_dir: Path | None, security: PodSecurity | None = None, *,
        command: list[str] | None = None, extra_bins: dict[str, Path] | None = None,
    ) -> Launch:
        security = security or PodSecurity()
        args = [self.bwrap, "--bind", str(fs.root_dir), "/"]
        spliced = fs.spliced()
        spliced_set = set(spliced)
        for directory in spliced:
            if fs.mount_of(directory) is not None:
                continue  # inside a volume: the volume's bind shows it
            inside = fs.host_path(directory)
            inside.mkdir(parents=True, exist_ok=True)
            if self._is_masked(directory):
                continue  # the pod's own directory: nothing of the host's shows through
            if not os.path.isdir(directory) or os.path.islink(directory):
                continue
            try:
                entries = host_entries(directory)
            except OSError as exc:
                log.debug("cannot list %s for pod %s: %s", directory, fs.pod_dir, exc)
                continue
            for name, link_target in entries:
                full = posixpath.join(directory, name)
                if full in spliced_set or full in fs.files or full in fs.mounts:
                    continue
                if directory == "/" and name in _ROOT_SPECIAL:
                    continue
                if full in self.masked:
                    (inside / name).mkdir(exist_ok=True)  # an empty directory in its place
                    continue
                if link_target is not None:
                    link = inside / name
                    if not os.path.lexists(link):
                        os.symlink(link_target, link)
                    continue
                args += ["--ro-bind-try", full, full]
        args += ["--dev", "/dev", "--proc", "/proc", "--bind", str(fs.tmp_dir), POD_TMP]
        # volumes before what the sandbox binds again on top (a volume at /work must not hide the
        # runtime when it runs from /work/...); their mount points are removed after the pod
        for mount in sorted(fs.mounts, key=lambda p: p.count("/")):  # outer volumes first
            host_dir, read_only = fs.mounts[mount]
            if host_dir is None:
                raise SandboxError(f"the volume mounted at {mount} does not exist on the host")
            args += ["--ro-bind" if read_only else "--bind", str(host_dir), mount]
        covers = [m for m in self.masked if not _under_tmp(m) and m not in spliced_set
                  and not any(self._is_masked(a) for a in _ancestors(m) if a in spliced_set)
                  and os.path.isdir(m) and not os.path.islink(m)]
        for masked in covers:
            args += ["--tmpfs", masked]
        resolv = os.path.realpath("/etc/resolv.conf")  # often a link into /run (systemd-resolved)
        extra = {resolv} if security.host_network and self._is_masked(resolv) else set()
        bound = _outermost(frozenset({*interpreter_paths(), *runtime_paths(), *extra}))
        made: set[str] = set()
        for path in bound:
            for ancestor in _ancestors(path):  # bubblewrap would make missing parents mode 0700
                if ancestor not in made and ancestor != "/":
                    made.add(ancestor)
                    args += ["--perms", "0755", "--dir", ancestor]
            args += ["--ro-bind", path, path]
        # a hidden directory inside a re-bound one (a state directory inside the virtualenv) stays hidden
        inner = [m for m in self.masked if os.path.isdir(m) and any(m.startswith(p + "/") for p in bound)]
        for masked in inner:
            args += ["--tmpfs", masked]
        for masked in (*covers, *inner):
            args += ["--remount-ro", masked]
        if host_bin_dir is not None:
            args += ["--perms", "0755", "--dir", posixpath.dirname(POD_BIN_DIR),
                     "--ro-bind", str(host_bin_dir), POD_BIN_DIR]
        for shown, host_dir in sorted((extra_bins or {}).items()):
            args += ["--perms", "0755", "--dir", posixpath.dirname(shown), "--ro-bind", str(host_dir), shown]
        args += ["--unshare-pid", "--unshare-uts", "--unshare-ipc", "--unshare-cgroup-try",
                 "--die-with-parent", "--new-session"]
        if not security.host_network and not security.shared_network:
            args.append("--unshare-net")
        hostname = env.get("HOSTNAME", "")
        if hostname:
            args += ["--hostname", hostname[:63]]
        if command is None:
            command = self.container_launch(fs, argv, env, working_dir, security)[0]
        args += ["--chdir", working_dir, "--", *command]
        if self.as_root:
            hand_over(fs, self.host_uid, self.host_gid)
        return Launch(args, env, str(fs.root_dir))


def _bwrap_container_launch(
    sandbox: BwrapSandbox, argv: list[str], env: dict[str, str], working_dir: str, security: PodSecurity | None,
) -> tuple[list[str], dict[str, str], str]:
    security = security or PodSecurity()
    config: dict[str, int | bool | None] = {
        "uid": security.uid, "gid": security.gid, "seccomp": sandbox.seccomp,
        "host_uid": sandbox.host_uid if sandbox.as_root else None,
        "host_gid": sandbox.host_gid if sandbox.as_root else None,
    }
    return [*podinit_command(config), *argv], env, working_dir


def podinit_command(config: dict[str, int | bool | None]) -> list[str]:
    """The command line of :mod:`.podinit` with ``config`` (this interpreter, isolated mode)."""
    return [os.path.realpath(sys.executable), "-I", "-S", PODINIT, podinit.encode_config(config)]


def hand_over(fs: PodFilesystem, uid: int, gid: int) -> None:
    """Give the pod's writable directories (and what the runtime placed in them) to the pod's host
    uid/gid, without following any link (``lchown``): its ``/tmp``, ``HOME`` and writable dirs."""
    tops = {fs.tmp_dir, fs.host_path(POD_HOME),
            *(fs.host_path(d) for d in fs.writable_dirs if fs.mount_of(d) is None)}
    for top in sorted(tops):
        if not os.path.lexists(top) or os.path.islink(top):
            continue
        os.lchown(top, uid, gid)
        for current, dirs, files in os.walk(top, followlinks=False):
            for name in (*dirs, *files):
                os.lchown(os.path.join(current, name), uid, gid)


#: a directory changed less than this long ago is listed again for every pod: a filesystem's
#: timestamps can be coarser than the time between two changes
_SETTLED_NS = 2_000_000_000
_listings: dict[str, tuple[tuple[int, int, int], tuple[tuple[str, str | None], ...]]] = {}
_listings_lock = threading.Lock()


def host_entries(directory: str) -> tuple[tuple[str, str | None], ...]:
    """The entries of the host directory ``directory`` by name: ``(name, link target)`` (None for
    anything not a symlink). A listing is kept while the directory's inode and mtime stay the same
    and reused by the next pods (a pod's root splices the same host directories each time); one
    changed in the last two seconds is read again each time."""
    before = os.stat(directory)
    key = (before.st_dev, before.st_ino, before.st_mtime_ns)
    with _listings_lock:
        cached = _listings.get(directory)
    if cached is not None and cached[0] == key:
        return cached[1]
    entries = tuple(
        (entry.name, os.readlink(entry.path) if entry.is_symlink() else None)
        for entry in sorted(os.scandir(directory), key=lambda e: e.name)
    )
    if time.time_ns() - before.st_mtime_ns > _SETTLED_NS:
        with _listings_lock:
            _listings[directory] = (key, entries)
    return entries


@functools.lru_cache(maxsize=8)
def _outermost(paths: frozenset[str]) -> tuple[str, ...]:
    """The existing, resolved ``paths`` that lie under no other of them (one bind each); the
    interpreter's and runtime's paths, the same for every pod, are resolved once."""
    real = {p for p in paths if os.path.exists(p) and os.path.realpath(p) == p}
    return tuple(sorted(p for p in real if not any(a in real for a in _ancestors(p))))


def _ancestors(path: str) -> list[str]:
    """``/a/b/c`` -> ``["/a", "/a/b"]`` (proper ancestors, parents first, without ``/``)."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _primary_gid(uid: int) -> int:
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return uid


#: system directories a pod always needs, even when one is somebody's home directory
_NEVER_MASKED = frozenset({"/", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/var", "/opt"})


def masked_paths(hidden: list[str]) -> tuple[str, ...]:
    """Host directories no pod sees: ``hidden`` (the state directory), ``/root``, ``/home``, ``/run``
    (the host's sockets: a pod gets an empty one, as a container does), the invoking user's
    ``$HOME`` and passwd home, and the checkout this package runs from (its parent directory unless
    that is a ``site-packages``). Each as given and resolved; never ``/`` or a system directory."""
    import airflow_argo_eci

    found = {"/root", "/home", "/run", *hidden, os.path.expanduser("~")}
    with contextlib.suppress(KeyError):
        found.add(pwd.getpwuid(os.geteuid()).pw_dir)
    parent = os.path.dirname(os.path.dirname(os.path.abspath(airflow_argo_eci.__file__)))
    if os.path.basename(parent) not in ("site-packages", "dist-packages"):
        found.add(parent)
    out = set()
    for path in found:
        if path and path.startswith("/"):
            out.update({posixpath.normpath(path), os.path.realpath(path)})
    return tuple(sorted(out - _NEVER_MASKED))


@functools.lru_cache(maxsize=1)
def interpreter_paths() -> tuple[str, ...]:
    """What :mod:`.podinit` needs in every sandbox: this interpreter's installation (resolved) and
    the runtime package directory (podinit and seccomp)."""
    exe = os.path.realpath(sys.executable)
    prefix = os.path.realpath(sys.base_prefix)
    paths = {prefix, os.path.dirname(os.path.realpath(__file__))}
    if not exe.startswith(prefix + "/"):
        paths.add(os.path.dirname(exe))
    return tuple(sorted(paths))


class BestEffortSandbox(Sandbox):
    """Runs pods directly on the host with path rewriting; no isolation (see the module docstring)."""

    name = "none"
    isolated = False

    def _pattern(self, fs: PodFilesystem) -> re.Pattern[str] | None:
        known = {POD_TMP, *fs.files, *fs.rewritten, *fs.mounts, *(d for d in fs.writable_dirs if d != "/")}
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
        host_bin_dir: Path | None, security: PodSecurity | None = None, *,
        command: list[str] | None = None, extra_bins: dict[str, Path] | None = None,
    ) -> Launch:
        new_argv, new_env, cwd = self.container_launch(fs, argv, env, working_dir, security)
        if command is not None:
            return Launch(command, new_env, cwd)
        return Launch(new_argv, new_env, cwd)

    def container_launch(
        self, fs: PodFilesystem, argv: list[str], env: dict[str, str], working_dir: str,
        security: PodSecurity | None = None,
    ) -> tuple[list[str], dict[str, str], str]:
        cwd = fs.host_path(working_dir)
        cwd.mkdir(parents=True, exist_ok=True)
        # PATH holds host directories (shims under the state directory), never pod paths
        new_env = {k: v if k == "PATH" else self.rewrite(fs, v) for k, v in env.items()}
        new_env["TMPDIR"] = str(fs.tmp_dir)
        new_env["HOME"] = str(fs.host_path(POD_HOME))
        return [self.rewrite(fs, a) for a in argv], new_env, str(cwd)
