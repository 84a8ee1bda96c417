"""A local stand-in for the ``curlimages/curl`` image's ``curl``.

``curl.py HOST_CURL ARGS...`` runs the host's ``curl`` (its path; ``-`` when there is none), else a
Python stand-in for the options the Argo
examples use (``-s``, ``-S``, ``-f``, ``-G``, ``-L``, ``-X``, ``-H``, ``-d`` / ``--data*``,
``--data-urlencode``, ``-o``, ``-i``, ``-v``, ``--max-time``); any other option is an error naming it.
Either way, a URL for a privileged port on a loopback address (``http://127.0.0.1/``, port 80) goes
to the port the bundled ``nginx`` listens on when the pod may not bind 80 (see ``ports.py``).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.parse
import urllib.request

import ports

_DEFAULT_PORTS = {"http": 80, "https": 443}
_NO_VALUE = {"-s", "--silent", "-S", "--show-error", "-f", "--fail", "-G", "--get", "-L", "--location",
             "-i", "--include", "-v", "--verbose", "-k", "--insecure", "-sS", "-sSL", "-fsSL", "-sL", "-fs", "-sf"}
_WITH_VALUE = {"-X", "--request", "-H", "--header", "-d", "--data", "--data-raw", "--data-binary",
               "--data-urlencode", "-o", "--output", "-m", "--max-time", "--connect-timeout", "-A", "--user-agent"}


def rewrite_url(url: str) -> str:
    """``url`` with a privileged loopback port moved where a stand-in server listens for it, and
    ``localhost`` in a shared pod network replaced by the pod's own address (``ports.reach``)."""
    parsed = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
    if parsed.scheme not in _DEFAULT_PORTS or not parsed.hostname or not ports.is_loopback(parsed.hostname):
        return url
    try:
        port = parsed.port or _DEFAULT_PORTS[parsed.scheme]
    except ValueError:
        return url
    moved = ports.shifted(port)
    target = ports.reach(parsed.hostname)
    if moved == port and target == parsed.hostname:
        return url
    host = target if ":" not in target else f"[{target}]"
    netloc = (parsed.netloc.rsplit("@", 1)[0] + "@" if "@" in parsed.netloc else "") + f"{host}:{moved}"
    return urllib.parse.urlunsplit(parsed._replace(netloc=netloc))


def rewrite_args(argv: list[str]) -> list[str]:
    """The arguments with each URL rewritten (option values left alone)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip or arg.startswith("-"):
            skip = not skip and arg in _WITH_VALUE
            out.append(arg)
            continue
        out.append(rewrite_url(arg))
    return out


def fallback(argv: list[str]) -> int:
    """The Python stand-in (no host curl): GET/POST one URL, body to stdout or ``-o``."""
    method, headers, data, output, url = "", {}, [], "", ""
    silent = fail = get = include = False
    timeout = 300.0
    i = 0
    while i < len(argv):
        arg = argv[i]
        value = argv[i + 1] if arg in _WITH_VALUE and i + 1 < len(argv) else None
        if arg in _WITH_VALUE and value is None:
            sys.stderr.write(f"curl: option {arg}: requires parameter\n")
            return 2
        if arg in ("-X", "--request"):
            method = str(value)
        elif arg in ("-H", "--header"):
            name, _, val = str(value).partition(":")
            headers[name.strip()] = val.strip()
        elif arg == "--data-urlencode":
            name, eq, val = str(value).partition("=")
            data.append(f"{name}={urllib.parse.quote_plus(val)}" if eq else urllib.parse.quote_plus(name))
        elif arg in ("-d", "--data", "--data-raw", "--data-binary"):
            data.append(str(value))
        elif arg in ("-o", "--output"):
            output = str(value)
        elif arg in ("-m", "--max-time"):
            timeout = float(str(value))
        elif arg in _WITH_VALUE:
            pass
        elif arg in _NO_VALUE:
            silent = silent or "s" in arg.lstrip("-")[:3] or arg == "--silent"
            fail = fail or "f" in arg.lstrip("-")[:2] or arg == "--fail"
            get = get or arg in ("-G", "--get")
            include = include or arg in ("-i", "--include")
        elif arg.startswith("-"):
            sys.stderr.write(f"curl (local stand-in, no host curl): option {arg} is not supported; install curl on "
                             "the host for the full tool\n")
            return 2
        else:
            url = arg if "://" in arg else "http://" + arg
        i += 1 if value is None else 2
    if not url:
        sys.stderr.write("curl: no URL specified!\n")
        return 2
    body = "&".join(data).encode() if data else None
    if get and body is not None:
        url += ("&" if "?" in url else "?") + body.decode()
        body = None
    if urllib.parse.urlsplit(url).scheme not in _DEFAULT_PORTS:
        sys.stderr.write(f"curl (local stand-in): only http and https URLs are supported, got {url!r}\n")
        return 1
    request = urllib.request.Request(url, data=body, headers=headers,  # noqa: S310 - http(s) only, checked above
                                     method=method or ("POST" if body else "GET"))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - http(s) only
            status, resp_headers, content = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        if fail:
            if not silent:
                sys.stderr.write(f"curl: (22) The requested URL returned error: {exc.code}\n")
            return 22
        status, resp_headers, content = exc.code, exc.headers, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        if not silent:
            sys.stderr.write(f"curl: (7) Failed to connect: {getattr(exc, 'reason', exc)}\n")
        return 7
    if include:
        head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in resp_headers.items()) + "\r\n"
        content = head.encode() + content
    if output and output != "-":
        with open(output, "wb") as f:
            f.write(content)
    else:
        sys.stdout.buffer.write(content)
    return 0


def main(argv: list[str]) -> int:
    """``curl.py HOST_CURL ARGS...``: run the host's curl (``-`` when there is none: the stand-in)
    with loopback URLs rewritten."""
    host_curl, args = (argv[0] if argv else "-"), rewrite_args(argv[1:])
    if host_curl != "-":
        os.execv(host_curl, ["curl", *args])  # noqa: S606 - the host's curl, as the image's entrypoint
    return fallback(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
