"""TCP ports on 127.0.0.1 for the stack's services.

A service is started with a port chosen beforehand, and binds it seconds later (Airflow's API server
takes a while to import). A port the kernel handed out (``bind`` to port 0) could meanwhile be handed
out again, to a listener or as the local end of an outgoing connection, and the service would fail
with "address already in use". :func:`free_port` therefore picks below the kernel's ephemeral range,
where the kernel never hands ports out by itself.
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

#: where Linux keeps the range it picks ephemeral ports from
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: the lowest port :func:`free_port` picks (well above the registered services most machines run)
LOWEST = 20000


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range (Linux's default when it cannot be read)."""
    try:
        low, high = (int(part) for part in EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def port_in_use(port: int) -> bool:
    """Whether 127.0.0.1:``port`` cannot be bound now."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def free_port(attempts: int = 200) -> int:
    """A port free on 127.0.0.1 now, below the ephemeral range when there is room there (else one
    the kernel picks)."""
    low, _ = ephemeral_range()
    if low - LOWEST >= 1000:
        for _ in range(attempts):
            port = LOWEST + secrets.randbelow(low - LOWEST)
            if not port_in_use(port):
                return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        chosen: int = s.getsockname()[1]
        return chosen
