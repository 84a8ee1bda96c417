"""Bad input to the OSS store: every rejection is OSS error XML with 400/403 (never a 500), and
each rejected request writes exactly one log line, without a traceback."""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Callable
from urllib.parse import unquote

import httpx
import oss2
import pytest

from airflow_argo_eci.local.oss.server import OSSServer
from airflow_argo_eci.local.oss.signature import sign, string_to_sign
from tests.local.oss.conftest import KEY_ID, SECRET

LOGGER = "airflow_argo_eci.local.oss.app"


def _get(store: OSSServer, path: str, headers: dict[str, str]) -> httpx.Response:
    raw = {k.encode(): v.encode("utf-8") for k, v in headers.items()}  # bytes: non-ASCII goes out as sent
    return httpx.get(f"{store.endpoint}{path}", headers=raw, verify=str(store.tls[0]) if store.tls else False,
                     timeout=10)


def _signed_v1(date: str, path: str = "/bkt/key") -> dict[str, str]:
    text = string_to_sign("GET", {}, date, path)
    return {"Date": date, "Authorization": f"OSS {KEY_ID}:{sign(SECRET, text)}"}


def _one_line(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    """The one line the store logged for this test's request (on ``/bkt``): every OSS store of the process logs
    under ``LOGGER``, and requests another test left running may land in the same window."""
    records = [r for r in caplog.records if r.name == LOGGER and " /bkt" in r.getMessage()]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].exc_info is None and "\n" not in records[0].getMessage()
    return records[0]


def _error(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.text.startswith("<?xml") and f"<Code>{code}</Code>" in resp.text
    assert resp.headers["x-oss-request-id"]


@pytest.mark.parametrize("date", ["garbage", "Mon, 99 Foo 99999 99:99:99 GMT", "Tue, 31 Feb 2024 25:61:00 GMT",
                                  "\u00b2", "Mon, 01 Jan 1 00:00:00 -9999"])
@pytest.mark.parametrize("header", ["Date", "x-oss-date"])
def test_garbage_date_is_403_access_denied_with_one_log_line(store: OSSServer, caplog: pytest.LogCaptureFixture,
                                                               date: str, header: str) -> None:
    headers = _signed_v1(date)
    if header != "Date":
        headers[header] = headers.pop("Date")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        resp = _get(store, "/bkt/key", headers)
    _error(resp, 403, "AccessDenied")
    assert "RFC 1123" in resp.text
    assert "403 AccessDenied" in _one_line(caplog).getMessage()


@pytest.mark.parametrize(("auth", "status", "code"), [
    ("OSS", 400, "InvalidArgument"), ("OSS nocolon", 400, "InvalidArgument"), ("Basic dXNlcjpwYXNz", 400,
                                                                                "InvalidArgument"),
    ("OSS4-HMAC-SHA256 Credential", 400, "InvalidArgument"),
    ("OSS4-HMAC-SHA256 Credential=a/b/c/d/e, Signature=x", 400, "InvalidArgument"),
    (f"OSS {KEY_ID}:wrong", 403, "SignatureDoesNotMatch"), ("OSS unknown:sig", 403, "InvalidAccessKeyId"),
])
def test_malformed_authorization_is_rejected_with_one_log_line(store: OSSServer, caplog: pytest.LogCaptureFixture,
                                                               auth: str, status: int, code: str) -> None:
    headers = {"Date": email.utils.formatdate(usegmt=True), "Authorization": auth}
    with caplog.at_level(logging.INFO, logger=LOGGER):
        resp = _get(store, "/bkt/key", headers)
    _error(resp, status, code)
    _one_line(caplog)


@pytest.mark.parametrize("query", ["Expires=%C2%B2&OSSAccessKeyId=x&Signature=y",
                                   "Expires=" + "9" * 5000 + "&OSSAccessKeyId=x&Signature=y",
                                   "x-oss-signature-version=OSS4-HMAC-SHA256&x-oss-credential=a&x-oss-date=b"
                                   "&x-oss-expires=%C2%B2&x-oss-signature=c",
                                   "acl=%FF%FE"])
def test_bad_signed_url_parameters_are_400_or_403(store: OSSServer, caplog: pytest.LogCaptureFixture,
                                                 query: str) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        resp = _get(store, f"/bkt/key?{query}", {})
    assert resp.status_code in (400, 403), resp.text
    assert "<Error>" in resp.text
    _one_line(caplog)


@pytest.mark.parametrize("query", ["max-keys=abc", "max-keys=%C2%B2", "max-keys=" + "9" * 5000, "max-keys=0"])
def test_bad_list_parameters_are_400(bucket: oss2.Bucket, make_bucket: Callable[..., oss2.Bucket],
                                     query: str) -> None:
    value = query.split("=", 1)[1]
    with pytest.raises(oss2.exceptions.OssError) as caught:
        bucket.list_objects(max_keys=unquote(value))
    assert caught.value.status == 400 and caught.value.code == "InvalidArgument"


@pytest.mark.parametrize("value", ["bytes=" + "9" * 40 + "-", "bytes=\u00b2-5", "bytes=5-1", "bytes=abc",
                                   "bytes=-" + "9" * 5000])
def test_bad_ranges_never_give_500(bucket: oss2.Bucket, value: str) -> None:
    bucket.put_object("ranged", b"0123456789")
    try:
        result = bucket.get_object("ranged", headers={"Range": value.encode("utf-8").decode("latin-1")})
        assert result.read() in (b"0123456789", b"")
    except oss2.exceptions.OssError as exc:
        assert exc.status in (400, 416), exc
