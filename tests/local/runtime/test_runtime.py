"""The local pod runtime: execution, sandbox isolation, outputs, logs, kill, deadline, capacity."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_argo_eci.local.paths import StatePaths
from airflow_argo_eci.local.runtime import PodRequest, PodResult
from airflow_argo_eci.local.runtime.images import IMAGE_MAP_ENV
from airflow_argo_eci.local.runtime.runner import DEADLINE_MESSAGE, MAX_RESULT_BYTES, Runtime
from airflow_argo_eci.local.runtime.sandbox import SandboxError, probe_bwrap

BWRAP_REASON = probe_bwrap()
needs_bwrap = pytest.mark.skipif(BWRAP_REASON is not None, reason=f"bubblewrap unavailable: {BWRAP_REASON}")
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (.*)$")


class Collector:
    """Collects on_done results and counts calls per pod."""

    def __init__(self) -> None:
        self.results: dict[str, PodResult] = {}
        self.calls: dict[str, int] = {}
        self._cond = threading.Condition()

    def __call__(self, result: PodResult) -> None:
        with self._cond:
            self.results[result.pod_name] = result
            self.calls[result.pod_name] = self.calls.get(result.pod_name, 0) + 1
            self._cond.notify_all()

    def wait(self, *names: str, timeout: float = 20.0) -> list[PodResult]:
        with self._cond:
            ok = self._cond.wait_for(lambda: all(n in self.results for n in names), timeout)
        assert ok, f"pods {[n for n in names if n not in self.results]} did not finish in {timeout}s"
        return [self.results[n] for n in names]


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(StatePaths(tmp_path / "state"), capacity_vcpu=8.0, sandbox="auto")
    yield rt
    rt.shutdown()


def sh(name: str, script: str, **kwargs: object) -> PodRequest:
    return PodRequest("argo", name, {"image": "alpine:3.23", "command": ["sh", "-c"], "args": [script]},
                      **kwargs)  # type: ignore[arg-type]


def run_one(rt: Runtime, req: PodRequest, timeout: float = 20.0) -> PodResult:
    done = Collector()
    rt.submit(req, done)
    (result,) = done.wait(req.pod_name, timeout=timeout)
    assert done.calls[req.pod_name] == 1
    return result


# ---------------------------------------------------------------------------- execution


def test_command_args_exit_code_and_result(runtime: Runtime) -> None:
    ok = run_one(runtime, PodRequest("argo", "ok", {"image": "busybox", "command": ["echo"],
                                                      "args": ["hello", "world"]}))
    assert (ok.phase, ok.exit_code, ok.message, ok.stdout) == ("Succeeded", 0, "", "hello world")
    bad = run_one(runtime, sh("bad", "echo out; echo err >&2; exit 3"))
    assert (bad.phase, bad.exit_code, bad.message) == ("Failed", 3, "Error (exit code 3)")
    assert bad.stdout == "out"  # stderr is not part of the result
    assert bad.started_at.endswith("Z") and bad.finished_at >= bad.started_at


def test_image_entrypoint_used_without_command(runtime: Runtime) -> None:
    req = PodRequest("argo", "py", {"image": "python:3.12", "args": ["-c", "print(6*7)"]})
    result = run_one(runtime, req)
    assert (result.phase, result.stdout) == ("Succeeded", "42")


def test_env_and_working_dir(runtime: Runtime) -> None:
    req = PodRequest("argo", "envwd", {
        "image": "busybox", "command": ["sh", "-c"], "args": ['echo "$GREETING"; pwd; echo made > here.txt'],
        "env": [{"name": "GREETING", "value": "hi there"}], "workingDir": "/work/job",
    }, output_paths=["/work/job/here.txt"])
    result = run_one(runtime, req)
    lines = result.stdout.splitlines()
    assert lines[0] == "hi there"
    assert lines[1].endswith("/work/job")
    assert result.outputs == {"/work/job/here.txt": "made\n"}


def test_unresolved_value_from_is_an_error_naming_the_field(runtime: Runtime) -> None:
    req = PodRequest("argo", "vf", {"image": "busybox", "command": ["true"],
                                    "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s"}}}]})
    result = run_one(runtime, req)
    assert result.phase == "Error"
    assert "container.env[0] (X)" in result.message


def test_script_source_written_and_appended(runtime: Runtime) -> None:
    req = PodRequest("argo", "script", {"image": "python:alpine3.23", "command": ["python"]},
                     script_source='import sys\nprint("script at", sys.argv[0])\n')
    result = run_one(runtime, req)
    assert result.phase == "Succeeded", result.message
    assert result.stdout.startswith("script at ")
    assert result.stdout.endswith("/argo/staging/script")
    shell = run_one(runtime, PodRequest("argo", "shscript", {"image": "alpine:3.23", "command": ["sh"]},
                                        script_source="echo $((21*2))\n"))
    assert shell.stdout == "42"


def test_unknown_image_without_command_explains_the_fix(runtime: Runtime) -> None:
    result = run_one(runtime, PodRequest("argo", "unknown", {"image": "acme/secret-tool:1.0"}))
    assert result.phase == "Error"
    assert "acme/secret-tool:1.0" in result.message
    assert "no local entrypoint" in result.message
    assert "command:" in result.message and IMAGE_MAP_ENV in result.message
    # with a command, an unknown image runs the host tools
    ran = run_one(runtime, PodRequest("argo", "unknown-cmd", {"image": "acme/secret-tool:1.0",
                                                              "command": ["echo", "fine"]}))
    assert ran.stdout == "fine"


def test_image_map_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mapping = tmp_path / "images.yaml"
    mapping.write_text("acme/greeter: [echo, greetings]\n")
    monkeypatch.setenv(IMAGE_MAP_ENV, str(mapping))
    rt = Runtime(StatePaths(tmp_path / "state"), sandbox="auto")
    try:
        req = PodRequest("argo", "mapped", {"image": "acme/greeter:2", "args": ["from", "map"]})
        result = run_one(rt, req)
        assert result.stdout == "greetings from map"
    finally:
        rt.shutdown()
    mapping.write_text(json.dumps({"acme/greeter": "not a list"}).replace('"not a list"', "5"))
    with pytest.raises(ValueError, match="entrypoint of image 'acme/greeter'"):
        Runtime(StatePaths(tmp_path / "state2"), sandbox="auto")


def test_missing_executable_is_an_error(runtime: Runtime) -> None:
    windows = "mcr.microsoft.com/windows/nanoserver:1809"
    req = PodRequest("argo", "nocmd", {"image": windows, "command": ["cmd", "/c"], "args": ["echo"]})
    result = run_one(runtime, req)
    assert result.phase == "Error"
    assert 'exec: "cmd": executable file not found in $PATH' in result.message


def test_bad_spec_fields_are_named(runtime: Runtime) -> None:
    bad_args = run_one(runtime, PodRequest("argo", "badargs", {"image": "busybox", "command": "echo"}))
    assert bad_args.phase == "Error" and "container.command" in bad_args.message
    bad_out = run_one(runtime, PodRequest("argo", "badout", {"image": "busybox", "command": ["true"]},
                                          output_paths=["relative.txt"]))
    assert bad_out.phase == "Error" and "output_paths[0]" in bad_out.message


def test_images_of_the_argo_examples(runtime: Runtime) -> None:
    reqs = [
        PodRequest("argo", "argosay-file",
                   {"image": "argoproj/argosay:v2", "args": ["echo", "hello 10\n", "/output"]},
                   output_paths=["/output"]),
        PodRequest("argo", "argosay-default", {"image": "argoproj/argosay:v2"}),
        PodRequest("argo", "argosay-v1", {"image": "argoproj/argosay:v1", "command": ["sh", "-c"],
                                          "args": ["cowsay hello"]}),
        PodRequest("argo", "whalesay", {"image": "docker/whalesay:latest", "command": ["cowsay"],
                                        "args": ["hello world"]}),
        PodRequest("argo", "node", {"image": "node:9.1-alpine", "command": ["node"]},
                   script_source="console.log(6 * 7);\n"),
        PodRequest("argo", "os-release",
                   {"image": "debian:9.1", "command": ["cat"], "args": ["/etc/os-release"]}),
    ]
    done = Collector()
    for req in reqs:
        runtime.submit(req, done)
    results = {r.pod_name: r for r in done.wait(*(r.pod_name for r in reqs))}
    assert all(r.phase == "Succeeded" for r in results.values()), {n: r.message for n, r in results.items()}
    assert results["argosay-file"].outputs == {"/output": "hello 10\n"}
    assert results["argosay-default"].stdout == ""  # upstream argosay prints to stderr (Go println)
    log = runtime.paths.log_file("argo", "argosay-default").read_text()
    assert log.rstrip("\n").endswith(" hello argo")
    assert "< hello >" in results["argosay-v1"].stdout and "(oo)" in results["argosay-v1"].stdout
    assert "< hello world >" in results["whalesay"].stdout and "##" in results["whalesay"].stdout
    assert results["node"].stdout == "42"
    assert "ID=" in results["os-release"].stdout


# ---------------------------------------------------------------------------- files and isolation


@needs_bwrap
def test_parallel_pods_have_their_own_tmp(runtime: Runtime, tmp_path: Path) -> None:
    marker = f"/tmp/isolation-{tmp_path.name}"
    script = f'echo "$HOSTNAME" > {marker}; sleep 0.3; cat {marker}'
    done = Collector()
    runtime.submit(sh("iso-a", script, output_paths=[marker]), done)
    runtime.submit(sh("iso-b", script, output_paths=[marker]), done)
    a, b = done.wait("iso-a", "iso-b")
    assert (a.stdout, b.stdout) == ("iso-a", "iso-b")
    assert a.outputs[marker] == "iso-a\n" and b.outputs[marker] == "iso-b\n"
    assert not Path(marker).exists()  # the host /tmp is untouched


@needs_bwrap
def test_outputs_read_back_from_anywhere(runtime: Runtime) -> None:
    req = sh("outs", "mkdir -p /mnt/out && echo -n result > /mnt/out/value; echo -n t > /tmp/t.txt; "
                     "printf hello > /output",
             output_paths=["/mnt/out/value", "/tmp/t.txt", "/output", "/mnt/out/missing"])
    result = run_one(runtime, req)
    assert result.phase == "Succeeded", result.message
    assert result.outputs == {"/mnt/out/value": "result", "/tmp/t.txt": "t", "/output": "hello",
                              "/mnt/out/missing": None}
    assert not Path("/output").exists() and not Path("/mnt/out/value").exists()
    assert Path(result.extra["output_host_paths"]["/mnt/out/value"]).read_text() == "result"


@needs_bwrap
def test_input_files_are_placed_and_host_is_read_only(runtime: Runtime) -> None:
    req = sh("inputs", "cat /argo/inputs/parameters/msg /tmp/in.txt; touch /etc/x 2>/dev/null || echo ro",
             input_files={"/argo/inputs/parameters/msg": b"from-input\n", "/tmp/in.txt": b"tmp-input\n"})
    result = run_one(runtime, req)
    assert result.stdout.splitlines() == ["from-input", "tmp-input", "ro"]


@needs_bwrap
def test_state_dir_hidden_from_pods(tmp_path: Path) -> None:
    # a state directory outside /tmp (the pod's /tmp is its own anyway)
    state = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="aae-test-"))
    rt = Runtime(StatePaths(state), sandbox="bwrap")
    try:
        state.joinpath("token").write_text("secret")
        result = run_one(rt, sh("peek", f"cat {state}/token 2>&1 || echo hidden"))
        assert result.stdout.endswith("hidden")
    finally:
        rt.shutdown()
        shutil.rmtree(state, ignore_errors=True)


@needs_bwrap
def test_host_tools_under_tmp_stay_visible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkout or virtualenv under the host's /tmp (CI clones there) must not vanish behind the
    pod's own /tmp: the interpreter and the bundled entrypoints come from it."""
    from airflow_argo_eci.local.runtime import sandbox

    tools = Path(tempfile.mkdtemp(dir="/tmp", prefix="aae-tools-"))
    tools.chmod(0o755)  # world-readable, like a checkout: pods run as an unprivileged uid
    try:
        (tools / "tool.sh").write_text("echo tool ran\n")
        monkeypatch.setattr(sandbox, "runtime_paths", lambda: (str(tools),))
        rt = Runtime(StatePaths(tmp_path / "state"), sandbox="bwrap")
        try:
            result = run_one(rt, sh("tools", f"sh {tools}/tool.sh; touch {tools}/x 2>/dev/null || echo read-only"))
        finally:
            rt.shutdown()
        assert result.stdout == "tool ran\nread-only"
        assert not (tools / "x").exists()
    finally:
        shutil.rmtree(tools, ignore_errors=True)


