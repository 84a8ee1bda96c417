"""The running stack of an e2e session, as the tests see it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_argo_eci.stack.client import StackClient
from airflow_argo_eci.stack.config import StackPaths


class Stack:
    """The running stack of the session: paths, recorded state and a REST client."""

    def __init__(self, paths: StackPaths, state: dict[str, Any]) -> None:
        self.paths = paths
        self.state = state
        self.client = StackClient(paths, state)

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
        """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(interval)
        pytest.fail(f"{what}: not within {timeout:.0f}s (service logs in {self.paths.logs})")

    def ti(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return next(t for t in self.client.task_instances(dag_id, run_id) if t["task_id"] == task_id)

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.client.dag_run(dag_id, run_id)["state"])
