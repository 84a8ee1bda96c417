"""Fluid's conventions, once: API group/version, kinds and plurals, phase and condition names.

Pure (no HTTP, no Airflow, no local cluster): the provider (hooks, operators, sensors, triggers) and
the local cluster's Fluid controller import these names from here and nowhere else. The names
mirror Fluid's ``api/v1alpha1`` types and ``pkg/common`` constants.
"""

from __future__ import annotations

GROUP = "data.fluid.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

#: kind -> plural of every namespaced kind under :data:`API_VERSION`
DATASET_KIND, DATASETS = "Dataset", "datasets"
DATALOAD_KIND, DATALOADS = "DataLoad", "dataloads"
JINDO_RUNTIME_KIND, JINDO_RUNTIMES = "JindoRuntime", "jindoruntimes"
ALLUXIO_RUNTIME_KIND, ALLUXIO_RUNTIMES = "AlluxioRuntime", "alluxioruntimes"
JUICEFS_RUNTIME_KIND, JUICEFS_RUNTIMES = "JuiceFSRuntime", "juicefsruntimes"
THIN_RUNTIME_KIND, THIN_RUNTIMES = "ThinRuntime", "thinruntimes"

#: runtime kind -> plural (the runtime of a Dataset is the object of one of these kinds bearing the
#: Dataset's name in its namespace)
RUNTIME_PLURALS: dict[str, str] = {
    JINDO_RUNTIME_KIND: JINDO_RUNTIMES,
    ALLUXIO_RUNTIME_KIND: ALLUXIO_RUNTIMES,
    JUICEFS_RUNTIME_KIND: JUICEFS_RUNTIMES,
    THIN_RUNTIME_KIND: THIN_RUNTIMES,
}
#: Fluid's lower-case runtime type names (``status.runtimes[].type`` of a Dataset)
RUNTIME_TYPES: dict[str, str] = {
    JINDO_RUNTIME_KIND: "jindo",
    ALLUXIO_RUNTIME_KIND: "alluxio",
    JUICEFS_RUNTIME_KIND: "juicefs",
    THIN_RUNTIME_KIND: "thin",
}
#: every kind served under :data:`API_VERSION` -> plural
KINDS: dict[str, str] = {DATASET_KIND: DATASETS, DATALOAD_KIND: DATALOADS, **RUNTIME_PLURALS}

#: Dataset ``status.phase`` values
DATASET_PENDING = "Pending"
DATASET_BOUND = "Bound"
DATASET_NOT_BOUND = "NotBound"
DATASET_FAILED = "Failed"
DATASET_UPDATING = "Updating"
DATASET_PHASES = (DATASET_PENDING, DATASET_BOUND, DATASET_NOT_BOUND, DATASET_FAILED, DATASET_UPDATING)
#: Dataset condition types
DATASET_CONDITION_READY = "Ready"
DATASET_CONDITION_NOT_READY = "NotReady"

#: DataLoad ``status.phase`` values
DATALOAD_PENDING = "Pending"
DATALOAD_EXECUTING = "Executing"
DATALOAD_COMPLETE = "Complete"
DATALOAD_FAILED = "Failed"
DATALOAD_PHASES = (DATALOAD_PENDING, DATALOAD_EXECUTING, DATALOAD_COMPLETE, DATALOAD_FAILED)
#: phases after which a (``Once``) DataLoad never changes again
DATALOAD_TERMINAL_PHASES = (DATALOAD_COMPLETE, DATALOAD_FAILED)
#: DataLoad condition types (the condition of a finished load)
CONDITION_COMPLETE = "Complete"
CONDITION_FAILED = "Failed"
#: DataLoad ``spec.policy`` values
POLICY_ONCE = "Once"
POLICY_CRON = "Cron"
POLICY_ON_EVENT = "OnEvent"
DATALOAD_POLICIES = (POLICY_ONCE, POLICY_CRON, POLICY_ON_EVENT)

#: runtime ``status.masterPhase`` / ``workerPhase`` / ``fusePhase`` values
RUNTIME_NOT_READY = "NotReady"
RUNTIME_PARTIAL_READY = "PartialReady"
RUNTIME_READY = "Ready"

#: the pod label the seed puts on ECI pods that mount a Dataset (Fluid's sidecar injection on ECI)
LABEL_FLUID_SIDECAR_TARGET = "alibabacloud.com/fluid-sidecar-target"
#: the only mount-point scheme the local cluster (and the provider's checks) accept
OSS_SCHEME = "oss://"
