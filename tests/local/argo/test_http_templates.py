"""HTTP templates on the local cluster, through the kubernetes client, against a local HTTP server:
method, headers (also from Secrets), body, successCondition, non-2xx, timeouts and bad input."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kubernetes import client

from airflow_argo_eci.local.argo.reconcile.http import HttpRequest, send
from airflow_argo_eci.local.server import LocalCluster
from tests.local.argo.clusterwf import NAMESPACE, get, leaf, run, submit, wait, wait_for_node


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return

    def _reply(self) -> None:
        if self.path.startswith("/slow"):
            time.sleep(3)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        status = 418 if self.path.startswith("/teapot") else 200
        payload = json.dumps({"method": self.command, "path": self.path, "token": self.headers.get("X-Token"),
                              "body": body}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Served-By", "test")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = _reply


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _http_wf(http: dict[str, object]) -> dict[str, object]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "http-"},
            "spec": {"entrypoint": "main", "templates": [{"name": "main", "http": http}]}}


def test_post_with_secret_header_and_condition(kube_api_client: client.ApiClient, server: str) -> None:
    core = client.CoreV1Api(kube_api_client)
    core.create_namespaced_secret(NAMESPACE, client.V1Secret(
        metadata=client.V1ObjectMeta(name="http-token"),
        data={"token": base64.b64encode(b"s3cret").decode()}))
    wf = run(kube_api_client, _http_wf({
        "method": "POST", "url": f"{server}/echo", "body": "hello",
        "headers": [{"name": "X-Token", "valueFrom": {"secretKeyRef": {"name": "http-token", "key": "token"}}}],
        "successCondition": 'response.statusCode == 200 && response.headers["X-Served-By"][0] == "test"',
    }))
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    node = leaf(wf, "main")
    assert node["type"] == "HTTP"
    assert json.loads(node["outputs"]["result"]) == {"method": "POST", "path": "/echo", "token": "s3cret",
                                                     "body": "hello"}


def test_non_2xx_and_false_condition_fail(kube_api_client: client.ApiClient, server: str) -> None:
    node = leaf(run(kube_api_client, _http_wf({"url": f"{server}/teapot"})), "main")
    assert (node["phase"], node["message"]) == ("Failed", "received non-2xx response code: 418")
    assert '"path": "/teapot"' in node["outputs"]["result"]
    cond = "response.statusCode == 201"
    node = leaf(run(kube_api_client, _http_wf({"url": f"{server}/x", "successCondition": cond})), "main")
    assert (node["phase"], node["message"]) == ("Failed", f"successCondition '{cond}' evaluated false")


def test_timeout_fails_without_blocking_the_controller(kube_api_client: client.ApiClient, server: str) -> None:
    slow = submit(kube_api_client, _http_wf({"url": f"{server}/slow", "timeoutSeconds": 2}))
    wait_for_node(kube_api_client, slow, "Running", node_type="HTTP")
    started = time.monotonic()
    # meanwhile other workflows go on: the request runs on a worker thread
    quick = run(kube_api_client, _http_wf({"url": f"{server}/quick"}))
    assert quick["status"]["phase"] == "Succeeded"
    assert time.monotonic() - started < 2
    assert get(kube_api_client, slow)["status"]["phase"] == "Running"
    node = leaf(wait(kube_api_client, slow), "main")
    assert node["phase"] == "Failed"
    assert node["message"] == f'Get "{server}/slow": context deadline exceeded (timeout after 2s)'


@pytest.mark.parametrize(("http", "message"), [
    ({"url": "http://127.0.0.1:1/nothing"}, 'Get "http://127.0.0.1:1/nothing": '),
    ({"url": "{{server}}", "headers": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]},
     "templates.main.http.headers[0].valueFrom.secretKeyRef: secret 'nope' not found"),
    ({"url": "{{server}}", "timeoutSeconds": -1}, "templates.main.http.timeoutSeconds must be positive"),
])
def test_bad_requests_fail_with_the_reason(kube_api_client: client.ApiClient, server: str,
                                           http: dict[str, object], message: str) -> None:
    if http["url"] == "{{server}}":
        http = {**http, "url": server}
    node = leaf(run(kube_api_client, _http_wf(http)), "main")
    assert node["phase"] == "Failed"
    assert node["message"].startswith(message), node["message"]


def test_send_reports_go_style_errors() -> None:
    response = send(HttpRequest("GET", "not a url", (), b"", 1.0, False))
    assert response.error.startswith('Get "not a url": ')


def test_insecure_skip_verify(local_cluster: LocalCluster) -> None:
    """The local cluster's own HTTPS endpoint has a self-signed certificate."""
    url = f"{local_cluster.url}/version"
    verified = send(HttpRequest("GET", url, (), b"", 10.0, False))
    assert verified.error.startswith(f'Get "{url}": ') and "CERTIFICATE_VERIFY_FAILED" in verified.error
    skipped = send(HttpRequest("GET", url, (), b"", 10.0, True))
    assert skipped.error == "" and skipped.status_code in (200, 401, 403)
