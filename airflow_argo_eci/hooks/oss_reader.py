"""``OSSObjectReader``: a read-ahead, non-seekable file over an OSS object that never touches disk."""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow_argo_eci.crc64 import crc64_combine
from airflow_argo_eci.hooks.oss_download import READ_CHUNK, fetch_range, head
from airflow_argo_eci.hooks.oss_errors import OSSConfigError, OSSIntegrityError
from airflow_argo_eci.hooks.oss_progress import TransferProgress

if TYPE_CHECKING:
    import oss2


def memory_bound(chunk_size: int, parallelism: int) -> int:
    """Most bytes an :class:`OSSObjectReader` holds at once, for :meth:`~OSSObjectReader.iter_chunks` callers:
    ``(parallelism + 2) x chunk_size + 2 x parallelism x READ_CHUNK``.

    ``parallelism`` ranges being filled, the range handed to the consumer and the one before it
    (still held by the consumer while it asks for the next), and per connection one socket read of
    ``READ_CHUNK`` bytes plus the HTTP layer's copy of it. ``read``/``readinto`` callers stay a chunk
    below (they never hold a previous range).
    """
    return (parallelism + 2) * chunk_size + 2 * parallelism * READ_CHUNK


class OSSObjectReader(io.RawIOBase):
    """A read-only, non-seekable file over an OSS object that never touches disk.

    ``parallelism`` ranged GETs of ``chunk_size`` bytes run ahead of the consumer, so memory stays
    below :func:`memory_bound` ``= (parallelism + 2) x chunk_size + 2 x parallelism x READ_CHUNK``
    for :meth:`iter_chunks` callers, a chunk less for ``read``/``readinto`` callers. Reads are pinned
    to the object's ETag (a concurrent overwrite fails the read), and the CRC-64 of everything read is
    checked against the server's at EOF: a mismatch raises :class:`OSSIntegrityError` from the read that reaches EOF.
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
