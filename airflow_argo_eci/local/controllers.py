"""The local cluster's controllers on one store and pod runtime, started and stopped together: the
Argo workflow controller, whose new pods the ECI ImageCache controller admits, and the Fluid
controller. The API server's process runs them (``LocalCluster(node_process=False)``), or the node
process does (``node_process.py``): one wiring for both layouts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_argo_eci.local.api.store import Store
    from airflow_argo_eci.local.argo.controller import Controller
    from airflow_argo_eci.local.eci.image_caches import ImageCacheController
    from airflow_argo_eci.local.fluid.controller import FluidController
    from airflow_argo_eci.local.paths import StatePaths
    from airflow_argo_eci.local.runtime.runner import Runtime


@dataclass
class Controllers:
    """The started controllers (see the module docstring)."""

    workflows: Controller
    image_caches: ImageCacheController
    fluid: FluidController

    @classmethod
    def start(cls, store: Store, runtime: Runtime, paths: StatePaths, *, oss_endpoint: str,
              oss_credentials: tuple[str, str], artifact_repository: dict[str, Any]) -> Controllers:
        """Start them on ``store`` and ``runtime``: the OSS store at ``oss_endpoint`` (its
        certificate is ``paths.tls_cert``) with ``oss_credentials`` is the controller's default
        ``artifact_repository`` and the Fluid datasets' store."""
        from airflow_argo_eci.local.argo.controller import Controller
        from airflow_argo_eci.local.eci.image_caches import ImageCacheController
        from airflow_argo_eci.local.fluid.controller import FluidController

        workflows = Controller(store, runtime, paths)
        workflows.artifact_repository = artifact_repository
        workflows.artifact_credentials = oss_credentials
        image_caches = ImageCacheController(store, runtime.images)
        image_caches.start()
        workflows.pods.admit_pod = image_caches.admit_pod
        workflows.start()
        fluid = FluidController(store, paths, oss_endpoint, paths.tls_cert, oss_credentials)
        fluid.start()
        return cls(workflows, image_caches, fluid)

    def stop(self) -> None:
        """Stop them: Fluid first (its loads read the OSS store), then the workflow controller,
        then the image caches that admit its pods. Running pods are the runtime's to stop."""
        self.fluid.stop()
        self.workflows.stop()
        self.image_caches.stop()
