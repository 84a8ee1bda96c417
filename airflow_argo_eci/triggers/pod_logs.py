"""Pod logs for the watch hub's subscribers: which pods a workflow object shows, and one
rate-bounded reader per channel.

The hub (:mod:`~airflow_argo_eci.triggers.watch_hub`) decides *when* a pod's log is worth a read
(it appeared, started or finished, as the watch shows); :class:`LogReader` bounds *how many*
reads one channel (connection, namespace) issues: a token bucket with client-go's default rest
client limits (5 per second, bursts of 10) and a few reads in flight at once. The sync client
runs in worker threads; its connection is read inside the event loop first, so no thread looks
it up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from airflow_argo_eci.workflows import workflow_nodes

log = logging.getLogger(__name__)

#: log reads per second one channel (connection, namespace) may issue, and how many at once
DEFAULT_LOG_RATE = 5.0
DEFAULT_LOG_BURST = 10
#: log reads in flight at once per channel (each runs the sync client in a worker thread)
LOG_READ_CONCURRENCY = 4
#: pod phases that have a log worth reading
LOGGED_PHASES = frozenset({"Running", "Succeeded", "Failed", "Error"})


class LogSource(Protocol):
    """What a :class:`LogReader` needs from a client: ``ArgoWorkflowsHook``'s settings and log read."""

    async def asettings(self) -> Any:
        """Read the connection once inside the event loop (the sync read then needs no lookup)."""
        ...

    def read_pod_log(
        self, pod_name: str, namespace: str | None = None, *, container: str = "main",
        since_time: str | None = None, workflow: str | None = None,
    ) -> list[tuple[str, str]]:
        """``(timestamp, line)`` pairs strictly after ``since_time``."""
        ...

    def close(self) -> None:
        """Release the sync client."""
        ...


def pod_states(obj: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """``{pod name: (node display name, node phase)}`` of every pod node of a workflow object."""
    from airflow_argo_eci.conventions import workflow_pod_name

    out: dict[str, tuple[str, str]] = {}
    for node_id, node in workflow_nodes(obj.get("status")).items():
        if node.get("type") == "Pod":
            display = str(node.get("displayName") or node.get("name") or node_id)
            out[workflow_pod_name(obj, node_id, node)] = (display, str(node.get("phase") or ""))
    return out


class LogReader:
    """Every log read of one channel: a token bucket (``rate`` per second, ``burst`` at once) and
    at most ``LOG_READ_CONCURRENCY`` reads in flight. The sync client runs in worker threads;
    its connection is read in the event loop first (``asettings``), so no thread looks it up."""

    def __init__(self, namespace: str, factory: Callable[[], Any], rate: float, burst: int) -> None:
        self.namespace = namespace
        self.factory = factory
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = asyncio.get_running_loop().time()
        self.reads = 0
        self._bucket = asyncio.Lock()
        self._slots = asyncio.Semaphore(LOG_READ_CONCURRENCY)
        self._client: LogSource | None = None
        self._client_lock = asyncio.Lock()
        self._warm = False

    async def acquire(self) -> None:
        """Wait for a token (first come, first served). Cancelling the wait takes no token."""
        loop = asyncio.get_running_loop()
        async with self._bucket:
            while True:
                now = loop.time()
                self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self.tokens) / self.rate)

    async def read(self, pod: str, since_time: str | None, workflow: str) -> list[tuple[str, str]]:
        """One log read (after :meth:`acquire`); raises what the client raises. Until one read
        has succeeded, reads run one at a time, so only one thread builds the sync client."""
        async with self._slots:
            self.reads += 1
            if self._warm and self._client is not None:
                return await self._read(self._client, pod, since_time, workflow)
            async with self._client_lock:
                if self._client is None:
                    client = self.factory()
                    await client.asettings()
                    self._client = client
                lines = await self._read(self._client, pod, since_time, workflow)
                self._warm = True
                return lines

    async def _read(self, client: LogSource, pod: str, since_time: str | None, workflow: str) -> list[tuple[str, str]]:
        return await asyncio.to_thread(client.read_pod_log, pod, self.namespace, since_time=since_time,
                                       workflow=workflow)

    def close(self) -> None:
        client, self._client = self._client, None
        self._warm = False
        if client is not None:
            try:
                client.close()
            except Exception as exc:  # closing is best effort
                log.debug("Closing the log client failed: %s", exc)
