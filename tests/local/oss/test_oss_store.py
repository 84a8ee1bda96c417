"""Drive the local OSS store with oss2 itself over HTTPS (the cluster's self-signed certificate)."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import oss2
import pytest

from airflow_argo_eci.crc64 import crcmod_crc64_function
from airflow_argo_eci.local.oss.app import RECEIVE_CHUNK
from airflow_argo_eci.local.oss.errors import OSSErrorResponse
from airflow_argo_eci.local.oss.server import OSSServer
from airflow_argo_eci.local.oss.signature import sign, string_to_sign
from airflow_argo_eci.local.oss.storage import check_bucket_name

MakeBucket = Callable[..., oss2.Bucket]

def test_path_style_urls_and_bucket_lifecycle(make_bucket: MakeBucket, service: oss2.Service) -> None:
    b = make_bucket("life-cycle")
    b.create_bucket()
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        b.create_bucket()
    assert exc.value.status == 409 and exc.value.code == "BucketAlreadyExists"
    names = [x.name for x in oss2.BucketIterator(service)]
    assert "life-cycle" in names
    b.put_object("k", b"x")
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        b.delete_bucket()
    assert exc.value.code == "BucketNotEmpty"
    b.delete_object("k")
    b.delete_bucket()
    assert "life-cycle" not in [x.name for x in oss2.BucketIterator(service)]
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        b.delete_bucket()
    with pytest.raises(OSSErrorResponse) as err:  # oss2 refuses such names before sending; the store does too
        check_bucket_name("Bad_Name")
    assert err.value.code == "InvalidBucketName" and err.value.status == 400


def test_list_buckets_paginates(make_bucket: MakeBucket, service: oss2.Service) -> None:
    for i in range(3):
        make_bucket(f"page-{i}").create_bucket()
    names = [b.name for b in oss2.BucketIterator(service, prefix="page-", max_keys=2)]
    assert names == ["page-0", "page-1", "page-2"]


def test_bucket_info_location_and_acl(bucket: oss2.Bucket, make_bucket: MakeBucket) -> None:
    info = bucket.get_bucket_info()
    assert (info.name, info.location, info.storage_class, info.acl.grant) == (
        bucket.bucket_name, "oss-cn-local", "Standard", "private")
    assert info.owner.id == "local" and info.creation_date.endswith("Z")
    assert bucket.get_bucket_location().location == "oss-cn-local"
    assert bucket.get_bucket_acl().acl == "private"
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        make_bucket("never-created").get_bucket_info()


def test_put_get_head_with_etag_crc_and_metadata(bucket: oss2.Bucket) -> None:
    data = b"hello oss\n" * 1000
    md5 = hashlib.md5(data).hexdigest().upper()
    put = bucket.put_object("dir/a b+c.txt", data, headers={"x-oss-meta-Owner": "me", "Content-Type": "text/plain"})
    crc = oss2.utils.Crc64(0)
    crc.update(data)
    assert put.etag == md5 and put.crc == crc.crc  # oss2 also checked the CRC itself (enable_crc)
    got = bucket.get_object("dir/a b+c.txt")
    assert got.read() == data
    assert got.etag == md5 and got.server_crc == crc.crc and got.content_type == "text/plain"
    head = bucket.head_object("dir/a b+c.txt")
    assert head.content_length == len(data) and head.headers["x-oss-meta-owner"] == "me"
    assert bucket.get_object_meta("dir/a b+c.txt").etag == md5
    assert bucket.object_exists("dir/a b+c.txt") and not bucket.object_exists("nope")


def test_empty_object_and_overwrite(bucket: oss2.Bucket) -> None:
    bucket.put_object("e", b"")
    assert bucket.get_object("e").read() == b""
    assert bucket.head_object("e").etag == hashlib.md5(b"").hexdigest().upper()
    bucket.put_object("e", b"second")
    assert bucket.get_object("e").read() == b"second"


def test_ranged_get(bucket: oss2.Bucket) -> None:
    data = bytes(range(256)) * 40
    bucket.put_object("r", data)
    assert bucket.get_object("r", byte_range=(10, 19)).read() == data[10:20]
    assert bucket.get_object("r", byte_range=(100, None)).read() == data[100:]
    assert bucket.get_object("r", byte_range=(None, 7)).read() == data[-7:]
    part = bucket.get_object("r", byte_range=(5, 5))
    assert part.status == 206 and part.content_range == f"bytes 5-5/{len(data)}"
    # OSS ignores an unsatisfiable range unless the standard behaviour is asked for.
    assert bucket.get_object("r", byte_range=(len(data) + 5, None)).read() == data
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        bucket.get_object("r", byte_range=(len(data) + 5, None), headers={"x-oss-range-behavior": "standard"})
    assert exc.value.status == 416 and exc.value.code == "InvalidRange"


def test_streamed_put_from_file_and_get_to_file(bucket: oss2.Bucket, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(hashlib.sha256(b"seed").digest() * 200_000)  # 6.4 MB
    bucket.put_object_from_file("big", str(src))
    dst = tmp_path / "dst.bin"
    bucket.get_object_to_file("big", str(dst))
    assert dst.read_bytes() == src.read_bytes()


def test_bad_content_md5_is_invalid_digest_and_stores_nothing(bucket: oss2.Bucket, store: OSSServer) -> None:
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        bucket.put_object("md5", b"payload", headers={"Content-MD5": wrong})
    assert exc.value.status == 400 and exc.value.code == "InvalidDigest"
    assert not bucket.object_exists("md5")
    assert list((store.root / "tmp").iterdir()) == []
    right = base64.b64encode(hashlib.md5(b"payload").digest()).decode()
    bucket.put_object("md5", b"payload", headers={"Content-MD5": right})
    assert bucket.get_object("md5").read() == b"payload"


def test_multi_block_put_checks_content_md5_and_hashes_every_block(bucket: oss2.Bucket, store: OSSServer) -> None:
    """A body of several receive blocks (each written and MD5-hashed on two threads at once) gets
    the MD5 ETag and the CRC-64 of all its bytes, in order; a wrong Content-MD5 stores nothing."""
    body = b"".join(hashlib.sha256(str(n).encode()).digest() for n in range(2 * RECEIVE_CHUNK // 32 + 12345))
    assert len(body) > 2 * RECEIVE_CHUNK
    wrong = base64.b64encode(hashlib.md5(body[:-1], usedforsecurity=False).digest()).decode()
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        bucket.put_object("blocks", body, headers={"Content-MD5": wrong})
    assert exc.value.status == 400 and exc.value.code == "InvalidDigest"
    assert not bucket.object_exists("blocks")
    assert list((store.root / "tmp").iterdir()) == []
    digest = hashlib.md5(body, usedforsecurity=False)
    result = bucket.put_object("blocks", body, headers={"Content-MD5": base64.b64encode(digest.digest()).decode()})
    assert result.etag == digest.hexdigest().upper()
    assert result.crc == crcmod_crc64_function()(body, 0)
    assert bucket.get_object("blocks").read() == body


def test_missing_object_and_bucket(bucket: oss2.Bucket, make_bucket: MakeBucket) -> None:
    with pytest.raises(oss2.exceptions.NoSuchKey) as exc:
        bucket.get_object("missing")
    assert exc.value.request_id and exc.value.details["HostId"]
    with pytest.raises(oss2.exceptions.NotFound):
        bucket.head_object("missing")
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        make_bucket("no-such-bucket").get_object("x")
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        make_bucket("no-such-bucket").put_object("x", b"1")
    bucket.delete_object("missing")  # deleting an absent key succeeds, as on OSS


def test_wrong_secret_and_unknown_key(bucket: oss2.Bucket, make_bucket: MakeBucket, store: OSSServer,
                                      oss_session: oss2.Session) -> None:
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        make_bucket(bucket.bucket_name, secret="wrong").put_object("x", b"1")
    assert exc.value.status == 403 and exc.value.code == "SignatureDoesNotMatch"
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        make_bucket(bucket.bucket_name, key_id="LTAI-unknown").get_object("x")
    assert exc.value.status == 403 and exc.value.code == "InvalidAccessKeyId"
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        oss2.Bucket(oss2.AnonymousAuth(), store.endpoint, bucket.bucket_name, session=oss_session).get_object("x")
    assert exc.value.status == 403 and exc.value.code == "AccessDenied"
    assert not bucket.object_exists("x")


def test_signed_url(bucket: oss2.Bucket, oss_session: oss2.Session) -> None:
    bucket.put_object("signed", b"via url")
    url = bucket.sign_url("GET", "signed", 60)
    assert oss_session.session.get(url).content == b"via url"
    named = bucket.sign_url("GET", "signed", 60, params={"response-content-disposition": "attachment"})
    assert oss_session.session.get(named).headers["content-disposition"] == "attachment"
    expired = bucket.sign_url("GET", "signed", -10)
    resp = oss_session.session.get(expired)
    assert resp.status_code == 403 and b"<Code>AccessDenied</Code>" in resp.content


def test_copy_object_keeps_or_replaces_metadata(bucket: oss2.Bucket) -> None:
    bucket.put_object("src", b"copy me", headers={"x-oss-meta-a": "1", "Content-Type": "text/x-src"})
    res = bucket.copy_object(bucket.bucket_name, "src", "dst")
    assert res.etag == hashlib.md5(b"copy me").hexdigest().upper()
    head = bucket.head_object("dst")
    assert head.headers["x-oss-meta-a"] == "1" and head.content_type == "text/x-src"
    bucket.copy_object(bucket.bucket_name, "src", "dst2",
                       headers={"x-oss-metadata-directive": "REPLACE", "x-oss-meta-b": "2"})
    head = bucket.head_object("dst2")
    assert "x-oss-meta-a" not in head.headers and head.headers["x-oss-meta-b"] == "2"
    assert bucket.get_object("dst2").read() == b"copy me"
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.copy_object(bucket.bucket_name, "absent", "dst3")


def test_delete_multiple_objects(bucket: oss2.Bucket) -> None:
    for k in ("d/1", "d/2", "d/3 space"):
        bucket.put_object(k, b"x")
    result = bucket.batch_delete_objects(["d/1", "d/3 space", "d/never"])
    assert sorted(result.deleted_keys) == ["d/1", "d/3 space", "d/never"]
    assert [o.key for o in oss2.ObjectIterator(bucket)] == ["d/2"]


def _tree(bucket: oss2.Bucket) -> None:
    for k in ("a/1", "a/2", "a/b/3", "b/4", "c", "c/5", "d"):
        bucket.put_object(k, b"x")


def test_list_objects_v1(bucket: oss2.Bucket) -> None:
    _tree(bucket)
    res = bucket.list_objects(delimiter="/")
    assert [o.key for o in res.object_list] == ["c", "d"]
    assert res.prefix_list == ["a/", "b/", "c/"]
    res = bucket.list_objects(prefix="a/", delimiter="/")
    assert [o.key for o in res.object_list] == ["a/1", "a/2"] and res.prefix_list == ["a/b/"]
    page = bucket.list_objects(max_keys=3)
    assert page.is_truncated and [o.key for o in page.object_list] == ["a/1", "a/2", "a/b/3"]
    nxt = bucket.list_objects(marker=page.next_marker, max_keys=3)
    assert [o.key for o in nxt.object_list] == ["b/4", "c", "c/5"]
    # common prefixes count toward max-keys and paging resumes after them
    p1 = bucket.list_objects(delimiter="/", max_keys=2)
    assert p1.prefix_list == ["a/", "b/"] and p1.is_truncated and p1.next_marker == "b/"
    p2 = bucket.list_objects(delimiter="/", marker=p1.next_marker, max_keys=2)
    assert [o.key for o in p2.object_list] == ["c"] and p2.prefix_list == ["c/"]
    walked = [o.key for o in oss2.ObjectIterator(bucket, max_keys=2)]
    assert walked == ["a/1", "a/2", "a/b/3", "b/4", "c", "c/5", "d"]
    assert bucket.list_objects(prefix="a/").object_list[0].etag == hashlib.md5(b"x").hexdigest().upper()
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        bucket.list_objects(max_keys=1001)
    assert exc.value.code == "InvalidArgument"


def test_list_objects_v2(bucket: oss2.Bucket) -> None:
    _tree(bucket)
    res = bucket.list_objects_v2(delimiter="/")
    assert [o.key for o in res.object_list] == ["c", "d"] and res.prefix_list == ["a/", "b/", "c/"]
    page = bucket.list_objects_v2(max_keys=4)
    assert page.is_truncated and len(page.object_list) == 4
    rest = bucket.list_objects_v2(continuation_token=page.next_continuation_token, max_keys=10)
    assert [o.key for o in rest.object_list] == ["c", "c/5", "d"] and not rest.is_truncated
    assert [o.key for o in bucket.list_objects_v2(start_after="c").object_list] == ["c/5", "d"]
    assert [o.key for o in oss2.ObjectIteratorV2(bucket, prefix="a/", max_keys=1)] == ["a/1", "a/2", "a/b/3"]
    owned = bucket.list_objects_v2(prefix="d", fetch_owner=True).object_list[0]
    assert owned.owner is not None and owned.owner.id == "local"


def test_unicode_and_special_keys_round_trip(bucket: oss2.Bucket) -> None:
    keys = ["中文/文件.txt", "sp ace/%41?x=1&y#z", "tab\tkey"]
    for k in keys:
        bucket.put_object(k, k.encode())
    assert sorted(o.key for o in oss2.ObjectIterator(bucket)) == sorted(keys)
    for k in keys:
        assert bucket.get_object(k).read() == k.encode()


@pytest.mark.parametrize("sent", [300_000, 2 * RECEIVE_CHUNK + 300_000], ids=["in-one-block", "blocks-in-flight"])
def test_dropped_connection_mid_put_leaves_nothing(bucket: oss2.Bucket, store: OSSServer,
                                                   oss_keys: tuple[str, str], sent: int) -> None:
    """A client that disconnects half-way through a PUT leaves neither an object nor a temp file
    (also when whole receive blocks were already being written and hashed)."""
    key_id, secret = oss_keys
    assert store.tls is not None
    date = email.utils.formatdate(usegmt=True)
    resource = f"/{bucket.bucket_name}/cut"
    text = string_to_sign("PUT", {"content-type": "application/octet-stream"}, date, resource)
    head = (f"PUT {resource} HTTP/1.1\r\nHost: 127.0.0.1\r\nDate: {date}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {2 * sent}\r\n"
            f"Authorization: OSS {key_id}:{sign(secret, text)}\r\n\r\n")
    ctx = ssl.create_default_context(cafile=str(store.tls[0]))
    with socket.create_connection(("127.0.0.1", store.port)) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        conn.sendall(head.encode() + b"x" * sent)
        deadline = time.monotonic() + 5
        while not list((store.root / "tmp").iterdir()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert list((store.root / "tmp").iterdir()), "the upload never reached the store"
    deadline = time.monotonic() + 5
    while list((store.root / "tmp").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert list((store.root / "tmp").iterdir()) == []
    assert not bucket.object_exists("cut")
