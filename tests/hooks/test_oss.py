"""OSSArtifactHook against the local OSS store (HTTPS, Signature V4): transfers, resume after a killed
client and a dropped connection, corruption, streaming, artifacts and GC.

Parts are 100 KiB (the OSS minimum) so objects of a few hundred KiB exercise multipart. A small
TCP proxy between hook and store counts the bytes each way, throttles and cuts connections; TLS
passes through it unchanged (the store's certificate is for 127.0.0.1 on any port).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import oss2
import pytest

from airflow_argo_eci.archives import ArchiveError, pack_tgz
from airflow_argo_eci.crc64 import crc64_function
from airflow_argo_eci.hooks.oss import (
    OSSArtifactHook,
    OSSError,
    OSSIntegrityError,
    workflow_artifacts,
)
from airflow_argo_eci.hooks.oss_types import KiB
from airflow_argo_eci.local.oss.server import OSSServer
from airflow_argo_eci.local.tls import ensure_certificate

KEY_ID, SECRET = "LTAI-hook-test", "hook-test-secret-0123"
STS_ID, STS_SECRET, STS_TOKEN = "STS.hook-test", "sts-secret-0123", "sts-token-abcdef"
REGION = "cn-local"
PART = 100 * KiB
_names = itertools.count()


# ---------------------------------------------------------------------------------------------- proxy

class TcpProxy:
    """A loopback TCP proxy: counts bytes up (client->server) and down, can throttle the upstream
    direction (``rate`` bytes/s) and cut a connection after ``cut_after`` downstream bytes (for the
    first ``cut_connections`` connections opened while set)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = 0
        self.down = 0
        self.rate: float | None = None
        self.cut_after: int | None = None
        self.cut_connections = 1_000_000
        self.cuts = 0
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.up = self.down = 0

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                cut = self.cut_after if self.cuts < self.cut_connections else None
                if cut is not None:
                    self.cuts += 1
            threading.Thread(target=self._pump, args=(client, server, True, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False, cut), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool, cut: int | None) -> None:
        passed = 0
        try:
            while True:
                data = source.recv(16 * KiB)
                if not data:
                    break
                if cut is not None and passed + len(data) > cut:
                    sink.sendall(data[: max(cut - passed, 0)])
                    break
                if upstream and self.rate:
                    time.sleep(len(data) / self.rate)
                sink.sendall(data)
                passed += len(data)
                with self._lock:
                    if upstream:
                        self.up += len(data)
                    else:
                        self.down += len(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self._closed = True
        self.listener.close()


# ---------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OSSServer]:
    base = tmp_path_factory.mktemp("oss-hook")
    tls = ensure_certificate(base / "tls.crt", base / "tls.key")
    with OSSServer(base / "data", {KEY_ID: SECRET, STS_ID: STS_SECRET}, tls=tls, region=REGION,
                   security_tokens={STS_ID: STS_TOKEN}) as server:
        yield server


@pytest.fixture(scope="module")
def admin(store: OSSServer) -> oss2.Service:
    return oss2.Service(oss2.Auth(KEY_ID, SECRET), store.endpoint, session=store.session())


@pytest.fixture()
def bucket_name(store: OSSServer) -> str:
    name = f"hook-{next(_names)}-{uuid.uuid4().hex[:6]}"
    oss2.Bucket(oss2.Auth(KEY_ID, SECRET), store.endpoint, name, session=store.session()).create_bucket()
    return name


@pytest.fixture()
def raw_bucket(store: OSSServer, bucket_name: str) -> oss2.Bucket:
    """The test's bucket through plain oss2 (V1), to check what the hook wrote."""
    return oss2.Bucket(oss2.Auth(KEY_ID, SECRET), store.endpoint, bucket_name, session=store.session())


@pytest.fixture()
def proxy(store: OSSServer) -> Iterator[TcpProxy]:
    p = TcpProxy(store.port)
    yield p
    p.close()


def conn_json(store: OSSServer, bucket: str, endpoint: str | None = None, **extra: Any) -> str:
    return json.dumps({"conn_type": "oss", "schema": bucket,
                       "extra": {"access_key_id": KEY_ID, "access_key_secret": SECRET, "region": REGION,
                                 "endpoint": endpoint or store.endpoint, "ca_bundle": str(store.tls[0]),  # type: ignore[index]
                                 **extra}})


@pytest.fixture()
def make_hook(monkeypatch: pytest.MonkeyPatch, store: OSSServer, bucket_name: str,
              tmp_path: Path) -> Iterator[Callable[..., OSSArtifactHook]]:
    hooks: list[OSSArtifactHook] = []

    def make(endpoint: str | None = None, conn_extra: dict[str, Any] | None = None, **kwargs: Any) -> OSSArtifactHook:
        conn_id = f"oss_{uuid.uuid4().hex[:8]}"
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}",
                           conn_json(store, bucket_name, endpoint, **(conn_extra or {})))
        options = {"multipart_threshold": PART, "part_size": PART, "parallelism": 3,
                   "checkpoint_dir": tmp_path / "checkpoints", **kwargs}
        hook = OSSArtifactHook(conn_id, **options)
        hooks.append(hook)
        return hook

    yield make
    for hook in hooks:
        hook.close()


