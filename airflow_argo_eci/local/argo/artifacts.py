"""Artifacts of the local cluster, kept on OSS the way Argo's executor keeps them.

* **Repository** (Argo's ``artifactrepositories.Resolve``): the workflow's
  ``spec.artifactRepositoryRef`` (ConfigMap + key; the key defaults to the ConfigMap's
  ``workflows.argoproj.io/default-artifact-repository`` annotation), else the namespace's
  ``artifact-repositories`` ConfigMap's default, else the controller's default: the
  ``artifactRepository`` key of the controller's ConfigMap (``argo/workflow-controller-configmap``)
  when present, else the built-in one (the local OSS store). Only ``oss`` repositories are
  supported. The result is recorded in ``status.artifactRepositoryRef`` like Argo does. Access keys
  are read from the Secrets named by ``accessKeySecret`` / ``secretKeySecret`` whenever objects are
  written, read or deleted.
* **Output artifacts** (Argo's ``wait`` container): ``tar`` (the default; ``<key>/<name>.tgz``
  holding one top-level entry named after the path) or ``none`` (``<key>/<basename>``; a directory
  becomes one object per file plus ``dir/`` markers, as Argo's OSS driver writes them). A key on
  the artifact itself (``oss.key``, or a key-only ``s3``/``gcs``/``azure``/``plugin`` location) is
  used as is in the repository's bucket.
* **Input artifacts** (Argo's ``init`` container): ``raw`` data, or an OSS object (a "directory"
  prefix when no object has the key) downloaded next to the target, unpacked when it is a tgz
  (``archive`` none: never; tar: always; unset: detected), and moved into place.
* **Garbage collection**: objects of a workflow's output artifacts are deleted according to
  ``artifactGC.strategy`` (workflow level, overridden per artifact).
"""

from __future__ import annotations

import contextlib
import gzip
import ipaddress
import logging
import os
import posixpath
import shutil
import stat
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import yaml

from airflow_argo_eci.archives import ArchiveError, PackPolicy, pack_tgz, unpack_tgz
from airflow_argo_eci.conventions import ANNOTATION_DEFAULT_ARTIFACT_REPOSITORY
from airflow_argo_eci.eci_conventions import ARGO_NAMESPACE, CONTROLLER_CONFIGMAP
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import CONFIGMAPS, SECRETS
from airflow_argo_eci.local.runtime.podfiles import home_directories, kind_of, world_readable

if TYPE_CHECKING:
    import oss2

    from airflow_argo_eci.local.api.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

ARTIFACT_REPOSITORIES = "artifact-repositories"
#: the key of the controller's ConfigMap holding its default artifact repository (Argo's config.Config)
CONTROLLER_ARTIFACT_REPOSITORY_KEY = "artifactRepository"
#: Argo's ``DefaultArchivePattern``
DEFAULT_KEY_FORMAT = "{{workflow.name}}/{{pod.name}}"
#: location fields of an artifact (Argo's ``ArtifactLocation``)
LOCATION_FIELDS = ("oss", "s3", "gcs", "azure", "hdfs", "http", "git", "artifactory", "raw", "plugin")
#: location types whose ``key`` (``blob`` for azure) makes a "key-only" artifact
_KEY_FIELDS = {"oss": "key", "s3": "key", "gcs": "key", "azure": "blob", "plugin": "key"}
GC_STRATEGIES = ("OnWorkflowCompletion", "OnWorkflowDeletion", "Never", "")
#: objects up to this size are uploaded in one request; larger ones in parts
MULTIPART_THRESHOLD = 64 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024
#: bytes of files one output artifact may hold (the packing budget)
MAX_ARTIFACT_BYTES = 8 * 1024 ** 3
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


class ArtifactError(ValueError):
    """An artifact cannot be located, saved or loaded; the message is what the node reports."""


class ArtifactNotFound(ArtifactError):
    """The artifact's object (or "directory") does not exist."""


@dataclass(frozen=True)
class Location:
    """Where one artifact lives, with the keys to reach it."""

    endpoint: str
    bucket: str
    key: str
    access_key_id: str
    access_key_secret: str

    def describe(self) -> str:
        return f"oss://{self.bucket}/{self.key} at {self.endpoint}"


