"""Apache Airflow provider for serverless Argo Workflows on Alibaba Cloud ECI / ACS."""

from __future__ import annotations

from typing import Any

from airflow_argo_eci.hooks.connection_form import CONN_FIELDS, UI_FIELD_BEHAVIOUR

__version__ = "0.1.0"

_INTEGRATION = "Argo Workflows on Alibaba Cloud ECI"


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
            }
        ],
        "operators": [{"integration-name": _INTEGRATION, "python-modules": ["airflow_argo_eci.operators.argo"]}],
        "sensors": [{"integration-name": _INTEGRATION, "python-modules": ["airflow_argo_eci.sensors.argo"]}],
        "hooks": [{"integration-name": _INTEGRATION, "python-modules": ["airflow_argo_eci.hooks.argo"]}],
        "triggers": [{"integration-name": _INTEGRATION, "python-modules": ["airflow_argo_eci.triggers.argo"]}],
        "connection-types": [
            {
                "hook-class-name": "airflow_argo_eci.hooks.argo.ArgoWorkflowsHook",
                "connection-type": "argo_workflows",
                "hook-name": "Argo Workflows",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
        "extra-links": ["airflow_argo_eci.links.argo.ArgoWorkflowLink"],
    }
