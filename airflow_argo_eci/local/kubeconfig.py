"""Write the kubeconfig that points the official clients at the local cluster."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml

CONTEXT = "airflow-argo-eci-local"


def render_kubeconfig(
    url: str, token: str, *, ca_pem: bytes | None = None, namespace: str = "argo"
) -> dict[str, object]:
    """A kubeconfig for ``url`` with a bearer token, pinning ``ca_pem`` as the server's CA."""
    cluster: dict[str, str] = {"server": url}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": cluster}],
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


def write_kubeconfig(
    path: Path, url: str, token: str, *, ca_pem: bytes | None = None, namespace: str = "argo"
) -> Path:
    """Write the kubeconfig (mode 0600: it holds the token)."""
    doc = render_kubeconfig(url, token, ca_pem=ca_pem, namespace=namespace)
    write_private(path, yaml.safe_dump(doc, sort_keys=False))
    return path
