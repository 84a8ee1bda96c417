"""Conditional Get/Head/Copy and x-oss-forbid-overwrite, driven by oss2."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable

import oss2
import pytest
from oss2.models import PartInfo


def _error(call: Callable[..., object], *args: object, **kwargs: object) -> oss2.exceptions.ServerError:
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        call(*args, **kwargs)
    return exc.value


def _http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def test_conditional_get_and_head(bucket: oss2.Bucket) -> None:
    etag = bucket.put_object("k", b"body").etag
    modified = email.utils.parsedate_to_datetime(bucket.head_object("k").headers["last-modified"]).timestamp()
    earlier, later = _http_date(modified - 60), _http_date(modified + 60)
    ok = [{"If-Match": f'"{etag}"'}, {"If-Match": etag.lower()}, {"If-Match": '"other", *'},
          {"If-None-Match": '"other"'}, {"If-Modified-Since": earlier}, {"If-Unmodified-Since": later},
          {"If-Unmodified-Since": _http_date(modified)}, {"If-Modified-Since": "not a date"},
          {"If-Match": f'"{etag}"', "If-Unmodified-Since": earlier}]  # If-Match wins over the date
    for headers in ok:
        assert bucket.get_object("k", headers=headers).read() == b"body", headers
        assert bucket.head_object("k", headers=headers).status == 200, headers
    failed = [({"If-Match": '"other"'}, "If-Match"), ({"If-Unmodified-Since": earlier}, "If-Unmodified-Since")]
    for headers, condition in failed:
        err = _error(bucket.get_object, "k", headers=headers)
        assert (err.status, err.code, err.details["Condition"]) == (412, "PreconditionFailed", condition)
        err = _error(bucket.head_object, "k", headers=headers)  # code read from x-oss-err
        assert (err.status, err.code) == (412, "PreconditionFailed")
    for headers in ({"If-None-Match": f'"{etag}"'}, {"If-None-Match": "*"}, {"If-Modified-Since": later},
                    {"If-Modified-Since": _http_date(modified)},
                    {"If-None-Match": f'"{etag}"', "If-Modified-Since": earlier}):
        for call in (bucket.get_object, bucket.head_object):
            err = _error(call, "k", headers=headers)
            assert isinstance(err, oss2.exceptions.NotModified) and err.status == 304, headers
            assert err.headers["etag"] == f'"{etag}"'
    # a range is served when the condition holds
    ranged = bucket.get_object("k", byte_range=(1, 2), headers={"If-Match": f'"{etag}"'})
    assert ranged.status == 206 and ranged.read() == b"od"


def test_put_rejects_conditional_headers(bucket: oss2.Bucket) -> None:
    err = _error(bucket.put_object, "k", b"1", headers={"If-None-Match": "*"})
    assert (err.status, err.code, err.details["Header"]) == (400, "NotImplemented", "If-None-Match")
    assert not bucket.object_exists("k")


def test_conditional_copy(bucket: oss2.Bucket) -> None:
    etag = bucket.put_object("src", b"source").etag
    modified = time.time()
    earlier, later = _http_date(modified - 120), _http_date(modified + 120)
    name = bucket.bucket_name
    for i, headers in enumerate([{"x-oss-copy-source-if-match": f'"{etag}"'},
                                 {"x-oss-copy-source-if-none-match": '"other"'},
                                 {"x-oss-copy-source-if-modified-since": earlier},
                                 {"x-oss-copy-source-if-unmodified-since": later}]):
        bucket.copy_object(name, "src", f"ok{i}", headers=headers)
        assert bucket.get_object(f"ok{i}").read() == b"source"
    err = _error(bucket.copy_object, name, "src", "no", headers={"x-oss-copy-source-if-match": '"other"'})
    assert (err.status, err.code, err.details["Condition"]) == (412, "PreconditionFailed",
                                                                "x-oss-copy-source-if-match")
    err = _error(bucket.copy_object, name, "src", "no",
                 headers={"x-oss-copy-source-if-unmodified-since": earlier})
    assert (err.status, err.code) == (412, "PreconditionFailed")
    for headers in ({"x-oss-copy-source-if-none-match": f'"{etag}"'},
                    {"x-oss-copy-source-if-modified-since": later}):
        err = _error(bucket.copy_object, name, "src", "no", headers=headers)
        assert isinstance(err, oss2.exceptions.NotModified) and err.status == 304
    assert not bucket.object_exists("no")


def test_forbid_overwrite_on_put_copy_and_complete(bucket: oss2.Bucket) -> None:
    forbid = {"x-oss-forbid-overwrite": "true"}
    bucket.put_object("new", b"first", headers=forbid)  # absent key: allowed
    err = _error(bucket.put_object, "new", b"second", headers=forbid)
    assert (err.status, err.code) == (409, "FileAlreadyExists")
    assert bucket.get_object("new").read() == b"first"
    bucket.put_object("new", b"third", headers={"x-oss-forbid-overwrite": "false"})
    assert bucket.get_object("new").read() == b"third"
    err = _error(bucket.put_object, "new", b"x", headers={"x-oss-forbid-overwrite": "maybe"})
    assert (err.status, err.code, err.details["ArgumentName"]) == (400, "InvalidArgument", "x-oss-forbid-overwrite")

    bucket.copy_object(bucket.bucket_name, "new", "copied", headers=forbid)
    err = _error(bucket.copy_object, bucket.bucket_name, "new", "copied", headers=forbid)
    assert (err.status, err.code) == (409, "FileAlreadyExists")

    upload_id = bucket.init_multipart_upload("new").upload_id
    part = bucket.upload_part("new", upload_id, 1, b"multipart body")
    parts = [PartInfo(1, part.etag)]
    err = _error(bucket.complete_multipart_upload, "new", upload_id, parts, headers=forbid)
    assert (err.status, err.code) == (409, "FileAlreadyExists")
    assert bucket.get_object("new").read() == b"third"
    bucket.complete_multipart_upload("new", upload_id, parts)  # the upload stayed open
    assert bucket.get_object("new").read() == b"multipart body"
    fresh_id = bucket.init_multipart_upload("fresh").upload_id
    fresh_part = bucket.upload_part("fresh", fresh_id, 1, b"fresh")
    bucket.complete_multipart_upload("fresh", fresh_id, [PartInfo(1, fresh_part.etag)], headers=forbid)
    assert bucket.get_object("fresh").read() == b"fresh"
