"""The local pod runtime: admits pods against a vCPU budget and runs them as sandboxed processes.

Execution follows Kubernetes: ``command`` replaces the image's entrypoint and ``args`` are appended;
without a ``command`` the image's entrypoint (see :mod:`.images`) runs with the ``args``. Script
templates get their ``source`` written to ``/argo/staging/script`` in the pod, which is appended
to the command (``command + [script] + args``), as Argo does.

Logs: every line of stdout and stderr is appended to ``StatePaths.log_file(ns, pod, "main")`` as
``<RFC3339Nano UTC> <line>`` and flushed at once, so followers see it live. ``PodResult.stdout`` is
the stdout alone with one trailing newline trimmed (Argo's ``outputs.result``); like Argo's
256 KiB limit on results, only the first :data:`MAX_RESULT_BYTES` bytes are kept (the log keeps
everything) and ``PodResult.extra["stdout_truncated"]`` is then True.

Outcomes (``PodResult.phase``/``message``): exit 0 is ``Succeeded`` with ``""``; another exit code
is ``Failed`` with ``"Error (exit code N)"``; a pod killed by :meth:`Runtime.kill` or by its
deadline is ``Failed`` with the kill message (exit code 137); a pod that cannot start (bad spec,
unknown image without command, executable not found) is ``Error`` with exit code -1.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow_argo_eci.conventions import now_rfc3339, rfc3339
from airflow_argo_eci.local.paths import StatePaths
from airflow_argo_eci.local.runtime import PodRequest, PodResult, PodVolume
from airflow_argo_eci.local.runtime.capacity import CapacityQueue
from airflow_argo_eci.local.runtime.containers import (
    CONTAINER_SET,
    EXTRA_BIN_ROOT,
    ContainerPipes,
    ContainerPlan,
    check_container_graph,
    check_executable,
    plan_container,
    supervisor_spec,
)
from airflow_argo_eci.local.runtime.images import ImageError, ImageTable
from airflow_argo_eci.local.runtime.isolation import make_sandbox
from airflow_argo_eci.local.runtime.limits import DEFAULT_PIDS_LIMIT, LimitError, PodLimiter, PodLimits
from airflow_argo_eci.local.runtime.pipe_pump import PipePump
from airflow_argo_eci.local.runtime.podfiles import (
    MAX_PARAMETER_BYTES,
    PodFileError,
    PodFileMissing,
    PodFiles,
    image_path,
)
from airflow_argo_eci.local.runtime.podnetwork import POD_IP_ENV, NetworkError, PodNetworks, pod_address
from airflow_argo_eci.local.runtime.podsecurity import pod_security
from airflow_argo_eci.local.runtime.probes import Probe, parse_probe, wait_ready
from airflow_argo_eci.local.runtime.sandbox import (
    POD_HOME,
    SCRIPT_PATH,
    BestEffortSandbox,
    BwrapSandbox,
    PodFilesystem,
    PodSecurity,
    Sandbox,
    SandboxError,
    interpreter_paths,
    pod_path,
    remove_mount_points,
    runtime_paths,
)
from airflow_argo_eci.local.runtime.volumes import attach_volumes, plan_mounts

log = logging.getLogger(__name__)

#: bytes of stdout kept as ``PodResult.stdout`` (Argo caps ``outputs.result`` at 256 KiB)
MAX_RESULT_BYTES = 256 * 1024
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
SHUTDOWN_MESSAGE = "the local cluster runtime shut down"
KILLED_EXIT_CODE = 128 + 9
NOT_STARTED_EXIT_CODE = -1

PodKey = tuple[str, str]


def rfc3339_nano(ns: int | None = None) -> str:
    """UTC time as RFC 3339 with nanoseconds (``2024-01-01T00:00:00.123456789Z``)."""
    value = time.time_ns() if ns is None else ns
    seconds, nanos = divmod(value, 1_000_000_000)
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


class _LogWriter:
    """Appends timestamped lines to a container log file, flushing each line."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "wb")  # a new pod of the same name starts a new log, as on a kubelet
        self._lock = threading.Lock()

    def line(self, raw: bytes) -> None:
        text = raw.rstrip(b"\n").rstrip(b"\r").decode("utf-8", errors="replace")
        with self._lock:
            self._file.write(f"{rfc3339_nano()} {text}\n".encode())
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


