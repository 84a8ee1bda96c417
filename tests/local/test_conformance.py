"""Argo's own example workflows, submitted through the Kubernetes API, against the manifest.

Tier 2 (artifacts): every unlabelled ``tier2-artifacts`` example, the two labelled ``flaky`` (they
pass here) and the artifact workflows of the ACK One seed documents must reach ``Succeeded``; the
ones labelled ``environment`` need S3/GCS/Azure/HDFS/Git/HTTP/Artifactory stores and are skipped.

Target: every unlabelled ``tier1`` example reaches ``Succeeded`` and every ``expected-failure``
tier1 example reaches ``Failed``/``Error``. An example that cannot pass locally is listed in
``KNOWN_EXCEPTIONS`` with its reason; the test fails when a listed one starts passing (so the list
stays honest) or when an unlisted one fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from airflow_argo_eci.local.conformance import (
    Case,
    ConformanceRunner,
    load_manifest,
    select_cases,
    skipped_cases,
    tally,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "argo-examples"

#: file -> why it cannot reach its expected outcome on the local cluster
KNOWN_EXCEPTIONS: dict[str, str] = {
    "continue-on-fail.yaml": (
        "labelled expected-failure, but under Argo's continueOn semantics it succeeds: step C fails with "
        "continueOn.failed, so its step group and D still run and the workflow ends Succeeded - exactly "
        "like status-reference.yaml and exit-code-output-variable.yaml, which must succeed; "
        "spec.parallelism: 1 only serialises the pods"
    ),
}


@pytest.mark.slow
@pytest.mark.skipif(not (EXAMPLES / "MANIFEST.json").is_file(), reason=f"no conformance corpus at {EXAMPLES}")
def test_tier1_conformance(kube_api_client, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    manifest = load_manifest(EXAMPLES)
    cases = select_cases(manifest, ["tier1"])
    assert len(cases) == 66, "the manifest's tier1 unlabelled + expected-failure set changed"
    runner = ConformanceRunner(kube_api_client, EXAMPLES)
    applied = runner.apply_support(manifest)
    assert any(a.startswith("WorkflowTemplate/") for a in applied)
    assert any(a.startswith("ClusterWorkflowTemplate/") for a in applied)
    results = runner.run(cases, concurrency=16, timeout=600)
    with capsys.disabled():
        print("\n" + tally(results))
    assert len(results) == len(cases)
    failing = {r.case.file: f"{r.phase}: {r.message}" for r in results if not r.ok}
    unexpected = {f: why for f, why in failing.items() if f not in KNOWN_EXCEPTIONS}
    now_passing = sorted(set(KNOWN_EXCEPTIONS) - set(failing))
    assert not unexpected, f"examples missing their expected outcome: {unexpected}"
    assert not now_passing, f"listed as known exceptions but now pass; remove them: {now_passing}"


#: the ACK One seed documents' artifact workflows (000/001: artifact passing on ECI, with whalesay;
#: 003: artifactGC with a per-artifact override)
SEED_ARTIFACT_PASSING = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: artifact-passing-
spec:
  entrypoint: artifact-example
  templates:
  - name: artifact-example
    steps:
    - - name: generate-artifact
        template: whalesay
    - - name: consume-artifact
        template: print-message
        arguments:
          artifacts:
          - name: message
            from: "{{steps.generate-artifact.outputs.artifacts.hello-art}}"
  - name: whalesay
    container:
      image: docker/whalesay:latest
      command: [sh, -c]
      args: ["cowsay hello world | tee /tmp/hello_world.txt"]
    outputs:
      artifacts:
      - name: hello-art
        path: /tmp/hello_world.txt
  - name: print-message
    inputs:
      artifacts:
      - name: message
        path: /tmp/message
    container:
      image: alpine:latest
      command: [sh, -c]
      args: ["cat /tmp/message"]
"""

SEED_ARTIFACT_GC = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: artifact-gc-
spec:
  entrypoint: main
  artifactGC:
    strategy: OnWorkflowDeletion
  templates:
  - name: main
    container:
      image: argoproj/argosay:v2
      command: [sh, -c]
      args:
      - |
        echo "hello world" > /tmp/on-completion.txt
        echo "hello world" > /tmp/on-deletion.txt
    outputs:
      artifacts:
      - name: on-completion
        path: /tmp/on-completion.txt
        artifactGC:
          strategy: OnWorkflowCompletion
      - name: on-deletion
        path: /tmp/on-deletion.txt
"""

TIER2_ARTIFACTS = 11


@pytest.mark.slow
@pytest.mark.skipif(not (EXAMPLES / "MANIFEST.json").is_file(), reason=f"no conformance corpus at {EXAMPLES}")
def test_tier2_artifacts_conformance(kube_api_client, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    manifest = load_manifest(EXAMPLES)
    unlabelled = select_cases(manifest, ["tier2-artifacts"], [None])
    assert len(unlabelled) == TIER2_ARTIFACTS, "the manifest's unlabelled tier2-artifacts set changed"
    flaky = select_cases(manifest, ["tier2-artifacts"], ["flaky"])
    seeds = [Case("seed:artifact-passing (ACK One ECI doc)", "seed", None, yaml.safe_load(SEED_ARTIFACT_PASSING)),
             Case("seed:artifact-gc (ACK One artifact enhancements)", "seed", None, yaml.safe_load(SEED_ARTIFACT_GC))]
    cases = unlabelled + flaky + seeds
    runner = ConformanceRunner(kube_api_client, EXAMPLES)
    results = runner.run(cases, concurrency=16, timeout=300)
    skipped = skipped_cases(manifest, ["tier2-artifacts"], ["environment"])
    with capsys.disabled():
        print("\n" + tally(results))
        print(f"skipped {len(skipped)}: " + ", ".join(f"{f} ({why})" for f, why in skipped.items()))
    assert len(results) == len(cases)
    failing = {r.case.file: f"{r.phase}: {r.message} {r.failed_nodes}" for r in results if not r.ok}
    assert not failing, f"artifact examples missing their expected outcome: {failing}"