def test_runtime_paths_cover_this_python_and_package() -> None:
    from airflow_argo_eci.local.runtime.sandbox import runtime_paths

    paths = runtime_paths()
    assert os.path.realpath(sys.prefix) in paths
    assert any(Path(__file__).resolve().parents[3].joinpath("airflow_argo_eci") == Path(p) for p in paths)


# ---------------------------------------------------------------------------- logs


def test_log_file_format_and_live_follow(runtime: Runtime) -> None:
    done = Collector()
    runtime.submit(sh("logs", "echo first; echo to-stderr >&2; sleep 1; printf 'no newline'"), done)
    log = runtime.paths.log_file("argo", "logs", "main")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (log.exists() and "first" in log.read_text()):
        time.sleep(0.02)
    assert "logs" not in done.results, "the first line must be visible while the pod still runs"
    assert "first" in log.read_text()
    done.wait("logs")
    lines = log.read_text().splitlines()
    contents = []
    for line in lines:
        match = LOG_LINE.match(line)
        assert match, line
        contents.append(match.group(1))
    assert sorted(contents) == sorted(["first", "to-stderr", "no newline"])
    assert done.results["logs"].stdout == "first\nno newline"


def test_result_is_capped(runtime: Runtime) -> None:
    result = run_one(runtime, sh("big", f"head -c {MAX_RESULT_BYTES + 5000} /dev/zero | tr '\\0' a"))
    assert len(result.stdout) == MAX_RESULT_BYTES
    assert result.extra["stdout_truncated"] is True


