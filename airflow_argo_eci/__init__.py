"""Apache Airflow provider for serverless Argo Workflows on Alibaba Cloud ECI / ACS."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""
    return {
        "package-name": "airflow-argo-eci",
        "name": "Argo Workflows on Alibaba Cloud ECI",
        "description": "Submit, watch and control Argo Workflows on serverless Kubernetes (ECI / ACS).",
        "versions": [__version__],
    }
