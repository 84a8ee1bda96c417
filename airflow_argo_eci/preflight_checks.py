"""The preflight's checks, pure: Check/Report types, quantities, and one decision per check from what was read.

Each decision function takes what the reader got (an object, or :class:`Unreadable` with the
reason) and returns one :class:`Check`: ``pass`` / ``warn`` / ``fail`` / ``unknown``, with the
evidence (what was read) and the fix. Anything that could not be read is ``unknown``, never a
pass. The thresholds are the seed guide's (2 vCPU / 4 GiB, emissary, several zones, OSS).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import yaml

from airflow_argo_eci.conventions import ANNOTATION_DEFAULT_ARTIFACT_REPOSITORY
from airflow_argo_eci.eci_conventions import (
    ECI_PROFILE_CONFIGMAP,
    ECI_PROFILE_NAMESPACE,
    ECI_PROFILE_VSWITCHES,
    RECOMMENDED_CPU_CORES,
    RECOMMENDED_EXECUTOR,
    RECOMMENDED_MEMORY_BYTES,
)

Status = Literal["pass", "warn", "fail", "unknown"]
#: how much a check matters: ``critical`` (workflows fail without it), ``recommended`` (the seed's
#: practice for reliable serverless runs), ``info`` (reported, never a failure)
Severity = Literal["critical", "recommended", "info"]
STATUSES: tuple[Status, ...] = ("pass", "warn", "fail", "unknown")

#: the oldest Argo release the preflight accepts: v3.4 made emissary the only executor (the one the
#: seed requires on serverless Kubernetes) and older releases are out of Argo's support window
MIN_ARGO_VERSION = (3, 4)
#: Argo v3.3 made emissary the default executor; before it the default was docker (not on ECI)
EMISSARY_DEFAULT_VERSION = (3, 3)


@dataclass(frozen=True)
class Unreadable:
    """A read that failed: ``what`` was asked, ``reason`` why it failed, the HTTP ``status`` (None:
    no answer, e.g. a network error or a transport that cannot ask)."""

    what: str
    reason: str
    status: int | None = None

    @property
    def missing(self) -> bool:
        """The server answered 404: the object (or API) does not exist."""
        return self.status == 404

    def describe(self) -> str:
        """``what``: ``reason``, for evidence."""
        return f"{self.what}: {self.reason}"


#: what one read returned: the decoded object, or why it could not be read
Read = Mapping[str, Any] | Unreadable


@dataclass(frozen=True)
class Check:
    """One check's outcome: a stable ``id``, its ``title``, ``status``, ``severity``, the ``evidence``
    (what was read) and the ``fix`` (empty when nothing is to be done)."""

    id: str
    title: str
    status: Status
    severity: Severity
    evidence: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        """The check as JSON-ready data."""
        return {"id": self.id, "title": self.title, "status": self.status, "severity": self.severity,
                "evidence": self.evidence, "fix": self.fix}


@dataclass(frozen=True)
class Report:
    """Every check of one preflight run against ``target`` (where the cluster is) for ``namespace``."""

    target: str
    namespace: str
    checks: tuple[Check, ...] = field(default_factory=tuple)
    #: why the cluster could not be reached at all ("" when it answered)
    error: str = ""

    def by_id(self) -> dict[str, Check]:
        """The checks keyed by id."""
        return {c.id: c for c in self.checks}

    def counts(self) -> dict[str, int]:
        """How many checks ended in each status."""
        return {s: sum(1 for c in self.checks if c.status == s) for s in STATUSES}

    def matching(self, statuses: Sequence[str]) -> list[Check]:
        """The checks whose status is one of ``statuses`` (e.g. ``("fail", "unknown")``)."""
        return [c for c in self.checks if c.status in statuses]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (the operator's XCom, ``doctor --json``)."""
        return {"target": self.target, "namespace": self.namespace, "error": self.error, "summary": self.counts(),
                "checks": [c.to_dict() for c in self.checks]}

    def table(self, width: int = 100) -> str:
        """A human table: one block per check (status, id, title; evidence and fix indented)."""
        lines = [f"preflight of {self.target} (namespace {self.namespace})", ""]
        if self.error:
            lines[1:1] = [f"the cluster could not be reached: {self.error}"]
        for c in self.checks:
            lines.append(f"{c.status.upper():<8} {c.id:<28} {c.title} [{c.severity}]")
            lines += _wrapped("evidence: ", c.evidence, width)
            if c.fix and c.status != "pass":
                lines += _wrapped("fix:      ", c.fix, width)
        counts = self.counts()
        lines += ["", ", ".join(f"{n} {s}" for s, n in counts.items())]
        return "\n".join(lines)


