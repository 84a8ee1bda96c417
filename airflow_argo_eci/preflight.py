"""The preflight: run the reads of a cluster (through a :class:`ClusterReads`) and every check into a Report.

What is read, once each: API discovery of Argo's, ECI's and Fluid's groups (the CRD objects when
discovery is unreadable), the ``workflow-controller`` and ``argo-server`` Deployments and the
controller's ConfigMap in the Argo namespace, the target namespace's ``artifact-repositories``
ConfigMap, ``kube-system/eci-profile``, and SelfSubjectAccessReviews for the workflow and pod
permissions the provider uses. A failed read becomes an :class:`Unreadable` (its HTTP status and
reason) that the decisions of :mod:`airflow_argo_eci.preflight_checks` turn into ``unknown``;
when the cluster cannot be reached at all, the remaining reads are not attempted and the report
says so (:attr:`Report.error`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from airflow_argo_eci import eci_conventions as eci
from airflow_argo_eci import fluid_conventions as fluid
from airflow_argo_eci.conventions import GROUP, VERSION, WORKFLOWS
from airflow_argo_eci.errors import ArgoApiError, WorkflowSpecError
from airflow_argo_eci.preflight_checks import (
    ARGO_PLURALS,
    ARTIFACT_REPOSITORIES_CONFIGMAP,
    Access,
    Check,
    Read,
    Report,
    Unreadable,
    argo_version,
    check_access,
    check_argo_crds,
    check_argo_version,
    check_artifact_repository,
    check_component_resources,
    check_executor,
    check_optional_crds,
    check_vswitches,
)

#: the optional components a preflight may be told to require
REQUIRABLE = ("imagecache", "fluid")
#: the workflow verbs the provider uses (submit, get, list, watch, stop/retry by patch, delete)
WORKFLOW_VERBS = ("create", "get", "list", "watch", "patch", "delete")
#: the pod permissions the provider uses to follow a workflow's logs
POD_ACCESS = (Access("get", "pods"), Access("list", "pods"), Access("get", "pods", subresource="log"))
#: Fluid's kinds the Fluid operators need
FLUID_PLURALS = (fluid.DATASETS, fluid.DATALOADS)


class ClusterReads(Protocol):
    """What the preflight reads of a cluster; each method returns the decoded object or raises
    (:class:`~airflow_argo_eci.errors.ArgoApiError` with the HTTP status, or another
    :class:`~airflow_argo_eci.errors.ArgoEciError` when the read cannot be made at all).
    :class:`~airflow_argo_eci.hooks.cluster.ClusterReader` is the implementation."""

    @property
    def transport_name(self) -> str:
        """``kubernetes`` or ``argo_server``."""

    def where(self) -> str:
        """Where the connection points, for the report."""

    def discovery(self, group: str, version: str) -> dict[str, Any]: ...

    def get_crd(self, name: str) -> dict[str, Any]: ...

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any]: ...

    def get_config_map(self, namespace: str, name: str) -> dict[str, Any]: ...

    def access_review(self, namespace: str, verb: str, resource: str, group: str = "",
                      subresource: str = "") -> dict[str, Any]: ...

    def server_version(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PreflightOptions:
    """What to check: the workflows' ``namespace``, Argo's installation namespace, and the optional
    components to require (``imagecache``, ``fluid``)."""

    namespace: str
    argo_namespace: str = eci.ARGO_NAMESPACE
    require: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [r for r in self.require if r not in REQUIRABLE]
        if unknown:
            raise WorkflowSpecError(f"cannot require {', '.join(unknown)}: choose from {', '.join(REQUIRABLE)}")


def parse_require(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"imagecache,fluid"`` or a sequence -> ``("imagecache", "fluid")`` (checked by PreflightOptions)."""
    if not value:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(dict.fromkeys(str(i).strip().lower() for i in items if str(i).strip()))


def _reason(exc: Exception) -> tuple[str, int | None]:
    if isinstance(exc, ArgoApiError):
        status = f"{exc.status} " if exc.status is not None else ""
        return f"{status}{exc.reason or type(exc).__name__}: {exc.message}", exc.status
    return f"{type(exc).__name__}: {exc}", None


class _Reads:
    """Runs the reads, each converted to a :data:`Read`; after a read that got no answer at all
    (connection refused, TLS, timeout) the cluster counts as unreachable and later reads are skipped."""

    def __init__(self, reader: ClusterReads) -> None:
        self.reader = reader
        self.unreachable = ""

    def read(self, what: str, call: Callable[[], dict[str, Any]], *, first: bool = False) -> Read:
        """``call()``, or the :class:`Unreadable` it raised; ``first``: any error without an HTTP status
        (configuration, connection) makes the cluster unreachable, not only a failed connection."""
        if self.unreachable:
            return Unreadable(what, f"not read: {self.unreachable}")
        try:
            return call()
        except Exception as exc:  # a client's own errors too (configuration, decoding): reported, never a pass
            reason, status = _reason(exc)
            if status is None and (first or isinstance(exc, ArgoApiError)):
                self.unreachable = reason
            return Unreadable(what, reason, status)


