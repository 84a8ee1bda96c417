"""Airflow hooks of this provider (see :mod:`airflow_argo_eci.hooks.argo`)."""
