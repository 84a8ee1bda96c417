"""Host-side access to the files a pod leaves behind, seen the way the pod saw them.

A pod's writable files live in two host directories (see :mod:`.sandbox`): ``tmp/`` is its
``/tmp`` and ``root/`` everything else. Whatever the runtime reads or writes there after (or
before) the pod ran is untrusted: the pod may have left symbolic links, FIFOs, devices or huge
files at any path. :class:`PodFiles` resolves a pod path with ``chroot`` semantics inside those
two directories and nowhere else:

* every component is opened relative to its parent's file descriptor with ``O_NOFOLLOW``
  (``openat``-style), so no path is ever handed to the kernel to resolve on the host;
* a symbolic link is read and followed *inside the pod*: an absolute target starts again at the
  pod's ``/``, ``..`` stops at the pod's ``/``, at most :data:`MAX_LINKS` links per lookup (Linux's
  limit), so a link can never lead out of the pod's own files. What the pod saw of the host
  (read-only binds) has only empty mount points here, so a link into the host's files finds
  nothing: it reads as a missing file, with Argo's message (``open /tmp/out: no such file or
  directory``), never the target's content;
* only regular files are opened (``O_NONBLOCK``, checked again with ``fstat`` on the open
  descriptor), so a FIFO or a device never blocks or is read; reads are capped.

:func:`image_path` decides whether an artifact path the pod never wrote may be taken from the
host's read-only copy (the "image"): only what an unprivileged pod could have read there.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

#: symbolic links followed in one lookup before giving up (Linux's ``MAXSYMLINKS``)
MAX_LINKS = 40
#: bytes an output parameter (``valueFrom.path``) may hold; more fails the node instead of being read
MAX_PARAMETER_BYTES = 256 * 1024

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_POD_TMP = "tmp"


class PodFileError(OSError):
    """A pod path cannot be read safely; ``str(exc)`` is the message the node reports."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class PodFileMissing(PodFileError):
    """The path does not exist among the pod's own files (or a link leads out of them)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"open {path}: no such file or directory")
        self.path = path


def kind_of(mode: int) -> str:
    """A file type in words (``FIFO``, ``directory``...)."""
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISLNK, "symbolic link"), (stat.S_ISREG, "regular file")):
        if test(mode):
            return name
    return "special file"


@dataclass(frozen=True)
class Found:
    """A resolved pod path: the pod path without links, where it is on the host, its ``lstat``."""

    pod_path: str
    host_path: Path
    stat: os.stat_result


class PodFiles:
    """The pod's own files on the host: ``root_dir`` is its ``/``, ``tmp_dir`` its ``/tmp``.

    ``host_aliases``: in the best-effort sandbox the runtime rewrote pod paths to host paths in the
    pod's command, so a link the pod made may name ``<tmp_dir>/x``; with ``True`` such absolute
    targets are mapped back to the pod paths they stand for (they still resolve inside the pod).

    ``mounts``: the pod's volumes, mount path (normalised) -> the volume's host directory. A
    lookup reaching a mount path continues in that directory, as the pod saw it; ``..`` at the
    volume's root goes back to the mount point's parent in the pod, never above the volume's
    directory on the host, and a link inside a volume resolves in the pod like any other.
    """

    def __init__(self, root_dir: Path, tmp_dir: Path, *, host_aliases: bool = False,
                 mounts: Mapping[str, Path] | None = None) -> None:
        self.root_dir = Path(os.path.realpath(root_dir))
        self.tmp_dir = Path(os.path.realpath(tmp_dir))
        self.mounts = {"/" + "/".join(_split(m)): Path(os.path.realpath(d)) for m, d in (mounts or {}).items()
                       if _split(m)}
        volumes = tuple((str(d), m) for m, d in self.mounts.items())
        self._aliases = (*volumes, (str(self.tmp_dir), "/tmp"), (str(self.root_dir), "/")) if host_aliases else ()  # noqa: S108

    # ------------------------------------------------------------------ lookups

    def locate(self, path: str) -> Found:
        """Resolve ``path`` (absolute, in the pod), following links inside the pod only.

        Raises :class:`PodFileMissing` when it does not exist there and :class:`PodFileError` for a
        link loop."""
        with self._walk(path) as (parent_fd, name, parts, st):
            del parent_fd, name
            return Found("/" + "/".join(parts), self._host(parts), st)

    def read_text(self, path: str, max_bytes: int = MAX_PARAMETER_BYTES) -> str:
        """The content of the regular file at ``path`` (UTF-8, undecodable bytes replaced).

        A FIFO, device, socket or directory, or more than ``max_bytes`` bytes, raises
        :class:`PodFileError` with a message saying so; nothing else is read."""
        with self.open_file(path) as (fd, found):
            if found.stat.st_size > max_bytes:
                raise _too_large(path, f"{found.stat.st_size} bytes", max_bytes)
            chunks: list[bytes] = []
            size = 0
            while size <= max_bytes:
                chunk = os.read(fd, min(65536, max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            if size > max_bytes:
                raise _too_large(path, f"more than {max_bytes} bytes", max_bytes)
            return b"".join(chunks).decode("utf-8", errors="replace")

    @contextlib.contextmanager
    def open_file(self, path: str) -> Iterator[tuple[int, Found]]:
        """An open descriptor of the regular file at ``path`` (closed on exit), with its ``fstat``."""
        with self._walk(path) as (parent_fd, name, parts, st):
            pod = "/" + "/".join(parts)
            if name is None or not stat.S_ISREG(st.st_mode):
                raise PodFileError(f"the pod left a {kind_of(st.st_mode)} at {pod}, not a regular file; only "
                                   "regular files can be read back")
            fd = os.open(name, _FILE_FLAGS, dir_fd=parent_fd)
            try:
                opened = os.fstat(fd)
                if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
                    raise PodFileError(f"{pod} changed while it was being read")
                yield fd, Found(pod, self._host(parts), opened)
            finally:
                os.close(fd)

    # ------------------------------------------------------------------ the walk

    def _host(self, parts: list[str]) -> Path:
        for cut in range(len(parts), 0, -1):
            volume = self.mounts.get("/" + "/".join(parts[:cut]))
            if volume is not None:
                return volume.joinpath(*parts[cut:])
        if parts and parts[0] == _POD_TMP:
            return self.tmp_dir.joinpath(*parts[1:])
        return self.root_dir.joinpath(*parts)

    def _unalias(self, target: str) -> str:
        for host, pod in self._aliases:
            if target == host or target.startswith(host + "/"):
                return pod.rstrip("/") + "/" + target[len(host):].lstrip("/")
        return target

    @contextlib.contextmanager
    def _walk(self, path: str) -> Iterator[tuple[int, str | None, list[str], os.stat_result]]:
        """Resolve ``path``; yields the parent directory's descriptor, the last name (None for the
        pod's ``/``), the resolved components and the ``lstat`` of the result."""
        if not path.startswith("/"):
            raise PodFileError(f"{path!r} is not an absolute path")
        stack: list[tuple[str, int]] = [("", os.open(self.root_dir, _DIR_FLAGS))]
        try:
            pending = _split(path)
            links = 0
            while pending:
                part = pending.pop(0)
                if part == "..":
                    if len(stack) > 1:
                        os.close(stack.pop()[1])
                    continue
                parent_fd = stack[-1][1]
                volume = self.mounts.get("/" + "/".join([n for n, _ in stack[1:]] + [part])) if self.mounts else None
                if volume is not None:  # a volume's mount point: continue in the volume's directory
                    if not pending:
                        yield parent_fd, part, [n for n, _ in stack[1:]] + [part], os.stat(volume)
                        return
                    stack.append((part, os.open(volume, _DIR_FLAGS)))
                    continue
                if len(stack) == 1 and part == _POD_TMP:
                    if not pending:
                        yield stack[0][1], None, [_POD_TMP], os.stat(self.tmp_dir)
                        return
                    stack.append((part, os.open(self.tmp_dir, _DIR_FLAGS)))
                    continue
                try:
                    st = os.stat(part, dir_fd=parent_fd, follow_symlinks=False)
                except (FileNotFoundError, NotADirectoryError):
                    raise PodFileMissing(path) from None
                if stat.S_ISLNK(st.st_mode):
                    links += 1
                    if links > MAX_LINKS:
                        raise PodFileError(f"open {path}: too many levels of symbolic links")
                    target = self._unalias(os.readlink(part, dir_fd=parent_fd))
                    if target.startswith("/"):
                        for _, fd in stack[1:]:
                            os.close(fd)
                        del stack[1:]
                    pending[:0] = _split(target)
                    continue
                if not pending:
                    yield parent_fd, part, [n for n, _ in stack[1:]] + [part], st
                    return
                if not stat.S_ISDIR(st.st_mode):
                    raise PodFileMissing(path)
                try:
                    stack.append((part, os.open(part, _DIR_FLAGS, dir_fd=parent_fd)))
                except OSError as exc:  # replaced by a link or removed since the lstat
                    if exc.errno in (errno.ELOOP, errno.ENOENT, errno.ENOTDIR):
                        raise PodFileMissing(path) from None
                    raise
            parts = [n for n, _ in stack[1:]]
            if not parts:
                yield stack[0][1], None, [], os.fstat(stack[0][1])
            else:
                yield stack[-2][1], parts[-1], parts, os.fstat(stack[-1][1])
        finally:
            for _, fd in stack:
                os.close(fd)


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def _too_large(path: str, held: str, limit: int) -> PodFileError:
    return PodFileError(
        f"{path} holds {held}; an output parameter may hold at most {limit} bytes ({limit // 1024} KiB): "
        "write large data to an output artifact instead")


