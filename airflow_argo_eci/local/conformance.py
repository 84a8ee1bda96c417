"""Hold the local cluster (or any cluster) against Argo's own example workflows.

Reads ``MANIFEST.json`` of an ``argo-examples`` folder, applies the supporting WorkflowTemplates,
ClusterWorkflowTemplates and ConfigMaps, submits the selected Workflows through the Kubernetes
API, waits for each to end and compares its phase with the expected outcome: unlabelled
examples must reach ``Succeeded``, ``expected-failure`` ones ``Failed`` or ``Error``.

    python -m airflow_argo_eci.local.conformance ../shared/conformance/argo-examples [--kubeconfig F]
        [--scope tier1|tier2-artifacts|tier3-cluster ...] [--mix] [--case-timeout S]

``--mix`` runs every unlabelled example of the three tiers together (the real-world mix) and
prints the wall time.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from airflow_argo_eci.conventions import (
    ANNOTATION_DEFAULT_ARTIFACT_REPOSITORY,
    CLUSTER_WORKFLOW_TEMPLATES,
    FAILED_PHASES,
    GROUP,
    TERMINAL_PHASES,
    VERSION,
    WORKFLOW_TEMPLATES,
    WORKFLOWS,
)

RUN_LABEL = "conformance.airflow-argo-eci.io/run"
FILE_LABEL = "conformance.airflow-argo-eci.io/file"


@dataclass(frozen=True)
class Case:
    """One example file (or an inline ``document``) and the outcome the manifest expects of it."""

    file: str
    scope: str
    label: str | None
    #: a Workflow given inline (e.g. from a seed document) instead of ``file`` in the examples folder
    document: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def expected(self) -> tuple[str, ...]:
        return FAILED_PHASES if self.label == "expected-failure" else ("Succeeded",)


@dataclass
class Result:
    case: Case
    workflow: str = ""
    phase: str = ""
    message: str = ""
    seconds: float = 0.0
    failed_nodes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.phase in self.case.expected


def load_manifest(examples: Path) -> dict[str, dict[str, Any]]:
    manifest: dict[str, dict[str, Any]] = json.loads((examples / "MANIFEST.json").read_text())
    return manifest


def select_cases(
    manifest: dict[str, dict[str, Any]], scopes: Iterable[str] = ("tier1",), labels: Iterable[str | None] = (
        None, "expected-failure")
) -> list[Case]:
    """The Workflow files in ``scopes`` whose no-test label is in ``labels`` (None = unlabelled)."""
    scopes, labels = set(scopes), set(labels)
    return [
        Case(name, entry["scope"], entry.get("no_test_label"))
        for name, entry in sorted(manifest.items())
        if entry["scope"] in scopes and entry.get("no_test_label") in labels
        and "Workflow" in entry.get("kinds", [])
    ]


def label_value(text: str) -> str:
    """``text`` as a valid Kubernetes label value: ``[A-Za-z0-9._-]``, at most 63 characters,
    starting and ending alphanumeric (``seed:x (doc)`` -> ``seed-x-doc``)."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text.replace("/", "."))[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def skipped_cases(manifest: dict[str, dict[str, Any]], scopes: Iterable[str], labels: Iterable[str]
                  ) -> dict[str, str]:
    """Workflow files in ``scopes`` left out because of their no-test label: file -> why."""
    reasons = {
        "environment": "needs an external system (S3/GCS/Azure/HDFS/Git/HTTP/Artifactory store, volumes...)",
        "flaky": "labelled flaky upstream",
        "duration": "runs too long for a test",
    }
    scopes, labels = set(scopes), set(labels)
    return {
        name: f"no-test label {entry['no_test_label']!r}: {reasons.get(entry['no_test_label'], 'see the manifest')}"
        for name, entry in sorted(manifest.items())
        if entry["scope"] in scopes and entry.get("no_test_label") in labels
        and "Workflow" in entry.get("kinds", [])
    }


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


