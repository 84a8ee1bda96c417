"""File-backed object storage for the local OSS store: one data file per object, SQLite metadata.

Layout under ``root``: ``meta.sqlite3`` (buckets and objects), ``data/`` (object bodies, named by a
random id), ``tmp/`` (uploads in progress). A put streams into ``tmp/``, is renamed into ``data/``
and only then becomes visible by swapping the metadata row, so readers never see a partial object;
an open reader keeps the old body (the file is unlinked, not truncated).

A completed multipart object is not concatenated: its body is a manifest (``<id>.manifest``, JSON
``{"parts": [[file, size], ...]}``) over hard links of its part files in ``data/``, so completion is
O(parts) of metadata work; reads stitch ranges of the part files (:meth:`Storage.read_range`) and
deletion removes the manifest's files with it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from airflow_argo_eci.local.oss.errors import OSSErrorResponse, no_such_bucket, no_such_key

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
#: OSS's limit on an object key, in UTF-8 bytes.
MAX_KEY_BYTES = 1023
#: Suffix of a multipart object's body: the list of its part files.
MANIFEST_SUFFIX = ".manifest"
#: Reads of a manifest object open this many part files up front (kept by a reader across a delete);
#: the parts of a range beyond them are opened as the read reaches them.
EAGER_PART_FILES = 256
READ_BLOCK = 1024 * 1024


def file_exists(key: str) -> OSSErrorResponse:
    """The 409 OSS returns when ``x-oss-forbid-overwrite: true`` meets an existing object."""
    return OSSErrorResponse(409, "FileAlreadyExists",
                            "The object you specified already exists and can not be overwritten.", Key=key)


def check_bucket_name(name: str) -> None:
    """Raise 400 ``InvalidBucketName`` unless ``name`` follows OSS's bucket naming rules."""
    if not _BUCKET_RE.match(name):
        raise OSSErrorResponse(400, "InvalidBucketName", "The specified bucket is not valid: 3-63 characters of "
                               "lower-case letters, digits and hyphens, not starting or ending with a hyphen.",
                               BucketName=name)


def check_key(key: str) -> None:
    """Raise 400 ``InvalidObjectName`` for an empty or over-long object key."""
    if not key or len(key.encode()) > MAX_KEY_BYTES:
        raise OSSErrorResponse(400, "InvalidObjectName", f"The object name must be 1-{MAX_KEY_BYTES} bytes long.",
                               Key=key)


@dataclass(frozen=True)
class ObjectInfo:
    """Metadata of a stored object."""

    bucket: str
    key: str
    size: int
    etag: str  # without quotes, upper-case hex as OSS returns it
    crc64: int
    content_type: str
    user_meta: dict[str, str] = field(default_factory=dict)
    mtime: float = 0.0
    data_file: str = ""
    object_type: str = "Normal"


@dataclass(frozen=True)
class BucketInfo:
    """A bucket and its creation time."""

    name: str
    created: float


@dataclass
class Listing:
    """One page of a ListObjects result: objects, common prefixes and where the next page starts."""

    objects: list[ObjectInfo]
    prefixes: list[str]
    truncated: bool
    next_marker: str