@dataclass
class _Pod:
    req: PodRequest
    on_done: Callable[[PodResult], None]
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str = "/"
    host_bin_dir: Path | None = None
    fs: PodFilesystem | None = None
    security: PodSecurity = field(default_factory=PodSecurity)
    process: subprocess.Popen[bytes] | None = None
    kill_message: str | None = None
    started: bool = False
    reported: bool = False
    thread: threading.Thread | None = None
    limits: PodLimits | None = None  # resources.limits to enforce (limits.py)
    mounted: dict[str, PodVolume] = field(default_factory=dict)  # mount path -> its volume (volumes.py)
    #: init containers and sidecars: (kind, plan, where its image's shim directory is bound)
    extra: list[tuple[str, ContainerPlan, str]] = field(default_factory=list)
    #: the main container's plan (its name is the container's own in a container set)
    main_plan: ContainerPlan | None = None
    #: the main container's readiness probe (probes.py)
    probe: Probe | None = None

    @property
    def key(self) -> PodKey:
        return (self.req.namespace, self.req.pod_name)


class Runtime:
    """Runs :class:`PodRequest` s as local processes, at most ``capacity_vcpu`` vCPUs at once.

    ``sandbox``: ``"auto"`` and ``"bwrap"`` run pods in the full sandbox (bubblewrap, user namespace,
    no capabilities, seccomp; see :mod:`.sandbox`) and raise :class:`.sandbox.SandboxError` naming
    what is missing when a piece is unavailable (:mod:`.isolation`); ``"none"`` runs best-effort, with
    no isolation. ``sandbox_uid``: the unprivileged host uid pods run as when this process is root
    (default 65534). All methods are thread-safe.
    """

    def __init__(self, paths: StatePaths, capacity_vcpu: float = 8.0, sandbox: str = "auto",
                 limits: str = "auto", pids_limit: int | None = DEFAULT_PIDS_LIMIT,
                 sandbox_uid: int | None = None) -> None:
        self.paths = paths
        #: enforces resources.limits and the per-pod pid limit (``limits``: "auto" | "rlimits")
        self.limiter = PodLimiter(limits, pids_limit)
        self.capacity_vcpu = capacity_vcpu
        self._queue: CapacityQueue[PodKey] = CapacityQueue(capacity_vcpu)
        self.images = ImageTable(paths.root / "images")
        self.sandbox: Sandbox = make_sandbox(sandbox, hidden=[paths.root], host_uid=sandbox_uid)
        if isinstance(self.sandbox, BestEffortSandbox):
            text = (
                "local cluster pods run WITHOUT isolation (sandbox='none' was requested): they run directly "
                "on this host as your user and can read and write all your files; absolute /tmp, output and "
                "input paths in commands are rewritten into per-pod directories. Use the default sandbox "
                "(bubblewrap) for isolated pods."
            )
            warnings.warn(text, RuntimeWarning, stacklevel=2)
            log.warning("%s", text)
        self._lock = threading.Lock()
        self._pods: dict[PodKey, _Pod] = {}
        self._threads: set[threading.Thread] = set()
        self._closed = False
        #: network namespaces shared by pods (podnetwork.py)
        self.networks = PodNetworks()

    # ------------------------------------------------------------------ public API

    @property
    def limits_method(self) -> str:
        """How resource limits are enforced, e.g. ``"cgroup v1 (memory, pids, cpu)"`` or ``"rlimits (...)"``."""
        return self.limiter.method

    def submit(self, req: PodRequest, on_done: Callable[[PodResult], None]) -> None:
        """Queue ``req``; returns at once. ``on_done`` is called exactly once, from a runtime thread."""
        pod = _Pod(req, on_done)
        with self._lock:
            if self._closed:
                raise RuntimeError("the runtime is shut down; it accepts no more pods")
            if pod.key in self._pods:
                raise ValueError(f"pod {req.namespace}/{req.pod_name} is already queued or running")
            self._pods[pod.key] = pod
        try:
            self._plan(pod)
            pod.limits = self.limiter.parse(req.container)
        except (SandboxError, ImageError, LimitError, OSError) as exc:
            self._report_async(pod, self._not_started(pod, str(exc)))
            return
        cpu = max(0.0, float(req.cpu))
        self._queue.submit(pod.key, cpu, lambda: self._start(pod))

    def kill(self, namespace: str, pod_name: str, message: str) -> bool:
        """Kill a queued or running pod; it ends ``Failed`` with ``message``. False if unknown."""
        with self._lock:
            pod = self._pods.get((namespace, pod_name))
            if pod is None or pod.reported:
                return False
            if pod.kill_message is None:
                pod.kill_message = message
            process = pod.process
        if self._queue.remove(pod.key):
            self._report_async(pod, self._not_started(pod, pod.kill_message or message, phase="Failed"))
            return True
        if process is not None:
            _kill_group(process)
        return True

    def address_of(self, namespace: str, pod_name: str) -> str:
        """The pod's IP (``status.podIP``): its own loopback address in the sandbox
        (:func:`.podnetwork.pod_address`); ``127.0.0.1`` without isolation (pods share the host's network)."""
        return pod_address(namespace, pod_name) if self.sandbox.isolated else "127.0.0.1"

    def is_running(self, namespace: str, pod_name: str) -> bool:
        """True while the pod is queued or running."""
        with self._lock:
            return (namespace, pod_name) in self._pods

    def running_pods(self) -> set[PodKey]:
        """``(namespace, pod_name)`` of every queued or running pod."""
        with self._lock:
            return set(self._pods)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Kill every pod (each reports ``Failed``), then join the runtime's threads."""
        with self._lock:
            self._closed = True
            keys = list(self._pods)
        for namespace, name in keys:
            self.kill(namespace, name, SHUTDOWN_MESSAGE)
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                threads = list(self._threads)
            if not threads:
                break
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                log.warning("runtime shutdown: %d threads still running after %ss", len(threads), timeout)
                break
        self.limiter.close()
        self.networks.close()

    # ------------------------------------------------------------------ planning

    def _plan(self, pod: _Pod) -> None:
        """Validate the spec and compute argv, env and the writable paths (no side effects)."""
        req = pod.req
        container = req.container
        if not isinstance(container, dict):
            raise SandboxError(f"container must be an object, got {type(container).__name__}")
        main = plan_container(container, self.images, self.sandbox, req.pod_name,
                              script=req.script_source is not None, what="container")
        in_set = req.container_set is not None
        main.name = str(container.get("name") or "main") if in_set else "main"
        main.retries = req.container_retries
        fs = PodFilesystem(self.paths.pod_dir(req.namespace, req.pod_name))
        for index, out in enumerate(req.output_paths):
            fs.add_file(pod_path(out, f"output_paths[{index}]"))
        for path in req.input_files:
            fs.add_file(pod_path(path, f"input_files[{path!r}]"))
        for path in req.input_paths:
            fs.add_file(pod_path(path, f"input_paths[{path!r}]"))
        for path in req.artifact_paths:
            fs.add_output_path(pod_path(path, f"artifact_paths[{path!r}]"))
        if req.script_source is not None:
            fs.add_file(SCRIPT_PATH)
        fs.add_dir(main.working_dir)
        fs.add_dir(POD_HOME)
        pod.mounted = plan_mounts(fs, req.volumes, req.volume_mounts)
        names = {main.name}
        for kind, specs in (("initContainers", req.init_containers), ("sidecars", req.sidecars),
                            (CONTAINER_SET, req.container_set or [])):
            for index, spec in enumerate(specs):
                at = f"{EXTRA_BIN_ROOT}/{len(pod.extra)}"
                plan = plan_container(spec, self.images, self.sandbox, req.pod_name, bin_at=at,
                                      what=f"{kind}[{index}]" if kind != CONTAINER_SET else
                                      f"containerSet.containers[{index}]")
                plan.retries = req.container_retries
                self.paths.log_file(req.namespace, req.pod_name, plan.name)  # a safe name, else 400 here
                if plan.name in names:
                    raise SandboxError(f'{kind}[{index}].name: Duplicate value: "{plan.name}"')
                names.add(plan.name)
                fs.add_dir(plan.working_dir)
                check_executable(plan, fs.files, self.sandbox, at)
                pod.extra.append((kind, plan, at))
        if in_set:
            check_container_graph([main, *(plan for kind, plan, _ in pod.extra if kind == CONTAINER_SET)])
        pod.main_plan = main

        pod.argv = main.argv
        pod.env = main.env
        pod.working_dir = main.working_dir
        pod.host_bin_dir = main.bin_dir
        pod.fs = fs
        pod.security = pod_security(req.security_context, container.get("securityContext"), req.host_network)
        pod.probe = parse_probe(container)
        check_executable(main, fs.files, self.sandbox)

    # ------------------------------------------------------------------ running

    def _start(self, pod: _Pod) -> None:
        thread = threading.Thread(target=self._run, args=(pod,), name=f"pod-{pod.req.pod_name}", daemon=True)
        with self._lock:
            pod.started = True
            pod.thread = thread
            self._threads.add(thread)
        thread.start()

    def _run(self, pod: _Pod) -> None:
        started = time.time()
        try:
            result = self._execute(pod, started)
        except Exception as exc:  # a bug or a host problem must still end the pod
            log.exception("pod %s/%s failed in the runtime", *pod.key)
            result = self._result(pod, started, NOT_STARTED_EXIT_CODE, "", {}, "Error",
                                  f"local runtime error: {exc}")
        finally:
            self._queue.release(pod.key)
        self._report(pod, result)
        with self._lock:
            self._threads.discard(threading.current_thread())

    def _network_key(self, pod: _Pod) -> str | None:
        """Which network namespace the runtime makes for the pod (podnetwork.py): the shared one of
        ``PodRequest.network``, one of its own for a probed pod, else None (bubblewrap's own)."""
        if not self.sandbox.isolated:
            return None
        if pod.req.network:
            return f"shared:{pod.req.network}"
        if pod.probe is not None and pod.probe.runs and pod.req.on_ready is not None:
            return f"pod:{pod.req.namespace}/{pod.req.pod_name}"
        return None

    def _execute(self, pod: _Pod, started: float) -> PodResult:
        key = self._network_key(pod)
        netns: int | None = None
        if key is not None:
            try:
                netns = self.networks.acquire(key)
            except NetworkError as exc:
                if pod.req.network:  # the pod would not reach the pods it must reach
                    return self._result(pod, started, NOT_STARTED_EXIT_CODE, "", {}, "Error", str(exc))
                log.info("pod %s/%s: its readiness probe cannot be sent (%s); it counts as ready after "
                         "initialDelaySeconds", *pod.key, exc)
        try:
            return self._execute_in(pod, started, netns)
        finally:
            if key is not None and netns is not None:
                self.networks.release(key)

    def _execute_in(self, pod: _Pod, started: float, netns: int | None) -> PodResult:
        req = pod.req
        fs = pod.fs
        assert fs is not None
        main_name = pod.main_plan.name if pod.main_plan is not None else "main"
        in_set = req.container_set is not None
        pipes = ContainerPipes([main_name, *(plan.name for _, plan, _ in pod.extra)]) \
            if pod.extra or in_set else None
        try:
            fs.create()
            owner = (self.sandbox.host_uid, self.sandbox.host_gid) \
                if isinstance(self.sandbox, BwrapSandbox) and self.sandbox.as_root else None
            attach_volumes(fs, pod.mounted, owner)
            for path, content in req.input_files.items():
                target = fs.host_path(pod_path(path, "input_files"))
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            if req.prepare is not None:
                try:
                    req.prepare(lambda path: fs.host_path(pod_path(path, "input_paths")))
                except Exception as exc:  # Argo's init container failing: the pod never starts
                    return self._result(pod, started, NOT_STARTED_EXIT_CODE, "", {}, "Error", str(exc))
            if req.script_source is not None:
                script = fs.host_path(SCRIPT_PATH)
                script.parent.mkdir(parents=True, exist_ok=True)
                script.write_text(self.sandbox.rewrite(fs, req.script_source))
                script.chmod(0o755)
            command = pipes.supervisor_command() if pipes is not None else None
            if netns is not None:
                pod.security = replace(pod.security, shared_network=True)
                if req.network:  # bundled servers listen on the pod's own address (images/ports.py)
                    own = {POD_IP_ENV: self.address_of(*pod.key)}
                    pod.env = {**pod.env, **own}
                    for _, plan, _ in pod.extra:
                        plan.env = {**plan.env, **own}
                    if pod.main_plan is not None:
                        pod.main_plan.env = {**pod.main_plan.env, **own}
            extra_bins = {at: plan.bin_dir for _, plan, at in pod.extra if plan.bin_dir is not None}
            launch = self.sandbox.launch(fs, pod.argv, pod.env, pod.working_dir, pod.host_bin_dir, pod.security,
                                         command=command, extra_bins=extra_bins)
            main = pod.main_plan or ContainerPlan("main", pod.argv, pod.env, pod.working_dir)
            spec = supervisor_spec(pipes, self.sandbox, fs, main, pod.extra, pod.security,
                                   as_set=in_set) if pipes else None
        except (OSError, SandboxError) as exc:
            if pipes is not None:
                pipes.close_all()
            return self._result(pod, started, NOT_STARTED_EXIT_CODE, "", {}, "Error",
                                f"cannot prepare the pod's files: {exc}")

        log_path = self.paths.log_file(req.namespace, req.pod_name, main_name)
        try:  # resource limits (limits.py): cgroups / rlimits, set by a host-side wrapper before exec
            guard = self.limiter.guard(req.pod_name, pod.limits or PodLimits(), [fs.pod_dir, log_path],
                                       req.deadline_seconds)
        except OSError as exc:
            if pipes is not None:
                pipes.close_all()
            return self._result(pod, started, NOT_STARTED_EXIT_CODE, "", {}, "Error",
                                f"cannot apply the container's resource limits: {exc}")
        logs = _LogWriter(log_path)
        extra_logs = {plan.name: _LogWriter(self.paths.log_file(req.namespace, req.pod_name, plan.name))
                      for _, plan, _ in pod.extra}
        codes: dict[str, int] = {}
        ready_stop = threading.Event()
        prober: threading.Thread | None = None
        try:
            with self._lock:
                if pod.kill_message is not None:
                    if pipes is not None:
                        pipes.close_all()
                    return self._result(pod, started, KILLED_EXIT_CODE, "", {}, "Failed", pod.kill_message)
                argv = launch.argv if netns is None else [*self.networks.enter_command(netns), *launch.argv]
                fds = (*(pipes.pass_fds if pipes is not None else ()), *(() if netns is None else (netns,)))
                try:
                    process = subprocess.Popen(
                        guard.wrap(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, env=launch.env, cwd=launch.cwd, start_new_session=True,
                        preexec_fn=guard.preexec_fn,  # None unless sh/prlimit are missing (limits.py)
                        pass_fds=fds,
                    )
                except (OSError, subprocess.SubprocessError) as exc:
                    if pipes is not None:
                        pipes.close_all()
                    return self._result(pod, started, NOT_STARTED_EXIT_CODE, "", {}, "Error",
                                        f'failed to start container "main": {exc}')
                pod.process = process
            guard.watch(process.pid)
            captured = bytearray()
            truncated = [False]
            pump = PipePump(MAX_RESULT_BYTES)  # every pipe read in this thread (pipe_pump.py)
            main_out = process.stdout
            pump.add(process.stderr, logs)
            if pipes is not None and spec is not None:
                pipes.close_child_ends()
                pipes.send_spec(spec)
                pump.add(process.stdout, logs)
                main_out = os.fdopen(pipes.out[main_name][0], "rb")
                pump.add(os.fdopen(pipes.err[main_name][0], "rb"), logs)
                for name, writer in extra_logs.items():
                    for fds in (pipes.out[name], pipes.err[name]):
                        pump.add(os.fdopen(fds[0], "rb"), writer)
            pump.add(main_out, logs, captured, truncated)
            prober = self._start_prober(pod, netns, ready_stop)
            timeout = None if req.deadline_seconds is None else max(0.0, float(req.deadline_seconds))

            def past_deadline() -> None:
                with self._lock:
                    if pod.kill_message is None:
                        pod.kill_message = DEADLINE_MESSAGE
                _kill_group(process)

            # like a container: once the main process ends, whatever it left behind dies too
            code = pump.run(process, timeout, on_timeout=past_deadline, on_exit=lambda: _kill_group(process))
            if pipes is not None:
                codes = pipes.read_status()
            verdict = guard.verdict()  # limits.py: OOMKilled / Evicted, else None
        finally:
            ready_stop.set()
            if prober is not None:
                prober.join(5.0)
            logs.close()
            for writer in extra_logs.values():
                writer.close()
            guard.close()

        if code < 0:
            code = 128 - code
        if self.sandbox.isolated and pod.fs is not None:
            remove_mount_points(pod.fs.tmp_dir)
            bound = (*runtime_paths(), *interpreter_paths(), *getattr(self.sandbox, "masked", ()))
            for mount, (host_dir, read_only) in pod.fs.mounts.items():
                if host_dir is not None and not read_only:
                    remove_mount_points(host_dir, bound, under=mount)
        outputs, output_error = self._read_outputs(pod)
        stdout = captured.decode("utf-8", errors="replace")
        if stdout.endswith("\n"):
            stdout = stdout[:-1]
        with self._lock:
            kill_message = pod.kill_message
        if kill_message is not None:
            phase, message = "Failed", kill_message
        elif code == 0:
            phase, message = "Succeeded", ""
        else:
            phase, message = "Failed", f"Error (exit code {code})"
        failed_init = next(((plan.name, codes[plan.name]) for kind, plan, _ in pod.extra
                            if kind == "initContainers" and codes.get(plan.name, 0) != 0), None)
        if failed_init is not None and kill_message is None:  # main never started
            code = failed_init[1]
            phase, message = "Failed", f'init container "{failed_init[0]}" failed: Error (exit code {code})'
        if verdict is not None and kill_message is None:  # the kernel's OOM kill or the kubelet's eviction
            phase, message, code = "Failed", verdict.message, verdict.exit_code
        if output_error and phase == "Succeeded":  # an output path the runtime refused to read (podfiles.py)
            phase, message = "Error", output_error
        result = self._result(pod, started, code, stdout, outputs, phase, message)
        result.reason = verdict.reason if verdict is not None and kill_message is None else ""
        result.artifact_paths = self._artifact_paths(pod)
        if codes:  # each container's exit code (Argo's Container nodes of a set; a missing one never ran)
            result.extra["containers"] = codes
        if truncated[0]:
            result.extra["stdout_truncated"] = True
        return result

    def _start_prober(self, pod: _Pod, netns: int | None, stop: threading.Event) -> threading.Thread | None:
        """Probe the running pod's readiness in a thread; ``PodRequest.on_ready`` once it passed."""
        probe, on_ready = pod.probe, pod.req.on_ready
        if probe is None or on_ready is None:
            return None
        reachable = netns is not None or not self.sandbox.isolated
        address = self.address_of(*pod.key)

        def work() -> None:
            if wait_ready(probe, netns, address, stop, reachable=reachable):
                try:
                    on_ready()
                except Exception:  # the callback's failure must not end the pod
                    log.exception("pod %s/%s: the readiness callback failed", *pod.key)

        thread = threading.Thread(target=work, name=f"probe-{pod.req.pod_name}", daemon=True)
        thread.start()
        return thread

    def _read_outputs(self, pod: _Pod) -> tuple[dict[str, str | None], str]:
        """Each output parameter path's content, read inside the pod (:mod:`.podfiles`: links are
        followed inside the pod only), or None when the pod left no file there or a link leading out
        of its files (the node then fails with Argo's message for a missing file); and why the pod
        must fail ("" if nothing): a FIFO, device, socket or directory at the path (never opened for
        reading, never blocking), or more than :data:`.podfiles.MAX_PARAMETER_BYTES` bytes."""
        fs = pod.fs
        assert fs is not None
        files = _pod_files(fs, not self.sandbox.isolated)
        outputs: dict[str, str | None] = {}
        problems: list[str] = []
        for out in pod.req.output_paths:
            outputs[out] = None
            try:
                outputs[out] = files.read_text(pod_path(out, "output_paths"), MAX_PARAMETER_BYTES)
            except PodFileMissing:
                pass
            except (PodFileError, SandboxError) as exc:
                problems.append(f"failed to save output parameter from {out}: {exc}")
            except OSError as exc:
                problems.append(f"failed to save output parameter from {out}: {exc.strerror or exc}")
        return outputs, "; ".join(problems)

    def _artifact_paths(self, pod: _Pod) -> dict[str, str | None]:
        """Where each output artifact path is on the host, resolved inside the pod (:mod:`.podfiles`):
        what the pod wrote there (links followed inside the pod only; one leading out of its files
        counts as missing), else, like a file of the container image, the host's own copy that the
        pod saw read-only, only when every user may read it and it is neither the state directory,
        a path the sandbox hides, a home directory nor below one (:func:`.podfiles.image_path`;
        refusals are logged). Never the host's /tmp, /proc, /dev or /sys."""
        fs = pod.fs
        assert fs is not None
        files = _pod_files(fs, not self.sandbox.isolated)
        hidden = [str(self.paths.root), *getattr(self.sandbox, "masked", ())]
        found: dict[str, str | None] = {}
        spliced = set(fs.spliced()) if self.sandbox.isolated else set()

        def from_image(path: str) -> str | None:
            real, why = image_path(path, hidden)
            if real is None:
                log.warning("pod %s/%s: output artifact path %s is not exported from the host: %s",
                            *pod.key, path, why)
            return real

        for out in pod.req.artifact_paths:
            norm = pod_path(out, "artifact_paths")
            special = norm in ("/tmp", "/proc", "/dev", "/sys") or norm.startswith(POD_TMP_PREFIXES)  # noqa: S108
            from_host = not special and os.path.lexists(norm) and not _written_below(fs, norm)
            if from_host and _bound_from_host(norm, spliced, fs):
                found[out] = from_image(norm)  # the sandbox showed the host's copy; its mount point is empty
                continue
            try:
                found[out] = str(files.locate(norm).host_path)
            except PodFileMissing:
                found[out] = from_image(norm) if from_host else None
            except PodFileError as exc:
                log.warning("pod %s/%s: output artifact path %s: %s", *pod.key, out, exc)
                found[out] = None
        return found

    def _result(
        self, pod: _Pod, started: float, code: int, stdout: str, outputs: dict[str, str | None],
        phase: str, message: str,
    ) -> PodResult:
        extra: dict[str, Any] = {"sandbox": self.sandbox.name}
        if pod.fs is not None:
            extra["pod_dir"] = str(pod.fs.pod_dir)
            extra["output_host_paths"] = {
                out: str(pod.fs.host_path(os.path.normpath(out))) for out in pod.req.output_paths
                if isinstance(out, str) and out.startswith("/")
            }
        for out in pod.req.output_paths:
            outputs.setdefault(out, None)
        return PodResult(
            namespace=pod.req.namespace, pod_name=pod.req.pod_name, exit_code=code, stdout=stdout,
            outputs=outputs, message=message, phase=phase, started_at=rfc3339(started),
            finished_at=now_rfc3339(), extra=extra,
        )

    def _not_started(self, pod: _Pod, message: str, phase: str = "Error") -> PodResult:
        code = KILLED_EXIT_CODE if phase == "Failed" else NOT_STARTED_EXIT_CODE
        return self._result(pod, time.time(), code, "", {}, phase, message)

    def _report_async(self, pod: _Pod, result: PodResult) -> None:
        def work() -> None:
            self._report(pod, result)
            with self._lock:
                self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=work, name=f"pod-done-{pod.req.pod_name}", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _report(self, pod: _Pod, result: PodResult) -> None:
        with self._lock:
            if pod.reported:
                return
            pod.reported = True
            if self._pods.get(pod.key) is pod:
                del self._pods[pod.key]
        try:
            pod.on_done(result)
        except Exception:
            log.exception("on_done of pod %s/%s raised", *pod.key)


#: pod paths whose host counterpart is never an artifact (the pod's own /tmp is per pod)
POD_TMP_PREFIXES = ("/tmp/", "/proc/", "/dev/", "/sys/")  # noqa: S108


def _pod_files(fs: PodFilesystem, host_aliases: bool) -> PodFiles:
    """The pod's files as it saw them, its volumes at their mount paths (:class:`.podfiles.PodFiles`)."""
    mounts = {mount: host_dir for mount, (host_dir, _) in fs.mounts.items() if host_dir is not None}
    return PodFiles(fs.root_dir, fs.tmp_dir, host_aliases=host_aliases, mounts=mounts)


def _written_below(fs: PodFilesystem, path: str) -> bool:
    """Whether the pod may have replaced ``path`` with its own (an ancestor is one of its files)."""
    current = path
    while current not in ("/", ""):
        if current in fs.files:
            return True
        current = os.path.dirname(current)
    return False


def _bound_from_host(path: str, spliced: set[str], fs: PodFilesystem) -> bool:
    """Whether bubblewrap bound ``path`` (or an ancestor) read-only from the host: an entry of a
    spliced directory that is neither spliced itself nor one of the pod's own files."""
    current = path
    while current not in ("/", ""):
        parent = os.path.dirname(current)
        if parent in spliced:
            return current not in spliced and current not in fs.files
        current = parent
    return False


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