def _wrapped(label: str, text: str, width: int) -> list[str]:
    import textwrap

    indent = " " * 9
    return textwrap.wrap(text, width=width, initial_indent=indent + label,
                         subsequent_indent=indent + " " * len(label)) or [indent + label]


# ---------------------------------------------------------------------------------------------
# quantities and versions
# ---------------------------------------------------------------------------------------------

_BINARY = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1), "k": Decimal(10 ** 3),
            "M": Decimal(10 ** 6), "G": Decimal(10 ** 9), "T": Decimal(10 ** 12), "P": Decimal(10 ** 15),
            "E": Decimal(10 ** 18)}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$")


def parse_quantity(value: Any) -> Decimal:
    """A Kubernetes quantity (``"2"``, ``"2000m"``, ``"4Gi"``, ``"4096Mi"``, ``"4G"``, ``"1e3"``, a number)
    as a Decimal; a malformed one raises ValueError naming it."""
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError(f"not a quantity: {value!r}")
    number, exponent, suffix = match.groups()
    try:
        base = Decimal(number + (exponent or ""))
    except InvalidOperation:
        raise ValueError(f"not a quantity: {value!r}") from None
    if suffix in _BINARY:
        return base * _BINARY[suffix]
    return base * _DECIMAL[suffix or ""]


def cores(value: Decimal) -> str:
    """vCPUs without trailing zeros (``2``, ``0.5``)."""
    return format(value.normalize(), "f")


def human_bytes(value: Decimal) -> str:
    """Bytes as GiB with two decimals (``4.00 GiB``)."""
    return f"{value / 2 ** 30:.2f} GiB"


_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``(major, minor, patch)`` of ``v3.4.8``, ``3.5``, ``v3.4.8-eb4e3ab4-aliyun``; None otherwise."""
    match = _VERSION.match(text.strip())
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def image_tag(image: str) -> str:
    """The tag of an image reference (``""`` when it has none, or only a digest)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def format_version(version: tuple[int, ...]) -> str:
    """``v3.4.0``."""
    return "v" + ".".join(str(part) for part in version)


@dataclass(frozen=True)
class ArgoVersion:
    """The controller's version as far as it could be told: ``version`` (None: unknown), where it
    came from, and the evidence (what was read)."""

    version: tuple[int, int, int] | None
    evidence: str


