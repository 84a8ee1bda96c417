"""A local stand-in for the ``influxdb`` image's ``influxd``: InfluxDB 1.x's HTTP API, in memory.

``influxd.py VERSION [ARGS...]`` serves, on port 8086 of every address of the pod's network
(``ports.listen_address``; ``INFLUXDB_HTTP_BIND_ADDRESS`` such as ``:9086`` overrides it):

* ``GET``/``HEAD /ping`` -> 204 (``?verbose=true``: 200 and the version), headers
  ``X-Influxdb-Version`` / ``X-Influxdb-Build`` / ``Request-Id`` on every answer;
* ``POST /write?db=x[&precision=s]`` with line protocol (see ``lineprotocol.py``) -> 204; 404 for an
  unknown database, 400 with InfluxDB's parse message for a bad line;
* ``GET``/``POST /query`` with ``q`` (and ``db``, ``epoch``, ``pretty``) in the query string or a
  form body -> the results of the InfluxQL subset in ``influxql.py``.

Anything else answers InfluxDB's error JSON. Each request is logged on stderr as influxd's
``[httpd]`` access log. ``influxd version`` prints the version, ``influxd config`` the (fixed)
configuration; any other arguments (``run``, ``-config FILE``) are accepted and ignored. SIGTERM
stops it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import ports
from influxql import QueryError, Store, format_times, split_statements
from lineprotocol import PRECISIONS, parse_lines

DEFAULT_PORT = 8086
DEFAULT_VERSION = "1.8.10"


class Handler(BaseHTTPRequestHandler):
    """InfluxDB 1.x's ``/ping``, ``/write`` and ``/query``."""

    protocol_version = "HTTP/1.1"
    store: Store = Store()
    version = DEFAULT_VERSION

    # ------------------------------------------------------------------ plumbing

    def send_response(self, code: int, message: str | None = None) -> None:
        """The status line and ``Date`` (influxd sends no ``Server`` header)."""
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def _send(self, code: int, body: Any = None, *, pretty: bool = False, error: str = "") -> None:
        data = b""
        if body is not None:
            text = json.dumps(body, indent=4, ensure_ascii=False) if pretty else \
                json.dumps(body, separators=(",", ":"), ensure_ascii=False)
            data = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Request-Id", self.request_id)
        self.send_header("X-Influxdb-Build", "OSS")
        self.send_header("X-Influxdb-Version", self.version)
        if error:
            self.send_header("X-Influxdb-Error", " ".join(error.splitlines()))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.sent = (code, len(data))

    def _error(self, code: int, message: str) -> None:
        self._send(code, {"error": message}, error=message)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _params(self, body: bytes) -> dict[str, str]:
        """Query-string parameters, overridden by a form body's (as Go's ``FormValue``)."""
        params = {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query,
                                                             keep_blank_values=True).items()}
        if body and "application/x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
            params.update({k: v[0] for k, v in urllib.parse.parse_qs(body.decode(errors="replace"),
                                                                     keep_blank_values=True).items()})
        return params

    def _handle(self) -> None:
        self.request_id = str(uuid.uuid1())
        self.sent = (0, 0)
        started = time.monotonic()
        route = urllib.parse.urlsplit(self.path).path.rstrip("/") or "/"
        try:
            body = self._body() if self.command in ("POST", "PUT") else b""
            if route == "/ping" and self.command in ("GET", "HEAD"):
                self._ping()
            elif route == "/write" and self.command == "POST":
                self._write(body)
            elif route == "/query" and self.command in ("GET", "POST"):
                self._query(body)
            elif self.command == "OPTIONS":
                self._send(204)
            elif route in ("/ping", "/write", "/query"):
                self._error(405, "Method Not Allowed")
            else:
                self._error(404, "404 page not found")
        finally:
            self._log(started)

    def _log(self, started: float) -> None:
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z")
        agent = self.headers.get("User-Agent", "") if self.headers else ""
        code, size = self.sent
        sys.stderr.write(f'[httpd] {self.client_address[0]} - - [{stamp}] "{self.command} {self.path} '
                         f'{self.request_version}" {code} {size} "-" "{agent}" {self.request_id} '
                         f"{int((time.monotonic() - started) * 1e6)}\n")
        sys.stderr.flush()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = _handle

    def log_message(self, format: str, *args: Any) -> None:
        return

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        return

    # ------------------------------------------------------------------ routes

    def _ping(self) -> None:
        verbose = self._params(b"").get("verbose", "")
        if verbose not in ("", "0", "false"):
            self._send(200, {"version": self.version})
        else:
            self._send(204)

    def _write(self, body: bytes) -> None:
        params = self._params(b"")
        db = params.get("db", "")
        if not db:
            return self._error(400, "database is required")
        if db not in self.store.databases:
            return self._error(404, f"database not found: {json.dumps(db)}")
        precision = params.get("precision", "")
        if precision not in PRECISIONS:
            precision = ""
        points, failed = parse_lines(body.decode(errors="replace"), time.time_ns(), precision)
        if failed and not points:
            return self._error(400, "\n".join(failed))
        try:
            conflict, dropped = self.store.write(db, points)
        except KeyError:
            return self._error(404, f"database not found: {json.dumps(db)}")
        if failed or conflict:
            return self._error(400, f"partial write: {chr(10).join([*failed, conflict] if conflict else failed)} "
                                    f"dropped={dropped}")
        self._send(204)

    def _query(self, body: bytes) -> None:
        params = self._params(body)
        text = params.get("q", "").strip()
        if not text:
            return self._error(400, 'missing required parameter "q"')
        try:
            plans = [self.store.plan(statement) for statement in split_statements(text)]
        except QueryError as exc:
            return self._error(400, f"error parsing query: {exc}")
        if not plans:
            return self._error(400, f"error parsing query: found EOF, expected {'SELECT'} at line 1, char 1")
        results = []
        for index, plan in enumerate(plans):
            result = {"statement_id": index, **plan(params.get("db", ""))}
            format_times(result, params.get("epoch", "").strip(), PRECISIONS)
            results.append(result)
        self._send(200, {"results": results}, pretty=params.get("pretty") == "true")


