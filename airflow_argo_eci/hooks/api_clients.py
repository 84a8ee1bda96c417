"""A transport's lazily made sync and async HTTP clients, the async one bound to its event loop."""

from __future__ import annotations

import asyncio
from typing import Any


class CachedClients:
    """A transport's lazily made sync client and async client; the async one belongs to the event loop
    that made it (its session can be neither used nor closed from another loop)."""

    _sync: Any = None
    _async: Any = None
    _async_loop: asyncio.AbstractEventLoop | None = None

    def _loop_client(self) -> Any:
        """The async client if the running loop made it, else None (dropping one bound to another loop)."""
        if self._async is not None and self._async_loop is not asyncio.get_running_loop():
            self._async = None
        return self._async

    def _keep_loop_client(self, client: Any) -> Any:
        """Cache ``client`` as the running loop's async client; returns it."""
        self._async, self._async_loop = client, asyncio.get_running_loop()
        return client

    async def _close_async_client(self, client: Any) -> None:
        await client.close()

    def close(self) -> None:
        """Close the sync client."""
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        """Close the async client (on another loop than the one that made it, it is only dropped)."""
        if self._async is not None:
            client, self._async = self._async, None
            if self._async_loop is asyncio.get_running_loop():
                await self._close_async_client(client)
