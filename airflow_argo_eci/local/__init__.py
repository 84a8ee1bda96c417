"""The local cluster: a Kubernetes-API-compatible endpoint with an Argo-compatible executor.

Runs on one machine with no cloud account, no Docker and no Kubernetes. The provider reaches it
through exactly the code path it uses for a real cluster (a kubeconfig and the official
``kubernetes`` client, or the Argo Server REST API). Nothing here imports Airflow.
"""
