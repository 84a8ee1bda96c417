"""The servers of bench/oss_transfer.py (the local OSS store, the raw transport server): in a child process or here.

By default they run in a child process, as the local cluster runs its store: in the cluster's
process, apart from the Airflow workers whose hooks talk to it (and real OSS is another machine).
Clients and servers in one process share one GIL, so every figure would also measure how the
client's threads and the server's event loop take turns on it; ``in_process=True`` keeps that
layout for comparison.

    .venv/bin/python bench/transfer_servers.py ROOT CONFIG_JSON   (what the child runs; stops at EOF on stdin)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raw_transport import RawServer

from airflow_argo_eci.local.oss.server import OSSServer

READY_FILE = "servers.json"


@dataclass
class Servers:
    """Where the store and the raw server listen, and how to stop them."""

    endpoint: str
    raw_port: int
    child: subprocess.Popen[bytes] | None = None
    _closers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        """Stop both servers (the child process exits when its stdin closes)."""
        for closer in self._closers:
            closer()
        if self.child is not None:
            assert self.child.stdin is not None
            self.child.stdin.close()
            try:
                self.child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()


def _start(root: Path, tls: tuple[Path, Path], credentials: dict[str, str], region: str
           ) -> tuple[OSSServer, RawServer]:
    store = OSSServer(root / "store", credentials, tls=tls, region=region).start()
    return store, RawServer(root / "raw", tls)


def start(root: Path, tls: tuple[Path, Path], credentials: dict[str, str], region: str, *,
          in_process: bool = False, timeout: float = 60.0) -> Servers:
    """Start the store (data under ``root/store``) and the raw server (``root/raw``)."""
    if in_process:
        store, raw = _start(root, tls, credentials, region)
        return Servers(store.endpoint, raw.port, None, [raw.close, store.stop])
    ready = root / READY_FILE
    ready.unlink(missing_ok=True)
    config = json.dumps({"tls": [str(tls[0]), str(tls[1])], "credentials": credentials, "region": region})
    with open(root / "servers.log", "wb") as log:
        child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), str(root), config],
                                 stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            raise RuntimeError(f"the benchmark's servers did not start; see {root / 'servers.log'}")
        time.sleep(0.05)
    endpoint, raw_port = json.loads(ready.read_text())
    return Servers(endpoint, raw_port, child)


def main() -> None:
    """Serve until stdin closes; announce the endpoints in ``ROOT/servers.json``."""
    root = Path(sys.argv[1])
    config = json.loads(sys.argv[2])
    store, raw = _start(root, (Path(config["tls"][0]), Path(config["tls"][1])), config["credentials"],
                        config["region"])
    (root / f"{READY_FILE}.tmp").write_text(json.dumps([store.endpoint, raw.port]))
    (root / f"{READY_FILE}.tmp").replace(root / READY_FILE)
    try:
        sys.stdin.read()
    finally:
        raw.close()
        store.stop()


if __name__ == "__main__":
    main()
