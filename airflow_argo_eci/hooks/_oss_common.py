"""Connection settings, errors, value types, part sizing, CRC-64 and progress for the OSS hook.

Nothing here imports ``oss2`` at module import time; :func:`make_bucket` imports it on first use.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from airflow_argo_eci.errors import ArgoEciError, redact
from airflow_argo_eci.hooks._masking import mask

if TYPE_CHECKING:
    import oss2

log = logging.getLogger(__name__)

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

#: extras of an ``oss`` connection (the alibaba provider's, plus endpoint/STS/TLS/signature)
ALLOWED_EXTRAS = ("access_key_id", "access_key_secret", "region", "auth_type", "endpoint", "security_token",
                  "ca_bundle", "signature_version")
_FORM_PREFIX = "extra__oss__"
_REGION_RE = re.compile(r"^[a-z0-9-]{2,63}$")


# ---------------------------------------------------------------------------------------------- errors

class OSSError(ArgoEciError):
    """An OSS request failed (or a transfer could not complete).

    :param status: HTTP status (None without a response: connection errors, client-side failures)
    :param code: OSS error code (``NoSuchKey``, ``SignatureDoesNotMatch``...) or the client exception name
    :param request_id: OSS ``x-oss-request-id`` of the failed request, when there was one
    """

    def __init__(self, message: str, *, status: int | None = None, code: str = "", request_id: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.request_id = request_id

    @property
    def transient(self) -> bool:
        """Whether retrying may succeed (connection errors, 429, 5xx)."""
        return (self.status is None and self.code == "RequestError") or (
            self.status is not None and (self.status == 429 or self.status >= 500))


class OSSConfigError(OSSError, ValueError):
    """A bad connection or argument; the message names the field and the fix."""


class OSSIntegrityError(OSSError):
    """Data did not arrive intact: CRC-64 mismatch, short body, or the object changed during a transfer."""


class OSSNotFoundError(OSSError):
    """404: the bucket, the object or the multipart upload does not exist."""


_TRANSPORT_MODULES = ("urllib3", "requests", "http", "ssl", "socket")


def is_transport_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a connection-level failure (reset, refused, broken body, timeout, TLS record error)."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    return any((cls.__module__ or "").split(".")[0] in _TRANSPORT_MODULES
               for cls in type(exc).__mro__ if cls not in (Exception, BaseException, object))


def to_oss_error(exc: BaseException, context: str) -> OSSError:
    """The typed error for an ``oss2`` exception (or a connection failure), with ``exc`` chained."""
    if isinstance(exc, OSSError):
        return exc
    status = getattr(exc, "status", None)
    details = getattr(exc, "details", None)
    if isinstance(status, int) and status > 0 and isinstance(details, Mapping):
        code = str(getattr(exc, "code", "") or "")
        message = str(getattr(exc, "message", "") or "")[:500]
        request_id = str(getattr(exc, "request_id", "") or "")
        text = f"{context}: HTTP {status} {code}: {message}".rstrip(": ")
        if request_id:
            text += f" (request id {request_id})"
        cls: type[OSSError] = OSSNotFoundError if status == 404 else OSSError
        if status in (400, 403) and code in ("SignatureDoesNotMatch", "InvalidAccessKeyId"):
            text += "; check the connection's access_key_id / access_key_secret (and security_token for STS)"
        error = cls(redact(text), status=status, code=code, request_id=request_id)
    else:
        inner = getattr(exc, "exception", None) or exc
        name = type(exc).__name__
        code = "RequestError" if name == "RequestError" or is_transport_error(inner) else name
        detail = redact(str(inner))[:500]
        if "CERTIFICATE_VERIFY_FAILED" in detail:
            detail += "; trust the endpoint's CA with the connection extra 'ca_bundle' (a PEM file path)"
        error = OSSError(f"{context}: {type(inner).__name__}: {detail}", code=code)
    error.__cause__ = exc
    return error


# ---------------------------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class OSSConnectionSettings:
    """The parsed, validated settings of one ``oss`` connection (secrets not in ``repr``)."""

    conn_id: str
    access_key_id: str = field(repr=False)
    access_key_secret: str = field(repr=False)
    endpoint: str
    region: str | None = None
    bucket: str | None = None
    security_token: str | None = field(default=None, repr=False)
    ca_bundle: str | None = None
    signature_version: int = 1


def _config_error(conn_id: str, text: str) -> OSSConfigError:
    return OSSConfigError(f"connection {conn_id!r}: {text}", code="InvalidConnection")


def parse_oss_connection(
    conn_id: str,
    extra: Mapping[str, Any],
    *,
    schema: str | None = None,
    login: str | None = None,
    password: str | None = None,
    host: str | None = None,
    region: str | None = None,
) -> OSSConnectionSettings:
    """Validate an ``oss`` connection: the alibaba provider's extras plus ``endpoint``,
    ``security_token``, ``ca_bundle`` and ``signature_version``.

    Credentials come from the extras ``access_key_id``/``access_key_secret`` (the alibaba provider's
    layout) or else the connection's login/password. The endpoint is the ``endpoint`` extra, else the
    connection host, else ``https://oss-<region>.aliyuncs.com``. Unknown extras are rejected naming the
    allowed ones; secrets are registered with Airflow's secrets masker.
    """
    values: dict[str, Any] = {}
    for raw_key, value in extra.items():
        key = raw_key[len(_FORM_PREFIX):] if raw_key.startswith(_FORM_PREFIX) else raw_key
        if value is None or value == "":
            continue
        if key not in ALLOWED_EXTRAS:
            raise _config_error(conn_id, f"unknown extra {key!r}; allowed extras: {', '.join(sorted(ALLOWED_EXTRAS))}")
        values[key] = value
    auth_type = str(values.get("auth_type", "AK"))
    if auth_type != "AK":
        raise _config_error(conn_id, f"extra 'auth_type' {auth_type!r} is not supported; use 'AK' (access keys)")
    key_id = str(values.get("access_key_id") or login or "").strip()
    secret = str(values.get("access_key_secret") or password or "").strip()
    if not key_id or not secret:
        missing = "access_key_id" if not key_id else "access_key_secret"
        raise _config_error(conn_id, f"extra {missing!r} is missing; set extras access_key_id and "
                                     "access_key_secret (or the connection login/password)")
    token = str(values["security_token"]).strip() if values.get("security_token") else None
    region_value = region or values.get("region")
    region_text = str(region_value).strip() if region_value else None
    if region_text and not _REGION_RE.match(region_text):
        raise _config_error(conn_id, f"extra 'region' {region_text!r} is not a region id like 'cn-hangzhou'")
    endpoint = str(values.get("endpoint") or host or "").strip().rstrip("/")
    if not endpoint:
        if not region_text:
            raise _config_error(conn_id, "needs extra 'region' (e.g. cn-hangzhou) or extra 'endpoint' "
                                         "(e.g. https://oss-cn-hangzhou.aliyuncs.com)")
        endpoint = f"https://oss-{region_text}.aliyuncs.com"
    elif "://" not in endpoint:
        endpoint = f"https://{endpoint}"
    if not endpoint.startswith(("https://", "http://")):
        raise _config_error(conn_id, f"extra 'endpoint' {endpoint!r} must be an http(s) URL")
    raw_version = values.get("signature_version", 4 if region_text else 1)
    if str(raw_version).lower().lstrip("v") not in ("1", "4"):
        raise _config_error(conn_id, f"extra 'signature_version' must be 1 or 4, got {raw_version!r}")
    version = int(str(raw_version).lower().lstrip("v"))
    if version == 4 and not region_text:
        raise _config_error(conn_id, "signature_version 4 needs extra 'region' (e.g. cn-hangzhou)")
    ca_bundle = str(values["ca_bundle"]) if values.get("ca_bundle") else None
    bucket = (schema or "").strip() or None
    mask(secret)
    mask(token)
    return OSSConnectionSettings(conn_id=conn_id, access_key_id=key_id, access_key_secret=secret, endpoint=endpoint,
                                 region=region_text, bucket=bucket, security_token=token, ca_bundle=ca_bundle,
                                 signature_version=version)



def make_session(settings: OSSConnectionSettings, pool_size: int) -> oss2.Session:
    """An ``oss2.Session`` with ``pool_size`` connections; trusts ``ca_bundle`` when set (verification stays on).

    With a ``ca_bundle`` the session ignores ``REQUESTS_CA_BUNDLE``/proxy environment variables, which
    requests would otherwise let override the bundle.
    """
    import oss2

    session = oss2.Session(pool_size=max(pool_size, 1))
    if settings.ca_bundle:
        session.session.verify = settings.ca_bundle
        session.session.trust_env = False
    return session


def make_bucket(settings: OSSConnectionSettings, bucket_name: str, session: oss2.Session) -> oss2.Bucket:
    """An ``oss2.Bucket`` signing with the connection's keys (v1 or v4, STS token when set).

    oss2's own CRC checking is off: the hook checks CRC-64 itself, once per byte.
    """
    import oss2

    return oss2.Bucket(make_auth(settings), settings.endpoint, bucket_name, session=session, enable_crc=False,
                       region=settings.region)


def make_auth(settings: OSSConnectionSettings) -> Any:
    """oss2 signer for the connection: Signature V1 or V4, with the STS token when set."""
    import oss2
    from oss2.credentials import StaticCredentialsProvider

    provider = StaticCredentialsProvider(settings.access_key_id, settings.access_key_secret,
                                         settings.security_token or "")
    return oss2.ProviderAuthV4(provider) if settings.signature_version == 4 else oss2.ProviderAuth(provider)


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


@dataclass(frozen=True)
class ArtifactRef:
    """One output artifact of a workflow node, stored on OSS."""

    workflow: str
    namespace: str
    node: str
    node_id: str
    name: str
    bucket: str | None
    key: str
    endpoint: str | None = None
    archive: Literal["tar", "none"] = "tar"

    @property
    def url(self) -> str:
        """``oss://bucket/key`` (bucket empty when the connection's default applies)."""
        return f"oss://{self.bucket or ''}/{self.key}"


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


