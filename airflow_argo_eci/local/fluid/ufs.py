"""A Dataset's under file system: its ``oss://`` mounts, their keys (``encryptOptions`` from
Secrets), and listing / fetching their objects from the local OSS store over its HTTP API (so the
store's bandwidth cap and byte counts apply to every read, as OSS's do)."""

from __future__ import annotations

import base64
import binascii
import os
import posixpath
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_argo_eci.fluid_conventions import OSS_SCHEME
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import SECRETS
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.fluid.units import SpecFieldError

if TYPE_CHECKING:
    import oss2

#: the option names Fluid's OSS runtimes read the keys from (options or encryptOptions)
KEY_ID_OPTION = "fs.oss.accessKeyId"
KEY_SECRET_OPTION = "fs.oss.accessKeySecret"  # noqa: S105  # an option name
#: bytes read per request chunk while streaming an object
CHUNK = 1 << 20


class UfsError(Exception):
    """The store cannot serve a mount (no such bucket, refused keys, unreachable): ``reason`` is a
    short CamelCase word, the message says what and where."""

    def __init__(self, message: str, reason: str = "UfsError") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Mount:
    """One ``spec.mounts[]`` entry: ``bucket``/``prefix`` in the store, seen at ``path`` in the dataset."""

    index: int
    bucket: str
    prefix: str
    path: str
    key_id: str | None
    key_secret: str | None

    def dataset_path(self, key: str) -> str:
        """Where the object ``key`` appears inside the dataset (an absolute path)."""
        return posixpath.join(self.path, key[len(self.prefix):])


@dataclass(frozen=True)
class UfsFile:
    """An object of a mount: its dataset path, store key, size and ETag."""

    path: str
    key: str
    size: int
    mount: Mount
    etag: str = ""


