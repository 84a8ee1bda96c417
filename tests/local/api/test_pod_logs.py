"""``pods/log``: tail, timestamps, since, container choice and follow until the pod finishes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from airflow_argo_eci.local.api.pod_logs import parse_timestamp
from airflow_argo_eci.local.api.resources import PODS
from tests.local.api.apiserver_helpers import ApiServer

NS = "argo"


@pytest.fixture(scope="module")
def core(api_server: ApiServer) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(config_file=str(api_server.kubeconfig))
    yield client.CoreV1Api(api)
    api.close()


def stamp(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


def make_pod(core: client.CoreV1Api, name: str, containers: tuple[str, ...] = ("main", "wait")) -> None:
    core.create_namespaced_pod(
        NS,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1PodSpec(
                containers=[client.V1Container(name=c, image="alpine") for c in containers]
            ),
        ),
    )


def write_log(path: Path, lines: list[tuple[datetime, str]], *, partial: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        for when, text in lines:
            fh.write(f"{stamp(when)} {text}\n")
        fh.write(partial)


def read_log(core: client.CoreV1Api, name: str, namespace: str, **kwargs: object) -> str:
    """The raw body: kubernetes 36 returns the repr of the bytes for ``str`` responses
    (kubernetes-client/python#2596), so read the undecoded response instead."""
    resp = core.read_namespaced_pod_log(name, namespace, _preload_content=False, **kwargs)
    return resp.data.decode()


def test_parse_timestamp() -> None:
    assert parse_timestamp("2024-01-01T00:00:00Z") == 1704067200.0
    assert parse_timestamp("2024-01-01T00:00:01.500000000Z") == pytest.approx(1704067201.5)
    assert parse_timestamp("2024-01-01T01:00:00+01:00") == 1704067200.0


def test_read_tail_timestamps_since(api_server: ApiServer, core: client.CoreV1Api) -> None:
    make_pod(core, "logs1")
    now = datetime.now(timezone.utc)
    old = now - timedelta(hours=1)
    write_log(
        api_server.paths.log_file(NS, "logs1", "main"),
        [(old, "first"), (now, "second"), (now, "third line")],
        partial=f"{stamp(now)} no newline",
    )
    write_log(api_server.paths.log_file(NS, "logs1", "wait"), [(now, "from wait")])

    assert read_log(core, "logs1", NS) == "first\nsecond\nthird line\nno newline\n"
    assert read_log(core, "logs1", NS, tail_lines=2) == "third line\nno newline\n"
    assert read_log(core, "logs1", NS, tail_lines=0) == ""
    with_ts = read_log(core, "logs1", NS, tail_lines=1, timestamps=True)
    assert with_ts == f"{stamp(now)} no newline\n"
    assert read_log(core, "logs1", NS, since_seconds=600) == "second\nthird line\nno newline\n"
    assert read_log(core, "logs1", NS, container="wait") == "from wait\n"
    assert read_log(core, "logs1", NS, limit_bytes=8) == "first\nse"


def test_log_errors(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as e:
        read_log(core, "no-such-pod", NS)
    assert e.value.status == 404
    assert json.loads(e.value.body)["message"] == 'pods "no-such-pod" not found'
    make_pod(core, "logs2")
    with pytest.raises(ApiException) as e:
        read_log(core, "logs2", NS, container="sidecar")
    assert e.value.status == 400
    assert json.loads(e.value.body)["message"] == (
        "container sidecar is not valid for pod logs2, choose one of: [main wait]"
    )
    make_pod(core, "logs3", containers=("a", "b"))
    with pytest.raises(ApiException) as e:
        read_log(core, "logs3", NS)
    assert (
        e.value.status == 400 and "a container name must be specified" in json.loads(e.value.body)["message"]
    )
    # a pod without a log file yet has an empty log
    assert read_log(core, "logs2", NS) == ""


def test_follow_until_pod_finishes(api_server: ApiServer, core: client.CoreV1Api) -> None:
    make_pod(core, "logs4")
    path = api_server.paths.log_file(NS, "logs4", "main")
    write_log(path, [(datetime.now(timezone.utc), "before")])

    def producer() -> None:
        time.sleep(0.15)
        write_log(path, [(datetime.now(timezone.utc), "during")], partial="")
        time.sleep(0.15)
        write_log(path, [], partial=f"{stamp(datetime.now(timezone.utc))} last")
        api_server.store.update(PODS, NS, "logs4", lambda p: {**p, "status": {"phase": "Succeeded"}})

    t = threading.Thread(target=producer)
    t.start()
    started = time.monotonic()
    resp = core.read_namespaced_pod_log("logs4", NS, follow=True, _preload_content=False)
    chunks = [chunk.decode() for chunk in resp.stream(32)]
    t.join()
    assert "".join(chunks) == "before\nduring\nlast\n"
    assert len(chunks) >= 3  # streamed as the lines arrived
    assert time.monotonic() - started < 3

    # follow on a finished pod returns what is there and ends at once
    text = read_log(core, "logs4", NS, follow=True, tail_lines=1, timestamps=True)
    assert text.endswith(" last\n") and text.count("\n") == 1
