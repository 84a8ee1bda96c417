"""``OSSObjectTrigger``: wait in the triggerer until an OSS object (or any object under a prefix) exists.

``oss2`` is synchronous, so every check runs the hook in a worker thread (``asyncio.to_thread``)
and the triggerer's event loop never blocks. The trigger yields exactly one
:class:`~airflow.triggers.base.TriggerEvent`::

    {"status": "success" | "error" | "timeout", "ids": ["oss://bucket/key"], "message": str}

``error`` carries the failed check's message (bad connection, access denied...): a permanent
failure does not retry silently until the deadline; transient ones (connection resets, 5xx) are
retried on the next poll.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_argo_eci.errors import WorkflowSpecError

if TYPE_CHECKING:
    from airflow_argo_eci.hooks.oss import OSSArtifactHook

CLASSPATH = "airflow_argo_eci.triggers.oss.OSSObjectTrigger"


class OSSObjectTrigger(BaseTrigger):
    """Poll OSS until ``key`` exists (with ``prefix=True``: until any object's key starts with it).

    :param key: the object key, or the key prefix with ``prefix=True``
    :param bucket_name: the bucket; None: the connection's schema
    :param prefix: treat ``key`` as a prefix
    :param oss_conn_id: the ``oss`` connection
    :param poll_interval: seconds between checks
    :param end_at: absolute deadline (UNIX timestamp, seconds); past it the trigger yields a
        ``timeout`` event. None: wait forever.
    """

    def __init__(
        self,
        *,
        key: str,
        bucket_name: str | None = None,
        prefix: bool = False,
        oss_conn_id: str = "oss_default",
        poll_interval: float = 30.0,
        end_at: float | None = None,
    ) -> None:
        super().__init__()
        for field, value in (("key", key), ("oss_conn_id", oss_conn_id)):
            if not isinstance(value, str) or not value:
                raise WorkflowSpecError(f"OSSObjectTrigger: {field} must be a non-empty string (got {value!r})")
        if bucket_name is not None and (not isinstance(bucket_name, str) or not bucket_name):
            raise WorkflowSpecError(f"OSSObjectTrigger: bucket_name must be a bucket name or None for the "
                                    f"connection's schema (got {bucket_name!r})")
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)) or not poll_interval > 0:
            raise WorkflowSpecError(
                f"OSSObjectTrigger: poll_interval must be a number of seconds > 0 (got {poll_interval!r})")
        if end_at is not None and (
            isinstance(end_at, bool) or not isinstance(end_at, (int, float)) or not math.isfinite(end_at)
        ):
            raise WorkflowSpecError(f"OSSObjectTrigger: end_at must be a UNIX timestamp in seconds or None "
                                    f"(got {end_at!r})")
        self.key = key
        self.bucket_name = bucket_name
        self.prefix = bool(prefix)
        self.oss_conn_id = oss_conn_id
        self.poll_interval = poll_interval
        self.end_at = end_at
        self._hook: OSSArtifactHook | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the keyword arguments that re-create this trigger."""
        return CLASSPATH, {
            "key": self.key,
            "bucket_name": self.bucket_name,
            "prefix": self.prefix,
            "oss_conn_id": self.oss_conn_id,
            "poll_interval": self.poll_interval,
            "end_at": self.end_at,
        }

    @property
    def url(self) -> str:
        """``oss://bucket/key`` (``<connection bucket>`` until the connection is read)."""
        return f"oss://{self.bucket_name or '<connection bucket>'}/{self.key}"

    def _check(self) -> tuple[bool, str]:
        """In a worker thread: ``(found, oss url)``."""
        if self._hook is None:
            from airflow_argo_eci.hooks.oss import OSSArtifactHook

            self._hook = OSSArtifactHook(oss_conn_id=self.oss_conn_id)
        hook = self._hook
        url = f"oss://{self.bucket_name or hook.get_bucket().bucket_name}/{self.key}"
        if self.prefix:
            found = next(iter(hook.list_objects(self.key, bucket_name=self.bucket_name, page_size=1)), None)
            return found is not None, url
        return hook.object_exists(self.key, bucket_name=self.bucket_name), url

    def _event(self, status: str, url: str, message: str) -> TriggerEvent:
        return TriggerEvent({"status": status, "ids": [url], "message": message})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Yield exactly one event: ``success`` once the object exists, ``error`` when a check fails
        permanently, ``timeout`` past ``end_at``."""
        try:
            async for event in self._poll():
                yield event
                return
        finally:
            if self._hook is not None:
                self._hook.close()  # also on cancellation: no pooled connections left behind
                self._hook = None

    async def _poll(self) -> AsyncIterator[TriggerEvent]:
        what = "an object under prefix" if self.prefix else "object"
        url = self.url
        while True:
            try:
                found, url = await asyncio.to_thread(self._check)
            except Exception as exc:
                if getattr(exc, "transient", False):
                    self.log.warning("Checking %s failed, retrying in %ss: %s", url, self.poll_interval, exc)
                    found = False
                else:
                    yield self._event("error", url, f"checking {what} {url} failed: {exc}")
                    return
            if found:
                yield self._event("success", url, f"{what[0].upper()}{what[1:]} {url} exists")
                return
            remaining = None if self.end_at is None else self.end_at - time.time()
            if remaining is not None and remaining <= 0:
                deadline = datetime.fromtimestamp(self.end_at or 0, tz=timezone.utc).isoformat(timespec="seconds")
                yield self._event("timeout", url, f"no {what} {url} by {deadline}")
                return
            self.log.info("No %s %s yet; checking again in %ss", what, url, self.poll_interval)
            await asyncio.sleep(self.poll_interval if remaining is None else min(self.poll_interval, remaining))
