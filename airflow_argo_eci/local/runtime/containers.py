"""One container's command line and environment, and the plumbing of multi-container pods.

:func:`plan_container` turns a Kubernetes container spec into what runs (argv, env, workingDir and
the image's shim directory), the same way for main, init containers and sidecars. A pod with init
containers or sidecars runs all of them in one sandbox under :mod:`.podsupervisor` (they share the
pod's network namespace, filesystem and volumes); :class:`ContainerPipes` holds each container's
stdout/stderr pipe and the supervisor's spec and status pipes.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_argo_eci.local.runtime.images import ImageError, ImageTable
from airflow_argo_eci.local.runtime.podsecurity import PodSecurity
from airflow_argo_eci.local.runtime.sandbox import (
    POD_HOME,
    SCRIPT_PATH,
    STANDARD_PATH,
    PodFilesystem,
    Sandbox,
    SandboxError,
    pod_path,
)

#: the in-sandbox supervisor of multi-container pods
PODSUPERVISOR = str(Path(__file__).resolve().parent / "podsupervisor.py")
#: where an init container's or sidecar's image shim directory appears in the bubblewrap sandbox
EXTRA_BIN_ROOT = "/.airflow-argo-eci/containers"


@dataclass
class ContainerPlan:
    """What runs for one container: argv and env (pod paths), its workingDir, the image's shim
    directory on the host and where the pod sees it."""

    name: str
    argv: list[str]
    env: dict[str, str]
    working_dir: str
    bin_dir: Path | None = None
    search: list[str] = field(default_factory=list)
    #: in a container set: the containers that must succeed before this one starts, and how many
    #: times it is started again after failing (``containerSet.retryStrategy.retries``)
    dependencies: list[str] = field(default_factory=list)
    retries: int = 0


def _string_list(value: Any, field_name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SandboxError(f"{field_name} must be a list of strings, got {value!r}")
    return list(value)


def plan_container(container: Any, images: ImageTable, sandbox: Sandbox, pod_name: str, *,
                   script: bool = False, bin_at: str | None = None, what: str = "container") -> ContainerPlan:
    """The command of ``container`` as Kubernetes runs it: ``command`` replaces the image's
    entrypoint and ``args`` follow (with the script path between them for a script template);
    env from ``env`` (values already resolved). ``bin_at``: where the image's shim directory is
    bound in an isolated sandbox (default: the sandbox's own place for main's)."""
    if not isinstance(container, dict):
        raise SandboxError(f"{what} must be an object, got {type(container).__name__}")
    image = container.get("image")
    command = _string_list(container.get("command"), f"{what}.command")
    args = _string_list(container.get("args"), f"{what}.args")
    resolved = images.resolve(image if isinstance(image, str) else "")
    script_arg = [SCRIPT_PATH] if script else []
    if command:
        argv = command + script_arg + args
    elif resolved.entrypoint is not None:
        argv = resolved.entrypoint + script_arg + args
    else:
        raise ImageError(images.unknown_image_message(resolved.image))
    working_dir = pod_path(container.get("workingDir") or "/", f"{what}.workingDir")
    host_path = os.environ.get("PATH", "")
    search = [*STANDARD_PATH, *(p for p in host_path.split(os.pathsep) if p and p not in STANDARD_PATH)]
    if resolved.bin_dir is not None:
        shown = bin_at if (bin_at is not None and sandbox.isolated) else sandbox.pod_bin_dir(resolved.bin_dir)
        search.insert(0, shown)
    env: dict[str, str] = {"PATH": ":".join(search), "HOME": POD_HOME, "HOSTNAME": pod_name}
    for key in ("LANG", "LC_ALL", "TZ"):
        if key in os.environ:
            env[key] = os.environ[key]
    raw_env = container.get("env") or []
    if not isinstance(raw_env, list):
        raise SandboxError(f"{what}.env must be a list, got {type(raw_env).__name__}")
    for index, item in enumerate(raw_env):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise SandboxError(f"{what}.env[{index}] must be an object with a non-empty name")
        value = item.get("value")
        if value is None and item.get("valueFrom") is not None:
            raise SandboxError(
                f"{what}.env[{index}] ({item['name']}): valueFrom must be resolved to a value "
                "before the pod reaches the runtime"
            )
        env[item["name"]] = "" if value is None else str(value)
    plan = ContainerPlan(str(container.get("name") or "main"), argv, env, working_dir, resolved.bin_dir, search)
    plan.dependencies = _string_list(container.get("dependencies"), f"{what}.dependencies")
    return plan


def check_container_graph(plans: list[ContainerPlan]) -> None:
    """A container set's ``dependencies`` name containers of the set and form no cycle, else
    :class:`SandboxError` naming the container and the fix."""
    names = [p.name for p in plans]
    deps = {p.name: p.dependencies for p in plans}
    for plan in plans:
        for dep in plan.dependencies:
            if dep not in deps:
                raise SandboxError(f'containerSet.containers.{plan.name}.dependencies: container "{dep}" not found '
                                   f"(the set holds: {', '.join(names)})")
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [*path[path.index(name):], name]
            raise SandboxError(f"containerSet.containers: dependency cycle {' -> '.join(cycle)}; "
                               "remove one of these dependencies")
        state[name] = 1
        for dep in deps[name]:
            visit(dep, [*path, name])
        state[name] = 2

    for name in names:
        visit(name, [])


def check_executable(plan: ContainerPlan, files: set[str], sandbox: Sandbox, bin_at: str | None = None) -> None:
    """Fail before starting when the program cannot be found (like a container runtime does)."""
    program = plan.argv[0]
    if "/" in program:
        if not program.startswith("/") or program in files or os.path.exists(program):
            return
    else:
        shown = {bin_at, sandbox.pod_bin_dir(plan.bin_dir)} if plan.bin_dir is not None else set()
        host_search = [str(plan.bin_dir) if p in shown else p for p in plan.search]
        if shutil.which(program, path=os.pathsep.join(host_search)) is not None:
            return
    raise SandboxError(
        f'failed to start container "{plan.name}": exec: "{program}": executable file not found in $PATH '
        f"(the local cluster runs host tools; install {program!r} on this host or change the command)"
    )


class ContainerPipes:
    """The pipes of a multi-container pod: one stdout and one stderr pipe per container, the
    supervisor's spec pipe and its status pipe. ``pass_fds`` go to the sandbox process."""

    def __init__(self, names: list[str]) -> None:
        self.out: dict[str, tuple[int, int]] = {name: os.pipe() for name in names}
        self.err: dict[str, tuple[int, int]] = {name: os.pipe() for name in names}
        self.spec = os.pipe()
        self.status = os.pipe()

    @property
    def pass_fds(self) -> tuple[int, ...]:
        """The descriptors the supervisor keeps: write ends of the logs and status, the spec's read end."""
        return (*(w for _, w in self.out.values()), *(w for _, w in self.err.values()), self.status[1],
                self.spec[0])

    def supervisor_command(self) -> list[str]:
        """``python -I -S podsupervisor.py SPEC_FD`` with this interpreter."""
        return [os.path.realpath(sys.executable), "-I", "-S", PODSUPERVISOR, str(self.spec[0])]

    def send_spec(self, spec: dict[str, Any]) -> threading.Thread:
        """Write the supervisor's spec into its pipe from a thread (a large env must not block)."""
        data = json.dumps(spec).encode()
        write_fd = self.spec[1]

        def work() -> None:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(write_fd, view):]
            except OSError:
                pass
            finally:
                os.close(write_fd)

        thread = threading.Thread(target=work, name="pod-spec", daemon=True)
        thread.start()
        return thread

    def container_spec(self, plan: ContainerPlan, argv: list[str], env: dict[str, str], cwd: str) -> dict[str, Any]:
        """One container's entry of the supervisor's spec."""
        return {"name": plan.name, "argv": argv, "env": env, "cwd": cwd,
                "stdout_fd": self.out[plan.name][1], "stderr_fd": self.err[plan.name][1]}

    def close_child_ends(self) -> None:
        """Close what only the sandbox process needs, once it started."""
        for fd in self.pass_fds:
            os.close(fd)

    def close_all(self) -> None:
        """Close every descriptor (the pod never started)."""
        for pair in (*self.out.values(), *self.err.values(), self.spec, self.status):
            for fd in pair:
                try:
                    os.close(fd)
                except OSError:
                    continue

    def read_status(self) -> dict[str, int]:
        """``container -> exit code`` of the containers that ended (read after the pod's end)."""
        chunks = []
        while True:
            chunk = os.read(self.status[0], 65536)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(self.status[0])
        codes: dict[str, int] = {}
        for line in b"".join(chunks).decode(errors="replace").splitlines():
            name, _, code = line.rpartition(" ")
            try:
                codes[name] = int(code)
            except ValueError:
                continue
        return codes


