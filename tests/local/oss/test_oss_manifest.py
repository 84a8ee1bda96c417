"""Multipart objects stored as manifests over their part files: every read path, copy, delete and overwrite."""

from __future__ import annotations

import os

import oss2
import pytest

from airflow_argo_eci.crc64 import crc64_function
from airflow_argo_eci.local.oss.server import OSSServer
from airflow_argo_eci.local.oss.storage import MANIFEST_SUFFIX

PART = 100 * 1024


def _upload(bucket: oss2.Bucket, key: str, sizes: list[int]) -> bytes:
    chunks = [os.urandom(size) for size in sizes]
    init = bucket.init_multipart_upload(key)
    parts = [oss2.models.PartInfo(n, bucket.upload_part(key, init.upload_id, n, chunk).etag)
             for n, chunk in enumerate(chunks, start=1)]
    bucket.complete_multipart_upload(key, init.upload_id, parts)
    return b"".join(chunks)


def _data_files(store: OSSServer) -> set[str]:
    assert store.app is not None
    return {p.name for p in store.app.storage.data_dir.iterdir()}


def test_completed_object_is_a_manifest_read_by_stitching_ranges(store: OSSServer, bucket: oss2.Bucket) -> None:
    data = _upload(bucket, "m/obj", [PART, PART + 7, PART, 333])
    assert store.app is not None
    info = store.app.storage.head(bucket.bucket_name, "m/obj")
    assert info.data_file.endswith(MANIFEST_SUFFIX) and info.size == len(data)
    assert not list(store.app.multipart.parts_dir.iterdir())  # the parts dir is empty again
    head = bucket.head_object("m/obj")
    assert int(head.server_crc) == crc64_function()(data, 0) and head.content_length == len(data)
    assert bucket.get_object("m/obj").read() == data
    for start, end in [(0, 0), (PART - 5, PART + 5), (PART - 1, 3 * PART + 10), (2 * PART + 7, len(data) - 1),
                       (len(data) - 1, len(data) - 1), (0, len(data) - 1), (PART, 2 * PART + 6)]:
        got = bucket.get_object("m/obj", byte_range=(start, end), headers={"x-oss-range-behavior": "standard"})
        assert got.read() == data[start:end + 1], (start, end)
    listed = {o.key: o.size for o in oss2.ObjectIterator(bucket, prefix="m/")}
    assert listed == {"m/obj": len(data)}


def test_copy_delete_and_overwrite_of_a_manifest_object(store: OSSServer, bucket: oss2.Bucket) -> None:
    before = _data_files(store)
    data = _upload(bucket, "m/a", [PART, PART, 10])
    added = _data_files(store) - before
    assert len(added) == 4  # the manifest and a link per part
    bucket.copy_object(bucket.bucket_name, "m/a", "m/copy")
    copied = bucket.get_object("m/copy")
    assert copied.read() == data and int(copied.server_crc) == crc64_function()(data, 0)
    reader = bucket.get_object("m/a", byte_range=(0, 2 * PART + 9))  # opened before the overwrite
    replacement = _upload(bucket, "m/a", [PART, 5])
    assert not added & _data_files(store)  # the old manifest and its parts are gone
    assert reader.read() == data  # the open reader still reads the old body
    assert bucket.get_object("m/a").read() == replacement
    bucket.put_object("m/a", b"small")  # a manifest replaced by a plain object
    assert bucket.get_object("m/a").read() == b"small"
    bucket.delete_object("m/a")
    bucket.delete_object("m/copy")
    assert _data_files(store) == before


def test_complete_refused_by_forbid_overwrite_keeps_the_upload(store: OSSServer, bucket: oss2.Bucket) -> None:
    bucket.put_object("m/taken", b"first")
    before = _data_files(store)
    init = bucket.init_multipart_upload("m/taken")
    chunk = os.urandom(PART)
    parts = [oss2.models.PartInfo(1, bucket.upload_part("m/taken", init.upload_id, 1, chunk).etag)]
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        bucket.complete_multipart_upload("m/taken", init.upload_id, parts, headers={"x-oss-forbid-overwrite": "true"})
    assert exc.value.status == 409 and exc.value.code == "FileAlreadyExists"
    assert _data_files(store) == before  # no links or manifest left behind
    assert bucket.get_object("m/taken").read() == b"first"
    bucket.complete_multipart_upload("m/taken", init.upload_id, parts)  # the parts are still there
    assert bucket.get_object("m/taken").read() == chunk