# ---------------------------------------------------------------------------- kill, deadline, capacity


def test_kill_running_pod(runtime: Runtime) -> None:
    done = Collector()
    runtime.submit(sh("victim", "echo started; sleep 30"), done)
    log = runtime.paths.log_file("argo", "victim")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (log.exists() and "started" in log.read_text()):
        time.sleep(0.02)
    assert runtime.is_running("argo", "victim")
    assert ("argo", "victim") in runtime.running_pods()
    t0 = time.monotonic()
    assert runtime.kill("argo", "victim", "Stopped with strategy 'Terminate'")
    (result,) = done.wait("victim", timeout=5)
    assert time.monotonic() - t0 < 3
    assert (result.phase, result.message) == ("Failed", "Stopped with strategy 'Terminate'")
    assert not runtime.is_running("argo", "victim")
    assert not runtime.kill("argo", "victim", "again")
    time.sleep(0.1)
    assert done.calls["victim"] == 1


def test_kill_queued_pod(tmp_path: Path) -> None:
    rt = Runtime(StatePaths(tmp_path / "state"), capacity_vcpu=1.0)
    done = Collector()
    try:
        rt.submit(sh("big", "sleep 30", cpu=1.0), done)
        rt.submit(sh("waiting", "echo never", cpu=0.5), done)
        assert rt.is_running("argo", "waiting")
        assert rt.kill("argo", "waiting", "workflow shutdown")
        (result,) = done.wait("waiting", timeout=5)
        assert (result.phase, result.message, result.stdout) == ("Failed", "workflow shutdown", "")
        assert not rt.paths.log_file("argo", "waiting").exists()  # never started
    finally:
        rt.shutdown()
    assert done.results["big"].phase == "Failed"
    assert done.calls == {"big": 1, "waiting": 1}


