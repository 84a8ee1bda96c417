"""A local stand-in for busybox's ``nc`` (the ``alpine``, ``busybox`` and ``curlimages/curl`` images).

* ``nc [-v] [-w SECS] HOST PORT [-e PROG ARGS...]``: connect; stdin goes to the socket (its end
  half-closes the connection), the socket to stdout, until the peer closes (or ``-w`` seconds pass
  without data once stdin has ended); with ``-e`` PROG talks to the peer instead;
* ``nc -z [-v] [-w SECS] HOST PORT``: only check that the port accepts (exit 0, else 1);
* ``nc -l [-k] -p PORT [-s ADDR] [-e PROG ARGS...]``: listen on every address of the pod's network
  (``ports.listen_address``); each connection runs PROG with the connection as its stdin and stdout
  (``-e`` takes the rest of the arguments), or without ``-e`` is copied to stdout; ``-k`` keeps
  accepting. A port a pod may not bind moves as ``ports.shifted`` says, and a connection to such
  a port on a loopback address goes there too.

An option outside this set exits 1 with the usage message.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import ports

USAGE = """\
usage: nc [OPTIONS] HOST PORT          connect
       nc [OPTIONS] -l -p PORT [-e PROG [ARGS...]]   listen
local stand-in for busybox nc; options:
  -l        listen for an inbound connection
  -k        with -l: keep listening after a connection ends
  -p PORT   local port to listen on
  -s ADDR   local address to listen on
  -e PROG   run PROG with the connection as stdin and stdout (the remaining arguments are PROG's)
  -w SECS   timeout for connecting and for the final reads
  -z        only check that the port accepts connections
  -v        verbose
  -n        do not resolve names (accepted; addresses are used as given)
"""
#: how long stdin may still flow to the peer once the peer has stopped sending
_DRAIN_SECONDS = 1.0
_FLAGS = {"l": "listen", "k": "keep", "v": "verbose", "z": "zero", "n": "numeric"}
_VALUES = {"p": "port", "s": "source", "w": "wait", "e": "prog"}


class UsageError(ValueError):
    """Bad command line: message, then the usage, exit 1."""


@dataclass
class Options:
    """The parsed command line."""

    listen: bool = False
    keep: bool = False
    verbose: bool = False
    zero: bool = False
    numeric: bool = False
    port: str = ""
    source: str = ""
    wait: str = ""
    prog: list[str] = field(default_factory=list)
    positional: list[str] = field(default_factory=list)


def parse_args(argv: list[str]) -> Options:
    """Busybox-style options (clustered flags, attached or separate values, ``-e`` last)."""
    opts = Options()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            opts.positional.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            opts.positional.append(arg)
            continue
        j = 1
        while j < len(arg):
            letter = arg[j]
            j += 1
            if letter in _FLAGS:
                setattr(opts, _FLAGS[letter], True)
                continue
            if letter not in _VALUES:
                detail = " (UDP is not supported by the local stand-in)" if letter == "u" else ""
                raise UsageError(f"nc: invalid option -- '{letter}'{detail}")
            value = arg[j:]
            if not value:
                if i >= len(argv):
                    raise UsageError(f"nc: option requires an argument -- '{letter}'")
                value = argv[i]
                i += 1
            if letter == "e":
                opts.prog = [value, *argv[i:]]
                return opts
            setattr(opts, _VALUES[letter], value)
            break
    return opts


def _port(text: str) -> int:
    try:
        port = int(text) if text.isdigit() else socket.getservbyname(text)
    except OSError:
        raise UsageError(f"nc: bad port '{text}'") from None
    if not 0 < port < 65536:
        raise UsageError(f"nc: bad port '{text}'")
    return port


def _timeout(opts: Options) -> float | None:
    if not opts.wait:
        return None
    try:
        return float(opts.wait)
    except ValueError:
        raise UsageError(f"nc: invalid number '{opts.wait}'") from None


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def pump(conn: socket.socket, final_wait: float | None, stdin_fd: int = 0, stdout_fd: int = 1) -> None:
    """Copy ``stdin_fd`` to ``conn`` and ``conn`` to ``stdout_fd`` until the peer closes (or, once
    stdin has ended, ``final_wait`` seconds pass without data); after the peer's end, stdin still
    has up to a second to reach it (a client whose server half-closes at once still sends)."""
    stdin_done = threading.Event()

    def feed() -> None:
        try:
            while data := os.read(stdin_fd, 65536):
                conn.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_WR)
            stdin_done.set()

    threading.Thread(target=feed, daemon=True).start()
    idle_since: float | None = None
    while True:
        ready, _, _ = select.select([conn], [], [], 0.2)
        if not ready:
            if final_wait is not None and stdin_done.is_set():
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= final_wait:
                    return
            continue
        idle_since = None
        try:
            data = conn.recv(65536)
        except OSError:
            return
        if not data:
            # the peer sends no more but may still read: let stdin that is already there reach it
            stdin_done.wait(_DRAIN_SECONDS)
            return
        view = memoryview(data)
        while view:
            view = view[os.write(stdout_fd, view):]


def connect(opts: Options) -> int:
    """``nc HOST PORT`` / ``nc -z HOST PORT``."""
    if len(opts.positional) != 2:
        raise UsageError("nc: connect mode needs HOST and PORT")
    host, port_text = opts.positional
    host = ports.reach(host)
    port = _port(port_text)
    target = ports.shifted(port) if ports.is_loopback(host) else port
    timeout = _timeout(opts)
    try:
        address = socket.getaddrinfo(host, target, type=socket.SOCK_STREAM)[0][4]
    except OSError:
        _say(f"nc: bad address '{host}'")
        return 1
    if timeout is None and opts.zero:
        timeout = 10.0
    try:
        conn = socket.create_connection((host, target), timeout=timeout)
    except OSError as exc:
        reason = "Connection timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        if not opts.zero:
            _say(f"nc: can't connect to remote host ({address[0]}): {reason}")
        elif opts.verbose:
            _say(f"nc: {host} ({address[0]}:{port}): {reason}")
        return 1
    with conn:
        if opts.verbose:
            _say(f"{host} ({address[0]}:{port}) open")
        if opts.zero:
            return 0
        conn.settimeout(None)
        if opts.prog:
            return _run_prog(opts.prog, conn)
        pump(conn, timeout)
    return 0


def _run_prog(prog: list[str], conn: socket.socket) -> int:
    """``-e``: PROG with the connection as its stdin and stdout; its exit code."""
    try:
        child = subprocess.Popen(prog, stdin=conn.fileno(), stdout=conn.fileno())
    except OSError as exc:
        _say(f"nc: can't execute '{prog[0]}': {exc.strerror or exc}")
        return 1
    conn.close()
    return child.wait()


def _listen_port(opts: Options) -> int:
    if opts.port:
        return _port(opts.port)
    numeric = [p for p in opts.positional if p.isdigit()]
    if numeric:
        return _port(numeric[-1])
    raise UsageError("nc: listen mode needs -p PORT")


def listen(opts: Options) -> int:
    """``nc -l [-k] -p PORT [-e PROG ...]``."""
    wanted = _listen_port(opts)
    port = ports.shifted(wanted)
    address = opts.source or ports.listen_address()
    server = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        server.bind((address, port))
    except OSError as exc:
        _say(f"nc: bind: {exc.strerror or exc}")
        return 1
    server.listen(16)
    if opts.verbose:
        moved = f" (port {wanted} needs a privilege pods do not have)" if port != wanted else ""
        _say(f"listening on [{address}] {port} ...{moved}")
    timeout = _timeout(opts)
    children: list[subprocess.Popen[bytes]] = []
    while True:
        children = [c for c in children if c.poll() is None]
        server.settimeout(timeout if timeout is not None and not opts.keep else None)
        try:
            conn, peer = server.accept()
        except TimeoutError:
            _say("nc: timeout")
            return 1
        if opts.verbose:
            _say(f"connect to [{address}] from [{peer[0]}] {peer[1]}")
        with conn:
            if opts.prog and not opts.keep:
                server.close()
                return _run_prog(opts.prog, conn)
            if opts.prog:
                try:
                    children.append(subprocess.Popen(opts.prog, stdin=conn.fileno(), stdout=conn.fileno()))
                except OSError as exc:
                    _say(f"nc: can't execute '{opts.prog[0]}': {exc.strerror or exc}")
                continue
            pump(conn, timeout)
        if not opts.keep:
            return 0


def main(argv: list[str]) -> int:
    """Run ``nc ARGS...``."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        opts = parse_args(argv)
        if opts.listen:
            return listen(opts)
        return connect(opts)
    except UsageError as exc:
        sys.stderr.write(f"{exc}\n{USAGE}")
        return 1


def _stop(signum: int, frame: Any) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)
    sys.exit(main(sys.argv[1:]))