#: the kind of :func:`supervisor_spec`'s extra containers that belong to a container set
CONTAINER_SET = "containerSet"


def supervisor_spec(pipes: ContainerPipes, sandbox: Sandbox, fs: PodFilesystem, main: ContainerPlan,
                    extra: list[tuple[str, ContainerPlan, str]], security: PodSecurity, *,
                    as_set: bool = False) -> dict[str, Any]:
    """The spec :mod:`.podsupervisor` reads: each container's command as the sandbox runs it. With
    ``as_set``, ``main`` and the extra containers of kind :data:`CONTAINER_SET` run as a container
    set's graph."""

    def entry(plan: ContainerPlan) -> dict[str, Any]:
        argv, env, cwd = sandbox.container_launch(fs, plan.argv, plan.env, plan.working_dir, security)
        return pipes.container_spec(plan, argv, env, cwd)

    spec: dict[str, Any] = {"status_fd": pipes.status[1],
                            "init": [entry(plan) for kind, plan, _ in extra if kind == "initContainers"],
                            "sidecars": [entry(plan) for kind, plan, _ in extra if kind == "sidecars"]}
    members = [main, *(plan for kind, plan, _ in extra if kind == CONTAINER_SET)]
    if as_set:
        spec["set"] = [{**entry(plan), "dependencies": plan.dependencies, "retries": plan.retries}
                       for plan in members]
    else:
        spec["main"] = entry(main)
    return spec
