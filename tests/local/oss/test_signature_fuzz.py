"""Property-based fuzzing (Hypothesis) of the OSS store's request parsing: signature headers
(V1 and V4, header and query forms), dates, ranges and query parameters. Every rejection is OSS
error XML with 400 or 403 (never a 500 or an uncaught exception), decided within a small budget."""

from __future__ import annotations

import time
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_argo_eci.local.oss.app import _parse_range
from airflow_argo_eci.local.oss.errors import OSSErrorResponse
from airflow_argo_eci.local.oss.server import OSSServer
from airflow_argo_eci.local.oss.signature import Keyring, verify
from tests.local.oss.conftest import KEY_ID, REGION, SECRET, STS_KEY_ID, STS_SECRET, STS_TOKEN

BUDGET = 0.5
FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
KEYRING = Keyring({KEY_ID: SECRET, STS_KEY_ID: STS_SECRET}, {STS_KEY_ID: STS_TOKEN}, REGION)

pieces = st.sampled_from([
    "OSS ", "OSS4-HMAC-SHA256 ", "Credential=", "Signature=", "AdditionalHeaders=", KEY_ID, STS_KEY_ID, ":", "/",
    ",", ";", "=", "20240102T030405Z", "20240102", REGION, "oss", "aliyun_v4_request", "host", "\u00b2", "\x00",
    " ", "9" * 30,
])
header_text = st.lists(pieces, max_size=12).map("".join) | st.text(max_size=60)
date_text = st.sampled_from(["", "garbage", "Mon, 02 Jan 2006 15:04:05 GMT", "Mon, 99 Foo 99999 99:99:99 GMT",
                             "Tue, 31 Feb 2024 25:00:00 +9999", "20240102T030405Z", "0", "\u00b2"])
date_text = date_text | st.text(max_size=40)
param_names = st.sampled_from(["OSSAccessKeyId", "Expires", "Signature", "security-token", "x-oss-signature-version",
                               "x-oss-credential", "x-oss-date", "x-oss-expires", "x-oss-signature",
                               "x-oss-additional-headers", "acl", "uploads", "max-keys", "partNumber"])
params = st.lists(st.tuples(param_names, header_text | st.sampled_from(["OSS4-HMAC-SHA256", "\u00b2", "9" * 5000])),
                  max_size=6)


@FUZZ
@given(st.sampled_from(["GET", "PUT", "HEAD", "DELETE", "POST"]),
       st.dictionaries(st.sampled_from(["authorization", "date", "x-oss-date", "x-oss-security-token",
                                        "x-oss-content-sha256", "content-md5", "content-type"]),
                       header_text | date_text, max_size=5),
       st.none() | st.text(max_size=8), st.text(max_size=12), params)
def test_verify_accepts_or_raises_400_or_403(method: str, headers: dict[str, str], bucket: str | None, key: str,
                                             query: list[tuple[str, str]]) -> None:
    started = time.perf_counter()
    try:
        verify(KEYRING, method, headers, bucket, key, query)
    except OSSErrorResponse as exc:
        assert exc.status in (400, 403), exc
    assert time.perf_counter() - started < BUDGET


@FUZZ
@given(st.text(max_size=30) | st.sampled_from(["bytes=0-", "bytes=-0", "bytes=\u00b2-", "bytes=" + "9" * 5000 + "-",
                                               "bytes=5-1", "bytes=0-1,2-3"]), st.integers(0, 10**12))
def test_range_parser_is_total(value: str, size: int) -> None:
    parsed = _parse_range(value, size)
    if parsed is not None:
        start, end = parsed
        assert 0 <= start <= end < size


def _printable(text: str) -> str:
    """What an HTTP client can send as a header value (printable ASCII, no edge spaces)."""
    return "".join(c for c in text if " " <= c <= "~").strip()


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["Authorization", "Date", "x-oss-date", "Range", "x-oss-security-token"]),
                       (header_text | date_text).map(_printable),
                       max_size=4), params)
def test_http_requests_with_bad_auth_get_oss_error_xml(store: OSSServer, headers: dict[str, str],
                                                       query: list[tuple[str, str]]) -> None:
    qs = "&".join(f"{quote(k)}={quote(v)}" for k, v in query)
    assert store.tls is not None
    resp = httpx.get(f"{store.endpoint}/some-bucket/some/key?{qs}", headers=headers, verify=str(store.tls[0]),
                     timeout=10)
    assert resp.status_code in (400, 403, 404), (resp.status_code, resp.text[:300])
    assert resp.text.startswith("<?xml") and "<Error>" in resp.text
