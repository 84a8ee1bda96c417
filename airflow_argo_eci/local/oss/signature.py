"""OSS request signature verification: Signature V1 and V4, header and signed-URL forms, and STS tokens.

V1 (``Authorization: OSS <AccessKeyId>:<Signature>``, or ``OSSAccessKeyId``/``Expires``/``Signature``
in the query): the string to sign is ``VERB \\n Content-MD5 \\n Content-Type \\n Date \\n``
followed by the canonicalized ``x-oss-*`` headers (lower-cased, sorted, ``name:value`` lines) and
the canonicalized resource ``/bucket/key`` (or ``/`` for service calls) with the sub-resources of
the query, sorted. The signature is base64(HMAC-SHA1(secret, string)).

V4 (``Authorization: OSS4-HMAC-SHA256 Credential=<id>/<yyyymmdd>/<region>/oss/aliyun_v4_request,
AdditionalHeaders=<h1;h2>, Signature=<hex>``, or the ``x-oss-signature-version`` /
``x-oss-credential`` / ``x-oss-date`` / ``x-oss-expires`` / ``x-oss-signature`` query form): the
canonical request is ``VERB``, the URI-encoded ``/bucket/key``, the URI-encoded sorted query, the
signed headers (every ``x-oss-*``, ``content-type``, ``content-md5`` and the additional headers,
``name:value`` lines), the sorted additional header names and the payload hash
(``UNSIGNED-PAYLOAD``). The string to sign is ``OSS4-HMAC-SHA256 \\n <x-oss-date> \\n <scope>
\\n hex(SHA256(canonical request))`` and the signature is hex(HMAC-SHA256(signing key, string)),
the signing key being derived from ``"aliyun_v4" + secret`` through the date, region, ``oss`` and
``aliyun_v4_request``.

A request may carry an STS security token (``x-oss-security-token`` header, ``security-token``
(V1) or ``x-oss-security-token`` (V4) query parameter); it must be the token configured for its
AccessKeyId, and a key configured with a token is only accepted with it.
"""

from __future__ import annotations

import base64
import calendar
import email.utils
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from airflow_argo_eci.local.oss.errors import OSSErrorResponse

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


V4_ALGORITHM = "OSS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
#: Headers V4 always signs when present, besides every ``x-oss-*`` header.
V4_DEFAULT_SIGNED = frozenset({"content-type", "content-md5"})
#: Query parameters that carry the V4 signed-URL signature itself (not part of what is signed).
V4_QUERY_SIGNATURE = "x-oss-signature"
#: Largest ``x-oss-expires`` of a V4 signed URL (OSS: 7 days).
V4_MAX_EXPIRES = 7 * 24 * 3600
_V4_DATE = "%Y%m%dT%H%M%SZ"
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-~.")


@dataclass(frozen=True)
class Keyring:
    """What the store authenticates against.

    ``secrets`` maps AccessKeyId -> AccessKeySecret; ``security_tokens`` maps the AccessKeyIds that
    are STS temporary keys to their security token; ``region`` is the store's region, the one a V4
    credential scope must name.
    """

    secrets: Mapping[str, str]
    security_tokens: Mapping[str, str] = field(default_factory=dict)
    region: str = "cn-local"

    def __post_init__(self) -> None:
        if not self.secrets:
            raise ValueError("credentials: at least one access key id -> secret is required")
        unknown = sorted(set(self.security_tokens) - set(self.secrets))
        if unknown:
            raise ValueError(f"security_tokens: access key ids {unknown} have no secret in credentials")
        if not self.region or any(c not in _UNRESERVED for c in self.region):
            raise ValueError(f"region: {self.region!r} is not a region id such as 'cn-hangzhou'")


def _invalid_auth(message: str, name: str = "Authorization") -> OSSErrorResponse:
    return OSSErrorResponse(400, "InvalidArgument", message, ArgumentName=name)


