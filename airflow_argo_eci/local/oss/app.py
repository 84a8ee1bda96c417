"""ASGI app of the local OSS-compatible store (path-style: ``/<bucket>/<key>``), as ``oss2`` sees OSS.

Every request is Signature-V1 checked against the configured access keys; every error is OSS
error XML. Bodies stream both ways: a put goes chunk by chunk through MD5 and CRC-64/ECMA into a
temp file that is renamed into place; a get streams from the data file.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import hashlib
import logging
import os
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import anyio.to_thread
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from airflow_argo_eci.crc64 import crc64_function
from airflow_argo_eci.local.oss.errors import OSSErrorResponse, new_request_id, no_such_key
from airflow_argo_eci.local.oss.multipart import Multipart, Upload, check_part_number
from airflow_argo_eci.local.oss.signature import Keyring, verify
from airflow_argo_eci.local.oss.storage import ObjectInfo, Storage, check_bucket_name, check_key

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024
#: Request bodies are written and hashed in blocks of this size, one block in flight (see ``_receive``).
RECEIVE_CHUNK = 4 * CHUNK
#: Worker threads writing and hashing received blocks: two per upload in flight, 16 uploads at once.
BLOCK_THREADS = 32
#: Largest XML request body accepted (DeleteMultipleObjects with 1000 keys fits easily).
MAX_XML_BODY = 2 * 1024 * 1024
MAX_LIST_KEYS = 1000
META_PREFIX = "x-oss-meta-"
#: GetObject query parameters that override a response header.
RESPONSE_OVERRIDES = {
    "response-content-type": "content-type", "response-content-language": "content-language",
    "response-expires": "expires", "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition", "response-content-encoding": "content-encoding",
}
XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
DEFAULT_REGION = "cn-local"
#: Query parameters that carry a signed URL's authentication (V1 and V4), not an operation's arguments.
AUTH_PARAMS = ("OSSAccessKeyId", "Expires", "Signature", "security-token", "x-oss-signature-version",
               "x-oss-credential", "x-oss-date", "x-oss-expires", "x-oss-signature", "x-oss-additional-headers",
               "x-oss-security-token")


def _iso(ts: float) -> str:
    """OSS's ISO 8601 form: whole seconds with a literal ``.000Z`` (oss2 accepts only that)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def _short(text: str, limit: int = 200) -> str:
    """One line of at most ``limit`` characters, for the log."""
    line = text.replace("\r", " ").replace("\n", " ")
    return line if len(line) <= limit else line[:limit] + "..."


def _http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def _x(tag: str, value: object) -> str:
    return f"<{tag}>{escape(str(value))}</{tag}>"


