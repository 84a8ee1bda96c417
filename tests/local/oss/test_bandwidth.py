"""The local OSS store's bandwidth cap: rates as `local up --oss-bandwidth` reads them, one cap
shared by every client and both directions, the byte counters, and no cap by default."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import oss2
import pytest

from airflow_argo_eci.cli import main
from airflow_argo_eci.local.oss.bandwidth import TokenBucket, parse_rate
from airflow_argo_eci.local.oss.server import OSSServer

KEYS = {"LTAI-bw": "bw-secret"}
MIB = 1 << 20


@pytest.mark.parametrize("text,rate", [
    ("200MiB", 200 * MIB), ("200MiB/s", 200 * MIB), ("1.5GB", 1_500_000_000), ("500k", 500_000),
    ("64Ki", 65536), ("1048576", MIB), ("2 mib", 2 * MIB),
])
def test_rates(text: str, rate: int) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "-5MiB", "10", "1PiB"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="bandwidth"):
        parse_rate(text)


def test_local_up_refuses_a_bad_rate(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["local", "up", "--state-dir", str(tmp_path), "--oss-bandwidth", "lots"])
    assert exc.value.code == 2
    assert "--oss-bandwidth: bandwidth 'lots'" in capsys.readouterr().err


def test_token_bucket_serves_takers_in_order_at_the_rate() -> None:
    bucket = TokenBucket(MIB, burst=0)
    waits = [bucket.reserve(MIB // 4) for _ in range(8)]
    assert waits == sorted(waits)
    assert waits[-1] == pytest.approx(2.0, abs=0.05)


def _server(tmp_path: Path, bandwidth: int | None) -> OSSServer:
    return OSSServer(tmp_path / "oss", KEYS, bandwidth=bandwidth).start()


def _read_all(server: OSSServer, keys: list[str]) -> float:
    """Seconds for one client per key to GET it, all at once."""
    def get(key: str) -> None:
        bucket = oss2.Bucket(oss2.Auth(*next(iter(KEYS.items()))), server.endpoint, "bw-bucket")
        assert len(bucket.get_object(key).read()) == 2 * MIB

    threads = [threading.Thread(target=get, args=(key,)) for key in keys]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - start


def test_the_cap_is_shared_by_all_clients_and_counts_bytes(tmp_path: Path) -> None:
    server = _server(tmp_path, 4 * MIB)
    try:
        bucket = oss2.Bucket(oss2.Auth(*next(iter(KEYS.items()))), server.endpoint, "bw-bucket")
        bucket.create_bucket()
        started = time.monotonic()
        for i in range(2):
            bucket.put_object(f"k{i}", b"x" * (2 * MIB))
        uploads = time.monotonic() - started
        assert uploads >= 0.8  # 4 MiB up at 4 MiB/s (less the idle burst)
        elapsed = _read_all(server, ["k0", "k1", "k0", "k1"])  # 8 MiB down, four clients at once
        assert elapsed >= 1.7
        counts = server.transfer_counts
        assert counts.received == 4 * MIB
        assert counts.sent >= 8 * MIB
    finally:
        server.stop()


def test_no_cap_by_default(tmp_path: Path) -> None:
    server = _server(tmp_path, None)
    try:
        bucket = oss2.Bucket(oss2.Auth(*next(iter(KEYS.items()))), server.endpoint, "bw-bucket")
        bucket.create_bucket()
        bucket.put_object("k0", b"x" * (2 * MIB))
        assert _read_all(server, ["k0"] * 4) < 1.5
        assert server.transfer_counts.sent >= 8 * MIB
    finally:
        server.stop()
