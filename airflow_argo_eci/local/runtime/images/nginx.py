"""A local stand-in for the ``nginx`` image: a small static HTTP server.

``nginx.py [-g 'daemon off;'] [-c FILE] [-p PREFIX]`` serves ``/usr/share/nginx/html`` (when the
pod has that directory) or nginx's default welcome page, on port 80 of the pod's loopback -- or, when the pod may not
bind 80 (no capability: see ``ports.py``), on 8080, which the bundled ``curl`` knows. ``-v`` / ``-V``
print the version, ``-t`` tests the (ignored) configuration. ``NGINX_PORT`` overrides the port.
Each request is logged on stdout in nginx's ``combined`` format, as the image logs to
``/dev/stdout``. SIGTERM/SIGQUIT stop it.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import ports

VERSION = "nginx/1.13.12"
DOC_ROOT = "/usr/share/nginx/html"
WELCOME = b"""<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
    body {
        width: 35em;
        margin: 0 auto;
        font-family: Tahoma, Verdana, Arial, sans-serif;
    }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href="http://nginx.org/">nginx.org</a>.<br/>
Commercial support is available at
<a href="http://nginx.com/">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
"""


class Handler(SimpleHTTPRequestHandler):
    """Static files from the document root, the welcome page when there is none."""

    server_version = VERSION
    sys_version = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        root = DOC_ROOT if Path(DOC_ROOT, "index.html").is_file() else None
        self.has_root = root is not None
        super().__init__(*args, directory=root or "/nonexistent", **kwargs)

    def send_head(self) -> Any:
        if not self.has_root and self.path.split("?", 1)[0] in ("/", "/index.html"):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(WELCOME)))
            self.end_headers()
            return io.BytesIO(WELCOME)
        return super().send_head()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z")
        agent = self.headers.get("User-Agent", "-") if self.headers else "-"
        sys.stdout.write(f'{self.client_address[0]} - - [{stamp}] "{self.requestline}" {int(code)} {size} "-" '
                         f'"{agent}"\n')
        sys.stdout.flush()


def main(argv: list[str]) -> int:
    """Run the server (or answer ``-v`` / ``-t``)."""
    if "-v" in argv or "-V" in argv:
        sys.stderr.write(f"nginx version: {VERSION} (local stand-in)\n")
        return 0
    if "-t" in argv:
        sys.stderr.write("nginx: the configuration file syntax is ok (local stand-in: configuration ignored)\n")
        return 0
    wanted = int(os.environ.get("NGINX_PORT") or 80)
    port = ports.shifted(wanted)
    address = ports.listen_address()
    try:
        server = ThreadingHTTPServer((address, port), Handler)
    except OSError as exc:
        sys.stderr.write(f'nginx: [emerg] bind() to {address}:{port} failed ({exc.errno}: {exc.strerror})\n')
        return 1
    server.daemon_threads = True
    if port != wanted:
        sys.stderr.write(f"nginx (local stand-in): port {wanted} needs a privilege pods do not have; listening on "
                         f"{port}, where the bundled curl sends requests for port {wanted}\n")
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGQUIT, _stop)
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
