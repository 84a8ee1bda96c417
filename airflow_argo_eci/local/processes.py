"""Whether a recorded pid is still a live process: one check for the CLI (is the server running?),
the stack (are its services running?) and the runtime (is a cgroup's runtime gone?)."""

from __future__ import annotations

import os
from pathlib import Path


def process_running(pid: int, *, count_foreign: bool = False) -> bool:
    """Whether ``pid`` is a live process: not gone and not a zombie (a ``kill -9``ed process whose
    parent has not reaped it still answers ``kill(pid, 0)``). A live process of another user counts
    only with ``count_foreign`` (it is not this user's server, but it is not gone either)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return count_foreign
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc here: kill(pid, 0) is all there is
        return True
    state = stat.rsplit(")", 1)[-1].split()[:1]
    return state not in (["Z"], ["X"], ["x"])
