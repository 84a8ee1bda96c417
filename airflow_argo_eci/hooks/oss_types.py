"""OSS value types (object locations, object info, transfer results), the OSS size limits and the
multipart part size rule."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from airflow_argo_eci.hooks.oss_errors import OSSConfigError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB

#: OSS limits for multipart uploads
MIN_PART_SIZE = 100 * KiB
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
#: the largest object OSS stores (48.8 TiB)
MAX_OBJECT_SIZE = MAX_PARTS * MAX_PART_SIZE
#: default part size: large enough for throughput, small enough to keep memory modest
DEFAULT_PART_SIZE = 16 * MiB
DEFAULT_MULTIPART_THRESHOLD = 64 * MiB


# ---------------------------------------------------------------------------------------------- values

@dataclass(frozen=True)
class OSSLocation:
    """An object's place: bucket and key."""

    bucket: str
    key: str

    @property
    def url(self) -> str:
        """``oss://bucket/key``."""
        return f"oss://{self.bucket}/{self.key}"

    @classmethod
    def from_url(cls, url: str) -> OSSLocation:
        """Parse ``oss://bucket/key``; anything else raises :class:`OSSConfigError`."""
        if not url.startswith("oss://") or "/" not in url[6:] or not url[6:].split("/", 1)[0] \
                or not url[6:].split("/", 1)[1]:
            raise OSSConfigError(f"{url!r} is not an OSS URL; use oss://<bucket>/<key>", code="InvalidURL")
        bucket, key = url[6:].split("/", 1)
        return cls(bucket, key)


@dataclass(frozen=True)
class ObjectInfo:
    """An object's metadata as listed or headed."""

    key: str
    size: int
    last_modified: datetime
    etag: str
    crc64: str | None = None


@dataclass(frozen=True)
class TransferResult:
    """The outcome of an upload or download.

    :param parts: number of parts the object has (1 for a simple put/get)
    :param resumed: whether an earlier interrupted transfer was continued
    :param parts_transferred: parts actually sent/received by this call (fewer than ``parts`` when resumed)
    """

    bucket: str
    key: str
    size: int
    crc64: str
    seconds: float
    parts: int
    resumed: bool
    parts_transferred: int = 0

    @property
    def url(self) -> str:
        """``oss://bucket/key``."""
        return f"oss://{self.bucket}/{self.key}"


# ---------------------------------------------------------------------------------------------- part size

def choose_part_size(size: int, requested: int | None = None) -> int:
    """The multipart part size for an object of ``size`` bytes.

    Without ``requested``: :data:`DEFAULT_PART_SIZE`, grown (to a whole MiB) when the object would
    need more than 10,000 parts, so every object up to the OSS maximum of 48.8 TiB fits. A
    ``requested`` size must be within 100 KiB..5 GiB and give at most 10,000 parts, else
    :class:`OSSConfigError` names ``part_size`` and the smallest size that works.
    """
    if size < 0:
        raise OSSConfigError(f"object size must be >= 0, got {size}", code="InvalidArgument")
    if size > MAX_OBJECT_SIZE:
        raise OSSConfigError(f"object size {size} exceeds the OSS maximum of {MAX_OBJECT_SIZE} bytes (48.8 TiB)",
                             code="InvalidArgument")
    needed = max(MIN_PART_SIZE, math.ceil(size / MAX_PARTS))
    if requested is not None:
        if not MIN_PART_SIZE <= requested <= MAX_PART_SIZE:
            raise OSSConfigError(f"part_size must be between {MIN_PART_SIZE} (100 KiB) and {MAX_PART_SIZE} (5 GiB) "
                                 f"bytes, got {requested}", code="InvalidArgument")
        if requested < needed:
            raise OSSConfigError(
                f"part_size {requested} is too small for an object of {size} bytes: OSS allows at most "
                f"{MAX_PARTS} parts; use part_size >= {needed} or leave it unset to choose automatically",
                code="InvalidArgument")
        return requested
    if needed <= DEFAULT_PART_SIZE:
        return DEFAULT_PART_SIZE
    return min(MAX_PART_SIZE, math.ceil(needed / MiB) * MiB)
