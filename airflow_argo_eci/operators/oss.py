"""Operators for the OSS side of Argo on ECI: fetch a workflow's output artifacts, push inputs of
any size, and reclaim artifacts.

Every transfer goes through :class:`~airflow_argo_eci.hooks.oss.OSSArtifactHook` (multipart,
resumable, CRC64-verified, progress in the task log). Importing this module is cheap: the hooks,
and through them ``oss2`` and ``kubernetes``, load when a task runs, not when a DAG is parsed.
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator

from airflow_argo_eci.conventions import TERMINAL_PHASES
from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.operators._base import ArgoHookMixin, ExplainedTemplatesMixin

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook
    from airflow_argo_eci.hooks.oss import OSSArtifactHook
    from airflow_argo_eci.hooks.oss_artifacts import ArtifactRef

#: default limit of ``as_text`` artifacts (XCom values live in the metadata database)
DEFAULT_MAX_TEXT_BYTES = 1024 * 1024
_SAFE_SEGMENT = re.compile(r"[^A-Za-z0-9._-]+")


def _is_template(value: Any) -> bool:
    """A value Airflow resolves before ``execute`` (a Jinja string or an XComArg-like object)."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    return not isinstance(value, (Mapping, list, tuple, int, float, bool, timedelta, datetime, type(None)))


class OSSHookMixin:
    """The lazily made :class:`~airflow_argo_eci.hooks.oss.OSSArtifactHook` of a task with an
    ``oss_conn_id`` attribute (its ``__init__`` sets ``_oss_hook = None``)."""

    oss_conn_id: str
    _oss_hook: OSSArtifactHook | None

    @property
    def oss_hook(self) -> OSSArtifactHook:
        """The hook for ``oss_conn_id`` (made on first use, so DAG parsing stays cheap)."""
        if self._oss_hook is None:
            from airflow_argo_eci.hooks.oss import OSSArtifactHook

            self._oss_hook = OSSArtifactHook(oss_conn_id=self.oss_conn_id)
        return self._oss_hook


# ---------------------------------------------------------------------------- workflow references


def _check_workflow_arg(task_id: str, workflow: Any, argument: str = "workflow") -> None:
    """``workflow`` is a workflow name or the XCom of an ``ArgoWorkflowOperator`` (after templating)."""
    if isinstance(workflow, Mapping):
        if not isinstance(workflow.get("name"), str) or not workflow.get("name"):
            raise WorkflowSpecError(
                f"task {task_id}: {argument} has no 'name': pass the return value of an ArgoWorkflowOperator "
                f"(e.g. {argument}=run.output) or {{'name': ..., 'namespace': ...}} (got keys {sorted(workflow)})")
        return
    if isinstance(workflow, str):
        if not workflow.strip():
            raise WorkflowSpecError(f"task {task_id}: {argument} is empty; give a workflow name or an "
                                    "ArgoWorkflowOperator's XCom (e.g. run.output)")
        return
    raise WorkflowSpecError(
        f"task {task_id}: {argument} must be a workflow name or the return value of an ArgoWorkflowOperator "
        f"(a dict with 'name'), got {type(workflow).__name__}")


def _coerce_workflow(workflow: Any) -> Any:
    """A rendered ``"{{ ti.xcom_pull(...) }}"`` without native rendering is the dict's text: parse it."""
    if isinstance(workflow, str) and workflow.lstrip().startswith("{"):
        text = workflow.strip()
        try:
            value = json.loads(text)
        except ValueError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                return workflow
        if isinstance(value, Mapping):
            return value
    return workflow


