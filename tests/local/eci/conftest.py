"""Fixtures: the session's local cluster seen through :class:`EciKit` (ImageCaches under fresh names,
removed after each test, workflows of ECI pods, and the Events of their pods)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from airflow_argo_eci.local.server import LocalCluster
from tests.local.eci.ecikit import EciKit


@pytest.fixture()
def kit(local_cluster: LocalCluster, kube_api_client: client.ApiClient) -> Iterator[EciKit]:
    eci_kit = EciKit(local_cluster, kube_api_client)
    try:
        yield eci_kit
    finally:
        eci_kit.cleanup()


@pytest.fixture()
def one_process_kit(one_process_cluster: LocalCluster) -> Iterator[EciKit]:
    """:func:`kit` on the cluster whose ImageCache controller runs in this process."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(one_process_cluster.kubeconfig_path))
    eci_kit = EciKit(one_process_cluster, api)
    try:
        yield eci_kit
    finally:
        eci_kit.cleanup()
        api.close()
