"""OSS Signature V1 verification (``Authorization: OSS <AccessKeyId>:<Signature>`` and signed URLs).

The string to sign is ``VERB \\n Content-MD5 \\n Content-Type \\n Date \\n`` followed by the
canonicalized ``x-oss-*`` headers (lower-cased, sorted, ``name:value`` lines) and the canonicalized
resource ``/bucket/key`` (or ``/`` for service calls) with the sub-resources of the query, sorted.
The signature is base64(HMAC-SHA1(secret, string)).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

from airflow_argo_eci.local.oss.errors import OSSError

#: Query parameters OSS treats as sub-resources: they take part in the canonicalized resource.
SUBRESOURCES = frozenset({
    "acl", "uploads", "uploadId", "partNumber", "delete", "location", "logging", "website",
    "lifecycle", "referer", "cors", "append", "position", "security-token", "objectMeta", "restore",
    "symlink", "tagging", "stat", "bucketInfo", "qos", "live", "status", "vod", "startTime",
    "endTime", "comp", "x-oss-process", "callback", "callback-var", "encryption", "versions",
    "versioning", "versionId", "policy", "requestPayment", "x-oss-traffic-limit", "qosInfo",
    "asyncFetch", "x-oss-request-payer", "sequential", "inventory", "inventoryId",
    "continuation-token", "worm", "wormId", "wormExtend", "replication", "replicationLocation",
    "replicationProgress", "transferAcceleration", "cname", "metaQuery", "objectInfo", "group",
    "link", "response-content-type", "response-content-language", "response-expires",
    "response-cache-control", "response-content-disposition", "response-content-encoding",
    "resourceGroup", "style", "styleName", "x-oss-async-process", "regionList",
})

#: How far a request's Date may be from the server clock (OSS: 15 minutes).
MAX_SKEW_SECONDS = 15 * 60


def canonical_resource(bucket: str | None, key: str, params: Sequence[tuple[str, str]]) -> str:
    """Return the canonicalized resource: ``/`` or ``/bucket/key`` plus sorted sub-resources."""
    base = "/" if not bucket else f"/{bucket}/{key}"
    subs = sorted((k, v) for k, v in params if k in SUBRESOURCES)
    if not subs:
        return base
    return base + "?" + "&".join(f"{k}={v}" if v else k for k, v in subs)


def string_to_sign(method: str, headers: Mapping[str, str], date: str, resource: str) -> str:
    """Build the V1 string to sign from the request's (lower-case keyed) headers."""
    oss_headers = sorted((k.lower(), v) for k, v in headers.items() if k.lower().startswith("x-oss-"))
    canon = "".join(f"{k}:{v}\n" for k, v in oss_headers)
    return "\n".join([method, headers.get("content-md5", ""), headers.get("content-type", ""), date,
                      canon + resource])


def sign(secret: str, text: str) -> str:
    """Return base64(HMAC-SHA1(secret, text))."""
    return base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()).decode()


def verify(
    credentials: Mapping[str, str],
    method: str,
    headers: Mapping[str, str],
    bucket: str | None,
    key: str,
    params: Sequence[tuple[str, str]],
    *,
    now: float | None = None,
) -> str:
    """Check the request's V1 signature against ``credentials`` (id -> secret); return the key id.

    Raises :class:`OSSError` 403 ``AccessDenied`` (unsigned or expired), ``InvalidAccessKeyId``
    (unknown id), ``SignatureDoesNotMatch`` (wrong secret or altered request) or
    ``RequestTimeTooSkewed``.
    """
    now = time.time() if now is None else now
    query = dict(params)
    auth = headers.get("authorization")
    if auth is not None:
        scheme, _, rest = auth.partition(" ")
        key_id, sep, signature = rest.rpartition(":")
        if scheme != "OSS" or not sep or not key_id:
            raise OSSError(400, "InvalidArgument", "Authorization header is invalid; "
                           "expected 'OSS <AccessKeyId>:<Signature>'.", ArgumentName="Authorization")
        date = headers.get("x-oss-date") or headers.get("date", "")
        parsed = email.utils.parsedate_to_datetime(date) if date else None
        if parsed is None:
            raise OSSError(403, "AccessDenied", "The request has no valid Date header.")
        if abs(parsed.timestamp() - now) > MAX_SKEW_SECONDS:
            raise OSSError(403, "RequestTimeTooSkewed",
                           "The difference between the request time and the current time is too large.")
    elif "Signature" in query and "OSSAccessKeyId" in query:
        key_id, signature, date = query["OSSAccessKeyId"], query["Signature"], query.get("Expires", "")
        if not date.isdigit():
            raise OSSError(403, "AccessDenied", "Expires of the signed URL is missing or not a number.")
        if int(date) < now:
            raise OSSError(403, "AccessDenied", "Request has expired.")
    else:
        raise OSSError(403, "AccessDenied", "Anonymous access is forbidden for this operation.")
    secret = credentials.get(key_id)
    if secret is None:
        raise OSSError(403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist "
                       "in our records.", OSSAccessKeyId=key_id)
    text = string_to_sign(method, headers, date, canonical_resource(bucket, key, params))
    if not hmac.compare_digest(sign(secret, text), signature):
        raise OSSError(403, "SignatureDoesNotMatch", "The request signature we calculated does not match "
                       "the signature you provided. Check your key and signing method.",
                       StringToSign=text, OSSAccessKeyId=key_id)
    return key_id
