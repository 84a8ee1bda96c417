"""Container resources.limits on local pods: quantities, and each enforcement method this machine has.

cgroup tests run where this process may create cgroups (root with v1 hierarchies, or a delegated
v2 subtree); the rlimit tests force ``limits="rlimits"`` and run everywhere.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_argo_eci.local.argo.nodes import parse_cpu
from airflow_argo_eci.local.paths import StatePaths
from airflow_argo_eci.local.runtime import PodRequest, PodResult, cgroups
from airflow_argo_eci.local.runtime.limits import (
    LimitError,
    PodLimiter,
    container_limits,
    format_quantity,
    parse_quantity,
    storage_usage,
)
from airflow_argo_eci.local.runtime.runner import Runtime

MiB = 1024 * 1024
_PROBE = PodLimiter()
CGROUP_CONTROLLERS = _PROBE.tree.controllers if _PROBE.tree is not None else ()
_PROBE.close()
needs_cgroup = pytest.mark.skipif(not CGROUP_CONTROLLERS, reason=f"no usable cgroups: {_PROBE.why_not_cgroups}")
needs_cpu_cgroup = pytest.mark.skipif("cpu" not in CGROUP_CONTROLLERS, reason="no cpu cgroup controller")
EVICTED = 'Container main exceeded its local ephemeral storage limit "50Mi". '


# ---------------------------------------------------------------------------- quantities


@pytest.mark.parametrize(("text", "value"), [
    ("64Mi", 64 * MiB), ("1Gi", 1024**3), ("1.5Ki", 1536), ("2Ti", 2 * 1024**4), ("1Ei", 1024**6),
    ("100m", Decimal("0.1")), ("2", 2), (2, 2), (0.5, Decimal("0.5")), ("1k", 1000), ("1M", 10**6),
    ("1e3", 1000), ("1E3", 1000), ("5e-3", Decimal("0.005")), ("+1G", 10**9), ("12n", Decimal("12e-9")),
    ("3u", Decimal("3e-6")), (".5", Decimal("0.5")), (" 50Mi ", 50 * MiB), ("0", 0),
])
def test_quantities_parse_as_kubernetes_does(text: Any, value: Any) -> None:
    assert parse_quantity(text, "resources.limits.memory") == Decimal(value)


@pytest.mark.parametrize("text", [
    "lots", "", "Mi", "1.2.3", "1Mib", "1 Mi", "1K", "1mi", "0x10", "1e", "--1", "1e400", "9223372036854775808",
    "1" * 80, True, None, [1], {"a": 1}, float("nan"), float("inf"),
])
def test_bad_quantities_name_the_field_and_the_fix(text: Any) -> None:
    with pytest.raises(LimitError) as err:
        parse_quantity(text, "resources.limits.memory")
    assert "resources.limits.memory" in str(err.value)
    assert "quantity" in str(err.value) or "too large" in str(err.value)


@settings(database=None)
@given(st.text(max_size=40))
def test_any_text_parses_or_fails_with_limit_error(text: str) -> None:
    try:
        value = parse_quantity(text, "f")
    except LimitError as exc:
        assert str(exc).startswith("f: ")
    else:
        assert abs(value) < 2**63


@pytest.mark.parametrize(("value", "binary", "text"), [
    (50 * MiB, True, "50Mi"), (512 * MiB, True, "512Mi"), (1024**3, True, "1Gi"), (1536, True, "1536"),
    (52428800, False, "52428800"), (1000, False, "1k"), (Decimal("0.5"), False, "500m"), (3 * 10**9, False, "3G"),
])
def test_quantities_print_in_canonical_form(value: Any, binary: bool, text: str) -> None:
    assert format_quantity(Decimal(value), binary) == text


def test_container_resources_are_validated() -> None:
    limits = container_limits({"resources": {"limits": {"memory": "64Mi", "cpu": "500m", "ephemeral-storage": "0.5Gi",
                                                        "nvidia.com/gpu": 1}}}, 100)
    assert (limits.memory, limits.cpu, limits.ephemeral_storage, limits.pids) == (64 * MiB, 0.5, 512 * MiB, 100)
    assert limits.ephemeral_storage_text == "512Mi"
    assert container_limits({}, None).memory is None
    assert container_limits({"resources": {"limits": {"memory": "0"}}}, None).memory is None  # 0: no limit
    cases = [
        ({"resources": "big"}, "resources must be an object"),
        ({"resources": {"limits": ["1Gi"]}}, "resources.limits must be an object"),
        ({"resources": {"limits": {"memory": "-1Gi"}}}, "resources.limits.memory: '-1Gi' must be greater than"),
        ({"resources": {"requests": {"cpu": "1x"}}}, "resources.requests.cpu: '1x' is not a quantity"),
        ({"resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}},
         "resources.requests.cpu: '2' must be less than or equal to the cpu limit of '1'"),
    ]
    for container, message in cases:
        with pytest.raises(LimitError, match=message.replace(".", r"\.").replace("(", r"\(")):
            container_limits(container, None)


def test_the_controller_reads_cpu_with_the_same_parser() -> None:
    assert parse_cpu("250m", 0.1) == 0.25
    assert parse_cpu("1e0", 0.1) == 1.0
    assert parse_cpu("nonsense", 0.1) == 0.1  # the runtime fails that pod, naming the field


def test_storage_usage_counts_files_once_without_following_links(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"x" * MiB)
    os.link(tmp_path / "d" / "a", tmp_path / "d" / "hard")
    os.symlink("/usr", tmp_path / "d" / "escape")
    used = storage_usage([tmp_path, tmp_path / "d" / "a"])
    assert MiB <= used < MiB + 64 * 1024


# ---------------------------------------------------------------------------- through the runtime


class Done:
    def __init__(self) -> None:
        self.result: PodResult | None = None
        self.event = threading.Event()

    def __call__(self, result: PodResult) -> None:
        self.result = result
        self.event.set()


def run(rt: Runtime, name: str, script: str, limits: dict[str, Any] | None = None,
        timeout: float = 60.0, **kwargs: Any) -> PodResult:
    done = Done()
    container = {"image": "python", "command": ["sh", "-c"], "args": [script],
                 "resources": {"limits": limits or {}}}
    rt.submit(PodRequest("argo", name, container, **kwargs), done)
    assert done.event.wait(timeout), f"pod {name} did not finish in {timeout}s"
    assert done.result is not None
    return done.result


@pytest.fixture
def cgroup_runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(StatePaths(tmp_path / "state"), pids_limit=64)
    yield rt
    rt.shutdown()


@pytest.fixture
def rlimit_runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(StatePaths(tmp_path / "state"), limits="rlimits", pids_limit=64)
    yield rt
    rt.shutdown()


HOG = "python3 -c 'x = bytearray(200 * 1024 * 1024); print(len(x))'"


@needs_cgroup
def test_cgroup_memory_limit_ends_oomkilled_137(cgroup_runtime: Runtime) -> None:
    assert cgroup_runtime.limits_method.startswith("cgroup v")
    hog = run(cgroup_runtime, "hog", HOG, {"memory": "50Mi"})
    assert (hog.phase, hog.exit_code, hog.reason, hog.message) == (
        "Failed", 137, "OOMKilled", "OOMKilled (exit code 137)")
    fits = run(cgroup_runtime, "fits", "python3 -c 'x = bytearray(20 * 1024 * 1024); print(len(x))'",
               {"memory": "100Mi"})
    assert (fits.phase, fits.stdout, fits.reason) == ("Succeeded", str(20 * MiB), "")


@needs_cgroup
def test_the_rest_of_an_oom_killed_pod_dies_too(cgroup_runtime: Runtime) -> None:
    # the shell survives its child's OOM kill; like memory.oom.group, the whole pod ends
    started = time.monotonic()
    res = run(cgroup_runtime, "group", f"{HOG}; sleep 30; echo survived", {"memory": "50Mi"})
    assert (res.phase, res.reason, res.exit_code) == ("Failed", "OOMKilled", 137)
    assert "survived" not in res.stdout and time.monotonic() - started < 20


@needs_cgroup
def test_cgroup_pid_limit_stops_a_fork_bomb(cgroup_runtime: Runtime) -> None:
    res = run(cgroup_runtime, "forks", "i=0; while [ $i -lt 300 ]; do sleep 30 & i=$((i+1)); done; echo spawned $i")
    assert res.phase == "Failed" and "spawned 300" not in res.stdout, res
    assert run(cgroup_runtime, "after", "echo ok").phase == "Succeeded"


@needs_cpu_cgroup
def test_cpu_limit_is_a_cfs_quota(cgroup_runtime: Runtime) -> None:
    busy = ("import time\nend = time.monotonic() + 1.5\nwhile time.monotonic() < end: pass\n"
            "print(round(time.process_time(), 2))")
    res = run(cgroup_runtime, "busy", f"python3 -c '{busy}'", {"cpu": "200m"})
    assert res.phase == "Succeeded", res
    assert float(res.stdout) < 0.6, f"{res.stdout} CPU seconds in 1.5 s under a 200m quota"


@needs_cgroup
def test_pod_cgroups_are_removed_with_leftover_processes(cgroup_runtime: Runtime) -> None:
    tree = cgroup_runtime.limiter.tree
    assert tree is not None
    parents = list(dict.fromkeys(tree.parents.values()))
    res = run(cgroup_runtime, "leftover", "setsid sleep 300 & echo started")
    assert res.phase == "Succeeded"
    deadline = time.monotonic() + 5  # processes still exiting keep a cgroup busy for some milliseconds
    while any(p.is_dir() for parent in parents for p in parent.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for parent in parents for p in parent.iterdir() if p.is_dir()]
    cgroup_runtime.shutdown()
    assert not any(parent.exists() for parent in parents)


@needs_cgroup
def test_cgroups_of_a_killed_runtime_are_removed_by_the_next(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from airflow_argo_eci.local.paths import StatePaths
        from airflow_argo_eci.local.runtime import PodRequest
        from airflow_argo_eci.local.runtime.runner import Runtime
        rt = Runtime(StatePaths(Path({str(tmp_path / 'state')!r})))
        rt.submit(PodRequest("argo", "p", {{"image": "alpine", "command": ["sleep", "300"]}}), print)
        time.sleep(1.0)
        print(*sorted({{str(p) for p in rt.limiter.tree.parents.values()}}), flush=True)
        time.sleep(300)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    dirs = [Path(p) for p in proc.stdout.readline().split()]
    assert dirs and all(d.is_dir() for d in dirs)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    PodLimiter().close()  # a new runtime starts: it removes what the dead one left
    assert not any(d.exists() for d in dirs)


def test_rlimits_are_set_in_the_pod(rlimit_runtime: Runtime) -> None:
    assert rlimit_runtime.limits_method.startswith("rlimits (memory as RLIMIT_DATA")
    res = run(rlimit_runtime, "limits", "cat /proc/self/limits",
              {"memory": "64Mi", "ephemeral-storage": "10Mi", "cpu": "500m"}, deadline_seconds=30)
    rows = {line[:26].strip(): line[26:].split() for line in res.stdout.splitlines()[1:]}
    assert rows["Max data size"][:2] == [str(64 * MiB)] * 2
    assert rows["Max file size"][:2] == [str(11 * MiB)] * 2
    assert rows["Max cpu time"][:2] == ["15", "15"]  # 0.5 vCPU x the 30 s deadline
    assert rows["Max core file size"][:2] == ["0", "0"]
    assert int(rows["Max processes"][0]) >= 64


def test_rlimit_memory_limit_fails_the_allocation(rlimit_runtime: Runtime) -> None:
    res = run(rlimit_runtime, "hog", f"{HOG} 2>&1", {"memory": "50Mi"})
    assert (res.phase, res.exit_code, res.reason) == ("Failed", 1, "")
    assert "MemoryError" in res.stdout


@pytest.mark.parametrize("method", ["auto", "rlimits"])
def test_ephemeral_storage_over_the_limit_is_evicted(tmp_path: Path, method: str) -> None:
    rt = Runtime(StatePaths(tmp_path / "state"), limits=method)
    try:
        fast = run(rt, "fast", "head -c 209715200 /dev/zero > /tmp/big; echo wrote", {"ephemeral-storage": "50Mi"})
        assert (fast.phase, fast.exit_code, fast.reason, fast.message) == ("Failed", 137, "Evicted", EVICTED)
        started = time.monotonic()
        slow = run(rt, "slow", "for i in 1 2 3 4 5 6 7 8 9 10; do head -c 10485760 /dev/zero > /tmp/f$i; "
                               "sleep 0.5; done; echo finished", {"ephemeral-storage": "50Mi"})
        assert (slow.phase, slow.reason, slow.message) == ("Failed", "Evicted", EVICTED)
        assert "finished" not in slow.stdout and time.monotonic() - started < 4.5  # evicted while running
        logs = run(rt, "logs", "head -c 62914560 /dev/zero | tr '\\0' 'x' | fold -w 1000",
                   {"ephemeral-storage": "50Mi"})
        assert logs.reason == "Evicted"  # the container log counts, as on a kubelet
        fits = run(rt, "fits", "head -c 10485760 /dev/zero > /tmp/f; echo ok", {"ephemeral-storage": "50Mi"})
        assert (fits.phase, fits.stdout, fits.reason) == ("Succeeded", "ok", "")
    finally:
        rt.shutdown()


def test_bad_quantity_fails_the_pod_naming_the_field(rlimit_runtime: Runtime) -> None:
    res = run(rlimit_runtime, "bad", "true", {"memory": "lots"})
    assert res.phase == "Error"
    assert res.message.startswith("resources.limits.memory: 'lots' is not a quantity; use a number")


def test_runtime_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="limits must be 'auto' or 'rlimits'"):
        Runtime(StatePaths(tmp_path), limits="cgroups")
    with pytest.raises(ValueError, match="pids_limit must be a positive integer"):
        Runtime(StatePaths(tmp_path), pids_limit=0)


def test_probe_reports_why_cgroups_are_not_used() -> None:
    tree, why = cgroups.probe()
    try:
        assert (tree is None) == bool(why)
    finally:
        if tree is not None:
            tree.close()


def test_without_wrapper_programs_the_limits_are_set_before_exec(tmp_path: Path) -> None:
    limiter = PodLimiter("rlimits", pids_limit=64)
    guard = limiter.guard("fallback", container_limits({"resources": {"limits": {"memory": "64Mi"}}}, 64), [])
    guard.prlimit = None  # a host without util-linux's prlimit: preexec_fn instead of the wrapper
    assert guard.preexec_fn is not None and guard.wrap(["cat", "/proc/self/limits"]) == ["cat", "/proc/self/limits"]
    out = subprocess.run(guard.wrap(["cat", "/proc/self/limits"]), preexec_fn=guard.preexec_fn,
                         capture_output=True, text=True, check=True).stdout
    guard.close()
    assert f"Max data size             {64 * MiB}" in out