def has_location_or_key(art: dict[str, Any]) -> bool:
    """Argo's ``HasLocationOrKey``: the artifact names a place (or at least a key) to read from."""
    if art.get("raw") is not None:
        return True
    for fld in LOCATION_FIELDS:
        loc = art.get(fld)
        if isinstance(loc, dict) and any(v not in (None, "") for v in loc.values()):
            return True
    return False


def strip_location(art: dict[str, Any]) -> dict[str, Any]:
    """The artifact without any location field."""
    return {k: v for k, v in art.items() if k not in LOCATION_FIELDS}


def artifact_key(art: dict[str, Any]) -> str | None:
    """The key an artifact brings along (explicit ``oss.key`` or a key-only location), if any."""
    for fld, key_field in _KEY_FIELDS.items():
        loc = art.get(fld)
        if isinstance(loc, dict) and loc.get(key_field) not in (None, ""):
            return str(loc[key_field])
    return None


def check_supported(art: dict[str, Any], where: str) -> None:
    """Reject locations the local cluster cannot reach (full S3/GCS/... locations, git, http...)."""
    for fld in LOCATION_FIELDS:
        loc = art.get(fld)
        if not isinstance(loc, dict) or fld in ("oss", "raw", "plugin"):
            continue
        if fld in _KEY_FIELDS and set(k for k, v in loc.items() if v not in (None, "")) <= {_KEY_FIELDS[fld]}:
            continue  # key-only: relocated into the artifact repository
        raise ArtifactError(f"{where}: {fld} artifacts need an external store; the local cluster keeps "
                            "artifacts on OSS only (use oss, a key-only location, raw or from)")


def gc_strategy(art: dict[str, Any], workflow_strategy: str) -> str:
    """The artifact's own ``artifactGC.strategy``, else the workflow's (default ``Never``)."""
    own = (art.get("artifactGC") or {}).get("strategy") if isinstance(art.get("artifactGC"), dict) else None
    return str(own or workflow_strategy or "Never")


# ---------------------------------------------------------------------- repository


def _config_map(store: Store, namespace: str, name: str) -> dict[str, Any] | None:
    return store.find(CONFIGMAPS, namespace, name)


def resolve_repository(store: Store, namespace: str, ref: dict[str, Any] | None,
                       default: dict[str, Any] | None) -> dict[str, Any]:
    """Argo's repository resolution; returns the ``status.artifactRepositoryRef`` object.

    ``ref`` is ``spec.artifactRepositoryRef`` (or None); ``default`` the controller's built-in
    default repository (``{"oss": {...}}``) or None, used when the controller's ConfigMap has no
    ``artifactRepository`` (:func:`controller_repository`).
    """
    if ref:
        cm_name = str(ref.get("configMap") or ARTIFACT_REPOSITORIES)
        cm = _config_map(store, namespace, cm_name)
        if cm is None:
            raise ArtifactError(f"failed to resolve artifact repository: configmap {namespace}/{cm_name} "
                                "not found (spec.artifactRepositoryRef.configMap)")
        key = str(ref.get("key") or ((cm.get("metadata") or {}).get("annotations") or {}).get(
            ANNOTATION_DEFAULT_ARTIFACT_REPOSITORY) or "")
        if not key:
            raise ArtifactError(f"failed to resolve artifact repository: spec.artifactRepositoryRef.key is "
                                f"empty and configmap {namespace}/{cm_name} has no "
                                f"{ANNOTATION_DEFAULT_ARTIFACT_REPOSITORY} annotation")
        return {"configMap": cm_name, "key": key, "namespace": namespace,
                "artifactRepository": _repository_from(cm, cm_name, key)}
    cm = _config_map(store, namespace, ARTIFACT_REPOSITORIES)
    if cm is not None:
        default_key = str(((cm.get("metadata") or {}).get("annotations") or {}).get(
            ANNOTATION_DEFAULT_ARTIFACT_REPOSITORY) or "")
        if default_key:
            return {"configMap": ARTIFACT_REPOSITORIES, "key": default_key, "namespace": namespace,
                    "artifactRepository": _repository_from(cm, ARTIFACT_REPOSITORIES, default_key)}
    repo = controller_repository(store, default)
    if repo is None:
        raise ArtifactError("no artifact repository: create the artifact-repositories ConfigMap in namespace "
                            f"{namespace} or set spec.artifactRepositoryRef")
    return {"default": True, "artifactRepository": repo}


