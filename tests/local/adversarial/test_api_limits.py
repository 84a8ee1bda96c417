"""Attacks on the API's limits, through the real ``kubernetes`` client or raw HTTPS: each one is
refused with a 4xx ``Status`` (never a 500), leaves the API answering ``/version`` within 100 ms,
keeps the server's memory bounded, and a harmless workflow still finishes afterwards."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.local.adversarial.harness import (
    NAMESPACE,
    ClusterUnderTest,
    Responsiveness,
    assert_nothing_leaked,
    harmless_workflow,
    run_workflow,
    script_workflow,
    workflow_api,
)

WF_PATH = f"/apis/argoproj.io/v1alpha1/namespaces/{NAMESPACE}/workflows"
MIB = 1024 * 1024


def _context(cluster: ClusterUnderTest) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cluster.paths.tls_cert))
    context.check_hostname = False
    return context


def _raw(cluster: ClusterUnderTest, method: str, path: str, body: bytes | str | None = None,
         content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
    """One request over HTTPS with the cluster's token; returns (status, parsed JSON body)."""
    conn = http.client.HTTPSConnection("127.0.0.1", cluster.port, context=_context(cluster), timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Authorization": f"Bearer {cluster.token}",
                                                       "Content-Type": content_type})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def _rss(pid: int) -> int:
    """The resident set size of process ``pid`` in bytes (Linux)."""
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def server_pid(cluster: ClusterUnderTest) -> int:
    """The process serving ``cluster`` (``local up``'s, or this one for an in-process cluster)."""
    info = getattr(cluster, "info", None) or {}
    return int(info.get("pid") or os.getpid())


