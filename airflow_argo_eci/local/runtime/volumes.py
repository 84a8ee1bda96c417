"""A pod's volumes on the host: emptyDir, claim and file (ConfigMap / Secret) volumes and their mounts.

The controller resolves a pod spec's ``volumes`` into :class:`PodVolume` s (what each one holds)
and the main container's ``volumeMounts`` into :class:`VolumeMount` s; the runtime places each
volume in a host directory (:func:`materialize`) and the sandbox binds it at its mount paths
(read-only when the mount or the volume says so). Nothing here follows a link a pod left: a
volume's files are written fresh, and directories inside a shared claim are created component by
component without following links (:func:`make_dirs_inside`).
"""

from __future__ import annotations

import os
import posixpath
import shutil
from pathlib import Path

from airflow_argo_eci.local.paths import safe_component
from airflow_argo_eci.local.runtime import CLAIM, EMPTY_DIR, FILES, PodVolume, VolumeMount
from airflow_argo_eci.local.runtime.podsecurity import SandboxError
from airflow_argo_eci.local.runtime.sandbox import PodFilesystem, pod_path


def check_relative(value: object, what: str) -> str:
    """``value`` as a relative path without ``..`` components (an ``items[].path``), else
    :class:`SandboxError` naming ``what``."""
    if not isinstance(value, str) or not value:
        raise SandboxError(f"{what} must be a non-empty relative path, got {value!r}")
    parts = value.split("/")
    if value.startswith("/") or ".." in parts or any(not p or p == "." for p in parts):
        raise SandboxError(f"{what} {value!r} must be a relative path without '..', '.' or empty components")
    return value


def emptydir_host_dir(pod_dir: Path, name: str) -> Path:
    """Where an emptyDir (or a file volume) of the pod lives: next to the pod's ``root/``, never
    visible to the pod except at its mount paths."""
    return pod_dir / "volumes" / safe_component(name, "volume name")


def materialize(volume: PodVolume, pod_dir: Path) -> Path:
    """Create ``volume`` on the host and return its directory: a fresh directory for an emptyDir,
    the claim's directory (created when missing), or a fresh directory holding the files."""
    if volume.kind == CLAIM:
        if volume.host_dir is None:
            raise SandboxError(f'volume "{volume.name}": the claim has no directory')
        volume.host_dir.mkdir(parents=True, exist_ok=True)
        if volume.fill is not None:
            volume.fill(volume.host_dir)
        return volume.host_dir
    target = emptydir_host_dir(pod_dir, volume.name)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    if volume.kind == EMPTY_DIR:
        target.chmod(0o777)
        return target
    if volume.kind != FILES:
        raise SandboxError(f'volume "{volume.name}": unknown kind {volume.kind!r}')
    for rel, (content, mode) in sorted(volume.files.items()):
        check_relative(rel, f'volume "{volume.name}" path')
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, content)
            os.fchmod(fd, mode & 0o777)
        finally:
            os.close(fd)
    for current, dirs, _files in os.walk(target):
        for name in dirs:
            Path(current, name).chmod(0o755)
    target.chmod(0o755)
    return target


def make_dirs_inside(base: Path, rel: str, owner: tuple[int, int] | None = None) -> None:
    """Create the directory ``base/rel`` (``rel`` a normalised relative path) one component at a
    time without following links: a link or a file on the way (left by a pod in a shared claim)
    raises :class:`SandboxError` instead of leading outside ``base``. ``owner``: (uid, gid) given
    the directories this call creates."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SandboxError(f"path {rel!r} leaves its volume")
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(base, flags)
    try:
        for part in parts:
            created = True
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                created = False
            try:
                nxt = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                raise SandboxError(f"{posixpath.join(str(base), part)}: not a directory of the volume "
                                   f"(a link or a file is in the way): {exc.strerror}") from exc
            os.close(fd)
            fd = nxt
            if created and owner is not None:
                os.fchown(fd, *owner)
    finally:
        os.close(fd)


def chown_tree(top: Path, uid: int, gid: int) -> None:
    """Give a volume the runtime made (its files and directories) to the pod's host uid/gid,
    never following a link."""
    if not os.path.lexists(top) or os.path.islink(top):
        return
    os.lchown(top, uid, gid)
    for current, dirs, files in os.walk(top, followlinks=False):
        for name in (*dirs, *files):
            os.lchown(os.path.join(current, name), uid, gid)


def plan_mounts(fs: PodFilesystem, volumes: list[PodVolume], mounts: list[VolumeMount]) -> dict[str, PodVolume]:
    """Register the container's ``mounts`` with the pod's filesystem (no side effects): mount path
    -> the volume mounted there. A mount of an unknown volume, a bad path or a path mounted twice
    raises :class:`SandboxError` naming it."""
    by_name = {v.name: v for v in volumes}
    mounted: dict[str, PodVolume] = {}
    for index, mount in enumerate(mounts):
        field_name = f"volumeMounts[{index}]"
        volume = by_name.get(mount.name)
        if volume is None:
            raise SandboxError(f'{field_name}.name: Not found: "{mount.name}" (no volume of the pod has that name)')
        path = pod_path(mount.mount_path, f"{field_name}.mountPath")
        read_only = mount.read_only or volume.read_only or volume.kind == FILES
        mounted[fs.add_mount(path, read_only)] = volume
    return mounted


def attach_volumes(fs: PodFilesystem, mounted: dict[str, PodVolume], owner: tuple[int, int] | None) -> None:
    """Create each mounted volume on the host (:func:`materialize`, once per volume), tell ``fs``
    where it lives, and make the pod's writable directories that lie inside volumes (its
    workingDir in a claim). ``owner``: the pod's host (uid, gid) when the runtime runs as root; the
    volumes the runtime made (not a claim's content) are given to it."""
    made: dict[str, Path] = {}
    for mount, volume in mounted.items():
        host_dir = made.get(volume.name)
        if host_dir is None:
            host_dir = materialize(volume, fs.pod_dir)
            made[volume.name] = host_dir
            if owner is not None:
                if volume.kind == CLAIM:
                    os.lchown(host_dir, *owner)
                else:
                    chown_tree(host_dir, *owner)
        fs.attach(mount, host_dir)
    for host_dir, rel in fs.in_volumes():
        make_dirs_inside(host_dir, rel, owner)