def _result_refs(result: Mapping[str, Any], bucket_name: str | None) -> list[ArtifactRef]:
    """The artifacts an ``ArgoWorkflowOperator`` return value lists (``workflows.workflow_result``)."""
    from airflow_argo_eci.hooks.oss_artifacts import ArtifactRef

    refs = []
    for entry in result.get("artifacts") or []:
        if not isinstance(entry, Mapping) or entry.get("type", "oss") != "oss" or not entry.get("key"):
            continue
        key = str(entry["key"])
        refs.append(ArtifactRef(
            workflow=str(result.get("name") or ""), namespace=str(result.get("namespace") or ""),
            node=str(entry.get("node") or ""), node_id="", name=str(entry.get("name") or ""),
            bucket=str(entry.get("bucket") or bucket_name or "") or None, key=key,
            endpoint=str(entry.get("endpoint") or "") or None,
            archive=_archive_of(entry, key),
        ))
    return refs


def _archive_of(entry: Mapping[str, Any], key: str) -> Literal["tar", "none"]:
    """``tar`` or ``none``: the entry's ``archive`` when the XCom records it, else from the key (Argo's
    keyFormat names archived artifacts ``<name>.tgz``; a raw one, ``archive: none``, keeps its file name)."""
    archive = entry.get("archive")
    if archive in ("tar", "none"):
        return "tar" if archive == "tar" else "none"
    if isinstance(archive, Mapping) and archive:
        return "none" if "none" in archive else "tar"
    return "tar" if key.endswith((".tgz", ".tar.gz")) else "none"


class _WorkflowArtifacts(ArgoHookMixin):
    """Resolve ``workflow`` (a name or an ArgoWorkflowOperator's XCom) to its OSS artifacts."""

    task_id: str
    workflow: Any
    namespace: str | None
    bucket_name: str | None

    def _workflow_refs(self) -> tuple[str, list[ArtifactRef]]:
        """``(namespace/name, refs)``: from the XCom's ``artifacts`` when it has them, else read
        from the cluster (the workflow must have finished)."""
        workflow = _coerce_workflow(self.workflow)
        _check_workflow_arg(self.task_id, workflow)
        if isinstance(workflow, Mapping):
            name = str(workflow["name"])
            namespace = str(workflow.get("namespace") or self.namespace or self.resolved_namespace)
            if isinstance(workflow.get("artifacts"), list):
                return f"{namespace}/{name}", _result_refs({**workflow, "namespace": namespace}, self.bucket_name)
        else:
            name, namespace = workflow.strip(), self.resolved_namespace
        from airflow_argo_eci.errors import NotFoundError
        from airflow_argo_eci.hooks.oss_artifacts import workflow_artifacts

        try:
            body = self.hook.hydrate(self.hook.get_workflow(name, namespace=namespace))
        except NotFoundError as exc:
            raise WorkflowSpecError(
                f"task {self.task_id}: workflow {namespace}/{name} does not exist; fix workflow= (or namespace=), "
                "or pass the upstream ArgoWorkflowOperator's return value, which lists its artifacts even after "
                "the workflow was deleted") from exc
        phase = (body.get("status") or {}).get("phase")
        if phase not in TERMINAL_PHASES:
            raise WorkflowSpecError(
                f"task {self.task_id}: workflow {namespace}/{name} is {phase or 'Pending'}, not finished; run this "
                "task downstream of the ArgoWorkflowOperator (or an ArgoWorkflowSensor) that waits for it")
        refs = [ref if ref.bucket or not self.bucket_name else _with_bucket(ref, self.bucket_name)
                for ref in workflow_artifacts(body)]
        return f"{namespace}/{name}", refs


def _with_bucket(ref: ArtifactRef, bucket: str) -> ArtifactRef:
    import dataclasses

    return dataclasses.replace(ref, bucket=bucket)


# ---------------------------------------------------------------------------- download