def _v4_encode(text: str, *, keep_slash: bool) -> str:
    """URI-encode as V4 does: unreserved characters stay, every other byte becomes ``%XX``."""
    out = []
    for byte in text.encode():
        c = chr(byte)
        out.append(c if c in _UNRESERVED or (keep_slash and c == "/") else f"%{byte:02X}")
    return "".join(out)


def v4_canonical_request(method: str, bucket: str | None, key: str, params: Sequence[tuple[str, str]],
                         headers: Mapping[str, str], additional: Sequence[str], payload_hash: str) -> str:
    """Build the V4 canonical request from the (lower-case keyed) headers and the decoded query."""
    uri = _v4_encode(f"/{bucket}/{key}" if bucket else "/", keep_slash=True)
    query = sorted((_v4_encode(k, keep_slash=False), _v4_encode(v, keep_slash=False)) for k, v in params)
    extra = set(additional)
    signed = sorted((k, v) for k, v in headers.items()
                    if k.startswith("x-oss-") or k in V4_DEFAULT_SIGNED or k in extra)
    return "\n".join([
        method, uri, "&".join(f"{k}={v}" if v else k for k, v in query),
        "".join(f"{k}:{v}\n" for k, v in signed), ";".join(sorted(extra)), payload_hash,
    ])


