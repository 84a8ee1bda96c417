"""The Airflow connections that point at a running local cluster, built in one place.

``local env`` prints them as ``AIRFLOW_CONN_*`` exports, the demo puts them in Airflow's
environment and tests use them, so all three reach the cluster exactly the way a user's
connection to a real cluster would: the Argo connection through the generated kubeconfig (or the
Argo Server REST API with the bearer token) and the ``oss`` connection through the local OSS
store, each with the cluster's self-signed certificate pinned — TLS verification stays on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow_argo_eci.local.paths import StatePaths

#: the namespace the examples and the demo submit to
DEFAULT_NAMESPACE = "argo"
#: the bucket ``local up`` creates for the default artifact repository
ARTIFACT_BUCKET = "argo-artifacts"


def argo_kubernetes_connection(paths: StatePaths, *, namespace: str = DEFAULT_NAMESPACE) -> dict[str, Any]:
    """``argo_workflows`` connection using the Kubernetes API through the cluster's kubeconfig."""
    return {"conn_type": "argo_workflows",
            "extra": {"transport": "kubernetes", "kube_config_path": str(paths.kubeconfig), "namespace": namespace}}


def argo_server_connection(paths: StatePaths, url: str, *, namespace: str = DEFAULT_NAMESPACE) -> dict[str, Any]:
    """``argo_workflows`` connection using the Argo Server REST API with the cluster's bearer token."""
    return {"conn_type": "argo_workflows", "host": url, "password": paths.token.read_text().strip(),
            "extra": {"transport": "argo_server", "namespace": namespace, "ca_cert_path": str(paths.tls_cert)}}


def oss_connection(paths: StatePaths, endpoint: str, *, region: str, bucket: str = ARTIFACT_BUCKET) -> dict[str, Any]:
    """``oss`` connection (the apache-airflow-providers-alibaba layout) to the local OSS store.

    The bucket goes in ``schema``; keys, region, endpoint and the pinned certificate in extras.
    """
    creds = json.loads(Path(paths.oss_credentials).read_text())
    return {"conn_type": "oss", "schema": bucket,
            "extra": {"auth_type": "AK", "access_key_id": creds["access_key_id"],
                      "access_key_secret": creds["access_key_secret"], "region": region,
                      "endpoint": endpoint, "ca_bundle": str(paths.tls_cert)}}
