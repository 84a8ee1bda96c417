"""Signature V4 (header and signed URL) and STS security tokens, driven by oss2's AuthV4 / StsAuth."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import oss2
import pytest
from oss2.credentials import StaticCredentialsProvider

from airflow_argo_eci.local.oss.server import OSSServer
from tests.local.oss.conftest import KEY_ID, REGION, SECRET, STS_KEY_ID, STS_SECRET, STS_TOKEN

MakeBucket = Callable[..., oss2.Bucket]


def _error(call: Callable[[], object]) -> oss2.exceptions.ServerError:
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        call()
    return exc.value


def test_v4_round_trip_of_every_operation(bucket: oss2.Bucket, make_bucket: MakeBucket, store: OSSServer,
                                          oss_session: oss2.Session, tmp_path: Path) -> None:
    v4 = make_bucket(bucket.bucket_name, auth=oss2.AuthV4(KEY_ID, SECRET))
    result = v4.put_object("dir/a b+c.txt", b"hello v4", headers={"x-oss-meta-colour": "blue",
                                                                 "Content-Type": "text/plain"})
    assert result.status == 200
    got = v4.get_object("dir/a b+c.txt", byte_range=(0, 4))
    assert got.read() == b"hello" and got.status == 206
    head = v4.head_object("dir/a b+c.txt")
    assert head.headers["x-oss-meta-colour"] == "blue" and head.content_type == "text/plain"
    v4.copy_object(bucket.bucket_name, "dir/a b+c.txt", "dir/copy")
    listed = v4.list_objects_v2(prefix="dir/", delimiter="/", max_keys=1)
    assert [o.key for o in listed.object_list] == ["dir/a b+c.txt"] and listed.is_truncated
    assert [o.key for o in v4.list_objects(prefix="dir/", marker="dir/a b+c.txt").object_list] == ["dir/copy"]
    source = tmp_path / "big"
    source.write_bytes(b"x" * (300 * 1024))
    oss2.resumable_upload(v4, "multi", str(source), multipart_threshold=100 * 1024, part_size=100 * 1024,
                          num_threads=2, store=oss2.ResumableStore(root=str(tmp_path)))
    assert v4.head_object("multi").headers["x-oss-object-type"] == "Multipart"
    assert v4.get_object("multi").read() == source.read_bytes()
    assert v4.batch_delete_objects(["dir/copy", "multi"]).deleted_keys == ["dir/copy", "multi"]
    v4.delete_object("dir/a b+c.txt")
    assert not v4.object_exists("dir/a b+c.txt")
    service = oss2.Service(oss2.AuthV4(KEY_ID, SECRET), store.endpoint, session=oss_session, region=REGION)
    assert bucket.bucket_name in [b.name for b in service.list_buckets(max_keys=1000).buckets]
    assert [b.region for b in service.list_buckets(prefix=bucket.bucket_name).buckets] == [REGION]


def test_v4_with_credentials_provider_and_additional_headers(bucket: oss2.Bucket, make_bucket: MakeBucket) -> None:
    v4 = make_bucket(bucket.bucket_name, auth=oss2.ProviderAuthV4(StaticCredentialsProvider(KEY_ID, SECRET)))
    v4.put_object("k", b"provider")
    assert v4.get_object("k").read() == b"provider"
    # additional signed headers: Content-Disposition is signed too, so changing it breaks the signature
    url = v4.sign_url("PUT", "extra", 60, headers={"Content-Disposition": "attachment"},
                      additional_headers=["content-disposition"])
    assert "x-oss-additional-headers=content-disposition" in url
    http = v4.session.session
    assert http.put(url, data=b"signed", headers={"Content-Disposition": "attachment"}).status_code == 200
    resp = http.put(url, data=b"signed", headers={"Content-Disposition": "inline"})
    assert resp.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in resp.content


def test_v4_wrong_secret_unknown_key_wrong_region(bucket: oss2.Bucket, make_bucket: MakeBucket) -> None:
    bucket.put_object("x", b"1")
    err = _error(lambda: make_bucket(bucket.bucket_name, auth=oss2.AuthV4(KEY_ID, "wrong")).get_object("x"))
    assert err.status == 403 and err.code == "SignatureDoesNotMatch"
    assert "OSS4-HMAC-SHA256" in err.details["StringToSign"]
    err = _error(lambda: make_bucket(bucket.bucket_name, auth=oss2.AuthV4("LTAI-nobody", SECRET)).get_object("x"))
    assert err.status == 403 and err.code == "InvalidAccessKeyId"
    err = _error(lambda: make_bucket(bucket.bucket_name, auth=oss2.AuthV4(KEY_ID, SECRET),
                                     region="cn-hangzhou").get_object("x"))
    assert err.status == 400 and err.code == "InvalidArgument" and "region" in err.message
    err = _error(lambda: make_bucket(bucket.bucket_name, auth=oss2.AuthV4(KEY_ID, "wrong")).put_object("y", b"2"))
    assert err.code == "SignatureDoesNotMatch" and not bucket.object_exists("y")


class _AnHourAgo(dt.datetime):
    """``datetime`` whose clock runs an hour behind, to make oss2 sign at a skewed time."""

    @classmethod
    def utcnow(cls) -> _AnHourAgo:
        real = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(hours=1)
        return cls(real.year, real.month, real.day, real.hour, real.minute, real.second)


def test_v4_skewed_clock(bucket: oss2.Bucket, make_bucket: MakeBucket, monkeypatch: pytest.MonkeyPatch) -> None:
    v4 = make_bucket(bucket.bucket_name, auth=oss2.AuthV4(KEY_ID, SECRET))
    monkeypatch.setattr(oss2.auth, "datetime", _AnHourAgo)
    err = _error(lambda: v4.put_object("late", b"1"))
    assert err.status == 403 and err.code == "RequestTimeTooSkewed"
    # a V4 URL signed an hour ago for 60 seconds has expired; one for two hours has not
    expired = v4.sign_url("GET", "late", 60)
    fresh = v4.sign_url("PUT", "late", 7200)
    monkeypatch.undo()
    resp = v4.session.session.put(fresh, data=b"from url")
    assert resp.status_code == 200
    resp = v4.session.session.get(expired)
    assert resp.status_code == 403 and b"<Code>AccessDenied</Code>" in resp.content


def test_v4_signed_urls(bucket: oss2.Bucket, make_bucket: MakeBucket, oss_session: oss2.Session) -> None:
    v4 = make_bucket(bucket.bucket_name, auth=oss2.AuthV4(KEY_ID, SECRET))
    v4.put_object("dir/signed key", b"via v4 url")
    url = v4.sign_url("GET", "dir/signed key", 60)
    assert "x-oss-signature-version=OSS4-HMAC-SHA256" in url and "x-oss-credential=" in url
    assert oss_session.session.get(url).content == b"via v4 url"
    assert v4.get_object_with_url(url).read() == b"via v4 url"
    ranged = oss_session.session.get(url, headers={"Range": "bytes=0-2"})
    assert ranged.status_code == 206 and ranged.content == b"via"
    named = v4.sign_url("GET", "dir/signed key", 60, params={"response-content-disposition": "attachment"})
    assert oss_session.session.get(named).headers["content-disposition"] == "attachment"
    put = v4.sign_url("PUT", "uploaded", 60, headers={"Content-Type": "text/plain"})
    assert oss_session.session.put(put, data=b"up", headers={"Content-Type": "text/plain"}).status_code == 200
    assert bucket.get_object("uploaded").content_type == "text/plain"
    # the signed Content-Type differs from the one sent
    resp = oss_session.session.put(put, data=b"up", headers={"Content-Type": "image/png"})
    assert resp.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in resp.content
    tampered = url.replace("key?", "kez?")
    assert tampered != url
    resp = oss_session.session.get(tampered)
    assert resp.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in resp.content
    wrong = make_bucket(bucket.bucket_name, auth=oss2.AuthV4(KEY_ID, "wrong")).sign_url("GET", "dir/signed key", 60)
    resp = oss_session.session.get(wrong)
    assert resp.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in resp.content


@pytest.mark.parametrize("version", [oss2.AUTH_VERSION_1, oss2.AUTH_VERSION_4])
def test_sts_token(bucket: oss2.Bucket, make_bucket: MakeBucket, oss_session: oss2.Session, version: str) -> None:
    def sts(key_id: str, secret: str, token: str) -> oss2.Bucket:
        return make_bucket(bucket.bucket_name, auth=oss2.StsAuth(key_id, secret, token, auth_version=version))

    good = sts(STS_KEY_ID, STS_SECRET, STS_TOKEN)
    good.put_object("sts", b"temporary")
    assert good.get_object("sts").read() == b"temporary"
    url = good.sign_url("GET", "sts", 60)
    assert STS_TOKEN in url
    assert oss_session.session.get(url).content == b"temporary"
    err = _error(lambda: sts(STS_KEY_ID, STS_SECRET, "CAIS-forged").get_object("sts"))
    assert err.status == 403 and err.code == "InvalidSecurityToken"
    forged_url = sts(STS_KEY_ID, STS_SECRET, "CAIS-forged").sign_url("GET", "sts", 60)
    resp = oss_session.session.get(forged_url)
    assert resp.status_code == 403 and b"<Code>InvalidSecurityToken</Code>" in resp.content
    # an STS key without its token, and a permanent key with a token, are not known as such
    plain = oss2.Auth(STS_KEY_ID, STS_SECRET) if version == oss2.AUTH_VERSION_1 else oss2.AuthV4(STS_KEY_ID, STS_SECRET)
    err = _error(lambda: make_bucket(bucket.bucket_name, auth=plain).get_object("sts"))
    assert err.status == 403 and err.code == "InvalidAccessKeyId"
    err = _error(lambda: sts(KEY_ID, SECRET, STS_TOKEN).get_object("sts"))
    assert err.status == 403 and err.code == "InvalidAccessKeyId"
    err = _error(lambda: sts(STS_KEY_ID, "wrong", STS_TOKEN).get_object("sts"))
    assert err.status == 403 and err.code == "SignatureDoesNotMatch"


def test_server_rejects_bad_configuration(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="security_tokens"):
        OSSServer(tmp_path, {KEY_ID: SECRET}, security_tokens={"STS.other": "t"})
    with pytest.raises(ValueError, match="region"):
        OSSServer(tmp_path, {KEY_ID: SECRET}, region="cn hangzhou")
    with pytest.raises(ValueError, match="credentials"):
        OSSServer(tmp_path, {})
