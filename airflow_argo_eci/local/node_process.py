"""The local cluster's node process: the workflow, Fluid and ImageCache controllers and the pod
runtime, in a process of their own beside the API server's (``LocalCluster(node_process=True)``).

Both processes open the one SQLite database (``object_db.PeerLink``: SQLite's write lock orders
their transactions; a pipe each way says "I committed"). The API server's event loop then never
waits for the interpreter lock while a fan-out's passes and pod threads hold it: with 200 WATCH
streams during a 1,000-pod fan-out, that wait was the whole of the events' latency
(``bench/fanout.py``).

The parent starts ``python -m airflow_argo_eci.local.node_process`` with the two pipe ends in
``pass_fds`` and writes one JSON line of :class:`NodeConfig` to its stdin (secrets never reach
argv or the environment). The child answers one JSON line on stdout: ``{"ready": true, "limits":
..., "sandbox": {...}}`` or ``{"error": "..."}`` (an incomplete sandbox, named piece by piece), then
runs until its stdin closes (the parent stopped or died), SIGTERM or SIGINT, and stops every pod.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from airflow_argo_eci.local.paths import StatePaths

log = logging.getLogger(__name__)

#: see :attr:`NodeConfig.nice`. ``bench/fanout.py --pods 1000 --watchers 200 --node-process`` on the
#: 2-core machine, WATCH p95: 133-138 ms at nice 0, 42-50 ms at 10, 37-40 ms at 15, 33-36 ms at 19
#: (the fan-out itself gets slower only while the API server wants the CPU)
NODE_NICE = 15


@dataclass
class NodeConfig:
    """What the node process needs from the parent (one JSON line on its stdin)."""

    state_dir: str
    capacity_vcpu: float
    sandbox: str
    pids_limit: int | None
    sandbox_uid: int | None
    oss_endpoint: str
    #: (access key id, secret) of the local OSS store
    oss_credentials: tuple[str, str]
    #: the controller's default artifact repository (``{"oss": {...}}``)
    artifact_repository: dict[str, Any]
    event_window: int = 10_000
    #: the node process and its pods run this much nicer than the API server (``os.nice``), so that
    #: the scheduler gives API requests and WATCH streams the CPU first when a fan-out wants it all,
    #: as a control plane on nodes of its own would have it
    nice: int = NODE_NICE
    #: the level of the ``airflow_argo_eci`` loggers (the parent's, so ``local up`` logs INFO from both)
    log_level: int = logging.WARNING
    #: a file to which ``resourceVersion monotonic-seconds`` lines are appended for every Pod change
    #: this process commits (``bench/fanout.py`` measures WATCH latency from them); "" for none
    commit_times: str = ""
    #: the child's ends of the two pipes (:class:`~.api.object_db.PeerLink`), filled in by
    #: :meth:`.node_link.NodeProcess.start`
    wake_fd: int = -1
    notify_fd: int = -1

    def to_line(self) -> bytes:
        return (json.dumps(asdict(self)) + "\n").encode()

    @classmethod
    def from_line(cls, line: bytes) -> NodeConfig:
        raw = json.loads(line)
        raw["oss_credentials"] = tuple(raw["oss_credentials"])
        return cls(**raw)


class Node:
    """The controllers and the runtime over a store shared with the API server's process."""

    def __init__(self, config: NodeConfig) -> None:
        from airflow_argo_eci.local.api.store import PeerLink, Store
        from airflow_argo_eci.local.controllers import Controllers
        from airflow_argo_eci.local.runtime.runner import Runtime

        self.config = config
        self.paths = StatePaths(Path(config.state_dir))
        self.store = Store(self.paths.db, event_window=config.event_window,
                           peer=PeerLink(config.wake_fd, config.notify_fd))
        self.runtime: Runtime | None = None
        self.controllers: Controllers | None = None
        self._times: IO[str] | None = None

    def start(self) -> dict[str, Any]:
        """Start runtime and controllers; what the ready line reports (raises SandboxError)."""
        from airflow_argo_eci.local.api.resources import PODS
        from airflow_argo_eci.local.controllers import Controllers
        from airflow_argo_eci.local.runtime.runner import Runtime

        c = self.config
        self.runtime = Runtime(self.paths, capacity_vcpu=c.capacity_vcpu, sandbox=c.sandbox,
                               pids_limit=c.pids_limit, sandbox_uid=c.sandbox_uid)
        if c.commit_times:
            self._times = open(c.commit_times, "a", buffering=1 << 16)  # closed in stop()
            self.store.add_listener(self._record_commit, kinds=[PODS])
        self.controllers = Controllers.start(self.store, self.runtime, self.paths, oss_endpoint=c.oss_endpoint,
                                             oss_credentials=c.oss_credentials,
                                             artifact_repository=c.artifact_repository)
        report = self.runtime.sandbox.report
        return {"ready": True, "limits": self.runtime.limits_method, "pid": os.getpid(),
                "sandbox": report.to_dict() if report is not None else None}

    def _record_commit(self, event_type: str, rt: Any, obj: dict[str, Any]) -> None:
        if self._times is not None:
            self._times.write(f"{obj['metadata']['resourceVersion']} {time.monotonic()}\n")

    def stop(self) -> None:
        """Stop the controllers, then every pod; close the store."""
        if self.controllers is not None:
            self.controllers.stop()
        if self.runtime is not None:
            self.runtime.shutdown()
        self.store.close()
        if self._times is not None:
            self._times.close()


def _answer(out: IO[bytes], answer: dict[str, Any]) -> None:
    out.write((json.dumps(answer) + "\n").encode())
    out.flush()


def main() -> int:
    """The node process (see the module docstring); the exit code is 0 after a requested stop."""
    from airflow_argo_eci.local.runtime.sandbox import SandboxError

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s node %(levelname)s %(name)s: %(message)s")
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    config = NodeConfig.from_line(stdin.readline())
    logging.getLogger("airflow_argo_eci").setLevel(config.log_level)
    os.nice(config.nice)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    def parent_gone() -> None:
        stdin.read()  # EOF: the parent closed our stdin or died
        stop.set()

    node = Node(config)
    try:
        ready = node.start()
    except SandboxError as exc:
        _answer(stdout, {"error": str(exc)})
        node.stop()
        return 2
    except Exception as exc:
        _answer(stdout, {"error": f"the node process could not start: {type(exc).__name__}: {exc}"})
        node.stop()
        return 2
    _answer(stdout, ready)
    os.dup2(2, 1)  # nobody reads the answer pipe any more: whatever prints goes to the log
    threading.Thread(target=parent_gone, name="parent-watch", daemon=True).start()
    while not stop.wait(1.0):
        pass
    node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
