"""Many concurrent WATCH streams on the local API server, recording when each event arrives.

Run as a subprocess by ``bench/fanout.py --watchers N`` so that the watchers' own work does not
share the server's interpreter lock. It opens ``--count`` streams of
``/api/v1/namespaces/NS/pods?watch=1`` from ``--rv`` on one event loop, prints ``ready`` once every
stream has its response headers, and, when its stdin closes, writes
``{"arrivals": [[rv, monotonic seconds], ...] per watcher, "errors": n, "cpu_seconds": s}`` as JSON
to ``--out``. ``time.monotonic`` is the system-wide CLOCK_MONOTONIC on Linux, so the parent
compares it with the commit times it recorded in the server's process.

While the streams run, each socket read is only timestamped and kept (an ``asyncio.Protocol``);
the chunked framing and the events' resourceVersions are parsed after the run. An event's arrival
is the time of the read that brought its closing newline. Parsing while receiving would make the
measuring process compete for the two cores with the server it measures and report its own lag.

    .venv/bin/python bench/watchers.py --port P --token T --ca CERT --count 200 --rv RV --out F
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import re
import ssl
import sys
import time

_RV = re.compile(rb'"resourceVersion":"([0-9]+)"')


class Stream(asyncio.Protocol):
    """One WATCH stream: every read kept with its arrival time."""

    def __init__(self, request: bytes, connected: asyncio.Future[str | None]) -> None:
        self.request = request
        self.connected = connected
        self.reads: list[tuple[float, bytes]] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.reads.append((time.monotonic(), data))
        if not self.connected.done() and b"\r\n\r\n" in b"".join(d for _, d in self.reads):
            head = b"".join(d for _, d in self.reads).split(b"\r\n", 1)[0]
            self.connected.set_result(None if b" 200 " in head else head.decode(errors="replace"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.connected.done():
            self.connected.set_result(f"connection lost: {exc}")


def arrivals(reads: list[tuple[float, bytes]], errors: list[str]) -> list[tuple[int, float]]:
    """(resourceVersion, arrival time) of each event line in a stream's reads (HTTP/1.1 chunked)."""
    raw = b"".join(data for _, data in reads)
    ends: list[int] = []  # the offset just past each read
    total = 0
    for _, data in reads:
        total += len(data)
        ends.append(total)
    body = raw.find(b"\r\n\r\n") + 4
    out: list[tuple[int, float]] = []
    pending = b""
    pos = body
    while pos < len(raw):
        eol = raw.find(b"\r\n", pos)
        if eol < 0:
            break
        size = int(raw[pos:eol].strip() or b"0", 16)
        start = eol + 2
        if size == 0 or start + size > len(raw):
            break  # the end of the stream, or a chunk cut off when the run ended
        data = raw[start:start + size]
        line_start = 0
        while True:
            newline = data.find(b"\n", line_start)
            if newline < 0:
                break
            line = pending + data[line_start:newline]
            pending = b""
            at = reads[bisect.bisect_right(ends, start + newline)][0]
            line_start = newline + 1
            if line.startswith(b'{"type":"ERROR"'):
                errors.append(line[:200].decode(errors="replace"))
                continue
            match = _RV.search(line)
            if match:
                out.append((int(match.group(1)), at))
        pending += data[line_start:]
        pos = start + size + 2
    return out


async def run(args: argparse.Namespace) -> None:
    context = ssl.create_default_context(cafile=args.ca)
    context.check_hostname = False
    path = (f"/api/v1/namespaces/{args.namespace}/pods?watch=1&timeoutSeconds=3600"
            f"&resourceVersion={args.rv}&allowWatchBookmarks=false")
    request = (f"GET {path} HTTP/1.1\r\nHost: {args.host}\r\nAuthorization: Bearer {args.token}\r\n"
               "Accept: application/json\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    errors: list[str] = []
    streams: list[Stream] = []
    for _ in range(args.count):
        connected: asyncio.Future[str | None] = loop.create_future()
        stream = Stream(request, connected)
        try:
            await loop.create_connection(lambda s=stream: s, args.host, args.port, ssl=context)  # type: ignore[misc]
        except OSError as exc:  # counted as an error; the other streams still run
            errors.append(f"connect: {exc}")
            continue
        streams.append(stream)
    for stream in streams:
        failure = await stream.connected
        if failure:
            errors.append(failure)
    print("ready", flush=True)
    cpu_start = time.process_time()
    await loop.run_in_executor(None, sys.stdin.read)  # the parent closes our stdin
    await asyncio.sleep(0.5)  # let the last lines in flight arrive
    cpu = time.process_time() - cpu_start
    per_watcher = []
    for stream in streams:
        per_watcher.append(arrivals(stream.reads, errors))
        if stream.closed:
            errors.append("stream ended")
    with open(args.out, "w") as out:
        json.dump({"arrivals": per_watcher, "errors": len(errors), "error_samples": errors[:5],
                   "cpu_seconds": cpu}, out)
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--namespace", default="argo")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rv", required=True)
    parser.add_argument("--out", required=True)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
