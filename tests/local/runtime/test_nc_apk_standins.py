"""The busybox ``nc`` and alpine ``apk`` stand-ins: in real pods (listen, ``-e``, ``-k``, connect,
``-z``; ``apk add`` of a present and a missing package) and on their own (options, shims)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
from kubernetes import client

from airflow_argo_eci.local.runtime import images
from airflow_argo_eci.local.runtime.images import BUNDLED_DIR, ImageTable
from tests.local.argo.clusterwf import leaf, run


def _load(name: str) -> ModuleType:
    sys.path.insert(0, str(BUNDLED_DIR))
    try:
        spec = importlib.util.spec_from_file_location(f"bundled_{name}", BUNDLED_DIR / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BUNDLED_DIR))


nc = _load("nc")
apk = _load("apk")


def _pod(api_client: client.ApiClient, image: str, script: str) -> str:
    wf = run(api_client, {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "standin-"},
        "spec": {"entrypoint": "main", "activeDeadlineSeconds": 60, "templates": [
            {"name": "main", "container": {"image": image, "command": ["sh", "-c"], "args": [script]}}]}})
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    return str(leaf(wf, "main")["outputs"]["result"])


def test_table_gives_alpine_busybox_and_curl_nc(tmp_path: Path) -> None:
    table = ImageTable(tmp_path, image_map={})
    alpine = table.resolve("alpine:3.23")
    assert alpine.entrypoint == ["sh"] and alpine.bin_dir is not None
    assert "nc.py" in (alpine.bin_dir / "nc").read_text()
    assert "apk.py 3.23 " in (alpine.bin_dir / "apk").read_text()
    busybox = table.resolve("busybox:1.36")
    assert busybox.bin_dir is not None and sorted(p.name for p in busybox.bin_dir.iterdir()) == ["nc"]
    curl = table.resolve("curlimages/curl:8.1")
    assert curl.bin_dir is not None and (curl.bin_dir / "nc").exists()


def test_alpine_offers_the_curl_stand_in_without_a_host_curl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = images.shutil.which
    monkeypatch.setattr(images.shutil, "which", lambda name, *a, **k: None if name == "curl" else real_which(name))
    alpine = ImageTable(tmp_path, image_map={}).resolve("alpine:3.23")
    assert alpine.bin_dir is not None and "curl.py - " in (alpine.bin_dir / "curl").read_text()
    env = {**os.environ, "PATH": f"{alpine.bin_dir}:/usr/bin:/bin"}
    done = subprocess.run([str(alpine.bin_dir / "apk"), "add", "--no-cache", "curl"], env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert f"Installing curl (local: host {alpine.bin_dir / 'curl'})" in done.stdout


def test_nc_options() -> None:
    opts = nc.parse_args(["-lkp9999", "-e", "/bin/true", "-x"])
    assert (opts.listen, opts.keep, opts.port, opts.prog) == (True, True, "9999", ["/bin/true", "-x"])
    opts = nc.parse_args(["-zv", "-w", "2", "host", "80"])
    assert (opts.zero, opts.verbose, opts.wait, opts.positional) == (True, True, "2", ["host", "80"])
    with pytest.raises(nc.UsageError, match="invalid option -- 'q'"):
        nc.parse_args(["-q", "1"])
    with pytest.raises(nc.UsageError, match="requires an argument -- 'p'"):
        nc.parse_args(["-l", "-p"])


def test_nc_unknown_option_prints_usage() -> None:
    done = subprocess.run([sys.executable, str(BUNDLED_DIR / "nc.py"), "-Q"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("nc: invalid option -- 'Q'\nusage: nc [OPTIONS] HOST PORT")


def test_nc_connect_with_prog_and_timeout(tmp_path: Path) -> None:
    """``nc HOST PORT -e PROG`` talks to the peer through PROG; a one-shot ``-w`` listener gives up."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = BUNDLED_DIR / "nc.py"
    listener = subprocess.Popen([sys.executable, str(script), "-l", "-s", "127.0.0.1", "-p", str(port)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        done = subprocess.run([sys.executable, str(script), "127.0.0.1", str(port), "-e", "echo", "from", "prog"],
                              capture_output=True, check=False)
        if done.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert done.returncode == 0, done.stderr
    out, _ = listener.communicate(timeout=10)
    assert (listener.returncode, out) == (0, b"from prog\n")
    waited = subprocess.run([sys.executable, str(script), "-l", "-s", "127.0.0.1", "-p", str(port), "-w", "0.3"],
                            capture_output=True, text=True, check=False, timeout=10)
    assert (waited.returncode, waited.stderr) == (1, "nc: timeout\n")


def test_apk_messages(capsys: pytest.CaptureFixture[str]) -> None:
    assert apk.branch("3.23.2") == "v3.23" and apk.branch("latest") == "latest-stable"
    assert apk.package_name("curl=8.5.0-r0") == "curl" and apk.package_name("py3-pip>1") == "py3-pip"
    assert apk.main(["3.23", "add", "no-such-tool-zz"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: unable to select packages:\n  no-such-tool-zz (no such package):\n")
    assert "apk installs no packages here" in err and "AIRFLOW_ARGO_ECI_IMAGE_MAP" in err
    assert apk.main(["3.23", "update"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("v3.23 [local cluster: the host's tools stand in for https://dl-cdn.alpinelinux.org/")
    assert out.rstrip().splitlines()[-1].endswith("distinct packages available")
    assert apk.main(["3.23", "search", "x"]) == 1
    assert "unknown command 'search'" in capsys.readouterr().err
    assert apk.main(["3.23", "info", "-e", "bash"]) == 0 and apk.main(["3.23", "info", "-e", "no-such-zz"]) == 1


_NC_SCRIPT = """\
nc -lk -p 9999 -e /bin/true & T=$!
until nc -z 127.0.0.1 9999; do sleep 0.1; done; echo "true-daemon ready"
nc -lk -p 9998 -e /bin/echo hello & E=$!
until nc -z 127.0.0.1 9998; do sleep 0.1; done
nc 127.0.0.1 9998 </dev/null; nc 127.0.0.1 9998 </dev/null
nc -lk -p 80 -e cat & C=$!
until nc -z localhost 80; do sleep 0.1; done
echo ping | nc -w 5 localhost 80
nc -l -p 9997 > /tmp/got & L=$!
until printf 'payload\\n' | nc 127.0.0.1 9997; do sleep 0.1; done; wait $L; cat /tmp/got
nc -z 127.0.0.1 9996 || echo "9996 closed"
nc -zv 127.0.0.1 9998 2>&1
kill $T $E $C
"""


def test_nc_in_a_pod(kube_api_client: client.ApiClient) -> None:
    """variables-showcase's ``nc -lk -p 9999 -e /bin/true`` daemon, ``-e`` echo servers, ``-k``, a
    privileged port, a one-shot listener copying to stdout, connect, ``-z``."""
    result = _pod(kube_api_client, "alpine:3.23", _NC_SCRIPT)
    assert result.splitlines() == ["true-daemon ready", "hello", "hello", "ping", "payload", "9996 closed",
                                   "127.0.0.1 (127.0.0.1:9998) open"]


def test_apk_in_a_pod(kube_api_client: client.ApiClient) -> None:
    script = ("apk update && apk add --no-cache curl bash jq ca-certificates && echo added; "
              "apk add no-such-tool-zz 2>&1; echo rc=$?; nc -z 127.0.0.1 1 || echo nc-here")
    result = _pod(kube_api_client, "alpine:3.23", script)
    assert "OK: 4 packages provided by the host (the local cluster installs nothing)\nadded" in result
    assert "(1/4) Installing curl (local: host " in result
    assert "ERROR: unable to select packages:\n  no-such-tool-zz (no such package):" in result
    assert result.rstrip().endswith("rc=1\nnc-here")
