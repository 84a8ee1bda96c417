"""The nginx and curl stand-ins: in a real pod sandbox (nginx on its shifted port, curl sent there),
and on their own (welcome page, URL rewriting, the Python curl without a host curl)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from kubernetes import client

from airflow_argo_eci.local.runtime.images import BUNDLED_DIR, ImageTable
from airflow_argo_eci.stack.ports import free_port
from tests.local.argo.clusterwf import leaf, run


def _load(name: str) -> ModuleType:
    sys.path.insert(0, str(BUNDLED_DIR))
    try:
        spec = importlib.util.spec_from_file_location(f"bundled_{name}", BUNDLED_DIR / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BUNDLED_DIR))


curl = _load("curl")


@pytest.fixture(scope="module")
def nginx() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(BUNDLED_DIR / "nginx.py"), "-g", "daemon off;"],
                            env={**os.environ, "NGINX_PORT": str(port)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
    yield port
    proc.terminate()
    assert proc.wait(10) == 0


def test_table_has_nginx_and_curl(tmp_path: Path) -> None:
    table = ImageTable(tmp_path, image_map={})
    nginx_image = table.resolve("nginx:1.13")
    assert nginx_image.entrypoint == ["nginx", "-g", "daemon off;"]
    assert nginx_image.bin_dir is not None and "nginx.py" in (nginx_image.bin_dir / "nginx").read_text()
    curl_image = table.resolve("curlimages/curl:latest")
    assert curl_image.entrypoint == ["curl"]
    assert curl_image.bin_dir is not None and "curl.py" in (curl_image.bin_dir / "curl").read_text()
    assert "has no local entrypoint" in table.unknown_image_message("acme/tool")
    assert table.resolve("acme/tool").entrypoint is None


def test_rewrite_url_moves_privileged_loopback_ports() -> None:
    assert curl.rewrite_url("http://127.0.0.1/") == "http://127.0.0.1:8080/"
    assert curl.rewrite_url("http://localhost:80/x?y=1") == "http://localhost:8080/x?y=1"
    assert curl.rewrite_url("https://127.0.0.2/") == "https://127.0.0.2:8443/"
    assert curl.rewrite_url("127.0.0.1") == "http://127.0.0.1:8080"
    assert curl.rewrite_url("http://127.0.0.1:9000/") == "http://127.0.0.1:9000/"
    assert curl.rewrite_url("http://example.com/") == "http://example.com/"
    assert curl.rewrite_args(["-H", "http://127.0.0.1/", "-sG", "http://127.0.0.1/"]) == [
        "-H", "http://127.0.0.1/", "-sG", "http://127.0.0.1:8080/"]


def test_nginx_serves_the_welcome_page(nginx: int) -> None:
    with socket.create_connection(("127.0.0.1", nginx)) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200")
    assert b"Server: nginx/1.13" in head
    assert b"<title>Welcome to nginx!</title>" in body


def test_python_curl_stand_in(nginx: int, capfd: pytest.CaptureFixture[str]) -> None:
    assert curl.fallback(["-s", "-G", f"http://127.0.0.1:{nginx}/", "-d", "a=1"]) == 0
    assert "Welcome to nginx!" in capfd.readouterr().out
    assert curl.fallback(["-sf", f"http://127.0.0.1:{nginx}/missing"]) == 22
    assert curl.fallback(["--proxy", "x", "http://127.0.0.1/"]) == 2
    assert "option --proxy is not supported" in capfd.readouterr().err
    assert curl.fallback(["-s", "http://127.0.0.1:1/"]) == 7


def test_nginx_and_curl_in_a_pod(kube_api_client: client.ApiClient) -> None:
    script = (f"{sys.executable} {BUNDLED_DIR / 'nginx.py'} 2>/tmp/nginx.err & "
              "until curl -s http://127.0.0.1/ > /tmp/out; do sleep 0.2; done; cat /tmp/out /tmp/nginx.err")
    wf = run(kube_api_client, {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "nginx-curl-"},
        "spec": {"entrypoint": "main", "activeDeadlineSeconds": 60, "templates": [
            {"name": "main", "container": {"image": "curlimages/curl:latest", "command": ["sh", "-c"],
                                           "args": [script]}}]}})
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    result = leaf(wf, "main")["outputs"]["result"]
    assert "<h1>Welcome to nginx!</h1>" in result
    assert "listening on 8080" in result


def test_curl_image_sh_takes_bash_redirections_with_an_nginx_sidecar(kube_api_client: client.ApiClient) -> None:
    """Argo's sidecar-nginx example: the curl image's ``sh`` (busybox ash) takes ``>& file``."""
    wf = run(kube_api_client, {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "sidecar-nginx-"},
        "spec": {"entrypoint": "main", "activeDeadlineSeconds": 60, "templates": [
            {"name": "main",
             "container": {"image": "curlimages/curl:latest", "command": ["sh", "-c"],
                           "args": ["until `curl -G 'http://127.0.0.1/' >& /tmp/out`; do echo sleep && sleep 1; "
                                    "done && cat /tmp/out"]},
             "sidecars": [{"name": "nginx", "image": "nginx:1.13", "command": ["nginx", "-g", "daemon off;"]}]}]}})
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    assert "<h1>Welcome to nginx!</h1>" in leaf(wf, "main")["outputs"]["result"]
