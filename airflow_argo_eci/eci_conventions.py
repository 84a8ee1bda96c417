"""ECI's and the Argo installation's conventions, once: ImageCache kind, phases, annotations, limits.

Pure constants shared by the provider (hooks, operators, the preflight) and the local cluster
(its ImageCache controller and the objects it serves for the preflight). Sources: Alibaba Cloud's
"kubernetes ImageCache API" and "Manage ImageCaches" pages, the ECI pod annotation reference, and
the seed guide to Argo on ECI.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------
# ImageCache (eci.alibabacloud.com/v1, cluster-scoped)
# ---------------------------------------------------------------------------------------------

GROUP = "eci.alibabacloud.com"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
IMAGE_CACHES = "imagecaches"
IMAGE_CACHE_KIND = "ImageCache"
#: the CRD's name as ``kubectl get crd`` lists it
IMAGE_CACHE_CRD = f"{IMAGE_CACHES}.{GROUP}"

PHASE_PREPARING = "Preparing"
PHASE_CREATING = "Creating"
PHASE_READY = "Ready"
PHASE_FAILED = "Failed"
#: every phase an ImageCache's ``status.phase`` takes, in order of its life
IMAGE_CACHE_PHASES = (PHASE_PREPARING, PHASE_CREATING, PHASE_READY, PHASE_FAILED)
#: phases after which a cache never changes again by itself
IMAGE_CACHE_FINAL_PHASES = (PHASE_READY, PHASE_FAILED)

#: ``spec.imageCacheSize`` in GB: range and default
IMAGE_CACHE_SIZE_MIN_GB = 20
IMAGE_CACHE_SIZE_MAX_GB = 32768
IMAGE_CACHE_SIZE_DEFAULT_GB = 20
#: ``spec.retentionDays``: range (unset: the cache does not expire)
RETENTION_DAYS_MIN = 1
RETENTION_DAYS_MAX = 65536
#: the id prefix of an image cache (``status.imageCacheId``)
IMAGE_CACHE_ID_PREFIX = "imc-"

# ---------------------------------------------------------------------------------------------
# annotations (on an ImageCache, or on pods)
# ---------------------------------------------------------------------------------------------

_K8S = "k8s.aliyun.com/"
#: ImageCache: reuse an existing cache's layers when creating this one ("true")
ANNOTATION_IMC_ENABLE_REUSE = _K8S + "imc-enable-reuse"
#: ImageCache and pod: the vSwitch(es) to create in (comma-separated ``vsw-...``)
ANNOTATION_VSWITCH = _K8S + "eci-vswitch"
#: ImageCache and pod: the security group (``sg-...``)
ANNOTATION_SECURITY_GROUP = _K8S + "eci-security-group"
#: pod: match (and create when missing) an image cache automatically ("true"/"false")
ANNOTATION_AUTO_IMAGE_CACHE = _K8S + "eci-auto-imc"
#: pod: use a cache only when it holds every image of the pod ("true")
ANNOTATION_IMAGE_CACHE_PERFECT_MATCH = _K8S + "imc-perfect-match"
#: pod: pin one image cache by id (``imc-...``)
ANNOTATION_IMAGE_CACHE_ID = _K8S + "eci-imc-id"
#: pod, legacy: the older spelling of :data:`ANNOTATION_IMAGE_CACHE_ID`
ANNOTATION_LEGACY_IMAGE_SNAPSHOT_ID = _K8S + "eci-image-snapshot-id"
#: pod, legacy: the older spelling of :data:`ANNOTATION_AUTO_IMAGE_CACHE` ("true")
ANNOTATION_LEGACY_IMAGE_CACHE = _K8S + "eci-image-cache"

#: pod event reason when ECI scheduled the pod with an image cache (the seed's output)
REASON_HIT_IMAGE_CACHE = "SuccessfulHitImageCache"
#: the event's source component, as ``kubectl describe pod`` shows it
EVENT_SOURCE = "EciService"
#: pod status reason (and Warning event reason) when the pinned image cache does not exist (the
#: local cluster's wording; ECI's own text for this refusal is not in its public docs)
REASON_IMAGE_CACHE_NOT_FOUND = "ImageCacheNotFound"
#: pod status reason (and Warning event reason) when the pinned image cache exists but is not Ready
REASON_IMAGE_CACHE_NOT_READY = "ImageCacheNotReady"

# ---------------------------------------------------------------------------------------------
# the ECI profile of a cluster (ack-virtual-node)
# ---------------------------------------------------------------------------------------------

ECI_PROFILE_NAMESPACE = "kube-system"
ECI_PROFILE_CONFIGMAP = "eci-profile"
#: data key listing the vSwitches pods are created in (comma-separated)
ECI_PROFILE_VSWITCHES = "vSwitchIds"

# ---------------------------------------------------------------------------------------------
# an Argo installation, as the seed's guide deploys it
# ---------------------------------------------------------------------------------------------

ARGO_NAMESPACE = "argo"
CONTROLLER_DEPLOYMENT = "workflow-controller"
SERVER_DEPLOYMENT = "argo-server"
CONTROLLER_CONFIGMAP = "workflow-controller-configmap"
#: the resources the seed recommends for the controller and the server, at least
RECOMMENDED_CPU_CORES = 2.0
RECOMMENDED_MEMORY_BYTES = 4 * 1024 ** 3
#: the executor the seed recommends on serverless Kubernetes (the only one since Argo v3.4)
RECOMMENDED_EXECUTOR = "emissary"