# ---------------------------------------------------------------------- the host's read-only copy


def home_directories() -> set[str]:
    """Host home directories (never exported): ``/root``, ``/home``, this user's ``$HOME`` and the
    homes of root and of every regular account (uid >= 1000); never ``/``, ``/tmp`` or ``/var/tmp``
    (a ``$HOME`` set there, as in CI, is no home)."""
    homes = {"/root", "/home", os.path.expanduser("~")}
    with contextlib.suppress(OSError):
        for entry in pwd.getpwall():
            if (entry.pw_uid == 0 or entry.pw_uid >= 1000) and entry.pw_dir not in ("", "/", "/nonexistent"):
                homes.add(entry.pw_dir)
    shared = {"/", "/tmp", "/var/tmp", "/nonexistent"}  # noqa: S108  # a $HOME pointing there is no home
    return {os.path.realpath(h) for h in homes if h.startswith("/") and os.path.realpath(h) not in shared}


def _within(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def world_readable(st: os.stat_result) -> bool:
    """Whether every user may read it (and, for a directory, list and enter it)."""
    need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(st.st_mode) else 0)
    return st.st_mode & need == need


def image_path(path: str, hidden: Iterable[Path | str]) -> tuple[str | None, str]:
    """Whether the host path ``path`` (an artifact path the pod never wrote) may be exported from
    the host's read-only copy: returns ``(real path, "")`` or ``(None, why not)``.

    Refused: anything under or holding a ``hidden`` directory (the cluster's state directory, what
    the sandbox hides) or a home directory, anything not world-readable or below a directory others cannot enter.
    Packing then skips what inside is not world-readable and never follows a link
    (:class:`~airflow_argo_eci.archives.PackPolicy` ``host_copy``)."""
    real = os.path.realpath(path)
    for base in [*(os.path.realpath(h) for h in hidden), *home_directories()]:
        if _within(real, base):
            return None, f"{path} is under {base}, which pods cannot read"
        if _within(base, real):
            return None, f"{path} holds {base}, which pods cannot read"
    try:
        st = os.stat(real)
    except OSError as exc:
        return None, f"{path}: {exc.strerror}"
    current = os.path.dirname(real)
    while True:
        try:
            parent = os.stat(current)
        except OSError as exc:
            return None, f"{path}: {exc.strerror}"
        if not parent.st_mode & stat.S_IXOTH:
            return None, f"{path} is below {current}, which not every user may enter"
        if current == "/":
            break
        current = os.path.dirname(current)
    if not world_readable(st):
        return None, f"{path} is not readable by every user (mode {stat.filemode(st.st_mode)})"
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return None, f"{path} is a {kind_of(st.st_mode)}, not a file or directory"
    return real, ""
