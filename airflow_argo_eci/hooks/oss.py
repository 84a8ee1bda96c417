"""``OSSArtifactHook``: Alibaba Cloud OSS for Argo workflow artifacts, objects of any size up to 48.8 TiB.

Reads the ``oss`` connections apache-airflow-providers-alibaba users already have (without importing
that provider): extras ``access_key_id``, ``access_key_secret``, ``region``, ``auth_type`` ("AK"),
default bucket in the connection's ``schema``; plus the extras ``endpoint`` (default
``https://oss-<region>.aliyuncs.com``), ``security_token`` (STS), ``ca_bundle`` (a PEM path; TLS is
always verified) and ``signature_version`` (1 or 4; default 4 when a region is set). Any other
extra is an error naming the allowed ones; secrets are registered with Airflow's secrets masker.

Transfers (see :mod:`.oss_upload`, :mod:`.oss_download`, :mod:`.oss_reader`): uploads below
``multipart_threshold`` are one PutObject; above it, a parallel multipart upload with a checkpoint so
an interrupted upload resumes where it stopped. Downloads are parallel ranged GETs into a temp file
beside the target, renamed into place only when the CRC-64 of every byte matches the server's.
:meth:`OSSArtifactHook.open_reader` streams an object without touching disk. CRC-64
(``x-oss-hash-crc64ecma``) is checked end to end everywhere; a mismatch raises
:class:`OSSIntegrityError`. Long transfers log ``bytes / total (%), rate, ETA``.

Example connection (environment variable)::

    AIRFLOW_CONN_OSS_DEFAULT='{"conn_type": "oss", "schema": "my-bucket",
        "extra": {"access_key_id": "LTAI...", "access_key_secret": "...", "region": "cn-hangzhou"}}'
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from airflow.sdk import BaseHook

from airflow_argo_eci.hooks.oss_artifacts import ArtifactRef, workflow_artifacts
from airflow_argo_eci.hooks.oss_connection import (
    OSSConnectionSettings,
    make_auth,
    make_bucket,
    make_session,
    parse_oss_connection,
)
from airflow_argo_eci.hooks.oss_connection_form import OSS_UI_FIELD_BEHAVIOUR
from airflow_argo_eci.hooks.oss_errors import (
    OSSConfigError,
    OSSError,
    OSSIntegrityError,
    OSSNotFoundError,
    to_oss_error,
    with_retries,
)
from airflow_argo_eci.hooks.oss_progress import TransferProgress
from airflow_argo_eci.hooks.oss_transfer import TransferOptions
from airflow_argo_eci.hooks.oss_types import (
    DEFAULT_MULTIPART_THRESHOLD,
    MAX_PART_SIZE,
    MIN_PART_SIZE,
    MiB,
    ObjectInfo,
    OSSLocation,
    TransferResult,
    choose_part_size,
)

if TYPE_CHECKING:
    import oss2

    from airflow_argo_eci.hooks.oss_reader import OSSObjectReader

__all__ = [
    "ArtifactRef", "OSSArtifactHook", "OSSConfigError", "OSSConnectionSettings", "OSSError", "OSSIntegrityError",
    "OSSLocation", "OSSNotFoundError", "OSSObjectReader", "ObjectInfo", "TransferProgress", "TransferResult",
    "choose_part_size", "workflow_artifacts",
]

#: largest batch of DeleteMultipleObjects
DELETE_BATCH = 1000


def __getattr__(name: str) -> Any:
    if name == "OSSObjectReader":  # lazily: the reader's module is only needed when streaming
        from airflow_argo_eci.hooks.oss_reader import OSSObjectReader

        return OSSObjectReader
    raise AttributeError(name)


class OSSArtifactHook(BaseHook):
    """OSS objects and Argo artifacts (see the module docstring).

    :param oss_conn_id: the ``oss`` connection
    :param bucket_name: default bucket (else the connection's ``schema``)
    :param region: overrides the connection's ``region`` extra
    :param multipart_threshold: files of at least this size use multipart upload (<= 5 GiB)
    :param part_size: multipart part / download range size; None chooses one (16 MiB, more for objects
        that would need over 10,000 parts)
    :param parallelism: parts transferred at once
    :param checkpoint_dir: where resumable transfers keep their checkpoints (created 0700)
    :param retries: attempts per request after a transient failure (dropped connection, 5xx)
    :param progress_interval: seconds between progress lines in the task log
    """

    conn_type = "oss"
    conn_name_attr = "oss_conn_id"
    default_conn_name = "oss_default"
    hook_name = "Alibaba Cloud OSS (Argo artifacts)"

    def __init__(
        self,
        oss_conn_id: str = default_conn_name,
        *,
        bucket_name: str | None = None,
        region: str | None = None,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        part_size: int | None = None,
        parallelism: int = 4,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        retries: int = 3,
        progress_interval: float = 10.0,
    ) -> None:
        super().__init__()
        if not MIN_PART_SIZE <= multipart_threshold <= MAX_PART_SIZE:
            raise OSSConfigError(f"multipart_threshold must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes, got "
                                 f"{multipart_threshold}", code="InvalidArgument")
        if part_size is not None:
            choose_part_size(0, part_size)  # validates the range
        if parallelism < 1 or retries < 0:
            raise OSSConfigError(f"parallelism must be >= 1 and retries >= 0, got {parallelism} and {retries}",
                                 code="InvalidArgument")
        self.oss_conn_id = oss_conn_id
        self.bucket_name = bucket_name
        self.region = region
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.parallelism = parallelism
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else \
            Path(tempfile.gettempdir()) / "airflow-argo-eci-oss-checkpoints"
        self.retries = retries
        self.progress_interval = progress_interval
        self._settings: OSSConnectionSettings | None = None
        self._session: oss2.Session | None = None
        self._buckets: dict[str, oss2.Bucket] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ connection

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden and relabeled connection form fields with placeholders (also declared in the provider
        info for Airflow >= 3.2, see :mod:`.oss_connection_form`)."""
        return {
            "hidden_fields": list(OSS_UI_FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(OSS_UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(OSS_UI_FIELD_BEHAVIOUR["placeholders"]),
        }

    @property
    def settings(self) -> OSSConnectionSettings:
        """The validated connection settings (read once)."""
        if self._settings is None:
            conn = self.get_connection(self.oss_conn_id)
            extra = conn.extra_dejson if isinstance(conn.extra_dejson, Mapping) else {}
            self._settings = parse_oss_connection(
                conn.conn_id, extra, schema=conn.schema, login=conn.login, password=conn.password, host=conn.host,
                region=self.region)
        return self._settings

    def get_conn(self) -> oss2.Bucket:
        """The default bucket (see :meth:`get_bucket`)."""
        return self.get_bucket()

    def get_bucket(self, bucket_name: str | None = None) -> oss2.Bucket:
        """An ``oss2.Bucket`` for ``bucket_name``, else the hook's, else the connection's ``schema``."""
        name = bucket_name or self.bucket_name or self.settings.bucket
        if not name:
            raise OSSConfigError(
                f"no bucket: pass bucket_name or set the bucket in the schema field of connection {self.oss_conn_id!r}",
                code="InvalidConnection")
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None:
                if self._session is None:
                    self._session = make_session(self.settings, self.parallelism + 2)
                bucket = make_bucket(self.settings, name, self._session)
                self._buckets[name] = bucket
        return bucket

    def test_connection(self) -> tuple[bool, str]:
        """List one object of the default bucket (or the buckets, without one); ``(ok, message)``, never raises."""
        try:
            settings = self.settings
            name = self.bucket_name or settings.bucket
            if name:
                self._call(lambda: self.get_bucket(name).list_objects_v2(max_keys=1), f"list oss://{name}")
                return True, f"Connected to {settings.endpoint}: listed bucket {name!r}"
            import oss2

            if self._session is None:
                self._session = make_session(settings, self.parallelism + 2)
            service = oss2.Service(make_auth(settings), settings.endpoint, session=self._session,
                                   region=settings.region)
            self._call(lambda: service.list_buckets(max_keys=1), "list buckets")
            return True, f"Connected to {settings.endpoint}: listed buckets"
        except OSSError as exc:
            return False, f"Connection {self.oss_conn_id!r} failed: {exc}"
        except Exception as exc:
            return False, f"Connection {self.oss_conn_id!r} is not usable: {type(exc).__name__}: {exc}"

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        if self._session is not None:
            self._session.session.close()
            self._session = None
            self._buckets.clear()

    # ------------------------------------------------------------------ helpers

    def _call(self, call: Any, context: str) -> Any:
        return with_retries(call, self.retries, context)

    def _options(self, part_size: int | None = None) -> TransferOptions:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return TransferOptions(part_size=part_size or self.part_size, parallelism=self.parallelism,
                               checkpoint_dir=self.checkpoint_dir, retries=self.retries,
                               progress_interval=self.progress_interval, logger=self.log)

    def _progress(self, verb: str, url: str, total: int | None, enabled: bool) -> TransferProgress | None:
        if not enabled:
            return None
        return TransferProgress(verb, url, total, interval=self.progress_interval, logger=self.log)

    # ------------------------------------------------------------------ uploads

    def upload_file(self, path: str | os.PathLike[str], key: str, *, bucket_name: str | None = None,
                    progress: bool = True, headers: Mapping[str, str] | None = None) -> TransferResult:
        """Upload the file ``path`` to ``key``: one PutObject below ``multipart_threshold``, else a resumable
        parallel multipart upload (run it again after an interruption and it continues). The CRC-64 is
        checked against the server's; a mismatch raises :class:`OSSIntegrityError`."""
        import time

        from airflow_argo_eci.hooks.oss_upload import put_small, upload_multipart

        source = Path(path)
        if not source.is_file():
            raise OSSConfigError(f"upload: {source} is not a file", code="InvalidArgument")
        bucket = self.get_bucket(bucket_name)
        size = source.stat().st_size
        url = OSSLocation(bucket.bucket_name, key).url
        tracker = self._progress("upload", url, size, progress)
        extra = dict(headers) if headers else None
        if size < self.multipart_threshold:
            started = time.monotonic()
            sent, crc = put_small(bucket, source, key, extra, tracker, self.retries)
            result = TransferResult(bucket.bucket_name, key, sent, str(crc), time.monotonic() - started, 1, False, 1)
        else:
            result = upload_multipart(bucket, source, key, size, self._options(), extra, tracker)
        if tracker is not None:
            tracker.finish()
        return result

    def upload_directory(self, path: str | os.PathLike[str], prefix: str, *,
                         bucket_name: str | None = None) -> list[TransferResult]:
        """Upload every file under ``path`` to ``<prefix>/<relative path>`` (symlinks are not followed)."""
        root = Path(path)
        if not root.is_dir():
            raise OSSConfigError(f"upload_directory: {root} is not a directory", code="InvalidArgument")
        base = prefix.rstrip("/")
        results = []
        for file in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            key = f"{base}/{file.relative_to(root).as_posix()}" if base else file.relative_to(root).as_posix()
            results.append(self.upload_file(file, key, bucket_name=bucket_name))
        return results

    def upload_stream(self, stream: BinaryIO | Iterable[bytes], key: str, *, bucket_name: str | None = None,
                      progress: bool = True, headers: Mapping[str, str] | None = None) -> TransferResult:
        """Upload an unsized stream (a binary file object or an iterable of bytes) as multipart, holding at
        most ``parallelism`` parts in memory (not resumable: a stream cannot be re-read)."""
        from airflow_argo_eci.hooks.oss_upload import iter_stream, upload_from_stream

        bucket = self.get_bucket(bucket_name)
        tracker = self._progress("upload", OSSLocation(bucket.bucket_name, key).url, None, progress)
        options = self._options()
        result = upload_from_stream(bucket, iter_stream(stream, MiB), key, options,
                                    dict(headers) if headers else None, tracker)
        if tracker is not None:
            tracker.finish()
        return result

    # ------------------------------------------------------------------ downloads

    def download_file(self, key: str, path: str | os.PathLike[str], *, bucket_name: str | None = None,
                      progress: bool = True) -> TransferResult:
        """Download ``key`` to ``path`` with parallel ranged GETs into a temp file beside it, renamed into
        place only once the CRC-64 matches. A failed download leaves nothing at ``path``; after a
        dropped connection run it again to resume (the checkpoint is kept). Corrupt data raises
        :class:`OSSIntegrityError` and the partial data is discarded."""
        from airflow_argo_eci.hooks.oss_download import download_to_file

        bucket = self.get_bucket(bucket_name)
        url = OSSLocation(bucket.bucket_name, key).url
        return download_to_file(bucket, key, Path(path), self._options(),
                                lambda total: self._progress("download", url, total, progress))

    def open_reader(self, key: str, *, bucket_name: str | None = None, chunk_size: int | None = None,
                    parallelism: int | None = None, progress: bool = False) -> OSSObjectReader:
        """A streaming, non-seekable reader (``io.RawIOBase``; wrap in ``io.BufferedReader`` for
        ``readline``) that reads ahead ``parallelism`` ranges of ``chunk_size`` (default: the part
        size) and never touches disk; the CRC-64 is checked at EOF. Close it when done."""
        from airflow_argo_eci.hooks.oss_reader import OSSObjectReader

        bucket = self.get_bucket(bucket_name)
        size = chunk_size or self.part_size or choose_part_size(0)
        tracker = self._progress("read", OSSLocation(bucket.bucket_name, key).url, None, progress)
        reader = OSSObjectReader(bucket, key, chunk_size=size, parallelism=parallelism or self.parallelism,
                                 retries=self.retries, progress=tracker)
        if tracker is not None:
            tracker.total = reader.size
        return reader

    # ------------------------------------------------------------------ objects

    def head_object(self, key: str, *, bucket_name: str | None = None) -> ObjectInfo | None:
        """The object's metadata, or None when it does not exist."""
        bucket = self.get_bucket(bucket_name)
        try:
            meta = self._call(lambda: bucket.head_object(key), f"head oss://{bucket.bucket_name}/{key}")
        except OSSNotFoundError:
            return None
        crc = meta.server_crc
        return ObjectInfo(key, int(meta.content_length or 0), _utc(meta.last_modified), str(meta.etag or ""),
                          str(crc) if crc is not None else None)

    def object_exists(self, key: str, *, bucket_name: str | None = None) -> bool:
        """Whether ``key`` exists."""
        return self.head_object(key, bucket_name=bucket_name) is not None

    def list_objects(self, prefix: str = "", *, bucket_name: str | None = None, delimiter: str = "",
                     page_size: int = 1000) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in key order, following pages of ``page_size`` (ListObjectsV2). With a
        ``delimiter``, only the objects directly under ``prefix`` (common prefixes are skipped)."""
        if not 1 <= page_size <= 1000:
            raise OSSConfigError(f"page_size must be 1..1000, got {page_size}", code="InvalidArgument")
        bucket = self.get_bucket(bucket_name)
        token = ""
        while True:
            page = self._call(
                lambda t=token: bucket.list_objects_v2(prefix=prefix, delimiter=delimiter, continuation_token=t,
                                                       max_keys=page_size),
                f"list oss://{bucket.bucket_name}/{prefix}")
            for item in page.object_list:
                yield ObjectInfo(item.key, int(item.size), _utc(item.last_modified), str(item.etag or ""))
            if not page.is_truncated:
                return
            token = page.next_continuation_token

    def delete_objects(self, keys: Iterable[str], *, bucket_name: str | None = None) -> list[str]:
        """Delete ``keys`` (absent ones are fine) in batches of 1000; returns the keys deleted."""
        bucket = self.get_bucket(bucket_name)
        pending = list(dict.fromkeys(keys))
        deleted: list[str] = []
        for start in range(0, len(pending), DELETE_BATCH):
            batch = pending[start:start + DELETE_BATCH]
            result = self._call(lambda b=batch: bucket.batch_delete_objects(b),
                                f"delete {len(batch)} objects in oss://{bucket.bucket_name}")
            deleted.extend(result.deleted_keys)
        return deleted

    def delete_prefix(self, prefix: str, *, bucket_name: str | None = None,
                      older_than: datetime | timedelta | None = None, dry_run: bool = False,
                      allow_bucket_wide: bool = False) -> list[str]:
        """Delete the objects under ``prefix`` (only those last modified before ``older_than``: a
        datetime, or an age); ``dry_run`` returns what would be deleted. An empty prefix is refused
        unless ``allow_bucket_wide=True``."""
        if not prefix and not allow_bucket_wide:
            raise OSSConfigError("delete_prefix: an empty prefix would delete the whole bucket; pass a prefix or "
                                 "allow_bucket_wide=True", code="InvalidArgument")
        cutoff: datetime | None
        if isinstance(older_than, timedelta):
            cutoff = datetime.now(timezone.utc) - older_than
        elif isinstance(older_than, datetime):
            if older_than.tzinfo is None:
                raise OSSConfigError("delete_prefix: older_than must be timezone-aware "
                                     "(e.g. datetime.now(timezone.utc))", code="InvalidArgument")
            cutoff = older_than
        else:
            cutoff = None
        keys = [o.key for o in self.list_objects(prefix, bucket_name=bucket_name)
                if cutoff is None or o.last_modified < cutoff]
        action = "would delete" if dry_run else "deleting"
        self.log.info("%s %d objects under oss://%s/%s", action, len(keys),
                      bucket_name or self.bucket_name or self.settings.bucket, prefix)
        if dry_run or not keys:
            return keys
        return self.delete_objects(keys, bucket_name=bucket_name)

    # ------------------------------------------------------------------ artifacts

    def _artifact_bucket(self, ref: ArtifactRef) -> str | None:
        if ref.endpoint and _host(ref.endpoint) != _host(self.settings.endpoint):
            self.log.warning("artifact %s/%s is stored at endpoint %s, the connection uses %s; using the connection's",
                             ref.node, ref.name, ref.endpoint, self.settings.endpoint)
        return ref.bucket

    def download_artifact(self, ref: ArtifactRef, destination: str | os.PathLike[str], *,
                          unpack: bool = True) -> Path:
        """Download an artifact so that it becomes ``destination`` (Argo's input-artifact semantics):
        a tgz artifact is CRC-verified into a temp file, then unpacked safely (no absolute paths,
        ``..``, escaping links or devices -> :class:`~airflow_argo_eci.archives.ArchiveError`, nothing
        written); ``archive: none`` artifacts (or ``unpack=False``) are the raw object."""
        from airflow_argo_eci.archives import unpack_tgz

        target = Path(destination)
        bucket = self._artifact_bucket(ref)
        if ref.archive == "none" or not unpack:
            self.download_file(ref.key, target, bucket_name=bucket)
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{target.name}.artifact-", dir=target.parent) as staging:
            archive = Path(staging) / "artifact.tgz"
            self.download_file(ref.key, archive, bucket_name=bucket)
            return unpack_tgz(archive, target)

    def read_artifact_text(self, ref: ArtifactRef, *, max_bytes: int = MiB, encoding: str = "utf-8") -> str:
        """A small text artifact as a string (a tgz holding one file is unpacked in memory). Larger than
        ``max_bytes`` raises :class:`OSSConfigError`; the CRC-64 is verified."""
        import gzip
        import io
        import tarfile

        from airflow_argo_eci.archives import ArchiveError

        bucket = self._artifact_bucket(ref)
        info = self.head_object(ref.key, bucket_name=bucket)
        if info is None:
            raise OSSNotFoundError(f"artifact {ref.node}/{ref.name}: {ref.url} does not exist", status=404,
                                   code="NoSuchKey")
        limit = max_bytes if ref.archive == "none" else max_bytes + 64 * 1024
        if info.size > limit:
            raise OSSConfigError(f"artifact {ref.node}/{ref.name} is {info.size} bytes, more than "
                                 f"max_bytes={max_bytes}; use download_artifact instead", code="InvalidArgument")
        with self.open_reader(ref.key, bucket_name=bucket, parallelism=1) as reader:
            data = b"".join(reader.iter_chunks())
        if ref.archive == "none":
            return data.decode(encoding)
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                files = [m for m in tar.getmembers() if m.isfile()]
                if len(files) != 1 or any(not (m.isfile() or m.isdir()) for m in tar.getmembers()):
                    names = ", ".join(m.name for m in tar.getmembers()) or "nothing"
                    raise ArchiveError(f"artifact {ref.node}/{ref.name}: expected a tgz holding one regular file, "
                                       f"found {names}; use download_artifact")
                if files[0].size > max_bytes:
                    raise OSSConfigError(f"artifact {ref.node}/{ref.name} holds {files[0].size} bytes, more than "
                                         f"max_bytes={max_bytes}", code="InvalidArgument")
                handle = tar.extractfile(files[0])
                assert handle is not None
                return handle.read().decode(encoding)
        except (tarfile.TarError, gzip.BadGzipFile, EOFError) as exc:
            raise ArchiveError(f"artifact {ref.node}/{ref.name} ({ref.url}) is not a valid tgz: {exc}") from exc

    def delete_workflow_artifacts(self, workflow: Mapping[str, Any], *, dry_run: bool = False) -> list[str]:
        """Delete every OSS output artifact of ``workflow`` that exists (GC); returns their keys (what
        would be deleted with ``dry_run``)."""
        by_bucket: dict[str | None, list[str]] = {}
        for ref in workflow_artifacts(workflow):
            by_bucket.setdefault(ref.bucket, []).append(ref.key)
        removed: list[str] = []
        for bucket, keys in by_bucket.items():
            present = [k for k in dict.fromkeys(keys) if self.object_exists(k, bucket_name=bucket)]
            self.log.info("%s %d artifacts of workflow %s", "would delete" if dry_run else "deleting", len(present),
                          (workflow.get("metadata") or {}).get("name"))
            if present:
                removed.extend(present if dry_run else self.delete_objects(present, bucket_name=bucket))
        return removed


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(int(value or 0), tz=timezone.utc)


def _host(endpoint: str) -> str:
    return endpoint.split("://", 1)[-1].split("/", 1)[0].lower()


# keep to_oss_error importable from here for operators that call oss2 directly
__all__ += ["to_oss_error"]
