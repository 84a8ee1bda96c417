"""The ``influxdb`` image's ``influxd`` stand-in: InfluxDB 1.x's API on its own (answers and errors),
and in pods (Argo's daemon-step sequence and the sidecar example's command against a sidecar)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from airflow_argo_eci.local.runtime.images import BUNDLED_DIR, ImageTable
from airflow_argo_eci.stack.ports import free_port
from tests.local.argo.clusterwf import leaf, run


@pytest.fixture(scope="module")
def influx() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(BUNDLED_DIR / "influxd.py"), "1.2", "run", "-config", "x.conf"],
                            env={**os.environ, "INFLUXDB_HTTP_BIND_ADDRESS": f"127.0.0.1:{port}"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    assert proc.wait(10) == 0
    log = proc.stderr.read().decode() if proc.stderr else ""
    assert "InfluxDB starting, version 1.2" in log
    assert '[httpd] 127.0.0.1 - - [' in log and '"POST /write?db=mydb HTTP/1.1" 204 0' in log


def _call(url: str, method: str = "GET", data: bytes | None = None,
          form: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = {}
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _query(base: str, q: str, **params: str) -> tuple[int, Any]:
    code, _, body = _call(f"{base}/query?" + urllib.parse.urlencode({"q": q, **params}))
    return code, json.loads(body)


def test_table_has_influxdb(tmp_path: Path) -> None:
    image = ImageTable(tmp_path, image_map={}).resolve("influxdb:1.2")
    assert image.entrypoint == ["influxd"]
    assert image.bin_dir is not None and "influxd.py" in (image.bin_dir / "influxd").read_text()
    out = subprocess.run([sys.executable, str(BUNDLED_DIR / "influxd.py"), "1.2", "version"],
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("InfluxDB v1.2 ")
    out = subprocess.run([sys.executable, str(BUNDLED_DIR / "influxd.py"), "latest", "config"],
                         capture_output=True, text=True, check=True).stdout
    assert 'bind-address = ":8086"' in out


def test_ping_create_write_select(influx: str) -> None:
    code, headers, body = _call(f"{influx}/ping")
    assert (code, body) == (204, b"") and headers["X-Influxdb-Version"] == "1.2"
    assert _call(f"{influx}/ping", method="HEAD")[0] == 204
    assert json.loads(_call(f"{influx}/ping?verbose=true")[2]) == {"version": "1.2"}
    code, _, body = _call(f"{influx}/query", "POST", form={"q": "CREATE DATABASE mydb"})
    assert (code, json.loads(body)) == (200, {"results": [{"statement_id": 0}]})
    lines = ("cpu,host=server01,region=uswest load=1 1000000000\n"
             "cpu,host=server02,region=uswest load=2,ok=true 2000000000\n"
             "# a comment\n\n"
             'cpu,host=server03,region=useast load=15.4,note="a \\"b\\"" 3000000000\n')
    assert _call(f"{influx}/write?db=mydb", "POST", lines.encode())[0] == 204
    assert _call(f"{influx}/write?db=mydb&precision=s", "POST", b"mem,host=a used=7i 4")[0] == 204
    code, result = _query(influx, "SELECT * FROM cpu", db="mydb")
    assert code == 200
    assert result == {"results": [{"statement_id": 0, "series": [{
        "name": "cpu", "columns": ["time", "host", "load", "note", "ok", "region"],
        "values": [["1970-01-01T00:00:01Z", "server01", 1, None, None, "uswest"],
                   ["1970-01-01T00:00:02Z", "server02", 2, None, True, "uswest"],
                   ["1970-01-01T00:00:03Z", "server03", 15.4, 'a "b"', None, "useast"]]}]}]}
    code, _, body = _call(f"{influx}/query?pretty=true&db=mydb&q=" + urllib.parse.quote("SELECT load FROM cpu "
                                                                                        "WHERE host = 'server02'"))
    assert body.decode().startswith('{\n    "results": [\n        {\n            "statement_id": 0,')
    assert json.loads(body)["results"][0]["series"][0]["values"] == [["1970-01-01T00:00:02Z", 2]]
    _, result = _query(influx, "SELECT used FROM mem; SHOW MEASUREMENTS; SHOW DATABASES", db="mydb", epoch="s")
    assert result["results"] == [
        {"statement_id": 0, "series": [{"name": "mem", "columns": ["time", "used"], "values": [[4, 7]]}]},
        {"statement_id": 1, "series": [{"name": "measurements", "columns": ["name"], "values": [["cpu"], ["mem"]]}]},
        {"statement_id": 2, "series": [{"name": "databases", "columns": ["name"],
                                        "values": [["_internal"], ["mydb"]]}]}]
    _, result = _query(influx, "SELECT * FROM cpu ORDER BY time DESC LIMIT 1", db="mydb", epoch="ms")
    assert result["results"][0]["series"][0]["values"] == [[3000, "server03", 15.4, 'a "b"', None, "useast"]]
    assert _query(influx, "SELECT * FROM nothing", db="mydb")[1] == {"results": [{"statement_id": 0}]}


def test_errors_have_influxdb_shapes(influx: str) -> None:
    _call(f"{influx}/query", "POST", form={"q": "CREATE DATABASE errs"})
    code, headers, body = _call(f"{influx}/write?db=nodb", "POST", b"cpu load=1")
    assert (code, json.loads(body)) == (404, {"error": 'database not found: "nodb"'})
    assert headers["X-Influxdb-Error"] == 'database not found: "nodb"'
    code, _, body = _call(f"{influx}/write", "POST", b"cpu load=1")
    assert (code, json.loads(body)) == (400, {"error": "database is required"})
    for line, reason in [("cpu", "missing fields"), ("cpu,host load=1", "missing tag value"),
                         ("cpu load=", "missing field value"), ("cpu load=abc", "invalid number"),
                         ("cpu load=1 12x", "bad timestamp"), ('cpu s="open', "unbalanced quotes")]:
        code, _, body = _call(f"{influx}/write?db=errs", "POST", line.encode())
        assert (code, json.loads(body)) == (400, {"error": f"unable to parse '{line}': {reason}"})
    code, _, body = _call(f"{influx}/write?db=errs", "POST", b"cpu load=1 1\ncpu,x load=2")
    assert (code, json.loads(body)) == (400, {"error": "partial write: unable to parse 'cpu,x load=2': "
                                                       "missing tag value dropped=0"})
    code, _, body = _call(f"{influx}/write?db=errs", "POST", b"cpu load=1i 2")
    assert code == 400 and json.loads(body)["error"] == (
        'partial write: field type conflict: input field "load" on measurement "cpu" is type integer, '
        "already exists as type float dropped=1")
    assert _query(influx, "SELECT * FROM cpu", db="errs")[1]["results"][0]["series"][0]["values"] == [
        ["1970-01-01T00:00:00.000000001Z", 1]]
    assert _query(influx, "SELECT * FROM cpu")[1] == {"results": [{"statement_id": 0,
                                                                   "error": "database name required"}]}
    assert _query(influx, "SELECT * FROM cpu", db="zz")[1] == {"results": [{"statement_id": 0,
                                                                           "error": "database not found: zz"}]}
    code, result = _query(influx, "FROB x")
    assert code == 400 and result["error"].startswith("error parsing query: found FROB, expected SELECT, DELETE")
    code, result = _query(influx, "SHOW TAG KEYS")
    assert code == 400 and "not supported by the local influxd stand-in" in result["error"]
    code, _, body = _call(f"{influx}/query")
    assert (code, json.loads(body)) == (400, {"error": 'missing required parameter "q"'})
    code, _, body = _call(f"{influx}/nope")
    assert code == 404 and json.loads(body) == {"error": "404 page not found"}


_DAEMON_STEP_SEQUENCE = """\
until curl -s http://127.0.0.1:8086/ping; do sleep 0.2; done
curl -XPOST 'http://127.0.0.1:8086/query' --data-urlencode "q=CREATE DATABASE mydb"
for i in $(seq 1 3); do
  curl -XPOST 'http://127.0.0.1:8086/write?db=mydb' -d "cpu,host=server01,region=uswest load=$i" ; sleep .1 ; done