class _Sink:
    """Writes an upload to a temp file while hashing it (MD5 for the ETag, CRC-64 for OSS).

    :meth:`store` (file write and CRC-64) and :meth:`hash` (MD5) touch disjoint state, so the two
    halves of one block may run on two threads at once; each half must see the blocks in order.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = open(path, "wb")  # closed in finish() / discard()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.crc = 0
        self._crc_of = crc64_function()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        """Store and hash ``chunk`` (both halves, on the calling thread)."""
        self.store(chunk)
        self.hash(chunk)

    def store(self, chunk: bytes) -> None:
        """Append ``chunk`` to the file and to the CRC-64 and the size."""
        self.file.write(chunk)
        self.crc = self._crc_of(chunk, self.crc)
        self.size += len(chunk)

    def hash(self, chunk: bytes) -> None:
        """Add ``chunk`` to the MD5."""
        self.md5.update(chunk)

    def finish(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


def is_uint(raw: str) -> bool:
    """Whether ``raw`` is a plain non-negative decimal (ASCII digits, at most 18 of them)."""
    return raw.isascii() and raw.isdigit() and len(raw) <= 18


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """Parse ``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` into an inclusive range, or None if invalid."""
    unit, _, spec = value.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (is_uint(first) or first == "") or not (is_uint(last) or last == ""):
        return None
    if first == "":
        if last == "" or int(last) == 0 or size == 0:
            return None
        return max(0, size - int(last)), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or end < start:
        return None
    return start, end


def _parse_http_time(value: str | None) -> float | None:
    """An HTTP date as a timestamp; None when absent or unparseable (then the condition is ignored)."""
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _etag_matches(value: str, etag: str) -> bool:
    """Whether an If-Match / If-None-Match list (quoted or bare ETags, or ``*``) names ``etag``."""
    for tag in value.split(","):
        tag = tag.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == "*" or tag.strip('"').upper() == etag.upper():
            return True
    return False


def _check_conditions(info: ObjectInfo, headers: Mapping[str, str], prefix: str = "") -> bool:
    """Evaluate the conditional headers (``if-match`` ... or ``x-oss-copy-source-if-match`` ...).

    Raises 412 ``PreconditionFailed`` (If-Match names another ETag, or the object was modified after
    If-Unmodified-Since) and returns False when the answer is 304 Not Modified (If-None-Match names
    its ETag, or it was not modified after If-Modified-Since). As in RFC 7232, a date condition is
    ignored when the matching ETag condition is present; times compare at whole seconds.
    """
    modified = int(info.mtime)
    if_match, if_none = headers.get(prefix + "if-match"), headers.get(prefix + "if-none-match")
    failed = None
    if if_match is not None:
        if not _etag_matches(if_match, info.etag):
            failed = "If-Match"
    else:
        since = _parse_http_time(headers.get(prefix + "if-unmodified-since"))
        if since is not None and modified > since:
            failed = "If-Unmodified-Since"
    if failed is not None:
        raise OSSErrorResponse(412, "PreconditionFailed",
                               "At least one of the pre-conditions you specified did not hold.",
                               Condition=prefix + failed.lower() if prefix else failed)
    if if_none is not None:
        return not _etag_matches(if_none, info.etag)
    since = _parse_http_time(headers.get(prefix + "if-modified-since"))
    return since is None or modified > since


def _forbid_overwrite(headers: Mapping[str, str]) -> bool:
    value = headers.get("x-oss-forbid-overwrite", "false").strip().lower()
    if value not in ("true", "false"):
        raise OSSErrorResponse(400, "InvalidArgument", "x-oss-forbid-overwrite must be true or false.",
                               ArgumentName="x-oss-forbid-overwrite", ArgumentValue=value)
    return value == "true"


def _not_modified(info: ObjectInfo) -> Response:
    return Response(status_code=304, headers={"etag": f'"{info.etag}"', "last-modified": _http_date(info.mtime)})


def _max_keys(params: Mapping[str, str]) -> int:
    raw = params.get("max-keys", "") or "100"
    if not is_uint(raw) or not 0 < int(raw) <= MAX_LIST_KEYS:
        raise OSSErrorResponse(400, "InvalidArgument", f"max-keys must be an integer from 1 to {MAX_LIST_KEYS}.",
                               ArgumentName="max-keys", ArgumentValue=raw)
    return int(raw)


class OSSApp:
    """The ASGI application.

    ``credentials`` maps AccessKeyId -> AccessKeySecret; ``security_tokens`` maps the ids that are
    STS temporary keys to their security token (requests with such a key must carry it, others
    must carry none); ``region`` is the region V4 signatures must be scoped to.
    """

    def __init__(self, root: Path | str, credentials: Mapping[str, str], *, owner_id: str = "local",
                 security_tokens: Mapping[str, str] | None = None, region: str = DEFAULT_REGION) -> None:
        self.keyring = Keyring(dict(credentials), dict(security_tokens or {}), region)
        self.storage = Storage(root)
        self.multipart = Multipart(self.storage)
        self.credentials = dict(credentials)
        self.region = region
        self.owner_id = owner_id
        #: threads for the halves of received blocks (two per upload in flight; idle ones cost nothing)
        self._blocks = ThreadPoolExecutor(max_workers=BLOCK_THREADS, thread_name_prefix="oss-store-block")

    def close(self) -> None:
        """Stop the block threads (the storage and multipart state are closed by their owner)."""
        self._blocks.shutdown(wait=True)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        request_id = new_request_id()
        try:
            response = await self._dispatch(request)
        except ClientDisconnect:
            return  # the client went away mid-request; its partial upload has been discarded
        except Exception as exc:  # every failure reaches the client as OSS error XML, logged as one line
            if isinstance(exc, OSSErrorResponse):
                err = exc
                level = logging.WARNING if exc.status in (400, 403) else logging.INFO
                logger.log(level, "local OSS store: %s %s rejected: %d %s: %s", request.method,
                           _short(request.url.path), exc.status, exc.code, _short(exc.message, 300))
            else:
                logger.error("local OSS store: %s %s failed: %s: %s", request.method, _short(request.url.path),
                             type(exc).__name__, _short(str(exc)))
                logger.debug("local OSS store: traceback of the failure above", exc_info=True)
                err = OSSErrorResponse(500, "InternalError", f"We encountered an internal error: {type(exc).__name__}.")
            response = err.to_response(request_id, request.headers.get("host", "127.0.0.1"),
                                       head=request.method == "HEAD")
        response.headers["x-oss-request-id"] = request_id
        response.headers["server"] = "AliyunOSS"
        await response(scope, receive, send)

    # routing ---------------------------------------------------------------------------------
    async def _dispatch(self, request: Request) -> Response:
        raw = request.scope.get("raw_path") or request.scope["path"].encode()
        path = raw.decode("ascii", "replace").split("?", 1)[0]
        bucket: str | None = None
        key = ""
        if path not in ("", "/"):
            bucket, _, key_raw = path[1:].partition("/")
            bucket = unquote(bucket)
            try:
                key = unquote(key_raw, errors="strict")
            except UnicodeDecodeError:
                raise OSSErrorResponse(400, "InvalidObjectName", "The object name is not valid UTF-8.") from None
        try:
            params_list = parse_qsl(request.scope.get("query_string", b"").decode(), keep_blank_values=True,
                                    errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise OSSErrorResponse(400, "InvalidArgument",
                                   "The query string is not valid UTF-8 / URL encoding.") from None
        params = dict(params_list)
        headers = {k.lower(): v for k, v in request.headers.items()}
        method = request.method
        verify(self.keyring, method, headers, bucket, key, params_list)
        for auth_param in AUTH_PARAMS:
            params.pop(auth_param, None)
        if bucket is None:
            if method == "GET":
                return self._list_buckets(params)
            raise OSSErrorResponse(405, "MethodNotAllowed", f"{method} is not allowed on the service.")
        if not key:
            return await self._bucket_op(request, method, bucket, params, headers)
        check_key(key)
        return await self._object_op(request, method, bucket, key, params, headers)

    async def _bucket_op(self, request: Request, method: str, bucket: str, params: dict[str, str],
                         headers: dict[str, str]) -> Response:
        if method == "PUT" and not params:
            await request.body()  # an optional CreateBucketConfiguration; storage class is not modelled
            self.storage.create_bucket(bucket)
            return Response(b"", headers={"location": f"/{bucket}"})
        if method == "DELETE" and not params:
            if self.multipart.has_uploads(bucket):
                raise OSSErrorResponse(409, "BucketNotEmpty", "The bucket has multipart uploads in progress.",
                                       BucketName=bucket)
            self.storage.delete_bucket(bucket)
            return Response(b"", status_code=204)
        if method == "GET" and params.get("list-type") == "2":
            return self._list_objects(bucket, params, v2=True)
        if method == "GET" and not set(params) - {"prefix", "delimiter", "marker", "max-keys", "encoding-type"}:
            return self._list_objects(bucket, params, v2=False)
        if method == "GET" and "uploads" in params:
            return self._list_uploads(bucket, params)
        if method == "POST" and "delete" in params:
            return await self._delete_multiple(request, bucket, params, headers)
        if method == "GET" and set(params) in ({"bucketInfo"}, {"location"}, {"acl"}):
            return self._bucket_facts(bucket, next(iter(params)))
        raise OSSErrorResponse(501, "NotImplemented", f"{method} with {sorted(params)} on a bucket is not implemented "
                               "by the local OSS store.")

    async def _object_op(self, request: Request, method: str, bucket: str, key: str, params: dict[str, str],
                         headers: dict[str, str]) -> Response:
        overrides = {name: value for name, value in params.items() if name in RESPONSE_OVERRIDES}
        rest = set(params) - set(overrides)
        if "uploadId" in params or "uploads" in params:
            return await self._multipart_op(request, method, bucket, key, params, headers)
        if method == "HEAD" and rest == {"objectMeta"}:
            info = self.storage.head(bucket, key)
            return Response(b"", headers={"etag": f'"{info.etag}"', "content-length": str(info.size),
                                          "last-modified": _http_date(info.mtime),
                                          "x-oss-hash-crc64ecma": str(info.crc64)})
        if rest or (overrides and method != "GET"):
            raise OSSErrorResponse(501, "NotImplemented", f"{method} with {sorted(params)} on an object is not "
                                   "implemented by the local OSS store.")
        if method == "PUT" and "x-oss-copy-source" in headers:
            return self._copy(bucket, key, headers)
        if method == "PUT":
            return await self._put(request, bucket, key, headers)
        if method in ("GET", "HEAD"):
            response = self._get(bucket, key, headers, head=method == "HEAD")
            for name, value in overrides.items():
                response.headers[RESPONSE_OVERRIDES[name]] = value
            return response
        if method == "DELETE":
            self.storage.delete(bucket, key)
            return Response(b"", status_code=204)
        raise OSSErrorResponse(405, "MethodNotAllowed", f"{method} is not allowed on an object.")

    # buckets ---------------------------------------------------------------------------------
    def _owner(self) -> str:
        return f"<Owner>{_x('ID', self.owner_id)}{_x('DisplayName', self.owner_id)}</Owner>"

    def _bucket_facts(self, bucket: str, which: str) -> Response:
        """GetBucketInfo / GetBucketLocation / GetBucketAcl: a private, Standard, LRS bucket here."""
        info = self.storage.head_bucket(bucket)
        location = f"oss-{self.region}"
        if which == "location":
            body = XML_HEAD + _x("LocationConstraint", location)
        elif which == "acl":
            body = (XML_HEAD + "<AccessControlPolicy>" + self._owner()
                    + "<AccessControlList><Grant>private</Grant></AccessControlList></AccessControlPolicy>")
        else:
            body = (XML_HEAD + "<BucketInfo><Bucket>" + _x("AccessMonitor", "Disabled")
                    + _x("CreationDate", _iso(info.created)) + _x("ExtranetEndpoint", "127.0.0.1")
                    + _x("IntranetEndpoint", "127.0.0.1") + _x("Location", location) + _x("StorageClass", "Standard")
                    + _x("TransferAcceleration", "Disabled") + _x("CrossRegionReplication", "Disabled")
                    + _x("DataRedundancyType", "LRS") + _x("Name", info.name) + _x("Region", self.region)
                    + self._owner() + "<AccessControlList><Grant>private</Grant></AccessControlList>"
                    + "<ServerSideEncryptionRule>" + _x("SSEAlgorithm", "None") + "</ServerSideEncryptionRule>"
                    + "</Bucket></BucketInfo>")
        return Response(body, media_type="application/xml")

    def _list_buckets(self, params: dict[str, str]) -> Response:
        prefix, marker = params.get("prefix", ""), params.get("marker", "")
        max_keys = _max_keys({"max-keys": params.get("max-keys", "") or "1000"})
        buckets, truncated = self.storage.list_buckets(prefix, marker, max_keys)
        parts = [XML_HEAD, "<ListAllMyBucketsResult>", _x("Prefix", prefix), _x("Marker", marker),
                 _x("MaxKeys", max_keys), _x("IsTruncated", str(truncated).lower())]
        if truncated:
            parts.append(_x("NextMarker", buckets[-1].name))
        parts += [self._owner(), "<Buckets>"]
        for b in buckets:
            parts.append("<Bucket>" + _x("CreationDate", _iso(b.created))
                         + _x("ExtranetEndpoint", "127.0.0.1") + _x("IntranetEndpoint", "127.0.0.1")
                         + _x("Location", f"oss-{self.region}") + _x("Name", b.name) + _x("Region", self.region)
                         + _x("StorageClass", "Standard") + "</Bucket>")
        parts.append("</Buckets></ListAllMyBucketsResult>")
        return Response("".join(parts), media_type="application/xml")

    def _list_objects(self, bucket: str, params: dict[str, str], *, v2: bool) -> Response:
        check_bucket_name(bucket)
        prefix, delimiter = params.get("prefix", ""), params.get("delimiter", "")
        max_keys = _max_keys(params)
        encoding = params.get("encoding-type", "")
        if encoding not in ("", "url"):
            raise OSSErrorResponse(400, "InvalidArgument", "encoding-type must be 'url'.", ArgumentName="encoding-type",
                                   ArgumentValue=encoding)

        def enc(s: str) -> str:
            return quote(s, safe="") if encoding else s

        if v2:
            token, start_after = params.get("continuation-token", ""), params.get("start-after", "")
            marker = token or start_after
        else:
            marker = params.get("marker", "")
        listing = self.storage.list(bucket, prefix, delimiter, marker, max_keys)
        parts = [XML_HEAD, "<ListBucketResult>", _x("Name", bucket), _x("Prefix", enc(prefix))]
        if v2:
            if token:
                parts.append(_x("ContinuationToken", enc(token)))
            if start_after:
                parts.append(_x("StartAfter", enc(start_after)))
        else:
            parts.append(_x("Marker", enc(marker)))
        parts += [_x("MaxKeys", max_keys), _x("Delimiter", enc(delimiter)),
                  _x("IsTruncated", str(listing.truncated).lower())]
        if encoding:
            parts.append(_x("EncodingType", "url"))
        if listing.truncated:
            parts.append(_x("NextContinuationToken" if v2 else "NextMarker", enc(listing.next_marker)))
        if v2:
            parts.append(_x("KeyCount", len(listing.objects) + len(listing.prefixes)))
        with_owner = not v2 or params.get("fetch-owner") == "true"
        for o in listing.objects:
            parts.append("<Contents>" + _x("Key", enc(o.key)) + _x("LastModified", _iso(o.mtime))
                         + _x("ETag", f'"{o.etag}"') + _x("Type", o.object_type) + _x("Size", o.size)
                         + _x("StorageClass", "Standard") + (self._owner() if with_owner else "")
                         + "</Contents>")
        for p in listing.prefixes:
            parts.append("<CommonPrefixes>" + _x("Prefix", enc(p)) + "</CommonPrefixes>")
        parts.append("</ListBucketResult>")
        return Response("".join(parts), media_type="application/xml")

    async def _delete_multiple(self, request: Request, bucket: str, params: dict[str, str],
                               headers: dict[str, str]) -> Response:
        root = self._parse_xml(await self._small_body(request, headers))
        objects = root.findall("Object")
        if root.tag != "Delete" or not objects:
            raise OSSErrorResponse(400, "MalformedXML", "Expected <Delete> with at least one <Object><Key>.")
        if len(objects) > MAX_LIST_KEYS:
            raise OSSErrorResponse(400, "MalformedXML", f"At most {MAX_LIST_KEYS} objects can be deleted at once.")
        quiet = (root.findtext("Quiet") or "false").strip().lower() == "true"
        encoding = params.get("encoding-type", "")
        self.storage.head_bucket(bucket)
        parts = [XML_HEAD, "<DeleteResult>"]
        if encoding == "url":
            parts.append(_x("EncodingType", "url"))
        for obj in objects:
            key = obj.findtext("Key") or ""
            check_key(key)
            self.storage.delete(bucket, key)
            if not quiet:
                parts.append("<Deleted>" + _x("Key", quote(key, safe="") if encoding else key) + "</Deleted>")
        parts.append("</DeleteResult>")
        return Response("".join(parts), media_type="application/xml")

    @staticmethod
    def _parse_xml(body: bytes) -> ElementTree.Element:
        if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
            raise OSSErrorResponse(400, "MalformedXML", "DTDs and entities are not accepted in request XML.")
        try:
            return ElementTree.fromstring(body)  # noqa: S314 - bounded size, no DTD/entities (checked above)
        except ElementTree.ParseError as exc:
            raise OSSErrorResponse(400, "MalformedXML", f"The XML you provided was not well-formed: {exc}.") from None

    async def _small_body(self, request: Request, headers: dict[str, str]) -> bytes:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_XML_BODY:
                raise OSSErrorResponse(400, "EntityTooLarge", f"The XML body exceeds {MAX_XML_BODY} bytes.")
        expected = self._expected_md5(headers)
        if expected is not None and expected != hashlib.md5(body, usedforsecurity=False).digest():
            raise OSSErrorResponse(400, "InvalidDigest",
                                   "The Content-MD5 you specified did not match what was received.")
        return body

    # objects ---------------------------------------------------------------------------------
    @staticmethod
    def _expected_md5(headers: dict[str, str]) -> bytes | None:
        value = headers.get("content-md5")
        if value is None:
            return None
        try:
            digest = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            digest = b""
        if len(digest) != 16:
            raise OSSErrorResponse(400, "InvalidDigest", "The Content-MD5 you specified is not a base64 MD5 digest.")
        return digest

    @staticmethod
    def _user_meta(headers: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in headers.items() if k.startswith(META_PREFIX)}

    async def _receive(self, request: Request, headers: dict[str, str]) -> _Sink:
        """Stream the request body into a temp file (hashing MD5 and CRC64 on the way) and check
        ``Content-MD5``; on any failure nothing is left behind.

        The server hands over socket-sized pieces (16-64 KiB); they are gathered into
        ``RECEIVE_CHUNK`` blocks. Each block goes to two worker threads at once, one writing it and
        adding it to the CRC-64, one adding it to the MD5 (hashlib and the native CRC-64 release the
        GIL, so the two run in parallel and a block costs the longer of them, not their sum), while
        the event loop already receives the next block: at most one block in flight, so blocks land
        in order and memory stays at two blocks per upload.
        """
        expected = self._expected_md5(headers)
        sink = _Sink(self.storage.new_temp_file())
        loop = asyncio.get_running_loop()
        writing: asyncio.Future[None] | None = None  # the block in flight: its file write and CRC-64
        hashing: asyncio.Future[None] | None = None  # and its MD5
        pending: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                pending.append(chunk)
                size += len(chunk)
                if size >= RECEIVE_CHUNK:
                    data, pending, size = b"".join(pending), [], 0
                    if writing is not None and hashing is not None:
                        await writing
                        await hashing
                    writing = loop.run_in_executor(self._blocks, sink.store, data)
                    hashing = loop.run_in_executor(self._blocks, sink.hash, data)
            if writing is not None and hashing is not None:
                await writing
                await hashing
                writing = None
            if size:
                await anyio.to_thread.run_sync(sink.write, b"".join(pending))
            await anyio.to_thread.run_sync(sink.finish)
            if expected is not None and expected != sink.md5.digest():
                raise OSSErrorResponse(400, "InvalidDigest", "The Content-MD5 you specified did not match what was "
                                       "received.")
        except BaseException:
            if writing is not None and not writing.done():
                writing.add_done_callback(lambda _: sink.discard())  # never close the file under a running write
            else:
                sink.discard()
            raise
        return sink

    async def _put(self, request: Request, bucket: str, key: str, headers: dict[str, str]) -> Response:
        check_bucket_name(bucket)
        for name in ("If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"):
            if name.lower() in headers:
                raise OSSErrorResponse(400, "NotImplemented", "A header you provided implies functionality that is not "
                                       "implemented.", Header=name)
        forbid = _forbid_overwrite(headers)
        self.storage.head_bucket(bucket)
        if forbid:
            self.storage.check_absent(bucket, key)  # fail before taking the body; commit checks again
        sink = await self._receive(request, headers)
        try:
            info = ObjectInfo(bucket, key, sink.size, sink.md5.hexdigest().upper(), sink.crc,
                              headers.get("content-type") or "application/octet-stream",
                              self._user_meta(headers))
            stored = await anyio.to_thread.run_sync(self.storage.commit, info, sink.path, forbid)
        except BaseException:
            sink.discard()
            raise
        return Response(b"", headers={"etag": f'"{stored.etag}"', "x-oss-hash-crc64ecma": str(stored.crc64),
                                      "content-md5": base64.b64encode(sink.md5.digest()).decode()})

    # multipart -------------------------------------------------------------------------------
    async def _multipart_op(self, request: Request, method: str, bucket: str, key: str, params: dict[str, str],
                            headers: dict[str, str]) -> Response:
        if method == "POST" and "uploads" in params:
            check_bucket_name(bucket)
            upload = self.multipart.initiate(bucket, key, headers.get("content-type") or "application/octet-stream",
                                             self._user_meta(headers))
            body = (XML_HEAD + "<InitiateMultipartUploadResult>" + _x("Bucket", bucket) + _x("Key", key)
                    + _x("UploadId", upload.upload_id) + "</InitiateMultipartUploadResult>")
            return Response(body, media_type="application/xml")
        upload = self.multipart.get(bucket, key, params.get("uploadId", ""))
        if method == "PUT" and "partNumber" in params:
            return await self._upload_part(request, upload, check_part_number(params["partNumber"]), headers)
        if method == "POST":
            return await self._complete(request, upload, headers)
        if method == "GET":
            return self._list_parts(upload, params)
        if method == "DELETE":
            self.multipart.abort(upload)
            return Response(b"", status_code=204)
        raise OSSErrorResponse(405, "MethodNotAllowed", f"{method} is not allowed on a multipart upload.")

    async def _upload_part(self, request: Request, upload: Upload, number: int, headers: dict[str, str]) -> Response:
        sink = await self._receive(request, headers)
        try:
            part = self.multipart.add_part(upload, number, sink.path, sink.size, sink.md5.hexdigest(),
                                           sink.crc)
        except BaseException:
            sink.discard()
            raise
        return Response(b"", headers={"etag": f'"{part.etag}"', "x-oss-hash-crc64ecma": str(part.crc64),
                                      "content-md5": base64.b64encode(sink.md5.digest()).decode()})

    async def _complete(self, request: Request, upload: Upload, headers: dict[str, str]) -> Response:
        body = await self._small_body(request, headers)
        wanted: list[tuple[int, str]] | None = None
        if headers.get("x-oss-complete-all", "").lower() != "yes":
            root = self._parse_xml(body)
            if root.tag != "CompleteMultipartUpload":
                raise OSSErrorResponse(400, "MalformedXML", "Expected <CompleteMultipartUpload> with <Part> elements.")
            wanted = []
            for node in root.findall("Part"):
                number, etag = node.findtext("PartNumber") or "", node.findtext("ETag") or ""
                wanted.append((check_part_number(number.strip()), etag.strip()))
        elif body:
            raise OSSErrorResponse(400, "InvalidArgument", "x-oss-complete-all: yes takes no part list in the body.",
                                   ArgumentName="x-oss-complete-all")
        stored = await anyio.to_thread.run_sync(self.multipart.complete, upload, wanted, _forbid_overwrite(headers))
        xml = (XML_HEAD + "<CompleteMultipartUploadResult>" + _x("Location", f"/{stored.bucket}/{stored.key}")
               + _x("Bucket", stored.bucket) + _x("Key", stored.key) + _x("ETag", f'"{stored.etag}"')
               + "</CompleteMultipartUploadResult>")
        return Response(xml, media_type="application/xml",
                        headers={"etag": f'"{stored.etag}"', "x-oss-hash-crc64ecma": str(stored.crc64)})

    def _list_parts(self, upload: Upload, params: dict[str, str]) -> Response:
        marker_raw = params.get("part-number-marker", "") or "0"
        max_raw = params.get("max-parts", "") or "1000"
        if not is_uint(marker_raw) or int(marker_raw) > 2**31:
            raise OSSErrorResponse(400, "InvalidArgument", "part-number-marker must be an integer.",
                                   ArgumentName="part-number-marker", ArgumentValue=marker_raw)
        if not is_uint(max_raw) or not 0 < int(max_raw) <= 1000:
            raise OSSErrorResponse(400, "InvalidArgument", "max-parts must be an integer from 1 to 1000.",
                                   ArgumentName="max-parts", ArgumentValue=max_raw)
        parts = self.multipart.parts(upload.upload_id, int(marker_raw), int(max_raw) + 1)
        truncated = len(parts) > int(max_raw)
        parts = parts[: int(max_raw)]
        xml = [XML_HEAD, "<ListPartsResult>", _x("Bucket", upload.bucket), _x("Key", upload.key),
               _x("UploadId", upload.upload_id), _x("PartNumberMarker", int(marker_raw)),
               _x("NextPartNumberMarker", parts[-1].number if parts else 0),
               _x("MaxParts", int(max_raw)), _x("IsTruncated", str(truncated).lower())]
        for p in parts:
            xml.append("<Part>" + _x("PartNumber", p.number) + _x("LastModified", _iso(p.mtime))
                       + _x("ETag", f'"{p.etag}"') + _x("HashCrc64ecma", p.crc64) + _x("Size", p.size) + "</Part>")
        xml.append("</ListPartsResult>")
        return Response("".join(xml), media_type="application/xml")

    def _list_uploads(self, bucket: str, params: dict[str, str]) -> Response:
        prefix, delimiter = params.get("prefix", ""), params.get("delimiter", "")
        key_marker, id_marker = params.get("key-marker", ""), params.get("upload-id-marker", "")
        max_raw = params.get("max-uploads", "") or "1000"
        if not is_uint(max_raw) or not 0 < int(max_raw) <= 1000:
            raise OSSErrorResponse(400, "InvalidArgument", "max-uploads must be an integer from 1 to 1000.",
                                   ArgumentName="max-uploads", ArgumentValue=max_raw)
        limit = int(max_raw)
        encoding = params.get("encoding-type", "")

        def enc(s: str) -> str:
            return quote(s, safe="") if encoding == "url" else s

        uploads: list[Upload] = []
        prefixes: list[str] = []
        truncated = False
        next_key, next_id = "", ""
        for up in self.multipart.list_uploads(bucket, prefix, key_marker, id_marker):
            rolled = None
            if delimiter:
                at = up.key.find(delimiter, len(prefix))
                if at >= 0:
                    rolled = up.key[: at + len(delimiter)]
            if rolled is not None and (rolled in prefixes or rolled <= key_marker):
                continue
            if len(uploads) + len(prefixes) >= limit:
                truncated = True
                break
            if rolled is not None:
                prefixes.append(rolled)
                next_key, next_id = rolled, ""
            else:
                uploads.append(up)
                next_key, next_id = up.key, up.upload_id
        xml = [XML_HEAD, "<ListMultipartUploadsResult>", _x("Bucket", bucket), _x("KeyMarker", enc(key_marker)),
               _x("UploadIdMarker", id_marker), _x("NextKeyMarker", enc(next_key if truncated else "")),
               _x("NextUploadIdMarker", next_id if truncated else ""), _x("Delimiter", enc(delimiter)),
               _x("Prefix", enc(prefix)), _x("MaxUploads", limit), _x("IsTruncated", str(truncated).lower())]
        if encoding == "url":
            xml.append(_x("EncodingType", "url"))
        for up in uploads:
            xml.append("<Upload>" + _x("Key", enc(up.key)) + _x("UploadId", up.upload_id)
                       + _x("StorageClass", "Standard") + _x("Initiated", _iso(up.initiated)) + "</Upload>")
        for p in prefixes:
            xml.append("<CommonPrefixes>" + _x("Prefix", enc(p)) + "</CommonPrefixes>")
        xml.append("</ListMultipartUploadsResult>")
        return Response("".join(xml), media_type="application/xml")

    def _copy(self, bucket: str, key: str, headers: dict[str, str]) -> Response:
        source = unquote(headers["x-oss-copy-source"]).split("?", 1)[0]
        src_bucket, sep, src_key = source.lstrip("/").partition("/")
        if not sep or not src_key:
            raise OSSErrorResponse(400, "InvalidArgument", "x-oss-copy-source must be /<bucket>/<key>.",
                                   ArgumentName="x-oss-copy-source", ArgumentValue=headers["x-oss-copy-source"])
        src = self.storage.head(src_bucket, src_key)
        forbid = _forbid_overwrite(headers)
        self.storage.head_bucket(bucket)
        if not _check_conditions(src, headers, "x-oss-copy-source-"):
            return _not_modified(src)
        if forbid:
            self.storage.check_absent(bucket, key)
        directive = headers.get("x-oss-metadata-directive", "COPY").upper()
        if directive not in ("COPY", "REPLACE"):
            raise OSSErrorResponse(400, "InvalidArgument", "x-oss-metadata-directive must be COPY or REPLACE.",
                                   ArgumentName="x-oss-metadata-directive", ArgumentValue=directive)
        if directive == "REPLACE":
            meta, ctype = self._user_meta(headers), headers.get("content-type") or src.content_type
        else:
            meta, ctype = src.user_meta, src.content_type
        tmp = self.storage.copy_to_temp(src)
        try:
            stored = self.storage.commit(
                ObjectInfo(bucket, key, src.size, src.etag, src.crc64, ctype, meta, object_type=src.object_type),
                tmp, forbid)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        body = (XML_HEAD + "<CopyObjectResult>" + _x("ETag", f'"{stored.etag}"')
                + _x("LastModified", _iso(stored.mtime)) + "</CopyObjectResult>")
        return Response(body, media_type="application/xml",
                        headers={"etag": f'"{stored.etag}"', "x-oss-hash-crc64ecma": str(stored.crc64)})

    def _object_headers(self, info: ObjectInfo) -> dict[str, str]:
        h = {"etag": f'"{info.etag}"', "last-modified": _http_date(info.mtime), "content-type": info.content_type,
             "x-oss-hash-crc64ecma": str(info.crc64), "x-oss-object-type": info.object_type,
             "x-oss-storage-class": "Standard", "accept-ranges": "bytes"}
        if info.object_type == "Normal":
            h["content-md5"] = base64.b64encode(bytes.fromhex(info.etag)).decode()
        h.update(info.user_meta)
        return h

    def _get(self, bucket: str, key: str, headers: dict[str, str], *, head: bool) -> Response:
        info = self.storage.head(bucket, key)
        if not _check_conditions(info, headers):
            return _not_modified(info)
        out = self._object_headers(info)
        start, length, status = 0, info.size, 200
        if not head and "range" in headers:
            rng = _parse_range(headers["range"], info.size)
            if rng is not None:
                start, length, status = rng[0], rng[1] - rng[0] + 1, 206
                out["content-range"] = f"bytes {rng[0]}-{rng[1]}/{info.size}"
            elif headers.get("x-oss-range-behavior", "").lower() == "standard":
                raise OSSErrorResponse(416, "InvalidRange", "The requested range is not satisfiable.",
                                       RangeRequested=headers["range"], ActualObjectSize=str(info.size))
        out["content-length"] = str(length)
        if head:
            return Response(b"", headers=out)
        try:
            chunks = self.storage.read_range(info, start, length)
            first = next(chunks, b"")
        except FileNotFoundError:
            raise no_such_key(key) from None  # deleted between lookup and open
        return StreamingResponse(_prepend(first, chunks), status_code=status, headers=out)


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def create_app(root: Path | str, credentials: Mapping[str, str], *, security_tokens: Mapping[str, str] | None = None,
               region: str = DEFAULT_REGION) -> OSSApp:
    """Return the local OSS store's ASGI app, keeping its data under ``root``."""
    return OSSApp(root, credentials, security_tokens=security_tokens, region=region)
