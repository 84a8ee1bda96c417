"""What the OSS transfer engines share: their options, resumable checkpoints and the parallel part runner.

The engines, on oss2's primitives, are :mod:`.oss_upload` (resumable parallel multipart upload,
multipart upload from a stream), :mod:`.oss_download` (resumable parallel ranged download) and
:mod:`.oss_reader` (a read-ahead streaming reader).

Integrity: every part's CRC-64 is computed once, locally, compared with the server's
``x-oss-hash-crc64ecma`` where the server sends one per request (UploadPart, PutObject), and the
part CRCs are combined (:func:`~airflow_argo_eci.crc64.crc64_combine`) into the object's CRC-64, which must
equal the server's for the whole object.

Checkpoints (one file per transfer in the checkpoint directory, mode 0600) are a JSON header line
followed by one line per finished part, appended as parts finish, so a killed process loses at most
the parts in flight. For uploads the server's ListParts is the truth: a part the checkpoint does not
know (the process died between the server's answer and the append) is kept when its CRC equals the
local file's range.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class Checkpoint:
    """A header plus an append-only log of finished parts ``{"n": .., "crc": .., "size": .., "etag": ..}``."""

    def __init__(self, directory: Path, kind: str, identity: list[str]) -> None:
        digest = hashlib.sha256(json.dumps([kind, *identity]).encode()).hexdigest()[:40]
        self.path = directory / f"{digest}.{kind}"
        self._lock = threading.Lock()
        self._file: Any = None

    def load(self) -> tuple[dict[str, Any], dict[int, dict[str, Any]]] | None:
        """The header and the parts recorded so far, or None (absent or unreadable)."""
        try:
            lines = self.path.read_text().splitlines()
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        try:
            header = json.loads(lines[0])
        except (IndexError, ValueError):
            return None
        parts: dict[int, dict[str, Any]] = {}
        for line in lines[1:]:
            try:
                entry = json.loads(line)
                parts[int(entry["n"])] = entry
            except (ValueError, KeyError, TypeError):
                break  # a torn last line: the part is simply not known
        return (header, parts) if isinstance(header, dict) else None

    def start(self, header: dict[str, Any], parts: Iterable[dict[str, Any]] = ()) -> None:
        """Write a fresh checkpoint (atomically) and open it for appending."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(header) + "\n")
            for entry in parts:
                handle.write(json.dumps(entry) + "\n")
        os.replace(tmp, self.path)
        self._file = open(self.path, "a")  # kept open for appends, closed in close()

    def record(self, entry: dict[str, Any]) -> None:
        """Append one finished part (flushed to the OS at once)."""
        with self._lock:
            if self._file is not None:
                self._file.write(json.dumps(entry) + "\n")
                self._file.flush()

    def close(self) -> None:
        """Close the append handle (the file stays for a later resume)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def remove(self) -> None:
        """Close and delete the checkpoint."""
        self.close()
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class TransferOptions:
    """Knobs shared by the engines."""

    part_size: int | None
    parallelism: int
    checkpoint_dir: Path
    retries: int
    progress_interval: float
    logger: Any  # logging.Logger or Airflow's structlog logger


def run_parallel(items: list[int], work: Callable[[int], None], parallelism: int) -> None:
    """Run ``work(item)`` for every item on ``parallelism`` threads; the first failure cancels the rest, is raised."""
    if not items:
        return
    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(items))), thread_name_prefix="oss-part") as pool:
        futures = [pool.submit(work, item) for item in items]
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f.done() and not f.cancelled() and f.exception() is not None), None)
        if failed is not None:
            for future in futures:
                future.cancel()
            wait(futures)
            error = failed.exception()
            assert error is not None
            raise error
