"""A local stand-in for the ``argoproj/argosay`` test images of Argo Workflows.

``argosay.py v2 ARGS...`` behaves like ``argoproj/argosay:v2`` (test/e2e/images/argosay/v2 upstream):

* ``echo``                  -> ``hello argo`` on stderr (upstream uses Go's ``println``, i.e. stderr)
* ``echo MSG``              -> ``MSG`` on stderr
* ``echo MSG FILE``         -> writes ``MSG`` (no newline added) to ``FILE``, creating its directory
* ``cat FILE...``           -> the files' content on stdout
* ``sleep DURATION``        -> sleeps a Go duration (``10s``, ``1m30s``, ``500ms``)
* ``exit [CODE]``           -> exits with ``CODE`` (0 without argument)
* ``assert_contains FILE S``-> fails unless ``FILE`` contains ``S``
* no arguments              -> same as ``echo``

Errors end like a Go panic: ``panic: <message>`` on stderr and exit code 2.

``argosay.py v1 ARGS...`` is the ``argoproj/argosay:v1`` stand-in: it prints its arguments joined by
a space on stdout, ``hello argo`` without arguments.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
USAGE = (
    "usage: argosay [assert_contains file string|cat [file...]|echo [string] [file]|sleep duration|"
    "exit [code]]"
)


class Panic(Exception):
    """An error that ends the program like a Go panic."""


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string (``time.ParseDuration`` syntax)."""
    raw = text
    sign = 1.0
    if text[:1] in "+-":
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match:
            raise Panic(f'time: invalid duration "{raw}"')
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text:
        raise Panic(f'time: invalid duration "{raw}"')
    return sign * total


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise Panic(f"open {path}: {exc.strerror.lower() if exc.strerror else exc}") from exc


def v2(args: list[str]) -> int:
    """Run the v2 command line; returns the exit code."""
    if not args:
        args = ["echo"]
    cmd, rest = args[0], args[1:]
    if cmd == "echo":
        if len(rest) == 0:
            print("hello argo", file=sys.stderr)
        elif len(rest) == 1:
            print(rest[0], file=sys.stderr)
        elif len(rest) == 2:
            target = Path(rest[1])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(rest[0])
        else:
            raise Panic("usage: argosay echo [string] [file]")
        return 0
    if cmd == "cat":
        for name in rest:
            sys.stdout.buffer.write(_read(name))
        sys.stdout.flush()
        return 0
    if cmd == "exit":
        if len(rest) == 1:
            try:
                return int(rest[0])
            except ValueError as exc:
                raise Panic(f'strconv.Atoi: parsing "{rest[0]}": invalid syntax') from exc
        return 0
    if cmd == "sleep":
        if len(rest) != 1:
            raise Panic("usage: argosay sleep duration")
        time.sleep(max(0.0, parse_duration(rest[0])))
        return 0
    if cmd == "assert_contains":
        if len(rest) != 2:
            raise Panic("usage: assert_contains data string")
        data = _read(rest[0]).decode("utf-8", errors="replace")
        if rest[1] not in data:
            raise Panic(f'expected "{rest[0]}" to contain "{rest[1]}", but was "{data}"')
        return 0
    raise Panic(USAGE)


def v1(args: list[str]) -> int:
    """Run the v1 command line; returns the exit code."""
    print(" ".join(args) if args else "hello argo")
    return 0


def main(argv: list[str]) -> int:
    """Dispatch on the version given as first argument (``v1`` or ``v2``)."""
    version, args = (argv[0], argv[1:]) if argv else ("v2", [])
    try:
        return v1(args) if version == "v1" else v2(args)
    except Panic as exc:
        print(f"panic: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
