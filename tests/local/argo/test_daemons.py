"""``daemon: true`` steps and tasks on the local cluster through the ``kubernetes`` client: a daemon is
up once its pod runs and its readiness probe passed, later steps reach it at ``{{steps.X.ip}}`` /
``{{tasks.X.ip}}``, and it is stopped (its node Succeeded) when the template that started it ends;
pods of a workflow without daemons keep a network of their own."""

from __future__ import annotations

import ipaddress
import os
import time
from typing import Any

import pytest
from kubernetes import client

from airflow_argo_eci.conventions import GROUP, VERSION
from tests.local.argo import clusterwf

NS = "default"
#: a daemon workflow's pods share a network namespace the runtime makes, which needs root
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="daemon steps need a shared pod network, which the local "
                                "cluster makes only when it runs as root (see README, 'Pods are local processes')")

#: a daemon serving HTTP on 8080 (bound to every address of its network), ready when it answers
SERVER = {"name": "server", "daemon": True, "container": {
    "image": "python:3.11", "command": ["python", "-c"],
    "args": ["import http.server, socketserver\n"
             "class H(http.server.BaseHTTPRequestHandler):\n"
             "    def do_GET(self):\n"
             "        body = b'daemon says hi'\n"
             "        self.send_response(200); self.send_header('Content-Length', str(len(body)))\n"
             "        self.end_headers(); self.wfile.write(body)\n"
             "socketserver.ThreadingTCPServer.allow_reuse_address = True\n"
             "socketserver.ThreadingTCPServer(('0.0.0.0', 8080), H).serve_forever()\n"],
    "readinessProbe": {"httpGet": {"path": "/", "port": "web"}, "periodSeconds": 1},
    "ports": [{"name": "web", "containerPort": 8080}]}}

CLIENT = {"name": "client", "inputs": {"parameters": [{"name": "ip"}]}, "script": {
    "image": "python:3.11", "command": ["python"],
    "source": "import urllib.request\n"
              "print(urllib.request.urlopen('http://{{inputs.parameters.ip}}:8080/', timeout=5).read().decode())\n"}}


def workflow(main: dict[str, Any], *extra: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow", "metadata": {"generateName": "daemon-"},
            "spec": {"entrypoint": "main", "templates": [main, SERVER, CLIENT, *extra]}}


def node_of(wf: dict[str, Any], display: str) -> dict[str, Any]:
    found = [n for n in wf["status"]["nodes"].values() if n["displayName"] == display and n["type"] == "Pod"]
    assert len(found) == 1, found
    return found[0]


def pod_of(api_client: Any, wf: dict[str, Any], display: str) -> client.V1Pod:
    node = node_of(wf, display)
    pods = client.CoreV1Api(api_client).list_namespaced_pod(
        NS, label_selector=f"workflows.argoproj.io/workflow={wf['metadata']['name']}").items
    found = [p for p in pods if p.metadata.annotations.get("workflows.argoproj.io/node-id") == node["id"]]
    assert len(found) == 1
    return found[0]


@needs_root
def test_a_later_step_reaches_the_daemon_at_its_ip_and_the_daemon_stops_with_its_scope(kube_api_client: Any) -> None:
    main = {"name": "main", "steps": [[{"name": "server", "template": "server"}],
                                      [{"name": "client", "template": "client", "arguments": {"parameters": [
                                          {"name": "ip", "value": "{{steps.server.ip}}"}]}}]]}
    wf = clusterwf.run(kube_api_client, workflow(main), namespace=NS)
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    server, client_node = node_of(wf, "server"), node_of(wf, "client")
    assert client_node["outputs"]["result"] == "daemon says hi"
    ip = server["podIP"]
    assert ipaddress.ip_address(ip).is_loopback and not ip.startswith("127.0.0.")
    assert server["phase"] == "Succeeded" and "daemoned" not in server  # stopped when main ended
    pod = pod_of(kube_api_client, wf, "server")
    assert pod.status.pod_ip == ip
    deadline = time.monotonic() + 15  # the workflow ends at once; the killed pod's result follows (as in Argo)
    while pod.status.phase == "Running" and time.monotonic() < deadline:
        time.sleep(0.1)
        pod = pod_of(kube_api_client, wf, "server")
    assert pod.status.phase == "Failed" and "the daemon's scope ended" in pod.status.message
    client_pod = pod_of(kube_api_client, wf, "client")
    assert client_pod.status.pod_ip != ip


@needs_root
def test_a_dag_task_depends_on_a_daemon_and_reads_its_ip(kube_api_client: Any) -> None:
    main = {"name": "main", "dag": {"tasks": [
        {"name": "server", "template": "server"},
        {"name": "client", "template": "client", "depends": "server",
         "arguments": {"parameters": [{"name": "ip", "value": "{{tasks.server.ip}}"}]}}]}}
    wf = clusterwf.run(kube_api_client, workflow(main), namespace=NS)
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    assert node_of(wf, "client")["outputs"]["result"] == "daemon says hi"
    assert node_of(wf, "server")["phase"] == "Succeeded"