def data_file(tmp_path: Path, size: int, name: str = "data.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def crc_of(data: bytes) -> str:
    return str(crc64_function()(data, 0))


def stored(store: OSSServer, bucket: str, key: str) -> Path:
    assert store.app is not None
    return store.app.storage.path_of(store.app.storage.head(bucket, key))


# ---------------------------------------------------------------------------------------------- connection

def test_test_connection_v4_sts_and_bad_secret(make_hook: Callable[..., OSSArtifactHook], bucket_name: str) -> None:
    ok, message = make_hook().test_connection()
    assert ok, message
    assert message.endswith(f"listed bucket {bucket_name!r}")
    sts = make_hook(conn_extra={"access_key_id": STS_ID, "access_key_secret": STS_SECRET,
                                "security_token": STS_TOKEN})
    assert sts.test_connection()[0]
    assert sts.settings.signature_version == 4
    ok, message = make_hook(conn_extra={"access_key_secret": "wrong-secret-xyz"}).test_connection()
    assert not ok
    assert "HTTP 403 SignatureDoesNotMatch" in message and "check the connection's access_key_id" in message
    assert "wrong-secret-xyz" not in message


# ---------------------------------------------------------------------------------------------- upload

def test_simple_upload_below_threshold(make_hook: Callable[..., OSSArtifactHook], raw_bucket: oss2.Bucket,
                                       tmp_path: Path) -> None:
    path = data_file(tmp_path, PART - 1)
    result = make_hook().upload_file(path, "small.bin")
    assert (result.parts, result.size, result.resumed) == (1, PART - 1, False)
    head = raw_bucket.head_object("small.bin")
    assert head.headers["x-oss-object-type"] == "Normal"
    assert result.crc64 == head.headers["x-oss-hash-crc64ecma"] == crc_of(path.read_bytes())


def test_multipart_upload_parallel_parts_round_trip(make_hook: Callable[..., OSSArtifactHook],
                                                    raw_bucket: oss2.Bucket, tmp_path: Path) -> None:
    path = data_file(tmp_path, 10 * PART + 123)
    hook = make_hook(parallelism=4)
    result = hook.upload_file(path, "dir/big.bin", headers={"Content-Type": "application/x-test"})
    assert (result.parts, result.parts_transferred, result.size) == (11, 11, 10 * PART + 123)
    head = raw_bucket.head_object("dir/big.bin")
    assert head.headers["x-oss-object-type"] == "Multipart"
    assert head.content_type == "application/x-test"
    assert result.crc64 == head.headers["x-oss-hash-crc64ecma"] == crc_of(path.read_bytes())
    assert raw_bucket.get_object("dir/big.bin").read() == path.read_bytes()
    assert not list(oss2.MultipartUploadIterator(raw_bucket))
    assert not list((tmp_path / "checkpoints").iterdir())  # checkpoint removed on success

    out = tmp_path / "out" / "big.bin"
    down = hook.download_file("dir/big.bin", out)
    assert out.read_bytes() == path.read_bytes()
    assert (down.crc64, down.parts, down.resumed) == (result.crc64, 11, False)
    assert os.listdir(out.parent) == ["big.bin"]


def test_upload_stream_and_directory(make_hook: Callable[..., OSSArtifactHook], raw_bucket: oss2.Bucket,
                                     tmp_path: Path) -> None:
    hook = make_hook()
    payload = os.urandom(3 * PART + 7)
    chunks = (payload[i:i + 33_333] for i in range(0, len(payload), 33_333))
    result = hook.upload_stream(chunks, "stream.bin")
    assert (result.parts, result.size) == (4, len(payload))
    assert raw_bucket.get_object("stream.bin").read() == payload
    assert hook.upload_stream(io.BytesIO(b"tiny"), "tiny.txt").parts == 1
    assert raw_bucket.get_object("tiny.txt").read() == b"tiny"

    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a")
    (tree / "sub" / "b.txt").write_text("bb")
    keys = [r.key for r in hook.upload_directory(tree, "up/")]
    assert keys == ["up/a.txt", "up/sub/b.txt"]
    assert raw_bucket.get_object("up/sub/b.txt").read() == b"bb"


_KILLED_UPLOAD = """
import sys
from airflow_argo_eci.hooks.oss import OSSArtifactHook
hook = OSSArtifactHook(sys.argv[1], multipart_threshold=102400, part_size=102400, parallelism=1,
                       checkpoint_dir=sys.argv[2])
hook.upload_file(sys.argv[3], "resume/big.bin", progress=False)
print("finished")
"""


def test_killed_upload_resumes_sending_only_missing_parts(
        make_hook: Callable[..., OSSArtifactHook], store: OSSServer, bucket_name: str, raw_bucket: oss2.Bucket,
        proxy: TcpProxy, tmp_path: Path) -> None:
    size = 40 * PART
    path = data_file(tmp_path, size)
    checkpoints = tmp_path / "checkpoints"
    conn_id = "oss_killed_upload"
    env = {**os.environ, f"AIRFLOW_CONN_{conn_id.upper()}": conn_json(store, bucket_name, proxy.endpoint)}
    proxy.rate = 1000 * KiB  # slow enough to kill it mid-way, fast enough to get parts in
    child = subprocess.Popen([sys.executable, "-c", _KILLED_UPLOAD, conn_id, str(checkpoints), str(path)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        parts: list[Any] = []
        while time.monotonic() < deadline and child.poll() is None:
            uploads = list(oss2.MultipartUploadIterator(raw_bucket))
            if uploads:
                parts = list(oss2.PartIterator(raw_bucket, "resume/big.bin", uploads[0].upload_id))
                if len(parts) >= 5:
                    break
            time.sleep(0.05)
        assert child.poll() is None, child.communicate()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()
    uploads = list(oss2.MultipartUploadIterator(raw_bucket))
    assert len(uploads) == 1
    # bytes of the part in flight may still drain through the proxy: wait until the part list is stable
    landed: list[Any] = []
    while True:
        time.sleep(0.5)
        now = list(oss2.PartIterator(raw_bucket, "resume/big.bin", uploads[0].upload_id))
        if len(now) == len(landed):
            break
        landed = now
    assert 5 <= len(landed) < 40
    assert raw_bucket.object_exists("resume/big.bin") is False

    proxy.rate = None
    proxy.reset()
    hook = make_hook(endpoint=proxy.endpoint, parallelism=1)
    result = hook.upload_file(path, "resume/big.bin")
    assert result.resumed
    assert result.parts == 40 and result.parts_transferred == 40 - len(landed)
    # independent of the hook's own accounting: what crossed the wire (plus < 4 KiB of headers per request)
    assert proxy.up < (40 - len(landed)) * PART + 40 * 4 * KiB
    assert raw_bucket.get_object("resume/big.bin").read() == path.read_bytes()
    assert raw_bucket.head_object("resume/big.bin").headers["x-oss-hash-crc64ecma"] == result.crc64 \
        == crc_of(path.read_bytes())
    assert not list(oss2.MultipartUploadIterator(raw_bucket))


def test_changed_file_starts_a_new_upload(make_hook: Callable[..., OSSArtifactHook], raw_bucket: oss2.Bucket,
                                          tmp_path: Path) -> None:
    path = data_file(tmp_path, 3 * PART)
    hook = make_hook()
    upload_id = raw_bucket.init_multipart_upload("k.bin").upload_id
    raw_bucket.upload_part("k.bin", upload_id, 1, b"x" * PART)
    checkpoint_dir = tmp_path / "checkpoints"
    checkpoint_dir.mkdir(exist_ok=True)
    # a checkpoint for another version of the file: must not be trusted
    from airflow_argo_eci.hooks.oss_transfer import Checkpoint

    cp = Checkpoint(checkpoint_dir, "upload", [hook.get_bucket().endpoint, raw_bucket.bucket_name, "k.bin",
                                               str(path.resolve())])
    cp.start({"bucket": raw_bucket.bucket_name, "key": "k.bin", "size": 3 * PART, "mtime_ns": 1, "part_size": PART,
              "upload_id": upload_id})
    cp.close()
    result = hook.upload_file(path, "k.bin")
    assert not result.resumed and result.parts_transferred == 3
    assert raw_bucket.get_object("k.bin").read() == path.read_bytes()
    assert not list(oss2.MultipartUploadIterator(raw_bucket))  # the stale upload was aborted


# ---------------------------------------------------------------------------------------------- download

def test_dropped_download_resumes_byte_identical(make_hook: Callable[..., OSSArtifactHook], raw_bucket: oss2.Bucket,
                                                 proxy: TcpProxy, tmp_path: Path) -> None:
    payload = os.urandom(10 * PART)
    raw_bucket.put_object("obj.bin", payload)
    target = tmp_path / "dl" / "obj.bin"
    hook = make_hook(endpoint=proxy.endpoint, parallelism=2, retries=0)
    proxy.cut_after = 250 * KiB
    with pytest.raises(OSSError, match=r"download bytes \d+-\d+ of oss://.*/obj.bin") as info:
        hook.download_file("obj.bin", target)
    assert not isinstance(info.value, OSSIntegrityError)
    assert info.value.transient
    assert not target.exists()
    assert proxy.cuts >= 1

    hook.close()  # like a new task try: no pooled connection that the proxy would still cut
    proxy.cut_after = None
    proxy.reset()
    result = make_hook(endpoint=proxy.endpoint, parallelism=2, retries=0).download_file("obj.bin", target)
    assert result.resumed and 0 < result.parts_transferred < 10
    assert proxy.down < 10 * PART - PART  # at least one whole part was not fetched again
    assert target.read_bytes() == payload
    assert result.crc64 == raw_bucket.head_object("obj.bin").headers["x-oss-hash-crc64ecma"]
    assert sorted(os.listdir(target.parent)) == ["obj.bin"]


def test_dropped_connection_is_resumed_within_one_call(make_hook: Callable[..., OSSArtifactHook],
                                                       raw_bucket: oss2.Bucket, proxy: TcpProxy,
                                                       tmp_path: Path) -> None:
    payload = os.urandom(6 * PART + 5)
    raw_bucket.put_object("obj2.bin", payload)
    proxy.cut_after, proxy.cut_connections = 150 * KiB, 2
    hook = make_hook(endpoint=proxy.endpoint, parallelism=2, retries=3)
    result = hook.download_file("obj2.bin", tmp_path / "obj2.bin")
    assert proxy.cuts == 2
    assert (tmp_path / "obj2.bin").read_bytes() == payload
    assert not result.resumed and result.parts_transferred == 7


def test_corrupt_object_fails_loudly_and_leaves_nothing(make_hook: Callable[..., OSSArtifactHook],
                                                        store: OSSServer, bucket_name: str, raw_bucket: oss2.Bucket,
                                                        tmp_path: Path) -> None:
    payload = os.urandom(5 * PART)
    raw_bucket.put_object("c.bin", payload)
    body = stored(store, bucket_name, "c.bin")
    with open(body, "r+b") as handle:
        handle.seek(3 * PART + 17)
        byte = handle.read(1)
        handle.seek(3 * PART + 17)
        handle.write(bytes([byte[0] ^ 0xFF]))
    target = tmp_path / "out" / "c.bin"
    hook = make_hook()
    with pytest.raises(OSSIntegrityError, match=r"CRC-64 of the received bytes is \d+, OSS says \d+; the data is "
                                                r"corrupt, nothing was written to"):
        hook.download_file("c.bin", target)
    assert not target.exists()
    assert os.listdir(target.parent) == []
    assert not list((tmp_path / "checkpoints").iterdir())
    with pytest.raises(OSSIntegrityError, match="CRC-64 of the bytes read"), hook.open_reader("c.bin") as reader:
        reader.read()


def test_missing_object(make_hook: Callable[..., OSSArtifactHook], tmp_path: Path) -> None:
    from airflow_argo_eci.hooks.oss import OSSNotFoundError

    hook = make_hook()
    with pytest.raises(OSSNotFoundError, match="HTTP 404 NoSuchKey"):
        hook.download_file("nope", tmp_path / "nope")
    assert hook.head_object("nope") is None and not hook.object_exists("nope")


# ---------------------------------------------------------------------------------------------- streaming

def test_streaming_reader_bounded_read_ahead(make_hook: Callable[..., OSSArtifactHook], raw_bucket: oss2.Bucket,
                                             proxy: TcpProxy) -> None:
    payload = os.urandom(20 * PART + 11)
    raw_bucket.put_object("s.bin", payload)
    hook = make_hook(endpoint=proxy.endpoint)
    proxy.reset()
    with hook.open_reader("s.bin", chunk_size=PART, parallelism=3) as raw:
        reader = io.BufferedReader(raw, buffer_size=8 * KiB)
        first = reader.read(10)
        settled, last = time.monotonic() + 3, -1
        while time.monotonic() < settled and proxy.down != last:
            last = proxy.down
            time.sleep(0.2)
        # one range being consumed plus three ahead, plus headers/TLS
        assert proxy.down <= 4 * PART + 32 * KiB
        rest = bytearray()
        while True:
            piece = reader.read(7777)
            if not piece:
                break
            rest += piece
    assert first + bytes(rest) == payload
    with hook.open_reader("s.bin", chunk_size=3 * PART) as raw:
        chunks = list(raw.iter_chunks())
    assert b"".join(chunks) == payload and max(len(c) for c in chunks) == 3 * PART


# ---------------------------------------------------------------------------------------------- artifacts

def _tgz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple[tarfile.TarInfo,
                                                                                                  bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


def _artifact_workflow(bucket: str, artifacts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": "wf-a", "namespace": "argo"},
            "status": {"phase": "Succeeded",
                       "artifactRepositoryRef": {"artifactRepository": {"oss": {"bucket": bucket}}},
                       "nodes": {"wf-a-1": {"displayName": "producer", "type": "Pod",
                                            "outputs": {"artifacts": artifacts}}}}}


def test_download_artifacts_with_argo_semantics(make_hook: Callable[..., OSSArtifactHook], raw_bucket: oss2.Bucket,
                                                bucket_name: str, tmp_path: Path) -> None:
    tree = tmp_path / "result"
    (tree / "nested").mkdir(parents=True)
    (tree / "nested" / "x.txt").write_text("x")
    (tree / "top.txt").write_text("top")
    packed = io.BytesIO()
    pack_tgz(tree, packed)
    raw_bucket.put_object("wf-a/wf-a-1/result.tgz", packed.getvalue())
    one = io.BytesIO()
    (tmp_path / "msg.txt").write_text("hello artifact\n")
    pack_tgz(tmp_path / "msg.txt", one)
    raw_bucket.put_object("wf-a/wf-a-1/msg.tgz", one.getvalue())
    raw_bucket.put_object("raw/plain.txt", b"plain text")
    wf = _artifact_workflow(bucket_name, [
        {"name": "result", "oss": {"key": "wf-a/wf-a-1/result.tgz"}},
        {"name": "msg", "oss": {"key": "wf-a/wf-a-1/msg.tgz"}},
        {"name": "plain", "archive": {"none": {}}, "oss": {"bucket": bucket_name, "key": "raw/plain.txt"}},
    ])
    hook = make_hook()
    (result,) = workflow_artifacts(wf, node="producer", name="result")
    dest = hook.download_artifact(result, tmp_path / "in" / "data")
    assert (dest / "nested" / "x.txt").read_text() == "x" and (dest / "top.txt").read_text() == "top"
    (msg,) = workflow_artifacts(wf, name="msg")
    assert hook.read_artifact_text(msg) == "hello artifact\n"
    assert hook.download_artifact(msg, tmp_path / "in" / "m.txt").read_text() == "hello artifact\n"
    (plain,) = workflow_artifacts(wf, name="plain")
    assert hook.read_artifact_text(plain) == "plain text"
    assert hook.download_artifact(plain, tmp_path / "in" / "plain").read_bytes() == b"plain text"
    assert sorted(os.listdir(tmp_path / "in")) == ["data", "m.txt", "plain"]


@pytest.mark.parametrize(
    "members",
    [
        [_member("out/ok.txt", b"ok"), _member("out/../../escape.txt", b"evil")],
        [_member("out", kind=tarfile.DIRTYPE), _member("out/link", kind=tarfile.SYMTYPE, link="/etc/passwd")],
        [_member("/abs.txt", b"abs")],
    ],
    ids=["dotdot", "absolute-symlink", "absolute-name"],
)
def test_unsafe_artifact_archives_are_refused(make_hook: Callable[..., OSSArtifactHook], raw_bucket: oss2.Bucket,
                                              bucket_name: str, tmp_path: Path,
                                              members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    raw_bucket.put_object("evil.tgz", _tgz(members))
    (ref,) = workflow_artifacts(_artifact_workflow(bucket_name, [{"name": "evil", "oss": {"key": "evil.tgz"}}]))
    target_dir = tmp_path / "work"
    target_dir.mkdir()
    with pytest.raises(ArchiveError):
        make_hook().download_artifact(ref, target_dir / "evil")
    assert os.listdir(target_dir) == []
    assert not (tmp_path / "escape.txt").exists()


# ---------------------------------------------------------------------------------------------- listing and GC

def test_list_pagination(make_hook: Callable[..., OSSArtifactHook], raw_bucket: oss2.Bucket) -> None:
    keys = [f"p/{i:03d}" for i in range(25)] + ["p/sub/deeper", "q/other"]
    for key in keys:
        raw_bucket.put_object(key, key.encode())
    hook = make_hook()
    listed = list(hook.list_objects("p/", page_size=10))
    assert [o.key for o in listed] == sorted(k for k in keys if k.startswith("p/"))
    assert listed[3].size == 5 and listed[3].last_modified.tzinfo is not None
    assert [o.key for o in hook.list_objects("p/", delimiter="/", page_size=7)] == [f"p/{i:03d}" for i in range(25)]


def test_delete_prefix_older_than_and_dry_run(make_hook: Callable[..., OSSArtifactHook],
                                              raw_bucket: oss2.Bucket) -> None:
    for i in range(3):
        raw_bucket.put_object(f"gc/old-{i}", b"o")
    time.sleep(1.1)  # listing times have one-second resolution
    cutoff = datetime.now(timezone.utc)
    time.sleep(1.1)
    raw_bucket.put_object("gc/new", b"n")
    raw_bucket.put_object("keep/old", b"k")
    hook = make_hook()
    assert hook.delete_prefix("gc/", older_than=cutoff, dry_run=True) == ["gc/old-0", "gc/old-1", "gc/old-2"]
    assert raw_bucket.object_exists("gc/old-0")
    assert hook.delete_prefix("gc/", older_than=cutoff) == ["gc/old-0", "gc/old-1", "gc/old-2"]
    assert [o.key for o in raw_bucket.list_objects().object_list] == ["gc/new", "keep/old"]
    assert hook.delete_prefix("gc/", older_than=timedelta(hours=1)) == []
    with pytest.raises(ValueError, match="an empty prefix would delete the whole bucket"):
        hook.delete_prefix("")
    assert hook.delete_prefix("gc/") == ["gc/new"]


def test_delete_workflow_artifacts(make_hook: Callable[..., OSSArtifactHook], raw_bucket: oss2.Bucket,
                                   bucket_name: str) -> None:
    raw_bucket.put_object("wf-a/one.tgz", b"1")
    raw_bucket.put_object("wf-a/two.txt", b"2")
    raw_bucket.put_object("unrelated", b"3")
    wf = _artifact_workflow(bucket_name, [{"name": "one", "oss": {"key": "wf-a/one.tgz"}},
                                          {"name": "two", "oss": {"key": "wf-a/two.txt"}},
                                          {"name": "gone", "oss": {"key": "wf-a/already-deleted"}}])
    hook = make_hook()
    assert hook.delete_workflow_artifacts(wf, dry_run=True) == ["wf-a/one.tgz", "wf-a/two.txt"]
    assert raw_bucket.object_exists("wf-a/one.tgz")
    assert sorted(hook.delete_workflow_artifacts(wf)) == ["wf-a/one.tgz", "wf-a/two.txt"]
    assert [o.key for o in raw_bucket.list_objects().object_list] == ["unrelated"]


def test_progress_lines_in_the_log(make_hook: Callable[..., OSSArtifactHook], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = data_file(tmp_path, 4 * PART)
    hook = make_hook(progress_interval=0)
    hook.upload_file(path, "progress.bin")
    name = hook.get_bucket().bucket_name
    lines = [line for line in capsys.readouterr().out.splitlines() if f"upload oss://{name}/progress.bin: " in line]
    assert any("100.0 KiB / 400.0 KiB (25%), " in line for line in lines), lines
    assert re.search(r"400\.0 KiB / 400\.0 KiB \(100%\), [\d.]+ [KMG]?i?B/s, ETA 0s", lines[-1]), lines
    assert SECRET not in "\n".join(lines)
