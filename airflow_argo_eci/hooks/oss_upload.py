"""OSS uploads: PutObject of a small file, resumable parallel multipart upload of a file, and multipart
upload from an unsized stream; every part's CRC-64 checked against the server's."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from airflow_argo_eci.crc64 import combine_parts, crc64_function
from airflow_argo_eci.hooks.oss_errors import (
    OSSConfigError,
    OSSError,
    OSSIntegrityError,
    OSSNotFoundError,
    with_retries,
)
from airflow_argo_eci.hooks.oss_progress import TransferProgress
from airflow_argo_eci.hooks.oss_transfer import Checkpoint, TransferOptions, run_parallel
from airflow_argo_eci.hooks.oss_types import MAX_PARTS, TransferResult, choose_part_size

if TYPE_CHECKING:
    import oss2

log = logging.getLogger(__name__)


def put_small(bucket: oss2.Bucket, path: Path, key: str, headers: dict[str, str] | None,
              progress: TransferProgress | None, retries: int) -> tuple[int, int]:
    """PutObject of a file below the multipart threshold; returns ``(size, crc)`` after checking the server's CRC."""
    data = path.read_bytes()
    crc = crc64_function()(data, 0)
    url = f"oss://{bucket.bucket_name}/{key}"
    result = with_retries(lambda: bucket.put_object(key, data, headers=headers), retries, f"put {url}")
    _check_crc(f"put {url}", crc, result.crc)
    if progress is not None:
        progress.add(len(data))
    return len(data), crc


def _check_crc(context: str, local: int, server: int | None) -> None:
    if server is not None and int(server) != local:
        raise OSSIntegrityError(f"{context}: CRC-64 mismatch: sent {local}, server stored {server}; the data was "
                                "corrupted in transit and the transfer must be repeated", code="InconsistentError")