def controller_repository(store: Store, builtin: dict[str, Any] | None) -> dict[str, Any] | None:
    """The controller's default repository: the ``artifactRepository`` key of its ConfigMap when
    the ConfigMap and key exist (ArtifactError naming the key when the value is malformed), else
    ``builtin``."""
    cm = _config_map(store, ARGO_NAMESPACE, CONTROLLER_CONFIGMAP)
    if cm is None or CONTROLLER_ARTIFACT_REPOSITORY_KEY not in (cm.get("data") or {}):
        return builtin
    try:
        return _repository_from(cm, CONTROLLER_CONFIGMAP, CONTROLLER_ARTIFACT_REPOSITORY_KEY)
    except ArtifactError as exc:
        raise ArtifactError(f"the controller's default artifact repository ({ARGO_NAMESPACE}/"
                            f"{CONTROLLER_CONFIGMAP} key {CONTROLLER_ARTIFACT_REPOSITORY_KEY}) is malformed: "
                            f"{exc}") from exc


def _repository_from(cm: dict[str, Any], cm_name: str, key: str) -> dict[str, Any]:
    data = cm.get("data") or {}
    if key not in data:
        namespace = (cm.get("metadata") or {}).get("namespace", "")
        raise ArtifactError(
            f'failed to resolve artifact repository: config map missing key {key} for artifact repository ref '
            f'"{namespace}/{cm_name}#{key}" (spec.artifactRepositoryRef.key); add the repository under key {key} '
            f"to configmap {namespace}/{cm_name} (keys there: {', '.join(sorted(data)) or 'none'})")
    try:
        repo = yaml.safe_load(str(data[key]))
    except yaml.YAMLError as exc:
        raise ArtifactError(f"configmap {cm_name} key {key}: invalid artifact repository YAML: {exc}") from exc
    if not isinstance(repo, dict):
        raise ArtifactError(f"configmap {cm_name} key {key}: the artifact repository must be a YAML object")
    oss = repo.get("oss")
    if not isinstance(oss, dict):
        kinds = ", ".join(sorted(str(k) for k in repo if k != "archiveLogs")) or "nothing"
        raise ArtifactError(f"configmap {cm_name} key {key}: the local cluster supports oss artifact "
                            f"repositories only (found {kinds})")
    for fld in ("endpoint", "bucket"):
        if not oss.get(fld):
            raise ArtifactError(f"configmap {cm_name} key {key}: oss.{fld} is required")
    return repo


# ---------------------------------------------------------------------- credentials and clients


def _secret_value(store: Store, namespace: str, ref: Any, field_name: str) -> str:
    import base64

    if not isinstance(ref, dict) or not ref.get("name") or not ref.get("key"):
        raise ArtifactError(f"{field_name} must name a secret and a key")
    try:
        secret = store.get(SECRETS, namespace, str(ref["name"]))
    except ApiError as exc:
        raise ArtifactError(f"{field_name}: secret {namespace}/{ref['name']} not found") from exc
    data = secret.get("data") or {}
    if ref["key"] in data:
        return base64.b64decode(data[ref["key"]]).decode()
    if ref["key"] in (secret.get("stringData") or {}):
        return str(secret["stringData"][ref["key"]])
    raise ArtifactError(f"{field_name}: key {ref['key']} not found in secret {namespace}/{ref['name']}")


def location_of(store: Store, namespace: str, oss: dict[str, Any], key: str,
                default_credentials: tuple[str, str] | None) -> Location:
    """A :class:`Location` for ``key`` in the OSS place ``oss`` (endpoint, bucket, secret refs)."""
    if oss.get("accessKeySecret") or oss.get("secretKeySecret"):
        key_id = _secret_value(store, namespace, oss.get("accessKeySecret"), "oss.accessKeySecret")
        secret = _secret_value(store, namespace, oss.get("secretKeySecret"), "oss.secretKeySecret")
    elif default_credentials is not None:
        key_id, secret = default_credentials
    else:
        raise ArtifactError("oss.accessKeySecret and oss.secretKeySecret are required")
    return Location(str(oss.get("endpoint", "")), str(oss.get("bucket", "")), key, key_id, secret)