def _crds(reads: _Reads, discovery: Read, group: str, plurals: Sequence[str]) -> dict[str, Read]:
    """The CRD objects of ``plurals``, read only when discovery was unreadable for another reason than 404."""
    if not isinstance(discovery, Unreadable) or discovery.missing:
        return {}
    found: dict[str, Read] = {}
    for plural in plurals:
        name = f"{plural}.{group}"
        found[plural] = reads.read(f"customresourcedefinition {name}", partial(reads.reader.get_crd, name))
    return found


def run_preflight(reader: ClusterReads, options: PreflightOptions) -> Report:
    """Every check of the preflight against the cluster ``reader`` reads, in a stable order."""
    reads = _Reads(reader)
    ns, argo_ns = options.namespace, options.argo_namespace
    kubernetes = reader.transport_name == "kubernetes"
    argo_discovery = reads.read(f"discovery of {GROUP}/{VERSION}", lambda: reader.discovery(GROUP, VERSION),
                                first=kubernetes)
    checks: list[Check] = [check_argo_crds(argo_discovery, _crds(reads, argo_discovery, GROUP, ARGO_PLURALS))]

    controller = reads.read(f"deployment {argo_ns}/{eci.CONTROLLER_DEPLOYMENT}",
                            lambda: reader.get_deployment(argo_ns, eci.CONTROLLER_DEPLOYMENT))
    server = reads.read(f"deployment {argo_ns}/{eci.SERVER_DEPLOYMENT}",
                        lambda: reader.get_deployment(argo_ns, eci.SERVER_DEPLOYMENT))
    server_api = None
    if not kubernetes:
        server_api = reads.read("Argo Server /api/v1/version", reader.server_version, first=True)
    version = argo_version(controller, server, server_api)
    checks.append(check_argo_version(version))
    checks.append(check_component_resources("argo.resources.controller", eci.CONTROLLER_DEPLOYMENT, controller,
                                            argo_ns))
    checks.append(check_component_resources("argo.resources.server", eci.SERVER_DEPLOYMENT, server, argo_ns))
    controller_cm = reads.read(f"configmap {argo_ns}/{eci.CONTROLLER_CONFIGMAP}",
                               lambda: reader.get_config_map(argo_ns, eci.CONTROLLER_CONFIGMAP))
    checks.append(check_executor(version, controller_cm, argo_ns))

    ns_repos = reads.read(f"configmap {ns}/{ARTIFACT_REPOSITORIES_CONFIGMAP}",
                          lambda: reader.get_config_map(ns, ARTIFACT_REPOSITORIES_CONFIGMAP))
    # whether the controller's Deployment exists (None: unreadable): a managed control plane hides its ConfigMap
    present = not isinstance(controller, Unreadable) or (False if controller.missing else None)
    checks.append(check_artifact_repository(ns_repos, controller_cm, ns, argo_ns, present))

    profile = reads.read(f"configmap {eci.ECI_PROFILE_NAMESPACE}/{eci.ECI_PROFILE_CONFIGMAP}",
                         lambda: reader.get_config_map(eci.ECI_PROFILE_NAMESPACE, eci.ECI_PROFILE_CONFIGMAP))
    checks.append(check_vswitches(profile))

    imc = reads.read(f"discovery of {eci.API_VERSION}", lambda: reader.discovery(eci.GROUP, eci.VERSION))
    checks.append(check_optional_crds(
        "crds.imagecache", "ECI ImageCache", eci.API_VERSION, (eci.IMAGE_CACHES,), imc, "imagecache" in options.require,
        "use an ACK Serverless cluster or ack-virtual-node, which serve ECI's ImageCache CRD "
        f"({eci.IMAGE_CACHE_CRD})", _crds(reads, imc, eci.GROUP, (eci.IMAGE_CACHES,))))
    fluid_discovery = reads.read(f"discovery of {fluid.API_VERSION}",
                                 lambda: reader.discovery(fluid.GROUP, fluid.VERSION))
    checks.append(check_optional_crds(
        "crds.fluid", "Fluid", fluid.API_VERSION, FLUID_PLURALS, fluid_discovery, "fluid" in options.require,
        "install Fluid (the ack-fluid component, or Fluid's Helm chart)",
        _crds(reads, fluid_discovery, fluid.GROUP, FLUID_PLURALS)))

    def review(access: Access) -> Read:
        return reads.read(f"access review ({access.describe()})", lambda: reader.access_review(
            ns, access.verb, access.resource, access.group, access.subresource))

    workflow_access = [Access(verb, WORKFLOWS, GROUP) for verb in WORKFLOW_VERBS]
    checks.append(check_access("rbac.workflows", "the connection may create, get, list, watch, patch and delete "
                               "workflows", ns, [(a, review(a)) for a in workflow_access]))
    checks.append(check_access("rbac.pods", "the connection may get and list pods and read pod logs", ns,
                               [(a, review(a)) for a in POD_ACCESS]))
    return Report(reader.where(), ns, tuple(checks), error=reads.unreachable)