# ---------------------------------------------------------------------------------------------- CRC-64

_POLY_REFLECTED = 0xC96C5795D7870F42  # CRC-64/XZ (ECMA-182, reflected), what OSS's x-oss-hash-crc64ecma uses


def crc64_function() -> Callable[[bytes | memoryview, int], int]:
    """``crc(data, previous_crc) -> crc``: OSS's CRC-64 with crcmod (its C extension when built)."""
    import crcmod

    function: Callable[[bytes | memoryview, int], int] = crcmod.mkCrcFun(
        0x142F0E1EBA9EA3693, initCrc=0, rev=True, xorOut=0xFFFFFFFFFFFFFFFF)
    return function


def _gf2_times(matrix: list[int], vector: int) -> int:
    total = 0
    i = 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, matrix[n]) for n in range(64)]


@lru_cache(maxsize=16)
def _shift_tables(length: int) -> tuple[tuple[int, ...], ...]:
    """Byte tables of the linear map "append ``length`` zero bytes" on a CRC-64 register."""
    odd = [_POLY_REFLECTED] + [1 << n for n in range(63)]  # one zero bit
    even = _gf2_square(odd)  # two zero bits
    odd = _gf2_square(even)  # four zero bits
    result = [1 << n for n in range(64)]  # identity, as columns
    remaining = length
    while remaining:
        even = _gf2_square(odd)
        if remaining & 1:
            result = [_gf2_times(even, col) for col in result]
        remaining >>= 1
        if not remaining:
            break
        odd = _gf2_square(even)
        if remaining & 1:
            result = [_gf2_times(odd, col) for col in result]
        remaining >>= 1
    tables = []
    for byte_index in range(8):
        cols = result[8 * byte_index: 8 * byte_index + 8]
        table = [0] * 256
        for value in range(1, 256):
            low = value & -value
            table[value] = table[value ^ low] ^ cols[low.bit_length() - 1]
        tables.append(tuple(table))
    return tuple(tables)


