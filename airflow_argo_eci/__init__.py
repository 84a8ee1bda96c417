"""Apache Airflow provider for serverless Argo Workflows on Alibaba Cloud ECI / ACS."""

from __future__ import annotations

import importlib.util
from typing import Any

from airflow_argo_eci.hooks.connection_form import CONN_FIELDS, UI_FIELD_BEHAVIOUR
from airflow_argo_eci.hooks.oss_connection_form import OSS_CONN_FIELDS, OSS_UI_FIELD_BEHAVIOUR

__version__ = "0.1.0"

_INTEGRATION = "Argo Workflows on Alibaba Cloud ECI"
_OSS_INTEGRATION = "Alibaba Cloud OSS artifacts"
_FLUID_INTEGRATION = "Fluid datasets and cache warm-up"
_ECI_INTEGRATION = "Alibaba Cloud ECI image caches"


def _alibaba_provider_installed() -> bool:
    """Whether apache-airflow-providers-alibaba is importable: it registers connection type ``oss``."""
    try:
        return importlib.util.find_spec("airflow.providers.alibaba") is not None
    except (ImportError, ValueError):
        return False


def _connection_types() -> list[dict[str, Any]]:
    """``argo_workflows``, and ``oss`` unless the alibaba provider registers it.

    Airflow keeps the first registration of a connection type (providers in package-name order, so
    ours would come first) and warns about the other; registering ``oss`` beside the alibaba
    provider would hand its users' ``oss`` connections to our hook and form. Our hook reads the
    same extras, so with that provider installed its form edits connections we use.
    """
    types: list[dict[str, Any]] = [
        {
            "hook-class-name": "airflow_argo_eci.hooks.argo.ArgoWorkflowsHook",
            "connection-type": "argo_workflows",
            "hook-name": "Argo Workflows",
            "conn-fields": CONN_FIELDS,
            "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
        }
    ]
    if not _alibaba_provider_installed():
        types.append({
            "hook-class-name": "airflow_argo_eci.hooks.oss.OSSArtifactHook",
            "connection-type": "oss",
            "hook-name": "Alibaba Cloud OSS (Argo artifacts)",
            "conn-fields": OSS_CONN_FIELDS,
            "ui-field-behaviour": OSS_UI_FIELD_BEHAVIOUR,
        })
    return types


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""
    return {
        "package-name": "airflow-argo-eci",
        "name": "Argo Workflows on Alibaba Cloud ECI",
        "description": "Submit, watch and control Argo Workflows on serverless Kubernetes (ECI / ACS) "
        "and an ACK One workflow cluster; includes a local cluster for laptops and CI.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://argo-workflows.readthedocs.io/",
                "tags": ["software"],
            },
            {
                "integration-name": _OSS_INTEGRATION,
                "external-doc-url": "https://www.alibabacloud.com/help/en/oss/",
                "tags": ["alibaba"],
            },
            {
                "integration-name": _FLUID_INTEGRATION,
                "external-doc-url": "https://fluid-cloudnative.github.io/",
                "tags": ["software"],
            },
            {
                "integration-name": _ECI_INTEGRATION,
                "external-doc-url": "https://www.alibabacloud.com/help/en/eci/user-guide/manage-image-caches-1",
                "tags": ["alibaba"],
            },
        ],
        "operators": [
            {"integration-name": _INTEGRATION,
             "python-modules": ["airflow_argo_eci.operators.argo", "airflow_argo_eci.operators.batch",
                                "airflow_argo_eci.operators.preflight"]},
            {"integration-name": _OSS_INTEGRATION, "python-modules": ["airflow_argo_eci.operators.oss"]},
            {"integration-name": _FLUID_INTEGRATION, "python-modules": ["airflow_argo_eci.operators.fluid"]},
            {"integration-name": _ECI_INTEGRATION, "python-modules": ["airflow_argo_eci.operators.eci"]},
        ],
        "sensors": [
            {"integration-name": _INTEGRATION, "python-modules": ["airflow_argo_eci.sensors.argo"]},
            {"integration-name": _OSS_INTEGRATION, "python-modules": ["airflow_argo_eci.sensors.oss"]},
            {"integration-name": _FLUID_INTEGRATION, "python-modules": ["airflow_argo_eci.sensors.fluid"]},
            {"integration-name": _ECI_INTEGRATION, "python-modules": ["airflow_argo_eci.sensors.eci"]},
        ],
        "hooks": [
            {"integration-name": _INTEGRATION,
             "python-modules": ["airflow_argo_eci.hooks.argo", "airflow_argo_eci.hooks.cluster"]},
            {"integration-name": _OSS_INTEGRATION, "python-modules": ["airflow_argo_eci.hooks.oss"]},
            {"integration-name": _FLUID_INTEGRATION, "python-modules": ["airflow_argo_eci.hooks.fluid"]},
            {"integration-name": _ECI_INTEGRATION, "python-modules": ["airflow_argo_eci.hooks.eci"]},
        ],
        "triggers": [
            {"integration-name": _INTEGRATION, "python-modules": ["airflow_argo_eci.triggers.argo"]},
            {"integration-name": _OSS_INTEGRATION, "python-modules": ["airflow_argo_eci.triggers.oss"]},
            {"integration-name": _FLUID_INTEGRATION, "python-modules": ["airflow_argo_eci.triggers.fluid"]},
            {"integration-name": _ECI_INTEGRATION, "python-modules": ["airflow_argo_eci.triggers.eci"]},
        ],
        "connection-types": _connection_types(),
        "extra-links": ["airflow_argo_eci.links.argo.ArgoWorkflowLink"],
        "plugins": [{"name": "argo_eci", "plugin-class": "airflow_argo_eci.plugins.argo_view.ArgoEciPlugin"}],
    }
