"""Local OSS-compatible object store (path-style, Signature V1), served next to the local cluster."""

from airflow_argo_eci.local.oss.app import OSSApp, create_app

__all__ = ["OSSApp", "create_app"]
