"""Artifact I/O of a reconcile pass: the workflow's artifact repository, the plans of a pod's input and
output artifacts, and the loader / saver the runtime runs around the pod."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow_argo_eci.local.argo.artifacts import (
    DEFAULT_KEY_FORMAT,
    ArtifactError,
    ArtifactNotFound,
    Location,
    artifact_key,
    check_supported,
    has_location_or_key,
    load_artifact,
    location_of,
    missing_output_message,
    resolve_repository,
    save_artifact,
    status_location,
    strip_location,
)
from airflow_argo_eci.local.argo.reconcile.host import ArtifactSaver
from airflow_argo_eci.local.argo.reconcile.state import PassState
from airflow_argo_eci.local.argo.templates import SpecError, artifacts_of
from airflow_argo_eci.local.argo.variables import substitute, unresolved_tags
from airflow_argo_eci.local.runtime import HostPathOf, PodResult

#: input artifacts of a pod, each with its location (None for raw data)
InputPlan = list[tuple[dict[str, Any], Location | None]]
#: output artifacts of a pod, each with its OSS place, its own key (None: from the key format) and location
OutputPlan = list[tuple[dict[str, Any], dict[str, Any], str | None, Location]]


class ArtifactIO:
    """Resolves and moves the artifacts of the pods one pass creates."""

    def __init__(self, state: PassState) -> None:
        self.state = state

    def repository(self) -> dict[str, Any]:
        """The artifact repository of this workflow (resolved once, recorded in status)."""
        ref = self.state.status.get("artifactRepositoryRef")
        if not isinstance(ref, dict) or not isinstance(ref.get("artifactRepository"), dict):
            ref = resolve_repository(self.state.store, self.state.namespace,
                                     self.state.spec.get("artifactRepositoryRef"),
                                     self.state.host.artifact_repository)
            self.state.status["artifactRepositoryRef"] = ref
        repo: dict[str, Any] = ref["artifactRepository"]
        return repo

    def place(self, art: dict[str, Any], where: str) -> tuple[dict[str, Any], str | None]:
        """The OSS place of an artifact (the repository's, with the artifact's own oss fields on top)
        and its own key (None: the executor derives it from the repository's keyFormat)."""
        check_supported(art, where)
        oss: dict[str, Any] = dict(self.repository()["oss"])
        own = art.get("oss")
        if isinstance(own, dict):
            oss.update({k: v for k, v in own.items() if v not in (None, "")})
        oss.pop("keyFormat", None)
        oss.pop("key", None)
        return oss, artifact_key(art)

    def location(self, oss: dict[str, Any], key: str) -> Location:
        """Where ``key`` of the OSS place ``oss`` is, with the credentials to reach it."""
        return location_of(self.state.store, self.state.namespace, oss, key, self.state.host.artifact_credentials)

    def input_plan(self, node: dict[str, Any], tmpl: dict[str, Any]) -> InputPlan:
        """Input artifacts to place before start, each with its location (None for raw data);
        the node's ``inputs.artifacts`` get the resolved OSS locations, as Argo records them."""
        plan: InputPlan = []
        recorded: list[dict[str, Any]] = []
        tname = tmpl.get("name", "")
        for a in artifacts_of(tmpl.get("inputs")):
            name = a.get("name")
            where = f"templates.{tname}.inputs.artifacts.{name}"
            if not a.get("path"):
                raise SpecError(f"{where}.path is required")
            if not has_location_or_key(a):
                if a.get("optional"):
                    recorded.append(a)
                    continue
                raise ArtifactError(f"required artifact '{name}' not supplied")
            if a.get("raw") is not None:
                plan.append((a, None))
                recorded.append(a)
                continue
            oss, key = self.place(a, where)
            if key is None:
                raise ArtifactError(f"{where}: the artifact has no key")
            plan.append((a, self.location(oss, key)))
            entry = strip_location(a)
            entry["oss"] = status_location(oss, key)
            recorded.append(entry)
        if recorded:
            node.setdefault("inputs", {})["artifacts"] = recorded
        return plan

    def loader(self, plan: InputPlan) -> Callable[[HostPathOf], None]:
        """The runtime's ``prepare`` hook of a pod: places the input artifacts of ``plan``."""
        clients = self.state.host.oss_clients

        def prepare(host_of: HostPathOf) -> None:
            for art, loc in plan:
                try:
                    load_artifact(clients, art, host_of(str(art["path"])), loc)
                except ArtifactNotFound as exc:
                    if art.get("optional"):
                        continue
                    raise ArtifactError(f"artifact {art.get('name')} failed to load: {exc}") from exc

        return prepare

    def output_plan(self, tmpl: dict[str, Any], pod: str) -> tuple[OutputPlan, str]:
        """Output artifacts with their place, own key and location, and the pod's key prefix."""
        prefix = ""
        plan: OutputPlan = []
        tname = tmpl.get("name", "")
        for a in artifacts_of(tmpl.get("outputs")):
            where = f"templates.{tname}.outputs.artifacts.{a.get('name')}"
            if not a.get("name"):
                raise SpecError(f"templates.{tname}.outputs.artifacts: every artifact needs a name")
            if not a.get("path"):
                raise SpecError(f"{where}.path is required")
            oss, key = self.place(a, where)
            plan.append((a, oss, key, self.location(oss, key or "")))
        if plan:
            repo_oss = self.repository()["oss"]
            key_format = str(repo_oss.get("keyFormat") or DEFAULT_KEY_FORMAT)
            prefix = substitute(key_format, self.state.global_scope.child({"pod.name": pod}))
            if unresolved_tags(prefix):
                raise ArtifactError(f"artifact repository keyFormat: failed to resolve {unresolved_tags(prefix)[0]}")
        return plan, prefix

    def saver(self, plan: OutputPlan, prefix: str) -> ArtifactSaver:
        """Argo's wait container: after exit, upload what the pod left at each output path."""
        clients = self.state.host.oss_clients

        def save(result: PodResult) -> tuple[list[dict[str, Any]], str]:
            saved: list[dict[str, Any]] = []
            errors: list[str] = []
            scratch = Path(str(result.extra.get("pod_dir") or self.state.host.paths.pod_dir(
                result.namespace, result.pod_name))) / "artifacts-staging"
            for art, oss, key, place in plan:
                host = result.artifact_paths.get(str(art["path"]))
                if host is None:
                    if not art.get("optional") and result.phase == "Succeeded":
                        errors.append(missing_output_message(str(art["path"])))
                    continue
                try:
                    saved.append(save_artifact(clients, art, Path(host), oss, key, prefix, place, scratch))
                except ArtifactError as exc:
                    errors.append(str(exc))
            return saved, "; ".join(errors)

        return save
