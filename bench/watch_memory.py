"""Benchmark: server memory and ``/version`` latency while many watchers follow a large workflow.

A local cluster is started in this process; a separate process opens ``--watchers`` WATCH streams
on workflows and only counts what arrives. A suspended workflow of ``--size`` bytes is created
and patched ten times (eleven large events for every watcher). Printed: the server's RSS before
and at its peak, and the median and worst ``/version`` latency probed every 50 ms meanwhile.

    .venv/bin/python bench/watch_memory.py [--size 1400000] [--watchers 50]

Run it with ``PYTHONPATH=<another checkout>`` to compare with an older server.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request

from kubernetes import client, config

from airflow_argo_eci.local.server import LocalCluster

WF = "/apis/argoproj.io/v1alpha1/namespaces/argo/workflows"
WATCHERS = textwrap.dedent("""
    import os, socket, ssl, sys, threading
    os.nice(10)
    port, token, cafile, path, count = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    ready = threading.Barrier(count + 1)
    def watch():
        sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port))), server_hostname="x")
        sock.sendall(f"GET {path} HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer {token}\\r\\n\\r\\n".encode())
        ready.wait()
        while sock.recv(1 << 20):
            pass
    for _ in range(count):
        threading.Thread(target=watch, daemon=True).start()
    ready.wait()
    print("ready", flush=True)
    sys.stdin.read()
""")


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_400_000, help="workflow size in bytes")
    parser.add_argument("--watchers", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state, LocalCluster(state) as cluster:
        api = client.CustomObjectsApi(config.new_client_from_config(config_file=str(cluster.kubeconfig_path)))
        watchers = subprocess.Popen(
            [sys.executable, "-c", WATCHERS, str(cluster.port), cluster.token, str(cluster.paths.tls_cert),
             f"{WF}?watch=true&timeoutSeconds=300", str(args.watchers)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert watchers.stdout is not None and watchers.stdout.readline().strip() == "ready"
        templates = [{"name": "main", "script": {"image": "alpine", "command": ["sh"], "source": "echo big"}}]
        templates += [{"name": f"filler-{i}", "script": {"image": "alpine", "command": ["sh"], "source": "#" * 2000}}
                      for i in range(args.size // 2080)]
        workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "big"},
                    "spec": {"entrypoint": "main", "suspend": True, "templates": templates}}
        base = peak = _rss()
        latencies: list[float] = []
        stop = threading.Event()
        context = ssl.create_default_context(cafile=str(cluster.paths.tls_cert))
        context.check_hostname = False

        def sample() -> None:
            nonlocal peak
            while not stop.wait(0.02):
                peak = max(peak, _rss())

        def probe() -> None:
            request = urllib.request.Request(cluster.url + "/version",
                                             headers={"Authorization": f"Bearer {cluster.token}"})
            while not stop.wait(0.05):
                started = time.perf_counter()
                with urllib.request.urlopen(request, timeout=30, context=context) as reply:
                    reply.read()
                latencies.append((time.perf_counter() - started) * 1000)

        threads = [threading.Thread(target=sample, daemon=True), threading.Thread(target=probe, daemon=True)]
        for thread in threads:
            thread.start()
        try:
            api.create_namespaced_custom_object("argoproj.io", "v1alpha1", "argo", "workflows", workflow,
                                                _preload_content=False).read()
            for i in range(10):
                api.patch_namespaced_custom_object("argoproj.io", "v1alpha1", "argo", "workflows", "big",
                                                   {"metadata": {"labels": {"n": str(i)}}},
                                                   _preload_content=False).read()
                time.sleep(0.2)
        except client.ApiException as exc:
            print(f"the server refused the workflow: {exc.status} {exc.reason}")
        time.sleep(3)
        stop.set()
        for thread in threads:
            thread.join(40)
        watchers.kill()
        print(f"workflow {len(json.dumps(workflow)) / 1e6:.2f} MB, {args.watchers} watchers: server RSS "
              f"{base / 2**20:.0f} -> peak {peak / 2**20:.0f} MiB (+{(peak - base) / 2**20:.0f}); /version median "
              f"{statistics.median(latencies):.1f} ms, worst {max(latencies):.1f} ms ({len(latencies)} probes)")


if __name__ == "__main__":
    main()
