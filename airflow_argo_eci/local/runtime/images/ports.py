"""Privileged ports in a pod: where a stand-in server listens when it may not bind its port.

A pod's process has no capability, so in the pod's network namespace it cannot bind a port below
``net.ipv4.ip_unprivileged_port_start`` (1024 by default), e.g. nginx's 80. The bundled ``nginx``
then listens on the port plus :data:`SHIFT` (80 -> 8080), and the bundled ``curl`` sends requests
for such a port on a loopback address there. Both read the same rule from here, and every
bundled server takes its listen address from :func:`listen_address`.

Pods of a workflow with daemons share one network namespace (the runtime's ``podnetwork``), where
two pods serving the same port on ``0.0.0.0`` would collide. The runtime then gives each pod its
own address in :data:`POD_IP_ENV`: bundled servers listen there, and bundled clients send what
they address to ``localhost`` (a sidecar of the same pod) there too.
"""

from __future__ import annotations

import ipaddress
import os
import socket

#: added to a privileged port that a pod may not bind
SHIFT = 8000
#: the pod's own address, set by the runtime for a pod in a network shared with other pods
POD_IP_ENV = "ARGO_ECI_LOCAL_POD_IP"
_LOCALHOST = ("localhost", "localhost.localdomain", "127.0.0.1", "::1")
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


def reach(host: str) -> str:
    """Where a bundled client connects for ``host``: the pod's own address for ``localhost`` in a
    shared network (:data:`POD_IP_ENV`), else ``host``."""
    own = os.environ.get(POD_IP_ENV, "")
    return own if own and host.strip("[]").lower() in _LOCALHOST else host


def listen_address() -> str:
    """Where a bundled server listens: the pod's own address in a shared network
    (:data:`POD_IP_ENV`); every address of the pod's own network namespace (it has loopback only);
    else (a pod on the host's network) the loopback address alone: the local cluster listens on
    nothing else."""
    own = os.environ.get(POD_IP_ENV, "")
    if own:
        return own
    names = {name for _, name in socket.if_nameindex()}
    return "0.0.0.0" if names <= {"lo"} else "127.0.0.1"  # noqa: S104 - only loopback in the pod's netns