def _artifact_specs(task_id: str, artifacts: Any) -> list[str | dict[str, str]]:
    """Validate ``artifacts``: a non-empty list of names or ``{"node", "name"}`` dicts."""
    if isinstance(artifacts, (str, Mapping)) or not isinstance(artifacts, (list, tuple)) or not artifacts:
        raise WorkflowSpecError(
            f"task {task_id}: artifacts must be a non-empty list of artifact names or {{'node': ..., 'name': ...}} "
            f"dicts, e.g. artifacts=['result'] (got {artifacts!r})")
    specs: list[str | dict[str, str]] = []
    for item in artifacts:
        if isinstance(item, str) and item:
            name = item
            specs.append(item)
        elif isinstance(item, Mapping) and set(item) == {"node", "name"} and all(
                isinstance(item[k], str) and item[k] for k in ("node", "name")):
            name = str(item["name"])
            specs.append({"node": str(item["node"]), "name": name})
        else:
            raise WorkflowSpecError(
                f"task {task_id}: artifacts has {item!r}; each entry is an artifact name or "
                "{'node': <node display name>, 'name': <artifact name>}")
        if "/" in name or name in (".", ".."):
            raise WorkflowSpecError(f"task {task_id}: artifact name {name!r} is not a plain name; Argo artifact "
                                    "names have no '/'")
    labels = [_spec_label(s) for s in specs]
    dupes = sorted({label for label in labels if labels.count(label) > 1})
    if dupes:
        raise WorkflowSpecError(f"task {task_id}: artifacts lists {dupes} more than once; list each once")
    return specs


def _spec_label(spec: str | Mapping[str, str]) -> str:
    """The result key of an artifact spec: its name, or ``node/name`` when the node was given."""
    return spec if isinstance(spec, str) else f"{spec['node']}/{spec['name']}"


