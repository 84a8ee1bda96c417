"""A 1 GiB artifact through the local Argo Server's artifact route: streamed, not staged.

The cluster runs in its own process (``local up``), so the server's resident memory is its own: it
must stay flat while the object passes (growth bounded by a few chunks), and the state directory
must not grow (nothing is staged on disk). The client checks the size and the CRC-64 against the
object store's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_argo_eci.crc64 import crc64_function
from airflow_argo_eci.local.paths import StatePaths

pytestmark = pytest.mark.slow

NS = "argo"
GIB = 1024 ** 3
MIB = 1024 ** 2
#: what the server's RSS may grow by while 1 GiB passes (the route reads 1 MiB chunks)
RSS_GROWTH_LIMIT = 32 * MIB
#: what the state directory may grow by meanwhile (SQLite pages, logs: nothing like the object)
DISK_GROWTH_LIMIT = 2 * MIB

WORKFLOW: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
    "metadata": {"generateName": "big-artifact-"},
    "spec": {"entrypoint": "make", "templates": [{
        "name": "make",
        "container": {"image": "alpine:3.23", "command": ["sh", "-c"],
                      "args": [f"head -c {GIB} /dev/urandom > /tmp/big.bin && echo small > /tmp/small.txt"]},
        "outputs": {"artifacts": [
            {"name": "big", "path": "/tmp/big.bin", "archive": {"none": {}}},
            {"name": "small", "path": "/tmp/small.txt", "archive": {"none": {}}},
        ]},
    }]},
}


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def disk_bytes(root: Path) -> int:
    """Blocks allocated under ``root`` (what staging a file would add), links not followed."""
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total


@pytest.fixture
def cluster_process(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """``local up`` in its own process; yields the state directory and its ``server.json``."""
    state = tmp_path / "state"
    server = subprocess.Popen(
        [sys.executable, "-m", "airflow_argo_eci.local.cli", "local", "up", "--state-dir", str(state),
         "--capacity", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (state / "server.json").exists() or not (state / "kubeconfig").exists():
            assert server.poll() is None and time.monotonic() < deadline, "the local cluster did not start"
            time.sleep(0.1)
        yield state, json.loads((state / "server.json").read_text())
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_a_1_gib_artifact_streams_with_flat_memory_and_no_disk(
    cluster_process: tuple[Path, dict[str, Any]],
) -> None:
    state, info = cluster_process
    pid = int(info["pid"])
    paths = StatePaths(state)
    token = paths.token.read_text().strip()
    client = httpx.Client(base_url=info["url"], verify=str(paths.tls_cert), timeout=120,
                          headers={"Authorization": f"Bearer {token}"})
    with client:
        created = client.post(f"/api/v1/workflows/{NS}", json={"workflow": WORKFLOW})
        assert created.status_code == 200, created.text
        name = created.json()["metadata"]["name"]
        deadline = time.monotonic() + 180
        while True:
            wf = client.get(f"/api/v1/workflows/{NS}/{name}").json()
            phase = (wf.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed", "Error"):
                break
            assert time.monotonic() < deadline, "the workflow producing 1 GiB did not finish"
            time.sleep(0.5)
        assert phase == "Succeeded", wf["status"].get("message")
        base = f"/artifact-files/{NS}/workflows/{name}/{name}/outputs"
        assert client.get(f"{base}/small").content == b"small\n"  # warms the route's clients up

        time.sleep(1.0)  # let the pod's cleanup settle before the baselines
        rss_before, disk_before = rss_bytes(pid), disk_bytes(state)
        peaks = {"rss": rss_before, "disk": disk_before}
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.05):
                peaks["rss"] = max(peaks["rss"], rss_bytes(pid))
                peaks["disk"] = max(peaks["disk"], disk_bytes(state))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        crc_of = crc64_function()
        size = crc = 0
        started = time.monotonic()
        try:
            with client.stream("GET", f"{base}/big") as response:
                assert response.status_code == 200
                assert response.headers["content-length"] == str(GIB)
                assert response.headers["content-disposition"] == 'filename="big.bin"'
                expected_crc = int(response.headers["x-oss-hash-crc64ecma"])
                for chunk in response.iter_bytes(MIB):
                    size += len(chunk)
                    crc = crc_of(chunk, crc)
        finally:
            stop.set()
            sampler.join()
        seconds = time.monotonic() - started
    assert size == GIB and crc == expected_crc
    growth = peaks["rss"] - rss_before
    assert growth < RSS_GROWTH_LIMIT, f"server RSS grew by {growth / MIB:.1f} MiB while streaming 1 GiB"
    disk_growth = peaks["disk"] - disk_before
    assert disk_growth < DISK_GROWTH_LIMIT, f"the state directory grew by {disk_growth / MIB:.1f} MiB"
    print(f"1 GiB in {seconds:.1f} s; server RSS +{growth / MIB:.1f} MiB; state dir +{disk_growth / MIB:.2f} MiB")