def upload_multipart(bucket: oss2.Bucket, path: Path, key: str, size: int, options: TransferOptions,
                     headers: dict[str, str] | None, progress: TransferProgress | None) -> TransferResult:
    """Resumable parallel multipart upload of the file ``path`` (see the module docstring)."""
    from oss2.exceptions import NoSuchUpload
    from oss2.models import PartInfo

    started = time.monotonic()
    part_size = choose_part_size(size, options.part_size)
    count = max(1, -(-size // part_size))
    stat = path.stat()
    url = f"oss://{bucket.bucket_name}/{key}"
    checkpoint = Checkpoint(options.checkpoint_dir, "upload",
                            [bucket.endpoint, bucket.bucket_name, key, str(path.resolve())])
    header = {"bucket": bucket.bucket_name, "key": key, "size": size, "mtime_ns": stat.st_mtime_ns,
              "part_size": part_size}
    crc_of = crc64_function()
    done: dict[int, tuple[int, int, str]] = {}  # part -> (crc, size, etag)
    upload_id = ""
    resumed = False
    saved = checkpoint.load()
    if saved is not None:
        old, recorded = saved
        old_id = str(old.get("upload_id", ""))
        if {k: old.get(k) for k in header} == header and old_id:
            try:
                server_parts = _list_parts(bucket, key, old_id, options.retries)
                upload_id = old_id
            except OSSNotFoundError:
                server_parts = {}
            if upload_id:
                done = _verify_parts(path, server_parts, recorded, part_size, size, crc_of)
                resumed = True
                options.logger.info("resuming upload of %s: %d of %d parts already on OSS", url, len(done), count)
        elif old_id:
            _abort_quietly(bucket, key, old_id, NoSuchUpload)
    if not upload_id:
        result = with_retries(lambda: bucket.init_multipart_upload(key, headers=headers), options.retries,
                              f"start multipart upload of {url}")
        upload_id = result.upload_id
    header["upload_id"] = upload_id
    checkpoint.start(header, ({"n": n, "crc": c, "size": s, "etag": e} for n, (c, s, e) in sorted(done.items())))
    if progress is not None:
        progress.add(sum(s for _, s, _ in done.values()))
    lock = threading.Lock()

    def send(number: int) -> None:
        offset = (number - 1) * part_size
        length = min(part_size, size - offset)
        with open(path, "rb") as handle:
            data = os.pread(handle.fileno(), length, offset)
        if len(data) != length:
            raise OSSError(f"upload {url}: {path} shrank while uploading (part {number} short)", code="FileChanged")
        crc = crc_of(data, 0)
        context = f"upload part {number}/{count} of {url}"
        result = with_retries(lambda: bucket.upload_part(key, upload_id, number, data), options.retries, context)
        _check_crc(context, crc, result.crc)
        with lock:
            done[number] = (crc, length, result.etag)
        checkpoint.record({"n": number, "crc": crc, "size": length, "etag": result.etag})
        if progress is not None:
            progress.add(length)

    todo = [n for n in range(1, count + 1) if n not in done]
    try:
        run_parallel(todo, send, options.parallelism)
    finally:
        checkpoint.close()
    if path.stat().st_mtime_ns != stat.st_mtime_ns:
        raise OSSError(f"upload {url}: {path} was modified during the upload; upload it again", code="FileChanged")
    ordered = [done[n] for n in range(1, count + 1)]
    parts = [PartInfo(n, done[n][2]) for n in range(1, count + 1)]
    result = with_retries(lambda: bucket.complete_multipart_upload(key, upload_id, parts), options.retries,
                          f"complete multipart upload of {url}")
    crc = combine_parts([(c, s) for c, s, _ in ordered])
    server_crc = result.crc
    if server_crc is None:
        server_crc = bucket.head_object(key).server_crc
    if server_crc is not None and int(server_crc) != crc:
        checkpoint.remove()
        raise OSSIntegrityError(f"upload {url}: the completed object's CRC-64 {server_crc} differs from the "
                                f"local file's {crc}; the object on OSS is corrupt, upload it again",
                                code="InconsistentError")
    checkpoint.remove()
    return TransferResult(bucket.bucket_name, key, size, str(crc), time.monotonic() - started, count, resumed,
                          len(todo))


def _list_parts(bucket: oss2.Bucket, key: str, upload_id: str, retries: int) -> dict[int, tuple[int, str]]:
    """``{part number: (size, etag)}`` of an upload, all pages."""
    import oss2

    def fetch() -> dict[int, tuple[int, str]]:
        return {p.part_number: (int(p.size), str(p.etag).strip('"').upper())
                for p in oss2.PartIterator(bucket, key, upload_id)}

    result: dict[int, tuple[int, str]] = with_retries(fetch, retries,
                                                      f"list parts of oss://{bucket.bucket_name}/{key}")
    return result


def _verify_parts(path: Path, server_parts: dict[int, tuple[int, str]], recorded: dict[int, dict[str, Any]],
                  part_size: int, size: int, crc_of: Callable[[bytes | memoryview, int], int]
                  ) -> dict[int, tuple[int, int, str]]:
    """The server's parts that hold exactly the local file's bytes: same size and ETag (a part's ETag is
    the MD5 of its bytes) as recorded in the checkpoint, or, for parts that landed just before a kill
    and were never recorded, as computed from the local file."""
    kept: dict[int, tuple[int, int, str]] = {}
    with open(path, "rb") as handle:
        for number, (part_len, etag) in server_parts.items():
            offset = (number - 1) * part_size
            expected = min(part_size, size - offset)
            if expected <= 0 or part_len != expected:
                continue
            entry = recorded.get(number)
            if entry is not None and str(entry["etag"]).strip('"').upper() == etag and int(entry["size"]) == expected:
                kept[number] = (int(entry["crc"]), expected, etag)
                continue
            data = os.pread(handle.fileno(), expected, offset)
            if hashlib.md5(data, usedforsecurity=False).hexdigest().upper() == etag:
                kept[number] = (crc_of(data, 0), expected, etag)
    return kept


def _abort_quietly(bucket: oss2.Bucket, key: str, upload_id: str, not_found: type[BaseException]) -> None:
    try:
        bucket.abort_multipart_upload(key, upload_id)
    except not_found:
        pass
    except Exception as exc:  # a stale upload we cannot abort is only garbage, not a failure
        log.warning("could not abort stale multipart upload %s of %s: %s", upload_id, key, type(exc).__name__)


def upload_from_stream(bucket: oss2.Bucket, chunks: Iterator[bytes], key: str, options: TransferOptions,
                       headers: dict[str, str] | None, progress: TransferProgress | None) -> TransferResult:
    """Multipart upload from an unsized stream: at most ``parallelism`` parts in memory; a stream that
    fits in one part is a single PutObject."""
    from oss2.models import PartInfo

    started = time.monotonic()
    part_size = choose_part_size(0, options.part_size)
    url = f"oss://{bucket.bucket_name}/{key}"
    crc_of = crc64_function()
    reader = _Rechunker(chunks, part_size)
    first = reader.next_part()
    second = reader.next_part() if len(first) == part_size else b""
    if not second:
        crc = crc_of(first, 0)
        result = with_retries(lambda: bucket.put_object(key, first, headers=headers), options.retries, f"put {url}")
        _check_crc(f"put {url}", crc, result.crc)
        if progress is not None:
            progress.add(len(first))
        return TransferResult(bucket.bucket_name, key, len(first), str(crc), time.monotonic() - started, 1, False, 1)
    init = with_retries(lambda: bucket.init_multipart_upload(key, headers=headers), options.retries,
                        f"start multipart upload of {url}")
    upload_id = init.upload_id
    done: dict[int, tuple[int, int, str]] = {}
    slots = threading.Semaphore(max(1, options.parallelism))
    futures: list[Future[None]] = []

    def send(number: int, data: bytes) -> None:
        try:
            crc = crc_of(data, 0)
            context = f"upload part {number} of {url}"
            result = with_retries(lambda: bucket.upload_part(key, upload_id, number, data), options.retries, context)
            _check_crc(context, crc, result.crc)
            done[number] = (crc, len(data), result.etag)
            if progress is not None:
                progress.add(len(data))
        finally:
            slots.release()

    try:
        with ThreadPoolExecutor(max_workers=max(1, options.parallelism), thread_name_prefix="oss-part") as pool:
            number = 0
            for data in _chain_parts(first, second, reader):
                number += 1
                if number > MAX_PARTS:
                    raise OSSConfigError(f"upload {url}: the stream needs more than {MAX_PARTS} parts of {part_size} "
                                         "bytes; pass a larger part_size to the hook", code="InvalidArgument")
                slots.acquire()
                if any(f.done() and f.exception() for f in futures):
                    break
                futures.append(pool.submit(send, number, data))
            for future in futures:
                future.result()
        parts = [PartInfo(n, done[n][2]) for n in sorted(done)]
        result = with_retries(lambda: bucket.complete_multipart_upload(key, upload_id, parts), options.retries,
                              f"complete multipart upload of {url}")
    except BaseException:
        from oss2.exceptions import NoSuchUpload

        _abort_quietly(bucket, key, upload_id, NoSuchUpload)
        raise
    crc = combine_parts([(done[n][0], done[n][1]) for n in sorted(done)])
    _check_crc(f"upload {url}", crc, result.crc)
    size = sum(s for _, s, _ in done.values())
    return TransferResult(bucket.bucket_name, key, size, str(crc), time.monotonic() - started, len(done), False,
                          len(done))


def _chain_parts(first: bytes, second: bytes, reader: _Rechunker) -> Iterator[bytes]:
    yield first
    yield second
    while True:
        part = reader.next_part()
        if not part:
            return
        yield part


class _Rechunker:
    """Cuts an iterator of byte strings of any size into parts of exactly ``size`` bytes (the last shorter)."""

    def __init__(self, chunks: Iterator[bytes], size: int) -> None:
        self._chunks = chunks
        self._size = size
        self._buffer = bytearray()

    def next_part(self) -> bytes:
        while len(self._buffer) < self._size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        part = bytes(self._buffer[: self._size])
        del self._buffer[: self._size]
        return part


def iter_stream(stream: BinaryIO | Iterable[bytes], chunk_size: int) -> Iterator[bytes]:
    """Byte chunks of a binary file object (``read``) or an iterable of bytes."""
    read = getattr(stream, "read", None)
    if callable(read):
        while True:
            data = read(chunk_size)
            if not data:
                return
            yield bytes(data)
    else:
        for data in stream:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise OSSConfigError(f"upload_stream: the iterable yielded {type(data).__name__}, expected bytes",
                                     code="InvalidArgument")
            yield bytes(data)