class RssSampler:
    """Samples the server process's RSS every 20 ms while active."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = _rss(pid)
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / MIB


def _still_works(cluster: ClusterUnderTest, kube: Any) -> None:
    """LIST answers, a harmless workflow finishes, and no secret leaked anywhere."""
    listed = workflow_api(kube).list_namespaced_custom_object("argoproj.io", "v1alpha1", NAMESPACE, "workflows")
    assert isinstance(listed["items"], list)
    wf = run_workflow(kube, harmless_workflow())
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    assert_nothing_leaked(cluster, kube)


def test_infinity_in_a_workflow_is_400_and_list_keeps_working(
        hostile_cluster: ClusterUnderTest, kube: Any, responsiveness: Responsiveness) -> None:
    manifest = script_workflow("echo never", spec_extra={"activeDeadlineSeconds": float("inf")})
    manifest["metadata"] = {"name": "infinite-deadline"}
    manifest.update(apiVersion="argoproj.io/v1alpha1", kind="Workflow")
    with responsiveness:
        with pytest.raises(ApiException) as caught:
            workflow_api(kube).create_namespaced_custom_object("argoproj.io", "v1alpha1", NAMESPACE, "workflows",
                                                               manifest)
        for literal in ("NaN", "-Infinity"):
            status, body = _raw(hostile_cluster, "POST", WF_PATH,
                                json.dumps(manifest).replace("Infinity", literal, 1))
            assert status == 400 and body["reason"] == "BadRequest", body
    assert caught.value.status == 400
    assert "finite" in json.loads(caught.value.body)["message"]
    with pytest.raises(ApiException) as missing:
        workflow_api(kube).get_namespaced_custom_object("argoproj.io", "v1alpha1", NAMESPACE, "workflows",
                                                        "infinite-deadline")
    assert missing.value.status == 404
    responsiveness.check()
    _still_works(hostile_cluster, kube)


def _complete(reply: bytes) -> bool:
    head, sep, body = reply.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return True


def _send_huge_body(cluster: ClusterUnderTest, size: int) -> tuple[bytes, float]:
    """POST ``size`` bytes (streamed from one 64 KiB buffer, so the client holds no copy); returns the
    response head and the seconds until it arrived."""
    chunk = b" " * 65536
    raw = socket.create_connection(("127.0.0.1", cluster.port), timeout=30)
    sock = _context(cluster).wrap_socket(raw, server_hostname="127.0.0.1")
    started = time.monotonic()
    sock.sendall(f"POST {WF_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {cluster.token}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n".encode())
    sent = 0
    sock.setblocking(False)
    reply = b""
    try:
        while sent < size and not _complete(reply):
            try:
                sent += sock.send(chunk[: min(len(chunk), size - sent)])
            except (ssl.SSLWantWriteError, BlockingIOError):
                time.sleep(0.001)
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                reply += sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                pass
        sock.settimeout(30)
        while not _complete(reply):
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    finally:
        sock.close()
    return reply, time.monotonic() - started


def test_50mib_body_is_413_quickly_with_bounded_memory(
        hostile_cluster: ClusterUnderTest, kube: Any, responsiveness: Responsiveness) -> None:
    with responsiveness, RssSampler(server_pid(hostile_cluster)) as rss:
        reply, seconds = _send_huge_body(hostile_cluster, 50 * MIB)
    print(f"50 MiB body: 413 after {seconds:.2f}s, server RSS growth {rss.growth_mib:.1f} MiB")
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"RequestEntityTooLarge" in reply and b"limit is 3145728" in reply
    assert seconds < 5.0, f"the 413 took {seconds:.2f}s"
    assert rss.growth_mib < 20, f"server RSS grew by {rss.growth_mib:.1f} MiB for a refused 50 MiB body"
    responsiveness.check()
    _still_works(hostile_cluster, kube)


@pytest.mark.parametrize(("what", "method", "path", "body"), [
    ("deep JSON", "POST", WF_PATH, '{"metadata": {"name": "deep"}, "spec": ' + "[" * 1000 + "]" * 1000 + "}"),
    ("limit=1e20", "GET", f"{WF_PATH}?limit=1e20", None),
    ("400-digit timeoutSeconds", "GET", f"{WF_PATH}?watch=true&timeoutSeconds={'9' * 400}", None),
    ("400-digit timeoutSeconds on LIST", "GET", f"{WF_PATH}?timeoutSeconds={'9' * 400}", None),
    ("bad resourceVersion", "GET", f"{WF_PATH}?watch=true&resourceVersion=abc", None),
    ("bad label selector", "GET", f"{WF_PATH}?labelSelector=a%20in%20((", None),
    ("huge integer", "POST", WF_PATH, '{"metadata": {"name": "big-int"}, "spec": {"priority": ' + "9" * 5000 + "}}"),
])
def test_malformed_requests_are_400(hostile_cluster: ClusterUnderTest, kube: Any, responsiveness: Responsiveness,
                                    what: str, method: str, path: str, body: str | None) -> None:
    with responsiveness:
        status, reply = _raw(hostile_cluster, method, path, body)
    assert status == 400, (what, status, reply)
    assert reply["kind"] == "Status" and reply["reason"] == "BadRequest", reply
    responsiveness.check()
    listed = workflow_api(kube).list_namespaced_custom_object("argoproj.io", "v1alpha1", NAMESPACE, "workflows")
    assert isinstance(listed["items"], list)


def test_container_name_traversal_is_422_and_logs_read_no_host_file(
        hostile_cluster: ClusterUnderTest, kube: Any, host_canary: Any) -> None:
    core = client.CoreV1Api(kube)
    secret_file = hostile_cluster.paths.root / "logs" / ".." / "token"
    for name in ("../../../token", "../../" + str(secret_file).lstrip("/"), "main/../../x"):
        pod = client.V1Pod(metadata=client.V1ObjectMeta(name="traversal"),
                           spec=client.V1PodSpec(containers=[client.V1Container(name=name, image="alpine")]))
        with pytest.raises(ApiException) as caught:
            core.create_namespaced_pod(NAMESPACE, pod)
        assert caught.value.status == 422
        causes = json.loads(caught.value.body)["details"]["causes"]
        assert causes[0]["field"] == "spec.containers[0].name"
    ok = client.V1Pod(metadata=client.V1ObjectMeta(name="traversal"),
                      spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="alpine")]))
    core.create_namespaced_pod(NAMESPACE, ok)
    for container in ("../../../token", "../../../server", "../../../../../../etc/passwd"):
        with pytest.raises(ApiException) as caught:
            core.read_namespaced_pod_log("traversal", NAMESPACE, container=container)
        assert caught.value.status in (400, 404)
        assert hostile_cluster.token not in (caught.value.body or "")
    core.delete_namespaced_pod("traversal", NAMESPACE)
    _still_works(hostile_cluster, kube)


WATCHERS_SCRIPT = textwrap.dedent("""
    import os, socket, ssl, sys, threading
    os.nice(10)  # the clients must not take the CPU the server needs (two cores in CI)
    port, token, cafile, path, count = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    totals = [0] * count
    ready = threading.Barrier(count + 1)
    def watch(i):
        sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port))), server_hostname="x")
        sock.sendall(f"GET {path} HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer {token}\\r\\n\\r\\n".encode())
        ready.wait()
        while True:
            data = sock.recv(1 << 20)
            if not data:
                break
            totals[i] += data.count(b'"type":')
    threads = [threading.Thread(target=watch, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    ready.wait()
    print("ready", flush=True)
    for _ in sys.stdin:  # each line asks for the counts so far
        print(sum(totals), min(totals), flush=True)
""")


@pytest.fixture
def watchers(hostile_cluster: ClusterUnderTest) -> Iterator[subprocess.Popen[str]]:
    """50 watch streams on workflows, read by a separate process that only counts events (so the
    server's memory and the probe's latency are measured without the clients in this process)."""
    proc = subprocess.Popen(  # our own interpreter and script
        [sys.executable, "-c", WATCHERS_SCRIPT, str(hostile_cluster.port), hostile_cluster.token,
         str(hostile_cluster.paths.tls_cert), f"{WF_PATH}?watch=true&timeoutSeconds=120", "50"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": ""})
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    yield proc
    proc.kill()
    proc.wait(10)


def _wait_for_delivery(watchers: subprocess.Popen[str], each: int, timeout: float) -> tuple[int, int]:
    """Ask the watcher process for its counts until every watcher has ``each`` events (or time is
    up); returns (events in total, fewest events of one watcher)."""
    assert watchers.stdin is not None and watchers.stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        watchers.stdin.write("?\n")
        watchers.stdin.flush()
        total, fewest = (int(n) for n in watchers.stdout.readline().split())
        if fewest >= each or time.monotonic() > deadline:
            return total, fewest
        time.sleep(0.25)


def _drain(response: Any) -> None:
    """Read a reply without parsing it (the connection goes back to the pool clean)."""
    assert response.data is not None


def _filler_templates(total_bytes: int) -> list[dict[str, Any]]:
    """Unused templates that make a workflow ``total_bytes`` large."""
    each = 2000
    return [{"name": f"filler-{i}", "script": {"image": "alpine", "command": ["sh"], "source": "#" * each}}
            for i in range(total_bytes // (each + 80))]


def test_large_workflow_with_50_watchers_keeps_memory_bounded_and_api_fast(
        hostile_cluster: ClusterUnderTest, kube: Any, watchers: subprocess.Popen[str],
        responsiveness: Responsiveness) -> None:
    # suspended: the controller reconciles and writes its status (more 1.4 MB events), but no pod
    # starts inside the measured window; it is resumed and must finish afterwards
    manifest = script_workflow("echo big", spec_extra={"suspend": True})
    manifest["spec"]["templates"] += _filler_templates(1_400_000)
    manifest["metadata"] = {"name": "big-and-watched"}
    api = workflow_api(kube)
    size = len(json.dumps(manifest))
    assert 1_300_000 < size < 1_500_000
    # the client shares this process (and its GIL) with the server: it skips parsing the 1.4 MB
    # replies it does not need, so the probe measures the server rather than the test
    with responsiveness, RssSampler(server_pid(hostile_cluster)) as rss:
        _drain(api.create_namespaced_custom_object(
            "argoproj.io", "v1alpha1", NAMESPACE, "workflows",
            {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", **manifest}, _preload_content=False))
        for i in range(10):
            _drain(api.patch_namespaced_custom_object(
                "argoproj.io", "v1alpha1", NAMESPACE, "workflows", "big-and-watched",
                {"metadata": {"labels": {"n": str(i)}}}, _preload_content=False))
            time.sleep(0.2)
        total, fewest = _wait_for_delivery(watchers, each=11, timeout=60.0)
    print(f"RSS growth {rss.growth_mib:.1f} MiB with 50 watchers of a {size / 1e6:.2f} MB workflow ({total} "
          f"events delivered); /version worst {max(responsiveness.samples_ms):.1f} ms over "
          f"{len(responsiveness.samples_ms)} probes")
    assert fewest >= 11, f"a watcher got only {fewest} events: the large events did not reach every watcher"
    assert rss.growth_mib < 250, f"server RSS grew by {rss.growth_mib:.1f} MiB"
    responsiveness.check()
    _drain(api.patch_namespaced_custom_object("argoproj.io", "v1alpha1", NAMESPACE, "workflows", "big-and-watched",
                                              {"spec": {"suspend": None}}, _preload_content=False))
    deadline = time.monotonic() + 60
    phase = b""
    while time.monotonic() < deadline and phase not in (b"Succeeded", b"Failed", b"Error"):
        time.sleep(0.5)
        status = api.get_namespaced_custom_object_status("argoproj.io", "v1alpha1", NAMESPACE, "workflows",
                                                         "big-and-watched", _preload_content=False).data
        found = status.split(b'"phase":"', 1)
        phase = found[1].split(b'"', 1)[0] if len(found) == 2 else b""
    # Succeeded, or Error when the controller refuses a workflow too large to track (as Argo does)
    assert phase in (b"Succeeded", b"Error"), status[-2000:]
    _still_works(hostile_cluster, kube)
