"""Argo's artifact archives (``.tgz``): pack the way Argo's executor does, unpack without escaping.

Argo stores an output artifact packed as a gzipped tar holding exactly one top-level entry named
after the artifact's path (a file, or a directory with its tree). When the artifact is consumed,
that entry *becomes* the input path. Both halves live here so the local executor and
:class:`~airflow_argo_eci.hooks.oss.OSSArtifactHook` agree byte for byte.

Links: a symbolic link is kept as a link only when its target resolves, step by step and through
the archive's other links, inside the subtree of its own top-level entry, never climbing above
it even on the way (``top/l -> ../top/x`` would read a sibling once ``top`` is unpacked under
another name); a top-level entry is never a link (``top -> .`` would be the directory holding
it). A hard link must name an earlier regular file of the same top-level entry. The same rule
holds both ways: :func:`pack_tgz` does not produce what :func:`unpack_tgz` refuses.

Packing walks the tree with file descriptors (``O_NOFOLLOW`` at every step, ``O_NONBLOCK``,
``fstat`` on what was opened), so a link is stored as a link and never followed, devices, FIFOs
and sockets are refused (or skipped, see :class:`PackPolicy`) without being opened, and a size
budget bounds the archive.

Unpacking is the dangerous half: archives come from workflow steps, which run user code. Every
member is checked before it is written: no absolute names, no ``..``, no links outside their
entry, no member replacing or below a link, no devices or FIFOs, an optional size cap; owners are
never applied and modes are sanitised as Python's ``data`` extraction filter does, which is applied
on top as a second line of defence where the Python has it. Extraction happens in a
private directory beside the destination and is moved into place only once complete, so a
rejected or truncated archive leaves nothing behind. Archives are read as a stream, so a
non-seekable reader (an OSS object being downloaded) works without staging on disk.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from airflow_argo_eci.errors import ArgoEciError

__all__ = ["ArchiveError", "PackPolicy", "link_escapes", "pack_tgz", "unpack_tgz", "unpack_tgz_into"]

#: links followed while resolving one link target (Linux's ``MAXSYMLINKS``)
MAX_LINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
#: Python's ``data`` extraction filter where this Python has it (3.10.12+, 3.11.4+, 3.12): a second
#: line of defence behind this module's own checks
_DATA_FILTER: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
_FILTER_ERRORS: tuple[type[Exception], ...] = (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()


class ArchiveError(ArgoEciError, ValueError):
    """An archive is malformed or unsafe, or cannot be placed; the message names the member and why."""


@dataclass(frozen=True)
class PackPolicy:
    """What :func:`pack_tgz` does with what it finds.

    The default (data a step wrote) refuses links that leave the entry, devices, FIFOs and
    sockets. ``host_copy=True`` (a path of the host's read-only copy, which the pod saw but did not
    write) instead *skips* them, and also skips whatever is not readable by every user and every
    path in ``exclude`` (with its subtree); what was skipped is returned by :func:`pack_tgz`.
    ``max_bytes`` bounds the total size of the files packed (``None``: no bound).
    """

    host_copy: bool = False
    exclude: frozenset[str] = field(default_factory=frozenset)
    max_bytes: int | None = None


@dataclass
class _Member:
    name: str
    st: os.stat_result
    linkname: str = ""
    hardlink: str = ""


def link_escapes(name: str, target: str, links: dict[str, str]) -> str | None:
    """Why the symbolic link ``name -> target`` leaves the subtree of its top-level entry, or None.

    ``links`` maps the archive's other link names to their targets; they are followed (at most
    :data:`MAX_LINKS`). ``..`` may never climb above the top-level entry, even on the way."""
    parts = name.split("/")
    if len(parts) == 1:
        return "a top-level entry cannot be a link"
    stack = parts[:-1]
    pending = _split(target)
    if target.startswith("/"):
        return "the target is absolute"
    followed = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if len(stack) <= 1:
                return f"'..' climbs above the top-level entry {parts[0]!r}"
            stack.pop()
            continue
        stack.append(part)
        inner = links.get("/".join(stack))
        if inner is not None:
            followed += 1
            if followed > MAX_LINKS:
                return "too many levels of symbolic links"
            if inner.startswith("/"):
                return f"it leads through {'/'.join(stack)!r}, a link to the absolute path {inner!r}"
            stack.pop()
            pending[:0] = _split(inner)
    return None


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


# ---------------------------------------------------------------------- packing


def pack_tgz(source: Path, dest: BinaryIO, *, compression_level: int = 6,
             policy: PackPolicy | None = None, name: str | None = None) -> list[str]:
    """Write ``source`` (a file or a directory tree) to ``dest`` as a gzipped tar in Argo's layout.

    The archive has one top-level entry, ``name`` (default ``source.name``: Argo names it after the
    artifact path, which may differ from the resolved ``source``); directory members follow depth first in
    sorted order. Links are stored as links (never followed), hard links as hard-link members;
    owners are zeroed; modes and mtimes are kept. ``source`` itself must not be a link. Returns
    what was skipped under ``policy.host_copy`` (one line each); otherwise anything that cannot be
    packed raises :class:`ArchiveError`.
    """
    source = Path(source)
    policy = policy or PackPolicy()
    if not 0 <= compression_level <= 9:
        raise ArchiveError(f"compression_level must be between 0 and 9, got {compression_level}")
    try:
        top = os.lstat(source)
    except OSError as exc:
        raise ArchiveError(f"cannot archive {source}: {exc.strerror.lower() if exc.strerror else exc}") from exc
    if stat.S_ISLNK(top.st_mode):
        raise ArchiveError(f"cannot archive {source.name!r}: it is a symbolic link; archive the path it points to")
    if not (stat.S_ISREG(top.st_mode) or stat.S_ISDIR(top.st_mode)):
        raise ArchiveError(f"cannot archive {source.name!r}: it is a {_kind(top.st_mode)}; only files, directories "
                           "and links can be artifacts")
    if policy.host_copy and _host_copy_skip(str(source), top, policy):
        raise ArchiveError(f"cannot archive {source}: {_host_copy_skip(str(source), top, policy)}")
    top_name = name or source.name
    if not top_name or "/" in top_name or top_name in (".", ".."):
        raise ArchiveError(f"the top-level entry must be a plain name, got {top_name!r}")
    skipped: list[str] = []
    members: list[_Member] = [_Member(top_name, top)]
    if stat.S_ISDIR(top.st_mode):
        fd = os.open(source, _DIR_FLAGS)
        try:
            _collect(fd, top_name, str(source), policy, members, skipped)
        finally:
            os.close(fd)
    _check_pack_links(members, policy, skipped)
    total = 0
    seen: dict[tuple[int, int], str] = {}
    for member in members:
        if stat.S_ISREG(member.st.st_mode):
            key = (member.st.st_dev, member.st.st_ino)
            if member.st.st_nlink > 1 and key in seen:
                member.hardlink = seen[key]
                continue
            seen[key] = member.name
            total += member.st.st_size
            if policy.max_bytes is not None and total > policy.max_bytes:
                raise ArchiveError(f"cannot archive {source.name!r}: it holds more than {policy.max_bytes} bytes of "
                                   f"files (the size budget; reached at {member.name!r})")
    with tarfile.open(fileobj=dest, mode="w:gz", compresslevel=compression_level, format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            _write_member(tar, source, member)
    return skipped


def _collect(dir_fd: int, arc: str, host: str, policy: PackPolicy, out: list[_Member], skipped: list[str]) -> None:
    """Append the members below the open directory ``dir_fd`` (archive name ``arc``), depth first."""
    for name in sorted(os.listdir(dir_fd)):
        child_arc, child_host = f"{arc}/{name}", f"{host}/{name}"
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue  # removed while packing
        mode = st.st_mode
        if policy.host_copy:
            why = _host_copy_skip(child_host, st, policy)
            if why:
                skipped.append(f"{child_host}: {why}")
                continue
        if stat.S_ISLNK(mode):
            out.append(_Member(child_arc, st, linkname=os.readlink(name, dir_fd=dir_fd)))
        elif stat.S_ISREG(mode):
            out.append(_Member(child_arc, st))
        elif stat.S_ISDIR(mode):
            out.append(_Member(child_arc, st))
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                raise ArchiveError(f"cannot archive {child_arc!r}: {exc.strerror or exc}") from exc
            try:
                _collect(fd, child_arc, child_host, policy, out, skipped)
            finally:
                os.close(fd)
        else:
            raise ArchiveError(f"cannot archive {child_arc!r}: it is a {_kind(mode)}; only files, directories and "
                               "links can be artifacts")


def _host_copy_skip(host: str, st: os.stat_result, policy: PackPolicy) -> str:
    if host in policy.exclude:
        return "never exported"
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return ""
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return f"a {_kind(mode)}"
    need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
    if mode & need != need:
        return f"not readable by every user (mode {stat.filemode(mode)})"
    return ""


def _check_pack_links(members: list[_Member], policy: PackPolicy, skipped: list[str]) -> None:
    links = {m.name: m.linkname for m in members if stat.S_ISLNK(m.st.st_mode)}
    for member in list(members):
        if not stat.S_ISLNK(member.st.st_mode):
            continue
        why = link_escapes(member.name, member.linkname, links)
        if why is None:
            continue
        if policy.host_copy:
            skipped.append(f"{member.name}: a symbolic link to {member.linkname!r}, outside the artifact")
            members.remove(member)
            continue
        raise ArchiveError(f"cannot archive {member.name!r}: it is a symbolic link to {member.linkname!r}, "
                           f"outside the artifact ({why}); artifacts may only hold links within themselves")


def _write_member(tar: tarfile.TarFile, source: Path, member: _Member) -> None:
    st = member.st
    info = tarfile.TarInfo(member.name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.mtime = int(st.st_mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if member.hardlink:
        info.type, info.linkname = tarfile.LNKTYPE, member.hardlink
        tar.addfile(info)
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, member.linkname
        tar.addfile(info)
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    else:
        rel = member.name.split("/", 1)[1] if "/" in member.name else ""
        fd = _open_below(source, rel)
        with os.fdopen(fd, "rb") as fh:
            opened = os.fstat(fh.fileno())
            if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
                raise ArchiveError(f"cannot archive {member.name!r}: it changed while being packed")
            info.size = st.st_size
            try:
                tar.addfile(info, fh)
            except OSError as exc:
                raise ArchiveError(f"cannot archive {member.name!r}: {exc}") from exc


def _open_below(source: Path, rel: str) -> int:
    """Open ``source/rel`` component by component without following any link (``rel`` "" = source)."""
    parts = [p for p in rel.split("/") if p]
    if not parts:
        return os.open(source, _FILE_FLAGS)
    fd = os.open(source, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
        return os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
    except OSError as exc:
        raise ArchiveError(f"cannot archive {source.name}/{rel}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


# ---------------------------------------------------------------------- unpacking


def unpack_tgz(
    archive: Path | BinaryIO,
    destination: Path,
    *,
    single_entry: bool = True,
    max_bytes: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Unpack an Argo artifact archive so that its single top-level entry becomes ``destination``.

    ``single_entry=False`` accepts several top-level entries and makes ``destination`` a directory
    holding them all. An existing ``destination`` raises unless ``overwrite=True``, in which case
    it is replaced only after the new content is complete. Returns ``destination``.
    """
    destination = Path(destination)
    if (destination.exists() or destination.is_symlink()) and not overwrite:
        raise ArchiveError(f"{destination} already exists; remove it or pass overwrite=True")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.unpack-", dir=destination.parent))
    try:
        tops = _extract(archive, staging, max_bytes=max_bytes)
        if single_entry:
            if len(tops) != 1:
                found = ", ".join(sorted(tops)) or "nothing"
                raise ArchiveError(
                    f"expected the archive for {destination} to hold exactly one top-level file or directory "
                    f"(Argo's layout), found {found}; pass single_entry=False to unpack it as a directory"
                )
            produced = staging / next(iter(tops))
        else:
            produced = staging
        _move_into_place(produced, destination)
        return destination
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def unpack_tgz_into(archive: Path | BinaryIO, directory: Path, *, max_bytes: int | None = None,
                    overwrite: bool = False) -> list[Path]:
    """Unpack every member of ``archive`` inside ``directory`` (created if missing).

    Same checks as :func:`unpack_tgz`, no single-entry rule. A top-level entry that already exists
    in ``directory`` raises unless ``overwrite=True``. Returns the top-level paths created, sorted.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=directory))
    try:
        tops = _extract(archive, staging, max_bytes=max_bytes)
        clashes = sorted(name for name in tops if (directory / name).exists() or (directory / name).is_symlink())
        if clashes and not overwrite:
            raise ArchiveError(f"{', '.join(str(directory / c) for c in clashes)} already exist(s); "
                               "remove them or pass overwrite=True")
        created = []
        for name in sorted(tops):
            _move_into_place(staging / name, directory / name)
            created.append(directory / name)
        return created
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(produced: Path, destination: Path) -> None:
    """Rename ``produced`` to ``destination``, replacing an existing one only after the rename is possible."""
    backup: Path | None = None
    if destination.exists() or destination.is_symlink():
        backup = destination.with_name(f".{destination.name}.replaced-{os.getpid()}")
        os.replace(destination, backup)
    try:
        os.replace(produced, destination)
    except OSError:
        if backup is not None:
            os.replace(backup, destination)
        raise
    if backup is not None:
        if backup.is_dir() and not backup.is_symlink():
            shutil.rmtree(backup, ignore_errors=True)
        else:
            backup.unlink(missing_ok=True)


class _Checker:
    """Checks members one by one against what the archive made so far (its links, files, dirs)."""

    def __init__(self, max_bytes: int | None) -> None:
        self.max_bytes = max_bytes
        self.total = 0
        self.links: dict[str, str] = {}
        self.files: set[str] = set()
        self.dirs: set[str] = set()
        self.tops: set[str] = set()

    def check(self, member: tarfile.TarInfo) -> str | None:
        """The member's clean name (None for the archive's ``.`` entry), or :class:`ArchiveError`."""
        name = _checked_name(member)
        if name is None:
            return None
        raw = member.name
        if member.isdev() or member.isfifo() or not (member.isfile() or member.isdir() or member.issym()
                                                      or member.islnk()):
            raise ArchiveError(f"archive member {raw!r} is a device, FIFO or special file; refusing it")
        parts = name.split("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if prefix in self.links:
                where = "replaces" if depth == len(parts) else "lies below"
                raise ArchiveError(f"archive member {raw!r} {where} the symbolic link {prefix!r}; refusing it")
        if member.issym():
            why = link_escapes(name, member.linkname, self.links)
            if why is not None:
                raise ArchiveError(f"archive member {raw!r} is a symbolic link to {member.linkname!r}, outside "
                                   f"the artifact ({why})")
            if name in self.files or name in self.dirs:
                raise ArchiveError(f"archive member {raw!r} replaces an earlier member with a link; refusing it")
            self.links[name] = member.linkname
        elif member.islnk():
            target = "/".join(_split(member.linkname))
            if member.linkname.startswith("/") or ".." in target.split("/"):
                raise ArchiveError(f"archive member {raw!r} is a hard link to {member.linkname!r}, outside the "
                                   "artifact")
            if target.split("/")[0] != parts[0] or target not in self.files:
                raise ArchiveError(f"archive member {raw!r} is a hard link to {member.linkname!r}, which is not an "
                                   f"earlier file of the top-level entry {parts[0]!r}")
            member.linkname = target
            self.files.add(name)
        elif member.isdir():
            self.dirs.add(name)
        else:
            self.total += member.size
            if self.max_bytes is not None and self.total > self.max_bytes:
                raise ArchiveError(f"archive member {raw!r}: the archive unpacks to more than {self.max_bytes} "
                                   "bytes (max_bytes)")
            self.files.add(name)
        self.tops.add(parts[0])
        return name


def _extract(archive: Path | BinaryIO, staging: Path, *, max_bytes: int | None) -> set[str]:
    """Check and extract members one by one (stream mode); return the top-level names."""
    checker = _Checker(max_bytes)
    try:
        if isinstance(archive, (str, os.PathLike)):
            tar = tarfile.open(str(archive), mode="r|*")
        else:
            tar = tarfile.open(fileobj=archive, mode="r|*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"not a tar or tgz archive: {exc}") from exc
    dirs: dict[str, tuple[int, float]] = {}
    try:
        with tar:
            for member in tar:
                name = checker.check(member)
                if name is None:  # the archive's "." entry
                    continue
                member.name = name
                try:  # owners are never applied; modes and times below, sanitised
                    tar.extract(member, path=str(staging), set_attrs=False, **_DATA_FILTER)
                except _FILTER_ERRORS as exc:
                    raise ArchiveError(f"archive member {member.name!r} is unsafe: {exc}") from exc
                if member.isdir():  # directories get theirs once everything is extracted
                    dirs[name] = (_dir_mode(member.mode), member.mtime)
                elif member.isfile():
                    os.chmod(staging / name, _file_mode(member.mode))
                    os.utime(staging / name, (member.mtime, member.mtime))
            for name in sorted(dirs, key=lambda n: n.count("/"), reverse=True):
                mode, mtime = dirs[name]
                os.chmod(staging / name, mode)
                os.utime(staging / name, (mtime, mtime))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"archive is truncated or corrupt: {exc}") from exc
    return checker.tops


def _file_mode(mode: int | None) -> int:
    """A file's mode from the archive as Python's ``data`` filter sets it: no set-id or sticky bits,
    not writable by group or others, always readable and writable by its owner."""
    return ((0o644 if mode is None else mode) & 0o755) | 0o600


def _dir_mode(mode: int | None) -> int:
    """A directory's mode from the archive, always usable by its owner, never writable by others
    or set-id (so what was unpacked can be read, replaced and removed)."""
    return ((0o755 if mode is None else mode) & 0o755) | 0o700


def _checked_name(member: tarfile.TarInfo) -> str | None:
    raw = member.name
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise ArchiveError(f"archive member {raw!r} has an absolute name; artifacts must use relative names")
    parts = [p for p in raw.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"archive member {raw!r} climbs out of the target with '..'")
    return "/".join(parts) or None