def status_location(oss: dict[str, Any], key: str) -> dict[str, Any]:
    """The ``oss`` field recorded in node status: endpoint, bucket, key and the secret refs."""
    out: dict[str, Any] = {"endpoint": oss.get("endpoint", ""), "bucket": oss.get("bucket", ""), "key": key}
    for fld in ("accessKeySecret", "secretKeySecret"):
        if oss.get(fld):
            out[fld] = dict(oss[fld])
    return out


def _is_loopback(endpoint: str) -> bool:
    host = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OSSClients:
    """oss2 buckets per location; loopback endpoints trust the local cluster's certificate."""

    def __init__(self, ca_file: Path | None = None) -> None:
        self.ca_file = ca_file
        self._sessions: dict[str, oss2.Session] = {}
        self._lock = threading.Lock()

    def bucket(self, loc: Location) -> oss2.Bucket:
        import oss2

        with self._lock:
            session = self._sessions.get(loc.endpoint)
            if session is None:
                session = oss2.Session()
                if self.ca_file is not None and _is_loopback(loc.endpoint):
                    # requests lets REQUESTS_CA_BUNDLE override verify unless trust_env is off
                    session.session.verify = str(self.ca_file)
                    session.session.trust_env = False
                self._sessions[loc.endpoint] = session
        return oss2.Bucket(oss2.Auth(loc.access_key_id, loc.access_key_secret), loc.endpoint, loc.bucket,
                           session=session, connect_timeout=REQUEST_TIMEOUT)

    def close(self) -> None:
        with self._lock:
            for session in self._sessions.values():
                session.session.close()
            self._sessions.clear()


#: attempts of one OSS request failing transiently (Argo's drivers retry with a backoff too)
ATTEMPTS = 3
#: seconds a request may wait for the store before it counts as failed (and is retried)
REQUEST_TIMEOUT = 20


def _transient(exc: Exception) -> bool:
    import oss2

    return isinstance(exc, oss2.exceptions.RequestError) or (
        isinstance(exc, oss2.exceptions.OssError) and (exc.status >= 500 or exc.status == 429))


