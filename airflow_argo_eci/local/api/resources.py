"""The resource types the local cluster serves: core and built-in kinds, Argo's and Fluid's."""

from __future__ import annotations

from dataclasses import dataclass

from airflow_argo_eci import conventions
from airflow_argo_eci import eci_conventions as eci
from airflow_argo_eci import fluid_conventions as fluid
from airflow_argo_eci.conventions import GROUP, VERSION


@dataclass(frozen=True)
class ResourceType:
    """One served resource: ``group`` is ``""`` for the core API."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    has_status: bool = False

    @property
    def api_version(self) -> str:
        """``group/version``, or just the version for the core API."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """``(group, plural)``, the key of :data:`REGISTRY`."""
        return (self.group, self.plural)


REGISTRY: dict[tuple[str, str], ResourceType] = {}


def register(rt: ResourceType) -> ResourceType:
    """Add a resource type to the served set (idempotent)."""
    REGISTRY[rt.key] = rt
    return rt


WORKFLOWS = register(
    ResourceType(GROUP, VERSION, conventions.WORKFLOWS, "Workflow", True, "workflow", ("wf",), has_status=True)
)
WORKFLOW_TEMPLATES = register(
    ResourceType(GROUP, VERSION, conventions.WORKFLOW_TEMPLATES, "WorkflowTemplate", True, "workflowtemplate",
                 ("wftmpl",))
)
CRON_WORKFLOWS = register(
    ResourceType(GROUP, VERSION, conventions.CRON_WORKFLOWS, "CronWorkflow", True, "cronworkflow",
                 ("cwf", "cronwf"), has_status=True)
)
CLUSTER_WORKFLOW_TEMPLATES = register(
    ResourceType(GROUP, VERSION, conventions.CLUSTER_WORKFLOW_TEMPLATES, "ClusterWorkflowTemplate", False,
                 "clusterworkflowtemplate", ("clusterwftmpl", "cwft"))
)
PODS = register(ResourceType("", "v1", "pods", "Pod", True, "pod", ("po",), has_status=True))
EVENTS = register(ResourceType("", "v1", "events", "Event", True, "event", ("ev",)))
CONFIGMAPS = register(ResourceType("", "v1", "configmaps", "ConfigMap", True, "configmap", ("cm",)))
SECRETS = register(ResourceType("", "v1", "secrets", "Secret", True, "secret"))
PERSISTENT_VOLUME_CLAIMS = register(ResourceType("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True,
                                                 "persistentvolumeclaim", ("pvc",), has_status=True))
PERSISTENT_VOLUMES = register(ResourceType("", "v1", "persistentvolumes", "PersistentVolume", False,
                                           "persistentvolume", ("pv",), has_status=True))
NAMESPACES = register(ResourceType("", "v1", "namespaces", "Namespace", False, "namespace", ("ns",),
                                   has_status=True))

# Fluid's kinds (data.fluid.io/v1alpha1), served for the local Fluid controller (local/fluid/)
DATASETS = register(ResourceType(fluid.GROUP, fluid.VERSION, fluid.DATASETS, fluid.DATASET_KIND, True, "dataset",
                                 has_status=True))
DATALOADS = register(ResourceType(fluid.GROUP, fluid.VERSION, fluid.DATALOADS, fluid.DATALOAD_KIND, True,
                                  "dataload", has_status=True))
FLUID_RUNTIMES = {kind: register(ResourceType(fluid.GROUP, fluid.VERSION, plural, kind, True, kind.lower(),
                                              has_status=True))
                  for kind, plural in fluid.RUNTIME_PLURALS.items()}

# ECI's ImageCache (eci.alibabacloud.com/v1, cluster-scoped), served for the local ECI controller (local/eci/)
IMAGE_CACHES = register(ResourceType(eci.GROUP, eci.VERSION, eci.IMAGE_CACHES, eci.IMAGE_CACHE_KIND, False,
                                     "imagecache", ("ic",), has_status=True))


# built-in kinds of other groups: the Argo installation's Deployments (local/api/install_objects.py)
# and the CustomResourceDefinitions of the custom kinds (local/api/crds.py)
DEPLOYMENTS = register(ResourceType("apps", "v1", "deployments", "Deployment", True, "deployment", ("deploy",),
                                    has_status=True))
CUSTOM_RESOURCE_DEFINITIONS = register(
    ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
                 "customresourcedefinition", ("crd", "crds"), has_status=True)
)
#: API groups built into a Kubernetes API server; the kinds of every other group are custom
#: resources, served while their CustomResourceDefinition exists (local/api/crds.py)
BUILTIN_GROUPS = frozenset({"", "apps", "apiextensions.k8s.io", "authorization.k8s.io"})


def is_custom(rt: ResourceType) -> bool:
    """Whether ``rt`` is a custom resource (defined by a CustomResourceDefinition)."""
    return rt.group not in BUILTIN_GROUPS


def lookup(group: str, plural: str) -> ResourceType | None:
    """The served resource type ``plural`` of ``group``, or None."""
    return REGISTRY.get((group, plural))
