"""The harness itself: a harmless workflow finishes, leaks nothing, and the probe measures."""

from __future__ import annotations

from typing import Any

from tests.local.adversarial.harness import (
    ClusterUnderTest,
    Responsiveness,
    assert_nothing_leaked,
    harmless_workflow,
    pod_logs,
    run_workflow,
)


def test_harmless_workflow_runs_and_leaks_nothing(hostile_cluster: ClusterUnderTest, kube: Any,
                                                  responsiveness: Responsiveness) -> None:
    with responsiveness:
        wf = run_workflow(kube, harmless_workflow())
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    assert "still-alive" in pod_logs(kube, wf)
    responsiveness.check()
    assert_nothing_leaked(hostile_cluster, kube)
