"""Write the kubeconfig that points the official clients at the local cluster."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

CONTEXT = "airflow-argo-eci-local"


def render_kubeconfig(url: str, token: str, *, namespace: str = "argo") -> dict[str, object]:
    """A kubeconfig for ``url`` with a bearer token. Plain HTTP on loopback only, so no TLS."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT, "user": {"token": token}}],
        "contexts": [
            {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace}}
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (the token is a credential)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_kubeconfig(path: Path, url: str, token: str, *, namespace: str = "argo") -> Path:
    write_private(path, yaml.safe_dump(render_kubeconfig(url, token, namespace=namespace), sort_keys=False))
    return path
