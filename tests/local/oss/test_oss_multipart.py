"""Multipart and resumable transfers against the local OSS store, driven by oss2."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import oss2
import pytest

PART = 100 * 1024  # OSS's minimum size of every part but the last


def _crc(data: bytes) -> int:
    c = oss2.utils.Crc64(0)
    c.update(data)
    return c.crc


def test_multipart_upload_etag_crc_and_listing(bucket: oss2.Bucket) -> None:
    data = os.urandom(2 * PART + 1234)
    chunks = [data[:PART], data[PART:2 * PART], data[2 * PART:]]
    init = bucket.init_multipart_upload("mp/obj", headers={"x-oss-meta-kind": "multi", "Content-Type": "x/y"})
    parts = []
    for n, chunk in enumerate(chunks, start=1):
        res = bucket.upload_part("mp/obj", init.upload_id, n, chunk)  # oss2 checks each part's CRC
        assert res.etag == hashlib.md5(chunk).hexdigest().upper()
        parts.append(oss2.models.PartInfo(n, res.etag, size=len(chunk), part_crc=res.crc))
    listed = bucket.list_parts("mp/obj", init.upload_id)
    assert [(p.part_number, p.size) for p in listed.parts] == [(1, PART), (2, PART), (3, 1234)]
    page = bucket.list_parts("mp/obj", init.upload_id, max_parts=2)
    assert page.is_truncated and page.next_marker == "2"
    uploads = bucket.list_multipart_uploads(prefix="mp/")
    assert [(u.key, u.upload_id) for u in uploads.upload_list] == [("mp/obj", init.upload_id)]
    done = bucket.complete_multipart_upload("mp/obj", init.upload_id, parts)  # oss2 checks the combined CRC
    expected = hashlib.md5(b"".join(hashlib.md5(c).digest() for c in chunks)).hexdigest().upper() + "-3"
    assert done.etag == expected and done.crc == _crc(data)
    got = bucket.get_object("mp/obj")
    assert got.read() == data and got.headers["x-oss-object-type"] == "Multipart"
    assert got.headers["x-oss-meta-kind"] == "multi" and got.content_type == "x/y"
    assert bucket.list_multipart_uploads(prefix="mp/").upload_list == []
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.list_parts("mp/obj", init.upload_id)


def test_complete_rejects_bad_part_lists(bucket: oss2.Bucket) -> None:
    init = bucket.init_multipart_upload("bad")
    small = bucket.upload_part("bad", init.upload_id, 1, b"tiny")
    last = bucket.upload_part("bad", init.upload_id, 2, b"end")
    cases = [
        # oss2 sorts the list before sending, so a repeated number is what reaches the store out of order
        ([oss2.models.PartInfo(1, small.etag), oss2.models.PartInfo(1, small.etag)], "InvalidPartOrder"),
        ([oss2.models.PartInfo(1, "0" * 32)], "InvalidPart"),
        ([oss2.models.PartInfo(1, small.etag), oss2.models.PartInfo(2, last.etag)], "EntityTooSmall"),
    ]
    for parts, code in cases:
        with pytest.raises(oss2.exceptions.ServerError) as exc:
            bucket.complete_multipart_upload("bad", init.upload_id, parts)
        assert exc.value.status == 400 and exc.value.code == code
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        bucket.upload_part("bad", init.upload_id, 10_001, b"x")
    assert exc.value.code == "InvalidArgument"
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        bucket.delete_bucket()
    assert exc.value.code == "BucketNotEmpty"
    bucket.abort_multipart_upload("bad", init.upload_id)
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.abort_multipart_upload("bad", init.upload_id)
    assert not bucket.object_exists("bad")
    bucket.delete_bucket()


def test_complete_all_and_list_uploads_paging(bucket: oss2.Bucket) -> None:
    ids = [bucket.init_multipart_upload(k).upload_id for k in ("u/a", "u/b", "u/c", "v/d")]
    first = bucket.list_multipart_uploads(max_uploads=2)
    assert first.is_truncated and [u.key for u in first.upload_list] == ["u/a", "u/b"]
    second = bucket.list_multipart_uploads(key_marker=first.next_key_marker,
                                           upload_id_marker=first.next_upload_id_marker)
    assert [u.key for u in second.upload_list] == ["u/c", "v/d"]
    rolled = bucket.list_multipart_uploads(delimiter="/")
    assert rolled.prefix_list == ["u/", "v/"] and rolled.upload_list == []
    bucket.upload_part("u/a", ids[0], 1, b"only part")
    done = bucket.complete_multipart_upload("u/a", ids[0], None, headers={"x-oss-complete-all": "yes"})
    assert done.crc == _crc(b"only part") and bucket.get_object("u/a").read() == b"only part"


def test_resumable_upload_and_download_with_checkpoints(bucket: oss2.Bucket, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(5 * PART + 17))
    ckpt = oss2.ResumableStore(root=str(tmp_path / "ckpt"))
    oss2.resumable_upload(bucket, "res/obj", str(src), store=ckpt, multipart_threshold=PART, part_size=PART,
                          num_threads=3)
    assert bucket.head_object("res/obj").headers["x-oss-object-type"] == "Multipart"
    dst = tmp_path / "dst.bin"
    dstore = oss2.ResumableDownloadStore(root=str(tmp_path / "dckpt"))
    oss2.resumable_download(bucket, "res/obj", str(dst), store=dstore, multiget_threshold=PART, part_size=PART,
                            num_threads=3)
    assert dst.read_bytes() == src.read_bytes()
