"""Argo output artifacts stored on OSS: :class:`ArtifactRef` and :func:`workflow_artifacts`, which finds
them in a Workflow's status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from airflow_argo_eci.hooks.oss_errors import OSSNotFoundError
from airflow_argo_eci.workflows import workflow_nodes


@dataclass(frozen=True)
class ArtifactRef:
    """One output artifact of a workflow node, stored on OSS."""

    workflow: str
    namespace: str
    node: str
    node_id: str
    name: str
    bucket: str | None
    key: str
    endpoint: str | None = None
    archive: Literal["tar", "none"] = "tar"

    @property
    def url(self) -> str:
        """``oss://bucket/key`` (bucket empty when the connection's default applies)."""
        return f"oss://{self.bucket or ''}/{self.key}"


def workflow_artifacts(workflow: Mapping[str, Any], *, node: str | None = None,
                       name: str | None = None) -> list[ArtifactRef]:
    """The OSS output artifacts recorded in a Workflow's ``status.nodes[*].outputs.artifacts``.

    Artifacts with only a key use the bucket of ``status.artifactRepositoryRef`` (else ``bucket`` is
    None: the connection's bucket applies). ``node`` matches a node's display name, name or id;
    ``name`` the artifact name. When a filter is given and nothing matches,
    :class:`OSSNotFoundError` names the artifacts the workflow has.
    """
    metadata = workflow.get("metadata") or {}
    status = workflow.get("status") or {}
    repo = ((status.get("artifactRepositoryRef") or {}).get("artifactRepository") or {}).get("oss") or {}
    found: list[ArtifactRef] = []
    everything: list[str] = []
    for node_id, item in sorted(workflow_nodes(status).items(), key=lambda kv: str(kv[1].get("startedAt") or "")):
        display = str(item.get("displayName") or item.get("name") or node_id)
        for artifact in ((item.get("outputs") or {}).get("artifacts") or []):
            oss = artifact.get("oss")
            if not isinstance(oss, Mapping) or not oss.get("key"):
                continue
            everything.append(f"{display}/{artifact.get('name')}")
            if node is not None and node not in (display, item.get("name"), node_id):
                continue
            if name is not None and artifact.get("name") != name:
                continue
            archive: Literal["tar", "none"] = "none" if "none" in (artifact.get("archive") or {}) else "tar"
            found.append(ArtifactRef(
                workflow=str(metadata.get("name") or ""), namespace=str(metadata.get("namespace") or ""),
                node=display, node_id=str(node_id), name=str(artifact.get("name") or ""),
                bucket=oss.get("bucket") or repo.get("bucket") or None, key=str(oss["key"]),
                endpoint=oss.get("endpoint") or repo.get("endpoint") or None, archive=archive))
    if not found and (node is not None or name is not None):
        wanted = "/".join(x for x in (node or "*", name or "*"))
        raise OSSNotFoundError(
            f"workflow {metadata.get('name')!r} has no OSS output artifact {wanted}; it has: "
            f"{', '.join(everything) or 'none'}", status=404, code="NoSuchArtifact")
    return found
