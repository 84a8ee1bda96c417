"""The OSS hook's transfer engines, on oss2's primitives: resumable parallel multipart upload,
resumable parallel ranged download, multipart upload from a stream, and a read-ahead reader.

Integrity: every part's CRC-64 is computed once, locally, compared with the server's
``x-oss-hash-crc64ecma`` where the server sends one per request (UploadPart, PutObject), and the
part CRCs are combined (:func:`~._oss_common.crc64_combine`) into the object's CRC-64, which must
equal the server's for the whole object.

Checkpoints (one file per transfer in the checkpoint directory, mode 0600) are a JSON header line
followed by one line per finished part, appended as parts finish, so a killed process loses at most
the parts in flight. For uploads the server's ListParts is the truth: a part the checkpoint does not
know (the process died between the server's answer and the append) is kept when its CRC equals the
local file's range.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from airflow_argo_eci.hooks._oss_common import (
    MAX_PARTS,
    MiB,
    OSSConfigError,
    OSSError,
    OSSIntegrityError,
    OSSNotFoundError,
    TransferProgress,
    TransferResult,
    choose_part_size,
    combine_parts,
    crc64_combine,
    crc64_function,
    is_transport_error,
    to_oss_error,
)

if TYPE_CHECKING:
    import oss2

log = logging.getLogger(__name__)

READ_CHUNK = 1 * MiB


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth retrying: a dropped/refused connection, a timeout, 429 or 5xx."""
    if isinstance(exc, OSSIntegrityError):
        return False
    if isinstance(exc, OSSError):
        return exc.transient
    status = getattr(exc, "status", None)
    if isinstance(status, int) and hasattr(exc, "details"):
        return status == -2 or status == 429 or status >= 500  # oss2: -2 = RequestError (no response)
    return is_transport_error(exc)


def with_retries(call: Callable[[], Any], retries: int, context: str) -> Any:
    """``call()``, retried on transient failures up to ``retries`` times with exponential backoff;
    the final failure is raised as an :class:`OSSError`."""
    attempt = 0
    while True:
        try:
            return call()
        except Exception as exc:
            if attempt >= retries or not is_transient(exc):
                raise to_oss_error(exc, context) from exc
            attempt += 1
            delay = min(0.2 * 2 ** (attempt - 1), 5.0)
            log.info("%s failed (%s), retrying in %.1fs (attempt %d of %d)", context, type(exc).__name__, delay,
                     attempt, retries)
            time.sleep(delay)


# ---------------------------------------------------------------------------------------------- checkpoints

class Checkpoint:
    """A header plus an append-only log of finished parts ``{"n": .., "crc": .., "size": .., "etag": ..}``."""

    def __init__(self, directory: Path, kind: str, identity: list[str]) -> None:
        digest = hashlib.sha256(json.dumps([kind, *identity]).encode()).hexdigest()[:40]
        self.path = directory / f"{digest}.{kind}"
        self._lock = threading.Lock()
        self._file: Any = None

    def load(self) -> tuple[dict[str, Any], dict[int, dict[str, Any]]] | None:
        """The header and the parts recorded so far, or None (absent or unreadable)."""
        try:
            lines = self.path.read_text().splitlines()
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        try:
            header = json.loads(lines[0])
        except (IndexError, ValueError):
            return None
        parts: dict[int, dict[str, Any]] = {}
        for line in lines[1:]:
            try:
                entry = json.loads(line)
                parts[int(entry["n"])] = entry
            except (ValueError, KeyError, TypeError):
                break  # a torn last line: the part is simply not known
        return (header, parts) if isinstance(header, dict) else None

    def start(self, header: dict[str, Any], parts: Iterable[dict[str, Any]] = ()) -> None:
        """Write a fresh checkpoint (atomically) and open it for appending."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(header) + "\n")
            for entry in parts:
                handle.write(json.dumps(entry) + "\n")
        os.replace(tmp, self.path)
        self._file = open(self.path, "a")  # kept open for appends, closed in close()

    def record(self, entry: dict[str, Any]) -> None:
        """Append one finished part (flushed to the OS at once)."""
        with self._lock:
            if self._file is not None:
                self._file.write(json.dumps(entry) + "\n")
                self._file.flush()

    def close(self) -> None:
        """Close the append handle (the file stays for a later resume)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def remove(self) -> None:
        """Close and delete the checkpoint."""
        self.close()
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class TransferOptions:
    """Knobs shared by the engines."""

    part_size: int | None
    parallelism: int
    checkpoint_dir: Path
    retries: int
    progress_interval: float
    logger: Any  # logging.Logger or Airflow's structlog logger


def _run_parallel(items: list[int], work: Callable[[int], None], parallelism: int) -> None:
    """Run ``work(item)`` for every item on ``parallelism`` threads; the first failure cancels the rest, is raised."""
    if not items:
        return
    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(items))), thread_name_prefix="oss-part") as pool:
        futures = [pool.submit(work, item) for item in items]
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f.done() and not f.cancelled() and f.exception() is not None), None)
        if failed is not None:
            for future in futures:
                future.cancel()
            wait(futures)
            error = failed.exception()
            assert error is not None
            raise error


