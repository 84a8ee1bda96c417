"""Argo's artifact archives (``.tgz``): pack the way Argo's executor does, unpack without escaping.

Argo stores an output artifact packed as a gzipped tar holding exactly one top-level entry named
after the artifact's path (a file, or a directory with its tree). When the artifact is consumed,
that entry *becomes* the input path. Both halves live here so the local executor and
:class:`~airflow_argo_eci.hooks.oss.OSSArtifactHook` agree byte for byte.

Unpacking is the dangerous half: archives come from workflow steps, which run user code. Every
member is checked before it is written: no absolute names, no ``..``, no links that resolve outside
the target, no devices or FIFOs, an optional size cap; Python's ``data`` extraction filter is
applied on top as a second line of defence. Extraction happens in a private directory beside the
destination and is moved into place only once complete, so a rejected or truncated archive leaves
nothing behind. Archives are read as a stream, so a non-seekable reader (an OSS object being
downloaded) works without staging on disk.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from airflow_argo_eci.errors import ArgoEciError

__all__ = ["ArchiveError", "pack_tgz", "unpack_tgz", "unpack_tgz_into"]


class ArchiveError(ArgoEciError, ValueError):
    """An archive is malformed or unsafe, or cannot be placed; the message names the member and why."""


def pack_tgz(source: Path, dest: BinaryIO, *, compression_level: int = 6) -> None:
    """Write ``source`` (a file or a directory tree) to ``dest`` as a gzipped tar in Argo's layout.

    The archive has one top-level entry, ``source.name``; directory members follow in sorted
    order. Symbolic links are stored as links; owners are zeroed; modes and mtimes are kept.
    Devices, FIFOs and sockets cannot be artifacts and raise :class:`ArchiveError`.
    """
    source = Path(source)
    if not source.exists() and not source.is_symlink():
        raise ArchiveError(f"cannot archive {source}: no such file or directory")
    if not 0 <= compression_level <= 9:
        raise ArchiveError(f"compression_level must be between 0 and 9, got {compression_level}")

    def scrub(info: tarfile.TarInfo) -> tarfile.TarInfo:
        if not (info.isfile() or info.isdir() or info.issym() or info.islnk()):
            raise ArchiveError(f"cannot archive {info.name!r}: only files, directories and links can be artifacts")
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    for path in _walk(source):
        mode = path.lstat().st_mode
        if stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            raise ArchiveError(f"cannot archive {path}: only files, directories and links can be artifacts")
    with tarfile.open(fileobj=dest, mode="w:gz", compresslevel=compression_level, format=tarfile.PAX_FORMAT) as tar:
        tar.add(str(source), arcname=source.name, recursive=True, filter=scrub)


def _walk(path: Path) -> Iterator[Path]:
    yield path
    if path.is_dir() and not path.is_symlink():
        for child in sorted(path.iterdir()):
            yield from _walk(child)


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


def _extract(archive: Path | BinaryIO, staging: Path, *, max_bytes: int | None) -> set[str]:
    """Check and extract members one by one (stream mode); return the top-level names."""
    tops: set[str] = set()
    total = 0
    try:
        if isinstance(archive, (str, os.PathLike)):
            tar = tarfile.open(str(archive), mode="r|*")
        else:
            tar = tarfile.open(fileobj=archive, mode="r|*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"not a tar or tgz archive: {exc}") from exc
    try:
        with tar:
            for member in tar:
                name = _checked_name(member)
                if name is None:  # the archive's "." entry
                    continue
                _check_member(member, name)
                total += member.size if member.isfile() else 0
                if max_bytes is not None and total > max_bytes:
                    raise ArchiveError(f"archive member {member.name!r}: the archive unpacks to more than "
                                       f"{max_bytes} bytes (max_bytes)")
                tops.add(name.split("/", 1)[0])
                member.name = name
                try:
                    tar.extract(member, path=str(staging), set_attrs=True, filter="data")
                except tarfile.FilterError as exc:
                    raise ArchiveError(f"archive member {member.name!r} is unsafe: {exc}") from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"archive is truncated or corrupt: {exc}") from exc
    return tops


def _checked_name(member: tarfile.TarInfo) -> str | None:
    raw = member.name
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise ArchiveError(f"archive member {raw!r} has an absolute name; artifacts must use relative names")
    parts = [p for p in raw.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"archive member {raw!r} climbs out of the target with '..'")
    return "/".join(parts) or None


def _check_member(member: tarfile.TarInfo, name: str) -> None:
    if member.isdev() or member.isfifo() or not (member.isfile() or member.isdir() or member.issym()
                                                  or member.islnk()):
        raise ArchiveError(f"archive member {member.name!r} is a device, FIFO or special file; refusing it")
    if member.issym():
        target = member.linkname
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            raise ArchiveError(f"archive member {member.name!r} is a symbolic link to {target!r}, "
                               "outside the artifact")
    if member.islnk():
        resolved = posixpath.normpath(member.linkname)
        if member.linkname.startswith("/") or resolved == ".." or resolved.startswith("../"):
            raise ArchiveError(f"archive member {member.name!r} is a hard link to {member.linkname!r}, "
                               "outside the artifact")
