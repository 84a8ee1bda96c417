"""Where the local cluster keeps its state on disk. One state directory holds everything."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from airflow_argo_eci.local.api.errors import ApiError


class UnsafeNameError(ApiError, ValueError):
    """A namespace, pod or container name cannot name a file of the state directory (an API route
    that meets one answers 400 BadRequest)."""

    def __init__(self, message: str) -> None:
        super().__init__(400, "BadRequest", message)


#: the longest name accepted as one path component (Kubernetes names are at most 253 characters)
MAX_NAME_LENGTH = 253


def safe_component(value: object, what: str) -> str:
    """``value`` if it can be used as one path component below the state directory: a non-empty
    string of at most :data:`MAX_NAME_LENGTH` characters without ``/``, NUL or control characters,
    and neither ``.`` nor ``..``; otherwise :class:`UnsafeNameError` naming ``what``."""
    if not isinstance(value, str) or not value:
        raise UnsafeNameError(f"{what} must be a non-empty string, got {value!r}")
    if value in (".", "..") or "/" in value or "\\" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise UnsafeNameError(f"{what} {value!r} is not a valid name: use lowercase letters, digits, '-' and '.' "
                              "(a Kubernetes DNS name), never '/', '..' or control characters")
    if len(value) > MAX_NAME_LENGTH:
        raise UnsafeNameError(f"{what} must be at most {MAX_NAME_LENGTH} characters, got {len(value)}")
    return value


def default_state_dir() -> Path:
    """``$AIRFLOW_ARGO_ECI_STATE_DIR`` or ``~/.local/state/airflow-argo-eci``."""
    env = os.environ.get("AIRFLOW_ARGO_ECI_STATE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "airflow-argo-eci"


@dataclass(frozen=True)
class StatePaths:
    root: Path

    @property
    def db(self) -> Path:
        return self.root / "cluster.db"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def token(self) -> Path:
        return self.root / "token"

    @property
    def tls_cert(self) -> Path:
        """The self-signed certificate the server presents (also the CA clients pin)."""
        return self.root / "tls.crt"

    @property
    def tls_key(self) -> Path:
        return self.root / "tls.key"

    @property
    def server_info(self) -> Path:
        """JSON: {"url", "pid", "port", "started_at"} written once the server listens."""
        return self.root / "server.json"

    @property
    def server_log(self) -> Path:
        return self.root / "server.log"

    @property
    def oss_dir(self) -> Path:
        """Buckets and objects of the local OSS-compatible store."""
        return self.root / "oss"

    @property
    def oss_credentials(self) -> Path:
        """JSON ``{"access_key_id", "access_key_secret"}`` of the local OSS store (mode 0600)."""
        return self.root / "oss-credentials.json"

    def pod_dir(self, namespace: str, pod: str) -> Path:
        """Per-pod scratch: ``tmp/`` (mounted as /tmp), ``root/`` (other writable paths), scripts.
        Names that are not a single safe path component raise :class:`UnsafeNameError`."""
        return self.root / "pods" / safe_component(namespace, "namespace") / safe_component(pod, "pod name")

    def log_file(self, namespace: str, pod: str, container: str = "main") -> Path:
        """A container's log, one line per write, each prefixed by an RFC3339Nano timestamp and a
        space (``2024-01-01T00:00:00.123456789Z hello``); the API strips it unless timestamps=true.
        Names that are not a single safe path component raise :class:`UnsafeNameError`."""
        return (self.root / "logs" / safe_component(namespace, "namespace") / safe_component(pod, "pod name")
                / f"{safe_component(container, 'container name')}.log")

    def claim_dir(self, namespace: str, claim: str) -> Path:
        """The data of the PersistentVolumeClaim ``claim``: shared by every pod that mounts it.
        Names that are not a single safe path component raise :class:`UnsafeNameError`."""
        return (self.root / "volumes" / safe_component(namespace, "namespace")
                / safe_component(claim, "persistentVolumeClaim claimName"))
