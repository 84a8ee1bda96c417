"""Argo's own example workflows, submitted through the Kubernetes API, against the manifest.

Target: every unlabelled ``tier1`` example reaches ``Succeeded`` and every ``expected-failure``
tier1 example reaches ``Failed``/``Error``. An example that cannot pass locally is listed in
``KNOWN_EXCEPTIONS`` with its reason; the test fails when a listed one starts passing (so the list
stays honest) or when an unlisted one fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_argo_eci.local.conformance import ConformanceRunner, load_manifest, select_cases, tally

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
