"""Fixtures: the session's local cluster seen through :class:`FluidKit` (buckets, Datasets,
runtimes and DataLoads under fresh names, and waits for their phases)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from airflow_argo_eci.local.server import LocalCluster
from tests.local.fluid.fluidkit import FluidKit


@pytest.fixture(scope="session")
def fluid_kit(local_cluster: LocalCluster, kube_api_client: client.ApiClient) -> Iterator[FluidKit]:
    assert local_cluster.oss is not None
    session = local_cluster.oss.session()
    yield FluidKit(local_cluster, kube_api_client, session)
    session.session.close()


@pytest.fixture()
def kit(fluid_kit: FluidKit) -> FluidKit:
    return fluid_kit
