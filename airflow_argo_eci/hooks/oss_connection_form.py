"""The ``oss`` connection form as data (no imports), for the provider info and ``get_ui_field_behaviour``.

Same extras as apache-airflow-providers-alibaba's ``oss`` connection (``access_key_id``,
``access_key_secret``, ``region``, ``auth_type``; bucket in ``schema``) plus ``endpoint``,
``security_token``, ``ca_bundle`` and ``signature_version``.
"""

from __future__ import annotations

from typing import Any

_STR = {"type": ["string", "null"]}
_SECRET = {"type": ["string", "null"], "format": "password"}

#: extra fields of the connection form (keys are the connection extras the hook reads)
OSS_CONN_FIELDS: dict[str, dict[str, Any]] = {
    "access_key_id": {"label": "AccessKey ID", "schema": _STR},
    "access_key_secret": {"label": "AccessKey secret", "schema": _SECRET, "description": "stored as a secret"},
    "region": {"label": "Region", "schema": _STR, "description": "e.g. cn-hangzhou; gives the default endpoint"},
    "endpoint": {"label": "Endpoint", "schema": _STR,
                 "description": "default https://oss-<region>.aliyuncs.com; use the -internal endpoint inside a VPC"},
    "security_token": {"label": "STS security token", "schema": _SECRET, "description": "temporary credentials"},
    "ca_bundle": {"label": "CA bundle path", "schema": _STR,
                  "description": "PEM file to trust (TLS verification is never turned off)"},
    "signature_version": {"label": "Signature version", "schema": {"type": ["string", "null"], "enum": ["1", "4"]},
                          "description": "default 4 when a region is set, else 1"},
    "auth_type": {"label": "Auth type", "schema": {"type": ["string", "null"], "default": "AK", "enum": ["AK"]}},
}

#: hidden and relabeled standard fields, placeholders
OSS_UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["host", "port", "login", "password"],
    "relabeling": {"schema": "Default bucket"},
    "placeholders": {
        "schema": "my-artifacts-bucket",
        "region": "cn-hangzhou",
        "endpoint": "https://oss-cn-hangzhou.aliyuncs.com",
        "access_key_id": "LTAI...",
        "ca_bundle": "/etc/ssl/certs/ca-certificates.crt",
    },
}
