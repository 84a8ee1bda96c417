"""Readiness probes of a pod's main container, run by the runtime as the kubelet runs them.

``httpGet`` (any status from 200 to 399 passes; ``scheme: HTTPS`` without certificate checks, as the
kubelet does; ``httpHeaders``; ``host`` defaulting to the pod's address) and ``tcpSocket`` (the
connection opens) are sent from inside the pod's network namespace (:mod:`.podnetwork`), to the
port by number or by the name of one of the container's ``ports``. The first probe goes out after
``initialDelaySeconds``; a failed one is repeated after ``periodSeconds`` (at most one second here:
a laptop cluster has no reason to wait ten) until ``successThreshold`` probes in a row passed.
Once ready, the container stays ready (the runtime does not probe again).

``exec`` and ``grpc`` probes are not run: the container counts as ready after
``initialDelaySeconds``; so does any probe of a pod whose network namespace the runtime cannot enter
(it does not run as root).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from airflow_argo_eci.local.runtime.podnetwork import connect_inside
from airflow_argo_eci.local.runtime.podsecurity import SandboxError

#: the longest wait between two probes of a container that is not ready yet
MAX_PERIOD_SECONDS = 1.0
_KINDS = ("httpGet", "tcpSocket", "exec", "grpc")


@dataclass(frozen=True)
class Probe:
    """One container's readiness probe, validated."""

    kind: str
    port: int = 0
    host: str = ""
    path: str = "/"
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    initial_delay: float = 0.0
    period: float = MAX_PERIOD_SECONDS
    timeout: float = 1.0
    success_threshold: int = 1

    @property
    def runs(self) -> bool:
        """Whether the runtime sends this probe (``exec`` / ``grpc`` ones are not sent)."""
        return self.kind in ("httpGet", "tcpSocket")


def _seconds(spec: dict[str, Any], key: str, default: float, where: str, minimum: int = 0) -> float:
    value = spec.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SandboxError(f"{where}.{key}: Invalid value: {value!r}: must be an integer >= {minimum}")
    return float(value)


def _port(raw: Any, container: dict[str, Any], where: str) -> int:
    if isinstance(raw, str) and not raw.isdigit():
        for entry in container.get("ports") or []:
            if isinstance(entry, dict) and entry.get("name") == raw:
                raw = entry.get("containerPort")
                break
        else:
            raise SandboxError(f'{where}.port: Invalid value: "{raw}": no container port of that name '
                               "(name one of the container's ports, or give the number)")
    try:
        port = int(raw)
    except (TypeError, ValueError):
        raise SandboxError(f"{where}.port: Invalid value: {raw!r}: must be a port number or name") from None
    if not 0 < port < 65536:
        raise SandboxError(f"{where}.port: Invalid value: {port}: must be between 1 and 65535, inclusive")
    return port


def parse_probe(container: dict[str, Any], where: str = "container") -> Probe | None:
    """The container's ``readinessProbe`` (None without one); :class:`SandboxError` naming the field
    when it is malformed."""
    spec = container.get("readinessProbe")
    if spec is None:
        return None
    where = f"{where}.readinessProbe"
    if not isinstance(spec, dict):
        raise SandboxError(f"{where}: must be an object")
    kinds = [k for k in _KINDS if spec.get(k) is not None]
    if len(kinds) != 1:
        raise SandboxError(f"{where}: must specify exactly one handler of {', '.join(_KINDS)}, found "
                           f"{len(kinds)}")
    kind = kinds[0]
    timing = {
        "initial_delay": _seconds(spec, "initialDelaySeconds", 0.0, where),
        "period": min(MAX_PERIOD_SECONDS, _seconds(spec, "periodSeconds", 10.0, where, 1)),
        "timeout": _seconds(spec, "timeoutSeconds", 1.0, where, 1),
        "success_threshold": int(_seconds(spec, "successThreshold", 1.0, where, 1)),
    }
    handler = spec[kind]
    if kind in ("exec", "grpc"):
        return Probe(kind, **timing)  # type: ignore[arg-type]
    if not isinstance(handler, dict):
        raise SandboxError(f"{where}.{kind}: must be an object")
    port = _port(handler.get("port"), container, f"{where}.{kind}")
    host = str(handler.get("host") or "")
    if kind == "tcpSocket":
        return Probe(kind, port, host, **timing)  # type: ignore[arg-type]
    scheme = str(handler.get("scheme") or "HTTP").upper()
    if scheme not in ("HTTP", "HTTPS"):
        raise SandboxError(f'{where}.httpGet.scheme: Unsupported value: "{scheme}": supported values: "HTTP", '
                           '"HTTPS"')
    headers = []
    for i, h in enumerate(handler.get("httpHeaders") or []):
        if not isinstance(h, dict) or not h.get("name"):
            raise SandboxError(f"{where}.httpGet.httpHeaders[{i}].name: Required value")
        headers.append((str(h["name"]), str(h.get("value", ""))))
    path = str(handler.get("path") or "/")
    if not path.startswith("/"):
        path = "/" + path
    return Probe(kind, port, host, path, scheme, tuple(headers), **timing)  # type: ignore[arg-type]


def probe_once(probe: Probe, netns: int | None, address: str) -> tuple[bool, str]:
    """Send ``probe`` once to a pod at ``address`` (in namespace ``netns``): (passed, why not)."""
    host = probe.host or address
    try:
        sock = connect_inside(netns, host, probe.port, probe.timeout)
    except OSError as exc:
        return False, f"dial tcp {host}:{probe.port}: {exc}"
    with sock:
        if probe.kind == "tcpSocket":
            return True, ""
        try:
            conn: socket.socket = sock
            if probe.scheme == "HTTPS":
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE  # the kubelet does not verify a probe's certificate
                conn = context.wrap_socket(sock, server_hostname=host)
            lines = [f"GET {probe.path} HTTP/1.1", f"Host: {host}:{probe.port}", "User-Agent: kube-probe/1.30",
                     "Accept: */*", "Connection: close", *(f"{k}: {v}" for k, v in probe.headers)]
            conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            head = b""
            while b"\r\n" not in head and len(head) < 4096:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                head += chunk
        except (OSError, UnicodeError) as exc:
            return False, f"Get {probe.scheme.lower()}://{host}:{probe.port}{probe.path}: {exc}"
    parts = head.split(b"\r\n", 1)[0].split()
    code = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
    if 200 <= code < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {code}"


def wait_ready(probe: Probe, netns: int | None, address: str, stop: threading.Event, *,
               reachable: bool = True) -> bool:
    """Probe until the container is ready (True) or ``stop`` is set (False). A probe that is not
    sent (``exec``/``grpc``, or not ``reachable``: no namespace the runtime can enter) passes after
    ``initialDelaySeconds``."""
    if stop.wait(probe.initial_delay):
        return False
    if not probe.runs or not reachable:
        return True
    passed = 0
    while not stop.is_set():
        ok, _ = probe_once(probe, netns, address)
        passed = passed + 1 if ok else 0
        if passed >= probe.success_threshold:
            return True
        deadline = time.monotonic() + probe.period
        if stop.wait(max(0.0, deadline - time.monotonic())):
            return False
    return False
