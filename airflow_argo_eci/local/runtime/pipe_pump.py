"""Copying a pod's output pipes into its container logs while waiting for its main process, all
in the pod's own thread.

One thread per pipe (and one more waiting for the process) is three threads per pod: at a
1,000-pod fan-out that is thousands of threads whose start-up hand-shakes and wake-ups all compete
for the GIL with the controller. A :class:`PipePump` instead waits on every pipe and on the main
process at once (``select`` over the pipes and a ``pidfd``, Linux 5.3+). Where ``pidfd_open`` is
missing it falls back to a reader thread per pipe, with the same lines in the same logs.

The rules are a kubelet's: each pipe is copied line by line (a last line without a newline still
counts; a line over :data:`MAX_LINE_BYTES` is split); stdout is also kept, up to a byte limit, as
the container's result; once the main process has ended, ``on_exit`` runs (the runtime kills
whatever the process left behind) and the pipes are drained for at most ``drain_seconds`` more;
past the ``timeout``, ``on_timeout`` runs once (the runtime kills the pod) and the wait goes on
until the process is gone.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO, Protocol

#: bytes read from a pipe at a time
READ_SIZE = 64 * 1024
#: the longest line kept whole; a longer one reaches the log in pieces (a kubelet splits at 16 KiB),
#: so a pod printing without newlines never makes the runtime hold more than this per pipe
MAX_LINE_BYTES = 1024 * 1024


class LineSink(Protocol):
    """Where a pipe's lines go (the runtime's container log writer)."""

    def line(self, raw: bytes) -> None:
        """One line as read, with its newline if it had one."""


class _Source:
    """One pipe: its stream, the log its lines go to, and optionally the kept stdout."""

    def __init__(self, stream: IO[bytes], sink: LineSink, captured: bytearray | None, limit: int,
                 truncated: list[bool]) -> None:
        self.stream = stream
        self.fd = stream.fileno()
        self.sink = sink
        self.captured = captured
        self.limit = limit
        self.truncated = truncated
        self._partial = bytearray()

    def feed(self, chunk: bytes) -> None:
        """Hand every complete line of what was read to the sink; keep the rest (at most
        :data:`MAX_LINE_BYTES`: a longer line reaches the log in pieces of that size)."""
        buf = self._partial
        scan = len(buf)  # the kept part holds no newline: search only what is new
        buf += chunk
        start = 0
        while True:
            end = buf.find(b"\n", scan)
            if end < 0:
                break
            self._emit(bytes(buf[start:end + 1]))
            start = scan = end + 1
        if start:
            del buf[:start]
        while len(buf) >= MAX_LINE_BYTES:
            self._emit(bytes(buf[:MAX_LINE_BYTES]))
            del buf[:MAX_LINE_BYTES]

    def finish(self) -> None:
        """End of the pipe: its last line, if it had no newline, then close the stream."""
        if self._partial:
            self._emit(bytes(self._partial))
            self._partial.clear()
        with contextlib.suppress(OSError):
            self.stream.close()

    def _emit(self, raw: bytes) -> None:
        self.sink.line(raw)
        if self.captured is not None:
            room = self.limit - len(self.captured)
            if len(raw) > room:
                self.truncated[0] = True
            self.captured.extend(raw[: max(0, room)])


class PipePump:
    """The pipes of one pod, copied while its main process runs (see the module docstring)."""

    def __init__(self, capture_limit: int, *, use_pidfd: bool = True) -> None:
        self.capture_limit = capture_limit
        #: wait with select over the pipes and a pidfd; False (or no pidfd here): a thread per pipe
        self.use_pidfd = use_pidfd
        self._sources: list[_Source] = []

    def add(self, stream: IO[bytes] | None, sink: LineSink, captured: bytearray | None = None,
            truncated: list[bool] | None = None) -> None:
        """Copy ``stream`` into ``sink``; with ``captured``, also keep its bytes (up to the limit;
        ``truncated[0]`` becomes True when some did not fit)."""
        if stream is not None:
            self._sources.append(_Source(stream, sink, captured, self.capture_limit,
                                         truncated if truncated is not None else [False]))

    def run(self, process: subprocess.Popen[bytes], timeout: float | None, on_timeout: Callable[[], None],
            on_exit: Callable[[], None], drain_seconds: float = 5.0) -> int:
        """Copy the pipes until ``process`` has ended and they are drained; its exit code."""
        try:
            if not self.use_pidfd:
                raise OSError("pidfd not wanted")
            pidfd = os.pidfd_open(process.pid)
        except (AttributeError, OSError):  # no pidfd on this kernel / platform
            return self._run_with_threads(process, timeout, on_timeout, on_exit, drain_seconds)
        try:
            return self._run_selecting(process, pidfd, timeout, on_timeout, on_exit, drain_seconds)
        finally:
            os.close(pidfd)

    def _run_selecting(self, process: subprocess.Popen[bytes], pidfd: int, timeout: float | None,
                       on_timeout: Callable[[], None], on_exit: Callable[[], None], drain_seconds: float) -> int:
        selector = selectors.DefaultSelector()
        open_sources: dict[int, _Source] = {}
        try:
            for source in self._sources:
                os.set_blocking(source.fd, False)
                selector.register(source.fd, selectors.EVENT_READ, source)
                open_sources[source.fd] = source
            selector.register(pidfd, selectors.EVENT_READ, None)
            deadline = None if timeout is None else time.monotonic() + timeout
            code: int | None = None
            drain_until = 0.0
            while code is None or open_sources:
                now = time.monotonic()
                if code is not None:
                    wait: float | None = drain_until - now
                    if wait is not None and wait <= 0:
                        break
                elif deadline is not None:
                    wait = deadline - now
                    if wait <= 0:
                        on_timeout()
                        deadline = None
                        continue
                else:
                    wait = None
                for key, _ in selector.select(wait):
                    source = key.data
                    if source is None:  # the main process ended
                        selector.unregister(pidfd)
                        code = process.wait()
                        on_exit()
                        drain_until = time.monotonic() + drain_seconds
                        continue
                    try:
                        chunk = os.read(source.fd, READ_SIZE)
                    except BlockingIOError:
                        continue
                    if chunk:
                        source.feed(chunk)
                    else:
                        selector.unregister(source.fd)
                        del open_sources[source.fd]
                        source.finish()
            assert code is not None
            return code
        finally:
            for source in open_sources.values():  # still open after the drain: whatever was read counts
                with contextlib.suppress(KeyError, ValueError):
                    selector.unregister(source.fd)
                source.finish()
            selector.close()

    def _run_with_threads(self, process: subprocess.Popen[bytes], timeout: float | None,
                          on_timeout: Callable[[], None], on_exit: Callable[[], None], drain_seconds: float) -> int:
        def copy(source: _Source) -> None:
            try:
                for chunk in iter(lambda: os.read(source.fd, READ_SIZE), b""):
                    source.feed(chunk)
            except OSError:
                pass
            source.finish()

        readers = [threading.Thread(target=copy, args=(source,), daemon=True) for source in self._sources]
        for reader in readers:
            reader.start()
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            on_timeout()
            code = process.wait()
        on_exit()
        for reader in readers:
            reader.join(drain_seconds)
        return code