curl -XPOST 'http://127.0.0.1:8086/write?db=mydb' -d "cpu,host=server02,region=uswest load=$((RANDOM % 100))"
curl -XPOST 'http://127.0.0.1:8086/write?db=mydb' -d 'cpu,host=server03,region=useast load=15.4'
echo '=== errors'
curl -s -XPOST 'http://127.0.0.1:8086/write?db=other' -d 'cpu load=1'
curl -s -XPOST 'http://127.0.0.1:8086/write?db=mydb' -d 'cpu'
echo '=== select'
curl --silent -G http://127.0.0.1:8086/query?pretty=true --data-urlencode "db=mydb" \
  --data-urlencode "q=SELECT * FROM cpu"
"""


def test_daemon_step_sequence_against_an_influxdb_sidecar(kube_api_client: client.ApiClient) -> None:
    """Argo's daemon-step example's client commands (curl image) against ``influxdb:1.2`` in one pod."""
    wf = run(kube_api_client, {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "influx-seq-"},
        "spec": {"entrypoint": "main", "activeDeadlineSeconds": 60, "templates": [
            {"name": "main",
             "container": {"image": "curlimages/curl:latest", "command": ["sh", "-c"],
                           "args": [_DAEMON_STEP_SEQUENCE]},
             "sidecars": [{"name": "influxdb", "image": "influxdb:1.2"}]}]}})
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    result = leaf(wf, "main")["outputs"]["result"]
    head, _, rest = result.partition("=== errors\n")
    assert head.strip() == '{"results":[{"statement_id":0}]}'
    errors, _, selected = rest.partition("=== select\n")
    assert errors.splitlines() == ['{"error":"database not found: \\"other\\""}',
                                   '{"error":"unable to parse \'cpu\': missing fields"}']
    assert selected.startswith('{\n    "results": [')
    series = json.loads(selected)["results"][0]["series"][0]
    assert series["name"] == "cpu" and series["columns"] == ["time", "host", "load", "region"]
    assert [row[1] for row in series["values"]] == ["server01"] * 3 + ["server02", "server03"]
    assert [row[2] for row in series["values"]][:3] == [1, 2, 3] and series["values"][-1][2:] == [15.4, "useast"]


def test_sidecar_example_command(kube_api_client: client.ApiClient) -> None:
    """Argo's sidecar.yaml: alpine runs ``apk update && apk add curl`` and writes to an influxdb sidecar."""
    args = ("apk update && apk add curl && "
            "until curl -XPOST 'http://127.0.0.1:8086/query' --data-urlencode 'q=CREATE DATABASE mydb' ; "
            "do sleep .5; done && for i in $(seq 1 4); do curl -XPOST 'http://127.0.0.1:8086/write?db=mydb' "
            "-d \"cpu,host=server01,region=uswest load=$i\" ; sleep .5 ; done")
    wf = run(kube_api_client, {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "sidecar-"},
        "spec": {"entrypoint": "sidecar-example", "activeDeadlineSeconds": 60, "templates": [
            {"name": "sidecar-example",
             "container": {"image": "alpine:3.23", "command": ["sh", "-c"], "args": [args]},
             "sidecars": [{"name": "influxdb", "image": "influxdb:1.2", "command": ["influxd"]}]}]}})
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    result = leaf(wf, "sidecar-example")["outputs"]["result"]
    assert "OK: 1 packages provided by the host" in result
    assert '{"results":[{"statement_id":0}]}' in result
