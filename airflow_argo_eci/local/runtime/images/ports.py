"""Privileged ports in a pod: where a stand-in server listens when it may not bind its port.

A pod's process has no capability, so in the pod's network namespace it cannot bind a port below
``net.ipv4.ip_unprivileged_port_start`` (1024 by default), e.g. nginx's 80. The bundled ``nginx``
then listens on the port plus :data:`SHIFT` (80 -> 8080), and the bundled ``curl`` sends requests
for such a port on a loopback address there. Both read the same rule from here.
"""

from __future__ import annotations

import ipaddress

#: added to a privileged port that a pod may not bind
SHIFT = 8000
_SYSCTL = "/proc/sys/net/ipv4/ip_unprivileged_port_start"


def unprivileged_start() -> int:
    """The lowest port an unprivileged process may bind in this network namespace."""
    try:
        with open(_SYSCTL) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024


def shifted(port: int) -> int:
    """Where a server stands in for ``port`` when the pod may not bind it (else ``port``)."""
    return port + SHIFT if 0 < port < unprivileged_start() else port


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (the pod's own network)."""
    host = host.strip("[]").lower()
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
