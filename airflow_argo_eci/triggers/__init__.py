"""Triggers: wait for Argo Workflows in the Airflow triggerer without holding a worker slot."""
