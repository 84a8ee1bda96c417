"""The containers of one multi-container pod, run inside its sandbox: init containers, sidecars, main.

Run as ``python -I -S podsupervisor.py SPEC_FD`` by the sandbox (before any pod code runs). It
reads the pod's plan as JSON from ``SPEC_FD`` (a pipe the runtime writes; never a file the pod can
see) and then, as a kubelet does for one pod:

1. runs each init container in order, to its end; one that fails ends the pod (main never starts);
2. starts every sidecar;
3. runs main; once it exits, kills the sidecars (their whole process groups) and exits with main's
   exit code.

Each container's command is given in full by the runtime (``podinit.py CONFIG COMMAND...`` in the
bubblewrap sandbox: every container gets its own user namespace, no capabilities and the seccomp
filter); its stdout and stderr go to the file descriptors the runtime passed for it, so each
container has its own log. Status lines go to ``status_fd``: ``<container> <exit code>`` for each
container that ended (init containers and main), so the runtime knows which one failed.

A container set (Argo's ``containerSet`` template) gives ``"set"`` instead of ``"main"``: its
containers run as a graph, each once all of its ``dependencies`` exited 0 (independent ones at
the same time); one that fails is started again up to ``retries`` times, and a container whose
dependency failed never starts (no status line). The supervisor exits with the first failing
code of the set (0 when all succeeded), so the pod fails when any container of the set failed.

The spec: ``{"status_fd": int, "init": [C...], "sidecars": [C...], "main": C}`` with C =
``{"name", "argv", "env", "cwd", "stdout_fd", "stderr_fd"}``, or ``"set": [C...]`` with each C
also holding ``"dependencies": [name...]`` and ``"retries": int``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

#: exit code of the supervisor when an init container failed (its status line says which)
EXIT_INIT_FAILED = 125
#: exit code when the spec cannot be read
EXIT_BAD_SPEC = 126


def _start(container: dict[str, Any]) -> int:
    """Fork and exec one container in a process group of its own; returns its pid."""
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.setpgid(0, 0)
            os.dup2(int(container["stdout_fd"]), 1)
            os.dup2(int(container["stderr_fd"]), 2)
            os.closerange(3, 65536)  # the other containers' pipes and the spec stay with the supervisor
            os.chdir(str(container["cwd"]))
            argv = [str(a) for a in container["argv"]]
            os.execvpe(argv[0], argv, {str(k): str(v) for k, v in container["env"].items()})  # noqa: S606
        except OSError as exc:
            os.write(2, f'failed to start container "{container.get("name")}": {exc}\n'.encode())
            os._exit(127)
    return pid


def _wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _report(status_fd: int, name: str, code: int) -> None:
    os.write(status_fd, f"{name} {code}\n".encode())


def run_set(containers: list[dict[str, Any]], status_fd: int) -> int:
    """Run a container set as a graph (see the module docstring); returns the first failing exit
    code, 0 when every container succeeded."""
    pending = {str(c["name"]): c for c in containers}
    codes: dict[str, int] = {}
    tries: dict[str, int] = {}
    running: dict[int, str] = {}
    first_failure = 0
    while pending or running:
        for name, container in list(pending.items()):
            deps = [str(d) for d in container.get("dependencies") or []]
            if any(codes.get(d, 0) != 0 for d in deps if d in codes):
                del pending[name]  # a dependency failed: it never starts
            elif all(codes.get(d) == 0 for d in deps):
                del pending[name]
                running[_start(container)] = name
        if not running:
            if pending:  # waiting on each other (the runtime refuses cycles before start)
                return EXIT_BAD_SPEC
            break
        pid, status = os.wait()
        name = running.pop(pid, "")
        if not name:
            continue
        code = os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
        container = next(c for c in containers if str(c["name"]) == name)
        if code != 0 and tries.get(name, 0) < int(container.get("retries") or 0):
            tries[name] = tries.get(name, 0) + 1
            running[_start(container)] = name
            continue
        codes[name] = code
        _report(status_fd, name, code)
        if code != 0 and first_failure == 0:
            first_failure = code
    return first_failure


def run(spec: dict[str, Any]) -> int:
    """Run the pod's containers as the module docstring says; returns main's exit code (a
    container set's: its first failing code)."""
    status_fd = int(spec["status_fd"])
    for container in spec.get("init") or []:
        code = _wait(_start(container))
        _report(status_fd, str(container["name"]), code)
        if code != 0:
            return EXIT_INIT_FAILED
    sidecars = [_start(c) for c in spec.get("sidecars") or []]
    if spec.get("set") is not None:
        code = run_set(list(spec["set"]), status_fd)
    else:
        main = spec["main"]
        code = _wait(_start(main))
        _report(status_fd, str(main["name"]), code)
    for pid in sidecars:
        _kill(pid)
    for pid in sidecars:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    return code


def main(argv: list[str]) -> int:
    """Read the spec from the descriptor ``argv[1]`` and run it."""
    try:
        with os.fdopen(int(argv[1]), "rb") as stream:
            spec = json.loads(stream.read())
    except (IndexError, ValueError, OSError) as exc:
        sys.stderr.write(f"pod supervisor: cannot read the pod's spec: {exc}\n")
        return EXIT_BAD_SPEC
    return run(spec)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