def bind_address() -> tuple[str, int]:
    """``(address, port)`` to listen on: ``INFLUXDB_HTTP_BIND_ADDRESS`` (``[host]:port``) or
    every pod address on 8086 (a privileged port moves as ``ports.shifted`` says)."""
    configured = os.environ.get("INFLUXDB_HTTP_BIND_ADDRESS", "").strip()
    host, _, port = configured.rpartition(":") if configured else ("", "", "")
    wanted = int(port) if port.isdigit() else DEFAULT_PORT
    return (host.strip("[]") or ports.listen_address()), ports.shifted(wanted)


def version_of(tag: str) -> str:
    """The InfluxDB version an image tag stands for (a 1.x tag, else the last 1.x release)."""
    return tag if tag[:2] == "1." and tag.replace(".", "").isdigit() else DEFAULT_VERSION


def main(argv: list[str]) -> int:
    """``influxd.py VERSION [version | run | -config FILE | ...]``."""
    version = version_of(argv[0] if argv else "")
    args = argv[1:]
    if args[:1] == ["version"] or args[:1] in (["-version"], ["--version"]):
        sys.stdout.write(f"InfluxDB v{version} (git: local stand-in)\n")
        return 0
    if args[:1] == ["config"]:
        sys.stdout.write(f'[http]\n  enabled = true\n  bind-address = ":{DEFAULT_PORT}"\n'
                         "# local stand-in: data is kept in memory, no other settings\n")
        return 0
    if args[:1] in (["help"], ["-h"], ["--help"]):
        sys.stdout.write("Usage: influxd [run] [-config FILE] | version | config  (local stand-in: "
                         "InfluxDB 1.x's HTTP API on port 8086, data in memory)\n")
        return 0
    Handler.version = version
    address, port = bind_address()
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sys.stderr.write(f"[I] {now} InfluxDB starting, version {version}, branch local, commit stand-in\n")
    if args:
        sys.stderr.write(f"[I] {now} arguments {' '.join(args)!r} ignored: the local stand-in keeps its data in "
                         "memory and takes no configuration\n")
    try:
        server = ThreadingHTTPServer((address, port), Handler)
    except OSError as exc:
        sys.stderr.write(f"run: open server: open service: listen tcp {address}:{port}: bind: {exc.strerror}\n")
        return 1
    server.daemon_threads = True
    sys.stderr.write(f"[httpd] {now} Listening on HTTP: {address}:{port}\n")
    sys.stderr.flush()
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except SystemExit:
        pass
    finally:
        server.server_close()
    return 0


def _stop(signum: int, frame: Any) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