def _containers(deployment: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [c for c in spec.get("containers") or [] if isinstance(c, Mapping)]


def _main_container(deployment: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    containers = _containers(deployment)
    return next((c for c in containers if c.get("name") == name), containers[0] if containers else None)


def argo_version(controller: Read, server: Read, server_api: Read | None = None) -> ArgoVersion:
    """The Argo version from the ``workflow-controller`` Deployment's image tag, else the ``argo-server``
    Deployment's, else the Argo Server's ``/api/v1/version`` answer (``server_api``)."""
    notes: list[str] = []
    for what, read in (("workflow-controller", controller), ("argo-server", server)):
        if isinstance(read, Unreadable):
            notes.append(read.describe())
            continue
        container = _main_container(read, what)
        image = str((container or {}).get("image") or "")
        version = parse_version(image_tag(image))
        if version is not None:
            return ArgoVersion(version, f"{what} image {image}")
        notes.append(f"{what} image {image or '(none)'}: no version in its tag")
    if server_api is not None:
        if isinstance(server_api, Unreadable):
            notes.append(server_api.describe())
        else:
            text = str(server_api.get("version") or "")
            version = parse_version(text)
            if version is not None:
                return ArgoVersion(version, f"Argo Server /api/v1/version: {text}")
            notes.append(f"Argo Server /api/v1/version: {text or '(empty)'}: not a version")
    return ArgoVersion(None, "; ".join(notes))


# ---------------------------------------------------------------------------------------------
# Argo: CRDs, version, resources, executor
# ---------------------------------------------------------------------------------------------

#: the Argo kinds a workflow run and its templates need
ARGO_PLURALS = ("workflows", "workflowtemplates", "cronworkflows", "clusterworkflowtemplates")


def served_plurals(discovery: Mapping[str, Any]) -> set[str]:
    """The resource plurals of an ``APIResourceList`` (subresources such as ``workflows/status`` left out)."""
    return {str(r.get("name")) for r in discovery.get("resources") or []
            if isinstance(r, Mapping) and "/" not in str(r.get("name"))}


def crd_established(crd: Mapping[str, Any]) -> bool:
    """Whether a CustomResourceDefinition has the condition ``Established=True``."""
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(isinstance(c, Mapping) and c.get("type") == "Established" and c.get("status") == "True"
               for c in conditions)


def served_kinds(group_version: str, plurals: Sequence[str], discovery: Read,
                 crds: Mapping[str, Read] | None = None) -> tuple[set[str] | None, str]:
    """``(served plurals, evidence)`` of ``group_version`` from its discovery document, else (discovery
    unreadable, not 404) from the CRD objects ``<plural>.<group>`` being Established; None: unknown."""
    if not isinstance(discovery, Unreadable):
        listed = served_plurals(discovery) & set(plurals)
        return listed, f"discovery of {group_version} lists {', '.join(sorted(listed)) or 'none of them'}"
    if discovery.missing:
        return set(), f"{group_version} is not served (discovery: 404)"
    served: set[str] = set()
    notes = [f"discovery unreadable ({discovery.reason})"]
    for plural in plurals:
        crd = (crds or {}).get(plural)
        if crd is None or (isinstance(crd, Unreadable) and not crd.missing):
            reason = crd.reason if isinstance(crd, Unreadable) else "not read"
            return None, "; ".join([*notes, f"CRD of {plural} unreadable ({reason})"])
        if isinstance(crd, Unreadable):
            notes.append(f"CRD of {plural}: not found")
        elif crd_established(crd):
            served.add(plural)
        else:
            notes.append(f"CRD of {plural}: not Established")
    notes.append(f"Established CRDs: {', '.join(sorted(served)) or 'none'}")
    return served, "; ".join(notes)


def check_argo_crds(discovery: Read, crds: Mapping[str, Read] | None = None) -> Check:
    """``argo.crds``: Workflow, WorkflowTemplate, CronWorkflow and ClusterWorkflowTemplate are served."""
    served, evidence = served_kinds("argoproj.io/v1alpha1", ARGO_PLURALS, discovery, crds)
    title = "Argo's CRDs are served"
    fix = "install Argo Workflows (ack-workflow, or Argo's quick start manifests) so that its CRDs are served"
    if served is None:
        return Check("argo.crds", title, "unknown", "critical", evidence, "grant read access to API discovery or "
                     "to customresourcedefinitions, or check the connection")
    missing = [p for p in ARGO_PLURALS if p not in served]
    if missing:
        return Check("argo.crds", title, "fail", "critical", f"{evidence}; missing: {', '.join(missing)}", fix)
    return Check("argo.crds", title, "pass", "critical", evidence)


def check_argo_version(version: ArgoVersion) -> Check:
    """``argo.version``: the controller is at least :data:`MIN_ARGO_VERSION`."""
    title = f"Argo is {format_version(MIN_ARGO_VERSION)} or newer"
    if version.version is None:
        return Check("argo.version", title, "unknown", "critical", version.evidence,
                     "tag the workflow-controller image with its version, or check --argo-namespace and read access "
                     "to its Deployment")
    if version.version[:2] < MIN_ARGO_VERSION:
        return Check("argo.version", title, "fail", "critical",
                     f"{version.evidence}: {format_version(version.version)} < {format_version(MIN_ARGO_VERSION)}",
                     f"upgrade Argo Workflows to {format_version(MIN_ARGO_VERSION)} or newer (emissary is the only "
                     "executor from v3.4 on; older releases are out of support)")
    return Check("argo.version", title, "pass", "critical", f"{version.evidence} ({format_version(version.version)})")


def _hidden_fix(what: str, argo_namespace: str) -> str:
    return (f"check --argo-namespace (now {argo_namespace}) and read access to deployments there; on a managed "
            f"control plane (ACK One) {what} runs outside your cluster and its resources are the provider's")


def _pod_resources(deployment: Mapping[str, Any]) -> dict[str, dict[str, Decimal]]:
    """``{"requests": {"cpu": n, "memory": n}, "limits": {...}}`` summed over the pod's containers."""
    total: dict[str, dict[str, Decimal]] = {"requests": {}, "limits": {}}
    for container in _containers(deployment):
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                value = (resources.get(kind) or {}).get(resource)
                if value is not None:
                    total[kind][resource] = total[kind].get(resource, Decimal(0)) + parse_quantity(value)
    return total


def check_component_resources(check_id: str, name: str, deployment: Read, argo_namespace: str) -> Check:
    """``argo.resources.controller`` / ``argo.resources.server``: requests or limits of at least
    2 vCPU and 4 GiB (the seed's starting point; below it the pods risk OOM kills and eviction)."""
    cpu_min, memory_min = Decimal(str(RECOMMENDED_CPU_CORES)), Decimal(RECOMMENDED_MEMORY_BYTES)
    title = f"{name} has requests or limits of at least {RECOMMENDED_CPU_CORES:g} vCPU and 4 GiB"
    fix = (f"set {name}'s resources.requests (or limits) to cpu: \"{RECOMMENDED_CPU_CORES:g}\", memory: 4Gi or more "
           f"(kubectl -n {argo_namespace} edit deployment {name})")
    if isinstance(deployment, Unreadable):
        return Check(check_id, title, "unknown", "recommended", deployment.describe(),
                     _hidden_fix(name, argo_namespace))
    try:
        total = _pod_resources(deployment)
    except ValueError as exc:
        return Check(check_id, title, "unknown", "recommended", f"deployment {argo_namespace}/{name}: {exc}", fix)
    shown = []
    for kind in ("requests", "limits"):
        values = total[kind]
        cpu = f"cpu={cores(values['cpu'])}" if "cpu" in values else "cpu unset"
        memory = f"memory={human_bytes(values['memory'])}" if "memory" in values else "memory unset"
        shown.append(f"{kind} {cpu} {memory}")
    evidence = f"deployment {argo_namespace}/{name}: {'; '.join(shown)}"
    cpu_best = max(total["requests"].get("cpu", Decimal(0)), total["limits"].get("cpu", Decimal(0)))
    memory_best = max(total["requests"].get("memory", Decimal(0)), total["limits"].get("memory", Decimal(0)))
    short = []
    if cpu_best < cpu_min:
        short.append(f"cpu {cores(cpu_best)} < {cores(cpu_min)}")
    if memory_best < memory_min:
        short.append(f"memory {human_bytes(memory_best)} < {human_bytes(memory_min)}")
    if short:
        return Check(check_id, title, "warn", "recommended", f"{evidence} ({', '.join(short)})", fix)
    return Check(check_id, title, "pass", "recommended", evidence)


def configured_executors(config_map: Mapping[str, Any]) -> list[str]:
    """The executors a ``workflow-controller-configmap`` names (``containerRuntimeExecutor`` and the
    ``executor`` of each ``containerRuntimeExecutors`` entry; the whole config under ``config`` or per key)."""
    config = controller_config(config_map)
    names = [str(config["containerRuntimeExecutor"])] if config.get("containerRuntimeExecutor") else []
    for entry in config.get("containerRuntimeExecutors") or []:
        if isinstance(entry, Mapping) and entry.get("name"):
            names.append(str(entry["name"]))
    return names


def controller_config(config_map: Mapping[str, Any]) -> dict[str, Any]:
    """The controller's configuration from its ConfigMap, as Argo reads it: the YAML under ``config``
    when that key exists, else each data key's value (YAML when it parses to a mapping or list)."""
    data = config_map.get("data") or {}
    if "config" in data:
        loaded = yaml.safe_load(str(data["config"]) or "{}")
        return dict(loaded) if isinstance(loaded, Mapping) else {}
    config: dict[str, Any] = {}
    for key, value in data.items():
        try:
            loaded = yaml.safe_load(str(value))
        except yaml.YAMLError:
            loaded = value
        config[str(key)] = loaded if isinstance(loaded, (Mapping, list)) else value
    return config


def check_executor(version: ArgoVersion, config_map: Read, argo_namespace: str) -> Check:
    """``argo.executor``: pods run with the emissary executor (the only one from v3.4; the default in v3.3)."""
    title = f"the executor is {RECOMMENDED_EXECUTOR}"
    where = f"{argo_namespace}/workflow-controller-configmap"
    fix_set = (f"remove containerRuntimeExecutor(s) from {where} (or set it to {RECOMMENDED_EXECUTOR}); better, "
               f"upgrade to Argo {format_version(MIN_ARGO_VERSION)}+ where emissary is the only executor")
    if isinstance(config_map, Unreadable):
        executors: list[str] | None = [] if config_map.missing else None
        read = "not found (the controller's defaults apply)" if config_map.missing else config_map.reason
    else:
        try:
            executors = configured_executors(config_map)
        except yaml.YAMLError as exc:
            return Check("argo.executor", title, "unknown", "critical", f"{where}: not valid YAML: {exc}", fix_set)
        read = f"containerRuntimeExecutor(s): {', '.join(executors) or 'not set'}"
    others = [e for e in executors or [] if e != RECOMMENDED_EXECUTOR]
    evidence = f"{where}: {read}; {version.evidence}"
    v = version.version
    if v is not None and v[:2] >= MIN_ARGO_VERSION:
        if others:
            return Check("argo.executor", title, "warn", "critical",
                         f"{evidence}: ignored, {format_version(v)} has only {RECOMMENDED_EXECUTOR}",
                         f"remove containerRuntimeExecutor(s) from {where}: Argo {format_version(v)} ignores it")
        return Check("argo.executor", title, "pass", "critical",
                     f"{evidence}: Argo {format_version(v)} runs every pod with {RECOMMENDED_EXECUTOR}")
    if executors is None:
        return Check("argo.executor", title, "unknown", "critical", evidence,
                     f"grant read access to {where}, or upgrade to Argo {format_version(MIN_ARGO_VERSION)}+")
    if others:
        if v is None:
            return Check("argo.executor", title, "unknown", "critical",
                         f"{evidence}: {', '.join(others)} is used unless Argo is v3.4+ (version unknown)", fix_set)
        return Check("argo.executor", title, "fail", "critical",
                     f"{evidence}: {', '.join(others)} does not work on serverless Kubernetes (ECI)", fix_set)
    if executors:
        return Check("argo.executor", title, "pass", "critical", evidence)
    if v is None:
        return Check("argo.executor", title, "unknown", "critical",
                     f"{evidence}: the default executor depends on the version (emissary from v3.3)",
                     f"set containerRuntimeExecutor: {RECOMMENDED_EXECUTOR} in {where}, or upgrade Argo")
    if v[:2] >= EMISSARY_DEFAULT_VERSION:
        return Check("argo.executor", title, "pass", "critical", f"{evidence}: the default in {format_version(v)}")
    return Check("argo.executor", title, "fail", "critical",
                 f"{evidence}: the default executor of {format_version(v)} is docker, which ECI does not support",
                 fix_set)


# ---------------------------------------------------------------------------------------------
# the artifact repository
# ---------------------------------------------------------------------------------------------

#: the ConfigMap of a namespace's artifact repositories (Argo's default name for it)
ARTIFACT_REPOSITORIES_CONFIGMAP = "artifact-repositories"
_STORAGE_KINDS = ("oss", "s3", "gcs", "azure", "hdfs", "artifactory", "http", "git")
_MINIO_HINTS = ("minio", ":9000")


def _repository_summary(kind: str, spec: Mapping[str, Any]) -> str:
    endpoint = spec.get("endpoint") or spec.get("url") or spec.get("endpointURL") or ""
    bucket = spec.get("bucket") or spec.get("container") or ""
    parts = [f"endpoint {endpoint}" if endpoint else "", f"bucket {bucket}" if bucket else ""]
    return f"{kind} ({', '.join(p for p in parts if p) or 'no endpoint'})"


def namespace_repository(config_map: Mapping[str, Any]) -> tuple[str, Any] | None:
    """``(key, repository)`` of the default of a namespace's ``artifact-repositories`` ConfigMap (the key
    its annotation names), or None when it names none or the key is missing (Argo then falls back to
    the controller's)."""
    annotations = (config_map.get("metadata") or {}).get("annotations") or {}
    key = str(annotations.get(ANNOTATION_DEFAULT_ARTIFACT_REPOSITORY) or "")
    data = config_map.get("data") or {}
    if not key or key not in data:
        return None
    return key, yaml.safe_load(str(data[key]) or "{}")


def _classify_repository(where: str, repository: Any) -> tuple[Status, str, str]:
    """``(status, evidence, fix)`` of one repository definition."""
    fix = ("configure OSS as the artifact repository (ack-workflow: \"Configuring Alibaba Cloud OSS\"; "
           f"artifactRepository: {{oss: {{endpoint, bucket, accessKeySecret, secretKeySecret}}}} in {where})")
    if not isinstance(repository, Mapping):
        return "fail", f"{where}: not a repository definition", fix
    kinds = [k for k in _STORAGE_KINDS if isinstance(repository.get(k), Mapping)]
    if not kinds:
        return "fail", f"{where}: defines no storage (keys: {', '.join(map(str, repository)) or 'none'})", fix
    kind = kinds[0]
    spec = repository[kind]
    summary = f"{where}: {_repository_summary(kind, spec)}"
    endpoint = str(spec.get("endpoint") or "").lower()
    if kind == "oss":
        return "pass", summary, ""
    if kind == "s3" and any(hint in endpoint for hint in _MINIO_HINTS):
        return "warn", f"{summary}: MinIO, Argo's quick-start default, is not durable enough for production", fix
    if kind == "s3" and "aliyuncs.com" in endpoint:
        return "pass", f"{summary}: OSS through its S3-compatible API", ""
    return "warn", f"{summary}: not OSS, which the seed recommends on Alibaba Cloud", fix


def check_artifact_repository(namespace_repositories: Read, controller_config_map: Read, namespace: str,
                              argo_namespace: str, controller_present: bool | None) -> Check:
    """``artifacts.repository``: the default artifact repository as Argo resolves it (the workflow
    namespace's ``artifact-repositories`` default, else the controller's ``artifactRepository``)
    exists and is OSS; MinIO is a warning; none is a failure. ``controller_present``: whether the
    workflow-controller Deployment was found (None: unreadable), since a managed control plane keeps
    its ConfigMap out of sight."""
    title = "a default artifact repository exists and is OSS"
    ns_where = f"{namespace}/{ARTIFACT_REPOSITORIES_CONFIGMAP}"
    ctl_where = f"{argo_namespace}/workflow-controller-configmap artifactRepository"
    fix_none = (f"configure OSS as the default artifact repository in {ctl_where} (or a {ns_where} ConfigMap "
                f"annotated {ANNOTATION_DEFAULT_ARTIFACT_REPOSITORY})")
    notes: list[str] = []
    if isinstance(namespace_repositories, Unreadable):
        if not namespace_repositories.missing:
            return Check("artifacts.repository", title, "unknown", "critical",
                         f"{namespace_repositories.describe()} (it would take precedence over the controller's)",
                         f"grant get on configmaps in {namespace}")
        notes.append(f"{ns_where}: none")
    else:
        try:
            found = namespace_repository(namespace_repositories)
        except yaml.YAMLError as exc:
            return Check("artifacts.repository", title, "fail", "critical", f"{ns_where}: not valid YAML: {exc}",
                         fix_none)
        if found is not None:
            status, evidence, fix = _classify_repository(f"{ns_where} key {found[0]}", found[1])
            return Check("artifacts.repository", title, status, "critical", evidence, fix)
        notes.append(f"{ns_where}: no default key")
    if isinstance(controller_config_map, Unreadable):
        evidence = "; ".join([*notes, controller_config_map.describe()])
        if controller_config_map.missing and controller_present:
            return Check("artifacts.repository", title, "fail", "critical", evidence + ": no default repository",
                         fix_none)
        return Check("artifacts.repository", title, "unknown", "critical", evidence,
                     _hidden_fix("the controller's configuration", argo_namespace))
    try:
        repository = controller_config(controller_config_map).get("artifactRepository")
    except yaml.YAMLError as exc:
        return Check("artifacts.repository", title, "fail", "critical", f"{ctl_where}: not valid YAML: {exc}",
                     fix_none)
    if not repository:
        return Check("artifacts.repository", title, "fail", "critical",
                     "; ".join([*notes, f"{ctl_where}: not set"]), fix_none)
    status, evidence, fix = _classify_repository(ctl_where, repository)
    return Check("artifacts.repository", title, status, "critical", "; ".join([*notes, evidence]), fix)


# ---------------------------------------------------------------------------------------------
# ECI: vSwitches, optional CRDs
# ---------------------------------------------------------------------------------------------

_ZONE_NOTE = ("the cluster's API does not show a vSwitch's zone: each vSwitch is counted as one zone, as the seed "
              "has one vSwitch created per zone")


def check_vswitches(profile: Read) -> Check:
    """``eci.vswitches``: ``kube-system/eci-profile`` lists more than one vSwitch (one per zone), so a
    zone out of stock does not fail pod creation."""
    title = "ECI pods may be created in more than one zone"
    where = f"{ECI_PROFILE_NAMESPACE}/{ECI_PROFILE_CONFIGMAP}"
    fix = (f"create a vSwitch in another zone of the cluster's VPC and list every vSwitch in {where} "
           f"data.{ECI_PROFILE_VSWITCHES} (comma-separated; kubectl -n {ECI_PROFILE_NAMESPACE} edit cm "
           f"{ECI_PROFILE_CONFIGMAP})")
    if isinstance(profile, Unreadable):
        if profile.missing:
            return Check("eci.vswitches", title, "fail", "recommended",
                         f"{where}: not found (no ECI profile: pods are not created on ECI by this cluster)",
                         "use an ACK Serverless cluster, or deploy ack-virtual-node, then list the vSwitches in "
                         f"{where}")
        return Check("eci.vswitches", title, "unknown", "recommended", profile.describe(),
                     f"grant get on configmaps in {ECI_PROFILE_NAMESPACE}")
    raw = str((profile.get("data") or {}).get(ECI_PROFILE_VSWITCHES) or "")
    vswitches = list(dict.fromkeys(v.strip() for v in raw.split(",") if v.strip()))
    evidence = f"{where} {ECI_PROFILE_VSWITCHES}: {', '.join(vswitches) or '(none)'}; {_ZONE_NOTE}"
    if not vswitches:
        return Check("eci.vswitches", title, "fail", "recommended", evidence, fix)
    if len(vswitches) == 1:
        return Check("eci.vswitches", title, "warn", "recommended", f"{evidence}: a single zone", fix)
    return Check("eci.vswitches", title, "pass", "recommended", f"{evidence}: {len(vswitches)} zones")


def check_optional_crds(check_id: str, what: str, group_version: str, plurals: Sequence[str], discovery: Read,
                        required: bool, install: str, crds: Mapping[str, Read] | None = None) -> Check:
    """``crds.imagecache`` / ``crds.fluid``: the kinds are served when ``required``; when not, the
    check passes with a note (``info``), whatever was read."""
    served, evidence = served_kinds(group_version, plurals, discovery, crds)
    title = f"{what} CRDs are served" + ("" if required else " (not required)")
    if not required:
        state = ("unreadable" if served is None else
                 "served" if set(plurals) <= served else "not served")
        return Check(check_id, title, "pass", "info", f"not required ({what}: {state}; {evidence})",
                     f"require it (--require {check_id.split('.')[-1]}) when your DAGs use {what}")
    if served is None:
        return Check(check_id, title, "unknown", "critical", evidence,
                     "grant read access to API discovery or to customresourcedefinitions")
    missing = [p for p in plurals if p not in served]
    if missing:
        return Check(check_id, title, "fail", "critical", f"{evidence}; missing: {', '.join(missing)}", install)
    return Check(check_id, title, "pass", "critical", evidence)


# ---------------------------------------------------------------------------------------------
# RBAC (SelfSubjectAccessReview)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """One permission asked of a SelfSubjectAccessReview."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""

    def describe(self) -> str:
        """``delete workflows.argoproj.io``, ``get pods/log``."""
        resource = f"{self.resource}.{self.group}" if self.group else self.resource
        return f"{self.verb} {resource}{'/' + self.subresource if self.subresource else ''}"


def check_access(check_id: str, title: str, namespace: str, reviews: Sequence[tuple[Access, Read]]) -> Check:
    """``rbac.*``: every permission allowed (``status.allowed``); a denied one fails, an unanswered
    one (the review could not be created) is unknown."""
    allowed: list[str] = []
    denied: list[str] = []
    unanswered: dict[str, list[str]] = {}
    for access, review in reviews:
        if isinstance(review, Unreadable):
            unanswered.setdefault(review.reason, []).append(access.describe())
            continue
        status = review.get("status") or {}
        if status.get("allowed") is True:
            allowed.append(access.describe())
        else:
            reason = status.get("reason") or status.get("evaluationError") or ""
            denied.append(access.describe() + (f" ({reason})" if reason else ""))
    parts = [f"in namespace {namespace}: allowed: {', '.join(allowed) or 'none'}"]
    parts += [f"denied: {', '.join(denied)}"] if denied else []
    unknown = [f"{', '.join(what)} ({reason})" for reason, what in unanswered.items()]
    parts += [f"not answered: {'; '.join(unknown)}"] if unknown else []
    evidence = "; ".join(parts)
    if denied:
        needed = ", ".join(a.describe() for a, _ in reviews)
        return Check(check_id, title, "fail", "critical", evidence,
                     f"bind the connection's identity to a Role in {namespace} granting: {needed}")
    if unknown:
        return Check(check_id, title, "unknown", "critical", evidence,
                     "allow the identity to create selfsubjectaccessreviews (authorization.k8s.io), as "
                     "system:basic-user does")
    return Check(check_id, title, "pass", "critical", evidence)
