"""Where the local cluster keeps its state on disk. One state directory holds everything."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


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
        """Per-pod scratch: ``tmp/`` (mounted as /tmp), ``root/`` (other writable paths), scripts."""
        return self.root / "pods" / namespace / pod

    def log_file(self, namespace: str, pod: str, container: str = "main") -> Path:
        """A container's log, one line per write, each prefixed by an RFC3339Nano timestamp and a
        space (``2024-01-01T00:00:00.123456789Z hello``); the API strips it unless timestamps=true."""
        return self.root / "logs" / namespace / pod / f"{container}.log"
