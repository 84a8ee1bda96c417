"""Harness for the adversarial tests: a local cluster attacked through its real API (the fixtures
are re-exported by conftest.py).

Every test here plays a hostile workflow author or API client against a cluster of its own (own
state directory, own token), through the real ``kubernetes`` client over HTTPS, and asserts that
the attack fails safely:

* the cluster's secrets (bearer token, OSS secret key) never show up in any workflow or pod
  object, pod log, bucket object or the server log (:func:`assert_nothing_leaked`);
* nothing is written outside the pod (:func:`host_canary`);
* the API keeps answering ``/version`` within 100 ms while the attack runs (:class:`Responsiveness`);
* other workflows keep finishing (:func:`run_workflow` on a harmless workflow afterwards).

``./dev test`` runs this package once as the invoking user and, when that is root, once more as
an unprivileged user (``AIRFLOW_ARGO_ECI_TEST_UNPRIVILEGED_USER``), so both ways a cluster is
started are covered.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union
from urllib.parse import urlsplit

import pytest

from airflow_argo_eci.local.paths import StatePaths
from airflow_argo_eci.local.server import LocalCluster as InProcessCluster

#: what the tests attack: a served cluster (the default) or, where a test needs it, an in-process one
ClusterUnderTest = Union["ServedCluster", InProcessCluster]

NAMESPACE = "argo"
#: the bound the issue sets for the API while an attack runs
MAX_VERSION_LATENCY_MS = 100.0


@dataclass
class ServedOSS:
    """Where the served cluster's OSS store listens."""

    endpoint: str
    region: str

    @property
    def port(self) -> int:
        return int(urlsplit(self.endpoint).port or 443)


class ServedCluster:
    """A local cluster run as users run it: ``airflow-argo-eci local up`` in a process of its own,
    logging to ``server.log`` in its state directory. The attacks and the ``/version`` probe then
    measure that server alone, not the test process (whose garbage collections over Airflow's heap
    would stall an in-process server and make the latency bound meaningless).

    It offers the attributes of :class:`~airflow_argo_eci.local.server.LocalCluster` that the tests
    read: ``paths``, ``token``, ``url``, ``port``, ``kubeconfig_path``, ``oss``, ``oss_credentials()``,
    plus ``info`` (``server.json``: the sandbox and limits reports)."""

    def __init__(self, state: Path, *args: str) -> None:
        self.paths = StatePaths(state.resolve())
        self._args = list(args)
        self._process: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def start(self, timeout: float = 90.0) -> ServedCluster:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        with open(self.paths.server_log, "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "airflow_argo_eci.local.cli", "local", "up", "--state-dir",
                 str(self.paths.root), "--capacity", "8", *self._args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"local up exited with {self._process.returncode}: "
                                   f"{self.paths.server_log.read_text(errors='replace')[-2000:]}")
            try:
                info = json.loads(self.paths.server_info.read_text())
            except (FileNotFoundError, ValueError):
                info = {}
            if info.get("pid") == self._process.pid:
                self.info = info
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"local up did not start within {timeout}s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    @property
    def url(self) -> str:
        return str(self.info["url"])

    @property
    def port(self) -> int:
        return int(self.info["port"])

    @property
    def token(self) -> str:
        return self.paths.token.read_text().strip()

    @property
    def kubeconfig_path(self) -> Path:
        return self.paths.kubeconfig

    @property
    def oss(self) -> ServedOSS | None:
        endpoint = self.info.get("oss_endpoint")
        return ServedOSS(str(endpoint), str(self.info.get("oss_region") or "")) if endpoint else None

    def oss_credentials(self) -> dict[str, str]:
        creds = json.loads(self.paths.oss_credentials.read_text())
        return {str(creds["access_key_id"]): str(creds["access_key_secret"])}


def serve_cluster(tmp_path_factory: pytest.TempPathFactory, name: str, *args: str) -> Iterator[ServedCluster]:
    """Start a :class:`ServedCluster` in a fresh state directory (``args``: extra ``local up`` flags)."""
    cluster = ServedCluster(tmp_path_factory.mktemp(name), *args).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def hostile_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedCluster]:
    """A served cluster of its own per test module (an attack must not leave state for the next module)."""
    yield from serve_cluster(tmp_path_factory, "hostile-cluster")