class ConformanceRunner:
    """Submits examples to the cluster behind ``api_client`` (a ``kubernetes.client.ApiClient``)."""

    def __init__(self, api_client: Any, examples: Path, *, namespace: str = "argo") -> None:
        from kubernetes import client

        self.examples = examples
        self.namespace = namespace
        self.objects = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.run_id = uuid.uuid4().hex[:8]

    def apply_support(self, manifest: dict[str, dict[str, Any]]) -> list[str]:
        """Create (unless it exists) every WorkflowTemplate, ClusterWorkflowTemplate, ConfigMap and
        PersistentVolumeClaim of the ``support`` files; returns what was applied."""
        from kubernetes.client.exceptions import ApiException

        applied = []
        for name, entry in sorted(manifest.items()):
            if entry["scope"] != "support":
                continue
            for doc in _docs(self.examples / name):
                kind = doc.get("kind")
                meta_name = doc.get("metadata", {}).get("name", "")
                try:
                    if kind == "WorkflowTemplate":
                        self._upsert(lambda d=doc: self.objects.create_namespaced_custom_object(
                            GROUP, VERSION, self.namespace, WORKFLOW_TEMPLATES, d))
                    elif kind == "ClusterWorkflowTemplate":
                        self._upsert(lambda d=doc: self.objects.create_cluster_custom_object(
                            GROUP, VERSION, CLUSTER_WORKFLOW_TEMPLATES, d))
                    elif kind == "ConfigMap":
                        self._upsert(lambda d=doc: self.core.create_namespaced_config_map(self.namespace, d))
                    elif kind == "PersistentVolumeClaim":  # testvolume.yaml: volumes-existing.yaml's claim
                        self._upsert(lambda d=doc: self.core.create_namespaced_persistent_volume_claim(
                            self.namespace, d))
                    else:
                        continue
                except ApiException as exc:
                    raise RuntimeError(f"could not apply {kind} {meta_name} from {name}: {exc.body}") from exc
                applied.append(f"{kind}/{meta_name}")
        return applied

    @staticmethod
    def _upsert(create: Any) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            create()
        except ApiException as exc:
            if exc.status != 409:
                raise

    def submit(self, case: Case) -> list[str]:
        names = []
        docs = [json.loads(json.dumps(case.document))] if case.document is not None else _docs(
            self.examples / case.file)
        for doc in docs:
            if doc.get("kind") != "Workflow":
                continue
            labels = doc.setdefault("metadata", {}).setdefault("labels", {})
            labels[RUN_LABEL] = self.run_id
            labels[FILE_LABEL] = label_value(case.file)
            created = self.objects.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, WORKFLOWS, doc)
            names.append(created["metadata"]["name"])
        return names

    def add_repository_key(self, key: str, *, config_map: str = "artifact-repositories") -> bool:
        """Make ``key`` of the ``config_map`` ConfigMap name a copy of its default repository (the
        key its ``workflows.argoproj.io/default-artifact-repository`` annotation names), as a user
        adds the ``my-key`` repository that ``artifact-repository-ref.yaml`` expects; returns
        whether the key was added (False when it was there already)."""
        cm = self.core.read_namespaced_config_map(config_map, self.namespace)
        data = dict(cm.data or {})
        if key in data:
            return False
        default_key = (cm.metadata.annotations or {}).get(ANNOTATION_DEFAULT_ARTIFACT_REPOSITORY)
        if not default_key or default_key not in data:
            raise RuntimeError(f"configmap {self.namespace}/{config_map} has no default repository to copy "
                               f"(annotation {ANNOTATION_DEFAULT_ARTIFACT_REPOSITORY})")
        self.core.patch_namespaced_config_map(config_map, self.namespace, {"data": {key: data[default_key]}})
        return True

    def run(self, cases: list[Case], *, concurrency: int = 12, timeout: float = 600.0,
            progress: Any = None, case_timeout: float | None = None) -> list[Result]:
        """Submit ``cases`` at most ``concurrency`` at a time; wait for each to end.

        ``timeout`` bounds the whole run; ``case_timeout`` (if given) one workflow: a workflow
        still running after it is recorded as ``Timeout`` and deleted, so an example that can
        never finish here (e.g. it polls a sidecar that does not exist) costs no more than that."""
        pending = list(cases)
        running: dict[str, tuple[Result, float]] = {}
        results: list[Result] = []
        deadline = time.monotonic() + timeout
        while pending or running:
            while pending and len(running) < concurrency:
                case = pending.pop(0)
                result = Result(case)
                try:
                    names = self.submit(case)
                except Exception as exc:  # the outcome of a rejected submit is still an outcome
                    result.phase, result.message = "Rejected", str(exc)[:500]
                    results.append(result)
                    continue
                result.workflow = names[0] if names else ""
                running[result.workflow] = (result, time.monotonic())
            listed = self.objects.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, WORKFLOWS, label_selector=f"{RUN_LABEL}={self.run_id}")
            for wf in listed.get("items", []):
                name = wf["metadata"]["name"]
                status = wf.get("status") or {}
                if name in running and status.get("phase") in TERMINAL_PHASES:
                    result, started = running.pop(name)
                    result.phase = status["phase"]
                    result.message = status.get("message", "")
                    result.seconds = time.monotonic() - started
                    result.failed_nodes = sorted(
                        f"{n.get('displayName')}: {n.get('message', '')}"
                        for n in (status.get("nodes") or {}).values()
                        if n.get("phase") in FAILED_PHASES and n.get("type") == "Pod")
                    results.append(result)
                    if progress:
                        progress(result)
            if case_timeout is not None:
                for name, (result, started) in list(running.items()):
                    if time.monotonic() - started > case_timeout:
                        running.pop(name)
                        result.phase, result.message = "Timeout", f"not finished after {case_timeout:.0f}s"
                        result.seconds = time.monotonic() - started
                        self._delete_workflow(name)
                        results.append(result)
                        if progress:
                            progress(result)
            if time.monotonic() > deadline:
                for result, started in running.values():
                    result.phase, result.message = "Timeout", f"not finished after {timeout:.0f}s"
                    result.seconds = time.monotonic() - started
                    results.append(result)
                break
            if running:
                time.sleep(0.3)
        return sorted(results, key=lambda r: r.case.file)


    def _delete_workflow(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.objects.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, WORKFLOWS, name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def tally(results: list[Result]) -> str:
    ok = sum(r.ok for r in results)
    lines = [f"conformance: {ok}/{len(results)} reached their expected outcome"]
    for r in results:
        if not r.ok:
            lines.append(f"  MISMATCH {r.case.file}: expected {'/'.join(r.case.expected)}, got {r.phase}"
                         f" ({r.message}) {'; '.join(r.failed_nodes)[:300]}")
    return "\n".join(lines)


#: the manifest scopes the local cluster is held against, in the order of the issues that added them
TIERS = ("tier1", "tier2-artifacts", "tier3-cluster")
#: the repository key ``artifact-repository-ref.yaml`` (tier3-cluster) expects the user to have added
EXAMPLE_REPOSITORY_KEY = "my-key"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("examples", type=Path, help="the argo-examples folder holding MANIFEST.json")
    parser.add_argument("--kubeconfig", type=Path, help="a cluster to use instead of a fresh local one")
    parser.add_argument("--namespace", default="argo")
    parser.add_argument("--scope", action="append", choices=TIERS,
                        help="manifest scopes (default: tier1); repeat for several")
    parser.add_argument("--mix", action="store_true",
                        help="the real-world mix: every unlabelled example of all three tiers in one run "
                             f"(adds the {EXAMPLE_REPOSITORY_KEY!r} repository key first)")
    parser.add_argument("--with-flaky", action="store_true", help="also run the examples labelled flaky")
    parser.add_argument("--repository-key", action="append", default=[],
                        help="add this key to the artifact-repositories ConfigMap (a copy of the default "
                             f"repository) before the run; tier3-cluster needs {EXAMPLE_REPOSITORY_KEY!r}")
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the whole run")
    parser.add_argument("--case-timeout", type=float, help="seconds one workflow may run before it counts "
                                                           "as a Timeout and is deleted")
    args = parser.parse_args(argv)
    manifest = load_manifest(args.examples)
    if args.mix:
        scopes: list[str] = list(TIERS)
        labels: list[str | None] = [None] + (["flaky"] if args.with_flaky else [])
    else:
        scopes = args.scope or ["tier1"]
        labels = [None, "expected-failure"] + (["flaky"] if args.with_flaky else [])
    cases = select_cases(manifest, scopes, labels)
    keys = list(args.repository_key)
    if (args.mix or "tier3-cluster" in scopes) and EXAMPLE_REPOSITORY_KEY not in keys:
        keys.append(EXAMPLE_REPOSITORY_KEY)

    def execute(kubeconfig: Path) -> int:
        from kubernetes import config

        api_client = config.new_client_from_config(config_file=str(kubeconfig))
        runner = ConformanceRunner(api_client, args.examples, namespace=args.namespace)
        runner.apply_support(manifest)
        for key in keys:
            runner.add_repository_key(key)
        started = time.monotonic()
        results = runner.run(cases, concurrency=args.concurrency, timeout=args.timeout,
                             case_timeout=args.case_timeout,
                             progress=lambda r: print(f"{'ok  ' if r.ok else 'FAIL'} {r.case.file}: "
                                                      f"{r.phase} in {r.seconds:.1f}s", flush=True))
        wall = time.monotonic() - started
        print(tally(results))
        print(f"{len(cases)} examples of {', '.join(scopes)} in {wall:.1f} s wall time "
              f"(concurrency {args.concurrency})")
        return 0 if all(r.ok for r in results) else 1

    if args.kubeconfig:
        return execute(args.kubeconfig)
    from airflow_argo_eci.local.server import LocalCluster

    with tempfile.TemporaryDirectory(prefix="argo-eci-conformance-") as state, LocalCluster(state) as cluster:
        return execute(cluster.kubeconfig_path)


if __name__ == "__main__":
    sys.exit(main())
