"""``airflow-argo-eci stack``: the local cluster plus real Airflow services on one machine.

``stack up`` starts the local cluster and Airflow's ``api-server``, ``scheduler``,
``dag-processor`` and ``triggerer`` (LocalExecutor), each its own process with its own log file,
all bound to 127.0.0.1. Nothing here imports Airflow at module import time: the services are
separate processes, and the CLI stays light.
"""
