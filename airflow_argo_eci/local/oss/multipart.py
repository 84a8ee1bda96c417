"""Multipart uploads for the local OSS store: upload ids, parts on disk, completion and listings."""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from airflow_argo_eci.crc64 import crc64_combine
from airflow_argo_eci.local.oss.errors import OSSErrorResponse
from airflow_argo_eci.local.oss.storage import ObjectInfo, Storage

#: OSS's limits: part numbers 1..10000, every part but the last at least 100 KiB.
MAX_PART_NUMBER = 10_000
MIN_PART_SIZE = 100 * 1024


@dataclass(frozen=True)
class Upload:
    """A multipart upload in progress."""

    upload_id: str
    bucket: str
    key: str
    initiated: float
    content_type: str
    user_meta: dict[str, str]


@dataclass(frozen=True)
class Part:
    """An uploaded part."""

    number: int
    size: int
    etag: str
    crc64: int
    mtime: float
    data_file: str


def no_such_upload(upload_id: str) -> OSSErrorResponse:
    """The 404 OSS returns for an unknown or finished upload id."""
    return OSSErrorResponse(404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, "
                            "or the upload may have been aborted or completed.", UploadId=upload_id)


def check_part_number(raw: str) -> int:
    """Parse ``partNumber``; 400 ``InvalidArgument`` outside 1..10000."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not 1 <= int(raw) <= MAX_PART_NUMBER:
        raise OSSErrorResponse(400, "InvalidArgument", f"partNumber must be an integer from 1 to {MAX_PART_NUMBER}.",
                               ArgumentName="partNumber", ArgumentValue=raw)
    return int(raw)


class Multipart:
    """Multipart state next to a :class:`Storage` (same root, same SQLite file)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.parts_dir = storage.root / "parts"
        self.parts_dir.mkdir(exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(storage.root / "meta.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS uploads (upload_id TEXT PRIMARY KEY, bucket TEXT NOT NULL,
                key TEXT NOT NULL, initiated REAL NOT NULL, content_type TEXT NOT NULL, user_meta TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS parts (upload_id TEXT NOT NULL, number INTEGER NOT NULL,
                size INTEGER NOT NULL, etag TEXT NOT NULL, crc64 TEXT NOT NULL, mtime REAL NOT NULL,
                data_file TEXT NOT NULL, PRIMARY KEY (upload_id, number));
            """
        )

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def initiate(self, bucket: str, key: str, content_type: str, user_meta: dict[str, str]) -> Upload:
        """Start an upload; ids sort in initiation order."""
        self.storage.head_bucket(bucket)
        upload = Upload(f"{time.time_ns():016X}{secrets.token_hex(8).upper()}", bucket, key, time.time(),
                        content_type, dict(user_meta))
        with self._lock:
            self._db.execute("INSERT INTO uploads VALUES (?,?,?,?,?,?)",
                             (upload.upload_id, bucket, key, upload.initiated, content_type, json.dumps(user_meta)))
        return upload

    def get(self, bucket: str, key: str, upload_id: str) -> Upload:
        """Return the upload; 404 ``NoSuchUpload`` unless it belongs to ``bucket``/``key``."""
        self.storage.head_bucket(bucket)
        with self._lock:
            row = self._db.execute("SELECT * FROM uploads WHERE upload_id=?", (upload_id,)).fetchone()
        if row is None or row[1] != bucket or row[2] != key:
            raise no_such_upload(upload_id)
        return Upload(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]))

    def has_uploads(self, bucket: str) -> bool:
        """Whether ``bucket`` has uploads in progress (then it is not empty for DeleteBucket)."""
        with self._lock:
            return self._db.execute("SELECT 1 FROM uploads WHERE bucket=? LIMIT 1", (bucket,)).fetchone() is not None

    def add_part(self, upload: Upload, number: int, temp_path: Path, size: int, md5_hex: str, crc64: int) -> Part:
        """Move an uploaded part into place, replacing an earlier part with the same number."""
        name = f"{upload.upload_id}-{number}-{uuid.uuid4().hex}"
        temp_path.replace(self.parts_dir / name)
        part = Part(number, size, md5_hex.upper(), crc64, time.time(), name)
        with self._lock:
            if self._db.execute("SELECT 1 FROM uploads WHERE upload_id=?", (upload.upload_id,)).fetchone() is None:
                (self.parts_dir / name).unlink(missing_ok=True)
                raise no_such_upload(upload.upload_id)
            old = self._db.execute("SELECT data_file FROM parts WHERE upload_id=? AND number=?",
                                   (upload.upload_id, number)).fetchone()
            self._db.execute("INSERT OR REPLACE INTO parts VALUES (?,?,?,?,?,?,?)",
                             (upload.upload_id, number, size, part.etag, str(crc64), part.mtime, name))
        if old is not None:
            (self.parts_dir / old[0]).unlink(missing_ok=True)
        return part

    def parts(self, upload_id: str, after: int = 0, limit: int = MAX_PART_NUMBER) -> list[Part]:
        """Parts of an upload with numbers above ``after``, in order, at most ``limit``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT number, size, etag, crc64, mtime, data_file FROM parts WHERE upload_id=? AND number>? "
                "ORDER BY number LIMIT ?", (upload_id, after, limit)).fetchall()
        return [Part(r[0], r[1], r[2], int(r[3]), r[4], r[5]) for r in rows]

    def list_uploads(self, bucket: str, prefix: str, key_marker: str, upload_id_marker: str) -> list[Upload]:
        """Uploads of ``bucket`` under ``prefix`` after (key_marker, upload_id_marker), ordered."""
        self.storage.head_bucket(bucket)
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM uploads WHERE bucket=? AND substr(key, 1, ?)=? AND (key>? OR (key=? AND upload_id>?)) "
                "ORDER BY key, upload_id", (bucket, len(prefix), prefix, key_marker, key_marker,
                                            upload_id_marker)).fetchall()
        return [Upload(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def abort(self, upload: Upload) -> None:
        """Drop an upload and its parts."""
        parts = self.parts(upload.upload_id)
        with self._lock:
            self._db.execute("DELETE FROM parts WHERE upload_id=?", (upload.upload_id,))
            self._db.execute("DELETE FROM uploads WHERE upload_id=?", (upload.upload_id,))
        for p in parts:
            (self.parts_dir / p.data_file).unlink(missing_ok=True)

    def complete(self, upload: Upload, wanted: list[tuple[int, str]] | None, forbid_overwrite: bool = False
                 ) -> ObjectInfo:
        """Join the ``wanted`` parts (number, etag) — or all parts if None — into the object.

        Errors as OSS: ``InvalidPartOrder`` (not ascending), ``InvalidPart`` (missing or ETag differs),
        ``EntityTooSmall`` (a part before the last under 100 KiB), ``FileAlreadyExists`` (the key exists
        and ``forbid_overwrite``; the upload stays open). The ETag is the MD5 of the parts'
        binary MD5s followed by ``-<count>``; the CRC-64 is combined from the parts' CRCs. No byte is
        copied: the object's body is a manifest over the part files (:meth:`Storage.commit_parts`).
        """
        have = {p.number: p for p in self.parts(upload.upload_id)}
        if wanted is None:
            wanted = [(n, have[n].etag) for n in sorted(have)]
        if not wanted:
            raise OSSErrorResponse(400, "MalformedXML", "CompleteMultipartUpload needs at least one part.")
        numbers = [n for n, _ in wanted]
        if numbers != sorted(set(numbers)):
            raise OSSErrorResponse(400, "InvalidPartOrder", "The list of parts was not in ascending order.")
        chosen: list[Part] = []
        for number, etag in wanted:
            part = have.get(number)
            if part is None or part.etag != etag.strip('"').upper():
                raise OSSErrorResponse(400, "InvalidPart", "One or more of the specified parts could not be found or "
                                       "the specified entity tag might not have matched the part's entity tag.",
                                       PartNumber=str(number), ETag=etag)
            chosen.append(part)
        for part in chosen[:-1]:
            if part.size < MIN_PART_SIZE:
                raise OSSErrorResponse(400, "EntityTooSmall",
                                       f"Every part but the last must be at least {MIN_PART_SIZE} bytes.",
                                       PartNumber=str(part.number))
        if forbid_overwrite:
            self.storage.check_absent(upload.bucket, upload.key)
        crc, size = 0, 0
        md5s = hashlib.md5(usedforsecurity=False)
        for part in chosen:
            crc = crc64_combine(crc, part.crc64, part.size) if size else part.crc64
            size += part.size
            md5s.update(bytes.fromhex(part.etag))
        info = ObjectInfo(upload.bucket, upload.key, size, f"{md5s.hexdigest().upper()}-{len(chosen)}", crc,
                          upload.content_type, upload.user_meta, object_type="Multipart")
        stored = self.storage.commit_parts(info, [(self.parts_dir / p.data_file, p.size) for p in chosen],
                                           forbid_overwrite)
        self.abort(upload)
        return stored
