"""Golden files: compare a rendering with its committed YAML; rewrite it only when
``AIRFLOW_ARGO_ECI_REGEN_GOLDEN=1`` (then review the diff before committing)."""

from __future__ import annotations

import os
from pathlib import Path

#: rewrite the golden files instead of comparing with them
REGEN = os.environ.get("AIRFLOW_ARGO_ECI_REGEN_GOLDEN") == "1"


def assert_golden(golden: Path, rendered: str) -> None:
    """``rendered`` equals the committed ``golden`` file (written first when regenerating)."""
    if REGEN:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(rendered)
    assert golden.exists(), f"{golden} is missing: run with AIRFLOW_ARGO_ECI_REGEN_GOLDEN=1 once and review it"
    assert rendered == golden.read_text()
