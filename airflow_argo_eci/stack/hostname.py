"""``[core] hostname_callable`` of the stack: every service says it is ``127.0.0.1``.

The api-server fetches a running task's log from the log server at ``http://<hostname>:<port>``;
the stack's log server listens on loopback only, so the hostname recorded for a task must be the
loopback address. Kept tiny: Airflow imports it in every process.
"""

from __future__ import annotations


def loopback_hostname() -> str:
    """The address the stack's log server listens on."""
    return "127.0.0.1"