def crc64_combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC-64 of ``A + B`` from ``crc(A)``, ``crc(B)`` and ``len(B)`` (zlib's method, with cached
    per-length byte tables so combining thousands of equal-sized parts is cheap)."""
    if length2 == 0:
        return crc1
    tables = _shift_tables(length2)
    shifted = 0
    for byte_index in range(8):
        shifted ^= tables[byte_index][(crc1 >> (8 * byte_index)) & 0xFF]
    return shifted ^ crc2


def combine_parts(parts: list[tuple[int, int]]) -> int:
    """CRC-64 of the concatenation of parts given as ``(crc, size)`` in order."""
    total = 0
    for crc, size in parts:
        total = crc64_combine(total, crc, size)
    return total


# ---------------------------------------------------------------------------------------------- progress

def human_bytes(value: float) -> str:
    """``1.2 GiB`` style."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - loop always returns


class TransferProgress:
    """Logs ``<verb> <url>: 1.2 GiB / 5.0 GiB (24%), 310.0 MiB/s, ETA 12s`` at most every ``interval``
    seconds, and once at the end. Thread-safe: parallel parts call :meth:`add`. Also usable as
    oss2's ``progress_callback(bytes_done, total)`` through :meth:`__call__`."""

    def __init__(self, verb: str, url: str, total: int | None, *, interval: float = 10.0,
                 logger: Any = None, initial: int = 0) -> None:
        self.verb = verb
        self.url = url
        self.total = total
        self.interval = interval
        self.log = logger or log
        self.done = initial
        self._initial = initial
        self._start = time.monotonic()
        self._last = self._start
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        """Record ``count`` more bytes."""
        with self._lock:
            self.done += count
            now = time.monotonic()
            if now - self._last < self.interval:
                return
            self._last = now
        self.log.info("%s", self.line())

    def __call__(self, bytes_done: int, total: int | None) -> None:
        with self._lock:
            delta = bytes_done - self.done
            self.total = total if total else self.total
        if delta > 0:
            self.add(delta)

    def line(self) -> str:
        """The current progress line."""
        elapsed = max(time.monotonic() - self._start, 1e-6)
        rate = (self.done - self._initial) / elapsed
        text = f"{self.verb} {self.url}: {human_bytes(self.done)}"
        if self.total:
            text += f" / {human_bytes(self.total)} ({100 * self.done / self.total:.0f}%)"
        text += f", {human_bytes(rate)}/s"
        if self.total and rate > 0:
            text += f", ETA {max(self.total - self.done, 0) / rate:.0f}s"
        return text

    def finish(self) -> None:
        """Log the final line."""
        self.log.info("%s", self.line())