@needs_root
def test_a_daemon_that_exits_fails_its_step(kube_api_client: Any) -> None:
    quitter = {"name": "quitter", "daemon": True, "container": {
        "image": "alpine:3.23", "command": ["sh", "-c"], "args": ["exit 0"],
        "readinessProbe": {"tcpSocket": {"port": 9}, "initialDelaySeconds": 1}}}
    main = {"name": "main", "steps": [[{"name": "quitter", "template": "quitter"}]]}
    wf = clusterwf.run(kube_api_client, workflow(main, quitter), namespace=NS)
    assert wf["status"]["phase"] == "Failed"
    node = node_of(wf, "quitter")
    assert node["phase"] == "Failed"
    assert node["message"] == "the daemon's pod exited (exit code 0) before its scope ended"


@needs_root
def test_a_daemon_that_never_gets_ready_ends_on_its_deadline(kube_api_client: Any) -> None:
    deaf = {"name": "deaf", "daemon": True, "activeDeadlineSeconds": 3, "container": {
        "image": "alpine:3.23", "command": ["sh", "-c"], "args": ["sleep 60"],
        "readinessProbe": {"tcpSocket": {"port": 9999}, "periodSeconds": 1}}}
    main = {"name": "main", "steps": [[{"name": "deaf", "template": "deaf"}]]}
    wf = clusterwf.run(kube_api_client, workflow(main, deaf), namespace=NS)
    assert wf["status"]["phase"] == "Failed"
    node = node_of(wf, "deaf")
    assert node["phase"] == "Failed" and "deadline" in node["message"]
    assert "podIP" not in node  # never up: Argo records a daemon's IP once it is daemoned only


def test_a_malformed_readiness_probe_fails_the_pod_naming_the_field(kube_api_client: Any) -> None:
    bad = {"name": "bad", "daemon": True, "container": {
        "image": "alpine:3.23", "command": ["sleep", "60"],
        "readinessProbe": {"httpGet": {"path": "/", "port": "nope"}}}}
    main = {"name": "main", "steps": [[{"name": "bad", "template": "bad"}]]}
    wf = clusterwf.run(kube_api_client, workflow(main, bad), namespace=NS)
    assert wf["status"]["phase"] in ("Failed", "Error")
    message = node_of(wf, "bad")["message"]
    assert 'container.readinessProbe.httpGet.port: Invalid value: "nope"' in message
    assert "no container port of that name" in message


@needs_root
def test_the_pod_becomes_ready_when_its_probe_passes(kube_api_client: Any) -> None:
    """The Pod object shows what the kubelet would: Running and not Ready until the probe passed."""
    slow = {"name": "slow", "daemon": True, "container": {
        "image": "python:3.11", "command": ["python", "-c"],
        "args": ["import socket, time\ntime.sleep(2)\ns = socket.socket()\ns.bind(('0.0.0.0', 7000))\n"
                 "s.listen()\ntime.sleep(60)\n"],
        "readinessProbe": {"tcpSocket": {"port": 7000}, "periodSeconds": 1}}}
    wait = {"name": "wait", "container": {"image": "alpine:3.23", "command": ["sh", "-c"], "args": ["sleep 1"]}}
    main = {"name": "main", "steps": [[{"name": "slow", "template": "slow"}], [{"name": "wait", "template": "wait"}]]}
    name = clusterwf.submit(kube_api_client, workflow(main, slow, wait), namespace=NS)
    core = client.CoreV1Api(kube_api_client)
    seen: list[tuple[str, bool]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(NS, label_selector=f"workflows.argoproj.io/workflow={name}").items
        slow_pods = [p for p in pods if "-slow-" in p.metadata.name]
        if slow_pods and slow_pods[0].status.phase == "Running":
            ready = next(c.status for c in slow_pods[0].status.conditions if c.type == "Ready") == "True"
            if not seen or seen[-1] != ("Running", ready):
                seen.append(("Running", ready))
            if ready:
                break
        time.sleep(0.1)
    assert seen[:1] == [("Running", False)] and seen[-1] == ("Running", True), seen
    wf = clusterwf.wait(kube_api_client, name, namespace=NS)
    assert wf["status"]["phase"] == "Succeeded", wf["status"]


@needs_root
def test_a_workflow_without_daemons_cannot_reach_another_workflows_daemon(kube_api_client: Any) -> None:
    """Only the pods of one daemon workflow share a network: a pod elsewhere gets connection refused."""
    hold = {"name": "hold", "container": {"image": "alpine:3.23", "command": ["sh", "-c"], "args": ["sleep 8"]}}
    main = {"name": "main", "steps": [[{"name": "server", "template": "server"}],
                                      [{"name": "hold", "template": "hold"}]]}
    name = clusterwf.submit(kube_api_client, workflow(main, hold), namespace=NS)
    deadline = time.monotonic() + 30
    ip = ""
    while not ip and time.monotonic() < deadline:
        nodes = (clusterwf.get(kube_api_client, name, NS).get("status") or {}).get("nodes") or {}
        ip = next((n.get("podIP", "") for n in nodes.values() if n["displayName"] == "server"), "")
        time.sleep(0.1)
    assert ip, "the daemon never came up"
    source = ("import socket\n"
              "try:\n"
              "    socket.create_connection(('{{workflow.parameters.ip}}', 8080), timeout=3)\n"
              "    print('reached')\n"
              "except OSError as exc:\n"
              "    print(type(exc).__name__)\n")
    probe = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow", "metadata": {"generateName": "outsider-"},
             "spec": {"entrypoint": "main", "arguments": {"parameters": [{"name": "ip", "value": ip}]},
                      "templates": [{"name": "main",
                                     "script": {"image": "python:3.11", "command": ["python"], "source": source}}]}}
    outsider = clusterwf.run(kube_api_client, probe, namespace=NS)
    assert outsider["status"]["phase"] == "Succeeded"
    result = next(n for n in outsider["status"]["nodes"].values() if n["type"] == "Pod")["outputs"]["result"]
    assert result == "ConnectionRefusedError"
    assert clusterwf.wait(kube_api_client, name, namespace=NS)["status"]["phase"] == "Succeeded"


