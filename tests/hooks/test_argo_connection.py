"""Connection settings, test_connection, TLS, extras allow-list and retries of transient errors."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_argo_eci.errors import TlsVerificationError, TransientError, UnauthorizedError, WorkflowSpecError
from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook
from airflow_argo_eci.hooks.argo_connection import ALLOWED_EXTRAS
from airflow_argo_eci.hooks.connection_form import CONN_FIELDS
from airflow_argo_eci.local.server import LocalCluster
from airflow_argo_eci.stack.ports import free_port
from tests.conftest import ClusterTarget
from tests.hooks.conftest import NS, connection_env, phase_in, wait_for, workflow

MakeHook = Callable[[dict[str, Any]], ArgoWorkflowsHook]


def test_connection_ok(hook: ArgoWorkflowsHook) -> None:
    ok, message = hook.test_connection()
    assert ok, message
    assert f"namespace {NS!r}" in message


def test_connection_bad_token(local_cluster: LocalCluster, transport: str, make_hook: MakeHook,
                              tmp_path: Path) -> None:
    if transport == "argo_server":
        conn = connection_env(local_cluster, transport)
        conn["password"] = "wrong-token-123456"
    else:
        doc = yaml.safe_load(local_cluster.kubeconfig_path.read_text())
        doc["users"][0]["user"]["token"] = "wrong-token-123456"
        conn = connection_env(local_cluster, transport)
        conn["extra"].pop("kube_config_path")
        conn["extra"]["kube_config"] = yaml.safe_dump(doc)  # inline kubeconfig
    hook = make_hook(conn)
    ok, message = hook.test_connection()
    assert not ok
    assert "401" in message and "wrong-token" not in message
    with pytest.raises(UnauthorizedError):
        hook.get_workflow("anything")


def test_connection_unreachable(local_cluster: LocalCluster, transport: str, make_hook: MakeHook,
                                tmp_path: Path) -> None:
    port = free_port()
    if transport == "argo_server":
        conn = connection_env(local_cluster, transport, max_retries=1, retry_backoff=0.01)
        conn["host"] = f"https://127.0.0.1:{port}"
    else:
        doc = yaml.safe_load(local_cluster.kubeconfig_path.read_text())
        doc["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(doc))
        conn = connection_env(local_cluster, transport, kube_config_path=str(path), max_retries=1,
                              retry_backoff=0.01)
    hook = make_hook(conn)
    ok, message = hook.test_connection()
    assert not ok and "connection failed" in message and str(port) in message
    with pytest.raises(TransientError) as err:
        hook.list_workflows()
    assert err.value.retry_safe and err.value.status is None


def test_tls_verified_by_default(local_cluster: LocalCluster, transport: str, make_hook: MakeHook,
                                 tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    if transport == "argo_server":
        conn = connection_env(local_cluster, transport)
        conn["extra"].pop("ca_cert_path")
    else:
        doc = yaml.safe_load(local_cluster.kubeconfig_path.read_text())
        doc["clusters"][0]["cluster"].pop("certificate-authority-data")
        path = tmp_path / "kubeconfig-no-ca"
        path.write_text(yaml.safe_dump(doc))
        conn = connection_env(local_cluster, transport, kube_config_path=str(path))
    hook = make_hook(conn)
    ok, message = hook.test_connection()
    assert not ok and "TLS certificate verification failed" in message and "ca_cert_path" in message
    with pytest.raises(TlsVerificationError):
        hook.list_workflows()

    # an explicit CA file works; verify_ssl=false works too but warns
    conn["extra"]["ca_cert_path"] = str(local_cluster.paths.tls_cert)
    assert make_hook(conn).test_connection()[0]
    del conn["extra"]["ca_cert_path"]
    conn["extra"]["verify_ssl"] = False
    with caplog.at_level(logging.WARNING):
        assert make_hook(conn).test_connection()[0]
    assert "TLS verification is disabled" in caplog.text


def test_unknown_extras_rejected(local_cluster: LocalCluster, make_hook: MakeHook) -> None:
    hook = make_hook(connection_env(local_cluster, "kubernetes", kube_confg_path="/typo"))
    with pytest.raises(WorkflowSpecError, match=r"unknown extra 'kube_confg_path'.*allowed extras: .*kube_config_path"):
        hook.get_workflow("x")
    assert not hook.test_connection()[0]
    hook = make_hook(connection_env(local_cluster, "argo_server", context="ctx"))
    with pytest.raises(WorkflowSpecError, match="only valid with transport 'kubernetes'"):
        hook.list_workflows()
    conn = connection_env(local_cluster, "kubernetes")
    conn["extra"]["transport"] = "grpc"
    hook = make_hook(conn)
    with pytest.raises(WorkflowSpecError, match="'transport' must be one of kubernetes, argo_server"):
        hook.list_workflows()
    hook = make_hook(connection_env(local_cluster, "kubernetes", kube_config="clusters: [", request_timeout=3))
    with pytest.raises(WorkflowSpecError, match="kube_config_path and kube_config are alternatives"):
        hook.list_workflows()


def test_form_prefixed_extras_and_inline_kubeconfig(local_cluster: LocalCluster, make_hook: MakeHook) -> None:
    kubeconfig = local_cluster.kubeconfig_path.read_text()
    hook = make_hook({"conn_type": "argo_workflows", "extra": {
        "extra__argo_workflows__kube_config": json.dumps(yaml.safe_load(kubeconfig)),
        "extra__argo_workflows__namespace": NS, "extra__argo_workflows__ui_url": ""}})
    assert local_cluster.token not in repr(hook.settings)
    assert hook.settings.kube_config is not None and hook.settings.ui_url is None
    name = hook.create_workflow(workflow("hook-inline"))["metadata"]["name"]
    assert wait_for(hook, name, phase_in("Succeeded"))["metadata"]["namespace"] == NS


def test_form_metadata(local_cluster: LocalCluster) -> None:
    behaviour = ArgoWorkflowsHook.get_ui_field_behaviour()
    assert "login" in behaviour["hidden_fields"] and "host" in behaviour["placeholders"]
    assert set(behaviour["placeholders"]) - {"host", "password"} <= set(CONN_FIELDS)
    # every form field is an extra the hook accepts
    hook_extras = {key for keys in ALLOWED_EXTRAS.values() for key in keys}
    assert set(CONN_FIELDS) <= hook_extras
    assert CONN_FIELDS["kube_config"]["schema"]["format"] == "password"


# ---------------------------------------------------------------------------- transient errors


class _FlakyServer:
    """An Argo Server stand-in on plain http: answers ``statuses`` first, then 200 with a list."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.requests: list[tuple[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                outer.requests.append((self.command, self.path))
                status = outer.statuses.pop(0) if outer.statuses else 200
                body: dict[str, Any] = {"code": 14, "message": "unavailable"} if status != 200 else {
                    "metadata": {"resourceVersion": "7"}, "items": [{"metadata": {"name": "wf"}}]}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flaky() -> Iterator[Callable[[list[int]], _FlakyServer]]:
    servers: list[_FlakyServer] = []

    def make(statuses: list[int]) -> _FlakyServer:
        servers.append(_FlakyServer(statuses))
        return servers[-1]

    yield make
    for srv in servers:
        srv.close()