def test_deadline_kills_the_pod(runtime: Runtime) -> None:
    t0 = time.monotonic()
    result = run_one(runtime, sh("slow", "sleep 30", deadline_seconds=0.5))
    assert time.monotonic() - t0 < 5
    assert (result.phase, result.message) == ("Failed", DEADLINE_MESSAGE)


def test_capacity_bounds_concurrency(tmp_path: Path) -> None:
    rt = Runtime(StatePaths(tmp_path / "state"), capacity_vcpu=1.0)
    done = Collector()
    names = [f"cap-{i}" for i in range(4)]
    try:
        for name in names:
            rt.submit(sh(name, "date +%s.%N; sleep 0.4; date +%s.%N", cpu=0.5), done)
        results = done.wait(*names)
    finally:
        rt.shutdown()
    intervals = []
    for result in results:
        start, end = (float(x) for x in result.stdout.split())
        intervals.append((start, end))
    points = sorted(t for interval in intervals for t in interval)
    concurrency = [sum(1 for s, e in intervals if s <= t < e) for t in points]
    assert max(concurrency) == 2, intervals
    # FIFO: the first two started before the last two
    starts = [s for s, _ in intervals]
    assert max(starts[:2]) < min(starts[2:])


def test_pod_larger_than_capacity_runs_alone(tmp_path: Path) -> None:
    rt = Runtime(StatePaths(tmp_path / "state"), capacity_vcpu=1.0)
    done = Collector()
    try:
        rt.submit(sh("huge", "date +%s.%N; sleep 0.3; date +%s.%N", cpu=4.0), done)
        rt.submit(sh("small", "date +%s.%N", cpu=0.1), done)
        huge, small = done.wait("huge", "small")
    finally:
        rt.shutdown()
    assert huge.phase == "Succeeded"
    assert float(small.stdout) >= float(huge.stdout.split()[1])


