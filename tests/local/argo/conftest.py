"""Fixtures: a real Store, a scripted runtime double and a started Controller.

The runtime double works at the runtime boundary (PodRequest in, PodResult out). The main
container's ``args`` script the pod: ``["echo", text]`` succeeds printing ``text``;
``["fail", code]`` exits with ``code``; ``["sleep", seconds, ...]`` waits first (a kill ends it);
``["write", path, text]`` succeeds writing an output file; ``["flaky", n]`` fails the first ``n``
attempts of a node and then succeeds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_argo_eci.local.api.resources import WORKFLOWS
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.argo.controller import Controller
from airflow_argo_eci.local.paths import StatePaths
from airflow_argo_eci.local.runtime import PodRequest, PodResult


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeRuntime:
    """Runs scripted pods on threads; records what was submitted and the peak concurrency."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.submitted: list[PodRequest] = []
        self.running: dict[tuple[str, str], threading.Event] = {}
        self.kill_messages: dict[tuple[str, str], str] = {}
        self.peak = 0
        self.flaky_counts: dict[str, int] = {}
        self.crashed = False
        #: when set to an Event, killed processes end only once it is set (a slow death)
        self.hold_kills: threading.Event | None = None

    def crash(self) -> None:
        """Simulate the process dying: running pods vanish without reporting."""
        self.crashed = True
        self.shutdown()

    def submit(self, req: PodRequest, on_done: Callable[[PodResult], None]) -> None:
        key = (req.namespace, req.pod_name)
        with self.lock:
            if key in self.running:  # as the runtime does: never two processes of one name
                raise ValueError(f"pod {req.namespace}/{req.pod_name} is already queued or running")
            self.submitted.append(req)
            stop = threading.Event()
            self.running[key] = stop
            self.peak = max(self.peak, len(self.running))
        threading.Thread(target=self._run, args=(req, on_done, stop), daemon=True).start()

    def _run(self, req: PodRequest, on_done: Callable[[PodResult], None], stop: threading.Event) -> None:
        started = _now()
        args = [str(a) for a in (req.container.get("args") or [])]
        code, out, files = 0, "", {}
        while args and args[0] == "sleep":
            if stop.wait(float(args[1])):
                break
            args = args[2:]
        key = (req.namespace, req.pod_name)
        if stop.is_set():
            with self.lock:
                self.running.pop(key, None)
            if self.crashed:
                return
            on_done(PodResult(req.namespace, req.pod_name, 137, "", {}, self.kill_messages.get(key, "killed"),
                              "Failed", started, _now()))
            return
        if args[:1] == ["echo"]:
            out = " ".join(args[1:])
        elif args[:1] == ["fail"]:
            code = int(args[1])
        elif args[:1] == ["write"]:
            files = {args[1]: args[2]}
        elif args[:1] == ["flaky"]:
            node = req.annotations.get("workflows.argoproj.io/node-name", "")
            base = node.rsplit("(", 1)[0]
            with self.lock:
                seen = self.flaky_counts.get(base, 0)
                self.flaky_counts[base] = seen + 1
            code = 1 if seen < int(args[1]) else 0
        outputs = {p: files.get(p) for p in req.output_paths}
        with self.lock:
            self.running.pop(key, None)
        on_done(PodResult(req.namespace, req.pod_name, code, out, outputs,
                          "" if code == 0 else f"Error (exit code {code})",
                          "Succeeded" if code == 0 else "Failed", started, _now()))

    def kill(self, namespace: str, pod_name: str, message: str) -> bool:
        with self.lock:
            stop = self.running.get((namespace, pod_name))
            if stop is None:
                return False
            self.kill_messages[(namespace, pod_name)] = message
        held = self.hold_kills
        if held is None:
            stop.set()
        else:
            threading.Thread(target=lambda: held.wait(10) and stop.set(), daemon=True).start()
        return True

    def is_running(self, namespace: str, pod_name: str) -> bool:
        with self.lock:
            return (namespace, pod_name) in self.running

    def address_of(self, namespace: str, pod_name: str) -> str:
        return "127.0.0.1"

    def shutdown(self) -> None:
        with self.lock:
            for stop in self.running.values():
                stop.set()

    def wait_idle(self, timeout: float = 5.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if not self.running:
                    return
            time.sleep(0.01)


class Harness:
    """A store + fake runtime + controller, with helpers to submit and await workflows."""

    def __init__(self, root: Path) -> None:
        self.paths = StatePaths(root)
        root.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.paths.db)
        self.runtime = FakeRuntime()
        self.controller = Controller(self.store, self.runtime, self.paths, tick_seconds=0.2)

    def submit(self, spec: dict[str, Any], name: str = "wf", namespace: str = "argo") -> str:
        self.store.create(WORKFLOWS, namespace, {"metadata": {"name": name}, "spec": spec})
        return name

    def get(self, name: str, namespace: str = "argo") -> dict[str, Any]:
        return self.store.get(WORKFLOWS, namespace, name)

    def wait(self, name: str, timeout: float = 10.0,
             until: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            wf = self.get(name)
            if until is not None:
                if until(wf):
                    return wf
            elif wf.get("status", {}).get("phase") in ("Succeeded", "Failed", "Error"):
                return wf
            time.sleep(0.02)
        raise AssertionError(f"workflow {name} did not finish: {wf.get('status')}")

    def fresh_controller(self) -> tuple[Controller, FakeRuntime]:
        """A new controller with an empty runtime on the same store (a restarted server)."""
        runtime = FakeRuntime()
        return Controller(self.store, runtime, self.paths, tick_seconds=0.2), runtime

    @staticmethod
    def nodes_by_display(wf: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {n["displayName"]: n for n in wf["status"]["nodes"].values()}


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path / "state")
    h.controller.start()
    try:
        yield h
    finally:
        h.controller.stop()
        h.runtime.crash()
        h.store.close()