@pytest.fixture(scope="module")
def kube(hostile_cluster: ClusterUnderTest) -> Iterator[Any]:
    """A ``kubernetes`` ApiClient for the hostile cluster (the real client, over HTTPS)."""
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(hostile_cluster.kubeconfig_path))
    yield client
    client.close()


def cluster_secrets(cluster: ClusterUnderTest) -> list[str]:
    """The strings that must never leave the cluster's state directory."""
    found = [cluster.token]
    creds = cluster.oss_credentials() if cluster.oss is not None else {}
    found.extend(secret for secret in creds.values() if secret)
    return found


def _version_once(cluster: ClusterUnderTest, context: ssl.SSLContext) -> float:
    request = urllib.request.Request(cluster.url + "/version", headers={"Authorization": f"Bearer {cluster.token}"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=10, context=context) as response:  # loopback https
        response.read()
    return (time.perf_counter() - started) * 1000.0


class Responsiveness:
    """Probes ``GET /version`` every ``interval`` seconds on a thread while an attack runs."""

    def __init__(self, cluster: ClusterUnderTest, interval: float = 0.05) -> None:
        self.cluster = cluster
        self.interval = interval
        self.samples_ms: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._context = ssl.create_default_context(cafile=str(cluster.paths.tls_cert))
        self._context.check_hostname = False
        self._thread = threading.Thread(target=self._run, name="version-probe", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples_ms.append(_version_once(self.cluster, self._context))
            except Exception as exc:  # a refused or failed probe is a finding, recorded for the assert
                self.errors.append(repr(exc))
            self._stop.wait(self.interval)

    def __enter__(self) -> Responsiveness:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)

    def check(self, limit_ms: float = MAX_VERSION_LATENCY_MS) -> None:
        """Assert every probe answered, and within ``limit_ms`` (median and worst reported)."""
        assert not self.errors, f"/version failed during the attack: {self.errors[:3]}"
        assert self.samples_ms, "the probe never ran"
        worst = max(self.samples_ms)
        assert worst < limit_ms, (
            f"/version took {worst:.1f} ms at worst (median {statistics.median(self.samples_ms):.1f} ms, "
            f"{len(self.samples_ms)} probes) during the attack; the bound is {limit_ms} ms"
        )


@pytest.fixture
def responsiveness(hostile_cluster: ClusterUnderTest) -> Iterator[Responsiveness]:
    """Use as ``with responsiveness: <attack>`` then ``responsiveness.check()``."""
    probe = Responsiveness(hostile_cluster)
    yield probe
    probe._stop.set()


def workflow_api(kube: Any) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(kube)


def submit_workflow(kube: Any, manifest: dict[str, Any], namespace: str = NAMESPACE) -> dict[str, Any]:
    """Create ``manifest`` (a Workflow dict) through the API; returns the created object."""
    body = dict(manifest)
    body.setdefault("apiVersion", "argoproj.io/v1alpha1")
    body.setdefault("kind", "Workflow")
    meta = dict(body.get("metadata") or {})
    if "name" not in meta and "generateName" not in meta:
        meta["generateName"] = "hostile-"
    body["metadata"] = meta
    return workflow_api(kube).create_namespaced_custom_object(  # type: ignore[no-any-return]
        "argoproj.io", "v1alpha1", namespace, "workflows", body)


def wait_workflow(kube: Any, name: str, namespace: str = NAMESPACE, timeout: float = 60.0) -> dict[str, Any]:
    """Poll until the workflow has a terminal phase; returns the object (fails the test on timeout)."""
    api = workflow_api(kube)
    deadline = time.monotonic() + timeout
    wf: dict[str, Any] = {}
    while time.monotonic() < deadline:
        wf = api.get_namespaced_custom_object("argoproj.io", "v1alpha1", namespace, "workflows", name)
        if (wf.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Error"):
            return wf
        time.sleep(0.1)
    pytest.fail(f"workflow {namespace}/{name} did not finish within {timeout}s: {wf.get('status')}")


def run_workflow(kube: Any, manifest: dict[str, Any], namespace: str = NAMESPACE,
                 timeout: float = 60.0) -> dict[str, Any]:
    """Submit and wait; returns the finished Workflow object."""
    created = submit_workflow(kube, manifest, namespace)
    return wait_workflow(kube, created["metadata"]["name"], namespace, timeout)


def script_workflow(source: str, *, image: str = "alpine", outputs: dict[str, Any] | None = None,
                    container_extra: dict[str, Any] | None = None,
                    spec_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A one-step Workflow running ``source`` with ``sh`` (the hostile code under test)."""
    template: dict[str, Any] = {
        "name": "main",
        "script": {"image": image, "command": ["sh"], "source": source, **(container_extra or {})},
    }
    if outputs:
        template["outputs"] = outputs
    return {"spec": {"entrypoint": "main", "templates": [template], **(spec_extra or {})}}


def harmless_workflow() -> dict[str, Any]:
    return script_workflow("echo still-alive")


def pod_logs(kube: Any, wf: dict[str, Any], namespace: str = NAMESPACE) -> str:
    """Every pod log of ``wf``, concatenated (raw bytes decoded, as ``kubectl logs`` shows them)."""
    from kubernetes import client

    core = client.CoreV1Api(kube)
    out = []
    for node in ((wf.get("status") or {}).get("nodes") or {}).values():
        if node.get("type") != "Pod":
            continue
        pod = _pod_name(wf, node)
        try:
            resp = core.read_namespaced_pod_log(pod, namespace, container="main", _preload_content=False)
            out.append(resp.data.decode("utf-8", errors="replace"))
        except client.ApiException as exc:
            if exc.status != 404:
                raise
    return "\n".join(out)


def _pod_name(wf: dict[str, Any], node: dict[str, Any]) -> str:
    from airflow_argo_eci.conventions import pod_name

    return pod_name(wf["metadata"]["name"], node["name"], node.get("templateName") or "")


def assert_nothing_leaked(cluster: ClusterUnderTest, kube: Any, extra_text: str = "") -> None:
    """No secret of the cluster appears in any Workflow, Pod, Event or ConfigMap, any pod log file,
    any object of the artifact bucket, the server log or ``extra_text``."""
    from kubernetes import client

    secrets = cluster_secrets(cluster)
    core = client.CoreV1Api(kube)
    api = workflow_api(kube)
    texts: list[tuple[str, str]] = [("extra", extra_text)]
    for ns in ("argo", "default"):
        wfs = api.list_namespaced_custom_object("argoproj.io", "v1alpha1", ns, "workflows")
        texts.append((f"workflows/{ns}", repr(wfs)))
        texts.append((f"pods/{ns}", repr(kube.sanitize_for_serialization(core.list_namespaced_pod(ns)))))
    logs_dir = cluster.paths.root / "logs"
    for path in logs_dir.rglob("*") if logs_dir.exists() else []:
        if path.is_file() and not path.is_symlink():
            texts.append((str(path), path.read_text(errors="replace")))
    if cluster.paths.server_log.exists():
        texts.append(("server.log", cluster.paths.server_log.read_text(errors="replace")))
    bucket = cluster.paths.oss_dir
    for path in bucket.rglob("*") if bucket.exists() else []:
        if path.is_file() and not path.is_symlink() and path.stat().st_size < 64 * 1024 * 1024:
            texts.append((str(path), path.read_bytes().decode("latin-1")))
    for where, text in texts:
        for secret in secrets:
            assert secret not in text, f"a cluster secret leaked into {where}"


@pytest.fixture
def host_canary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh host directory path that no pod may create or write into; checked after the test."""
    base = Path("/tmp") / f"aae-canary-{uuid.uuid4().hex[:12]}"  # the host's /tmp, on purpose
    yield base
    assert not os.path.lexists(base), f"a pod wrote {base} on the host"