class ArgoArtifactDownloadOperator(_WorkflowArtifacts, OSSHookMixin, ExplainedTemplatesMixin, BaseOperator):
    """Fetch named output artifacts of a finished Argo Workflow from OSS.

    With ``local_path`` each artifact lands in ``<local_path>/<name>`` (``<local_path>/<node>/<name>``
    for ``{"node", "name"}`` entries) with Argo's input-artifact semantics: an archived (tgz)
    artifact is unpacked safely and its single entry, a file or a directory, becomes that path.
    With ``as_text=True`` small text artifacts are returned instead (at most ``max_text_bytes``).

    :param workflow: the upstream ``ArgoWorkflowOperator``'s return value (``run.output``: lists the
        artifacts, so no cluster call is needed even if the workflow was deleted), a dict with
        ``name``/``namespace``, or a workflow name (both read the workflow from the cluster).
    :param artifacts: artifact names, or ``{"node": <display name>, "name": <artifact>}`` when
        several nodes produce an artifact of the same name.
    :param local_path: an absolute directory to download into (created if missing).
    :param as_text: return the artifacts' text (UTF-8) instead of downloading to ``local_path``.
    :param max_text_bytes: the largest ``as_text`` artifact; a bigger one fails the task (use ``local_path``).
    :param overwrite: replace what is already at an artifact's path (e.g. from an earlier try), once
        the new content is complete; False: an existing path fails the task.
    :param bucket_name: the bucket of artifacts whose status records only a key (Argo omits the
        bucket when the artifact repository supplies it); default: the OSS connection's schema.
    :param namespace: the workflow's namespace when ``workflow`` does not say (default: the Argo connection's).
    :param argo_conn_id: the ``argo_workflows`` connection (only used when the workflow must be read).
    :param oss_conn_id: the ``oss`` connection of the artifact repository.
    :return: ``{artifact: local path or text}``; keys are the names (``node/name`` for dict entries).
    """

    template_fields: Sequence[str] = ("workflow", "artifacts", "local_path", "namespace", "bucket_name")
    template_fields_renderers = {"workflow": "json", "artifacts": "json"}
    ui_color = "#f4a460"

    def __init__(
        self,
        *,
        workflow: Any,
        artifacts: Sequence[str | Mapping[str, str]],
        local_path: str | None = None,
        as_text: bool = False,
        max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
        overwrite: bool = True,
        bucket_name: str | None = None,
        namespace: str | None = None,
        argo_conn_id: str = "argo_default",
        oss_conn_id: str = "oss_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if workflow is None:
            raise WorkflowSpecError(f"task {self.task_id}: workflow is required: pass the upstream "
                                    "ArgoWorkflowOperator's output (workflow=run.output) or a workflow name")
        if not _is_template(workflow):
            _check_workflow_arg(self.task_id, workflow)
        if not _is_template(artifacts):
            _artifact_specs(self.task_id, artifacts)
        if as_text == (local_path is not None):
            raise WorkflowSpecError(
                f"task {self.task_id}: give either local_path= (download to a directory) or as_text=True "
                "(return the text as XCom), not " + ("both" if as_text else "neither"))
        if local_path is not None and not _is_template(local_path):
            self._check_local_path(local_path)
        if isinstance(max_text_bytes, bool) or not isinstance(max_text_bytes, int) or max_text_bytes <= 0:
            raise WorkflowSpecError(f"task {self.task_id}: max_text_bytes must be a positive number of bytes "
                                    f"(got {max_text_bytes!r})")
        self.workflow = workflow
        self.artifacts = artifacts
        self.local_path = local_path
        self.as_text = as_text
        self.max_text_bytes = max_text_bytes
        self.overwrite = overwrite
        self.bucket_name = bucket_name
        self.namespace = namespace
        self.argo_conn_id = argo_conn_id
        self.oss_conn_id = oss_conn_id
        self._hook: ArgoWorkflowsHook | None = None
        self._oss_hook: OSSArtifactHook | None = None

    def _check_local_path(self, local_path: Any) -> Path:
        if not isinstance(local_path, str) or not local_path or not Path(local_path).is_absolute():
            raise WorkflowSpecError(f"task {self.task_id}: local_path must be an absolute directory path "
                                    f"(got {local_path!r}); e.g. local_path='/data/{{{{ run_id }}}}'")
        return Path(local_path)

    def select(self, refs: Sequence[ArtifactRef], where: str) -> list[tuple[str, ArtifactRef]]:
        """``(result key, ref)`` for every requested artifact; one the workflow did not produce, or
        a name several nodes produced as different objects, is an error listing what the workflow has
        (a steps/DAG template passing its child's artifact on refers to the same object: no ambiguity)."""
        specs = _artifact_specs(self.task_id, self.artifacts)
        produced = ", ".join(sorted({f"{r.node}/{r.name}" for r in refs})) or "none"
        chosen = []
        for spec in specs:
            if isinstance(spec, str):
                matches = [r for r in refs if r.name == spec]
            else:
                matches = [r for r in refs if r.name == spec["name"] and r.node == spec["node"]]
            if not matches:
                raise WorkflowSpecError(
                    f"task {self.task_id}: workflow {where} produced no OSS artifact {_spec_label(spec)!r}; "
                    f"it produced (node/name): {produced}. Fix artifacts=")
            if len({(r.bucket, r.key) for r in matches}) > 1:  # a template exporting its child's artifact is one object
                nodes = ", ".join(sorted(r.node for r in matches))
                raise WorkflowSpecError(
                    f"task {self.task_id}: artifact {spec!r} of workflow {where} was produced by several nodes "
                    f"({nodes}); pick one with {{'node': <node>, 'name': {spec!r}}} in artifacts=")
            chosen.append((_spec_label(spec), matches[0]))
        return chosen

    def execute(self, context: Context) -> dict[str, str]:
        where, refs = self._workflow_refs()
        chosen = self.select(refs, where)
        hook = self.oss_hook
        result: dict[str, str] = {}
        if self.as_text:
            for label, ref in chosen:
                result[label] = self._read_text(hook, ref)
                self.log.info("Read artifact %s of workflow %s (%s, %d characters)", label, where,
                              _url(hook, ref), len(result[label]))
            return result
        base = self._check_local_path(self.local_path)
        for label, ref in chosen:
            destination = base / _SAFE_SEGMENT.sub("_", ref.node) / ref.name if "/" in label else base / ref.name
            if not self.overwrite and (destination.exists() or destination.is_symlink()):
                raise WorkflowSpecError(
                    f"task {self.task_id}: {destination} already exists; remove it, choose another local_path, "
                    "or pass overwrite=True to replace it")
            destination.parent.mkdir(parents=True, exist_ok=True)
            path = _download_replacing(hook, ref, destination)
            result[label] = str(path)
            self.log.info("Downloaded artifact %s of workflow %s (%s) to %s", label, where, _url(hook, ref), path)
        return result

    def _read_text(self, hook: OSSArtifactHook, ref: ArtifactRef) -> str:
        from airflow_argo_eci.hooks.oss_errors import OSSConfigError

        try:
            return hook.read_artifact_text(ref, max_bytes=self.max_text_bytes)
        except OSSConfigError as exc:
            if "max_bytes" in str(exc):
                raise self._too_big(hook, ref, str(exc)) from exc
            raise

    def _too_big(self, hook: OSSArtifactHook, ref: ArtifactRef, detail: str) -> WorkflowSpecError:
        return WorkflowSpecError(
            f"task {self.task_id}: artifact {ref.node}/{ref.name} ({_url(hook, ref)}) is too big for as_text "
            f"(max_text_bytes={self.max_text_bytes}: {detail}); download it with local_path= instead, or raise "
            "max_text_bytes (XCom values are stored in the metadata database)")


def _download_replacing(hook: OSSArtifactHook, ref: ArtifactRef, destination: Path) -> Path:
    """Download ``ref`` so it becomes ``destination``, replacing what is there only once the new
    content is complete (a retry replaces what an earlier try left; a failed download keeps it)."""
    import shutil
    import tempfile

    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.download-", dir=destination.parent))
    try:
        produced = hook.download_artifact(ref, staging / destination.name, unpack=True)
        backup = staging / ".replaced"
        if destination.exists() or destination.is_symlink():
            os.replace(destination, backup)
        try:
            os.replace(produced, destination)
        except OSError:
            if backup.exists() or backup.is_symlink():
                os.replace(backup, destination)
            raise
        return destination
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _url(hook: OSSArtifactHook, ref: ArtifactRef) -> str:
    """``oss://bucket/key`` of ``ref``, with the connection's bucket when the workflow recorded none."""
    return f"oss://{ref.bucket or hook.get_bucket().bucket_name}/{ref.key}"


# ---------------------------------------------------------------------------- upload


class OSSUploadOperator(OSSHookMixin, ExplainedTemplatesMixin, BaseOperator):
    """Upload a file, or every file of a directory, to OSS: multipart and resumable above the hook's
    threshold, so objects up to the OSS maximum (48.8 TiB) work; CRC64 is verified end to end and
    progress (bytes, rate, ETA) goes to the task log.

    :param source: a local file or directory (templated).
    :param key_or_prefix: the object key for a file; for a directory the prefix its files go under
        (``<prefix>/<relative path>``). A key ending in ``/`` for a file: the file keeps its name under it.
    :param bucket_name: default: the connection's schema.
    :param oss_conn_id: the ``oss`` connection.
    :return: ``[{"key", "size", "crc64"}]``, one per object written.
    """

    template_fields: Sequence[str] = ("source", "key_or_prefix", "bucket_name")
    ui_color = "#f4a460"

    def __init__(
        self,
        *,
        source: str,
        key_or_prefix: str,
        bucket_name: str | None = None,
        oss_conn_id: str = "oss_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(source, str) or not source:
            raise WorkflowSpecError(f"task {self.task_id}: source must be a local file or directory path "
                                    f"(got {source!r})")
        if not _is_template(key_or_prefix):
            self._check_key(key_or_prefix)
        self.source = source
        self.key_or_prefix = key_or_prefix
        self.bucket_name = bucket_name
        self.oss_conn_id = oss_conn_id
        self._oss_hook: OSSArtifactHook | None = None

    def _check_key(self, key: Any) -> str:
        if not isinstance(key, str) or not key.strip("/"):
            raise WorkflowSpecError(f"task {self.task_id}: key_or_prefix must be a non-empty object key or prefix, "
                                    f"e.g. 'inputs/{{{{ ds }}}}/data.csv' (got {key!r})")
        if key.startswith("/") or "\\" in key or ".." in PurePosixPath(key).parts:
            raise WorkflowSpecError(f"task {self.task_id}: key_or_prefix {key!r} is not a valid OSS key: it must not "
                                    "start with '/' or contain '\\' or '..' segments")
        return key

    def execute(self, context: Context) -> list[dict[str, Any]]:
        key = self._check_key(self.key_or_prefix)
        source = Path(self.source).expanduser()
        if source.is_dir():
            results = self.oss_hook.upload_directory(source, key, bucket_name=self.bucket_name)
        elif source.is_file():
            if key.endswith("/"):
                key = key + source.name
            results = [self.oss_hook.upload_file(source, key, bucket_name=self.bucket_name)]
        else:
            raise WorkflowSpecError(f"task {self.task_id}: source {str(source)!r} is neither a file nor a directory "
                                    "on this worker; fix source= (paths are read where the task runs)")
        total = sum(r.size for r in results)
        bucket = results[0].bucket if results else self.bucket_name
        self.log.info("Uploaded %d object(s), %d bytes, to oss://%s/%s", len(results), total, bucket, key)
        return [{"key": r.key, "size": r.size, "crc64": r.crc64} for r in results]


# ---------------------------------------------------------------------------- GC


def _coerce_older_than(task_id: str, older_than: Any) -> datetime | timedelta | None:
    if older_than is None or isinstance(older_than, (datetime, timedelta)):
        if isinstance(older_than, datetime) and older_than.tzinfo is None:
            raise WorkflowSpecError(f"task {task_id}: older_than={older_than!r} has no time zone; use an aware "
                                    "datetime (e.g. pendulum.datetime(...)) or a timedelta")
        if isinstance(older_than, timedelta) and older_than <= timedelta(0):
            raise WorkflowSpecError(f"task {task_id}: older_than must be a positive timedelta (got {older_than})")
        return older_than
    if isinstance(older_than, (int, float)) and not isinstance(older_than, bool) and older_than > 0:
        return timedelta(seconds=older_than)
    raise WorkflowSpecError(f"task {task_id}: older_than must be a timedelta, an aware datetime or a number of "
                            f"seconds > 0 (got {older_than!r})")


class OSSArtifactGCOperator(_WorkflowArtifacts, OSSHookMixin, ExplainedTemplatesMixin, BaseOperator):
    """Reclaim OSS artifacts: those of one finished workflow, or every object under a prefix
    (optionally only those older than ``older_than``). ``dry_run`` lists what would go.

    An artifact stored as one object (tgz, or a raw file) and one stored as objects under
    ``<key>/`` (a raw directory) are both reclaimed.

    :param workflow: the upstream ``ArgoWorkflowOperator``'s return value, ``{name, namespace}`` or a
        workflow name (then read from the cluster; it must have finished).
    :param prefix: instead of ``workflow``: a non-empty key prefix (e.g. ``artifacts/etl-``).
    :param older_than: with ``prefix``: only objects last modified before this (a timedelta ago, or an
        aware datetime; a number is seconds).
    :param dry_run: list the keys, delete nothing.
    :param bucket_name: default: the connection's schema (and for artifacts recorded without a bucket).
    :param namespace: the workflow's namespace when ``workflow`` does not say.
    :param argo_conn_id: the ``argo_workflows`` connection (only used when the workflow must be read).
    :param oss_conn_id: the ``oss`` connection.
    :return: the keys deleted (or, with ``dry_run``, that would be).
    """

    template_fields: Sequence[str] = ("workflow", "prefix", "namespace", "bucket_name")
    template_fields_renderers = {"workflow": "json"}
    ui_color = "#f4a460"

    def __init__(
        self,
        *,
        workflow: Any = None,
        prefix: str | None = None,
        older_than: datetime | timedelta | float | None = None,
        dry_run: bool = False,
        bucket_name: str | None = None,
        namespace: str | None = None,
        argo_conn_id: str = "argo_default",
        oss_conn_id: str = "oss_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (workflow is None) == (prefix is None):
            raise WorkflowSpecError(f"task {self.task_id}: give exactly one of workflow= (an ArgoWorkflowOperator's "
                                    "output or a workflow name) or prefix=")
        if workflow is not None and not _is_template(workflow):
            _check_workflow_arg(self.task_id, workflow)
        if prefix is not None and not _is_template(prefix):
            self._check_prefix(prefix)
        if older_than is not None and prefix is None:
            raise WorkflowSpecError(f"task {self.task_id}: older_than= applies to prefix= only; a workflow's "
                                    "artifacts are reclaimed together")
        self.workflow = workflow
        self.prefix = prefix
        self.older_than = _coerce_older_than(self.task_id, older_than)
        self.list_only = bool(dry_run)  # BaseOperator.dry_run is a method
        self.bucket_name = bucket_name
        self.namespace = namespace
        self.argo_conn_id = argo_conn_id
        self.oss_conn_id = oss_conn_id
        self._hook: ArgoWorkflowsHook | None = None
        self._oss_hook: OSSArtifactHook | None = None

    def _check_prefix(self, prefix: Any) -> str:
        if not isinstance(prefix, str) or not prefix.strip("/"):
            raise WorkflowSpecError(
                f"task {self.task_id}: prefix must be a non-empty key prefix (got {prefix!r}); reclaiming a "
                "whole bucket is refused: name the prefix your artifacts live under (e.g. the keyFormat's first "
                "segment)")
        return prefix

    def execute(self, context: Context) -> list[str]:
        verb = "Would delete" if self.list_only else "Deleted"
        hook = self.oss_hook
        if self.prefix is not None:
            prefix = self._check_prefix(self.prefix)
            keys = hook.delete_prefix(prefix, bucket_name=self.bucket_name, older_than=self.older_than,
                                      dry_run=self.list_only)
            age = f" older than {self.older_than}" if self.older_than is not None else ""
            self.log.info("%s %d object(s) under prefix %r%s", verb, len(keys), prefix, age)
            return keys
        where, refs = self._workflow_refs()
        by_bucket: dict[str, list[str]] = {}
        for ref in refs:
            by_bucket.setdefault(ref.bucket or self.bucket_name or "", []).extend(
                _artifact_objects(hook, ref.key, ref.bucket or self.bucket_name))
        deleted: list[str] = []
        for bucket, keys in by_bucket.items():
            unique = list(dict.fromkeys(keys))
            if not self.list_only and unique:
                unique = hook.delete_objects(unique, bucket_name=bucket or None)
            deleted.extend(unique)
        self.log.info("%s %d object(s) of %d artifact(s) of workflow %s", verb, len(deleted), len(refs), where)
        return deleted


def _artifact_objects(hook: OSSArtifactHook, key: str, bucket_name: str | None) -> Iterable[str]:
    """The objects of an artifact: ``key`` itself and, for a raw directory, those under ``key/``."""
    base = key.rstrip("/")
    for info in hook.list_objects(base, bucket_name=bucket_name):
        if info.key == base or info.key.startswith(base + "/"):
            yield info.key


__all__ = ["ArgoArtifactDownloadOperator", "OSSArtifactGCOperator", "OSSUploadOperator"]