def parse_mount_point(value: Any, field_name: str) -> tuple[str, str]:
    """``oss://bucket/prefix/`` -> (bucket, ``prefix/``), the prefix empty or ending in ``/``;
    :class:`SpecFieldError` naming ``field_name`` for anything else."""
    if not isinstance(value, str) or not value.startswith(OSS_SCHEME):
        raise SpecFieldError(f"{field_name}: {value!r} is not an OSS mount point: the local cluster mounts "
                             f"{OSS_SCHEME}<bucket>/<prefix>/ over its OSS store")
    bucket, _, prefix = value[len(OSS_SCHEME):].partition("/")
    if not bucket or "/" in bucket or not all(c.isalnum() or c == "-" for c in bucket):
        raise SpecFieldError(f"{field_name}: {value!r} names no valid bucket (oss://<bucket>/<prefix>/)")
    parts = [p for p in prefix.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise SpecFieldError(f"{field_name}: {value!r} must not hold '.' or '..' components")
    return bucket, "".join(f"{p}/" for p in parts)


def dataset_mounts(store: Store, namespace: str, dataset: dict[str, Any]) -> list[Mount]:
    """The Dataset's mounts, checked: mount points, paths (``path``, else ``/<name>`` as Fluid
    does) and keys; :class:`SpecFieldError` names the bad field."""
    mounts = (dataset.get("spec") or {}).get("mounts")
    if not isinstance(mounts, list) or not mounts:
        raise SpecFieldError("spec.mounts: at least one mount (mountPoint: oss://<bucket>/<prefix>/) is required")
    out: list[Mount] = []
    seen: set[str] = set()
    for index, entry in enumerate(mounts):
        where = f"spec.mounts[{index}]"
        if not isinstance(entry, dict):
            raise SpecFieldError(f"{where} must be an object")
        bucket, prefix = parse_mount_point(entry.get("mountPoint"), f"{where}.mountPoint")
        name = entry.get("name") or bucket
        path = entry.get("path") or f"/{name}"
        if not isinstance(path, str) or not path.startswith("/") or ".." in path.split("/"):
            raise SpecFieldError(f"{where}.path: {path!r} must be an absolute path inside the dataset")
        path = posixpath.normpath(path)
        if path in seen:
            raise SpecFieldError(f"{where}.path: {path!r} is the path of another mount")
        seen.add(path)
        options = {**_plain_options(entry, where), **_secret_options(store, namespace, entry, where)}
        out.append(Mount(index, bucket, prefix, path, options.get(KEY_ID_OPTION), options.get(KEY_SECRET_OPTION)))
    return out


def _plain_options(entry: dict[str, Any], where: str) -> dict[str, str]:
    options = entry.get("options") or {}
    if not isinstance(options, dict):
        raise SpecFieldError(f"{where}.options must be a map of strings")
    return {str(k): str(v) for k, v in options.items()}


def _secret_options(store: Store, namespace: str, entry: dict[str, Any], where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for index, option in enumerate(entry.get("encryptOptions") or []):
        field_name = f"{where}.encryptOptions[{index}]"
        ref = ((option or {}).get("valueFrom") or {}).get("secretKeyRef") or {}
        name, key = (option or {}).get("name"), ref.get("key")
        if not name or not ref.get("name") or not key:
            raise SpecFieldError(f"{field_name}: name and valueFrom.secretKeyRef (name, key) are required")
        try:
            secret = store.get(SECRETS, namespace, str(ref["name"]))
        except ApiError as exc:
            raise SpecFieldError(f'{field_name}.valueFrom.secretKeyRef.name: secret "{ref["name"]}" not found '
                                 f'in namespace "{namespace}"') from exc
        value = _secret_value(secret, str(key))
        if value is None:
            raise SpecFieldError(f'{field_name}.valueFrom.secretKeyRef.key: secret "{ref["name"]}" has no key '
                                 f'"{key}"')
        out[str(name)] = value
    return out


def _secret_value(secret: dict[str, Any], key: str) -> str | None:
    if key in (secret.get("stringData") or {}):
        return str(secret["stringData"][key])
    raw = (secret.get("data") or {}).get(key)
    if raw is None:
        return None
    try:
        return base64.b64decode(str(raw), validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


class ObjectStore:
    """Lists and reads mounts from the local OSS store at ``endpoint`` (trusting ``ca_file``);
    mounts without keys use ``default_keys`` (the store's own)."""

    def __init__(self, endpoint: str, ca_file: Path | None, default_keys: tuple[str, str]) -> None:
        self.endpoint = endpoint
        self.ca_file = ca_file
        self.default_keys = default_keys
        self._local = threading.local()

    def _bucket(self, mount: Mount) -> oss2.Bucket:
        import oss2

        session = getattr(self._local, "session", None)
        if session is None:  # one connection pool per thread: loads and pod reads run side by side
            session = oss2.Session()
            if self.ca_file is not None:
                session.session.verify = str(self.ca_file)
                session.session.trust_env = False
            self._local.session = session
        key_id, secret = (mount.key_id, mount.key_secret) if mount.key_id and mount.key_secret \
            else self.default_keys
        return oss2.Bucket(oss2.Auth(key_id, secret), self.endpoint, mount.bucket, session=session,
                           connect_timeout=30)

    def list_files(self, mount: Mount) -> list[UfsFile]:
        """Every object under the mount's prefix (directory markers left out)."""
        import oss2

        try:
            return [UfsFile(mount.dataset_path(obj.key), obj.key, int(obj.size), mount, str(obj.etag or ""))
                    for obj in oss2.ObjectIterator(self._bucket(mount), prefix=mount.prefix)
                    if not obj.key.endswith("/")]
        except oss2.exceptions.OssError as exc:
            raise _ufs_error(exc, mount) from exc

    def bucket_exists(self, mount: Mount) -> None:
        """Raise :class:`UfsError` unless the mount's bucket exists and its keys are accepted."""
        import oss2

        try:
            self._bucket(mount).get_bucket_info()
        except oss2.exceptions.OssError as exc:
            raise _ufs_error(exc, mount) from exc

    def fetch(self, file: UfsFile, dest: Path | None, cancel: threading.Event | None = None) -> int:
        """Stream the object into ``dest`` (written beside it, then renamed), or read and drop it
        when ``dest`` is None; the bytes read. ``cancel`` set stops it between chunks (UfsError)."""
        import oss2

        partial = None if dest is None else dest.with_name(f".{dest.name}.{threading.get_ident()}.partial")
        total = 0
        try:
            result = self._bucket(file.mount).get_object(file.key)
            if dest is None or partial is None:
                for chunk in _chunks(result, cancel):
                    total += len(chunk)
                return total
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as out:
                for chunk in _chunks(result, cancel):
                    out.write(chunk)
                    total += len(chunk)
            os.replace(partial, dest)
        except oss2.exceptions.OssError as exc:
            raise _ufs_error(exc, file.mount, file.key) from exc
        finally:
            if partial is not None:
                partial.unlink(missing_ok=True)
        return total


def _chunks(result: Any, cancel: threading.Event | None = None) -> Iterator[bytes]:
    while True:
        if cancel is not None and cancel.is_set():
            raise UfsError("the read was cancelled", "Cancelled")
        chunk = result.read(CHUNK)
        if not chunk:
            return
        yield chunk


def _ufs_error(exc: Any, mount: Mount, key: str | None = None) -> UfsError:
    where = f"oss://{mount.bucket}/{key if key is not None else mount.prefix}"
    code = getattr(exc, "code", "") or ""
    if code == "NoSuchBucket":
        return UfsError(f'spec.mounts[{mount.index}].mountPoint: bucket "{mount.bucket}" does not exist in the '
                        "local OSS store", "NoSuchBucket")
    if code == "NoSuchKey":
        return UfsError(f"{where}: the object is gone from the store", "NoSuchKey")
    if getattr(exc, "status", 0) == 403:
        return UfsError(f"spec.mounts[{mount.index}]: the store refused the mount's keys ({code}): check "
                        f"encryptOptions {KEY_ID_OPTION} / {KEY_SECRET_OPTION}", "AccessDenied")
    return UfsError(f"{where}: {code or type(exc).__name__}: {getattr(exc, 'message', exc)}")
