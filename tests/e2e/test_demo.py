"""``./dev demo --once``: starts the stack, runs a DAG through the REST API, prints the live view
and the result, stops everything and exits with the run's outcome. Run here with the failing
example DAG (short, and it checks that a failed run exits non-zero); the flagship run itself is
covered by test_stack.py on the same stack code."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_argo_eci.stack import services
from airflow_argo_eci.stack.config import StackPaths
from airflow_argo_eci.stack.ports import free_port

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_demo_once_exits_with_the_runs_outcome_and_leaves_nothing(tmp_path: Path) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is missing: the local cluster refuses to run pods without its sandbox")
    state_dir = tmp_path / "demo"
    pids: dict[str, int] = {}
    proc = subprocess.Popen([sys.executable, "-m", "airflow_argo_eci.stack.demo", "--once", "--dag", "argo_failing",
                             "--dags-folder", str(REPO / "dags"), "--port", str(free_port()),
                             "--state-dir", str(state_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        out, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if (state_dir / "stack.json").exists():  # the demo did not clean up: stop what it left
            pids = json.loads((state_dir / "stack.json").read_text())["pids"]
            services.stop(StackPaths(state_dir))
    assert proc.returncode == 1, out
    assert "triggered argo_failing through the REST API (no logical date)" in out, out
    assert "task fails" in out and "failed" in out, out
    assert "run manual__" in out and ": FAILED" in out, out
    assert "Airflow UI:   http://127.0.0.1:" in out and "login:        admin / " in out, out
    assert "Airflow's logs go to" in out and "[info" not in out, out  # Airflow's own lines went to files
    assert not (state_dir / "stack.json").exists() and not pids