@pytest.mark.parametrize("probe, message", [
    ({"tcpSocket": {"port": 80}, "exec": {"command": ["true"]}},
     "container.readinessProbe: must specify exactly one handler"),
    ({"httpGet": {"port": 70000}}, "container.readinessProbe.httpGet.port: Invalid value: 70000"),
    ({"httpGet": {"port": 80, "scheme": "FTP"}}, 'container.readinessProbe.httpGet.scheme: Unsupported value: "FTP"'),
    ({"tcpSocket": {"port": 80}, "periodSeconds": 0}, "container.readinessProbe.periodSeconds: Invalid value: 0"),
])
def test_probe_validation(probe: dict[str, Any], message: str) -> None:
    from airflow_argo_eci.local.runtime.podsecurity import SandboxError
    from airflow_argo_eci.local.runtime.probes import parse_probe

    with pytest.raises(SandboxError, match=message.replace("(", r"\(")):
        parse_probe({"readinessProbe": probe})


@needs_root
def test_two_daemons_of_one_workflow_serve_the_same_port(kube_api_client: Any) -> None:
    """In the shared network each bundled server listens on its pod's own address, so two daemons
    may both serve port 9999 (here busybox ``nc -lk -e``, as Argo's variables-showcase does)."""
    def daemon(name: str) -> dict[str, Any]:
        return {"name": name, "daemon": True, "container": {
            "image": "alpine:3.23", "command": ["sh", "-c"], "args": [f"nc -lk -p 9999 -e echo {name}"],
            "readinessProbe": {"tcpSocket": {"port": 9999}, "periodSeconds": 1}}}
    ask = {"name": "ask", "inputs": {"parameters": [{"name": "a"}, {"name": "b"}]}, "container": {
        "image": "alpine:3.23", "command": ["sh", "-c"],
        "args": ["nc -w 2 {{inputs.parameters.a}} 9999 </dev/null; nc -w 2 {{inputs.parameters.b}} 9999 </dev/null"]}}
    main = {"name": "main", "steps": [
        [{"name": "one", "template": "one"}, {"name": "two", "template": "two"}],
        [{"name": "ask", "template": "ask", "arguments": {"parameters": [
            {"name": "a", "value": "{{steps.one.ip}}"}, {"name": "b", "value": "{{steps.two.ip}}"}]}}]]}
    wf = clusterwf.run(kube_api_client, workflow(main, daemon("one"), daemon("two"), ask), namespace=NS)
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    assert node_of(wf, "ask")["outputs"]["result"] == "one\ntwo"
    assert node_of(wf, "one")["podIP"] != node_of(wf, "two")["podIP"]


def test_the_stand_ins_read_the_pod_address_the_runtime_sets() -> None:
    """``images/ports.py`` runs inside pods without this package, so it spells the variable itself."""
    from airflow_argo_eci.local.runtime import podnetwork
    from airflow_argo_eci.local.runtime.images import BUNDLED_DIR  # the module images.py

    text = (BUNDLED_DIR / "ports.py").read_text()
    assert f'POD_IP_ENV = "{podnetwork.POD_IP_ENV}"' in text


def test_the_downward_api_gives_the_pod_its_own_ip_and_labels(kube_api_client: Any) -> None:
    env = [{"name": n, "valueFrom": {"fieldRef": {"fieldPath": p}}} for n, p in (
        ("IP", "status.podIP"), ("TEAM", "metadata.labels['team']"), ("NODE", "spec.nodeName"),
        ("SA", "spec.serviceAccountName"))]
    doc = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow", "metadata": {"generateName": "downward-"},
           "spec": {"entrypoint": "main", "podMetadata": {"labels": {"team": "data"}}, "templates": [
               {"name": "main", "container": {"image": "alpine:3.23", "command": ["sh", "-c"],
                                              "args": ['echo "$IP $TEAM $NODE $SA"'], "env": env}}]}}
    wf = clusterwf.run(kube_api_client, doc, namespace=NS)
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    pod = pod_of(kube_api_client, wf, wf["metadata"]["name"])
    assert node_of(wf, wf["metadata"]["name"])["outputs"]["result"] == f"{pod.status.pod_ip} data local default"
