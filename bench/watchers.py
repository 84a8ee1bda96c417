"""Many concurrent WATCH streams on the local API server, recording when each event arrives.

Run as a subprocess by ``bench/fanout.py --watchers N`` (so the watchers' own parsing does not
share the server's GIL; one asyncio loop, so the client's own cost stays small): it opens
``--count`` streams of ``/api/v1/namespaces/NS/pods?watch=1`` from ``--rv``, prints ``ready``
once every stream has its response headers, and, when its stdin closes, writes
``{"arrivals": [[rv, monotonic seconds], ...] per watcher, "errors": n}`` as JSON to ``--out``.
``time.monotonic`` is the system-wide CLOCK_MONOTONIC on Linux, so the parent compares it with
the commit times it recorded in the server's process.

    .venv/bin/python bench/watchers.py --port P --token T --ca CERT --count 200 --rv RV --out F
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import ssl
import sys
import time

_RV = re.compile(rb'"resourceVersion":"([0-9]+)"')


async def watch(host: str, port: int, token: str, context: ssl.SSLContext, path: str,
                arrivals: list[tuple[int, float]], connected: asyncio.Queue[str | None], errors: list[str]) -> None:
    """One stream: record (resourceVersion, arrival time) for every event line until the process ends."""
    try:
        reader, writer = await asyncio.open_connection(host, port, ssl=context, limit=16 * 1024 * 1024)
    except OSError as exc:  # counted as an error; the other streams still run
        await connected.put(f"connect: {exc}")
        return
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                 "Accept: application/json\r\n\r\n".encode())
    status = await reader.readline()
    while (await reader.readline()) not in (b"\r\n", b""):
        pass  # headers; the body is chunked
    await connected.put(None if b" 200 " in status else status.decode(errors="replace"))
    pending = b""
    while True:
        size_line = await reader.readline()
        if not size_line:
            errors.append("stream ended")
            return
        size = int(size_line.strip() or b"0", 16)
        data = await reader.readexactly(size + 2)
        now = time.monotonic()
        if size == 0:
            errors.append("stream ended")
            return
        pending += data[:-2]
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.startswith(b'{"type":"ERROR"'):
                errors.append(line[:200].decode(errors="replace"))
                continue
            match = _RV.search(line)
            if match:
                arrivals.append((int(match.group(1)), now))


async def run(args: argparse.Namespace) -> None:
    context = ssl.create_default_context(cafile=args.ca)
    context.check_hostname = False
    path = (f"/api/v1/namespaces/{args.namespace}/pods?watch=1&timeoutSeconds=3600"
            f"&resourceVersion={args.rv}&allowWatchBookmarks=false")
    per_watcher: list[list[tuple[int, float]]] = [[] for _ in range(args.count)]
    errors: list[str] = []
    connected: asyncio.Queue[str | None] = asyncio.Queue()
    tasks = [asyncio.create_task(watch(args.host, args.port, args.token, context, path, arrivals, connected, errors))
             for arrivals in per_watcher]
    for _ in tasks:
        failure = await connected.get()
        if failure:
            errors.append(failure)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # the parent closes our stdin
    await asyncio.sleep(0.5)  # let the last lines in flight arrive
    with open(args.out, "w") as out:
        json.dump({"arrivals": [list(a) for a in per_watcher], "errors": len(errors),
                   "error_samples": errors[:5]}, out)
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
