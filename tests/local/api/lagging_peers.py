"""Two stores on one database, as the API server's and the node process's, tied by PeerLinks whose
wake-ups never come: the node store hands the API store's commits to its listeners only when a test
calls ``node.follow()`` (a follower that lags behind, as a busy node process's does)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from airflow_argo_eci.local.api.store import PeerLink, Store


@contextmanager
def lagging_peers(db: Path) -> Iterator[tuple[Store, Store]]:
    """``(api, node)`` on ``db``; both are closed on exit."""
    dead, silent = os.pipe(), os.pipe()  # nothing reads the one, nothing writes the other
    api = Store(db, peer=PeerLink(wake_fd=silent[0], notify_fd=dead[1]))
    node = Store(db, peer=PeerLink(wake_fd=silent[0], notify_fd=dead[1]))
    try:
        yield api, node
    finally:
        node.close()
        api.close()
        for fd in (*dead, *silent):
            os.close(fd)