class Storage:
    """Buckets and objects on disk; safe to use from several threads."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.data_dir = self.root / "data"
        self.tmp_dir = self.root / "tmp"
        for d in (self.root, self.data_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        for leftover in self.tmp_dir.iterdir():  # uploads cut short by a crash of an earlier run
            leftover.unlink(missing_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.root / "meta.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS buckets (name TEXT PRIMARY KEY, created REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS objects (
                bucket TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL,
                crc64 TEXT NOT NULL, content_type TEXT NOT NULL, user_meta TEXT NOT NULL,
                mtime REAL NOT NULL, data_file TEXT NOT NULL, object_type TEXT NOT NULL,
                PRIMARY KEY (bucket, key));
            """
        )

    def close(self) -> None:
        """Close the metadata database."""
        with self._lock:
            self._db.close()

    # buckets -------------------------------------------------------------------------------
    def create_bucket(self, name: str) -> None:
        """Create bucket ``name``; 409 ``BucketAlreadyExists`` if it exists."""
        check_bucket_name(name)
        with self._lock:
            try:
                self._db.execute("INSERT INTO buckets VALUES (?, ?)", (name, time.time()))
            except sqlite3.IntegrityError:
                raise OSSErrorResponse(409, "BucketAlreadyExists", "The requested bucket name is not available.",
                                       BucketName=name) from None

    def delete_bucket(self, name: str) -> None:
        """Delete an empty bucket; 404 ``NoSuchBucket`` / 409 ``BucketNotEmpty``."""
        with self._lock:
            self._require_bucket(name)
            if self._db.execute("SELECT 1 FROM objects WHERE bucket=? LIMIT 1", (name,)).fetchone():
                raise OSSErrorResponse(409, "BucketNotEmpty", "The bucket you tried to delete is not empty.",
                                       BucketName=name)
            self._db.execute("DELETE FROM buckets WHERE name=?", (name,))

    def list_buckets(self, prefix: str = "", marker: str = "", max_keys: int = 1000) -> tuple[list[BucketInfo], bool]:
        """Return buckets after ``marker`` whose names start with ``prefix``, and whether more follow."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, created FROM buckets WHERE name > ? AND substr(name, 1, ?) = ? "
                "ORDER BY name LIMIT ?", (marker, len(prefix), prefix, max_keys + 1)).fetchall()
        return [BucketInfo(n, c) for n, c in rows[:max_keys]], len(rows) > max_keys

    def head_bucket(self, name: str) -> BucketInfo:
        """Return the bucket; 404 ``NoSuchBucket``."""
        with self._lock:
            return self._require_bucket(name)

    def _require_bucket(self, name: str) -> BucketInfo:
        row = self._db.execute("SELECT name, created FROM buckets WHERE name=?", (name,)).fetchone()
        if row is None:
            raise no_such_bucket(name)
        return BucketInfo(row[0], row[1])

    # objects -------------------------------------------------------------------------------
    def new_temp_file(self) -> Path:
        """Return a fresh path under ``tmp/`` for an upload in progress."""
        return self.tmp_dir / uuid.uuid4().hex

    def check_absent(self, bucket: str, key: str) -> None:
        """Raise 409 ``FileAlreadyExists`` if ``key`` exists (for ``x-oss-forbid-overwrite: true``)."""
        with self._lock:
            if self._get(bucket, key) is not None:
                raise file_exists(key)

    def commit(self, info: ObjectInfo, temp_path: Path, forbid_overwrite: bool = False) -> ObjectInfo:
        """Move a finished upload into place and make it the current version of its key.

        With ``forbid_overwrite`` an existing key is 409 ``FileAlreadyExists`` and the upload is
        dropped; the check and the swap happen under one lock, so concurrent writers cannot both win.
        """
        data_name = uuid.uuid4().hex
        os.replace(temp_path, self.data_dir / data_name)
        return self._install(info, data_name, forbid_overwrite)

    def commit_parts(self, info: ObjectInfo, parts: list[tuple[Path, int]], forbid_overwrite: bool = False
                     ) -> ObjectInfo:
        """Make the files ``parts`` (path, size), in order, the body of ``info`` without copying a byte:
        hard links in ``data/`` plus a manifest. The part files themselves are left in place (the
        caller removes them; on an error, e.g. ``FileAlreadyExists``, they are untouched)."""
        base = uuid.uuid4().hex
        entries: list[list[object]] = []
        manifest = f"{base}{MANIFEST_SUFFIX}"
        try:
            for index, (path, size) in enumerate(parts):
                name = f"{base}.{index}"
                os.link(path, self.data_dir / name)
                entries.append([name, size])
            fd = os.open(self.data_dir / manifest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps({"parts": entries}))
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            self._remove_body(manifest, [str(name) for name, _ in entries])
            raise
        return self._install(info, manifest, forbid_overwrite)

    def _install(self, info: ObjectInfo, data_name: str, forbid_overwrite: bool) -> ObjectInfo:
        stored = ObjectInfo(info.bucket, info.key, info.size, info.etag, info.crc64, info.content_type,
                            dict(info.user_meta), time.time(), data_name, info.object_type)
        with self._lock:
            try:
                self._require_bucket(info.bucket)
                old = self._get(info.bucket, info.key)
                if forbid_overwrite and old is not None:
                    raise file_exists(info.key)
            except OSSErrorResponse:
                self._remove_body(data_name)
                raise
            self._db.execute(
                "INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?,?,?,?,?,?)",
                (stored.bucket, stored.key, stored.size, stored.etag, str(stored.crc64), stored.content_type,
                 json.dumps(stored.user_meta), stored.mtime, data_name, stored.object_type))
        if old is not None:
            self._remove_body(old.data_file)
        return stored

    def _manifest(self, data_name: str) -> list[tuple[str, int]]:
        with open(self.data_dir / data_name) as handle:
            return [(str(name), int(size)) for name, size in json.load(handle)["parts"]]

    def _remove_body(self, data_name: str, parts: list[str] | None = None) -> None:
        """Delete a body: its file, or a manifest and the part files it lists."""
        if data_name.endswith(MANIFEST_SUFFIX):
            if parts is None:
                try:
                    parts = [name for name, _ in self._manifest(data_name)]
                except (FileNotFoundError, ValueError, KeyError, TypeError):
                    parts = []
            for name in parts:
                (self.data_dir / name).unlink(missing_ok=True)
        (self.data_dir / data_name).unlink(missing_ok=True)

    def copy_to_temp(self, info: ObjectInfo) -> Path:
        """Copy an object's body to a new temp file (for CopyObject) and return its path."""
        tmp = self.new_temp_file()
        if not info.data_file.endswith(MANIFEST_SUFFIX):
            shutil.copyfile(self.data_dir / info.data_file, tmp)
            return tmp
        try:
            with open(tmp, "wb") as out:
                for block in self.read_range(info, 0, info.size):
                    out.write(block)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def read_range(self, info: ObjectInfo, start: int, length: int) -> Iterator[bytes]:
        """Blocks of up to 1 MiB of ``length`` bytes of the body from ``start``.

        The files are opened before this returns (``FileNotFoundError`` if the object was deleted
        since ``info`` was read), so a delete or overwrite after that does not cut the read short
        (for a manifest object: up to :data:`EAGER_PART_FILES` part files).
        """
        if not info.data_file.endswith(MANIFEST_SUFFIX):
            segments = [(self.data_dir / info.data_file, start, length)]
        else:
            segments = []
            offset = 0
            for name, size in self._manifest(info.data_file):
                if offset + size > start and offset < start + length:
                    first = max(start, offset)
                    last = min(start + length, offset + size)
                    segments.append((self.data_dir / name, first - offset, last - first))
                offset += size
        opened: list[int] = []
        try:
            for path, _, _ in segments[:EAGER_PART_FILES]:
                opened.append(os.open(path, os.O_RDONLY))
        except BaseException:
            for fd in opened:
                os.close(fd)
            raise
        return _read_segments(segments, opened)

    def head(self, bucket: str, key: str) -> ObjectInfo:
        """Return an object's metadata; 404 ``NoSuchBucket`` / ``NoSuchKey``."""
        with self._lock:
            self._require_bucket(bucket)
            info = self._get(bucket, key)
        if info is None:
            raise no_such_key(key)
        return info

    def path_of(self, info: ObjectInfo) -> Path:
        """The file holding ``info``'s body: its data file, or for a multipart object its manifest."""
        return self.data_dir / info.data_file

    def delete(self, bucket: str, key: str) -> bool:
        """Delete an object (absent is fine, as on OSS); return whether it existed."""
        with self._lock:
            self._require_bucket(bucket)
            old = self._get(bucket, key)
            if old is None:
                return False
            self._db.execute("DELETE FROM objects WHERE bucket=? AND key=?", (bucket, key))
        self._remove_body(old.data_file)
        return True

    def list(self, bucket: str, prefix: str, delimiter: str, marker: str, max_keys: int) -> Listing:
        """List keys after ``marker`` under ``prefix``, rolling keys up to ``delimiter`` into prefixes.

        Objects and common prefixes together count toward ``max_keys``, as on OSS.
        """
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        last = ""
        truncated = False
        start = max(marker, prefix)
        with self._lock:
            self._require_bucket(bucket)
            cursor = self._db.execute(
                "SELECT * FROM objects WHERE bucket=? AND key>=? ORDER BY key", (bucket, start))
            for row in cursor:
                info = self._row(row)
                if info.key <= marker:
                    continue
                if not info.key.startswith(prefix):
                    break
                rolled = None
                if delimiter:
                    at = info.key.find(delimiter, len(prefix))
                    if at >= 0:
                        rolled = info.key[: at + len(delimiter)]
                if rolled is not None and prefixes and prefixes[-1] == rolled:
                    continue
                if rolled is not None and rolled <= marker:
                    continue
                if len(objects) + len(prefixes) >= max_keys:
                    truncated = True
                    break
                if rolled is not None:
                    prefixes.append(rolled)
                    last = rolled
                else:
                    objects.append(info)
                    last = info.key
            cursor.close()
        return Listing(objects, prefixes, truncated, last if truncated else "")

    def _get(self, bucket: str, key: str) -> ObjectInfo | None:
        row = self._db.execute("SELECT * FROM objects WHERE bucket=? AND key=?", (bucket, key)).fetchone()
        return None if row is None else self._row(row)

    @staticmethod
    def _row(row: tuple[object, ...]) -> ObjectInfo:
        b, k, size, etag, crc, ctype, meta, mtime, data, otype = row
        return ObjectInfo(str(b), str(k), int(str(size)), str(etag), int(str(crc)), str(ctype),
                          json.loads(str(meta)), float(str(mtime)), str(data), str(otype))


def _read_segments(segments: list[tuple[Path, int, int]], opened: list[int]) -> Iterator[bytes]:
    """Read ``(file, offset, length)`` segments in order; ``opened`` holds the first files' descriptors."""
    try:
        for index, (path, offset, length) in enumerate(segments):
            fd = opened[index] if index < len(opened) else os.open(path, os.O_RDONLY)
            try:
                while length > 0:
                    block = os.pread(fd, min(READ_BLOCK, length), offset)
                    if not block:
                        return
                    offset += len(block)
                    length -= len(block)
                    yield block
            finally:
                if index >= len(opened):
                    os.close(fd)
    finally:
        for fd in opened:
            os.close(fd)