def _retrying(call: Callable[[], T]) -> T:
    """Run one OSS request, retrying transient failures (connection errors, timeouts, 5xx) with a
    short backoff, like Argo's ``isTransientOSSErr``."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return call()
        except Exception as exc:
            if attempt == ATTEMPTS or not _transient(exc):
                raise
            log.warning("OSS request failed (attempt %d of %d), retrying: %s", attempt, ATTEMPTS, exc)
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


def _oss_message(exc: Exception) -> str:
    import oss2

    if isinstance(exc, oss2.exceptions.OssError):
        return f"{exc.code or exc.status}: {exc.message or exc.details}"
    return str(exc)


# ---------------------------------------------------------------------- saving


def missing_output_message(path: str) -> str:
    """Argo's message when an output artifact's path does not exist after the main container ran."""
    return f"open /var/run/argo/outputs/artifacts{path.rstrip('/')}.tgz: no such file or directory"


def save_artifact(clients: OSSClients, art: dict[str, Any], host_path: Path, oss: dict[str, Any],
                  key: str | None, key_prefix: str, place: Location, scratch: Path) -> dict[str, Any]:
    """Pack (or not) and upload one output artifact; returns its node-status entry.

    ``place`` gives endpoint, bucket and keys (its ``key`` is ignored); ``oss`` is the repository's
    ``oss`` object recorded in status. ``key`` is the artifact's own key (explicit/key-only) or None
    to use ``key_prefix`` plus the file name Argo uses (``<name>.tgz``, or the path's base name with ``archive: none``).

    ``host_path`` comes from the runtime (``PodResult.artifact_paths``), already resolved inside the
    pod. ``scratch`` is a private directory of the pod's (``<pod_dir>/artifacts-staging``): a
    ``host_path`` inside the pod directory (``scratch.parent``) is what the pod wrote and is packed
    as it is (links stay links, a link leaving the artifact, a device, FIFO or socket fails the
    artifact); any other ``host_path`` is the host's read-only copy of an image path, of which only
    what every user may read is exported, links leaving it and special files skipped (logged).
    Either way nothing is followed: every file is opened with ``O_NOFOLLOW`` and checked to be a
    regular file, and at most :data:`MAX_ARTIFACT_BYTES` bytes of files are saved.
    """
    archive = art.get("archive") or {}
    if not isinstance(archive, dict):
        raise ArtifactError(f"outputs.artifacts.{art.get('name')}.archive must be an object")
    none = archive.get("none") is not None
    if archive.get("zip") is not None:
        raise ArtifactError(f"outputs.artifacts.{art.get('name')}: zip archives are not supported by the local "
                            "cluster; use tar (the default) or none")
    level = 6
    tar_opts = archive.get("tar")
    if isinstance(tar_opts, dict) and tar_opts.get("compressionLevel") is not None:
        try:
            level = int(tar_opts["compressionLevel"])
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"outputs.artifacts.{art.get('name')}.archive.tar.compressionLevel must be an "
                                "integer") from exc
    path = str(art.get("path", ""))
    file_name = posixpath.basename(posixpath.normpath(path)) if none else f"{art.get('name')}.tgz"
    final_key = key if key is not None else posixpath.join(key_prefix, file_name)
    loc = Location(place.endpoint, place.bucket, final_key, place.access_key_id, place.access_key_secret)
    policy = _policy_for(host_path, scratch)
    bucket = clients.bucket(loc)
    skipped: list[str] = []
    try:
        if none:
            if os.path.isdir(host_path) and not os.path.islink(host_path):
                skipped = _put_directory(bucket, final_key, host_path, policy)
            else:
                with _open_regular(host_path, policy, path) as fd:
                    _put_file(bucket, final_key, fd, scratch)
        else:
            scratch.mkdir(parents=True, exist_ok=True)
            packed = scratch / f"{uuid.uuid4().hex}.tgz"
            try:
                with open(packed, "wb") as out:
                    # one top-level entry named like the artifact path (host paths keep base names)
                    skipped = pack_tgz(host_path, out, compression_level=level, policy=policy,
                                       name=posixpath.basename(posixpath.normpath(path)) or None)
                with _open_regular(packed, PackPolicy(), str(packed)) as fd:
                    _put_file(bucket, final_key, fd, scratch)
            finally:
                packed.unlink(missing_ok=True)
    except ArchiveError as exc:
        raise ArtifactError(f"failed to archive artifact {art.get('name')}: {exc}") from exc
    except Exception as exc:
        import oss2

        if isinstance(exc, (oss2.exceptions.OssError, OSError)):
            raise ArtifactError(f"failed to save artifact {art.get('name')} to {loc.describe()}: "
                                f"{_oss_message(exc)}") from exc
        raise
    if skipped:
        log.warning("artifact %s (%s, the host's read-only copy) skipped %d entries no pod may read or that "
                    "lead outside it: %s", art.get("name"), host_path, len(skipped), "; ".join(skipped[:5]))
    entry = {k: v for k, v in strip_location(art).items() if k not in ("from", "fromExpression")}
    entry["oss"] = status_location(oss, final_key)
    return entry


def _policy_for(host_path: Path, scratch: Path) -> PackPolicy:
    """Pod data (inside the pod directory) or the host's read-only copy (see :func:`save_artifact`)."""
    pod_dir = os.path.realpath(scratch.parent)
    real = os.path.realpath(host_path.parent) + "/" + host_path.name
    if real.startswith(pod_dir + "/"):
        return PackPolicy(max_bytes=MAX_ARTIFACT_BYTES)
    return PackPolicy(host_copy=True, exclude=frozenset(home_directories()), max_bytes=MAX_ARTIFACT_BYTES)


@contextlib.contextmanager
def _open_regular(path: Path, policy: PackPolicy, shown: str) -> Iterator[int]:
    """An open descriptor of the regular file ``path`` (never through a final link, never a
    FIFO/device); errors name it ``shown`` (the pod path)."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise ArtifactError(f"open {shown}: {(exc.strerror or str(exc)).lower()}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise ArchiveError(f"{shown} is a {kind_of(st.st_mode)}, not a regular file or a directory")
    if policy.host_copy and not world_readable(st):
        raise ArchiveError(f"{shown} is not readable by every user")
    fd = os.open(path, _FILE_FLAGS)
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
            raise ArchiveError(f"{shown} changed while it was being saved")
        yield fd
    finally:
        os.close(fd)


def _put_file(bucket: oss2.Bucket, key: str, fd: int, scratch: Path) -> None:
    """Upload the open regular file ``fd`` (read through ``/proc/self/fd``: the file that was checked)."""
    import oss2

    source = f"/proc/self/fd/{fd}"
    size = os.fstat(fd).st_size
    if size <= MULTIPART_THRESHOLD:
        _retrying(lambda: bucket.put_object_from_file(key, source))
        return
    scratch.mkdir(parents=True, exist_ok=True)
    oss2.resumable_upload(bucket, key, source, store=oss2.ResumableStore(root=str(scratch)),
                          multipart_threshold=MULTIPART_THRESHOLD, part_size=PART_SIZE, num_threads=2)


def _put_directory(bucket: oss2.Bucket, key: str, directory: Path, policy: PackPolicy) -> list[str]:
    """Argo's OSS ``putDirectory``: a ``dir/`` marker per directory, one object per regular file
    (links and special files are not objects, as in Argo). Walks with descriptors, never following
    a link; returns what ``policy`` skipped."""
    skipped: list[str] = []
    total = [0]
    fd = os.open(directory, _DIR_FLAGS)
    try:
        _put_tree(bucket, key.rstrip("/"), fd, str(directory), policy, skipped, total)
    finally:
        os.close(fd)
    return skipped


def _put_tree(bucket: oss2.Bucket, prefix: str, dir_fd: int, host: str, policy: PackPolicy,
              skipped: list[str], total: list[int]) -> None:
    marker = prefix + "/"
    _retrying(lambda: bucket.put_object(marker, b""))
    names = sorted(os.listdir(dir_fd))
    subdirs: list[str] = []
    for name in names:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        child = f"{host}/{name}"
        if policy.host_copy and (child in policy.exclude or not world_readable(st)):
            skipped.append(f"{child}: not readable by every user")
            continue
        if stat.S_ISDIR(st.st_mode):
            subdirs.append(name)
            continue
        if not stat.S_ISREG(st.st_mode):
            continue  # like Argo: only regular files become objects
        total[0] += st.st_size
        if policy.max_bytes is not None and total[0] > policy.max_bytes:
            raise ArchiveError(f"the artifact holds more than {policy.max_bytes} bytes of files (the size budget)")
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            source = f"/proc/self/fd/{fd}"
            object_key = posixpath.join(prefix, name)
            _retrying(lambda: bucket.put_object_from_file(object_key, source))  # noqa: B023
        finally:
            os.close(fd)
    for name in subdirs:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        try:
            _put_tree(bucket, posixpath.join(prefix, name), fd, f"{host}/{name}", policy, skipped, total)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------- loading


def load_artifact(clients: OSSClients, art: dict[str, Any], dest: Path, loc: Location | None) -> None:
    """Place one input artifact at ``dest`` (a host path in the pod's files): raw data, or the object
    at ``loc``. ``dest`` and its existing ancestors must not be links (nothing is placed through one)."""
    name = art.get("name")
    _check_no_links(dest, str(art.get("path", dest)))
    dest.parent.mkdir(parents=True, exist_ok=True)
    if art.get("raw") is not None:
        data = (art.get("raw") or {}).get("data", "")
        dest.write_bytes(str(data).encode())
        _chmod(art, dest)
        return
    assert loc is not None
    temp = dest.with_name(dest.name + ".tmp")
    bucket = clients.bucket(loc)
    try:
        _get(bucket, loc.key, temp)
    except ArtifactNotFound:
        raise
    except Exception as exc:
        import oss2

        if isinstance(exc, (oss2.exceptions.OssError, OSError)):
            raise ArtifactError(f"artifact {name} failed to load: {loc.describe()}: {_oss_message(exc)}") from exc
        raise
    archive = art.get("archive") or {}
    if archive.get("none") is not None:
        unpack = False
    elif archive.get("tar") is not None:
        unpack = True
    elif archive.get("zip") is not None:
        shutil.rmtree(temp, ignore_errors=True)
        raise ArtifactError(f"artifact {name}: zip archives are not supported by the local cluster")
    else:
        unpack = temp.is_file() and _is_tarball(temp)
    try:
        if unpack:
            work = dest.with_name(dest.name + ".tmpdir")
            try:
                unpack_tgz(temp, work, single_entry=False)
                entries = list(work.iterdir())
                if len(entries) == 1:
                    os.replace(entries[0], dest)
                    work.rmdir()
                else:
                    os.replace(work, dest)
            except ArchiveError as exc:
                raise ArtifactError(f"artifact {name} failed to unpack: {exc}") from exc
            finally:
                shutil.rmtree(work, ignore_errors=True)
                temp.unlink(missing_ok=True)
        else:
            os.replace(temp, dest)
    finally:
        if temp.is_dir():
            shutil.rmtree(temp, ignore_errors=True)
        else:
            temp.unlink(missing_ok=True)
    _chmod(art, dest)


def _get(bucket: oss2.Bucket, key: str, target: Path) -> None:
    """Argo's OSS ``Load``: the object at ``key``, else every object under ``key/`` as a directory."""
    import oss2

    try:
        _retrying(lambda: bucket.get_object_to_file(key, str(target)))
        return
    except oss2.exceptions.NoSuchKey:
        target.unlink(missing_ok=True)
    prefix = key if key.endswith("/") or not key else key + "/"
    keys = [obj.key for obj in oss2.ObjectIteratorV2(bucket, prefix=prefix)]
    if not keys:
        raise ArtifactNotFound(f"artifact object {bucket.bucket_name}/{key} not found (no object and no objects "
                               f"under {prefix})")
    target.mkdir(parents=True, exist_ok=True)
    for obj_key in keys:
        inner = obj_key[len(prefix):]
        parts = [p for p in inner.split("/") if p]
        if any(p == ".." for p in parts):
            raise ArtifactError(f"object {obj_key} would be placed outside the artifact directory")
        local = target.joinpath(*parts) if parts else target
        if obj_key.endswith("/"):
            local.mkdir(parents=True, exist_ok=True)
            continue
        local.parent.mkdir(parents=True, exist_ok=True)
        _retrying(lambda: bucket.get_object_to_file(obj_key, str(local)))  # noqa: B023


def _is_tarball(path: Path) -> bool:
    """Argo's ``isTarball``: a gzip stream whose first tar header reads."""
    try:
        with gzip.open(path, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            return tar.next() is not None
    except (OSError, EOFError, tarfile.TarError):
        return False


def _chmod(art: dict[str, Any], dest: Path) -> None:
    mode = art.get("mode")
    if mode in (None, ""):
        return
    try:
        value = int(mode)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"inputs.artifacts.{art.get('name')}.mode must be an integer") from exc
    os.chmod(dest, value)
    if art.get("recurseMode") and dest.is_dir() and not dest.is_symlink():
        for root, dirs, files in os.walk(dest):
            for name in dirs + files:
                if not os.path.islink(os.path.join(root, name)):  # links are never followed
                    os.chmod(os.path.join(root, name), value)


def _check_no_links(dest: Path, pod_path: str) -> None:
    """Refuse to place an input where ``dest`` or an ancestor is a symbolic link: every ancestor up
    to the pod's ``tmp/`` or ``root/`` directory (``<state>/pods/<ns>/<pod>/...``), or, outside that
    layout, up to the first one that exists."""
    current = dest
    while current.parent != current:
        if current.is_symlink():
            raise ArtifactError(f"cannot place the input artifact at {pod_path}: {current} is a symbolic link")
        if current.parent.parent.parent.name == "pods" and current.name in ("tmp", "root"):
            return  # the pod's own top directory
        if current.exists() and "pods" not in current.parts:
            return
        current = current.parent


# ---------------------------------------------------------------------- deleting


def delete_artifact(clients: OSSClients, loc: Location) -> int:
    """Delete an artifact's object and, for a directory artifact, every object under ``key/``.
    Returns how many objects were removed; deleting what is gone already is no error."""
    import oss2

    bucket = clients.bucket(loc)
    keys = [loc.key]
    if loc.key:
        keys += [obj.key for obj in oss2.ObjectIteratorV2(bucket, prefix=loc.key.rstrip("/") + "/")]
    removed = 0
    for start in range(0, len(keys), 1000):
        chunk = keys[start:start + 1000]
        result = _retrying(lambda: bucket.batch_delete_objects(chunk))  # noqa: B023
        removed += len(result.deleted_keys)
    return removed
