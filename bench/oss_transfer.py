"""Benchmark: upload and download of one large object on the local OSS store (HTTPS, CRC-64 on).

Printed side by side in one run, for the same file and the same store:

- ``OSSArtifactHook.upload_file`` / ``download_file`` with the hook's defaults (16 MiB parts,
  4 in parallel, CRC-64 end to end),
- ``oss2.resumable_upload`` / ``oss2.resumable_download`` with oss2's default settings
  (``enable_crc`` on, 10 MiB parts, 1 upload thread, 4 download threads),
- the transport limit (``bench/raw_transport.py``): the same bytes over the same server stack,
  certificate and loopback, split the same way (16 MiB x 4) over kept-alive connections, with no
  checksum work on either side,
- ``shutil.copyfile`` of the file on local disk (the floor no network transfer can beat),

as MiB/s and as ratios of the transport limit and of oss2; then the streaming reader
(``open_reader``) reading the whole object: its throughput and peak memory (tracemalloc peak of
Python allocations, and the RSS growth sampled every 20 ms) against its documented bound
(``oss_reader.memory_bound``: ``(parallelism + 2) x chunk_size + 2 x parallelism x 1 MiB``), asserted.

The machine is shared, so each transfer runs ``--rounds`` times, the six transfers interleaved in
every round, and the fastest time of each is printed (the ratios compare like with like). The order
rotates from round to round (raw, hook, oss2; then hook, oss2, raw; ...): a transfer right after
another one of the same direction is measurably slower whichever it is (a second raw GET run in the
hook's slot took as long as the hook's download), so with three rounds or more each gets every slot.

The store and the raw server run in a child process (``bench/transfer_servers.py``), apart from
the clients, as the local cluster runs its store; ``--in-process`` serves them from this process
instead, where clients and servers share one GIL (the layout of earlier runs).

    .venv/bin/python bench/oss_transfer.py [--size 2GiB] [--quick] [--rounds N] [--in-process]
    (--quick: 256 MiB, 3 rounds)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import oss2
import transfer_servers
from raw_transport import RawClient

from airflow_argo_eci.hooks.oss import OSSArtifactHook
from airflow_argo_eci.hooks.oss_reader import memory_bound
from airflow_argo_eci.local.tls import ensure_certificate

MiB = 1024 * 1024
KEY_ID, SECRET, REGION = "LTAI-bench", "bench-secret", "cn-local"


def parse_size(text: str) -> int:
    units = {"k": 1024, "m": MiB, "g": 1024 * MiB}
    value = text.strip().lower().removesuffix("ib").removesuffix("b")
    if value and value[-1] in units:
        return int(float(value[:-1]) * units[value[-1]])
    return int(value)


def make_file(path: Path, size: int) -> None:
    block = 16 * MiB
    with open(path, "wb") as handle:
        left = size
        while left > 0:
            handle.write(os.urandom(min(block, left)))
            left -= block


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reader_memory(hook: OSSArtifactHook, key: str) -> tuple[float, int, int]:
    """Read the whole object through the streaming reader: (seconds, tracemalloc peak, RSS growth)."""
    peak_rss = [rss()]
    base_rss = peak_rss[0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak_rss[0] = max(peak_rss[0], rss())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tracemalloc.start()
    started = time.perf_counter()
    total = 0
    with hook.open_reader(key) as reader:
        for chunk in reader.iter_chunks():
            total += len(chunk)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stop.set()
    sampler.join()
    return seconds, peak, max(peak_rss[0] - base_rss, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="2GiB", help="object size, e.g. 2GiB, 512MiB (default 2GiB)")
    parser.add_argument("--quick", action="store_true", help="256 MiB instead of --size")
    parser.add_argument("--rounds", type=int, default=0, help="rounds of every transfer (default 3 with --quick, "
                        "else 1); the fastest is reported")
    parser.add_argument("--in-process", action="store_true", help="serve the store and the raw server from the "
                        "benchmark's own process (one GIL for clients and servers) instead of a child process")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 1)
    size = 256 * MiB if args.quick else parse_size(args.size)

    with tempfile.TemporaryDirectory(prefix="oss-bench-") as tmp_name:
        tmp = Path(tmp_name)
        tls = ensure_certificate(tmp / "tls.crt", tmp / "tls.key")
        source = tmp / "source.bin"
        make_file(source, size)
        servers = transfer_servers.start(tmp, tls, {KEY_ID: SECRET}, REGION, in_process=args.in_process)
        try:
            os.environ["AIRFLOW_CONN_BENCH_OSS"] = json.dumps({
                "conn_type": "oss", "schema": "bench",
                "extra": {"access_key_id": KEY_ID, "access_key_secret": SECRET, "region": REGION,
                          "endpoint": servers.endpoint, "ca_bundle": str(tls[0])}})
            hook = OSSArtifactHook("bench_oss", checkpoint_dir=tmp / "hook-checkpoints", progress_interval=3600)
            session = oss2.Session()
            session.session.verify = str(tls[0])  # trust the store's certificate, as OSSServer.session() does
            session.session.trust_env = False
            bucket = oss2.Bucket(oss2.Auth(KEY_ID, SECRET), servers.endpoint, "bench", session=session)
            bucket.create_bucket()

            copy_s = timed(lambda: shutil.copyfile(source, tmp / "copy.bin"))
            (tmp / "copy.bin").unlink()
            raw = RawClient(servers.raw_port, tls[0], hook.part_size or 16 * MiB, hook.parallelism)
            times: dict[str, list[float]] = {}

            def run(name: str, action: Callable[[], object]) -> None:
                times.setdefault(name, []).append(timed(action))

            uploads: list[tuple[str, Callable[[], object]]] = [
                ("raw_up", lambda: raw.upload(source, "raw.bin")),
                ("hook_up", lambda: hook.upload_file(source, "hook.bin", progress=False)),
                ("oss2_up", lambda: oss2.resumable_upload(
                    bucket, "oss2.bin", str(source), store=oss2.ResumableStore(root=str(tmp / "oss2-up"))))]
            downloads: list[tuple[str, Callable[[], object]]] = [
                ("raw_down", lambda: raw.download("raw.bin", size, tmp / "raw-down.bin")),
                ("hook_down", lambda: hook.download_file("hook.bin", tmp / "hook-down.bin", progress=False)),
                ("oss2_down", lambda: oss2.resumable_download(
                    bucket, "oss2.bin", str(tmp / "oss2-down.bin"),
                    store=oss2.ResumableDownloadStore(root=str(tmp / "oss2-down"))))]
            for turn in range(rounds):
                # each round starts with the next transfer, so over three rounds each one runs first,
                # second and third once (the slot after another transfer is slower for all of them)
                for name, action in uploads[turn % 3:] + uploads[:turn % 3]:
                    run(name, action)
                for name, action in downloads[turn % 3:] + downloads[:turn % 3]:
                    run(name, action)
                for name in ("raw-down.bin", "hook-down.bin", "oss2-down.bin"):
                    assert (tmp / name).stat().st_size == size
                    (tmp / name).unlink()
            raw.close()
            raw_up, hook_up, oss2_up, raw_down, hook_down, oss2_down = (
                min(times[name]) for name in ("raw_up", "hook_up", "oss2_up", "raw_down", "hook_down", "oss2_down"))
            read_s, traced_peak, rss_growth = reader_memory(hook, "hook.bin")
            bound = memory_bound(hook.part_size or 16 * MiB, hook.parallelism)
            hook.close()
        finally:
            servers.close()

    mib = size / MiB

    def rate(seconds: float) -> str:
        return f"{mib / seconds:8.1f} MiB/s  ({seconds:6.2f} s)"

    layout = "in the benchmark's process" if args.in_process else "in a child process"
    print(f"object: {mib:.0f} MiB on the local OSS store over HTTPS (servers {layout}), CRC-64 checked by every "
          f"client; fastest of {rounds} interleaved round(s); load average {os.getloadavg()[0]:.2f} at the end")
    print(f"  local file copy (shutil.copyfile)        {rate(copy_s)}")
    print(f"  upload   transport limit (raw PUT, 16x4) {rate(raw_up)}")
    print(f"  upload   hook (16 MiB x 4 parallel)      {rate(hook_up)}")
    print(f"  upload   oss2.resumable_upload defaults  {rate(oss2_up)}")
    print(f"  download transport limit (raw GET, 16x4) {rate(raw_down)}")
    print(f"  download hook (16 MiB x 4 parallel)      {rate(hook_down)}")
    print(f"  download oss2.resumable_download default {rate(oss2_down)}")
    print(f"  stream   hook.open_reader (read it all)  {rate(read_s)}")
    print("ratios (of the transport limit / of oss2's defaults; targets >= 0.70 / >= 3.00):")
    print(f"  upload:   hook {raw_up / hook_up:.2f} / {oss2_up / hook_up:.2f}x   "
          f"oss2 {raw_up / oss2_up:.2f} of the limit")
    print(f"  download: hook {raw_down / hook_down:.2f} / {oss2_down / hook_down:.2f}x   "
          f"oss2 {raw_down / oss2_down:.2f} of the limit")
    print(f"  stream:   hook.open_reader {raw_down / read_s:.2f} of the download limit")
    verdict = "within" if traced_peak <= bound else "OVER"
    print(f"streaming reader memory: tracemalloc peak {traced_peak / MiB:.1f} MiB {verdict} the bound "
          f"(parallelism + 2) x chunk + 2 x parallelism x 1 MiB = {bound / MiB:.0f} MiB "
          f"(RSS growth {rss_growth / MiB:.1f} MiB, object {mib:.0f} MiB)")
    assert traced_peak <= bound, f"streaming reader peak {traced_peak} bytes exceeds its bound {bound}"

if __name__ == "__main__":
    main()