# ---------------------------------------------------------------------------------------------- upload

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
        _run_parallel(todo, send, options.parallelism)
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


# ---------------------------------------------------------------------------------------------- download

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
        _run_parallel(todo, receive, options.parallelism)
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


# ---------------------------------------------------------------------------------------------- streaming reader

class OSSObjectReader(io.RawIOBase):
    """A read-only, non-seekable file over an OSS object that never touches disk.

    ``parallelism`` ranged GETs of ``chunk_size`` bytes run ahead of the consumer, so memory stays
    below ``(parallelism + 1) x chunk_size`` for ``read``/``readinto`` callers (the ranges ahead plus
    the one being consumed), and ``(parallelism + 2) x chunk_size`` for :meth:`iter_chunks` callers
    (who still hold the previous chunk while asking for the next), plus about 1 MiB of socket
    buffers per connection. Reads are pinned to the object's ETag (a concurrent
    overwrite fails the read), and the CRC-64 of everything read is checked against the server's at
    EOF: a mismatch raises :class:`OSSIntegrityError` from the read that reaches EOF.
    """

    def __init__(self, bucket: oss2.Bucket, key: str, *, chunk_size: int, parallelism: int, retries: int,
                 progress: TransferProgress | None = None) -> None:
        super().__init__()
        if chunk_size < 1 or parallelism < 1:
            raise OSSConfigError("open_reader: chunk_size and parallelism must be >= 1", code="InvalidArgument")
        self.bucket = bucket
        self.key = key
        self.chunk_size = chunk_size
        self.parallelism = parallelism
        self.retries = retries
        self.obj = head(bucket, key, retries)
        self.size = self.obj.size
        self._progress = progress
        self._pool = ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="oss-read")
        self._pending: deque[Future[tuple[bytearray, int]]] = deque()
        self._next = 0
        self._buffer = memoryview(b"")
        self._chunk = bytearray()
        self._crc = 0
        self._position = 0
        self._verified = False
        self._fill()

    @property
    def url(self) -> str:
        """``oss://bucket/key``."""
        return f"oss://{self.bucket.bucket_name}/{self.key}"

    def readable(self) -> bool:
        return True

    def _fetch(self, start: int, end: int) -> tuple[bytearray, int]:
        buffer = bytearray(end - start + 1)

        def sink(offset: int, chunk: bytes) -> None:
            buffer[offset - start: offset - start + len(chunk)] = chunk

        crc = fetch_range(self.bucket, self.key, self.obj, start, end, self.retries, sink, self._progress)
        return buffer, crc  # no copy: the range is held once

    def _fill(self) -> None:
        while len(self._pending) < self.parallelism and self._next < self.size:
            end = min(self._next + self.chunk_size, self.size) - 1
            self._pending.append(self._pool.submit(self._fetch, self._next, end))
            self._next = end + 1

    def _next_chunk(self) -> bool:
        """Load the next range into the buffer; False at EOF (after verifying the CRC)."""
        if not self._pending:
            self._verify()
            return False
        data, crc = self._pending.popleft().result()
        self._crc = crc64_combine(self._crc, crc, len(data))
        self._chunk = data
        self._buffer = memoryview(data)
        self._fill()
        return True

    def _verify(self) -> None:
        if self._verified:
            return
        self._verified = True
        if self.obj.crc64 is not None and self._crc != self.obj.crc64:
            raise OSSIntegrityError(f"read {self.url}: CRC-64 of the bytes read is {self._crc}, OSS says "
                                    f"{self.obj.crc64}; the data is corrupt", code="InconsistentError")
        if self._progress is not None:
            self._progress.finish()

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the object; 0 at EOF."""
        if self.closed:
            raise ValueError("I/O operation on closed OSS reader")
        target = memoryview(buffer).cast("B")
        while not len(self._buffer):
            if not self._next_chunk():
                return 0
        count = min(len(target), len(self._buffer))
        target[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        self._position += count
        return count

    def iter_chunks(self) -> Iterator[bytes | bytearray]:
        """The rest of the object as chunks of up to ``chunk_size`` bytes (the read-ahead buffers
        themselves, no copy: use each before asking for the next)."""
        if len(self._buffer):
            rest = bytes(self._buffer)
            self._buffer = memoryview(b"")
            self._position += len(rest)
            yield rest
        while self._next_chunk():
            chunk, self._chunk = self._chunk, bytearray()
            self._buffer = memoryview(b"")
            self._position += len(chunk)
            yield chunk
            del chunk  # do not pin the previous range while the next one is awaited

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        """Stop the read-ahead and release the connections' threads."""
        if not self.closed:
            for future in self._pending:
                future.cancel()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pending.clear()
            self._buffer = memoryview(b"")
        super().close()
