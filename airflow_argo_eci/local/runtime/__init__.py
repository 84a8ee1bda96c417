"""Runs pods as sandboxed local processes: the request and result types (the implementation is runtime/runner.py).

The controller hands the runtime a :class:`PodRequest`; the runtime waits for capacity, runs the
main container's command in a sandbox, writes its log to ``StatePaths.log_file`` and calls
``on_done(PodResult)`` from its own thread. Nothing here knows about Argo templates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: maps an absolute pod path to where it lives on the host (see ``PodRequest.prepare``)
HostPathOf = Callable[[str], Path]


#: the kinds of :class:`PodVolume`
EMPTY_DIR = "emptyDir"
CLAIM = "claim"
FILES = "files"


@dataclass
class PodVolume:
    """One volume of a pod: ``kind`` is :data:`EMPTY_DIR` (a fresh directory of the pod),
    :data:`CLAIM` (``host_dir``: the claim's directory, shared by every pod that mounts it) or
    :data:`FILES` (``files``: relative path -> (content, mode), a ConfigMap's or Secret's keys;
    always mounted read-only, as Kubernetes does)."""

    name: str
    kind: str
    host_dir: Path | None = None
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    read_only: bool = False
    #: a :data:`CLAIM` whose content is made when the pod starts: called with ``host_dir`` in the
    #: runtime's thread before the pod's containers run (a Fluid dataset's view, ``local/fluid/mounts.py``);
    #: an OSError it raises fails the pod ("cannot prepare the pod's files")
    fill: Callable[[Path], None] | None = None


@dataclass
class VolumeMount:
    """A ``volumeMounts`` entry of a container: the volume ``name`` at ``mount_path`` (in the pod)."""

    name: str
    mount_path: str
    read_only: bool = False


@dataclass
class PodRequest:
    namespace: str
    pod_name: str
    #: the Kubernetes container spec of the main container (image, command, args, env, workingDir,
    #: resources); env values are already resolved strings (``valueFrom`` resolved by the controller)
    container: dict[str, Any]
    #: script template ``source`` (written to a file and passed as last argument, like Argo does)
    script_source: str | None = None
    #: files to place before start: absolute path in the pod -> bytes (input parameters with path,
    #: later input artifacts)
    input_files: dict[str, bytes] = field(default_factory=dict)
    #: absolute paths in the pod whose content is read back after exit (outputs.parameters
    #: valueFrom.path, later output artifacts); missing ones are reported as None
    output_paths: list[str] = field(default_factory=list)
    #: vCPUs requested (container resources.requests.cpu, parsed); bounded by the capacity
    cpu: float = 0.1
    #: kill after this many seconds (activeDeadlineSeconds / template timeout); None = no limit
    deadline_seconds: float | None = None
    #: labels/annotations of the pod (for the virtual-kubelet placement record)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    #: pod paths (files or directories) that ``prepare`` creates before start (input artifacts);
    #: their directories become writable like those of ``input_files``
    input_paths: list[str] = field(default_factory=list)
    #: pod paths (files or directories) of output artifacts; after exit their host locations are
    #: reported in ``PodResult.artifact_paths`` (nothing is read into memory)
    artifact_paths: list[str] = field(default_factory=list)
    #: Argo's init container: called in the pod's thread once its filesystem exists and before the
    #: process starts, with a function mapping a pod path to its host path (to place input
    #: artifacts). An exception ends the pod as ``Error`` with the exception's text as message.
    prepare: Callable[[HostPathOf], None] | None = None
    #: the pod's ``spec.securityContext`` (runAsUser, runAsGroup, runAsNonRoot; the main container's
    #: own ``securityContext`` in ``container`` wins field by field) and ``spec.hostNetwork``
    security_context: dict[str, Any] | None = None
    host_network: bool = False
    #: the pod's volumes (resolved by the controller) and the main container's mounts of them
    volumes: list[PodVolume] = field(default_factory=list)
    volume_mounts: list[VolumeMount] = field(default_factory=list)
    #: init containers (run in order before main) and sidecars (started before main, killed after
    #: it): Kubernetes container specs with resolved env, sharing the pod's network and volumes
    init_containers: list[dict[str, Any]] = field(default_factory=list)
    sidecars: list[dict[str, Any]] = field(default_factory=list)
    #: a container set (Argo's ``containerSet`` template) when not None: its containers other than
    #: ``container`` (the one named ``main``, else the first), each with ``dependencies``; all of
    #: them run as a graph in the pod, each with its own log, ``container`` giving the result
    container_set: list[dict[str, Any]] | None = None
    #: ``containerSet.retryStrategy.retries``: how often a failed container of the set is restarted
    container_retries: int = 0
    #: pods with the same key share one network namespace (reach each other at their addresses,
    #: :mod:`.podnetwork`); None: the pod's network is its own
    network: str | None = None
    #: called once, from a runtime thread, when the main container's ``readinessProbe`` first passed
    #: (never for a container without one: it is ready when it starts)
    on_ready: Callable[[], None] | None = None


@dataclass
class PodResult:
    namespace: str
    pod_name: str
    exit_code: int
    #: the main container's stdout, trimmed of one trailing newline (Argo's ``outputs.result``)
    stdout: str
    #: output path -> text content (None if the file did not exist)
    outputs: dict[str, str | None]
    #: "" on success; otherwise why (e.g. "Error (exit code 1)", "Pod was active on the node longer
    #: than the specified deadline", "unknown image 'foo/bar' without a command: ...")
    message: str
    #: "Succeeded" | "Failed" | "Error"  (Error: could not start / killed / lost)
    phase: str
    started_at: str  # RFC3339
    finished_at: str  # RFC3339
    #: directories readable on the host that hold the pod's view of the given output paths
    extra: dict[str, Any] = field(default_factory=dict)
    #: each ``PodRequest.artifact_paths`` entry -> the host path holding what the pod left there
    #: (a file or a directory), or None when the pod did not create it
    artifact_paths: dict[str, str | None] = field(default_factory=dict)
    #: why a resource limit ended the pod, as Kubernetes says it: ``"OOMKilled"`` (the container's
    #: terminated reason) or ``"Evicted"`` (the pod's reason); "" otherwise
    reason: str = ""