def test_shutdown_reports_every_pod(tmp_path: Path) -> None:
    rt = Runtime(StatePaths(tmp_path / "state"), capacity_vcpu=0.5)
    done = Collector()
    rt.submit(sh("s1", "sleep 30", cpu=0.5), done)
    rt.submit(sh("s2", "sleep 30", cpu=0.5), done)
    t0 = time.monotonic()
    rt.shutdown()
    assert time.monotonic() - t0 < 5
    assert {n: r.phase for n, r in done.results.items()} == {"s1": "Failed", "s2": "Failed"}
    assert rt.running_pods() == set()
    with pytest.raises(RuntimeError, match="shut down"):
        rt.submit(sh("late", "true"), done)


def test_duplicate_pod_rejected(runtime: Runtime) -> None:
    done = Collector()
    runtime.submit(sh("dup", "sleep 5"), done)
    with pytest.raises(ValueError, match="already queued or running"):
        runtime.submit(sh("dup", "true"), done)


# ---------------------------------------------------------------------------- modes


def test_best_effort_mode_warns_and_rewrites_paths(tmp_path: Path) -> None:
    with pytest.warns(RuntimeWarning, match="WITHOUT isolation"):
        rt = Runtime(StatePaths(tmp_path / "state"), sandbox="none")
    try:
        marker = f"/tmp/best-effort-{tmp_path.name}"
        result = run_one(rt, sh("be", f"echo mine > {marker}; cat {marker}; echo -n o > /mnt/out/f",
                                output_paths=[marker, "/mnt/out/f"]))
        assert result.phase == "Succeeded", result.message
        assert result.stdout == "mine"
        assert result.outputs == {marker: "mine\n", "/mnt/out/f": "o"}
        assert not Path(marker).exists()
        assert result.extra["sandbox"] == "none"
    finally:
        rt.shutdown()


def test_auto_without_bwrap_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    for mode in ("auto", "bwrap"):  # "auto" no longer falls back to no isolation silently
        with pytest.raises(SandboxError, match=f"(?s)sandbox='{mode}' was requested.*bubblewrap.*--sandbox none"):
            Runtime(StatePaths(tmp_path / "state"), sandbox=mode)
