"""The ``argo_workflows`` connection form as data (no imports), for the provider info.

Airflow >= 3.2 reads connection forms declaratively from the provider info's ``connection-types``
entry (``conn-fields`` and ``ui-field-behaviour``); older versions call the hook's
``get_connection_form_widgets()`` / ``get_ui_field_behaviour()``, which are built from the same data.
"""

from __future__ import annotations

from typing import Any

_STR = {"type": ["string", "null"]}

#: extra fields of the connection form (keys are the connection extras the hook reads)
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "transport": {
        "label": "Transport",
        "schema": {"type": ["string", "null"], "default": "kubernetes", "enum": ["kubernetes", "argo_server"]},
        "description": "kubernetes: Argo custom resources via the Kubernetes API; argo_server: the Argo Server "
        "REST API (Host + Password = bearer token)",
    },
    "namespace": {"label": "Namespace", "schema": _STR, "description": "default namespace of workflows"},
    "kube_config_path": {"label": "Kube config path", "schema": _STR, "description": "kubernetes transport"},
    "kube_config": {
        "label": "Kube config (YAML or JSON)",
        "schema": {"type": ["string", "null"], "format": "password"},
        "description": "inline kubeconfig (kubernetes transport); stored as a secret",
    },
    "in_cluster": {"label": "In cluster", "schema": {"type": ["boolean", "null"], "default": False}},
    "context": {"label": "Kube context", "schema": _STR},
    "verify_ssl": {"label": "Verify TLS", "schema": {"type": ["boolean", "null"], "default": True}},
    "ca_cert_path": {"label": "CA certificate path", "schema": _STR},
    "request_timeout": {"label": "Request timeout (seconds)", "schema": {"type": ["integer", "null"], "default": 60}},
    "max_retries": {"label": "Retries of transient errors", "schema": {"type": ["integer", "null"], "default": 4}},
    "argo_server_url": {
        "label": "Argo Server URL for offloaded nodes", "schema": _STR,
        "description": "kubernetes transport: the Argo Server that serves the node status Argo offloads to its "
        "database (persistence.nodeStatusOffLoad); TLS verified with the CA settings above",
    },
    "argo_server_token": {
        "label": "Argo Server token for offloaded nodes",
        "schema": {"type": ["string", "null"], "format": "password"},
        "description": "kubernetes transport: bearer token for argo_server_url; stored as a secret",
    },
    "ui_url": {
        "label": "Argo UI URL", "schema": _STR, "description": "links to workflows: <ui_url>/workflows/<ns>/<name>"
    },
}

#: hidden and relabeled standard fields, placeholders
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["login", "port", "schema"],
    "relabeling": {"host": "Argo Server URL (argo_server transport)", "password": "Argo Server bearer token"},
    "placeholders": {
        "host": "https://argo-server.argo:2746",
        "password": "token of a service account allowed to manage workflows",
        "transport": "kubernetes",
        "namespace": "argo",
        "kube_config_path": "~/.kube/config",
        "ui_url": "https://argo.example.com",
        "ca_cert_path": "/etc/ssl/argo-ca.pem",
        "argo_server_url": "https://argo-server.argo:2746",
    },
}
