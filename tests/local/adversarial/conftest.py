"""Fixtures of the adversarial tests (the harness and its helpers live in ``harness.py``)."""

from tests.local.adversarial.harness import host_canary, hostile_cluster, kube, responsiveness

__all__ = ["host_canary", "hostile_cluster", "kube", "responsiveness"]
