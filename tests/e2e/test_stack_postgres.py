"""The flagship run of the e2e tier on PostgreSQL (``stack up --db postgres``): a private cluster
under the stack, started as the ``postgres`` user when root, on a loopback port."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import pytest

from airflow_argo_eci.stack import services
from airflow_argo_eci.stack.postgres import PostgresError, server_binaries
from tests.e2e.conftest import start_stack
from tests.e2e.stack import Stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg_stack() -> Iterator[Stack]:
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip("psycopg 3 is not installed (`pip install -e '.[dev]'` brings it)")
    try:
        server_binaries()
    except PostgresError as exc:
        pytest.skip(str(exc))
    yield from start_stack("postgres")


def test_flagship_succeeds_on_postgres(pg_stack: Stack) -> None:
    state = services.read_state(pg_stack.paths)
    assert state and state["db"] == "postgres" and "postgres" in state["pids"]
    cfg = (pg_stack.paths.airflow_cfg).read_text()
    assert "sql_alchemy_conn = postgresql+psycopg://" in cfg
    assert os.stat(pg_stack.paths.airflow_cfg).st_mode & 0o077 == 0  # it holds the database password

    run_id = pg_stack.client.trigger("argo_eci_fanout")
    state_of_run = pg_stack.wait_for(
        "the flagship run on PostgreSQL finishes",
        lambda: (s := pg_stack.run_state("argo_eci_fanout", run_id)) in ("success", "failed") and s, timeout=300)
    assert state_of_run == "success", {t["task_id"]: t["state"]
                                       for t in pg_stack.client.task_instances("argo_eci_fanout", run_id)}


def test_postgres_listens_on_loopback_only(pg_stack: Stack) -> None:
    state = services.read_state(pg_stack.paths)
    assert state
    postgres = services.group_members({int(state["pids"]["postgres"])})
    sockets = services.listening_sockets(postgres)
    assert sockets, "the PostgreSQL server holds no listening socket"
    assert all(services.is_loopback(address) for _, address in sockets), sockets
