"""PipePump: a pod's pipes copied into its logs while its main process runs, with a pidfd and
with the thread-per-pipe fallback (the same lines either way)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from airflow_argo_eci.local.runtime.pipe_pump import MAX_LINE_BYTES, PipePump


class Lines:
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def line(self, raw: bytes) -> None:
        self.lines.append(raw)


def spawn(script: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


#: the main process exits at once; a background child it started keeps stdout open for 60 s
LEAVES_A_CHILD = ("import subprocess, sys\n"
                  "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
                  "print('main done', flush=True)\n")


@pytest.fixture(params=[True, False], ids=["pidfd", "threads"])
def use_pidfd(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def test_lines_of_both_pipes_reach_their_sinks_and_stdout_is_kept(use_pidfd: bool) -> None:
    script = ("import sys\n"
              "for i in range(2000): print(f'line {i}')\n"
              "sys.stderr.write('err one\\nerr two')\n"
              "sys.stdout.write('last without newline')\n"
              "sys.exit(3)\n")
    process = spawn(script)
    out, err = Lines(), Lines()
    captured = bytearray()
    truncated = [False]
    pump = PipePump(1 << 20, use_pidfd=use_pidfd)
    pump.add(process.stderr, err)
    pump.add(process.stdout, out, captured, truncated)
    exits: list[int] = []
    code = pump.run(process, None, on_timeout=lambda: pytest.fail("no timeout was set"),
                    on_exit=lambda: exits.append(1))
    assert code == 3
    assert exits == [1]
    assert out.lines[:2] == [b"line 0\n", b"line 1\n"]
    assert len(out.lines) == 2001
    assert out.lines[-1] == b"last without newline"
    assert err.lines == [b"err one\n", b"err two"]
    assert captured == b"".join(out.lines)
    assert truncated == [False]
    assert process.stdout is not None and process.stdout.closed


def test_kept_stdout_stops_at_the_limit_and_says_so(use_pidfd: bool) -> None:
    process = spawn("print('x' * 99)\nprint('y' * 99)\n")
    sink = Lines()
    captured = bytearray()
    truncated = [False]
    pump = PipePump(150, use_pidfd=use_pidfd)
    pump.add(process.stdout, sink, captured, truncated)
    assert pump.run(process, None, on_timeout=lambda: None, on_exit=lambda: None) == 0
    assert len(captured) == 150
    assert captured == (b"x" * 99 + b"\n" + b"y" * 50)
    assert truncated == [True]
    assert len(sink.lines) == 2  # the log still has every line


def test_past_the_timeout_on_timeout_runs_once_and_the_wait_ends_with_the_process(use_pidfd: bool) -> None:
    process = spawn("import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    sink = Lines()
    calls: list[str] = []

    def on_timeout() -> None:
        calls.append("timeout")
        kill_group(process)

    pump = PipePump(1 << 20, use_pidfd=use_pidfd)
    pump.add(process.stdout, sink)
    started = time.monotonic()
    code = pump.run(process, 0.5, on_timeout=on_timeout, on_exit=lambda: calls.append("exit"))
    assert time.monotonic() - started < 10
    assert code == -signal.SIGKILL
    assert calls == ["timeout", "exit"]
    assert sink.lines == [b"started\n"]


def test_a_child_left_holding_the_pipe_does_not_hold_the_pod_past_the_drain(use_pidfd: bool) -> None:
    process = spawn(LEAVES_A_CHILD)
    sink = Lines()
    pump = PipePump(1 << 20, use_pidfd=use_pidfd)
    pump.add(process.stdout, sink)
    started = time.monotonic()
    try:
        # on_exit does nothing here (the runtime kills the group): only the drain limit ends the wait
        code = pump.run(process, None, on_timeout=lambda: None, on_exit=lambda: None, drain_seconds=0.5)
    finally:
        kill_group(process)
    assert code == 0
    assert sink.lines == [b"main done\n"]
    assert time.monotonic() - started < 10


def test_killing_the_group_on_exit_closes_the_pipe_at_once(use_pidfd: bool) -> None:
    process = spawn(LEAVES_A_CHILD)
    sink = Lines()
    pump = PipePump(1 << 20, use_pidfd=use_pidfd)
    pump.add(process.stdout, sink)
    started = time.monotonic()
    code = pump.run(process, None, on_timeout=lambda: None, on_exit=lambda: kill_group(process),
                    drain_seconds=30)
    assert code == 0
    assert sink.lines == [b"main done\n"]
    assert time.monotonic() - started < 10  # the pipe closed when the child died, not after 30 s


def test_a_line_without_newlines_is_split_at_the_limit_and_kept_whole_as_stdout(use_pidfd: bool) -> None:
    size = 3 * MAX_LINE_BYTES + 10
    process = spawn(f"import sys\nsys.stdout.write('z' * {size})\nsys.stdout.flush()\n")
    sink = Lines()
    captured = bytearray()
    pump = PipePump(size + 1, use_pidfd=use_pidfd)
    pump.add(process.stdout, sink, captured)
    assert pump.run(process, None, on_timeout=lambda: None, on_exit=lambda: None) == 0
    assert [len(line) for line in sink.lines] == [MAX_LINE_BYTES] * 3 + [10]
    assert captured == b"z" * size
