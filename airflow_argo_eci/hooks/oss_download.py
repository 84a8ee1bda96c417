"""OSS downloads: HEAD, ranged GETs pinned to the ETag that resume after a dropped connection, and the
resumable parallel download of an object to a file, CRC-64 verified before it is renamed into place."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_argo_eci.crc64 import combine_parts, crc64_function
from airflow_argo_eci.hooks.oss_errors import (
    OSSConfigError,
    OSSIntegrityError,
    is_transient,
    to_oss_error,
    with_retries,
)
from airflow_argo_eci.hooks.oss_progress import TransferProgress
from airflow_argo_eci.hooks.oss_transfer import Checkpoint, TransferOptions, run_parallel
from airflow_argo_eci.hooks.oss_types import MiB, TransferResult, choose_part_size

if TYPE_CHECKING:
    import oss2

log = logging.getLogger(__name__)

READ_CHUNK = 1 * MiB


@dataclass(frozen=True)
class RemoteObject:
    """What HEAD said about the object being read."""

    size: int
    etag: str
    crc64: int | None


def head(bucket: oss2.Bucket, key: str, retries: int) -> RemoteObject:
    """HEAD the object (404 -> :class:`OSSNotFoundError`)."""
    meta = with_retries(lambda: bucket.head_object(key), retries, f"head oss://{bucket.bucket_name}/{key}")
    crc = meta.server_crc
    return RemoteObject(int(meta.content_length or 0), str(meta.etag or ""), int(crc) if crc is not None else None)


def fetch_range(bucket: oss2.Bucket, key: str, obj: RemoteObject, start: int, end: int, retries: int,
                sink: Callable[[int, bytes], None], progress: TransferProgress | None = None) -> int:
    """GET bytes ``start..end`` (inclusive) pinned to the object's ETag, passing ``(offset, chunk)`` to
    ``sink``; a dropped connection resumes from the last byte received. Returns the range's CRC-64."""
    crc_of = crc64_function()
    crc = 0
    offset = start
    attempt = 0
    url = f"oss://{bucket.bucket_name}/{key}"
    headers = {"If-Match": f'"{obj.etag}"', "Accept-Encoding": "identity"}
    while offset <= end:
        try:
            result = bucket.get_object(key, byte_range=(offset, end), headers=headers)
            for chunk in result.resp.response.iter_content(READ_CHUNK):
                if offset + len(chunk) > end + 1:
                    raise OSSIntegrityError(f"download {url}: the server sent more than the requested range",
                                            code="InconsistentError")
                sink(offset, chunk)
                crc = crc_of(chunk, crc)
                offset += len(chunk)
                if progress is not None:
                    progress.add(len(chunk))
            if offset <= end:
                raise ConnectionError(f"connection closed after {offset - start} of {end - start + 1} bytes")
        except Exception as exc:
            if getattr(exc, "status", None) == 412:
                raise OSSIntegrityError(f"download {url}: the object changed during the download (ETag is no longer "
                                        f"{obj.etag}); download it again", status=412,
                                        code="PreconditionFailed") from exc
            if attempt >= retries or not is_transient(exc):
                raise to_oss_error(exc, f"download bytes {offset}-{end} of {url}") from exc
            attempt += 1
            delay = min(0.2 * 2 ** (attempt - 1), 5.0)
            log.info("download of %s bytes %d-%d interrupted (%s), resuming in %.1fs (attempt %d of %d)",
                     url, offset, end, type(exc).__name__, delay, attempt, retries)
            time.sleep(delay)
    return crc


def download_to_file(bucket: oss2.Bucket, key: str, target: Path, options: TransferOptions,
                     progress_factory: Callable[[int], TransferProgress | None]) -> TransferResult:
    """Parallel ranged resumable download into a temp file beside ``target``, CRC-64 verified, then
    renamed into place (see the module docstring)."""
    started = time.monotonic()
    url = f"oss://{bucket.bucket_name}/{key}"
    obj = head(bucket, key, options.retries)
    part_size = choose_part_size(obj.size, options.part_size)
    count = max(1, -(-obj.size // part_size))
    target = target.absolute()
    if target.is_dir():
        raise OSSConfigError(f"download {url}: {target} is a directory; pass a file path", code="InvalidArgument")
    target.parent.mkdir(parents=True, exist_ok=True)
    identity = [bucket.endpoint, bucket.bucket_name, key, str(target)]
    checkpoint = Checkpoint(options.checkpoint_dir, "download", identity)
    temp = target.parent / f".{target.name}.{checkpoint.path.stem[:12]}.oss-partial"
    header = {"bucket": bucket.bucket_name, "key": key, "etag": obj.etag, "size": obj.size, "part_size": part_size,
              "temp": str(temp)}
    done: dict[int, tuple[int, int]] = {}
    resumed = False
    saved = checkpoint.load()
    if saved is not None and saved[0] == header and temp.is_file() and temp.stat().st_size == obj.size:
        done = {n: (int(e["crc"]), int(e["size"])) for n, e in saved[1].items() if 1 <= n <= count}
        resumed = True
        options.logger.info("resuming download of %s: %d of %d parts already on disk", url, len(done), count)
    else:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, obj.size)
        finally:
            os.close(fd)
    checkpoint.start(header, ({"n": n, "crc": c, "size": s} for n, (c, s) in sorted(done.items())))
    progress = progress_factory(obj.size)
    if progress is not None:
        progress.add(sum(s for _, s in done.values()))
    fd = os.open(temp, os.O_WRONLY)
    lock = threading.Lock()

    def receive(number: int) -> None:
        start = (number - 1) * part_size
        end = min(start + part_size, obj.size) - 1

        def sink(offset: int, chunk: bytes) -> None:
            os.pwrite(fd, chunk, offset)

        crc = fetch_range(bucket, key, obj, start, end, options.retries, sink, progress)
        with lock:
            done[number] = (crc, end - start + 1)
        checkpoint.record({"n": number, "crc": crc, "size": end - start + 1})

    todo = [n for n in range(1, count + 1) if n not in done] if obj.size else []
    try:
        run_parallel(todo, receive, options.parallelism)
        os.fsync(fd)
    except OSSIntegrityError:
        checkpoint.remove()
        temp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
        checkpoint.close()
    crc = combine_parts([done[n] for n in range(1, count + 1)]) if obj.size else 0
    if obj.crc64 is not None and crc != obj.crc64:
        checkpoint.remove()
        temp.unlink(missing_ok=True)
        raise OSSIntegrityError(f"download {url}: CRC-64 of the received bytes is {crc}, OSS says {obj.crc64}; the "
                                f"data is corrupt, nothing was written to {target}", code="InconsistentError")
    if obj.crc64 is None:
        options.logger.warning("download %s: OSS sent no CRC-64 for the object; integrity not verified", url)
    os.replace(temp, target)
    checkpoint.remove()
    if progress is not None:
        progress.finish()
    return TransferResult(bucket.bucket_name, key, obj.size, str(crc), time.monotonic() - started, count, resumed,
                          len(todo))
