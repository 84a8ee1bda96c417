"""One stack for the whole e2e session: ``stack up`` with the example DAGs and the test DAGs.

The stack's DAGs folder is a temporary directory linking the flagship DAG (with its
``workflows/``) and ``tests/e2e/dags/*.py``. Everything the tests do goes through Airflow's REST
API (and the cluster's Kubernetes API to look at workflows), never through operator methods.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_argo_eci.stack import services
from airflow_argo_eci.stack.config import StackPaths, StackSettings
from airflow_argo_eci.stack.ports import free_port
from tests.e2e.stack import Stack

REPO = Path(__file__).resolve().parents[2]
E2E_DAGS = ("argo_eci_fanout", "argo_eci_fluid_md5", "e2e_slow_deferred")


def _dags_folder(root: Path) -> Path:
    folder = root / "dags"
    folder.mkdir()
    (folder / "argo_eci_fanout.py").symlink_to(REPO / "dags" / "argo_eci_fanout.py")
    (folder / "argo_eci_fluid_md5.py").symlink_to(REPO / "dags" / "argo_eci_fluid_md5.py")
    (folder / "workflows").symlink_to(REPO / "dags" / "workflows")
    for dag in (Path(__file__).parent / "dags").glob("*.py"):
        (folder / dag.name).symlink_to(dag)
    return folder


def start_stack(db: str = "sqlite") -> Iterator[Stack]:
    """Start a stack on a temporary state directory with the e2e DAGs unpaused; stop it afterwards
    and fail when any of its processes is left."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is missing: the local cluster refuses to run pods without its sandbox; "
                    "`./dev setup` installs it as root")
    root = Path(tempfile.mkdtemp(prefix=f"e2e-stack-{db}-"))
    paths = StackPaths(root / "state")
    settings = StackSettings(dags_folder=_dags_folder(root), port=free_port(), db=db, schedules=False)
    state = services.start(paths, settings)
    running = Stack(paths, state)
    try:
        running.wait_for("the dag-processor parses the e2e DAGs",
                         lambda: set(E2E_DAGS) <= set(running.client.dag_ids()), timeout=120, interval=1)
        for dag_id in E2E_DAGS:
            running.client.unpause(dag_id)
        yield running
    finally:
        running.client.close()
        left = services.stop(paths)
        if db == "postgres":
            from airflow_argo_eci.stack.postgres import remove_data

            remove_data(paths)
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"processes of the stack left behind: {left}"


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The session's stack on SQLite (the default database)."""
    yield from start_stack("sqlite")
