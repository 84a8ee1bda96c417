"""The API server's side of the node process (``local/node_process.py``): the pipes that tie the
two processes' stores together, starting the child and waiting for its ready answer, stopping it."""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import replace
from typing import Any

from airflow_argo_eci.local.api.object_db import PeerLink
from airflow_argo_eci.local.httpserve import LocalClusterError
from airflow_argo_eci.local.node_process import NodeConfig

log = logging.getLogger(__name__)

#: seconds the node process gets to stop its pods after its stdin closed
STOP_SECONDS = 20.0


class NodeProcess:
    """One node process: create it, :meth:`start` it, :meth:`stop` it. :attr:`peer` is what this
    process's store uses to learn of the node's commits and to tell it of its own."""

    def __init__(self) -> None:
        to_parent_r, to_parent_w = os.pipe()
        to_child_r, to_child_w = os.pipe()
        #: this process's ends: woken by the child, notifying the child
        self.peer = PeerLink(wake_fd=to_parent_r, notify_fd=to_child_w)
        #: the child's ends (closed here once it runs)
        self._child_fds: tuple[int, ...] = (to_child_r, to_parent_w)
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = False
        #: the child's ready answer: limits, sandbox report, pid
        self.ready: dict[str, Any] = {}

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, config: NodeConfig, *, timeout: float = 30.0) -> None:
        """Start the child with ``config`` (its pipe ends filled in) and wait for it to be ready;
        :class:`LocalClusterError` with its reason when it cannot start."""
        wake_fd, notify_fd = self._child_fds
        config = replace(config, wake_fd=wake_fd, notify_fd=notify_fd)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "airflow_argo_eci.local.node_process"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=self._child_fds, close_fds=True,
        )
        for fd in self._child_fds:
            os.close(fd)
        self._child_fds = ()
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(config.to_line())
        self._proc.stdin.flush()
        answer = _read_line(self._proc.stdout, timeout)
        if answer is None:
            code = self._proc.poll()
            raise LocalClusterError(
                f"the node process did not answer within {timeout}s" if code is None
                else f"the node process exited with code {code} before it was ready (its log is above)")
        try:
            ready = json.loads(answer)
        except ValueError as exc:
            raise LocalClusterError(f"the node process answered {answer[:200]!r}") from exc
        if "error" in ready:
            raise LocalClusterError(str(ready["error"]))
        self.ready = ready
        threading.Thread(target=self._watch, name="node-process-watch", daemon=True).start()

    def _watch(self) -> None:
        assert self._proc is not None
        code = self._proc.wait()
        if not self._stopping:
            log.error("the local cluster's node process (controllers and pods) exited with code %s; "
                      "restart the local cluster", code)

    def stop(self) -> None:
        """Close the child's stdin (it stops its pods and exits), wait, kill it if it does not; close
        the pipe ends but :attr:`peer`'s wake-up end, which this process's store reads until it is
        closed (:meth:`close_wake` after that)."""
        self._stopping = True
        proc = self._proc
        if proc is not None:
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
                proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                log.warning("the node process did not stop within %.0fs; killing it", STOP_SECONDS)
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        for fd in (*self._child_fds, self.peer.notify_fd):
            _close(fd)
        self._child_fds = ()
        self._proc = None

    def close_wake(self) -> None:
        """Close :attr:`peer`'s wake-up end, once the store that followed it is closed."""
        _close(self.peer.wake_fd)


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _read_line(stream: Any, timeout: float) -> bytes | None:
    """One line from the child's stdout within ``timeout`` (None: none came, or it ended)."""
    deadline = time.monotonic() + timeout
    data = b""
    fd = stream.fileno()
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        data += chunk
    return data