def _flaky_conn(srv: _FlakyServer, max_retries: int) -> dict[str, Any]:
    return {"conn_type": "argo_workflows", "host": srv.url, "password": "tok-123456",
            "extra": {"transport": "argo_server", "namespace": NS, "max_retries": max_retries, "retry_backoff": 0.01}}


def test_transient_errors_retried_with_backoff(flaky: Callable[[list[int]], _FlakyServer], make_hook: MakeHook) -> None:
    srv = flaky([503, 429])
    hook = make_hook(_flaky_conn(srv, 3))
    assert [w["metadata"]["name"] for w in hook.list_workflows()] == ["wf"]
    assert len(srv.requests) == 3 and all(path.startswith(f"/api/v1/workflows/{NS}") for _, path in srv.requests)

    srv = flaky([503, 503, 503])
    hook = make_hook(_flaky_conn(srv, 1))
    with pytest.raises(TransientError) as err:
        hook.get_workflow("wf")
    assert err.value.status == 503 and len(srv.requests) == 2


async def test_async_transient_errors_retried(flaky: Callable[[list[int]], _FlakyServer], make_hook: MakeHook) -> None:
    srv = flaky([502])
    hook = make_hook(_flaky_conn(srv, 2))
    listed = await hook.alist_workflows()
    items, rv = listed, listed.resource_version
    assert rv == "7" and len(items) == 1 and len(srv.requests) == 2
    await hook.aclose()


def test_create_not_retried_after_server_error(flaky: Callable[[list[int]], _FlakyServer],
                                               make_hook: MakeHook) -> None:
    # a 5xx on create may have created the workflow: never send it twice
    srv = flaky([500])
    with pytest.raises(TransientError):
        make_hook(_flaky_conn(srv, 3)).create_workflow(workflow("x"))
    assert [method for method, _ in srv.requests] == ["POST"]
    # 429 means the request was not processed: retried
    srv = flaky([429])
    make_hook(_flaky_conn(srv, 3)).create_workflow(workflow("x"))
    assert [method for method, _ in srv.requests] == ["POST", "POST"]


def test_any_cluster_lifecycle(any_cluster: ClusterTarget, make_hook: MakeHook) -> None:
    """Create, get, list, stop and delete on the local cluster and on a real one (KUBECONFIG)."""
    hook = make_hook({"conn_type": "argo_workflows",
                      "extra": {"kube_config_path": str(any_cluster.kubeconfig), "namespace": any_cluster.namespace}})
    assert hook.test_connection()[0]
    created = hook.create_workflow(workflow("hook-any", "sleep 30", labels={"hook-test": "any"}))
    name = created["metadata"]["name"]
    try:
        assert name in [w["metadata"]["name"] for w in hook.list_workflows(label_selector="hook-test=any")]
        assert hook.stop_workflow(name)["spec"]["shutdown"] == "Stop"
        assert hook.get_workflow(name)["spec"]["shutdown"] == "Stop"
    finally:
        hook.delete_workflow(name)