def v4_signature(secret: str, date_time: str, region: str, canonical: str) -> tuple[str, str]:
    """Return (string to sign, hex signature) of a V4 canonical request."""
    scope = f"{date_time[:8]}/{region}/oss/aliyun_v4_request"
    text = "\n".join([V4_ALGORITHM, date_time, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("aliyun_v4" + secret).encode()
    for part in (date_time[:8], region, "oss", "aliyun_v4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return text, hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _parse_http_date(value: str) -> float:
    """The timestamp of a V1 ``Date`` / ``x-oss-date`` header (RFC 1123); 403 AccessDenied when it
    is missing or not a date, as OSS answers."""
    if value:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
            return parsed.timestamp()
        except (TypeError, ValueError, OverflowError, IndexError):
            pass
    raise OSSErrorResponse(403, "AccessDenied", "The request has no valid Date header: send an RFC 1123 date such as "
                           "'Mon, 02 Jan 2006 15:04:05 GMT' in Date or x-oss-date.")


def _parse_v4_time(value: str, name: str) -> float:
    try:
        return calendar.timegm(time.strptime(value, _V4_DATE))
    except (ValueError, OverflowError):
        raise _invalid_auth(f"{name} must be an ISO 8601 basic time such as 20240102T030405Z.", name) from None


def _parse_credential(credential: str, name: str, date_time: str, region: str) -> str:
    """Check ``<id>/<yyyymmdd>/<region>/oss/aliyun_v4_request``; return the AccessKeyId."""
    fields = credential.split("/")
    if len(fields) != 5 or not fields[0] or fields[3] != "oss" or fields[4] != "aliyun_v4_request":
        raise _invalid_auth(f"{name} must be <AccessKeyId>/<yyyymmdd>/<region>/oss/aliyun_v4_request.", name)
    if fields[1] != date_time[:8]:
        raise _invalid_auth(f"The signing date of {name} does not match x-oss-date.", name)
    if fields[2] != region:
        raise _invalid_auth(f"Invalid signing region in {name}: expected {region!r}, got {fields[2]!r}.", name)
    return fields[0]


def _parse_v4_header(value: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in value.split(","):
        name, eq, val = item.strip().partition("=")
        if not eq or name not in ("Credential", "Signature", "AdditionalHeaders") or name in fields:
            raise _invalid_auth(f"Authorization has an invalid or repeated field {name!r}; expected Credential, "
                                "optional AdditionalHeaders and Signature.")
        fields[name] = val.strip()
    if "Credential" not in fields or "Signature" not in fields:
        raise _invalid_auth("Authorization must contain Credential and Signature.")
    return fields


def _additional(raw: str | None, name: str) -> list[str]:
    if raw is None:
        return []
    names = raw.split(";")
    if any(not n or n != n.lower() for n in names):
        raise _invalid_auth(f"{name} must be lower-case header names separated by ';'.", name)
    return names


def _check_token(keyring: Keyring, key_id: str, token: str | None) -> None:
    expected = keyring.security_tokens.get(key_id)
    if token is None and expected is None:
        return
    if expected is None or token is None:
        # a permanent key sent with a token is looked up as an STS key, and an STS key needs its token
        raise OSSErrorResponse(403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our "
                               "records.", OSSAccessKeyId=key_id)
    if not hmac.compare_digest(expected.encode(), token.encode()):
        raise OSSErrorResponse(403, "InvalidSecurityToken", "The security token you provided is invalid.")


def _secret(keyring: Keyring, key_id: str) -> str:
    secret = keyring.secrets.get(key_id)
    if secret is None:
        raise OSSErrorResponse(403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist "
                               "in our records.", OSSAccessKeyId=key_id)
    return secret


def _mismatch(key_id: str, text: str, canonical: str | None = None) -> OSSErrorResponse:
    extra = {"StringToSign": text, "OSSAccessKeyId": key_id}
    if canonical is not None:
        extra["CanonicalRequest"] = canonical
    return OSSErrorResponse(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the "
                            "signature you provided. Check your key and signing method.", **extra)


def _check_skew(ts: float, now: float) -> None:
    if abs(ts - now) > MAX_SKEW_SECONDS:
        raise OSSErrorResponse(403, "RequestTimeTooSkewed",
                               "The difference between the request time and the current time is too large.")


def verify(
    credentials: Mapping[str, str] | Keyring,
    method: str,
    headers: Mapping[str, str],
    bucket: str | None,
    key: str,
    params: Sequence[tuple[str, str]],
    *,
    now: float | None = None,
) -> str:
    """Check the request's V1 or V4 signature (and STS token) against ``credentials``; return the key id.

    ``credentials`` is a :class:`Keyring` or a plain AccessKeyId -> secret mapping (region
    ``cn-local``, no STS keys); ``headers`` are keyed in lower case, ``params`` is the decoded query.
    Raises :class:`OSSErrorResponse` 403 ``AccessDenied`` (unsigned or expired), ``InvalidAccessKeyId``
    (unknown id, or a token where none belongs), ``InvalidSecurityToken``, ``SignatureDoesNotMatch``
    (wrong secret or altered request) or ``RequestTimeTooSkewed``, and 400 ``InvalidArgument`` for a
    malformed signature.
    """
    keyring = credentials if isinstance(credentials, Keyring) else Keyring(credentials)
    now = time.time() if now is None else now
    query = dict(params)
    auth = headers.get("authorization")
    header_token = headers.get("x-oss-security-token")
    if auth is not None and auth.startswith(V4_ALGORITHM + " "):
        if "x-oss-security-token" in query:
            raise _invalid_auth("The security token must not be in both the header and the URL.",
                                "x-oss-security-token")
        return _verify_v4_header(keyring, method, headers, bucket, key, params, auth, header_token, now)
    if auth is None and query.get("x-oss-signature-version") == V4_ALGORITHM:
        if header_token is not None:
            raise _invalid_auth("The security token must not be in both the header and the URL.",
                                "x-oss-security-token")
        return _verify_v4_query(keyring, method, headers, bucket, key, params, now)
    if auth is not None:
        scheme, _, rest = auth.partition(" ")
        key_id, sep, signature = rest.rpartition(":")
        if scheme != "OSS" or not sep or not key_id:
            raise _invalid_auth("Authorization header is invalid; expected 'OSS <AccessKeyId>:<Signature>' or "
                                f"'{V4_ALGORITHM} Credential=..., Signature=...'.")
        date = headers.get("x-oss-date") or headers.get("date", "")
        _check_skew(_parse_http_date(date), now)
        token = header_token
    elif "Signature" in query and "OSSAccessKeyId" in query:
        key_id, signature, date = query["OSSAccessKeyId"], query["Signature"], query.get("Expires", "")
        if not (date.isascii() and date.isdigit() and len(date) <= 18):
            raise OSSErrorResponse(403, "AccessDenied", "Expires of the signed URL is missing or not a number.")
        if int(date) < now:
            raise OSSErrorResponse(403, "AccessDenied", "Request has expired.")
        token = query.get("security-token")
        if token is not None and header_token is not None:
            raise _invalid_auth("The security token must not be in both the header and the URL.",
                                "security-token")
        token = token if token is not None else header_token
    else:
        raise OSSErrorResponse(403, "AccessDenied", "Anonymous access is forbidden for this operation.")
    secret = _secret(keyring, key_id)
    _check_token(keyring, key_id, token)
    text = string_to_sign(method, headers, date, canonical_resource(bucket, key, params))
    if not hmac.compare_digest(sign(secret, text), signature):
        raise _mismatch(key_id, text)
    return key_id


def _verify_v4_header(keyring: Keyring, method: str, headers: Mapping[str, str], bucket: str | None, key: str,
                      params: Sequence[tuple[str, str]], auth: str, token: str | None, now: float) -> str:
    fields = _parse_v4_header(auth[len(V4_ALGORITHM) + 1:])
    date_time = headers.get("x-oss-date")
    if not date_time:
        raise _invalid_auth("A V4 signed request needs the x-oss-date header.", "x-oss-date")
    _check_skew(_parse_v4_time(date_time, "x-oss-date"), now)
    payload = headers.get("x-oss-content-sha256")
    if payload != UNSIGNED_PAYLOAD:
        raise _invalid_auth(f"x-oss-content-sha256 must be {UNSIGNED_PAYLOAD} in a V4 signed request.",
                            "x-oss-content-sha256")
    key_id = _parse_credential(fields["Credential"], "Credential", date_time, keyring.region)
    additional = _additional(fields.get("AdditionalHeaders"), "AdditionalHeaders")
    secret = _secret(keyring, key_id)
    _check_token(keyring, key_id, token)
    canonical = v4_canonical_request(method, bucket, key, params, headers, additional, payload)
    text, expected = v4_signature(secret, date_time, keyring.region, canonical)
    if not hmac.compare_digest(expected, fields["Signature"]):
        raise _mismatch(key_id, text, canonical)
    return key_id


def _verify_v4_query(keyring: Keyring, method: str, headers: Mapping[str, str], bucket: str | None, key: str,
                     params: Sequence[tuple[str, str]], now: float) -> str:
    query = dict(params)
    for name in ("x-oss-credential", "x-oss-date", "x-oss-expires", V4_QUERY_SIGNATURE):
        if not query.get(name):
            raise _invalid_auth(f"A V4 signed URL needs the {name} parameter.", name)
    date_time, expires = query["x-oss-date"], query["x-oss-expires"]
    signed_at = _parse_v4_time(date_time, "x-oss-date")
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 18) or not 0 < int(expires) <= V4_MAX_EXPIRES:
        raise _invalid_auth(f"x-oss-expires must be a number of seconds from 1 to {V4_MAX_EXPIRES}.",
                            "x-oss-expires")
    if signed_at > now + MAX_SKEW_SECONDS:
        raise OSSErrorResponse(403, "RequestTimeTooSkewed",
                               "The difference between the request time and the current time is too large.")
    if signed_at + int(expires) < now:
        raise OSSErrorResponse(403, "AccessDenied", "Request has expired.")
    key_id = _parse_credential(query["x-oss-credential"], "x-oss-credential", date_time, keyring.region)
    additional = _additional(query.get("x-oss-additional-headers"), "x-oss-additional-headers")
    secret = _secret(keyring, key_id)
    _check_token(keyring, key_id, query.get("x-oss-security-token"))
    signed_params = [(k, v) for k, v in params if k != V4_QUERY_SIGNATURE]
    payload = headers.get("x-oss-content-sha256", UNSIGNED_PAYLOAD)
    canonical = v4_canonical_request(method, bucket, key, signed_params, headers, additional, payload)
    text, expected = v4_signature(secret, date_time, keyring.region, canonical)
    if not hmac.compare_digest(expected, query[V4_QUERY_SIGNATURE]):
        raise _mismatch(key_id, text, canonical)
    return key_id
